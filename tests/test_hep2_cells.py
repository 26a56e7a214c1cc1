"""Tests for cytobook.hep2_cells: drawn discs with known cells, generated IIF fields, and real I3A cells when available.

Cellpose is never needed: only its absent path is tested (the import is made to fail).
"""

from __future__ import annotations

import sys

import cv2
import numpy as np
import pandas as pd
import pytest

from cytobook import hep2_cells as hc
from cytobook.datasets.hep2_drawing import render_field

# --------------------------------------------------------------------------- #
# drawn fields: bright discs on a dark, noisy slide, signal in green
# --------------------------------------------------------------------------- #
RADIUS = 12
# Two touching discs (centres 2r apart, along x), and two isolated ones.
CENTRES = [(40, 40), (40 + 2 * RADIUS, 40), (100, 100), (30, 105)]


def disc_field(centres=CENTRES, radius=RADIUS, size=(140, 140), levels=None, seed=0) -> np.ndarray:
    """RGB ``uint8`` field: textured discs of green level ~``levels`` (default 150) on a background of ~10."""
    rng = np.random.default_rng(seed)
    green = rng.normal(10.0, 2.0, size)
    for index, centre in enumerate(centres):
        mask = np.zeros(size, np.uint8)
        cv2.circle(mask, centre, radius, 1, -1)
        level = 150.0 if levels is None else levels[index]
        green[mask.astype(bool)] = rng.normal(level, 12.0, int(mask.sum()))
    field = np.zeros((*size, 3), np.uint8)
    field[..., 1] = np.clip(np.rint(green), 0, 255)
    return field


def label_at(labels: np.ndarray, centre: tuple[int, int]) -> int:
    x, y = centre
    return int(labels[y, x])


# --------------------------------------------------------------------------- #
# contrast enhancement
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize("method", hc.METHODS)
def test_enhance_gives_uint8_planes_of_the_input_shape(method):
    field = disc_field()
    out = hc.enhance(field, method)
    assert out.dtype == np.uint8 and out.shape == field.shape[:2]
    gray = hc.enhance(field[..., 1], method)
    assert gray.shape == field.shape[:2]
    np.testing.assert_array_equal(gray, out)  # RGB -> its green channel
    if method in ("otsu", "eroded otsu"):
        assert set(np.unique(out)) <= {0, 255}


def test_enhancement_steps_follow_the_report_and_erosion_shrinks_otsu():
    steps = hc.enhancement_steps(disc_field())
    assert list(steps) == list(hc.METHODS)
    assert (steps["eroded otsu"] > 0).sum() < (steps["otsu"] > 0).sum()
    assert not (steps["eroded otsu"] & ~steps["otsu"]).any()
    assert steps["stretch"].max() == 255 and steps["equalise"].max() == 255
    with pytest.raises(ValueError, match="unknown method"):
        hc.enhance(disc_field(), "sharpen")
    with pytest.raises(ValueError, match=r"\(H, W, 3\)"):
        hc.enhance(np.zeros((5, 5, 4), np.uint8))


def test_green_channel_scales_other_dtypes():
    field = disc_field()
    np.testing.assert_array_equal(hc.green_channel(field.astype(np.float32) / 255), field[..., 1])
    np.testing.assert_array_equal(hc.green_channel(field.astype(np.uint16) * 257), field[..., 1])
    assert hc.enhance(np.full((8, 8), 7, np.uint8), "otsu").max() == 0  # a flat image has no foreground


# --------------------------------------------------------------------------- #
# classical segmentation
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize("threshold", ["otsu", "adaptive"])
def test_segment_cells_finds_each_disc_and_splits_the_touching_pair(threshold):
    labels = hc.segment_cells(disc_field(), nucleus_diameter=2 * RADIUS, threshold=threshold)
    assert labels.dtype == np.int32 and labels.shape == (140, 140)
    found = [label_at(labels, c) for c in CENTRES]
    assert all(found) and len(set(found)) == 4  # the touching pair gets two labels
    assert labels.max() == 4
    area = np.pi * RADIUS**2
    for value in found:
        assert 0.7 * area < (labels == value).sum() < 1.3 * area


def test_without_the_watershed_distance_the_pair_is_one_object():
    # The pair is one connected object: a min_distance over the whole pair leaves one seed for it.
    labels = hc.segment_cells(disc_field(), nucleus_diameter=2 * RADIUS, min_distance=4 * RADIUS)
    assert label_at(labels, CENTRES[0]) == label_at(labels, CENTRES[1]) != 0


