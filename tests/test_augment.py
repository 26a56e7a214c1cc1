"""Report 1's balancing: subsample ALL, add flipped/rotated HEM copies."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cytobook.augment import AUGMENTATIONS, apply_augmentation, balance_classes


@pytest.fixture
def table():
    return pd.DataFrame({"path": [f"cell{i}.bmp" for i in range(30)], "label": [1] * 20 + [0] * 10})


def test_balanced_classes_are_equal_and_reproducible(table):
    balanced = balance_classes(table, seed=1)
    counts = balanced["label"].value_counts()
    assert counts[0] == counts[1] == 15
    assert (balanced.loc[balanced["label"] == 1, "augmentation"] == "none").all()
    hem = balanced[balanced["label"] == 0]
    assert set(table.loc[table["label"] == 0, "path"]) <= set(hem.loc[hem["augmentation"] == "none", "path"])
    assert (hem["augmentation"] != "none").sum() == 5
    assert not hem.duplicated(["path", "augmentation"]).any()
    assert balanced.equals(balance_classes(table, seed=1))
    assert not balanced.equals(balance_classes(table, seed=2))


def test_impossible_targets_are_refused(table):
    with pytest.raises(ValueError, match="impossible"):
        balance_classes(table, target=25)
    with pytest.raises(ValueError, match="fewer than the other class"):
        balance_classes(table, majority=0)
    assert balance_classes(table).equals(balance_classes(table, majority=1))


def test_augmentations_are_exact_symmetries():
    image = np.arange(2 * 3 * 3).reshape(2, 3, 3)[..., None].repeat(3, axis=-1)[0]  # (3, 3, 3)
    assert np.array_equal(apply_augmentation(image, "flip_horizontal")[:, 0], image[:, -1])
    assert np.array_equal(apply_augmentation(image, "flip_vertical")[0], image[-1])
    assert np.array_equal(apply_augmentation(apply_augmentation(image, "rotate_90"), "rotate_270"), image)
    assert np.array_equal(apply_augmentation(image, "rotate_180"), image[::-1, ::-1])
    batch = np.stack([image, image + 1])
    for name in AUGMENTATIONS:
        assert np.array_equal(apply_augmentation(batch, name)[1], apply_augmentation(image + 1, name))
    with pytest.raises(ValueError, match="unknown augmentation"):
        apply_augmentation(image, "shear")
