"""Tests for cytobook.preprocess: synthetic cells, and real C-NMC cells when available.

Real-data tests read the BMPs under ``$CYTOBOOK_REAL_DATA`` (a folder holding
``cnmc_samples/C-NMC_Leukemia/...``) and skip when it is not set or not there;
the images are never copied into the project.
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pytest
from skimage.filters import threshold_otsu
from skimage.measure import label
from skimage.morphology import convex_hull_image

from cytobook import preprocess as pp
from cytobook.io import read_image

# --------------------------------------------------------------------------- #
# synthetic cells
# --------------------------------------------------------------------------- #
H, W = 120, 160
CENTRE = (100, 45)  # (x, y): off-centre, near the top right
RADIUS = 25


def disc_mask(shape=(H, W), centre=CENTRE, radius=RADIUS) -> np.ndarray:
    mask = np.zeros(shape, np.uint8)
    cv2.circle(mask, centre, radius, 1, -1)
    return mask.astype(bool)


def disc_image(shape=(H, W), centre=CENTRE, radius=RADIUS, colour=(180, 90, 200)) -> np.ndarray:
    """A textured bright disc on pure black, like a segmented C-NMC cell."""
    image = np.zeros((*shape, 3), np.uint8)
    mask = disc_mask(shape, centre, radius)
    rng = np.random.default_rng(0)
    texture = rng.integers(-20, 21, size=(*shape, 1))
    image[mask] = np.clip(np.array(colour) + texture[mask], 30, 255).astype(np.uint8)
    return image


def mask_box(mask: np.ndarray) -> tuple[int, int, int, int]:
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    return rows[0], rows[-1] + 1, cols[0], cols[-1] + 1


def centroid(mask: np.ndarray) -> np.ndarray:
    return np.argwhere(mask).mean(axis=0)


# --------------------------------------------------------------------------- #
# foreground box, crop, pad, resize
# --------------------------------------------------------------------------- #
def test_foreground_box_matches_disc():
    image = disc_image()
    assert pp.foreground_box(image) == mask_box(disc_mask())
    top, bottom, left, right = pp.foreground_box(image)
    assert (bottom - top, right - left) == (2 * RADIUS + 1, 2 * RADIUS + 1)


def test_foreground_box_threshold_ignores_faint_fringe():
    image = disc_image()
    image[5, 5] = 8  # a faint speck below the default threshold (10)
    assert pp.foreground_box(image) == mask_box(disc_mask())
    assert pp.foreground_box(image, threshold=5)[0] == 5


def test_foreground_box_all_black_is_full_frame():
    assert pp.foreground_box(np.zeros((30, 40, 3), np.uint8)) == (0, 30, 0, 40)


def test_crop_to_foreground_is_tight():
    crop = pp.crop_to_foreground(disc_image())
    assert crop.shape == (2 * RADIUS + 1, 2 * RADIUS + 1, 3)
    foreground = crop.max(2) > 10
    assert foreground[0].any() and foreground[-1].any() and foreground[:, 0].any() and foreground[:, -1].any()


def test_crop_margin_past_the_frame_is_black_and_symmetric():
    # Disc touching the top edge: the margin cannot come from the image.
    image = disc_image(centre=(80, RADIUS))
    crop = pp.crop_to_foreground(image, margin=7)
    assert crop.shape == (2 * RADIUS + 1 + 14, 2 * RADIUS + 1 + 14, 3)
    assert not crop[:7].any() and not crop[-7:].any() and not crop[:, :7].any() and not crop[:, -7:].any()
    np.testing.assert_allclose(centroid(crop.max(2) > 10), (np.array(crop.shape[:2]) - 1) / 2, atol=0.5)


def test_pad_to_square_centres_content():
    image = np.full((10, 30, 3), 200, np.uint8)
    square = pp.pad_to_square(image)
    assert square.shape == (30, 30, 3)
    assert not square[:10].any() and not square[20:].any()
    np.testing.assert_array_equal(square[10:20], image)
    tall = pp.pad_to_square(np.full((31, 10, 3), 1.0, np.float32))
    assert tall.shape == (31, 31, 3) and tall.dtype == np.float32
    # 21 columns of padding: 10 left, 11 right (odd pixel to the right).
    assert not tall[:, :10].any() and tall[:, 10].all() and tall[:, 19].all() and not tall[:, 20:].any()


def test_threshold_crop_square_is_square_and_centred():
    ellipse = np.zeros((H, W, 3), np.uint8)
    cv2.ellipse(ellipse, (110, 40), (30, 12), 0, 0, 360, (150, 120, 220), -1)  # wide, off-centre
    out = pp.threshold_crop_square(ellipse)
    assert out.shape == (61, 61, 3)
    np.testing.assert_allclose(centroid(out.max(2) > 10), (30, 30), atol=0.5)
    disc = pp.threshold_crop_square(disc_image())
    assert disc.shape == (51, 51, 3)
    np.testing.assert_allclose(centroid(disc.max(2) > 10), (25, 25), atol=0.5)


@pytest.mark.parametrize("size", [32, 51, 224])
def test_threshold_crop_square_resizes(size):
    out = pp.threshold_crop_square(disc_image(), size=size)
    assert out.shape == (size, size, 3) and out.dtype == np.uint8
    # Still centred after resizing.
    np.testing.assert_allclose(centroid(out.max(2) > 60), ((size - 1) / 2,) * 2, atol=1.0)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32, np.float64])
def test_dtype_is_preserved(dtype):
    image = disc_image()
    if dtype == np.uint16:
        image = image.astype(np.uint16) * 257
    elif dtype in (np.float32, np.float64):
        image = (image / 255.0).astype(dtype)
    out = pp.threshold_crop_square(image, size=64)
    assert out.dtype == dtype and out.shape == (64, 64, 3)
    # The default threshold follows the dtype's scale, so the box is the same.
    assert pp.foreground_box(image) == mask_box(disc_mask())
    hull = pp.otsu_hull_crop(image, size=64)
    assert hull.dtype == dtype and hull.shape == (64, 64, 3)


def test_all_black_image_is_returned_resized():
    black = np.zeros((40, 60, 3), np.uint8)
    out = pp.threshold_crop_square(black, size=32)
    assert out.shape == (32, 32, 3) and out.dtype == np.uint8 and not out.any()
    assert pp.threshold_crop_square(np.zeros((50, 50, 3), np.float32)).shape == (50, 50, 3)


def test_resize_square_interpolation():
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, (100, 100, 3), dtype=np.uint8)
    np.testing.assert_array_equal(pp.resize_square(image, 40), cv2.resize(image, (40, 40), interpolation=cv2.INTER_AREA))
    np.testing.assert_array_equal(
        pp.resize_square(image, 150), cv2.resize(image, (150, 150), interpolation=cv2.INTER_LINEAR)
    )
    same = pp.resize_square(image, 100)
    np.testing.assert_array_equal(same, image)
    assert same is not image
    with pytest.raises(ValueError, match="square"):
        pp.resize_square(image[:, :50], 40)


def test_inputs_are_not_modified():
    image = disc_image()
    before = image.copy()
    pp.threshold_crop_square(image, size=32, margin=3)
    pp.clahe_y(image)
    pp.otsu_hull_crop(image)
    np.testing.assert_array_equal(image, before)


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (np.zeros((10, 10), np.uint8), r"\(H, W, 3\)"),
        (np.zeros((10, 10, 4), np.uint8), r"\(H, W, 3\)"),
        (np.zeros((0, 10, 3), np.uint8), "empty"),
        (np.zeros((10, 10, 3), np.int32), "dtype int32"),
        (np.zeros((10, 10, 3), bool), "dtype bool"),
        ([[0, 0, 0]], "NumPy array"),
    ],
)
def test_invalid_images_raise_clear_errors(bad, message):
    for function in (pp.foreground_box, pp.crop_to_foreground, pp.pad_to_square, pp.threshold_crop_square,
                     pp.clahe_y, pp.otsu_hull_mask, pp.otsu_hull_crop):
        with pytest.raises(ValueError, match=message):
            function(bad)


def test_invalid_parameters_raise():
    image = disc_image()
    with pytest.raises(ValueError, match="size"):
        pp.threshold_crop_square(image, size=0)
    with pytest.raises(ValueError, match="margin"):
        pp.crop_to_foreground(image, margin=-1)
    with pytest.raises(ValueError, match="threshold"):
        pp.foreground_box(image, threshold=-1)
    with pytest.raises(ValueError, match="uint8"):
        pp.clahe_y(image.astype(np.float32))
    with pytest.raises(ValueError, match="clip_limit"):
        pp.clahe_y(image, clip_limit=0)
    with pytest.raises(ValueError, match="tile_grid_size"):
        pp.clahe_y(image, tile_grid_size=(0, 8))
    with pytest.raises(ValueError, match="erosion_radius"):
        pp.otsu_hull_mask(image, erosion_radius=-2)
    with pytest.raises(ValueError, match=r"\(N, H, W, 3\)"):
        pp.threshold_crop_square_batch(image, size=32)
    with pytest.raises(ValueError, match="empty"):
        pp.threshold_crop_square_batch(np.zeros((0, 10, 10, 3), np.uint8), size=32)


# --------------------------------------------------------------------------- #
# batch == per image
# --------------------------------------------------------------------------- #
def synthetic_batch(dtype=np.uint8) -> np.ndarray:
    images = [
        disc_image(),
        disc_image(centre=(20, 90), radius=15),
        disc_image(centre=(RADIUS, RADIUS)),  # touching the corner
        np.zeros((H, W, 3), np.uint8),  # all black
        disc_image(centre=(80, 60), radius=50, colour=(60, 200, 90)),
    ]
    ellipse = np.zeros((H, W, 3), np.uint8)
    cv2.ellipse(ellipse, (70, 70), (8, 40), 30, 0, 360, (150, 120, 220), -1)
    images.append(ellipse)
    batch = np.stack(images)
    return batch if dtype == np.uint8 else (batch / 255.0).astype(dtype)


@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
@pytest.mark.parametrize("margin", [0, 4])
def test_threshold_crop_square_batch_equals_per_image(dtype, margin):
    batch = np.concatenate([synthetic_batch(dtype)] * 3)  # 18 images: more than one chunk
    out = pp.threshold_crop_square_batch(batch, size=48, margin=margin)
    assert out.shape == (len(batch), 48, 48, 3) and out.dtype == dtype
    for image, result in zip(batch, out):
        np.testing.assert_array_equal(result, pp.threshold_crop_square(image, size=48, margin=margin))


def test_batch_boxes_across_chunks():
    batch = synthetic_batch()
    boxes = pp._batch_boxes(batch, 10, chunk=4)  # 6 images: a full and a partial chunk
    assert [tuple(b) for b in boxes] == [pp.foreground_box(image) for image in batch]


def test_clahe_and_hull_batches_equal_per_image():
    batch = np.concatenate([synthetic_batch()] * 3)  # 18 images: more than one 16-image chunk
    batch[7:] = batch[7:, ::-1]  # and not just repeats
    clahe = pp.clahe_y_batch(batch)
    hull = pp.otsu_hull_crop_batch(batch, size=64)
    for i, image in enumerate(batch):
        np.testing.assert_array_equal(clahe[i], pp.clahe_y(image))
        np.testing.assert_array_equal(hull[i], pp.otsu_hull_crop(image, size=64))


# --------------------------------------------------------------------------- #
# CLAHE on Y
# --------------------------------------------------------------------------- #
def low_contrast_cell() -> np.ndarray:
    """A dull, low-contrast purple cell (Y within ~20 levels) on black."""
    rng = np.random.default_rng(2)
    image = np.zeros((128, 128, 3), np.uint8)
    mask = disc_mask((128, 128), (64, 64), 50)
    yy, xx = np.mgrid[:128, :128]
    shade = (8 * np.sin(xx / 6.0) + 6 * np.cos(yy / 9.0) + rng.normal(0, 2, (128, 128)))[..., None]
    image[mask] = np.clip(np.array([120, 100, 140]) + shade[mask], 0, 255).astype(np.uint8)
    return image


def luma(image: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(image, cv2.COLOR_RGB2YUV)


def test_clahe_keeps_shape_and_dtype():
    image = low_contrast_cell()
    out = pp.clahe_y(image)
    assert out.shape == image.shape and out.dtype == np.uint8


def test_clahe_increases_contrast_of_low_contrast_cell():
    image = low_contrast_cell()
    inside = disc_mask((128, 128), (64, 64), 45)
    before = luma(image)[..., 0][inside].astype(float)
    after = luma(pp.clahe_y(image))[..., 0][inside].astype(float)
    assert after.std() > 1.5 * before.std()
    assert np.ptp(after) > np.ptp(before)


def test_clahe_keeps_black_background_black():
    image = low_contrast_cell()
    black = image.max(2) == 0
    assert black.sum() > 1000
    assert not pp.clahe_y(image)[black].any()
    # Why the mask exists: plain CLAHE lifts an all-black tile above zero.
    assert pp.clahe_y(image, background=None)[black].max() > 0


def test_clahe_leaves_faint_fringe_alone():
    image = low_contrast_cell()
    image[10:14, 10:14] = 6  # faint, below the foreground threshold
    out = pp.clahe_y(image)
    np.testing.assert_array_equal(out[10:14, 10:14], image[10:14, 10:14])
    assert pp.clahe_y(image, background=0)[10:14, 10:14].max() > 6  # plain CLAHE lifts it


def test_clahe_keeps_chroma():
    image = low_contrast_cell()
    cell = image.max(2) > 0
    before = luma(image)[..., 1:][cell].astype(int)
    after = luma(pp.clahe_y(image))[..., 1:][cell].astype(int)
    assert np.abs(after - before).max() <= 1


# --------------------------------------------------------------------------- #
# Otsu + erosion + convex hull
# --------------------------------------------------------------------------- #
def disc_with_debris() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Disc, an isolated 3x3 speck and a 2-px-wide spur attached to the disc."""
    image = disc_image()
    speck = np.zeros((H, W), bool)
    speck[100:103, 20:23] = True
    image[speck] = 250
    spur = np.zeros((H, W), bool)
    spur[44:46, 10 : CENTRE[0] - RADIUS + 3] = True  # runs left from the disc's edge
    image[spur] = 200
    return image, disc_mask(), speck, spur