def test_adaptive_keeps_a_dim_cell_beside_bright_ones():
    field = disc_field(levels=[220, 220, 220, 40])
    otsu = hc.segment_cells(field, nucleus_diameter=2 * RADIUS, threshold="otsu")
    adaptive = hc.segment_cells(field, nucleus_diameter=2 * RADIUS, threshold="adaptive")
    assert label_at(adaptive, CENTRES[3]) != 0
    assert (adaptive == label_at(adaptive, CENTRES[3])).sum() > 0.7 * np.pi * RADIUS**2
    assert (otsu > 0).sum() <= (adaptive > 0).sum()


def test_small_specks_and_empty_fields_give_no_cells():
    field = disc_field(centres=[(70, 70)])
    field[10:12, 10:12, 1] = 200  # a 4-pixel speck
    labels = hc.segment_cells(field, nucleus_diameter=2 * RADIUS)
    assert labels.max() == 1 and labels[10, 10] == 0
    assert not hc.segment_cells(np.zeros((50, 50), np.uint8), nucleus_diameter=10).any()
    with pytest.raises(ValueError, match="threshold"):
        hc.segment_cells(field, nucleus_diameter=24, threshold="triangle")
    with pytest.raises(ValueError, match="nucleus_diameter"):
        hc.segment_cells(field, nucleus_diameter=0)


def test_segment_cells_on_a_generated_field_finds_about_the_drawn_cells():
    # render_field draws about (size / (3.2 radius))**2 cells, some cut by the frame and a few faint.
    radius, size = 10.0, 192
    field = render_field(np.random.default_rng(3), "homogeneous", size, radius)
    labels = hc.segment_cells(field, nucleus_diameter=2 * radius)
    expected = (size / (3.2 * radius)) ** 2
    assert 0.5 * expected < labels.max() < 1.6 * expected
    areas = np.bincount(labels.ravel())[1:]
    assert np.median(areas) == pytest.approx(np.pi * radius**2, rel=0.5)


def test_segmentation_steps_are_uint8_images():
    steps = hc.segmentation_steps(disc_field(), nucleus_diameter=2 * RADIUS)
    assert list(steps) == ["normalised", "smoothed", "threshold", "filled", "distance", "labels"]
    assert all(step.dtype == np.uint8 for step in steps.values())
    assert steps["labels"].shape == (140, 140, 3)


# --------------------------------------------------------------------------- #
# Cellpose: only the absent path
# --------------------------------------------------------------------------- #
@pytest.fixture
def no_cellpose(monkeypatch):
    monkeypatch.setitem(sys.modules, "cellpose", None)  # `import cellpose` now raises ImportError


def test_cellpose_absent_raises_a_clear_import_error(no_cellpose):
    with pytest.raises(ImportError, match="cellpose") as error:
        hc.segment_cells_cellpose(disc_field())
    assert "pip install cellpose" in str(error.value) and "segment_cells(" in str(error.value)
    with pytest.raises(ImportError, match="segment_nuclei|segment_cells_cellpose"):
        hc.segment_nuclei_cellpose(disc_field())
    assert not hc.cellpose_available()


def test_backend_segmenter_is_classical_unless_cellpose_is_asked_and_importable(no_cellpose):
    classical = hc.backend_segmenter(diameter=2 * RADIUS)
    assert classical.name == "classical" and classical(disc_field()).max() == 4
    with pytest.warns(UserWarning, match="Falling back"):
        assert hc.backend_segmenter("cellpose", diameter=2 * RADIUS).name == "classical"
    with pytest.raises(ImportError, match="pip install cellpose"):
        hc.backend_segmenter("cellpose", diameter=2 * RADIUS, strict=True)


def test_report_diameters_and_the_two_channel_rule():
    assert (hc.CELL_DIAMETER, hc.NUCLEUS_DIAMETER, hc.TWO_CHANNEL_DIAMETER, hc.LARGE_NUCLEUS) == (75, 60, 145, 90)
    assert hc.two_channel_diameter(95.0, 70.0) == 145.0
    assert hc.two_channel_diameter(56.0, 70.0) == pytest.approx(145.0 * 0.8)
    nuclei = np.zeros((50, 50), np.int32)
    nuclei[:10, :10] = 1
    nuclei[20:40, 20:40] = 3
    assert hc.mean_nucleus_size(nuclei) == pytest.approx(np.mean(np.sqrt(4 * np.array([100, 400]) / np.pi)))
    image = hc.two_channel_image(disc_field(size=(50, 50), centres=[(25, 25)]), nuclei)
    assert image.dtype == np.uint8 and not image[..., 0].any()
    assert not image[..., 2][nuclei == 0].any() and not image[..., 1][nuclei > 0].any()


