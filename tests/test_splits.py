"""Image-level and subject-level splits, and the leakage check."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cytobook.splits import LeakageError, assert_no_leakage, image_level_split, subject_level_split

FRACTIONS = (0.6, 0.2, 0.2)


def make_table(
    n_all: int = 30, n_hem: int = 20, seed: int = 0, cells: tuple[int, int] = (20, 60)
) -> pd.DataFrame:
    """One row per image: ALL subjects "1".."n_all" and HEM subjects "H1".."Hn_hem", uneven image counts."""
    rng = np.random.default_rng(seed)
    rows = []
    for label, names in (
        (1, [str(i) for i in range(1, n_all + 1)]),
        (0, [f"H{i}" for i in range(1, n_hem + 1)]),
    ):
        for subject in names:
            rows += [{"subject": subject, "label": label}] * int(rng.integers(cells[0], cells[1] + 1))
    table = pd.DataFrame(rows)
    table.index = pd.RangeIndex(1000, 1000 + len(table))  # a non-default index must be kept
    return table


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    return make_table()


def shares(split: pd.Series) -> np.ndarray:
    return split.value_counts(normalize=True).reindex(["train", "val", "test"], fill_value=0).to_numpy()


# ----------------------------------------------------------------------------- image level


def test_image_split_fractions_and_index(table):
    split = image_level_split(table, FRACTIONS, seed=0)
    assert split.index.equals(table.index) and split.name == "split"
    assert set(split) == {"train", "val", "test"}
    np.testing.assert_allclose(shares(split), FRACTIONS, atol=0.01)


def test_image_split_preserves_class_ratio(table):
    split = image_level_split(table, FRACTIONS, seed=3)
    overall = table["label"].mean()
    for part in ("train", "val", "test"):
        assert table.loc[split == part, "label"].mean() == pytest.approx(overall, abs=0.01)


def test_image_split_is_deterministic(table):
    pd.testing.assert_series_equal(image_level_split(table, seed=7), image_level_split(table, seed=7))
    assert not image_level_split(table, seed=7).equals(image_level_split(table, seed=8))


def test_image_split_leaks_subjects(table):
    # The reports' random split puts a patient's cells in several parts; the check says so.
    split = image_level_split(table, seed=0)
    with pytest.raises(LeakageError, match="in more than one part"):
        assert_no_leakage(table.assign(split=split), "split")


def test_image_split_with_an_empty_part(table):
    split = image_level_split(table, (0.8, 0.2, 0.0), seed=0)
    assert set(split) == {"train", "val"}
    np.testing.assert_allclose(shares(split), (0.8, 0.2, 0.0), atol=0.01)


def test_image_split_too_small_raises_clearly():
    tiny = pd.DataFrame({"subject": ["1", "2", "H1", "H2"], "label": [1, 1, 0, 0]})
    with pytest.raises(ValueError, match="cannot split 4 images"):
        image_level_split(tiny, FRACTIONS)


def test_image_split_rejects_missing_labels(table):
    unlabelled = table.astype({"label": "Int64"})
    unlabelled.iloc[0, unlabelled.columns.get_loc("label")] = pd.NA
    with pytest.raises(ValueError, match="rows have no 'label'"):
        image_level_split(unlabelled)


@pytest.mark.parametrize("fractions", [(0.5, 0.2, 0.2), (0.6, 0.4), (0, 0.5, 0.5), (1.2, -0.1, -0.1)])
def test_invalid_fractions(table, fractions):
    with pytest.raises(ValueError, match="fractions must be"):
        image_level_split(table, fractions)
    with pytest.raises(ValueError, match="fractions must be"):
        subject_level_split(table, fractions)


# ----------------------------------------------------------------------------- subject level


def test_subject_split_has_no_leakage(table):
    split = subject_level_split(table, FRACTIONS, seed=0)
    assert split.index.equals(table.index) and split.name == "split"
    assert_no_leakage(table.assign(split=split), "split")
    assert_no_leakage(table, split)  # a Series works too
    assert (table.assign(split=split).groupby("subject")["split"].nunique() == 1).all()


def test_subject_split_fractions_and_classes(table):
    for seed in range(5):
        split = subject_level_split(table, FRACTIONS, seed=seed)
        np.testing.assert_allclose(shares(split), FRACTIONS, atol=0.02)
        for label in (0, 1):
            of_class = split[table["label"] == label]
            np.testing.assert_allclose(shares(of_class), FRACTIONS, atol=0.03)
            for part in ("train", "val", "test"):
                assert table.loc[of_class.index[of_class == part], "subject"].nunique() >= 1


def test_subject_split_is_deterministic_and_order_free(table):
    first = subject_level_split(table, seed=4)
    pd.testing.assert_series_equal(first, subject_level_split(table, seed=4))
    shuffled = table.sample(frac=1, random_state=1)
    again = subject_level_split(shuffled, seed=4)
    pd.testing.assert_series_equal(again.loc[table.index], first)
    seeds = {tuple(subject_level_split(table, seed=s)) for s in range(5)}
    assert len(seeds) > 1  # different seeds give different splits


def test_subject_split_minimum_subjects_per_class():
    table = make_table(n_all=3, n_hem=3)
    split = subject_level_split(table, FRACTIONS, seed=0)
    per_part = table.assign(split=split).groupby(["split", "label"])["subject"].nunique()
    assert (per_part == 1).all() and len(per_part) == 6


def test_subject_split_too_few_subjects_raises_clearly():
    table = make_table(n_all=5, n_hem=2)
    with pytest.raises(ValueError, match=r"class 0 has 2 subjects \(H1, H2\).*at least 3 per class"):
        subject_level_split(table, FRACTIONS)
    # Without a test part, two subjects per class are enough.
    split = subject_level_split(table, (0.8, 0.2, 0.0))
    assert set(split) == {"train", "val"}


def test_subject_split_rejects_mixed_or_missing_subjects(table):
    mixed = table.copy()
    mixed.loc[mixed.index[0], "label"] = 0  # subject "1" now has both classes
    with pytest.raises(ValueError, match="more than one 'label': 1;"):
        subject_level_split(mixed)
    missing = table.astype({"subject": object})
    missing.loc[missing.index[0], "subject"] = None
    with pytest.raises(ValueError, match="1 rows have no 'subject'"):
        subject_level_split(missing)


def test_subject_split_without_stratify(table):
    split = subject_level_split(table, FRACTIONS, seed=0, stratify=None)
    assert_no_leakage(table.assign(split=split), "split")
    np.testing.assert_allclose(shares(split), FRACTIONS, atol=0.02)


# ----------------------------------------------------------------------------- leakage check


def test_assert_no_leakage_names_offenders():
    table = pd.DataFrame(
        {
            "subject": ["1", "1", "2", "H1", "H1", None],
            "split": ["train", "test", "train", "val", "val", "test"],
        }
    )
    with pytest.raises(LeakageError) as error:
        assert_no_leakage(table, "split")
    assert "1 subject in more than one part of 'split': 1 (test, train)" in str(error.value)
    assert isinstance(error.value, ValueError)
    assert_no_leakage(table.drop(index=1), "split")  # rows without a subject are ignored
