"""Image preprocessing of the C-NMC 2019 reports, in small steps a notebook can show as figures.

C-NMC cells come segmented on a pure black background (450 x 450 BMPs), so the
cell is "whatever is not black". Two chains are reproduced:

* **Report 1**: :func:`threshold_crop_square` crops to the bounding box of the
  non-black pixels and pads back to a square, then :func:`clahe_y` equalises
  the luminance (Y of YUV) with CLAHE.
* **Report 2** (Inception-ResNet-V2 bagging): :func:`otsu_hull_crop` separates
  cell from background with Otsu, erodes away halos and specks, keeps the
  largest component and crops to its convex hull (black outside), at 299 x 299.

The ``*_batch`` versions take ``(N, H, W, 3)`` arrays. Nothing modifies its
input; results keep the input's dtype. Geometric steps accept ``uint8``,
``uint16``, ``float32`` and ``float64`` RGB (floats in ``[0, 1]``); CLAHE needs
``uint8``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import cv2
import numpy as np
from skimage.filters import threshold_otsu

__all__ = [
    "DEFAULT_THRESHOLD",
    "check_image",
    "check_int",
    "clahe_y",
    "clahe_y_batch",
    "convex_hull_mask",
    "crop_to_foreground",
    "foreground_box",
    "make_clahe",
    "otsu_foreground",
    "otsu_hull_crop",
    "otsu_hull_crop_batch",
    "otsu_hull_mask",
    "otsu_hull_steps",
    "pad_to_square",
    "resize_square",
    "threshold_crop_square",
    "threshold_crop_square_batch",
]

#: Foreground threshold in 8-bit units: a pixel belongs to the cell when its
#: brightest channel exceeds it. C-NMC backgrounds are exactly 0, but the
#: segmentation leaves a faint fringe of values 1-10 around the cell (under
#: 1 % of its pixels) that should not decide the box; 10 ignores it.
DEFAULT_THRESHOLD = 10

_SUPPORTED_DTYPES = (np.dtype(np.uint8), np.dtype(np.uint16), np.dtype(np.float32), np.dtype(np.float64))
# Full-scale value of each integer dtype, to express the 8-bit default in its units.
_FULL_SCALE = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}

Box = tuple[int, int, int, int]

# Batch functions work through this many images at a time: whole-batch array
# passes measured up to 2x slower than a per-image loop; 16 C-NMC cells are ~10 MB.
_CHUNK = 16


# --------------------------------------------------------------------------- #
# validation helpers
# --------------------------------------------------------------------------- #
def check_image(
    image: np.ndarray, name: str = "image", dtypes: Sequence[np.dtype] = _SUPPORTED_DTYPES, batch: bool = False
) -> np.ndarray:
    """Return ``image`` if it is a non-empty (H, W, 3) array, or (N, H, W, 3) with ``batch``, of one of ``dtypes``.

    Shared with :mod:`cytobook.handmade`, so that bad input gets the same message everywhere.

    Raises
    ------
    ValueError
        Naming ``name`` and what was expected.
    """
    if not isinstance(image, np.ndarray):
        raise ValueError(f"{name} must be a NumPy array, got {type(image).__name__}")
    if image.ndim != (4 if batch else 3) or image.shape[-1] != 3:
        what = "a batch of RGB images of shape (N, H, W, 3)" if batch else "an RGB image of shape (H, W, 3)"
        raise ValueError(f"{name} must be {what}, got shape {image.shape}")
    if 0 in image.shape:
        raise ValueError(f"{name} is empty (shape {image.shape})")
    if image.dtype not in dtypes:
        allowed = ", ".join(str(d) for d in dtypes)
        raise ValueError(f"{name} has dtype {image.dtype}; expected one of {allowed}")
    return image


def check_int(value: int, name: str, low: int = 0, high: int | None = None) -> int:
    """``value`` as an ``int`` in ``[low, high]``; a ``ValueError`` naming ``name`` otherwise (``bool`` too)."""
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, np.integer))
        or value < low
        or (high is not None and value > high)
    ):
        bounds = f">= {low}" if high is None else f"in [{low}, {high}]"
        raise ValueError(f"{name} must be an int {bounds}, got {value!r}")
    return int(value)


def _max_channel(images: np.ndarray) -> np.ndarray:
    """Brightest channel of (..., 3) images (two maxima: ~20x faster than ``max(axis=-1)``)."""
    return np.maximum(np.maximum(images[..., 0], images[..., 1]), images[..., 2])


def _resolve_threshold(threshold: float | None, dtype: np.dtype) -> float:
    """``threshold``, or :data:`DEFAULT_THRESHOLD` in ``dtype``'s units (10 * 257 for uint16, 10 / 255 for floats)."""
    if threshold is None:
        return DEFAULT_THRESHOLD * _FULL_SCALE.get(np.dtype(dtype), 1.0) / 255.0
    if not np.isfinite(threshold) or threshold < 0:
        raise ValueError(f"threshold must be a finite number >= 0, got {threshold!r}")
    return float(threshold)