# --------------------------------------------------------------------------- #
# crops and filtering
# --------------------------------------------------------------------------- #
def test_cell_crops_masks_each_cell_and_measures_it():
    field = disc_field()
    labels = hc.segment_cells(field, nucleus_diameter=2 * RADIUS)
    table = hc.cell_crops(field, labels, label_name="Homogeneous")
    assert len(table) == 4 and (table["label_name"] == "Homogeneous").all()
    for row in table.itertuples():
        mask = labels[row.top : row.top + row.height, row.left : row.left + row.width] == row.cell
        assert row.crop.shape == mask.shape and row.pixels == mask.sum()
        assert not row.crop[~mask].any() and (row.crop[mask] > 0).all()
        assert row.black_share == pytest.approx(1 - mask.mean(), abs=0.02)  # a disc fills ~pi/4 of its box


def planted_table(seed=0) -> pd.DataFrame:
    """Two classes of 40 ordinary cells, with planted outliers in class "A"."""
    rng = np.random.default_rng(seed)
    rows = [{"label_name": name, "pixels": int(rng.normal(mean, 0.1 * mean)), "black_share": rng.uniform(0.2, 0.3)}
            for name, mean in (("A", 500), ("B", 2000)) for _ in range(40)]
    planted = pd.DataFrame([
        {"label_name": "A", "pixels": 40, "black_share": 0.25},     # a fragment
        {"label_name": "A", "pixels": 3000, "black_share": 0.25},   # merged cells
        {"label_name": "A", "pixels": 500, "black_share": 0.95},    # mostly black: empty slide
    ], index=["small", "large", "black"])
    return pd.concat([pd.DataFrame(rows), planted])


def test_filter_cells_drops_the_planted_outliers_within_each_class():
    table = planted_table()
    kept = hc.filter_cells(table)
    assert not {"small", "large", "black"} & set(kept.index)
    # Class "B" (larger cells) is filtered on its own band: its ordinary cells are not "too large".
    assert (kept["label_name"] == "B").sum() >= 0.75 * 40
    bands = hc.filter_bands(table)
    assert list(bands.index) == ["A", "B"] and bands.loc["A", "pixels_high"] < bands.loc["B", "pixels_low"]
    # One band for everything: class B's cells become the "too large" end.
    pooled = hc.filter_cells(table, by=None)
    assert (pooled["label_name"] == "B").sum() < (kept["label_name"] == "B").sum()
    with pytest.raises(ValueError, match="lacks"):
        hc.filter_cells(table.drop(columns="black_share"))


# --------------------------------------------------------------------------- #
# squaring, three channels
# --------------------------------------------------------------------------- #
def test_square_and_resize_keeps_the_aspect_and_gives_96():
    crop = np.zeros((30, 60), np.uint8)
    crop[:, :] = 200  # a full 30 x 60 rectangle: black bars above and below
    out = hc.square_and_resize(crop)
    assert out.shape == (96, 96) and out.dtype == np.uint8
    rows = np.flatnonzero(out.max(axis=1) > 100)
    assert rows.size == pytest.approx(48, abs=2) and (rows[0] + rows[-1]) / 2 == pytest.approx(47.5, abs=1)
    assert (out[:, :] > 100).any(axis=0).all()  # full width
    rgb = hc.square_and_resize(np.dstack([crop] * 3), 32)
    assert rgb.shape == (32, 32, 3)


def test_to_three_channels_copies_the_green_channel():
    gray = np.arange(12, dtype=np.uint8).reshape(3, 4)
    three = hc.to_three_channels(gray)
    assert three.shape == (3, 4, 3) and all((three[..., c] == gray).all() for c in range(3))
    rgb = np.stack([np.zeros_like(gray), gray, np.full_like(gray, 9)], axis=-1)
    np.testing.assert_array_equal(hc.to_three_channels(rgb), three)
    assert hc.to_three_channels(np.stack([gray, gray])).shape == (2, 3, 4, 3)


