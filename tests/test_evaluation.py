"""cytobook.evaluation: the report's metrics against hand-computed values and scikit-learn, tables, figures."""

from __future__ import annotations

import json
import warnings
from types import SimpleNamespace

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import balanced_accuracy_score, f1_score, precision_recall_fscore_support, roc_auc_score

from cytobook import evaluation as ev

# Four HEM (0) and six ALL (1) cells; at 0.5 the predictions are 0 0 1 0 | 1 1 0 1 1 0,
# so TN 3, FP 1, FN 2, TP 4.
Y = np.array([0, 0, 0, 0, 1, 1, 1, 1, 1, 1])
P = np.array([0.1, 0.2, 0.7, 0.4, 0.9, 0.8, 0.3, 0.6, 0.55, 0.2])


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def test_binary_report_matches_hand_computed_values():
    report = ev.binary_report(Y, P)
    assert report["confusion_matrix"] == [[3, 1], [2, 4]]
    assert report["n"] == 10
    assert report["support"] == {"HEM": 4, "ALL": 6}
    assert report["precision"] == pytest.approx({"HEM": 3 / 5, "ALL": 4 / 5})
    assert report["recall"] == pytest.approx({"HEM": 3 / 4, "ALL": 4 / 6})
    assert report["f1"] == pytest.approx({"HEM": 6 / 9, "ALL": 8 / 11})
    assert report["weighted_f1"] == pytest.approx((4 * 6 / 9 + 6 * 8 / 11) / 10)
    assert report["accuracy"] == pytest.approx(0.7)
    assert report["balanced_accuracy"] == pytest.approx((3 / 4 + 4 / 6) / 2)
    # 24 (ALL, HEM) pairs; 17 ranked right and one tie (0.2 vs 0.2) counting half.
    assert report["roc_auc"] == pytest.approx(17.5 / 24)


