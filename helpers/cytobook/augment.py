"""Augmented training sets of the C-NMC reports, as tables of images and named transforms.

* **Report 1** subsamples the majority class (ALL) and adds copies of minority
  (HEM) images, each flipped or rotated by a multiple of 90 degrees: symmetries
  of the square that lose no pixel and interpolate nothing
  (:func:`balance_classes`).
* **Report 2** (Liu & Long, 2.3) halves the ALL cells into All-A and All-B and
  builds two bagging sets, each with one half as it is and the other half
  augmented, and the HEM cells with as many augmented copies as balance them, in both
  (:func:`bagging_sets`). Its augmentation is "randomly chosen one or
  combination of" rotation, flips, Gaussian noise, contrast and colour-channel
  adjustment (:func:`draw_augmentation`).

Both work on the *table* of images: augmented rows point at their source file
and name the transform in an ``augmentation`` column (parameters included, so
the set can be inspected and reproduced before any pixel is read);
:func:`apply_augmentation` applies it when images are loaded.
"""

from __future__ import annotations

import cv2
import numpy as np
import pandas as pd

#: Report 1's transforms; "none" marks an original image.
AUGMENTATIONS = ("flip_horizontal", "flip_vertical", "rotate_90", "rotate_180", "rotate_270")

#: Report 2's transforms, with parameters where they have any (see :func:`draw_augmentation`).
RANDOM_TRANSFORMS = ("rotate", "flip_horizontal", "flip_vertical", "noise", "contrast", "channels")


def apply_augmentation(images: np.ndarray, augmentation: str) -> np.ndarray:
    """Apply a named transform to an image ``(H, W, C)`` or a batch ``(N, H, W, C)``.

    ``augmentation`` is ``"none"``, one of :data:`AUGMENTATIONS`, or transforms
    joined by ``"+"``, applied in order, each ``name`` or ``name:p1:p2...``:

    - ``rotate:DEGREES``: rotation about the centre, anticlockwise, black corners;
    - ``noise:SIGMA:SEED``: Gaussian noise of ``SIGMA`` grey levels on the cell;
    - ``contrast:FACTOR``: each pixel's distance from the cell's mean colour scaled;
    - ``channels:R:G:B``: each colour channel scaled.

    The black background of a segmented cell (all channels 0) stays black
    under every transform: black means "no cell" in C-NMC images.

    Raises
    ------
    ValueError
        If a transform is unknown or its parameters do not parse.
    """
    if augmentation == "none":
        return images
    for part in augmentation.split("+"):
        images = _apply_one(images, part, augmentation)
    return images


#: How many parameters each of report 2's transforms takes after its name.
_PARAMETER_COUNTS = {"flip_horizontal": 0, "flip_vertical": 0, "rotate": 1, "noise": 2, "contrast": 1, "channels": 3}


