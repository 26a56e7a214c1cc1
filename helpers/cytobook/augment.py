"""Class balancing by subsampling and augmentation, as report 1 balances C-NMC.

Report 1 subsamples the majority class (ALL) and adds copies of minority
(HEM) images, each flipped or rotated by a multiple of 90 degrees: symmetries
of the square that lose no pixel and interpolate nothing.

Balancing works on the *table* of images: augmented rows point at their
source file and name the transform in an ``augmentation`` column, so the set
can be inspected and reproduced before any pixel is read;
:func:`apply_augmentation` applies the transform when images are loaded.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

#: The report's transforms; "none" marks an original image.
AUGMENTATIONS = ("flip_horizontal", "flip_vertical", "rotate_90", "rotate_180", "rotate_270")


def apply_augmentation(images: np.ndarray, augmentation: str) -> np.ndarray:
    """Apply one named transform to an image ``(H, W, C)`` or a batch ``(N, H, W, C)``.

    Raises
    ------
    ValueError
        If ``augmentation`` is not ``"none"`` or one of :data:`AUGMENTATIONS`.
    """
    row, col = (0, 1) if images.ndim == 3 else (1, 2)
    if augmentation == "none":
        return images
    if augmentation == "flip_horizontal":
        return np.flip(images, axis=col)
    if augmentation == "flip_vertical":
        return np.flip(images, axis=row)
    if augmentation.startswith("rotate_") and augmentation in AUGMENTATIONS:
        return np.rot90(images, k=int(augmentation.removeprefix("rotate_")) // 90, axes=(row, col))
    raise ValueError(f"unknown augmentation {augmentation!r}; expected 'none' or one of {', '.join(AUGMENTATIONS)}")


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