# --------------------------------------------------------------------------- #
# oversampling
# --------------------------------------------------------------------------- #
def test_oversample_minorities_reaches_the_target_only_for_small_classes():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(19, 8, 8), dtype=np.uint8)
    labels = np.array(["big"] * 12 + ["mid"] * 5 + ["tiny"] * 2)
    out_images, out_labels = hc.oversample_minorities(images, labels, np.random.default_rng(1))
    assert dict(zip(*np.unique(out_labels, return_counts=True))) == {"big": 12, "mid": 12, "tiny": 12}
    np.testing.assert_array_equal(out_images[:19], images)  # originals first, untouched
    np.testing.assert_array_equal(out_labels[:19], labels)
    assert out_images.shape == (36, 8, 8)
    # Each copy is a flip or rotation of an image of its own class; "tiny" has 2 x 7 = 14 distinct ones for 10.
    symmetries = {cls: {np.ascontiguousarray(t).tobytes() for i in np.flatnonzero(labels == cls)
                        for t in (np.rot90(images[i], k) for k in range(4))}
                  | {np.ascontiguousarray(t).tobytes() for i in np.flatnonzero(labels == cls)
                     for t in (np.rot90(images[i].T, k) for k in range(4))} for cls in ("mid", "tiny")}
    copies = out_images[19:]
    assert all(c.tobytes() in symmetries[l] for c, l in zip(copies, out_labels[19:]))
    tiny = [c.tobytes() for c, l in zip(copies, out_labels[19:]) if l == "tiny"]
    assert len(set(tiny)) == 10
    # An explicit target leaves classes at or above it alone; RGB works too.
    rgb = np.repeat(images[..., None], 3, axis=-1)
    _, few = hc.oversample_minorities(rgb, labels, np.random.default_rng(1), target=4)
    assert dict(zip(*np.unique(few, return_counts=True))) == {"big": 12, "mid": 5, "tiny": 4}
    with pytest.raises(ValueError, match="square"):
        hc.oversample_minorities(images[:, :, :4], labels, rng)


# --------------------------------------------------------------------------- #
# real ICPR 2014 (I3A) cells
# --------------------------------------------------------------------------- #
def test_real_i3a_cells_are_one_main_object(real_data):
    folder = real_data / "hep2_icpr2014" / "training"
    paths = sorted(folder.glob("*.png"))[::150]  # 20 of the 3000, all classes
    if not paths:
        pytest.skip(f"no I3A cells under {folder}")
    good = 0
    for path in paths:
        cell = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        assert cell.shape == (78, 78)
        labels = hc.segment_cells(cell, nucleus_diameter=50)
        areas = np.bincount(labels.ravel())[1:]
        if not areas.any():
            continue
        ys, xs = np.nonzero(labels == 1 + int(np.argmax(areas)))
        # The centred cell is the largest object, near the centre, and most of what was found
        # (parts of neighbours are cut at the edges).
        good += areas.max() >= 0.6 * areas.sum() and abs(ys.mean() - 38.5) < 15 and abs(xs.mean() - 38.5) < 15
    assert good >= 0.9 * len(paths), f"{good} of {len(paths)}"


# --------------------------------------------------------------------------- #
# cells of many fields, their split, fresh symmetries
# --------------------------------------------------------------------------- #
def _fields_table(tmp_path, count=4, classes=("a", "b")) -> pd.DataFrame:
    rows = []
    for index in range(count):
        path = tmp_path / f"field{index}.png"
        cv2.imwrite(str(path), disc_field(seed=index)[..., ::-1])
        rows.append({"path": str(path), "image_id": path.stem, "label": index % len(classes),
                     "label_name": classes[index % len(classes)], "source": "patterns"})
    return pd.DataFrame(rows)


def test_field_cells_crops_every_field_and_keeps_its_columns(tmp_path):
    fields = _fields_table(tmp_path)
    cells = hc.field_cells(fields, nucleus_diameter=2 * RADIUS)
    assert cells.groupby("field_id").size().tolist() == [len(CENTRES)] * len(fields)
    assert set(cells["label_name"]) == {"a", "b"} and (cells["path"] == fields.loc[cells["field_id"], "path"].to_numpy()).all()
    capped = hc.field_cells(fields, nucleus_diameter=2 * RADIUS, cells_per_field=2, seed=1)
    assert capped.groupby("field_id").size().tolist() == [2] * len(fields)


def test_field_cells_names_a_field_without_cells(tmp_path):
    fields = _fields_table(tmp_path, count=1)
    cv2.imwrite(fields.loc[0, "path"], np.zeros((60, 60, 3), np.uint8))
    with pytest.raises(ValueError, match="field0.png: no cell found"):
        hc.field_cells(fields, nucleus_diameter=2 * RADIUS)