def _apply_one(images: np.ndarray, part: str, whole: str) -> np.ndarray:
    """Apply one transform ``name[:p1:p2...]`` of the augmentation ``whole``."""
    row, col = (0, 1) if images.ndim == 3 else (1, 2)
    name, *text = part.split(":")
    if name in AUGMENTATIONS and not text:
        if name.startswith("rotate_"):
            return np.rot90(images, k=int(name.removeprefix("rotate_")) // 90, axes=(row, col))
        return np.flip(images, axis=col if name == "flip_horizontal" else row)
    try:
        params = [float(value) for value in text]
    except ValueError:
        params = None
    if params is None or len(params) != _PARAMETER_COUNTS.get(name, -1):
        raise ValueError(
            f"unknown augmentation {part!r} in {whole!r}; expected 'none', one of {', '.join(AUGMENTATIONS)}, "
            "or '+'-joined rotate:DEGREES, noise:SIGMA:SEED, contrast:FACTOR, channels:R:G:B"
        )
    if images.ndim == 4:
        return np.stack([_apply_one(image, part, whole) for image in images])
    if name == "rotate":
        height, width = images.shape[:2]
        matrix = cv2.getRotationMatrix2D(((width - 1) / 2, (height - 1) / 2), params[0], 1.0)
        return cv2.warpAffine(np.ascontiguousarray(images), matrix, (width, height), flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return _on_cell(images, name, params)


def _on_cell(image: np.ndarray, name: str, params: list[float]) -> np.ndarray:
    """Noise, contrast or channel scaling of the cell's pixels; the black background stays black."""
    cell = image.max(axis=-1, keepdims=True) > 0
    pixels = image.astype(np.float32)
    if name == "noise":
        pixels = pixels + np.random.default_rng(int(params[1])).normal(0.0, params[0], size=pixels.shape)
    elif name == "contrast":
        mean = pixels[cell[..., 0]].mean(axis=0) if cell.any() else 0.0
        pixels = mean + params[0] * (pixels - mean)
    else:
        pixels = pixels * np.asarray(params, dtype=np.float32)
    if np.issubdtype(image.dtype, np.integer):
        # Cell pixels stay at least 1, so they never turn into background.
        pixels = np.clip(np.rint(pixels), 1, np.iinfo(image.dtype).max)
    else:
        pixels = np.clip(pixels, 0.0, 1.0)
    return np.where(cell, pixels.astype(image.dtype), image)


def draw_augmentation(rng: np.random.Generator) -> str:
    """Draw one of report 2's augmentations: one transform, or a combination of two or three.

    The report names the transforms (rotation, horizontal or vertical flip,
    Gaussian noise, contrast and colour-channel adjustment) but not their
    ranges; *our choice*: any rotation angle, noise of 2-8 grey levels,
    contrast x0.8-1.2, each channel x0.9-1.1, and one, two or three distinct
    transforms with equal probability. The result is a string for
    :func:`apply_augmentation`.
    """
    count = int(rng.integers(1, 4))
    names = [RANDOM_TRANSFORMS[i] for i in np.sort(rng.choice(len(RANDOM_TRANSFORMS), size=count, replace=False))]
    parts = []
    for name in names:
        if name == "rotate":
            parts.append(f"rotate:{rng.uniform(0.0, 360.0):.1f}")
        elif name == "noise":
            parts.append(f"noise:{rng.uniform(2.0, 8.0):.1f}:{int(rng.integers(2**31))}")
        elif name == "contrast":
            parts.append(f"contrast:{rng.uniform(0.8, 1.2):.3f}")
        elif name == "channels":
            parts.append("channels:" + ":".join(f"{v:.3f}" for v in rng.uniform(0.9, 1.1, size=3)))
        else:
            parts.append(name)
    return "+".join(parts)


def balance_classes(
    table: pd.DataFrame,
    seed: int = 0,
    target: int | None = None,
    label: str = "label",
    majority: int | None = None,
) -> pd.DataFrame:
    """Balance a two-class table: subsample the majority class, augment the minority class.

    Parameters
    ----------
    table
        One row per image, with a ``label`` column.
    seed
        Seeds the subsample and the choice of images and transforms.
    target
        Images per class after balancing, at most the majority count and six
        times the minority count; by default (*our choice*: the report gives
        none) the mean of the two counts.
    majority
        The label that is subsampled; default the larger class (ALL in C-NMC).

    Returns
    -------
    pandas.DataFrame
        The balanced table, shuffled, with an ``augmentation`` column (``"none"`` for originals).
    """
    rng = np.random.default_rng(seed)
    if majority is None:
        majority = table[label].value_counts().idxmax()
    major = table[table[label] == majority]
    minor = table[table[label] != majority]
    if minor[label].nunique() != 1 or major.empty:
        raise ValueError(f"balance_classes needs exactly two classes in column {label!r}, found {sorted(table[label].unique())}")
    if len(major) < len(minor):
        raise ValueError(f"label {majority} has {len(major)} images, fewer than the other class ({len(minor)}); pass majority=")
    target = int(round((len(major) + len(minor)) / 2)) if target is None else int(target)
    if not len(minor) <= target <= len(major) or target > 6 * len(minor):
        raise ValueError(
            f"target {target} per class is impossible with {len(major)} majority and {len(minor)} minority images"
        )
    kept = major.iloc[np.sort(rng.choice(len(major), size=target, replace=False))].assign(augmentation="none")
    extra = target - len(minor)
    # Each (image, transform) pair is used at most once, so no two augmented copies are identical.
    pairs = rng.choice(len(minor) * len(AUGMENTATIONS), size=extra, replace=False)
    augmented = minor.iloc[pairs // len(AUGMENTATIONS)].assign(
        augmentation=np.asarray(AUGMENTATIONS)[pairs % len(AUGMENTATIONS)]
    )
    balanced = pd.concat([kept, minor.assign(augmentation="none"), augmented], ignore_index=True)
    return balanced.iloc[rng.permutation(len(balanced))].reset_index(drop=True)


#: The three parts of report 2's bagging sets (its Fig. 2).
BAGGING_PARTS = ("All-A", "All-B", "HEM")


def bagging_sets(table: pd.DataFrame, seed: int = 0, label: str = "label", positive: int = 1) -> pd.DataFrame:
    """Report 2's training sets A and B (Liu & Long, 2.3 and Fig. 2) as one table.

    The ALL cells (``label == positive``) are split at random into two halves
    of equal size, All-A and All-B. Set A holds All-A as it is and one
    augmented copy of each All-B cell; set B the reverse. Both hold every HEM
    cell and the same augmented HEM copies (the report: each model "learns
    the same HEM cell features but mixed ALL cell features"). The report
    gives no number of HEM copies; with about twice as many ALL cells as HEM
    cells, its figure reads as one copy each, which balances the sets. *Our
    choice* keeps that purpose on any data: as many HEM copies as there are
    ALL cells beyond the HEM cells (none when HEM cells are as many), drawn
    from the HEM cells in turn, so each set holds as many HEM as ALL images.

    Parameters
    ----------
    table
        The training part, one row per image, with a ``label`` column.
    seed
        Seeds the halving and every augmentation drawn (:func:`draw_augmentation`).

    Returns
    -------
    pandas.DataFrame
        ``table``'s rows, repeated as needed, with columns ``set`` (``"A"`` or
        ``"B"``), ``part`` (one of :data:`BAGGING_PARTS`) and ``augmentation``
        (``"none"`` for originals); each set shuffled.

    Raises
    ------
    ValueError
        If the table holds no cell of either class.
    """
    rng = np.random.default_rng(seed)
    is_all = (table[label] == positive).to_numpy()
    if is_all.all() or not is_all.any():
        raise ValueError(f"bagging_sets needs ALL ({label} == {positive}) and HEM cells; found labels "
                         f"{sorted(table[label].unique())}")
    all_rows = table[is_all]
    order = rng.permutation(len(all_rows))
    halves = {"All-A": all_rows.iloc[np.sort(order[: len(order) // 2])],
              "All-B": all_rows.iloc[np.sort(order[len(order) // 2 :])]}
    hem = table[~is_all].assign(part="HEM")

    def augmented(rows: pd.DataFrame) -> pd.DataFrame:
        return rows.assign(augmentation=[draw_augmentation(rng) for _ in range(len(rows))])

    extra = max(len(all_rows) - len(hem), 0)
    turns = np.concatenate([rng.permutation(len(hem)) for _ in range(-(-extra // len(hem)))]) if extra else []
    hem_copies = augmented(hem.iloc[np.sort(np.asarray(turns[:extra], dtype=int))])
    copies = {part: augmented(rows.assign(part=part)) for part, rows in halves.items()}
    sets = []
    for name, kept, other in (("A", "All-A", "All-B"), ("B", "All-B", "All-A")):
        rows = pd.concat([halves[kept].assign(part=kept, augmentation="none"), copies[other],
                          hem.assign(augmentation="none"), hem_copies], ignore_index=True)
        sets.append(rows.iloc[rng.permutation(len(rows))].assign(set=name))
    return pd.concat(sets, ignore_index=True)


def bagging_composition(sets: pd.DataFrame) -> pd.DataFrame:
    """Images of each bagging set by part, as they are and augmented (the counts of the report's Fig. 2).

    ``sets`` is a table of :func:`bagging_sets`; rows ``(set, part)``, columns ``"as it is"`` and ``"augmented"``.
    """
    kind = np.where(sets["augmentation"] == "none", "as it is", "augmented")
    return sets.assign(kind=kind).groupby(["set", "part", "kind"]).size().unstack(fill_value=0)


def crop_and_flip(image: np.ndarray, mask: np.ndarray | None, size: int, rng: np.random.Generator | None = None
                  ) -> tuple[np.ndarray, np.ndarray | None]:
    """Report 3's augmentation: the same random ``size`` crop and random flips of an image and its mask.

    With ``rng`` the crop's corner is random and each flip (horizontal,
    vertical) happens with probability 1/2; without, the crop is centred and
    nothing is flipped (validation and test). An image smaller than ``size``
    is first enlarged (the mask with it, by nearest neighbour) so that its
    shorter side is ``size``. ``mask`` may be ``None`` (no mask).
    """
    height, width = image.shape[:2]
    if min(height, width) < size:
        scale = size / min(height, width)
        shape = (max(size, round(width * scale)), max(size, round(height * scale)))
        image = cv2.resize(image, shape, interpolation=cv2.INTER_LINEAR)
        if mask is not None:
            mask = cv2.resize(mask.astype(np.uint8), shape, interpolation=cv2.INTER_NEAREST).astype(mask.dtype)
        height, width = image.shape[:2]
    if rng is None:
        top, left, flips = (height - size) // 2, (width - size) // 2, (False, False)
    else:
        top, left = int(rng.integers(0, height - size + 1)), int(rng.integers(0, width - size + 1))
        flips = tuple(bool(f) for f in rng.random(2) < 0.5)
    window = (slice(top, top + size), slice(left, left + size))
    image, mask = image[window], None if mask is None else mask[window]
    for axis, flip in zip((1, 0), flips):  # horizontal, then vertical
        if flip:
            image = np.flip(image, axis=axis)
            mask = None if mask is None else np.flip(mask, axis=axis)
    return np.ascontiguousarray(image), None if mask is None else np.ascontiguousarray(mask)