def test_hull_mask_is_convex_and_contains_disc():
    image, disc, _, _ = disc_with_debris()
    mask = pp.otsu_hull_mask(image)
    assert mask.dtype == bool and mask.shape == (H, W)
    np.testing.assert_array_equal(mask, convex_hull_image(mask, offset_coordinates=False))
    # A digital disc has one-pixel tips at its four extreme points; the
    # opening (erosion + rim restore) treats them as specks. All else stays.
    assert mask[disc_mask(radius=RADIUS - 1)].all()
    assert (mask & disc).sum() >= disc.sum() - 4


def test_erosion_removes_speck_and_spur():
    image, disc, speck, spur = disc_with_debris()
    mask = pp.otsu_hull_mask(image, erosion_radius=3)
    assert not (mask & speck).any()
    assert not (mask & spur & ~disc_mask(radius=RADIUS + 3)).any()
    assert mask.sum() < 1.05 * disc.sum()
    # Without erosion the spur is part of the cell and stretches the hull.
    assert pp.otsu_hull_mask(image, erosion_radius=0)[spur].all()


def test_restore_rim_false_gives_eroded_hull():
    image = disc_image()
    inner = pp.otsu_hull_mask(image, erosion_radius=3, restore_rim=False)
    # The 7x7 OpenCV "ellipse" element is not a perfect disc: allow a pixel.
    assert inner[disc_mask(radius=RADIUS - 4)].all()
    assert not (inner & ~disc_mask(radius=RADIUS - 2)).any()


