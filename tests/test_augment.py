"""Report 1's balancing (subsample ALL, add flipped/rotated HEM copies) and report 2's bagging sets."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cytobook.augment import (
    AUGMENTATIONS,
    RANDOM_TRANSFORMS,
    apply_augmentation,
    bagging_composition,
    bagging_sets,
    balance_classes,
    draw_augmentation,
)


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


@pytest.fixture
def cell():
    """A 21 x 21 segmented "cell": a bright off-centre square on black, with a gradient inside."""
    image = np.zeros((21, 21, 3), dtype=np.uint8)
    image[4:12, 6:16] = np.array([100, 50, 120], dtype=np.uint8)
    image[4:12, 6:16, 0] += np.arange(10, dtype=np.uint8) * 3
    return image


def test_random_transforms_keep_the_background_black_and_the_cell_a_cell(cell):
    background = cell.max(axis=-1) == 0
    for augmentation in ("noise:6:3", "contrast:1.2", "contrast:0.8", "channels:1.1:0.9:1.05"):
        out = apply_augmentation(cell, augmentation)
        assert out.dtype == cell.dtype and out.shape == cell.shape
        assert (out[background] == 0).all() and (out[~background].max(axis=-1) > 0).all()
        assert not np.array_equal(out, cell)
    assert np.array_equal(apply_augmentation(cell, "noise:6:3"), apply_augmentation(cell, "noise:6:3"))
    assert not np.array_equal(apply_augmentation(cell, "noise:6:3"), apply_augmentation(cell, "noise:6:4"))
    # Contrast scales the distance from the cell's mean colour, which stays put.
    stretched = apply_augmentation(cell, "contrast:1.2").astype(float)
    assert np.allclose(stretched[~background].mean(axis=0), cell[~background].mean(axis=0), atol=0.6)
    assert stretched[~background][:, 0].std() > cell[~background][:, 0].std()
    assert np.array_equal(apply_augmentation(cell, "channels:1:1:1"), cell)


def test_rotation_turns_about_the_centre(cell):
    assert np.array_equal(apply_augmentation(cell, "rotate:90"), np.rot90(cell))
    assert np.array_equal(apply_augmentation(cell, "rotate:360"), cell)
    big = np.zeros((81, 81, 3), dtype=np.uint8)
    big[20:60, 25:55] = 100
    area = (apply_augmentation(big, "rotate:45").max(axis=-1) > 50).sum()  # interpolation softens the outline
    assert abs(int(area) - 40 * 30) < 0.05 * 40 * 30


def test_combinations_apply_in_order_and_bad_names_are_refused(cell):
    combined = apply_augmentation(cell, "flip_horizontal+rotate:90")
    assert np.array_equal(combined, apply_augmentation(apply_augmentation(cell, "flip_horizontal"), "rotate:90"))
    batch = np.stack([cell, cell[::-1]])
    assert np.array_equal(apply_augmentation(batch, "contrast:1.1")[1], apply_augmentation(cell[::-1], "contrast:1.1"))
    for bad in ("rotate", "noise:3", "contrast:x", "channels:1:1", "shear:3", "rotate_90:1"):
        with pytest.raises(ValueError, match="unknown augmentation"):
            apply_augmentation(cell, bad)


def test_drawn_augmentations_combine_one_to_three_transforms_and_all_apply(cell):
    rng = np.random.default_rng(0)
    drawn = [draw_augmentation(rng) for _ in range(300)]
    counts = {len(a.split("+")) for a in drawn}
    names = {part.split(":")[0] for a in drawn for part in a.split("+")}
    assert counts == {1, 2, 3} and names == set(RANDOM_TRANSFORMS)
    assert all(len(set(part.split(":")[0] for part in a.split("+"))) == len(a.split("+")) for a in drawn)
    for augmentation in drawn[:40]:
        assert apply_augmentation(cell, augmentation).shape == cell.shape
    assert drawn == [draw_augmentation(r) for r in [np.random.default_rng(0)] for _ in range(300)]


def test_bagging_sets_follow_the_reports_figure_2():
    table = pd.DataFrame({"path": [f"cell{i}.bmp" for i in range(31)], "label": [1] * 21 + [0] * 10})
    sets = bagging_sets(table, seed=3)
    a, b = sets[sets["set"] == "A"], sets[sets["set"] == "B"]
    originals = {name: set(rows.loc[(rows["label"] == 1) & (rows["augmentation"] == "none"), "path"]) for name, rows in (("A", a), ("B", b))}
    copies = {name: set(rows.loc[(rows["label"] == 1) & (rows["augmentation"] != "none"), "path"]) for name, rows in (("A", a), ("B", b))}
    # The ALL cells are halved; each set holds one half as it is and the other augmented.
    assert originals["A"].isdisjoint(originals["B"]) and originals["A"] | originals["B"] == set(table["path"][:21])
    assert (len(originals["A"]), len(originals["B"])) == (10, 11)
    assert copies["A"] == originals["B"] and copies["B"] == originals["A"]
    assert set(a.loc[a["part"] == "All-A", "path"]) == originals["A"]
    # The same HEM cells, and the same augmented copies of them, in both sets.
    hem = [rows[rows["label"] == 0].sort_values(["path", "augmentation"])[["path", "augmentation"]].reset_index(drop=True)
           for rows in (a, b)]
    assert hem[0].equals(hem[1]) and (hem[0]["augmentation"] != "none").sum() == 21 - 10  # as many HEM as ALL
    assert set(hem[0]["path"]) == set(table["path"][21:]) and set(hem[0]["path"].value_counts()) == {2, 3}
    assert (a["label"] == 0).sum() == (a["label"] == 1).sum() == 21
    # With more copies than HEM cells, each cell is copied in turn; with as many HEM as ALL cells, none.
    many = bagging_sets(pd.concat([table, table.iloc[:21].assign(path=lambda t: t["path"] + "x")]), seed=0)
    copies_per_cell = many.loc[(many["set"] == "A") & (many["augmentation"] != "none") & (many["label"] == 0), "path"]
    assert len(copies_per_cell) == 42 - 10 and set(copies_per_cell.value_counts()) <= {3, 4}
    even = bagging_sets(table.iloc[11:], seed=0)
    assert (even.loc[even["label"] == 0, "augmentation"] == "none").all()
    assert sets.equals(bagging_sets(table, seed=3)) and not sets.equals(bagging_sets(table, seed=4))
    with pytest.raises(ValueError, match="needs ALL"):
        bagging_sets(table[table["label"] == 1])
    composition = bagging_composition(sets)
    assert composition.loc[("A", "All-A")].to_dict() == {"as it is": 10, "augmented": 0}
    assert composition.loc[("A", "All-B")].to_dict() == {"as it is": 0, "augmented": 11}
    assert composition.loc[("B", "HEM")].to_dict() == {"as it is": 10, "augmented": 11}


def test_crop_and_flip_moves_image_and_mask_together():
    from cytobook.augment import crop_and_flip

    image = np.arange(10 * 12 * 3, dtype=np.uint8).reshape(10, 12, 3)
    mask = image[..., 0] % 7 == 0
    centre, centre_mask = crop_and_flip(image, mask, 6)
    np.testing.assert_array_equal(centre, image[2:8, 3:9])
    np.testing.assert_array_equal(centre_mask, mask[2:8, 3:9])
    rng = np.random.default_rng(0)
    for _ in range(20):
        cropped, cropped_mask = crop_and_flip(image, mask, 6, rng)
        assert cropped.shape == (6, 6, 3)
        np.testing.assert_array_equal(cropped_mask, cropped[..., 0] % 7 == 0)  # the mask still fits its pixels
    small, small_mask = crop_and_flip(image[:4, :5], None, 8)
    assert small.shape == (8, 8, 3) and small_mask is None