# --------------------------------------------------------------------------- #
# geometry: box, crop, pad, resize
# --------------------------------------------------------------------------- #
def foreground_box(image: np.ndarray, threshold: float | None = None) -> Box:
    """Bounding box of the pixels whose brightest channel exceeds ``threshold``.

    Parameters
    ----------
    image
        RGB image, shape (H, W, 3).
    threshold
        ``None`` means :data:`DEFAULT_THRESHOLD` in the image's units.

    Returns
    -------
    tuple of int
        ``(top, bottom, left, right)``, ``bottom`` and ``right`` exclusive; the
        full frame for an all-black image, so that cropping it is a no-op.
    """
    check_image(image)
    threshold = _resolve_threshold(threshold, image.dtype)
    foreground = _max_channel(image) > threshold
    rows = np.flatnonzero(foreground.any(axis=1))
    if rows.size == 0:
        return 0, image.shape[0], 0, image.shape[1]
    cols = np.flatnonzero(foreground.any(axis=0))
    return int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1


def _crop_box(image: np.ndarray, box: Box, margin: int) -> np.ndarray:
    """Crop ``box`` grown by ``margin``, black beyond the frame (so the margin is equal on all sides)."""
    top, bottom, left, right = box
    height, width = image.shape[:2]
    top, bottom, left, right = top - margin, bottom + margin, left - margin, right + margin
    crop = image[max(top, 0) : min(bottom, height), max(left, 0) : min(right, width)]
    pads = (max(-top, 0), max(bottom - height, 0), max(-left, 0), max(right - width, 0))
    if any(pads):
        crop = cv2.copyMakeBorder(np.ascontiguousarray(crop), *pads, cv2.BORDER_CONSTANT, value=(0, 0, 0))
    return crop


def crop_to_foreground(image: np.ndarray, threshold: float | None = None, margin: int = 0) -> np.ndarray:
    """Crop an image to its :func:`foreground_box` plus ``margin`` pixels on every side.

    The margin is black where it runs past the frame. Returns a copy; an
    all-black image comes back whole (plus the margin).
    """
    check_image(image)
    margin = check_int(margin, "margin")
    return _crop_box(image, foreground_box(image, threshold), margin).copy()


def pad_to_square(image: np.ndarray) -> np.ndarray:
    """Pad an (H, W, 3) image with black to a centred (S, S, 3) square, ``S = max(H, W)`` (a copy).

    The odd pixel, if any, goes to the bottom / right.
    """
    check_image(image)
    height, width = image.shape[:2]
    side = max(height, width)
    top, left = (side - height) // 2, (side - width) // 2
    out = np.zeros((side, side, 3), dtype=image.dtype)
    out[top : top + height, left : left + width] = image
    return out


def resize_square(image: np.ndarray, size: int) -> np.ndarray:
    """Resize a square image to ``size`` x ``size`` (a copy).

    ``cv2.INTER_AREA`` shrinks (it averages: no aliasing of the chromatin
    texture), ``cv2.INTER_LINEAR`` enlarges.

    Raises
    ------
    ValueError
        If the image is not square: pad it with :func:`pad_to_square` first,
        so the cell's aspect ratio is never silently distorted.
    """
    check_image(image)
    size = check_int(size, "size", 1)
    side = image.shape[0]
    if image.shape[1] != side:
        raise ValueError(f"resize_square needs a square image, got {image.shape[:2]}; call pad_to_square first")
    if side == size:
        return image.copy()
    interpolation = cv2.INTER_AREA if size < side else cv2.INTER_LINEAR
    # OpenCV wants contiguous input (a crop of a larger array is not).
    return cv2.resize(np.ascontiguousarray(image), (size, size), interpolation=interpolation)