def test_otsu_hull_steps_for_figures():
    steps = pp.otsu_hull_steps(disc_with_debris()[0])
    assert list(steps) == ["otsu", "eroded", "largest", "hull"]
    assert all(step.dtype == bool and step.shape == (H, W) for step in steps.values())
    assert steps["otsu"].sum() > steps["largest"].sum() and steps["eroded"].sum() < steps["largest"].sum()


def reference_hull_mask(image: np.ndarray, radius: int = 3) -> np.ndarray:
    """The pipeline written out on the full frame, with scikit-image where possible."""
    gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    otsu = (gray > threshold_otsu(gray)).astype(np.uint8)
    element = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1,) * 2)
    labels = label(cv2.erode(otsu, element), connectivity=2)
    largest = (labels == 1 + np.argmax(np.bincount(labels.ravel())[1:])).astype(np.uint8)
    opened = cv2.dilate(largest, element) & otsu
    return convex_hull_image(opened.astype(bool), offset_coordinates=False)


@pytest.mark.parametrize("centre", [CENTRE, (RADIUS - 5, 60), (W - 3, H - 3), (80, 0)])
def test_hull_mask_matches_full_frame_reference(centre):
    # Cells cut by the frame's edge check that working in a window changes nothing.
    image, _, _, _ = disc_with_debris()
    image[disc_mask(centre=centre, radius=20)] = (90, 60, 140)
    np.testing.assert_array_equal(pp.otsu_hull_mask(image), reference_hull_mask(image))