def test_binary_report_agrees_with_sklearn_on_random_data():
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 500)
    p = np.clip(0.35 * y + rng.random(500) * 0.65, 0, 1)
    pred = (p > 0.5).astype(int)
    report = ev.binary_report(y, p, class_names=("normal", "cancer"))
    precision, recall, _, _ = precision_recall_fscore_support(y, pred, labels=[0, 1])
    assert report["weighted_f1"] == pytest.approx(f1_score(y, pred, average="weighted"), abs=1e-12)
    assert report["precision"] == pytest.approx({"normal": precision[0], "cancer": precision[1]}, abs=1e-12)
    assert report["recall"] == pytest.approx({"normal": recall[0], "cancer": recall[1]}, abs=1e-12)
    assert report["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(y, pred), abs=1e-12)
    assert report["roc_auc"] == pytest.approx(roc_auc_score(y, p), abs=1e-12)


def test_binary_report_threshold_is_strict_and_accepts_keras_column_shape():
    report = ev.binary_report([0, 1], np.array([[0.5], [0.51]]))
    assert report["confusion_matrix"] == [[1, 0], [0, 1]]
    assert ev.binary_report([0, 1], [0.3, 0.4], threshold=0.35)["accuracy"] == 1.0


def test_binary_report_single_class_is_json_serialisable_without_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        report = ev.binary_report([1, 1, 1], [0.9, 0.2, 0.7])
    assert report["roc_auc"] is None
    assert report["balanced_accuracy"] == pytest.approx(2 / 3)
    assert report["weighted_f1"] == pytest.approx(0.8)  # only ALL has weight: F1 = 4 / 5
    assert report["precision"]["HEM"] == 0.0
    text = json.dumps(report)
    assert json.loads(text) == report
    assert all(type(v) is float for v in report["precision"].values())
    assert all(type(v) is int for v in report["support"].values())


@pytest.mark.parametrize(
    ("y", "p", "message"),
    [
        ([0, 2], [0.1, 0.2], "labels 0..1"),
        ([0, 1], [0.1], "shape"),
        ([0, 1], [0.1, np.nan], "NaN"),
        ([], [], "non-empty"),
    ],
)
def test_binary_report_rejects_bad_input(y, p, message):
    with pytest.raises(ValueError, match=message):
        ev.binary_report(y, p)


def test_per_class_scores_vectorised_over_stacks_matches_sklearn():
    rng = np.random.default_rng(0)
    for _ in range(5):
        y = rng.integers(0, 4, 200)
        pred = np.where(rng.random(200) < 0.6, y, rng.integers(0, 4, 200))
        pred[pred == 3] = 2  # class 3 never predicted: precision 0 by convention
        cm = np.zeros((4, 4), int)
        np.add.at(cm, (y, pred), 1)
        scores = ev.per_class_scores(np.stack([cm, cm]))
        precision, recall, f1, support = precision_recall_fscore_support(y, pred, labels=range(4), zero_division=0)
        for i in range(2):
            np.testing.assert_allclose(scores["precision"][i], precision, atol=1e-12)
            np.testing.assert_allclose(scores["recall"][i], recall, atol=1e-12)
            np.testing.assert_allclose(scores["f1"][i], f1, atol=1e-12)
            np.testing.assert_array_equal(scores["support"][i], support)
            assert scores["weighted_f1"][i] == pytest.approx(
                f1_score(y, pred, average="weighted", zero_division=0), abs=1e-12
            )


def test_multiclass_report_matches_sklearn():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 3, 300)
    logits = rng.normal(size=(300, 3)) + 1.5 * np.eye(3)[y]
    proba = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    pred = proba.argmax(axis=1)
    report = ev.multiclass_report(y, proba, ["a", "b", "c"])
    assert report["accuracy"] == pytest.approx(np.mean(pred == y))
    assert report["weighted_f1"] == pytest.approx(f1_score(y, pred, average="weighted"), abs=1e-12)
    assert report["macro_f1"] == pytest.approx(f1_score(y, pred, average="macro"), abs=1e-12)
    assert report["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(y, pred), abs=1e-12)
    assert report["roc_auc"] == pytest.approx(roc_auc_score(y, proba, multi_class="ovr"), abs=1e-12)
    assert list(report["recall"]) == ["a", "b", "c"]
    assert np.array(report["confusion_matrix"]).sum() == 300
    json.dumps(report)


def test_multiclass_report_without_all_classes_has_no_auc():
    proba = np.array([[0.8, 0.1, 0.1], [0.2, 0.7, 0.1], [0.6, 0.3, 0.1]])
    report = ev.multiclass_report([0, 1, 1], proba, ["a", "b", "c"])
    assert report["roc_auc"] is None and report["roc_auc_per_class"] is None
    assert report["support"] == {"a": 1, "b": 2, "c": 0}
    assert report["balanced_accuracy"] == pytest.approx((1 + 0.5) / 2)
    with pytest.raises(ValueError, match="shape"):
        ev.multiclass_report([0, 1], proba, ["a", "b", "c"])


def test_report_table_columns_order_and_published_column():
    results = {
        "VGG16": ev.binary_report(Y, P),
        "Average ensemble": ev.binary_report([1, 1, 0], [0.9, 0.4, 0.1]),
        "single class": ev.binary_report([1, 1], [0.9, 0.8]),
    }
    published = pd.DataFrame({"weighted F1": [0.9108, 0.9503, 1.0], "recall normal": [0.8779, np.nan, 0.5],
                              "validation loss": [0.2, 0.3, 0.4]}, index=["VGG16", "Average ensemble", "unused"])
    table = ev.report_table(results, published=published)
    assert list(table.columns) == [
        "precision normal",
        "precision cancer",
        "recall normal",
        "recall cancer",
        "weighted F1",
        "ROC AUC",
        "published recall normal",
        "published weighted F1",
    ]
    assert table.loc["VGG16", "published recall normal"] == 0.8779
    assert list(table.index) == list(results)
    assert table.loc["VGG16", "precision normal"] == 0.6
    assert table.loc["VGG16", "recall cancer"] == 0.6667
    assert table.loc["VGG16", "weighted F1"] == round((4 * 6 / 9 + 6 * 8 / 11) / 10, 4)
    assert table.loc["VGG16", "published weighted F1"] == 0.9108
    assert np.isnan(table.loc["single class", "published weighted F1"])
    assert np.isnan(table.loc["single class", "ROC AUC"])
    assert list(ev.report_table(results).columns) == list(ev.TABLE_COLUMNS)


def test_learning_curves_from_dict_and_history_object():
    logs = {
        "loss": [0.9, 0.6, 0.4],
        "val_loss": [1.0, 0.7, 0.6],
        "accuracy": [0.5, 0.7, 0.8],
        "val_accuracy": [0.5, 0.6, 0.7],
    }
    for history in (logs, SimpleNamespace(history=logs)):
        fig = ev.learning_curves(history, "scratch CNN")
        assert isinstance(fig, plt.Figure)
        assert len(fig.axes) == 2
        assert [len(ax.get_lines()) for ax in fig.axes] == [2, 2]
        assert fig._suptitle.get_text() == "scratch CNN"
    fig = ev.learning_curves({"loss": [1.0], "binary_accuracy": [0.5]}, "no validation")
    assert [len(ax.get_lines()) for ax in fig.axes] == [1, 1]
    with pytest.raises(ValueError, match="neither"):
        ev.learning_curves({"auc": [0.5]}, "nothing to draw")


def test_learning_curves_mark_where_fine_tuning_starts():
    logs = {"loss": [0.9, 0.7, 0.6, 0.5, 0.45], "val_loss": [1.0, 0.8, 0.7, 0.75, 0.7],
            "accuracy": [0.5, 0.6, 0.7, 0.75, 0.8], "val_accuracy": [0.5, 0.6, 0.6, 0.65, 0.7]}
    fig = ev.learning_curves(logs, "VGG16", stage_starts={3: "fine-tuning"})
    for ax in fig.axes:
        lines = ax.get_lines()
        assert len(lines) == 3  # training, validation, the stage line
        stage = lines[2]
        assert stage.get_linestyle() == "--"
        assert list(stage.get_xdata()) == [3.5, 3.5]  # between epoch 3 (last head-only) and epoch 4
        assert [t.get_text() for t in ax.get_legend().get_texts()] == ["training", "validation", "fine-tuning from epoch 4"]
    # Several stages, in any order, each get their own line; none gives the plain figure.
    fig = ev.learning_curves(logs, "two stages", stage_starts={4: "stage 3", 2: "stage 2"})
    assert [line.get_xdata()[0] for line in fig.axes[0].get_lines()[2:]] == [2.5, 4.5]
    assert [len(ax.get_lines()) for ax in ev.learning_curves(logs, "none", stage_starts=None).axes] == [2, 2]
    for bad in (0, 5, -1):
        with pytest.raises(ValueError, match="outside 1..4"):
            ev.learning_curves(logs, "bad", stage_starts={bad: "fine-tuning"})


@pytest.mark.parametrize("normalize", [False, True])
def test_confusion_matrix_figure_annotates_counts_and_row_percentages(normalize):
    fig = ev.confusion_matrix_figure(Y, (P > 0.5).astype(int), ["HEM", "ALL"], "VGG16", normalize=normalize)
    assert isinstance(fig, plt.Figure)
    assert len(fig.axes) == 1
    ax = fig.axes[0]
    texts = [t.get_text() for t in ax.texts]
    assert texts == ["3\n75.0%", "1\n25.0%", "2\n33.3%", "4\n66.7%"]
    assert ax.get_title() == "VGG16"
    assert ax.get_xlabel() == "predicted class" and ax.get_ylabel() == "true class"


def test_roc_figure_one_curve_per_model_and_chance_line():
    fig = ev.roc_figure({"A": (Y, P), "B": (Y, 1 - P)}, "ROC")
    ax = fig.axes[0]
    assert len(fig.axes) == 1
    assert len(ax.get_lines()) == 3
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == [f"A (AUC {17.5 / 24:.4f})", f"B (AUC {1 - 17.5 / 24:.4f})", "chance"]
    with pytest.raises(ValueError, match="single class"):
        ev.roc_figure({"A": ([1, 1], [0.2, 0.3])}, "ROC")


def test_report_table_is_a_dataframe():
    assert isinstance(ev.report_table({"m": ev.binary_report(Y, P)}), pd.DataFrame)


def test_report_table_of_validation_scores_beside_the_published_ones():
    results = {"m": {**ev.binary_report(Y, P), "validation": {"loss": 0.31234, "accuracy": 0.9}}}
    published = pd.DataFrame({"validation loss": [0.2436]}, index=["m"])
    table = ev.report_table(results, published, ev.VALIDATION_COLUMNS)
    assert table.loc["m"].to_dict() == {"validation loss": 0.3123, "validation accuracy": 0.9, "published validation loss": 0.2436}


def test_per_class_table_matches_sklearn_and_sets_published_values_beside():
    y = np.array([0, 0, 0, 1, 1, 1, 1, 1, 0, 1])
    p = np.array([0.1, 0.7, 0.2, 0.9, 0.8, 0.3, 0.6, 0.9, 0.4, 0.2])
    table = ev.per_class_table(ev.binary_report(y, p), {"precision HEM": 0.80, "support ALL": 1219, "weighted F1": 0.84})
    precision, recall, f1, support = precision_recall_fscore_support(y, p > 0.5)
    assert list(table.index) == ["HEM", "ALL", "weighted average"]
    np.testing.assert_allclose(table.loc[["HEM", "ALL"], "precision"], precision.round(4))
    np.testing.assert_allclose(table.loc[["HEM", "ALL"], "recall"], recall.round(4))
    weighted = precision_recall_fscore_support(y, p > 0.5, average="weighted")
    np.testing.assert_allclose(table.loc["weighted average", ["precision", "recall", "F1"]], np.round(weighted[:3], 4))
    assert list(table["support"]) == [*support, support.sum()]
    assert table.loc["HEM", "published precision"] == 0.80 and table.loc["ALL", "published support"] == 1219
    assert table.loc["weighted average", "published F1"] == 0.84 and np.isnan(table.loc["ALL", "published F1"])


def test_claims_table_tests_each_claim_on_each_set_of_results():
    from cytobook.evaluation import claims_table

    claims = {"a beats b": lambda scores: scores["a"] > scores["b"], "c is best": lambda s: s["c"] == max(s.values())}
    table = claims_table(claims, {"published": {"a": 0.9, "b": 0.8, "c": 0.95}, "this run": {"a": 0.7, "b": 0.8, "c": 0.9}})
    assert table.to_dict() == {"published": {"a beats b": True, "c is best": True},
                               "this run": {"a beats b": False, "c is best": True}}


# ---------------------------------------------------------------------------
# Report 5 (HEp-2): mean class accuracy, per-image vote, confusion dendrogram, per-label AUC


def test_mean_class_accuracy_equals_balanced_accuracy_on_random_labels():
    rng = np.random.default_rng(5)
    for k in (2, 6, 14):
        y = rng.integers(0, k, 400)
        pred = np.where(rng.random(400) < 0.5, y, rng.integers(0, k, 400))
        assert ev.mean_class_accuracy(y, pred, k) == pytest.approx(balanced_accuracy_score(y, pred), abs=1e-12)
    # A class absent from y_true (5) but predicted is left out, as scikit-learn does (with a warning).
    y = rng.integers(0, 5, 100)
    pred = np.where(rng.random(100) < 0.7, y, 5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = balanced_accuracy_score(y, pred)
    assert ev.mean_class_accuracy(y, pred, 6) == pytest.approx(expected, abs=1e-12)


def test_mean_class_accuracy_differs_from_accuracy_when_imbalanced():
    y = np.array([0] * 9 + [1] + [2] * 2)
    pred = np.array([0] * 9 + [0] + [2, 0])  # the majority class right, the small ones not
    accuracy = np.mean(pred == y)
    assert accuracy == pytest.approx(10 / 12)
    assert ev.mean_class_accuracy(y, pred, 3) == pytest.approx((1 + 0 + 0.5) / 3)


@pytest.mark.parametrize(
    ("y", "pred", "message"),
    [([], [], "non-empty"), ([0, 1, 1], [0, 1], "y_pred has 2 labels, y_true 3"), ([0, 3], [0, 1], "labels 0..2")],
)
def test_mean_class_accuracy_rejects_bad_input(y, pred, message):
    with pytest.raises(ValueError, match=message):
        ev.mean_class_accuracy(y, pred, 3)


def test_majority_vote_breaks_ties_towards_the_smallest_label():
    groups = ["img2", "img1", "img2", "img1", "img2", "img1", "img3", "img1", "img2"]
    y_true = [1, 3, 1, 3, 1, 3, 2, 3, 1]
    y_pred = [2, 3, 0, 1, 2, 3, 2, 3, 0]  # img1: 3 3 1 3; img2: 2 0 2 0 (tie); img3: 2
    table = ev.majority_vote(groups, y_true, y_pred)
    assert list(table.index) == ["img1", "img2", "img3"] and table.index.name == "group"
    assert list(table.columns) == ["true", "predicted", "cells", "agreement"]
    assert table["true"].tolist() == [3, 1, 2]
    assert table["predicted"].tolist() == [3, 0, 2]
    assert table["cells"].tolist() == [4, 4, 1]
    assert table["agreement"].tolist() == pytest.approx([0.75, 0.5, 1.0])
    # Image accuracy beside cell accuracy: every image right here although 3 of 9 cells are wrong.
    assert (table["true"] == table["predicted"]).mean() == pytest.approx(2 / 3)


def test_majority_vote_rejects_a_group_mixing_true_labels():
    with pytest.raises(ValueError, match="'field 7'"):
        ev.majority_vote(["field 1", "field 7", "field 7"], [0, 1, 2], [0, 1, 1])
    with pytest.raises(ValueError, match="one entry per cell"):
        ev.majority_vote([1, 1], [0, 0, 0], [0, 0, 0])
    with pytest.raises(ValueError, match="missing"):
        ev.majority_vote([1.0, np.nan], [0, 0], [0, 0])


def test_class_distances_symmetric_zero_diagonal_in_unit_interval():
    rng = np.random.default_rng(7)
    cm = rng.integers(0, 50, (6, 6))
    cm[4] = 0  # a class without support
    d = ev.class_distances(cm)
    np.testing.assert_array_equal(d, d.T)
    np.testing.assert_array_equal(np.diag(d), 0)
    assert d.min() >= 0 and d.max() <= 1
    # By hand: class 0 gives 2 of 10 cells to class 1, class 1 one of 10 to class 0.
    d = ev.class_distances([[8, 2, 0], [1, 9, 0], [0, 0, 0]])
    np.testing.assert_allclose(d, [[0, 0.85, 1], [0.85, 0, 1], [1, 1, 0]])
    with pytest.raises(ValueError, match="square"):
        ev.class_distances(np.ones((2, 3)))


def test_classes_confused_with_each_other_merge_first():
    cm = np.diag([50, 40, 60, 30, 45]) + 1
    cm[1, 3], cm[3, 1] = 35, 25  # 1 and 3 heavily confused, both ways
    z = ev.confusion_linkage(cm)
    assert z.shape == (4, 4)
    assert sorted(z[0, :2].astype(int).tolist()) == [1, 3]
    assert z[0, 2] == pytest.approx(ev.class_distances(cm)[1, 3])
    assert np.all(np.diff(z[:, 2]) >= 0)


def test_confusion_dendrogram_labels_every_class():
    rng = np.random.default_rng(2)
    names = [f"pattern {i}" for i in range(47)]
    cm = np.diag(rng.integers(20, 60, 47)) + rng.integers(0, 4, (47, 47))
    fig = ev.confusion_dendrogram(cm, names, "HEP Annot")
    ax = fig.axes[0]
    leaves = [t.get_text() for t in ax.get_xticklabels()]
    assert isinstance(fig, plt.Figure) and ax.get_title() == "HEP Annot"
    assert sorted(leaves) == sorted(names)
    small = ev.confusion_dendrogram(cm[:5, :5], names[:5], "five")
    assert fig.get_figwidth() > small.get_figwidth()
    with pytest.raises(ValueError, match="class_names"):
        ev.confusion_dendrogram(cm[:5, :5], names[:4], "wrong")


def test_per_label_auc_agrees_with_sklearn_and_gives_nan_without_positives():
    rng = np.random.default_rng(11)
    y = (rng.random((80, 4)) < [0.1, 0.4, 0.7, 0.0]).astype(int)
    scores = y * 0.6 + rng.random((80, 4))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        table = ev.per_label_auc(y, scores, ["Mouchete", "PL7", "Cyto", "Controle"])
    assert list(table.columns) == ["positives", "negatives", "auc"]
    assert table["positives"].tolist() == y.sum(axis=0).tolist()
    assert (table["positives"] + table["negatives"]).eq(80).all()
    for j, label in enumerate(["Mouchete", "PL7", "Cyto"]):
        assert table.loc[label, "auc"] == pytest.approx(roc_auc_score(y[:, j], scores[:, j]), abs=1e-12)
    assert np.isnan(table.loc["Controle", "auc"])
    with pytest.raises(ValueError, match="0/1"):
        ev.per_label_auc(y * 2, scores, ["a", "b", "c", "d"])
    with pytest.raises(ValueError, match="shape"):
        ev.per_label_auc(y, scores[:, :3], ["a", "b", "c", "d"])


def test_auc_summary_by_hand():
    table = pd.DataFrame({"positives": [10, 30, 0, 5], "negatives": [90, 70, 100, 95], "auc": [0.9, 0.6, np.nan, 1.0]},
                         index=["a", "b", "c", "d"])
    summary = ev.auc_summary(table)
    assert summary["mean_auc"] == pytest.approx((0.9 + 0.6 + 1.0) / 3)
    assert summary["weighted_auc"] == pytest.approx((10 * 0.9 + 30 * 0.6 + 5 * 1.0) / 45)
    assert summary["lowest_auc"] == pytest.approx(0.6) and summary["lowest_label"] == "b"
    assert summary["labels_scored"] == 3
    json.dumps(summary)
    empty = ev.auc_summary(table.iloc[[2]])
    assert empty["labels_scored"] == 0 and empty["mean_auc"] is None


def test_auc_comparison_figure_one_bar_per_model_and_label():
    labels = ["Mouchete", "PL7", "Cyto", "Controle"]
    weighted = pd.DataFrame({"positives": [5, 5, 5, 5], "auc": [0.8, 0.95, 0.7, 1.0]}, index=labels)
    unweighted = pd.DataFrame({"positives": [5, 5, 5, 5], "auc": [0.85, 0.9, np.nan, 1.0]}, index=labels)
    fig = ev.auc_comparison_figure({"class-weighted": weighted, "unweighted": unweighted}, "Fig. 24")
    ax = fig.axes[0]
    assert len(ax.containers) == 2 and [len(c.patches) for c in ax.containers] == [4, 4]
    # Sorted by the first table's AUC, tick 0 on top.
    assert [t.get_text() for t in ax.get_yticklabels()] == ["Controle", "PL7", "Mouchete", "Cyto"]
    assert list(ax.get_yticks()) == [0, 1, 2, 3] and ax.yaxis_inverted()
    chance = [line for line in ax.get_lines() if line.get_linestyle() == ":"]
    assert len(chance) == 1 and list(chance[0].get_xdata()) == [0.5, 0.5]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["class-weighted", "unweighted", "chance"]
    with pytest.raises(ValueError, match="empty"):
        ev.auc_comparison_figure({}, "none")