def _square_and_resize(crop: np.ndarray, size: int | None) -> np.ndarray:
    squared = pad_to_square(crop)
    return squared if size is None else resize_square(squared, size)


# --------------------------------------------------------------------------- #
# report 1: threshold crop + square pad
# --------------------------------------------------------------------------- #
def threshold_crop_square(
    image: np.ndarray,
    threshold: float | None = None,
    size: int | None = None,
    margin: int = 0,
) -> np.ndarray:
    """Report 1's crop: the foreground box, padded to a centred square, optionally resized.

    The cell then fills the frame whatever its size in the 450 x 450 capture.

    Parameters
    ----------
    image
        RGB image, shape (H, W, 3), cell on a black background.
    threshold, margin
        As in :func:`crop_to_foreground`.
    size
        Output side in pixels, or ``None`` to keep the padded crop's size.

    Returns
    -------
    numpy.ndarray
        Square RGB image with the input's dtype; an all-black image is only
        padded and resized.
    """
    size = None if size is None else check_int(size, "size", 1)
    crop = crop_to_foreground(image, threshold, margin)
    return _square_and_resize(crop, size)


def _batch_boxes(images: np.ndarray, threshold: float, chunk: int = _CHUNK) -> np.ndarray:
    """Foreground boxes of a batch, shape (N, 4): top, bottom, left, right.

    Vectorised: argmax finds the first row / column with foreground from each
    end. Chunked so the (n, H, W) boolean mask stays in cache.
    """
    n, height, width = images.shape[:3]
    boxes = np.empty((n, 4), dtype=np.int64)
    for start in range(0, n, chunk):
        foreground = _max_channel(images[start : start + chunk]) > threshold
        rows = foreground.any(axis=2)  # (n, H)
        cols = foreground.any(axis=1)  # (n, W)
        top = rows.argmax(axis=1)
        bottom = height - rows[:, ::-1].argmax(axis=1)
        left = cols.argmax(axis=1)
        right = width - cols[:, ::-1].argmax(axis=1)
        # argmax of an all-False row is 0: all-black images get the full frame, as in foreground_box.
        empty = ~rows.any(axis=1)
        top[empty], bottom[empty], left[empty], right[empty] = 0, height, 0, width
        boxes[start : start + chunk] = np.stack([top, bottom, left, right], axis=1)
    return boxes


def threshold_crop_square_batch(
    images: np.ndarray,
    threshold: float | None = None,
    size: int = 224,
    margin: int = 0,
) -> np.ndarray:
    """:func:`threshold_crop_square` of a batch (N, H, W, 3) -> (N, size, size, 3), boxes vectorised.

    ``size`` is required: crops differ in size and must be resized to be stacked.
    Equal, image by image, to :func:`threshold_crop_square`.
    """
    check_image(images, "images", batch=True)
    size = check_int(size, "size", 1)
    margin = check_int(margin, "margin")
    boxes = _batch_boxes(images, _resolve_threshold(threshold, images.dtype))
    out = np.empty((images.shape[0], size, size, 3), dtype=images.dtype)
    for i, box in enumerate(boxes):  # crops differ in size: the resize cannot be vectorised
        out[i] = _square_and_resize(_crop_box(images[i], tuple(int(v) for v in box), margin), size)
    return out


# --------------------------------------------------------------------------- #
# report 1: CLAHE on luminance
# --------------------------------------------------------------------------- #
def _clahe_y_with(clahe: cv2.CLAHE, images: np.ndarray, background: int | None) -> np.ndarray:
    """CLAHE on Y for one image (H, W, 3) or a batch (N, H, W, 3)."""
    shape = images.shape
    # Colour conversion and masking are per pixel, so a batch goes through
    # them in one call as a tall (N*H, W, 3) image; only CLAHE is per image.
    tall = np.ascontiguousarray(images).reshape(-1, shape[-2], 3)
    yuv = cv2.cvtColor(tall, cv2.COLOR_RGB2YUV).reshape(shape)
    for index in np.ndindex(shape[:-3]):
        yuv[index][..., 0] = clahe.apply(cv2.extractChannel(yuv[index], 0))
    out = cv2.cvtColor(yuv.reshape(tall.shape), cv2.COLOR_YUV2RGB)
    if background is not None:
        keep = (_max_channel(tall) <= background).view(np.uint8)
        out = cv2.copyTo(tall, keep, out)  # ~100x faster than np.copyto(where=...)
    return out.reshape(shape)