def test_otsu_hull_crop_output():
    image, disc, speck, _ = disc_with_debris()
    out = pp.otsu_hull_crop(image)
    assert out.shape == (299, 299, 3) and out.dtype == np.uint8
    no_resize = pp.otsu_hull_crop(image, size=None)
    assert no_resize.shape == (51, 51, 3)
    # Outside the hull (the padded corners) is black; the speck is gone.
    assert not no_resize[0, 0].any() and not no_resize[-1, -1].any()
    assert (no_resize.max(2) == 250).sum() == 0
    np.testing.assert_allclose(centroid(no_resize.max(2) > 0), (25, 25), atol=0.5)


def test_otsu_hull_all_black():
    black = np.zeros((40, 40, 3), np.uint8)
    assert not pp.otsu_hull_mask(black).any()
    out = pp.otsu_hull_crop(black, size=32)
    assert out.shape == (32, 32, 3) and not out.any()


def test_tiny_cell_survives_erosion():
    image = np.zeros((50, 50, 3), np.uint8)
    image[20:23, 20:23] = 200  # thinner than the 7x7 element
    assert pp.otsu_hull_mask(image, erosion_radius=3).sum() == 9


def test_convex_hull_mask_matches_skimage():
    rng = np.random.default_rng(3)
    for _ in range(60):
        mask = np.zeros((70, 90), np.uint8)
        for _ in range(rng.integers(1, 4)):
            centre = (int(rng.integers(0, 90)), int(rng.integers(0, 70)))
            axes = (int(rng.integers(1, 25)), int(rng.integers(1, 25)))
            cv2.ellipse(mask, centre, axes, float(rng.uniform(0, 180)), 0, 360, 1, -1)
        hull = pp.convex_hull_mask(mask)
        np.testing.assert_array_equal(hull, convex_hull_image(mask.astype(bool), offset_coordinates=False))
        np.testing.assert_array_equal(pp.convex_hull_mask(hull), hull)  # idempotent


