"""From HEp-2 immunofluorescence fields to uniform cell images: report 5's sections 2.2 and 2.3.

Ribeiro & Medeiros segment each field with Cellpose, then filter, square and
resize the cells for VGG16. This module holds every step, in plain
NumPy / OpenCV / scikit-image (no Keras), so a notebook can show each one:

* **Contrast enhancement** (2.2, Figs. 6-8): :func:`enhance` and
  :func:`enhancement_steps` compare contrast stretching, histogram
  equalisation, CLAHE, Otsu and eroded Otsu on the green channel. The report
  found that none helped Cellpose: "the cells must be normalized only after
  segmentation".
* **Classical segmentation**, always available and the default
  (:func:`segment_cells`): contrast normalisation, Otsu or adaptive threshold,
  hole filling, small-object removal and a distance-transform watershed that
  splits touching cells.
* **Cellpose**, when installed (an optional dependency whose models are
  downloaded on first use): :func:`segment_cells_cellpose` with the report's
  diameters (:data:`CELL_DIAMETER`, :data:`NUCLEUS_DIAMETER`), the two-channel
  pass (:func:`two_channel_image`, :func:`two_channel_diameter`), and
  :func:`backend_segmenter`, which picks Cellpose only when asked and importable.
* **Cells for the network** (2.3): :func:`cell_crops` (one row per cell: its
  masked crop, pixel count and black-pixel share), :func:`filter_cells` (the
  5th-95th percentile bands of Figs. 14 and 15), :func:`square_and_resize`
  (black bars, then 96 x 96), :func:`to_three_channels` (the green channel
  three times, the report's final choice) and :func:`oversample_minorities`
  (flips and right-angle rotations of the small classes of a training set).

The signal of an IIF field is in its green channel (FITC); every function takes
an RGB field ``(H, W, 3)`` and uses its green channel, or a grayscale image
``(H, W)`` (as ICPR's released cells) as it is.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import pandas as pd
from scipy import ndimage as ndi
from skimage.feature import peak_local_max
from skimage.filters import threshold_local, threshold_otsu
from skimage.segmentation import watershed

from .augment import AUGMENTATIONS, apply_augmentation
from .io import read_image
from .preprocess import DEFAULT_THRESHOLD, check_int, make_clahe, otsu_foreground, pad_to_square, resize_square

__all__ = [
    "CELL_DIAMETER",
    "CROP_SIZE",
    "LARGE_NUCLEUS",
    "METHODS",
    "NUCLEUS_DIAMETER",
    "TWO_CHANNEL_DIAMETER",
    "Segmenter",
    "backend_segmenter",
    "cell_crops",
    "cellpose_available",
    "enhance",
    "enhancement_steps",
    "field_cells",
    "filter_bands",
    "filter_cells",
    "green_channel",
    "mean_nucleus_size",
    "oversample_minorities",
    "random_symmetries",
    "read_cells",
    "segment_cells",
    "segment_cells_cellpose",
    "segment_cells_two_channel",
    "segment_nuclei_cellpose",
    "segmentation_steps",
    "split_by_field",
    "square_and_resize",
    "stretch_cell",
    "to_three_channels",
    "two_channel_diameter",
    "two_channel_image",
]

#: The contrast treatments of the report's Figs. 6-8, in its order.
METHODS: tuple[str, ...] = ("none", "stretch", "equalise", "clahe", "otsu", "eroded otsu")

#: Cellpose's cell diameter in pixels, the report's "one size fits all" value (2.2).
CELL_DIAMETER = 75
#: Cellpose's nucleus diameter in pixels for the nuclear mask (2.2: "around 60 pixels").
NUCLEUS_DIAMETER = 60
#: Cell diameter in pixels of the two-channel pass (nuclei and cytoplasm in two channels).
TWO_CHANNEL_DIAMETER = 145
#: Mean nucleus size (pixels; *our reading*: equivalent diameter) above which 145 px is used as it is.
LARGE_NUCLEUS = 90
#: Side of the network's input, "a size that worked best with VGG's convolutional layers" (2.3).
CROP_SIZE = 96

# Contrast stretching maps these percentiles to 0 and 255: scikit-image's
# histogram-equalisation example, which compares the same three methods as the report.
_STRETCH_PERCENTILES = (2.0, 98.0)


# --------------------------------------------------------------------------- #
# the green channel
# --------------------------------------------------------------------------- #
def green_channel(image: np.ndarray) -> np.ndarray:
    """The signal plane of an IIF image as ``uint8`` (H, W): the green channel of RGB, or the image if grayscale.

    ``uint16`` is scaled by 255 / 65535 and floats (in ``[0, 1]``) by 255, so
    that thresholds in 8-bit units mean the same on every input.

    Raises
    ------
    ValueError
        If the image is not (H, W) or (H, W, 3), is empty, or has another dtype.
    """
    if not isinstance(image, np.ndarray):
        raise ValueError(f"image must be a NumPy array, got {type(image).__name__}")
    if not (image.ndim == 2 or (image.ndim == 3 and image.shape[-1] == 3)):
        raise ValueError(f"image must be grayscale (H, W) or RGB (H, W, 3), got shape {image.shape}")
    if 0 in image.shape:
        raise ValueError(f"image is empty (shape {image.shape})")
    plane = image if image.ndim == 2 else image[..., 1]
    if plane.dtype == np.uint8:
        return np.ascontiguousarray(plane)
    if plane.dtype == np.uint16:
        return np.rint(plane / 257.0).astype(np.uint8)
    if np.issubdtype(plane.dtype, np.floating):
        return np.rint(np.clip(plane, 0.0, 1.0) * 255.0).astype(np.uint8)
    raise ValueError(f"image has dtype {image.dtype}; expected uint8, uint16 or float in [0, 1]")


# --------------------------------------------------------------------------- #
# contrast enhancement (2.2, Figs. 6-8)
# --------------------------------------------------------------------------- #
def _stretch(plane: np.ndarray, percentiles: tuple[float, float]) -> np.ndarray:
    """Linear map of the ``percentiles`` of ``plane`` to 0 and 1 (clipped), ``float32``."""
    low, high = np.percentile(plane, percentiles)
    if high <= low:  # a flat image has no contrast to stretch
        return np.zeros(plane.shape, np.float32)
    return np.clip((plane.astype(np.float32) - np.float32(low)) / np.float32(high - low), 0.0, 1.0)


def _disc(radius: int) -> np.ndarray:
    # A disc erodes equally in every direction, unlike a square along the diagonals.
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))


def enhance(
    image: np.ndarray,
    method: str = "none",
    *,
    clip_limit: float = 2.0,
    tile_grid_size: tuple[int, int] = (8, 8),
    erosion_radius: int = 2,
) -> np.ndarray:
    """One of the report's contrast treatments of the green channel (2.2, Figs. 6-8).

    Parameters
    ----------
    image
        RGB field (H, W, 3) or grayscale image (H, W); see :func:`green_channel`.
    method
        One of :data:`METHODS`:

        - ``"none"``: the green channel as it is;
        - ``"stretch"``: contrast stretching, the 2nd and 98th percentiles to 0 and 255;
        - ``"equalise"``: histogram equalisation (OpenCV's ``equalizeHist``);
        - ``"clahe"``: adaptive equalisation (CLAHE, ``clip_limit`` and ``tile_grid_size``);
        - ``"otsu"``: Otsu's binarisation, 255 above the threshold;
        - ``"eroded otsu"``: Otsu, then erosion by a disc of ``erosion_radius``
          (the report: "some of the noise was indeed erased, but most of the
          cells' cytoplasm was erased too"; it gives no radius, 2 is *our choice*).

    Returns
    -------
    numpy.ndarray
        ``uint8`` (H, W): the input's spatial shape, one plane (the treatments act on the green channel).
    """
    plane = green_channel(image)
    if method == "none":
        return plane.copy()
    if method == "stretch":
        return np.rint(_stretch(plane, _STRETCH_PERCENTILES) * 255.0).astype(np.uint8)
    if method == "equalise":
        return cv2.equalizeHist(plane)
    if method == "clahe":
        return make_clahe(clip_limit, tile_grid_size).apply(plane)
    if method in ("otsu", "eroded otsu"):
        binary = otsu_foreground(plane)
        if method == "eroded otsu":
            radius = check_int(erosion_radius, "erosion_radius")
            binary = cv2.erode(binary, _disc(radius)) if radius else binary
        return binary * np.uint8(255)
    raise ValueError(f"unknown method {method!r}; expected one of {', '.join(METHODS)}")


def enhancement_steps(image: np.ndarray, **options: Any) -> dict[str, np.ndarray]:
    """Every treatment of :data:`METHODS` applied to ``image``, for :func:`cytobook.plots.steps_figure`.

    ``options`` go to :func:`enhance`. Returns ``uint8`` (H, W) planes keyed by method, in the report's order.
    """
    return {method: enhance(image, method, **options) for method in METHODS}


# --------------------------------------------------------------------------- #
# classical segmentation
# --------------------------------------------------------------------------- #
def _positive(value: float, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not np.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a positive number, got {value!r}")
    return float(value)


def _remove_small(mask: np.ndarray, min_area: float) -> np.ndarray:
    """``mask`` without its 8-connected components of fewer than ``min_area`` pixels."""
    count, components, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    keep = stats[:, cv2.CC_STAT_AREA] >= min_area
    keep[0] = False  # the background
    return keep[components]


def _segment(
    field: np.ndarray,
    nucleus_diameter: float,
    threshold: str,
    smoothing: float | None,
    block_size: int | None,
    offset: float,
    min_area: float | None,
    min_distance: int | None,
) -> dict[str, np.ndarray]:
    """Every intermediate array of :func:`segment_cells`, by step name."""
    diameter = _positive(nucleus_diameter, "nucleus_diameter")
    radius = diameter / 2.0
    # Normalise the contrast first: fields differ up to five-fold in exposure,
    # and the offset and smoothing below are then in the same units on all.
    normalised = _stretch(green_channel(field), (1.0, 99.5))
    # Smoothing at ~1/12 of a nucleus merges the dots of speckled and
    # centromere patterns into one blob per nucleus, while a gap between
    # neighbours (a few pixels) survives.
    sigma = diameter / 12.0 if smoothing is None else float(smoothing)
    smooth = cv2.GaussianBlur(normalised, (0, 0), sigma) if sigma > 0 else normalised
    flat = smooth.max() <= smooth.min()
    if threshold == "otsu":
        foreground = np.zeros(smooth.shape, bool) if flat else smooth > threshold_otsu(smooth)
    elif threshold == "adaptive":
        # A block of about two nuclei always holds cell and background, so the
        # local mean lies between them even where the exposure varies.
        block = (int(2 * diameter) | 1) if block_size is None else check_int(block_size, "block_size", 3)
        if block % 2 == 0:
            raise ValueError(f"block_size must be odd, got {block}")
        local = threshold_local(smooth, block, method="gaussian", offset=-float(offset))
        if flat:
            foreground = np.zeros(smooth.shape, bool)
        else:
            # Inside an empty block the local mean is the slide itself: a floor
            # of the slide's level (the median below Otsu's threshold) plus the
            # offset keeps its noise out without losing dim cells.
            slide = float(np.median(smooth[smooth <= threshold_otsu(smooth)]))
            foreground = (smooth > local) & (smooth > slide + float(offset))
    else:
        raise ValueError(f"threshold must be 'otsu' or 'adaptive', got {threshold!r}")
    # Nucleoli and the dark nuclei of cytoplasmic patterns leave holes in a cell.
    filled = ndi.binary_fill_holes(foreground)
    # Noise specks and debris: under 15 % of a nucleus' area by default.
    area = 0.15 * np.pi * radius**2 if min_area is None else float(min_area)
    cleaned = _remove_small(filled, area)
    distance = ndi.distance_transform_edt(cleaned).astype(np.float32)
    components, count = ndi.label(cleaned)
    # Two cell centres are at least a radius apart: peaks of the distance map
    # closer than that belong to one irregular cell, not two.
    spacing = max(1, int(round(radius))) if min_distance is None else check_int(min_distance, "min_distance", 1)
    peaks = peak_local_max(distance, min_distance=spacing, labels=components, exclude_border=False)
    markers = np.zeros(cleaned.shape, np.int32)
    markers[tuple(peaks.T)] = np.arange(1, len(peaks) + 1, dtype=np.int32)
    # A component without a peak (a flat sliver) gets its own marker, so no cell is lost.
    seeded = np.zeros(count + 1, bool)
    seeded[components[tuple(peaks.T)]] = True
    for index in np.flatnonzero(~seeded[1:]) + 1:
        where = np.argmax(np.where(components == index, distance, -1.0))
        markers.flat[where] = markers.max() + 1
    # Markers are numbered 1..n and each keeps its basin, so the cells are 1..n too.
    labels = watershed(-distance, markers, mask=cleaned).astype(np.int32)
    return {"normalised": normalised, "smoothed": smooth, "threshold": foreground, "filled": cleaned,
            "distance": distance, "labels": labels}


def segment_cells(
    field: np.ndarray,
    *,
    nucleus_diameter: float,
    threshold: str = "otsu",
    smoothing: float | None = None,
    block_size: int | None = None,
    offset: float = 0.02,
    min_area: float | None = None,
    min_distance: int | None = None,
) -> np.ndarray:
    """Label the cells of an IIF field without Cellpose: threshold, clean, split touching cells.

    The steps: the green channel is contrast-normalised (its 1st and 99.5th
    percentiles to 0 and 1) and smoothed; Otsu's or an adaptive threshold
    separates cells from background; holes are filled and small objects
    removed; a watershed of the distance transform, seeded at its peaks, splits
    touching cells along their necks.

    Parameters
    ----------
    field
        RGB field (H, W, 3), signal in green, or a grayscale image (H, W).
    nucleus_diameter
        Expected diameter in pixels of the stained objects: the nuclei in
        nuclear patterns, the whole cell in cytoplasmic ones. Every default
        below scales with it, so one number adapts the method to a magnification.
    threshold
        ``"otsu"``: one global level, exhaustive over the grey levels (the
        report's choice in 2.2); ``"adaptive"``: each pixel against the
        Gaussian-weighted mean of a ``block_size`` neighbourhood plus
        ``offset``, which keeps dim cells beside bright ones.
    smoothing
        Gaussian sigma in pixels before thresholding; default ``nucleus_diameter / 12``.
    block_size
        Odd side of the adaptive neighbourhood; default about ``2 * nucleus_diameter``.
    offset
        How far above its local mean (on the normalised 0-1 scale) a pixel
        must be to be a cell, with ``"adaptive"``.
    min_area
        Smaller objects are removed; default 15 % of a disc of ``nucleus_diameter``.
    min_distance
        Least distance in pixels between two watershed seeds; default the
        radius, ``nucleus_diameter / 2``.

    Returns
    -------
    numpy.ndarray
        ``int32`` (H, W) labels: 0 background, cells 1..n.
    """
    return _segment(field, nucleus_diameter, threshold, smoothing, block_size, offset, min_area,
                    min_distance)["labels"]


def _label_colours(labels: np.ndarray) -> np.ndarray:
    """Labels as an RGB ``uint8`` image, one fixed pseudo-random colour per cell, black background."""
    palette = np.random.default_rng(0).integers(60, 256, size=(int(labels.max()) + 1, 3), dtype=np.uint8)
    palette[0] = 0
    return palette[labels]


def segmentation_steps(field: np.ndarray, **options: Any) -> dict[str, np.ndarray]:
    """The steps of :func:`segment_cells` (same keyword options) as ``uint8`` images for :func:`plots.steps_figure`.

    Keys, in order: ``"normalised"``, ``"smoothed"``, ``"threshold"``,
    ``"filled"`` (holes filled, small objects removed), ``"distance"``
    (scaled to 0-255) and ``"labels"`` (one colour per cell).
    """
    nucleus_diameter = options.pop("nucleus_diameter")
    steps = _segment(field, nucleus_diameter, options.pop("threshold", "otsu"), options.pop("smoothing", None),
                     options.pop("block_size", None), options.pop("offset", 0.02), options.pop("min_area", None),
                     options.pop("min_distance", None))
    if options:
        raise TypeError(f"unexpected options {sorted(options)}")
    out = {}
    for name, array in steps.items():
        if name == "labels":
            out[name] = _label_colours(array)
        elif array.dtype == bool:
            out[name] = array.astype(np.uint8) * np.uint8(255)
        else:
            top = float(array.max())
            out[name] = np.rint(array * (255.0 / top if top > 0 else 0.0)).astype(np.uint8)
    return out


# --------------------------------------------------------------------------- #
# Cellpose (optional)
# --------------------------------------------------------------------------- #
_MISSING_CELLPOSE = (
    "{what} needs the optional package 'cellpose' (pip install cellpose; its models are downloaded on first "
    "use), which is not importable here. Without it, use the classical cytobook.hep2_cells.segment_cells"
    "(field, nucleus_diameter=...), which needs no download, or backend_segmenter('classical')."
)


def _cellpose_models(what: str) -> Any:
    """``cellpose.models``, imported only now (it pulls in PyTorch); a clear ImportError when absent."""
    try:
        from cellpose import models
    except ImportError as error:
        raise ImportError(_MISSING_CELLPOSE.format(what=what)) from error
    return models


def cellpose_available() -> bool:
    """Whether ``cellpose`` can be imported (importing it, PyTorch included, the first time)."""
    try:
        _cellpose_models("cellpose_available")
    except ImportError:
        return False
    return True


def segment_cells_cellpose(
    field: np.ndarray,
    *,
    diameter: float = CELL_DIAMETER,
    model_type: str = "cyto",
    channels: tuple[int, int] = (0, 0),
    gpu: bool = False,
    model: Any = None,
    **eval_options: Any,
) -> np.ndarray:
    """Label the cells of a field with Cellpose, as the report did (2.2).

    Parameters
    ----------
    field
        RGB field (H, W, 3) or grayscale image (H, W).
    diameter
        Cell diameter in pixels; the report's :data:`CELL_DIAMETER` (75),
        found by hand because Cellpose's own estimate "does not work properly
        yet" and split cells into parts. Pixels, so it holds for the report's
        magnification only: scale it with the images.
    model_type
        Cellpose's pretrained model (``"cyto"``, ``"nuclei"``...; the report
        does not name one: ``"cyto"`` is *our reading* for cells).
    channels
        Cellpose's ``[channel to segment, nuclear channel]`` (0 grey, 1 red,
        2 green, 3 blue). With ``(0, 0)`` the untreated green channel is
        segmented, the input the report found best; other values pass the
        RGB image as it is (see :func:`segment_cells_two_channel`).
    gpu
        Run the network on a GPU, if PyTorch sees one.
    model
        A ``cellpose.models.CellposeModel`` to reuse over many fields; made
        from ``model_type`` and ``gpu`` when ``None`` (downloading its weights
        the first time).
    eval_options
        More arguments for the model's ``eval`` (``flow_threshold``...).

    Returns
    -------
    numpy.ndarray
        ``int32`` (H, W) labels: 0 background, cells 1..n.

    Raises
    ------
    ImportError
        If ``cellpose`` is not installed, naming the package and :func:`segment_cells`.
    """
    models = _cellpose_models("segment_cells_cellpose")
    diameter = _positive(diameter, "diameter")
    if model is None:
        model = models.CellposeModel(gpu=gpu, model_type=model_type)
    image = green_channel(field) if tuple(channels) == (0, 0) else field
    # Cellpose 2-3 return (masks, flows, styles), its Cellpose class a fourth item: the masks come first in all.
    result = model.eval(image, diameter=diameter, channels=list(channels), **eval_options)
    return np.asarray(result[0], dtype=np.int32)


def segment_nuclei_cellpose(field: np.ndarray, *, diameter: float = NUCLEUS_DIAMETER, model_type: str = "nuclei",
                            **options: Any) -> np.ndarray:
    """The nuclear mask of the report's second approach: Cellpose at :data:`NUCLEUS_DIAMETER` (60 px).

    The report tuned the diameter "with Cellpose" without naming the model;
    ``"nuclei"`` is *our reading*. ``options`` as in :func:`segment_cells_cellpose`.
    """
    return segment_cells_cellpose(field, diameter=diameter, model_type=model_type, **options)


def mean_nucleus_size(nuclei: np.ndarray) -> float:
    """Mean equivalent diameter in pixels (``sqrt(4 area / pi)``) of the labelled nuclei; 0 without any.

    *Our reading* of the report's "nucleus size", which it compares with
    90 pixels: a diameter, the unit of all its other sizes.
    """
    areas = np.bincount(np.asarray(nuclei).ravel().astype(np.int64))[1:]
    areas = areas[areas > 0]
    return float(np.sqrt(4.0 * areas / np.pi).mean()) if areas.size else 0.0


def two_channel_diameter(image_nucleus_size: float, collection_nucleus_size: float, *,
                         base: float = TWO_CHANNEL_DIAMETER, large: float = LARGE_NUCLEUS) -> float:
    """Cell diameter of the two-channel Cellpose pass for one image (2.2).

    The report: "a manually determined cellular diameter of 145 pixels for
    cells of nucleus size larger than 90 pixels. For cells with smaller
    nuclei [...] we multiply the expected 145 pixels by that image's average
    nucleus size and divide by the total average nucleus size."

    *Our reading*: sizes are mean equivalent diameters (:func:`mean_nucleus_size`),
    the test is on the image's mean, and "total average" is the mean over the
    whole collection. The rule is kept as written, although it jumps at 90
    pixels when the collection's mean differs from 90.

    Returns
    -------
    float
        ``base`` if ``image_nucleus_size > large``, else ``base * image_nucleus_size / collection_nucleus_size``.
    """
    collection_nucleus_size = _positive(collection_nucleus_size, "collection_nucleus_size")
    if image_nucleus_size > large:
        return float(base)
    return float(base) * float(image_nucleus_size) / collection_nucleus_size


def two_channel_image(field: np.ndarray, nuclei: np.ndarray, *, clip_limit: float = 2.0,
                      tile_grid_size: tuple[int, int] = (8, 8)) -> np.ndarray:
    """The report's input of the second Cellpose pass: cytoplasm in green, nuclei in blue (``uint8`` RGB).

    The green channel is split by the nuclear mask into "one [image] that
    contained only the nuclei, and another that contained the cytoplasm and
    empty space"; each is normalised (min-max) and equalised with CLAHE
    ("our images exhibit very low contrast and low grayscale levels"), black
    again outside its part, then they occupy two channels. Which channels the report does not say; green
    cytoplasm and blue nuclei are Cellpose's documented ``channels=[2, 3]``.
    """
    plane = green_channel(field)
    nuclei = np.asarray(nuclei)
    if nuclei.shape != plane.shape:
        raise ValueError(f"nuclei labels have shape {nuclei.shape}, the field {plane.shape}")
    clahe = make_clahe(clip_limit, tile_grid_size)
    inside = nuclei > 0
    out = np.zeros((*plane.shape, 3), np.uint8)
    for channel, region in ((2, inside), (1, ~inside)):
        part = np.where(region, plane, 0).astype(np.uint8)
        equalised = clahe.apply(cv2.normalize(part, None, 0, 255, cv2.NORM_MINMAX))
        # CLAHE lifts black to a few grey levels: mask again, so each channel holds only its part.
        out[..., channel] = np.where(region, equalised, 0)
    return out


def segment_cells_two_channel(field: np.ndarray, nuclei: np.ndarray, *, collection_nucleus_size: float,
                              **options: Any) -> np.ndarray:
    """The report's final segmentation (Figs. 11-13): Cellpose on :func:`two_channel_image`.

    The diameter is :func:`two_channel_diameter` of this field's
    :func:`mean_nucleus_size` and ``collection_nucleus_size`` (the mean over
    all fields' nuclear masks). ``options`` as in :func:`segment_cells_cellpose`.
    """
    _cellpose_models("segment_cells_two_channel")
    diameter = two_channel_diameter(mean_nucleus_size(nuclei), collection_nucleus_size)
    if diameter <= 0:  # no nucleus found: nothing to grow a cell around
        return np.zeros(np.asarray(nuclei).shape, np.int32)
    return segment_cells_cellpose(two_channel_image(field, nuclei), diameter=diameter, channels=(2, 3), **options)


@dataclass(frozen=True)
class Segmenter:
    """A field -> labels function and the name of the method behind it (for the notebook to print)."""

    name: str
    function: Callable[[np.ndarray], np.ndarray]

    def __call__(self, field: np.ndarray) -> np.ndarray:
        return self.function(field)


def backend_segmenter(prefer: str = "classical", *, diameter: float, strict: bool = False, threshold: str = "otsu",
                      **options: Any) -> Segmenter:
    """The segmentation to run: classical unless Cellpose is asked for and importable.

    Parameters
    ----------
    prefer
        ``"classical"`` (:func:`segment_cells`) or ``"cellpose"`` (:func:`segment_cells_cellpose`).
    diameter
        Expected object diameter in pixels: ``nucleus_diameter`` of the
        classical method, ``diameter`` of Cellpose.
    strict
        With ``prefer="cellpose"``, raise the ImportError when it is missing
        instead of falling back to the classical method (with a warning).
    threshold
        The classical method's threshold, ``"otsu"`` or ``"adaptive"`` (see
        :func:`segment_cells`); Cellpose has none.
    options
        More keyword arguments for the chosen function.

    Returns
    -------
    Segmenter
        Callable on a field; its ``name`` is ``"classical"`` or ``"cellpose"``.
    """
    if prefer not in ("classical", "cellpose"):
        raise ValueError(f"prefer must be 'classical' or 'cellpose', got {prefer!r}")
    if prefer == "cellpose":
        try:
            _cellpose_models("backend_segmenter('cellpose')")
        except ImportError as error:
            if strict:
                raise
            import warnings

            warnings.warn(f"{error} Falling back to the classical segmentation.", stacklevel=2)
        else:
            return Segmenter("cellpose", lambda field: segment_cells_cellpose(field, diameter=diameter, **options))
    return Segmenter("classical", lambda field: segment_cells(field, nucleus_diameter=diameter, threshold=threshold,
                                                               **options))


# --------------------------------------------------------------------------- #
# cells: crops, filtering, squaring (2.3)
# --------------------------------------------------------------------------- #
def cell_crops(field: np.ndarray, labels: np.ndarray, *, black_level: int = DEFAULT_THRESHOLD,
               **columns: Any) -> pd.DataFrame:
    """One row per labelled cell: its crop and the two measures the report filters on (2.3).

    Parameters
    ----------
    field
        RGB field (H, W, 3) or grayscale image (H, W); crops are of its green channel.
    labels
        Integer labels (H, W), 0 background (from :func:`segment_cells` or Cellpose).
    black_level
        A crop's pixel is *black* at or below this 8-bit value: the masked-out
        background (0) and cell pixels as dark as the empty slide. The default
        is :data:`cytobook.preprocess.DEFAULT_THRESHOLD` (10), the same
        "cell or black" level as the C-NMC crops.
    columns
        Constant columns to add (``label_name=...``, ``path=...``), so tables
        of many fields can be concatenated.

    Returns
    -------
    pandas.DataFrame
        Columns ``cell`` (the label), ``top``, ``left``, ``height``, ``width``
        (the bounding box), ``pixels`` (the cell's area in pixels),
        ``black_share`` (share of the crop's pixels that are black, 0-1),
        ``crop`` (``uint8`` (height, width) green channel, black outside the
        cell), then ``columns``. Rows in label order.
    """
    plane = green_channel(field)
    labels = np.asarray(labels)
    if labels.shape != plane.shape or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"labels must be integers of the field's shape {plane.shape}, "
                         f"got {labels.dtype} {labels.shape}")
    black_level = check_int(black_level, "black_level", 0, 255)
    rows = []
    for index, box in enumerate(ndi.find_objects(labels), start=1):
        if box is None:  # a label number not in use
            continue
        mask = labels[box] == index
        crop = np.where(mask, plane[box], 0).astype(np.uint8)
        rows.append({"cell": index, "top": box[0].start, "left": box[1].start, "height": mask.shape[0],
                     "width": mask.shape[1], "pixels": int(mask.sum()),
                     "black_share": float(np.mean(crop <= black_level)), "crop": crop})
    table = pd.DataFrame(rows, columns=["cell", "top", "left", "height", "width", "pixels", "black_share", "crop"])
    return table.assign(**columns)


def field_cells(fields: pd.DataFrame, *, nucleus_diameter: float, cells_per_field: int | None = None, seed: int = 0,
                segment: Any = None) -> pd.DataFrame:
    """Segment every field image of ``fields`` and crop its cells: the cells of a collection, one row each.

    Parameters
    ----------
    fields
        Field images (:func:`cytobook.datasets.hep2.load_fields`): ``path``,
        ``image_id``, ``label``, ``label_name``, ``source``.
    nucleus_diameter
        Passed to :func:`segment_cells` (the classical segmentation) unless ``segment`` is given.
    cells_per_field
        Keep at most this many cells of a field, drawn at random (``None``: all).
    seed
        Draws those cells.
    segment
        A function field -> labels (e.g. a :class:`Segmenter`); default the classical one.

    Returns
    -------
    pandas.DataFrame
        The columns of :func:`cell_crops`, then ``field_id`` (the field's row
        in ``fields``), ``path``, ``image_id``, ``label``, ``label_name``, ``source``.

    Raises
    ------
    ValueError
        Naming the field image in which no cell was found.
    """
    if segment is None:
        def segment(image):
            return segment_cells(image, nucleus_diameter=nucleus_diameter)
    rng = np.random.default_rng(seed)
    tables = []
    for row in fields.itertuples():
        image = read_image(row.path)
        cells = cell_crops(image, segment(image), field_id=row.Index, path=row.path, image_id=row.image_id,
                           label=row.label, label_name=row.label_name, source=row.source)
        if cells.empty:
            raise ValueError(f"{row.path}: no cell found in this field image of class {row.label_name!r} "
                             f"(expected stained cells about {nucleus_diameter:g} px across)")
        if cells_per_field is not None and len(cells) > cells_per_field:
            cells = cells.iloc[np.sort(rng.choice(len(cells), cells_per_field, replace=False))]
        tables.append(cells)
    return pd.concat(tables, ignore_index=True)


def split_by_field(cells: pd.DataFrame, validation: float = 0.3, seed: int = 0, by: str = "label_name") -> pd.Series:
    """``"train"`` or ``"val"`` for each cell: whole fields go to one side, so a field's cells are never on both.

    Per class, ``round(validation * fields)`` of its fields (at least one,
    never all) are drawn for validation. A class with a single field cannot
    be split so: its cells are split at random in the same proportion, as the
    report's per-cell validation set does (*our choice*; only these classes'
    validation cells share a field with training cells).

    Parameters
    ----------
    cells
        Cells with ``field_id`` (:func:`field_cells`) and the class column ``by``.
    validation
        Share of each class's fields held out.
    """
    if not 0 < validation < 1:
        raise ValueError(f"validation must be between 0 and 1, got {validation}")
    rng = np.random.default_rng(seed)
    split = pd.Series("train", index=cells.index, dtype=object)
    for _, group in cells.groupby(by, sort=True):
        fields = np.unique(group["field_id"])
        if len(fields) > 1:
            held = rng.choice(fields, min(len(fields) - 1, max(1, round(validation * len(fields)))), replace=False)
            split[group.index[group["field_id"].isin(held)]] = "val"
        elif len(group) > 1:
            held = rng.choice(group.index, max(1, round(validation * len(group))), replace=False)
            split[held] = "val"
    return split


def filter_bands(table: pd.DataFrame, by: str | None = "label_name", low: float = 5.0, high: float = 95.0,
                 black_band: tuple[float, float] | None = None) -> pd.DataFrame:
    """The bands :func:`filter_cells` keeps, per class: the lines of Fig. 14 and the rectangle of Fig. 15.

    Returns one row per class (index: the ``by`` values, or ``"all"`` when
    ``by`` is ``None``) with ``pixels_low``, ``pixels_high`` (the ``low`` and
    ``high`` percentiles of ``pixels``) and ``black_low``, ``black_high``
    (the ``black_band`` percentiles of ``black_share``, default ``(low, high)``).
    """
    if not 0 <= low < high <= 100:
        raise ValueError(f"percentiles must satisfy 0 <= low < high <= 100, got {low}, {high}")
    black_low, black_high = (low, high) if black_band is None else black_band
    if not 0 <= black_low < black_high <= 100:
        raise ValueError(f"black_band must satisfy 0 <= low < high <= 100, got {black_band}")
    missing = [c for c in ("pixels", "black_share", *([by] if by else [])) if c not in table.columns]
    if missing:
        raise ValueError(f"the table of cells lacks {missing}; found {list(table.columns)}")
    groups = table.groupby(by, observed=True, sort=True) if by else [("all", table)]
    rows = {}
    for name, group in groups:
        pixels = np.percentile(group["pixels"], (low, high))
        black = np.percentile(group["black_share"], (black_low, black_high))
        rows[name] = {"pixels_low": pixels[0], "pixels_high": pixels[1], "black_low": black[0], "black_high": black[1]}
    return pd.DataFrame.from_dict(rows, orient="index")


def filter_cells(table: pd.DataFrame, by: str | None = "label_name", low: float = 5.0, high: float = 95.0,
                 black_band: tuple[float, float] | None = None) -> pd.DataFrame:
    """Drop the cells outside their class' size band and the black-pixel outliers (2.3, Figs. 14-15).

    The report excludes "the 5% outliers for each class" of size (fragments
    and noise at the low end, merged cells at the high end), then keeps only
    the cells in "the central rectangle" of a plot of black-pixel share
    against pixel count, drawn by eye. *Our reproducible reading*: the
    rectangle is the class' ``[low, high]`` percentile band of ``pixels``
    times the ``black_band`` percentile band of ``black_share`` (by default
    the same percentiles), both computed per class on the unfiltered table
    (:func:`filter_bands`); a cell is kept when it lies inside both, bounds
    included. By construction about ``low + (100 - high)`` percent of a class
    falls out of each band even when nothing is wrong with it.

    Parameters
    ----------
    table
        Cells with ``pixels``, ``black_share`` and the ``by`` column (see :func:`cell_crops`).
    by
        Column of the class; ``None`` treats the table as one class.
    low, high
        Percentiles of the size band.
    black_band
        Percentiles of the black-share band; default ``(low, high)``.

    Returns
    -------
    pandas.DataFrame
        The kept rows, with their original index.
    """
    bands = filter_bands(table, by, low, high, black_band)
    keys = table[by] if by else pd.Series("all", index=table.index)
    aligned = bands.reindex(keys.to_numpy()).set_axis(table.index)
    keep = table["pixels"].between(aligned["pixels_low"], aligned["pixels_high"]) \
        & table["black_share"].between(aligned["black_low"], aligned["black_high"])
    return table[keep]


def cell_brightness(crop: np.ndarray) -> float:
    """Mean level of a cell crop's own pixels (those above 0, the masked-out background); 0 for an empty crop."""
    inside = np.asarray(crop)[np.asarray(crop) > 0]
    return float(inside.mean()) if inside.size else 0.0


def level_fields(table: pd.DataFrame, by: str = "field_id") -> pd.DataFrame:
    """``table`` with each field's crops scaled so that every field's median cell brightness is the same.

    Fields differ several-fold in exposure; scaled this way, a cell's
    brightness says how it stands against the other cells of its field (the
    report's atypical cells are "more luminous" than the rest), no longer
    which field it came from. The common level is the median cell brightness
    of the whole table; levels above 255 are clipped.

    Parameters
    ----------
    table
        Cells with a ``crop`` column (:func:`field_cells`) and the field column ``by``.

    Returns
    -------
    pandas.DataFrame
        A copy with the scaled ``crop`` and a ``brightness`` column (:func:`cell_brightness` after scaling).

    Raises
    ------
    ValueError
        If a column is missing, or a field's cells are all black.
    """
    missing = [column for column in ("crop", by) if column not in table.columns]
    if missing:
        raise ValueError(f"level_fields needs the columns {missing}; got {list(table.columns)}")
    table = table.copy()
    brightness = table["crop"].map(cell_brightness)
    field_level = brightness.groupby(table[by]).transform("median")
    dark = sorted(set(table.loc[field_level <= 0, by]))
    if dark:
        raise ValueError(f"fields {dark}: every cell is black, their exposure cannot be levelled")
    gain = float(brightness.median()) / field_level
    table["crop"] = [np.clip(np.rint(crop.astype(np.float32) * np.float32(g)), 0, 255).astype(np.uint8)
                     for crop, g in zip(table["crop"], gain)]
    table["brightness"] = table["crop"].map(cell_brightness)
    return table


def stretch_cell(crop: np.ndarray, percentiles: tuple[float, float] = (1.0, 99.0)) -> np.ndarray:
    """Contrast-stretch a cell crop over its own pixels: their ``percentiles`` to 1 and 255, the black background kept 0.

    *Our choice*, beside the report's treatments of whole fields: the ICPR
    contests' cells come stretched one by one, and without it the fields'
    differences in exposure are what a classifier learns first (on the
    ``demo`` fields, per-field accuracy over the 14 patterns rose from 0.21
    to 0.43). A crop whose cell is flat is returned as it is.
    """
    crop = np.asarray(crop)
    if crop.dtype != np.uint8:
        raise ValueError(f"expected a uint8 crop, got {crop.dtype}")
    cell = crop > 0
    if not cell.any():
        return crop.copy()
    low, high = np.percentile(crop[cell], percentiles)
    if high <= low:
        return crop.copy()
    scaled = np.clip((crop.astype(np.float32) - low) / (high - low), 0.0, 1.0) * 254.0 + 1.0
    return np.where(cell, np.rint(scaled), 0).astype(np.uint8)


def square_and_resize(crop: np.ndarray, size: int = CROP_SIZE) -> np.ndarray:
    """Pad a cell crop with black bars to a centred square, then resize it to ``size`` x ``size`` (2.3).

    The aspect ratio is kept; shrinking averages (``INTER_AREA``), enlarging
    interpolates linearly, through :func:`cytobook.preprocess.pad_to_square`
    and :func:`~cytobook.preprocess.resize_square`. ``crop`` is grayscale
    (H, W) or RGB (H, W, 3); the result has the same number of channels and dtype.
    """
    size = check_int(size, "size", 1)
    crop = np.asarray(crop)
    if crop.ndim == 2:
        # preprocess's helpers take RGB: go through three equal planes and keep one.
        return resize_square(pad_to_square(np.dstack([crop] * 3)), size)[..., 0].copy()
    return resize_square(pad_to_square(crop), size)


def read_cells(paths: Iterable[str | os.PathLike], size: int) -> np.ndarray:
    """Single-cell images (the ICPR contests' files) as the network's input: squared, resized, three channels.

    Each file is read in grey levels (:func:`cytobook.io.read_image`: a
    damaged file is named), padded to a square and resized to ``size``
    (:func:`square_and_resize`), then copied into three channels
    (:func:`to_three_channels`). Returns ``uint8`` (N, size, size, 3).
    """
    planes = [square_and_resize(read_image(path, "L"), size) for path in paths]
    if not planes:
        raise ValueError("no cell image to read")
    return to_three_channels(np.stack(planes))


def to_three_channels(images: np.ndarray) -> np.ndarray:
    """The green channel copied into all three channels: the report's final input (2.3).

    The report tried nuclei in green, cytoplasm in blue and a k-means
    segmentation in red, which "yielded worse results than just copying the
    green channel an additional two times".

    Parameters
    ----------
    images
        Grayscale (H, W) or a batch (N, H, W), replicated as they are; or RGB
        whose last axis has length 3, (H, W, 3) or (N, H, W, 3), whose green
        channel is replicated.

    Returns
    -------
    numpy.ndarray
        (..., H, W, 3), same dtype.
    """
    images = np.asarray(images)
    if images.ndim >= 3 and images.shape[-1] == 3:
        images = images[..., 1]
    if images.ndim not in (2, 3):
        raise ValueError(f"expected (H, W), (N, H, W), (H, W, 3) or (N, H, W, 3), got shape {images.shape}")
    return np.repeat(images[..., None], 3, axis=-1)


# --------------------------------------------------------------------------- #
# oversampling the small classes of a training set (2.3)
# --------------------------------------------------------------------------- #
# The seven symmetries of the square besides the identity: report 1's five
# flips and rotations, and the two diagonal flips as flip + rotation.
_SYMMETRIES = (*AUGMENTATIONS, "flip_horizontal+rotate_90", "flip_vertical+rotate_90")


def oversample_minorities(images: np.ndarray, labels: np.ndarray, rng: np.random.Generator,
                          target: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Add flipped and rotated copies of the cells of each class smaller than ``target``.

    Apply it to the **training set only, after the split**: the report
    augmented "only to the training dataset after the split" and "only [...]
    to classes that were lacking in images"; a copy of a test cell in the
    training set would leak it.

    The copies are the seven symmetries of the square other than the identity
    (horizontal, vertical and diagonal flips; rotations by 90, 180 and 270
    degrees), which lose no pixel and interpolate nothing. Each (image,
    symmetry) pair is used at most once while a class has enough of them
    (up to eight times its size); beyond, pairs are drawn again.

    Parameters
    ----------
    images
        Square images (N, S, S) or (N, S, S, C).
    labels
        (N,) class of each image (any hashable values).
    rng
        Draws the images and symmetries.
    target
        Images per class afterwards; default the largest class' count.
        Classes already at or above it are left as they are.

    Returns
    -------
    tuple of numpy.ndarray
        Images and labels: the originals first, unchanged and in their
        order, then the copies, class by class (in sorted label order).
    """
    images, labels = np.asarray(images), np.asarray(labels)
    if images.ndim not in (3, 4) or images.shape[1] != images.shape[2]:
        raise ValueError(f"images must be square, (N, S, S) or (N, S, S, C); got shape {images.shape}")
    if labels.shape != (len(images),):
        raise ValueError(f"labels must have shape ({len(images)},), got {labels.shape}")
    classes, counts = np.unique(labels, return_counts=True)
    target = int(counts.max()) if target is None else check_int(target, "target", 1)
    # apply_augmentation reads a 3-D array as one (H, W, C) image: give grayscale a channel axis.
    planes = images[..., None] if images.ndim == 3 else images
    extra_images, extra_labels = [images], [labels]
    for name, count in zip(classes, counts):
        missing = target - int(count)
        if missing <= 0:
            continue
        members = np.flatnonzero(labels == name)
        pairs = len(members) * len(_SYMMETRIES)
        chosen = np.concatenate([rng.permutation(pairs) for _ in range(-(-missing // pairs))])[:missing]
        chosen = np.sort(chosen)
        copies = [apply_augmentation(planes[members[pair // len(_SYMMETRIES)]], _SYMMETRIES[pair % len(_SYMMETRIES)])
                  for pair in chosen]
        extra_images.append(np.stack(copies).reshape(missing, *images.shape[1:]))
        extra_labels.append(np.full(missing, name, dtype=labels.dtype))
    return np.concatenate(extra_images), np.concatenate(extra_labels)



def random_symmetries(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Each image under one of the eight symmetries of the square (the identity included), drawn at random.

    Fresh flips and rotations every epoch, for networks trained from random
    weights (*our choice*, beside the report's fixed copies of
    :func:`oversample_minorities`); nothing is interpolated. ``images``:
    a batch (N, S, S, C).
    """
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[1] != images.shape[2]:
        raise ValueError(f"images must be a batch of squares (N, S, S, C), got shape {images.shape}")
    drawn = rng.integers(0, len(_SYMMETRIES) + 1, len(images))
    result = images.copy()
    for index, name in enumerate(_SYMMETRIES, start=1):
        chosen = np.flatnonzero(drawn == index)
        if len(chosen):
            result[chosen] = apply_augmentation(images[chosen], name)
    return result