def make_clahe(clip_limit: float, tile_grid_size: tuple[int, int]) -> cv2.CLAHE:
    """OpenCV's CLAHE with checked settings (a ValueError names a bad one)."""
    if not np.isfinite(clip_limit) or clip_limit <= 0:
        raise ValueError(f"clip_limit must be a positive number, got {clip_limit!r}")
    tiles = tuple(tile_grid_size)
    if len(tiles) != 2:
        raise ValueError(f"tile_grid_size must be two positive ints, got {tile_grid_size!r}")
    tiles = tuple(check_int(t, "tile_grid_size", 1) for t in tiles)
    return cv2.createCLAHE(clipLimit=float(clip_limit), tileGridSize=tiles)


def _check_background(background: int | None) -> int | None:
    return None if background is None else check_int(background, "background", 0, 255)


def clahe_y(
    image: np.ndarray,
    clip_limit: float = 2.0,
    tile_grid_size: tuple[int, int] = (8, 8),
    background: int | None = DEFAULT_THRESHOLD,
) -> np.ndarray:
    """Contrast-limited adaptive histogram equalisation of the luminance only.

    CLAHE is applied to Y of YUV, so the stain colours (U, V) are untouched.

    Parameters
    ----------
    image
        ``uint8`` RGB image, shape (H, W, 3).
    clip_limit
        OpenCV's ``clipLimit`` (higher = stronger contrast).
    tile_grid_size
        Tiles (rows, columns) the image is equalised in.
    background
        Pixels whose brightest channel is ``<= background`` are returned as
        they were: the default, :data:`DEFAULT_THRESHOLD`, keeps black black
        and the faint fringe below the foreground threshold; 0 protects pure
        black only; ``None`` equalises everywhere.

    Returns
    -------
    numpy.ndarray
        ``uint8`` RGB image, same shape.

    Notes
    -----
    CLAHE spreads each tile's clipped histogram excess over all grey levels,
    so even an all-black tile maps 0 to about 3: on C-NMC images the black
    background ("no cell") would become a dark grey frame and the fringe
    would cross the foreground threshold. The mask is applied after CLAHE, so
    the cell's pixels get exactly what plain CLAHE gives.
    """
    check_image(image, dtypes=(np.dtype(np.uint8),))
    background = _check_background(background)
    return _clahe_y_with(make_clahe(clip_limit, tile_grid_size), image, background)


def clahe_y_batch(
    images: np.ndarray,
    clip_limit: float = 2.0,
    tile_grid_size: tuple[int, int] = (8, 8),
    background: int | None = DEFAULT_THRESHOLD,
) -> np.ndarray:
    """:func:`clahe_y` of a batch (N, H, W, 3) of ``uint8`` images, equal image by image.

    Colour conversions and the background mask run once per chunk; CLAHE
    itself is per image, with one CLAHE object.
    """
    check_image(images, "images", dtypes=(np.dtype(np.uint8),), batch=True)
    background = _check_background(background)
    clahe = make_clahe(clip_limit, tile_grid_size)
    out = np.empty_like(images)
    for start in range(0, images.shape[0], _CHUNK):
        out[start : start + _CHUNK] = _clahe_y_with(clahe, images[start : start + _CHUNK], background)
    return out


# --------------------------------------------------------------------------- #
# report 2: Otsu + erosion + convex hull
# --------------------------------------------------------------------------- #
def _gray(image: np.ndarray) -> np.ndarray:
    """Luma (BT.601 weights, as in ``cv2.COLOR_RGB2GRAY``)."""
    if image.dtype == np.float64:
        image = image.astype(np.float32)
    return cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2GRAY)


