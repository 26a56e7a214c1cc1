"""The one file of published numbers: its shape, and the tables the notebooks read from it."""

from __future__ import annotations

import numpy as np
import pytest

from cytobook.evaluation import TABLE_COLUMNS
from cytobook.published import COLUMNS, published, published_metrics, published_value


def test_every_row_names_its_split_and_section():
    for report in ("cnmc", "bagging", "lymphocytosis"):
        rows = published(report)
        assert list(rows.columns) == list(COLUMNS[1:])
        assert (rows["split"] != "").all() and (rows["section"] != "").all()
        assert np.isfinite(rows["value"]).all()
        assert not rows.duplicated(["model", "metric", "section"]).any()


def test_report_1_final_table_and_its_vgg16_inconsistency():
    final = published_metrics("cnmc", TABLE_COLUMNS, section="3.4.3")
    assert list(final.index) == ["scratch_cnn_dropout-dense256-dropout", "vgg16_truncated_fine_tuned", "resnet50_truncated_v1",
                                 "resnet50_truncated_v2", "average ensemble", "GA-weighted ensemble"]
    assert final.loc["GA-weighted ensemble", "weighted F1"] == 0.9552
    assert final.loc["average ensemble", "recall cancer"] == 0.9805
    # The VGG16 section and the final table disagree; without a section, a model's own section wins.
    assert final.loc["vgg16_truncated_fine_tuned", "weighted F1"] == 0.9108
    assert published_value("cnmc", "vgg16_truncated_fine_tuned", "weighted F1") == 0.9183


def test_numbers_the_chapter_once_missed():
    assert published_value("cnmc", "mobilenet_v2_fine_tuned_last_block", "weighted F1") == 0.8425
    assert published_value("cnmc", "mobilenet_v2_fine_tuned_last_seven", "weighted F1") == 0.8717
    assert published_value("cnmc", "resnet50_fine_tuned", "weighted F1") == 0.8628
    assert published_value("cnmc", "scratch_cnn_dropout-dense128-dropout", "weighted F1") == 0.8605
    assert published_value("cnmc", "error analysis", "misclassified by all") == 41
    assert published_value("cnmc", "error analysis", "misclassified by exactly one") == 187
    assert published_value("cnmc", "balancing", "images per class after balancing") == 3198


def test_selection_by_metric_and_model_and_errors():
    table = published_metrics("cnmc", ["weighted F1", "ROC AUC"], models=["resnet50_truncated_v2", "not published"])
    assert table.to_dict(orient="index") == {"resnet50_truncated_v2": {"weighted F1": 0.9451, "ROC AUC": pytest.approx(np.nan, nan_ok=True)}}
    with pytest.raises(ValueError, match="reports: cnmc"):
        published("nope")
    with pytest.raises(KeyError, match="publishes no"):
        published_value("cnmc", "vgg16_truncated_fine_tuned", "ROC AUC", section="3.4.3")


def test_report_2_table_1_and_its_final_test_score():
    table = published_metrics("bagging", ["precision HEM", "recall ALL", "weighted F1", "support HEM"], section="3 (Table 1)")
    assert table.loc["the report's ensemble"].to_dict() == {"precision HEM": 0.80, "recall ALL": 0.90, "weighted F1": 0.84,
                                                           "support HEM": 648}
    assert published_value("bagging", "the report's ensemble", "weighted F1", section="3") == 0.876