def test_split_by_field_never_puts_one_field_on_both_sides():
    cells = pd.DataFrame({"field_id": np.repeat([0, 1, 2, 3, 4, 5, 6], 5),
                          "label_name": np.repeat(["a", "a", "a", "b", "b", "b", "c"], 5)})
    split = hc.split_by_field(cells, validation=0.3, seed=0)
    sides = split.groupby(cells["field_id"]).nunique()
    assert (sides[:6] == 1).all()  # classes a and b have several fields: whole fields move
    for name in ("a", "b"):
        held = cells.loc[split == "val", "field_id"][cells["label_name"] == name].nunique()
        assert held == 1  # round(0.3 * 3) = 1, never all three
    one_field = split[cells["label_name"] == "c"]
    assert set(one_field) == {"train", "val"}  # a single field is split by cell
    with pytest.raises(ValueError, match="validation"):
        hc.split_by_field(cells, validation=1.0)


def test_random_symmetries_are_the_square_s_symmetries_and_vary():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, (64, 6, 6, 3)).astype(np.uint8)
    out = hc.random_symmetries(images, np.random.default_rng(1))
    assert out.shape == images.shape and out.dtype == images.dtype
    for original, moved in zip(images, out):
        candidates = [np.rot90(np.flip(original, 1) if flip else original, k) for flip in (0, 1) for k in range(4)]
        assert any(np.array_equal(moved, c) for c in candidates)
    changed = np.mean([not np.array_equal(a, b) for a, b in zip(images, out)])
    assert 0.6 < changed < 1.0  # 7 of 8 symmetries move a random image
    with pytest.raises(ValueError, match="squares"):
        hc.random_symmetries(images[:, :5], rng)


def test_stretch_cell_spreads_the_cell_and_keeps_the_background_black():
    crop = np.zeros((10, 10), np.uint8)
    crop[2:8, 2:8] = np.linspace(40, 60, 36).reshape(6, 6).astype(np.uint8)
    out = hc.stretch_cell(crop)
    assert out.dtype == np.uint8 and (out[crop == 0] == 0).all()
    assert out[crop > 0].min() == 1 and out[crop > 0].max() == 255
    assert np.all(np.diff(out[2:8, 2:8].ravel().astype(int)) >= 0)  # order kept
    flat = np.where(crop > 0, 50, 0).astype(np.uint8)
    np.testing.assert_array_equal(hc.stretch_cell(flat), flat)
    with pytest.raises(ValueError, match="uint8"):
        hc.stretch_cell(crop.astype(float))


def test_read_cells_gives_the_network_input_and_names_a_damaged_file(tmp_path):
    paths = []
    for index, shape in enumerate(((78, 78), (60, 90))):
        path = tmp_path / f"{index:05d}.png"
        cv2.imwrite(str(path), np.full(shape, 100 + index, np.uint8))
        paths.append(path)
    cells = hc.read_cells(paths, 40)
    assert cells.shape == (2, 40, 40, 3) and cells.dtype == np.uint8
    assert (cells[0] == 100).all() and (cells[1, 20, 20] == 101).all() and (cells[1, 0, 20] == 0).all()  # black bars
    broken = tmp_path / "00002.png"
    broken.write_bytes(b"not a png")
    with pytest.raises(Exception, match="00002.png"):
        hc.read_cells([broken], 40)
    with pytest.raises(ValueError, match="no cell"):
        hc.read_cells([], 40)


def test_level_fields_takes_out_the_exposure_and_keeps_brightness_within_a_field():
    def disc(level):
        crop = np.zeros((9, 9), np.uint8)
        crop[2:7, 2:7] = level
        return crop

    # Field 1 exposed twice as long as field 0; each has one cell three times as bright as its others.
    levels = {0: [20, 20, 20, 60], 1: [40, 40, 40, 120]}
    table = pd.DataFrame([{"field_id": field, "crop": disc(level)} for field, values in levels.items() for level in values])
    levelled = hc.level_fields(table)
    assert levelled["brightness"].tolist() == [40, 40, 40, 120] * 2  # both fields at the median cell of all
    assert table["crop"][0].max() == 20, "the input is not modified"
    assert hc.cell_brightness(np.zeros((3, 3), np.uint8)) == 0.0
    with pytest.raises(ValueError, match=r"needs the columns \['field_id'\]"):
        hc.level_fields(table.drop(columns="field_id"))
    dark = pd.DataFrame([{"field_id": 7, "crop": np.zeros((3, 3), np.uint8)}])
    with pytest.raises(ValueError, match=r"fields \[7\]: every cell is black"):
        hc.level_fields(dark)