def otsu_foreground(gray: np.ndarray) -> np.ndarray:
    """Pixels brighter than the Otsu threshold (the cell on a dark background)."""
    if gray.min() == gray.max():  # constant image: no two classes to separate
        return np.zeros(gray.shape, dtype=np.uint8)
    if gray.dtype == np.uint8:
        _, binary = cv2.threshold(gray, 0, 1, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
        return binary
    return (gray > threshold_otsu(gray)).astype(np.uint8)


def _largest_component(binary: np.ndarray) -> np.ndarray:
    count, labels, stats, _ = cv2.connectedComponentsWithStats(binary, connectivity=8)
    if count <= 1:  # only the background label
        return np.zeros(binary.shape, dtype=np.uint8)
    largest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    return (labels == largest).astype(np.uint8)


def convex_hull_mask(mask: np.ndarray) -> np.ndarray:
    """Convex hull of a 2-D mask (nonzero = inside): every pixel whose centre lies in the hull.

    The hull joins pixel centres (vertices from OpenCV's outer contours) and
    is rasterised exactly with integer arithmetic, row by row. The result
    equals ``skimage.morphology.convex_hull_image(mask, offset_coordinates=False)``
    at about a tenth of the cost, and is idempotent (``cv2.fillConvexPoly``
    is not: it adds boundary pixels). Returns a boolean mask, all ``False``
    for an empty mask.
    """
    mask = np.asarray(mask)
    if mask.ndim != 2 or 0 in mask.shape:
        raise ValueError(f"mask must be a non-empty 2-D array, got shape {mask.shape}")
    out = np.zeros(mask.shape, dtype=bool)
    binary = (mask != 0).astype(np.uint8)
    contours, _ = cv2.findContours(binary, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    if not contours:
        return out
    hull = cv2.convexHull(np.concatenate(contours))[:, 0, :].astype(np.int64)  # (K, 2) as x, y
    if len(hull) < 3:
        # Degenerate hull (a point or a segment): the pixels on the segment.
        start, stop = hull[0], hull[-1]
        step = stop - start
        count = max(int(np.gcd(step[0], step[1])), 1)
        points = start + np.arange(count + 1)[:, None] * (step // count)
        out[points[:, 1], points[:, 0]] = True
        return out
    # A pixel (x, y) is inside when it is on the inner side of every edge
    # p -> q: sign * cross(q - p, (x, y) - p) >= 0. For a fixed row y this is
    # B * x <= A, i.e. a lower or upper bound on x per edge.
    edges = np.roll(hull, -1, axis=0) - hull
    sign = 1 if np.sum(hull[:, 0] * np.roll(hull[:, 1], -1) - np.roll(hull[:, 0], -1) * hull[:, 1]) > 0 else -1
    x0, y0 = hull.min(axis=0)
    x1, y1 = hull.max(axis=0)
    ys = np.arange(y0, y1 + 1)
    a = sign * (edges[:, 0, None] * (ys[None, :] - hull[:, 1, None]) + edges[:, 1, None] * hull[:, 0, None])
    b = np.broadcast_to(sign * edges[:, 1, None], a.shape)
    safe_b = np.where(b == 0, 1, b)
    upper = np.where(b > 0, a // safe_b, x1).min(axis=0)
    lower = np.where(b < 0, -(-a // safe_b), x0).max(axis=0)
    row_ok = np.all((b != 0) | (a >= 0), axis=0)  # horizontal edges bound y
    xs = np.arange(x0, x1 + 1)
    out[y0 : y1 + 1, x0 : x1 + 1] = (xs >= lower[:, None]) & (xs <= upper[:, None]) & row_ok[:, None]
    return out


def _hull_in_window(gray: np.ndarray, radius: int, restore_rim: bool) -> tuple[tuple[slice, slice], dict] | None:
    """The Otsu / erosion / component / hull masks inside a window (two slices); ``None`` without foreground."""
    otsu = otsu_foreground(gray)
    rows, cols = np.flatnonzero(otsu.any(axis=1)), np.flatnonzero(otsu.any(axis=0))
    if rows.size == 0:
        return None
    # Work inside the foreground's box grown by r + 1 (a cell is ~1/4 of a
    # C-NMC frame): the pixels beyond are background, so erosion, dilation,
    # labelling and hull give the same result there, at a fraction of the cost.
    grow = radius + 1
    window = (
        slice(max(rows[0] - grow, 0), rows[-1] + 1 + grow),
        slice(max(cols[0] - grow, 0), cols[-1] + 1 + grow),
    )
    otsu = np.ascontiguousarray(otsu[window])
    # A disc erodes equally in every direction, unlike a square along the diagonals.
    element = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    eroded = cv2.erode(otsu, element) if radius else otsu.copy()
    largest = _largest_component(eroded)
    if not largest.any():
        # The cell is thinner than the element: better the unfiltered mask than an empty crop.
        largest = _largest_component(otsu)
    elif restore_rim and radius:
        # Dilating by the same disc makes erosion + dilation an opening: specks
        # and bridges stay removed, but the cell gets back the r-pixel rim the
        # hull would otherwise cut off (~5 % of a C-NMC cell at r=3), never
        # past the Otsu mask.
        largest = cv2.dilate(largest, element) & otsu
    return window, {"otsu": otsu, "eroded": eroded, "largest": largest, "hull": convex_hull_mask(largest)}


def otsu_hull_steps(image: np.ndarray, erosion_radius: int = 3, restore_rim: bool = True) -> dict[str, np.ndarray]:
    """Every intermediate mask of :func:`otsu_hull_mask` (same parameters), for figures.

    Returns boolean (H, W) masks, in order: ``"otsu"``, ``"eroded"``,
    ``"largest"`` (the largest component of the eroded mask, grown back when
    ``restore_rim``) and ``"hull"`` (the final mask).
    """
    check_image(image)
    radius = check_int(erosion_radius, "erosion_radius")
    steps = {name: np.zeros(image.shape[:2], dtype=bool) for name in ("otsu", "eroded", "largest", "hull")}
    found = _hull_in_window(_gray(image), radius, restore_rim)
    if found is not None:
        window, masks = found
        for name, mask in masks.items():
            steps[name][window] = mask != 0
    return steps


def otsu_hull_mask(image: np.ndarray, erosion_radius: int = 3, restore_rim: bool = True) -> np.ndarray:
    """Convex-hull mask of the cell: Otsu, erosion, largest component, hull.

    Parameters
    ----------
    image
        RGB image, shape (H, W, 3), cell brighter than its (black) background;
        Otsu runs on the luma of the whole frame and keeps the brighter class.
    erosion_radius
        Radius of the disc (a ``(2r+1) x (2r+1)`` ellipse) for the erosion:
        anything thinner than ``2r + 1`` pixels (halo threads, specks, bridges
        to debris) is removed before the largest 8-connected component is
        picked, so it cannot stretch the hull. 0 disables the erosion.
    restore_rim
        Grow the kept component back by the same disc (an opening rather than
        an erosion), so the hull covers the whole cell; ``False`` gives the
        hull of the eroded component, about ``r`` pixels inside the edge.

    Returns
    -------
    numpy.ndarray
        Boolean (H, W) mask, convex; all ``False`` for a constant image.
    """
    return otsu_hull_steps(image, erosion_radius, restore_rim)["hull"]


def _hull_crop(image: np.ndarray, gray: np.ndarray, radius: int, restore_rim: bool, size: int | None) -> np.ndarray:
    found = _hull_in_window(gray, radius, restore_rim)
    if found is None:
        return _square_and_resize(image, size)
    window, masks = found
    hull = masks["hull"]
    rows, cols = np.flatnonzero(hull.any(axis=1)), np.flatnonzero(hull.any(axis=0))
    top, bottom, left, right = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    crop = image[window][top:bottom, left:right].copy()
    crop[~hull[top:bottom, left:right]] = 0
    return _square_and_resize(crop, size)


def otsu_hull_crop(
    image: np.ndarray,
    erosion_radius: int = 3,
    size: int | None = 299,
    restore_rim: bool = True,
) -> np.ndarray:
    """Report 2's crop: the cell's convex hull, black outside, padded to a centred square, resized.

    Parameters
    ----------
    image
        RGB image, shape (H, W, 3), cell on a dark background.
    erosion_radius, restore_rim
        See :func:`otsu_hull_mask`.
    size
        Output side (299 for Inception-ResNet-V2), or ``None`` to keep the
        padded crop's size.

    Returns
    -------
    numpy.ndarray
        Square RGB image with the input's dtype. A constant (e.g. all-black)
        image has no hull: it is only padded and resized.
    """
    check_image(image)
    size = None if size is None else check_int(size, "size", 1)
    radius = check_int(erosion_radius, "erosion_radius")
    return _hull_crop(image, _gray(image), radius, restore_rim, size)


def otsu_hull_crop_batch(
    images: np.ndarray,
    erosion_radius: int = 3,
    size: int = 299,
    restore_rim: bool = True,
) -> np.ndarray:
    """:func:`otsu_hull_crop` of a batch (N, H, W, 3) -> (N, size, size, 3), equal image by image.

    The grey conversion runs once per chunk; Otsu, components and hulls are per image.
    """
    check_image(images, "images", batch=True)
    size = check_int(size, "size", 1)
    radius = check_int(erosion_radius, "erosion_radius")
    n, height, width = images.shape[:3]
    out = np.empty((n, size, size, 3), dtype=images.dtype)
    for start in range(0, n, _CHUNK):
        chunk = images[start : start + _CHUNK]
        # Grey conversion is per pixel: one call on a tall (n*H, W, 3) image.
        grays = _gray(chunk.reshape(-1, width, 3)).reshape(-1, height, width)
        for i, (image, gray) in enumerate(zip(chunk, grays)):
            out[start + i] = _hull_crop(image, gray, radius, restore_rim, size)
    return out


def load_cells(
    paths: Sequence[str],
    size: int,
    *,
    crop: Callable[..., np.ndarray] = threshold_crop_square,
    clahe: bool = False,
    augmentations: Sequence[str] | None = None,
) -> np.ndarray:
    """Read cell images, crop each to a square of ``size`` (report 1's chain by default), optionally CLAHE.

    Parameters
    ----------
    paths
        Image files (read with :func:`cytobook.io.read_image`).
    size
        Side of the square output.
    crop
        Called as ``crop(image, size=size)``: :func:`threshold_crop_square`
        (report 1) or :func:`otsu_hull_crop` (report 2).
    clahe
        Equalise the luminance with :func:`clahe_y` after resizing.
    augmentations
        One name per path for :func:`cytobook.augment.apply_augmentation`
        (``"none"`` for originals), applied last.

    Returns
    -------
    numpy.ndarray
        ``uint8`` array ``(len(paths), size, size, 3)``.
    """
    from .augment import apply_augmentation
    from .io import read_image

    if augmentations is not None and len(augmentations) != len(paths):
        raise ValueError(f"{len(augmentations)} augmentations for {len(paths)} paths")
    out = np.empty((len(paths), size, size, 3), dtype=np.uint8)
    for index, path in enumerate(paths):
        cell = crop(read_image(path), size=size)
        if clahe:
            cell = clahe_y(cell)
        out[index] = apply_augmentation(cell, augmentations[index]) if augmentations is not None else cell
    return out


def load_cell_table(rows, size: int, *, crop: Callable[..., np.ndarray] = threshold_crop_square,
                    clahe: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Images and labels of a table of cells, through :func:`load_cells`.

    Parameters
    ----------
    rows
        A :class:`pandas.DataFrame` with columns ``path`` and ``label`` and,
        for augmented copies, ``augmentation`` (``"none"`` for originals).
    size, crop, clahe
        As in :func:`load_cells`.

    Returns
    -------
    tuple
        ``uint8`` images ``(n, size, size, 3)`` and ``float32`` labels ``(n,)``.

    Raises
    ------
    ValueError
        If ``path`` or ``label`` is missing, naming the columns found.
    """
    missing = [column for column in ("path", "label") if column not in rows.columns]
    if missing:
        raise ValueError(f"a table of cells needs the columns path and label; missing {missing}, found {list(rows.columns)}")
    augmentations = list(rows["augmentation"]) if "augmentation" in rows.columns else None
    images = load_cells(list(rows["path"]), size, crop=crop, clahe=clahe, augmentations=augmentations)
    return images, rows["label"].to_numpy(dtype="float32")