def test_convex_hull_mask_degenerate():
    assert not pp.convex_hull_mask(np.zeros((5, 5))).any()
    point = np.zeros((5, 5), bool)
    point[2, 3] = True
    np.testing.assert_array_equal(pp.convex_hull_mask(point), point)
    dots = np.zeros((9, 9), bool)
    dots[1, 1] = dots[7, 7] = True
    diagonal = np.eye(9, dtype=bool)
    diagonal[0, 0] = diagonal[8, 8] = False
    np.testing.assert_array_equal(pp.convex_hull_mask(dots), diagonal)  # the pixels on the segment
    with pytest.raises(ValueError, match="2-D"):
        pp.convex_hull_mask(np.zeros((3, 3, 3)))


# --------------------------------------------------------------------------- #
# real C-NMC cells
# --------------------------------------------------------------------------- #
CNMC = Path("cnmc_samples") / "C-NMC_Leukemia"
REAL_GLOBS = [
    "training_data/fold_0/all/*.bmp",
    "training_data/fold_0/hem/*.bmp",
    "validation_data/C-NMC_test_prelim_phase_data/*.bmp",
]


@pytest.fixture(scope="module")
def real_cells() -> dict[str, np.ndarray]:
    """The real C-NMC sample cells under ``$CYTOBOOK_REAL_DATA``, read in place."""
    root = os.environ.get("CYTOBOOK_REAL_DATA")
    if not root:
        pytest.skip("CYTOBOOK_REAL_DATA is not set (folder holding cnmc_samples/C-NMC_Leukemia)")
    base = Path(root) / CNMC
    if not base.is_dir():
        pytest.skip(f"CYTOBOOK_REAL_DATA={root}: no {CNMC} folder in it")
    paths = sorted(p for pattern in REAL_GLOBS for p in base.glob(pattern))
    if not paths:
        pytest.skip(f"no C-NMC BMPs under {base}")
    return {path.name: read_image(path) for path in paths}


def test_real_cells_are_450_rgb(real_cells):
    for name, image in real_cells.items():
        assert image.shape == (450, 450, 3) and image.dtype == np.uint8, name


