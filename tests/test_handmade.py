"""Tests for cytobook.handmade: drawn shapes of known geometry, hand-computed colour ratios, real cells.

Real-data tests read Zheng et al.'s (2018) expert-segmented white cells and
the PBC lymphocytes under ``$CYTOBOOK_REAL_DATA`` and skip when it is not set
or the folders are absent; the images are never copied into the project.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import matplotlib
import numpy as np
import pandas as pd
import pytest
from skimage.measure import perimeter_crofton
from skimage.morphology import convex_hull_image

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from cytobook import handmade as hm  # noqa: E402
from cytobook.io import ImageReadError, read_image  # noqa: E402

SIDE = 224
BACKGROUND = (238, 226, 224)  # pale pinkish smear background
NUCLEUS = (86, 44, 132)  # dark purple


def draw(mask: np.ndarray, colour=NUCLEUS, background=BACKGROUND, noise: int = 6, seed: int = 0) -> np.ndarray:
    """A ``uint8`` image: ``colour`` where ``mask``, ``background`` elsewhere, plus mild texture."""
    image = np.empty((*mask.shape, 3), np.uint8)
    image[:] = background
    image[mask] = colour
    rng = np.random.default_rng(seed)
    return np.clip(image.astype(int) + rng.integers(-noise, noise + 1, image.shape), 0, 255).astype(np.uint8)


def disc(radius: int = 45, centre=(SIDE // 2, SIDE // 2)) -> np.ndarray:
    mask = np.zeros((SIDE, SIDE), np.uint8)
    cv2.circle(mask, centre, radius, 1, -1)
    return mask.astype(bool)


def ellipse(axes=(60, 30), angle: float = 30.0) -> np.ndarray:
    mask = np.zeros((SIDE, SIDE), np.uint8)
    cv2.ellipse(mask, (SIDE // 2, SIDE // 2), axes, angle, 0, 360, 1, -1)
    return mask.astype(bool)


def crescent() -> np.ndarray:
    """A thick "C": a disc of radius 55 minus a disc of radius 45 shifted 35 px right."""
    return disc(55) & ~disc(45, (SIDE // 2 + 35, SIDE // 2))


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2.0 * np.count_nonzero(a & b) / (np.count_nonzero(a) + np.count_nonzero(b))


# --------------------------------------------------------------------------- #
# segmentation and shape on drawn shapes
# --------------------------------------------------------------------------- #
def test_feature_names_are_fixed_and_match_the_vector():
    assert len(hm.FEATURE_NAMES) == 52 == len(set(hm.FEATURE_NAMES))
    assert hm.FEATURE_NAMES[:4] == ("solidity", "convexity", "circularity", "nucleus_area")
    assert len(hm.CHANNEL_NAMES) == 12 and "ycrcb_cb" in hm.CHANNEL_NAMES and "lab_a" in hm.CHANNEL_NAMES
    assert "hsv_h_mean_nucleus" in hm.FEATURE_NAMES and "rgb_r_std_roc" in hm.FEATURE_NAMES
    vector = hm.handmade_features(draw(crescent()))
    assert vector.shape == (len(hm.FEATURE_NAMES),) and vector.dtype == np.float64
    assert np.isfinite(vector).all()


def test_disc_is_round_solid_and_convex():
    mask = disc(45)
    seg = hm.segment_nucleus(draw(mask))
    assert not seg.empty
    assert dice(seg.nucleus, mask) > 0.99
    features = hm.shape_features(seg)
    assert features["circularity"] == pytest.approx(1.0, abs=0.03)
    assert features["solidity"] == pytest.approx(1.0, abs=0.01)
    assert features["convexity"] == pytest.approx(1.0, abs=0.01)
    assert features["nucleus_area"] == pytest.approx(mask.mean(), rel=0.02)


def test_disc_off_centre_and_largest_component_wins_over_a_speck():
    image = draw(disc(12, (40, 40)) | disc(40, (150, 140)))
    seg = hm.segment_nucleus(image)
    assert dice(seg.nucleus, disc(40, (150, 140))) > 0.99
    # "central" picks the component nearest the centre, here the big one too.
    central = hm.segment_nucleus(image, component="central")
    assert dice(central.nucleus, disc(40, (150, 140))) > 0.99


def test_central_component_differs_from_largest_when_asked():
    big, small_centre = disc(50, (60, 60)), disc(15, (SIDE // 2 + 2, SIDE // 2 + 2))
    image = draw(big | small_centre)
    assert dice(hm.segment_nucleus(image).nucleus, big) > 0.99
    assert dice(hm.segment_nucleus(image, component="central").nucleus, small_centre) > 0.95


def test_ellipse_area_and_circularity_match_geometry():
    mask = ellipse((60, 30), 30.0)
    seg = hm.segment_nucleus(draw(mask))
    features = hm.shape_features(seg)
    assert features["nucleus_area"] == pytest.approx(mask.mean(), rel=0.01)
    # cv2.ellipse fills every pixel whose centre is within about half a pixel
    # of the outline: the drawn shape has semi-axes a + 1/2 and b + 1/2.
    a, b = 60.5, 30.5
    assert features["nucleus_area"] == pytest.approx(np.pi * a * b / SIDE**2, rel=0.01)
    h = ((a - b) / (a + b)) ** 2  # Ramanujan's perimeter
    perimeter = np.pi * (a + b) * (1 + 3 * h / (10 + np.sqrt(4 - 3 * h)))
    assert features["circularity"] == pytest.approx(perimeter**2 / (4 * np.pi * np.pi * a * b), abs=0.03)
    assert features["solidity"] == pytest.approx(1.0, abs=0.01)
    assert features["convexity"] == pytest.approx(1.0, abs=0.01)


def test_crescent_has_low_solidity_and_convexity_and_a_roc_region():
    mask = crescent()
    seg = hm.segment_nucleus(draw(mask))
    assert dice(seg.nucleus, mask) > 0.98
    features = hm.shape_features(seg)
    # Hull through pixel centres, as convex_hull_mask draws it.
    hull = convex_hull_image(mask, offset_coordinates=False)
    expected = np.count_nonzero(mask) / np.count_nonzero(hull)
    assert expected < 0.7
    assert features["solidity"] == pytest.approx(expected, abs=0.03)
    assert features["convexity"] == pytest.approx(perimeter_crofton(hull, 4) / perimeter_crofton(mask, 4), abs=0.02)
    assert features["convexity"] < 0.9
    assert features["circularity"] > 2.0
    # The ROC region is the bite of the "C": hull minus nucleus, disjoint from it.
    assert seg.roc.any() and not (seg.roc & seg.nucleus).any()
    assert np.array_equal(seg.roc | seg.nucleus, seg.hull)
    assert np.count_nonzero(seg.hull) == pytest.approx(np.count_nonzero(seg.nucleus) / features["solidity"])


def test_holes_are_filled_and_specks_removed():
    mask = disc(45)
    holed = mask & ~disc(10)
    image = draw(holed)
    image[5:7, 5:7] = NUCLEUS  # a 2 x 2 speck
    seg = hm.segment_nucleus(image)
    assert dice(seg.nucleus, mask) > 0.99
    assert not seg.nucleus[:20, :20].any()


def test_segmentation_is_frozen_and_validates():
    seg = hm.segment_nucleus(draw(disc()))
    with pytest.raises(ValueError):
        seg.nucleus[0, 0] = True
    with pytest.raises(AttributeError):
        seg.nucleus = seg.hull  # type: ignore[misc]
    with pytest.raises(ValueError, match="shape"):
        hm.NucleusSegmentation(np.zeros((4, 4), bool), np.zeros((4, 5), bool), np.zeros((4, 4), bool))
    with pytest.raises(ValueError, match="RGB"):
        hm.segment_nucleus(np.zeros((10, 10)))
    with pytest.raises(ValueError, match="dtype"):
        hm.segment_nucleus(np.zeros((10, 10, 3), np.int32))
    with pytest.raises(ValueError, match="opening_radius"):
        hm.segment_nucleus(draw(disc()), opening_radius=-1)
    with pytest.raises(ValueError, match="component"):
        hm.segment_nucleus(draw(disc()), component="nearest")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="does not match"):
        hm.colour_ratio_features(np.zeros((8, 8, 3), np.uint8), seg)


def test_input_dtypes_give_the_same_features():
    image = draw(crescent())
    reference = hm.handmade_features(image)
    np.testing.assert_allclose(hm.handmade_features(image.astype(np.float32) / 255), reference, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(hm.handmade_features(image.astype(np.uint16) * 257), reference, rtol=1e-5, atol=1e-6)
    before = image.copy()
    hm.handmade_features(image)
    assert np.array_equal(image, before)


# --------------------------------------------------------------------------- #
# colour ratios on constructed colours
# --------------------------------------------------------------------------- #
def two_colour_case(nucleus_rgb, roc_rgb):
    """Image whose nucleus (a "C") has one colour and whose ROC region another; its segmentation."""
    seg = hm.NucleusSegmentation.from_nucleus(crescent())
    image = np.zeros((SIDE, SIDE, 3), np.float64)
    image[seg.nucleus] = nucleus_rgb
    image[seg.roc] = roc_rgb
    n_nucleus, n_roc = np.count_nonzero(seg.nucleus), np.count_nonzero(seg.roc)
    return image, seg, n_nucleus / (n_nucleus + n_roc)


def test_colour_ratios_by_hand():
    # R: nucleus 0.6, ROC 0.2; G: equal (constant over the hull); B: nucleus 0.5, ROC 0.
    image, seg, p = two_colour_case((0.6, 0.4, 0.5), (0.2, 0.4, 0.0))
    features = hm.colour_ratio_features(image, seg)
    assert list(features) == list(hm.COLOUR_FEATURE_NAMES)
    hull_r = p * 0.6 + (1 - p) * 0.2
    assert features["rgb_r_mean_nucleus"] == pytest.approx(0.6 / hull_r, rel=1e-5)
    assert features["rgb_r_mean_roc"] == pytest.approx(0.2 / hull_r, rel=1e-5)
    # Each region is uniform, the hull is not: standard deviation ratios are 0.
    assert features["rgb_r_std_nucleus"] == pytest.approx(0.0, abs=1e-6)
    assert features["rgb_r_std_roc"] == pytest.approx(0.0, abs=1e-6)
    # B is 0 over the ROC: the nucleus mean is exactly 1 / p times the hull mean.
    assert features["rgb_b_mean_nucleus"] == pytest.approx(1 / p, rel=1e-5)
    assert features["rgb_b_mean_roc"] == 0.0
    # G is constant over the hull: 0 / 0 standard deviations are taken as 1.
    for ratio in ("mean_nucleus", "std_nucleus", "mean_roc", "std_roc"):
        assert features[f"rgb_g_{ratio}"] == pytest.approx(1.0)
    assert all(np.isfinite(value) for value in features.values())


def test_nucleus_twice_the_hull_mean():
    # A "U": a 20 x 40 rectangle with a 16 x 25 notch: nucleus 400 px, ROC (the notch) 400 px.
    nucleus = np.zeros((40, 60), bool)
    nucleus[10:30, 10:50] = True
    nucleus[12:28, 25:50] = False
    seg = hm.NucleusSegmentation.from_nucleus(nucleus)
    assert np.count_nonzero(seg.roc) == 400 and np.count_nonzero(seg.hull) == 800
    image = np.zeros((40, 60, 3), np.uint8)
    image[seg.nucleus] = (200, 100, 150)
    image[seg.roc] = (0, 100, 50)
    features = hm.colour_ratio_features(image, seg)
    # R: hull mean 100, nucleus 200 -> 2, ROC 0 -> 0.
    assert features["rgb_r_mean_nucleus"] == pytest.approx(2.0)
    assert features["rgb_r_mean_roc"] == 0.0
    # B: hull mean 100 -> 1.5 and 0.5.
    assert features["rgb_b_mean_nucleus"] == pytest.approx(1.5)
    assert features["rgb_b_mean_roc"] == pytest.approx(0.5)
    # Hull standard deviation of a 50/50 two-valued region is half the gap.
    assert features["rgb_r_std_nucleus"] == 0.0 and features["rgb_g_mean_nucleus"] == pytest.approx(1.0)


def test_hue_ratios_do_not_wrap_at_red():
    # Hues 10 and 350 degrees, 20 degrees apart across OpenCV's cut at red.
    image, seg, p = two_colour_case((1.0, 1 / 6, 0.0), (1.0, 0.0, 1 / 6))
    features = hm.colour_ratio_features(image, seg)
    nucleus_hue, roc_hue = (10 - hm.HUE_ORIGIN) % 360, (350 - hm.HUE_ORIGIN) % 360
    hull_hue = p * nucleus_hue + (1 - p) * roc_hue
    assert features["hsv_h_mean_nucleus"] == pytest.approx(nucleus_hue / hull_hue, rel=1e-4)
    assert features["hsv_h_mean_roc"] == pytest.approx(roc_hue / hull_hue, rel=1e-4)
    assert 0.9 < features["hsv_h_mean_nucleus"] < 1.1  # unwrapped, 10 -> 0.03 and 350 -> 1.0 would not be
    # LAB a, b shifted by +128, so ratios stay positive for these negative-b colours.
    assert features["lab_b_mean_nucleus"] > 0 and features["lab_b_mean_roc"] > 0


def test_convex_nucleus_has_nan_roc_ratios_only():
    seg = hm.NucleusSegmentation.from_nucleus(disc(40))
    assert not seg.roc.any()
    features = hm.colour_ratio_features(draw(disc(40)), seg)
    for name, value in features.items():
        assert np.isnan(value) == name.endswith("_roc"), name


# --------------------------------------------------------------------------- #
# empty images, bags, tables, figure
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize("value", [0, 200, 255])
def test_blank_image_gives_nan_features_not_an_error(value):
    image = np.full((SIDE, SIDE, 3), value, np.uint8)
    seg = hm.segment_nucleus(image)
    assert seg.empty and not seg.hull.any() and not seg.roc.any()
    features = hm.shape_features(seg)
    assert features["nucleus_area"] == 0.0
    vector = hm.handmade_features(image)
    assert vector[hm.FEATURE_NAMES.index("nucleus_area")] == 0.0
    assert np.isnan(np.delete(vector, hm.FEATURE_NAMES.index("nucleus_area"))).all()


def test_faint_noise_is_not_a_nucleus():
    rng = np.random.default_rng(1)
    image = np.clip(230 + rng.integers(-4, 5, (SIDE, SIDE, 3)), 0, 255).astype(np.uint8)
    assert hm.segment_nucleus(image).empty


def test_bag_features_rows_and_empty_policy():
    images = [draw(disc(40)), np.full((SIDE, SIDE, 3), 220, np.uint8), draw(crescent())]
    bag = hm.bag_features(images)
    assert bag.shape == (3, len(hm.FEATURE_NAMES))
    np.testing.assert_array_equal(bag[2], hm.handmade_features(images[2]))
    assert np.isnan(bag[1, 0]) and bag[1, 3] == 0.0
    assert np.array_equal(hm.bag_features(images, workers=2), bag, equal_nan=True)
    assert hm.bag_features([]).shape == (0, len(hm.FEATURE_NAMES))
    with pytest.raises(hm.SegmentationError, match="image 1"):
        hm.bag_features(images, on_empty="raise")
    with pytest.raises(ValueError, match="on_empty"):
        hm.bag_features(images, on_empty="drop")  # type: ignore[arg-type]


def test_features_table_reads_files_in_threads(tmp_path: Path):
    paths = []
    for index, mask in enumerate([disc(40), crescent(), ellipse()]):
        path = tmp_path / f"cell_{index}.png"
        cv2.imwrite(str(path), cv2.cvtColor(draw(mask, seed=index), cv2.COLOR_RGB2BGR))
        paths.append(path)
    table = hm.features_table(paths, workers=2)
    assert isinstance(table, pd.DataFrame)
    assert list(table.columns) == list(hm.FEATURE_NAMES)
    assert list(table.index) == [str(p) for p in paths] and table.index.name == "path"
    np.testing.assert_array_equal(table.loc[str(paths[1])].to_numpy(), hm.handmade_features(read_image(paths[1])))
    pd.testing.assert_frame_equal(hm.features_table(paths, workers=1), table)
    # bag_features takes paths too.
    np.testing.assert_array_equal(hm.bag_features(paths), table.to_numpy())

    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a jpeg")
    with pytest.raises(ImageReadError, match="broken.jpg"):
        hm.features_table([paths[0], broken], workers=2)
    blank = tmp_path / "blank.png"
    cv2.imwrite(str(blank), np.full((50, 50, 3), 128, np.uint8))
    with pytest.raises(hm.SegmentationError, match="blank.png"):
        hm.features_table([paths[0], blank], on_empty="raise")
    assert np.isnan(hm.features_table([blank]).loc[str(blank), "solidity"])


def test_segmentation_figure_has_four_titled_panels():
    image = draw(crescent())
    seg = hm.segment_nucleus(image)
    fig = hm.segmentation_figure(image, seg, title="crescent")
    try:
        assert len(fig.axes) == 4
        titles = [ax.get_title() for ax in fig.axes]
        solidity = hm.shape_features(seg)["solidity"]
        assert any(f"solidity {solidity:.3f}" in title for title in titles)
        assert any("convexity" in title for title in titles) and any("circularity" in title for title in titles)
    finally:
        plt.close(fig)
    fig = hm.segmentation_figure(np.full((40, 40, 3), 128, np.uint8))
    try:
        assert "no nucleus found" in fig.axes[1].get_title()
    finally:
        plt.close(fig)


# --------------------------------------------------------------------------- #
# real cells
# --------------------------------------------------------------------------- #
# Mean Dice against the expert nucleus masks, measured on all lymphocytes
# (class 2) present: Dataset 1 (53 cells, 120 px, yellow background) 0.958,
# Dataset 2 (18 cells, 300 px, CellaVision) 0.986; worst single cells 0.80
# and 0.94. Thresholds sit a little below.
ZHENG_MIN_MEAN_DICE = {1: 0.94, 2: 0.97}
ZHENG_MIN_DICE = {1: 0.75, 2: 0.90}


def _level_mask(path: Path) -> np.ndarray:
    """Expert nucleus mask: grey levels rounded to the nearest of 0, 128, 255; nucleus = 255."""
    grey = read_image(path, "L").astype(np.int16)
    levels = np.array([0, 128, 255], np.int16)
    return levels[np.abs(grey[..., None] - levels).argmin(axis=-1)] == 255


@pytest.mark.parametrize("dataset", [1, 2])
def test_zheng_lymphocyte_nuclei_match_expert_masks(real_data: Path, dataset: int):
    root = real_data / "wbc_seg_zheng2018"
    labels_csv = root / f"Class Labels of Dataset {dataset}.csv"
    if not labels_csv.is_file():
        pytest.skip(f"{labels_csv} is absent")
    labels = pd.read_csv(labels_csv)  # columns differ: "class label" (1) / "class" (2)
    ids = labels.loc[labels.iloc[:, 1] == 2, labels.columns[0]]
    scores = []
    for image_id in ids:
        image_path = root / f"Dataset {dataset}" / f"{image_id:03d}.bmp"
        if not image_path.is_file():
            continue
        seg = hm.segment_nucleus(read_image(image_path))
        scores.append(dice(seg.nucleus, _level_mask(image_path.with_suffix(".png"))))
    assert len(scores) >= 10, f"only {len(scores)} lymphocytes found under {root}"
    assert np.mean(scores) >= ZHENG_MIN_MEAN_DICE[dataset], f"mean Dice {np.mean(scores):.3f}"
    assert min(scores) >= ZHENG_MIN_DICE[dataset], f"worst Dice {min(scores):.3f}"


def test_pbc_lymphocytes_have_a_plausible_nucleus_and_finite_features(real_data: Path):
    folder = real_data / "pbc" / "lymphocyte"
    paths = sorted(folder.glob("*.jpg"))
    if not paths:
        pytest.skip(f"no lymphocytes under {folder}")
    table = hm.features_table(paths, workers=2)
    # A PBC lymphocyte's nucleus covers about 3-7 % of the 360 x 363 frame.
    plausible = table["nucleus_area"].between(0.01, 0.25)
    assert plausible.mean() >= 0.95, table.loc[~plausible, "nucleus_area"]
    finite = np.isfinite(table.to_numpy()).all(axis=1)
    assert finite.mean() >= 0.98
    assert table["solidity"].median() > 0.9 and table["circularity"].median() < 1.4

    # The same cells at the DLMI images' 224 px keep a plausible nucleus.
    cells = [cv2.resize(read_image(path)[:360, :360], (224, 224), interpolation=cv2.INTER_AREA) for path in paths[:30]]
    areas = hm.bag_features(cells)[:, hm.FEATURE_NAMES.index("nucleus_area")]
    assert ((areas > 0.01) & (areas < 0.25)).all()
    full_size = table["nucleus_area"].to_numpy()[:30] * (360 * 363) / 360**2
    assert np.median(np.abs(areas / full_size - 1)) < 0.05