def test_real_crop_keeps_foreground_and_is_square(real_cells):
    for name, image in real_cells.items():
        foreground = (image.max(2) > 0).sum()
        crop = pp.threshold_crop_square(image)
        assert crop.shape[0] == crop.shape[1] < 450, name
        assert (crop.max(2) > 0).sum() >= 0.99 * foreground, name
        assert pp.threshold_crop_square(image, size=224).shape == (224, 224, 3), name


def test_real_batch_equals_per_image(real_cells):
    batch = np.stack(list(real_cells.values()))
    out = pp.threshold_crop_square_batch(batch, size=128)
    for image, result in zip(batch, out):
        np.testing.assert_array_equal(result, pp.threshold_crop_square(image, size=128))


def test_real_hull_mask_covers_cell(real_cells):
    for name, image in real_cells.items():
        mask = pp.otsu_hull_mask(image)
        cell = image.max(2) > 0
        otsu = pp.otsu_hull_steps(image)["otsu"]
        assert (mask & cell).sum() >= 0.99 * cell.sum(), name
        assert (mask & otsu).sum() >= 0.999 * otsu.sum(), name
        assert mask.sum() <= 1.1 * cell.sum(), name  # a hull, not the frame
        np.testing.assert_array_equal(mask, convex_hull_image(mask, offset_coordinates=False), err_msg=name)
        np.testing.assert_array_equal(mask, reference_hull_mask(image), err_msg=name)
        out = pp.otsu_hull_crop(image)
        assert out.shape == (299, 299, 3) and out.dtype == np.uint8, name


def test_real_clahe_does_not_brighten_background(real_cells):
    for name, image in real_cells.items():
        out = pp.clahe_y(image)
        black = image.max(2) == 0
        assert not out[black].any(), name
        # The faint fringe (max channel <= 10) is background too, and kept as is.
        background = image.max(2) <= pp.DEFAULT_THRESHOLD
        np.testing.assert_array_equal(out[background], image[background], err_msg=name)
        assert pp.foreground_box(out) == pp.foreground_box(image), name
        cell = ~background
        assert np.abs(luma(out)[..., 1:][cell].astype(int) - luma(image)[..., 1:][cell]).max() <= 1, name


def test_load_cells_crops_each_file_with_either_reports_chain(tmp_path):
    from cytobook.io import write_image

    image = np.zeros((90, 90, 3), dtype=np.uint8)
    image[20:60, 30:50] = (120, 60, 140)
    image[58:60, 30:80] = (120, 60, 140)  # a thin thread: Otsu + erosion drop it, the threshold box keeps it
    paths = [str(tmp_path / f"cell{i}.bmp") for i in range(2)]
    for i, path in enumerate(paths):
        write_image(path, np.ascontiguousarray(np.rot90(image, i)))
    report1 = pp.load_cells(paths, 32)
    report2 = pp.load_cells(paths, 32, crop=pp.otsu_hull_crop, augmentations=["none", "rotate_270"])
    assert report1.shape == report2.shape == (2, 32, 32, 3) and report1.dtype == np.uint8
    assert np.array_equal(report1[0], pp.threshold_crop_square(image, size=32))
    assert np.array_equal(report2[0], pp.otsu_hull_crop(image, size=32))
    assert np.array_equal(report2[1], np.rot90(pp.otsu_hull_crop(np.rot90(image), size=32), 3))
    assert not np.array_equal(report1[0], report2[0])
    with pytest.raises(ValueError, match="1 augmentations for 2 paths"):
        pp.load_cells(paths, 32, augmentations=["none"])


def test_load_cell_table_applies_each_rows_augmentation_and_names_missing_columns(tmp_path):
    import pandas as pd

    image = np.zeros((40, 40, 3), np.uint8)
    image[10:30, 12:28] = (200, 120, 160)
    cv2.imwrite(str(tmp_path / "cell.png"), image[..., ::-1])
    rows = pd.DataFrame({"path": [str(tmp_path / "cell.png")] * 2, "label": [1, 0], "augmentation": ["none", "flip_horizontal"]})
    images, labels = pp.load_cell_table(rows, 16, crop=pp.otsu_hull_crop)
    assert images.shape == (2, 16, 16, 3) and labels.tolist() == [1.0, 0.0]
    np.testing.assert_array_equal(images[1], images[0][:, ::-1])
    with pytest.raises(ValueError, match=r"missing \['label'\]"):
        pp.load_cell_table(rows.drop(columns="label"), 16)
