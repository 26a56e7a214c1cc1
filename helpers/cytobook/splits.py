"""Train/validation/test splits of an image table: the reports' random split and a leakage-free one.

The reports split C-NMC images at random, so cells of one patient land in both
training and test and the test score partly measures recognising the patient.
:func:`image_level_split` reproduces that; :func:`subject_level_split` keeps
every subject's images in one part, which is what a new patient would see;
:func:`assert_no_leakage` verifies the latter on any split column.

All three take a table with one row per image (as returned by
:func:`cytobook.datasets.cnmc.load_cnmc`) and are deterministic for a seed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

#: Names of the three parts, in the order of ``fractions``.
PARTS: tuple[str, str, str] = ("train", "val", "test")

# Random assignments tried per class by subject_level_split; the best is kept.
_TRIALS = 200


class LeakageError(ValueError):
    """Some subjects have images in more than one part of a split."""


def image_level_split(
    table: pd.DataFrame,
    fractions: Sequence[float] = (0.6, 0.2, 0.2),
    seed: int = 0,
    stratify: str | None = "label",
) -> pd.Series:
    """Assign each image at random to train, val or test, preserving the class ratio.

    Parameters
    ----------
    table
        One row per image.
    fractions
        Shares of ``(train, val, test)``, summing to 1; a zero leaves that part empty.
    seed
        Random seed; the same table and seed give the same split.
    stratify
        Column whose proportions every part keeps (``None``: plain random).

    Returns
    -------
    pandas.Series
        ``"train"``/``"val"``/``"test"`` per row, indexed like ``table``, named ``"split"``.

    Raises
    ------
    ValueError
        If the fractions are invalid, the stratify column has missing values,
        or a class is too small to appear in every part.
    """
    f_train, f_val, f_test = _check_fractions(fractions)
    positions = np.arange(len(table))
    labels = _class_codes(table, stratify)
    result = np.full(len(table), PARTS[0], dtype=object)
    try:
        # Two calls of train_test_split: test off the whole, then val off the rest.
        rest = positions
        if f_test > 0:
            rest, test = train_test_split(positions, test_size=f_test, random_state=seed, stratify=labels)
            result[test] = "test"
        if f_val > 0:
            rest_labels = None if labels is None else labels[rest]
            _, val = train_test_split(
                rest, test_size=f_val / (f_train + f_val), random_state=seed, stratify=rest_labels
            )
            result[val] = "val"
    except ValueError as error:
        by = f" stratified by {stratify!r}" if stratify else ""
        raise ValueError(
            f"cannot split {len(table)} images into train/val/test = {tuple(fractions)}{by}: {error}"
        ) from error
    return pd.Series(result, index=table.index, name="split")


def subject_level_split(
    table: pd.DataFrame,
    fractions: Sequence[float] = (0.6, 0.2, 0.2),
    seed: int = 0,
    group: str = "subject",
    stratify: str | None = "label",
) -> pd.Series:
    """Assign whole subjects to train, val or test, so that no subject leaks across parts.

    Each class's subjects are split separately, so each part holds subjects
    of every class; among many random assignments the one whose image counts
    come closest to ``fractions`` is kept. ``table``, ``fractions`` (of
    *images*), ``seed`` and the result are as for :func:`image_level_split`.

    Parameters
    ----------
    group
        Column identifying the subject (patient or donor).
    stratify
        Column with each subject's class (``None``: all subjects pooled).

    Raises
    ------
    ValueError
        If the fractions are invalid, a row has no subject or no class, a
        subject has images of two classes, or a class has fewer subjects than
        there are non-empty parts.
    """
    fractions = _check_fractions(fractions)
    parts = [part for part, share in zip(PARTS, fractions, strict=True) if share > 0]
    shares = np.array([share for share in fractions if share > 0])
    groups = table[group]
    if groups.isna().any():
        raise ValueError(f"{int(groups.isna().sum())} rows have no {group!r}; "
                         "drop them (e.g. an unlabelled test set) before splitting")
    classes = pd.Series("all", index=table.index) if stratify is None else table[stratify]
    if classes.isna().any():
        raise ValueError(f"{int(classes.isna().sum())} rows have no {stratify!r}; "
                         "drop unlabelled rows before splitting")
    per_subject = pd.DataFrame({"group": groups.to_numpy(object), "cls": classes.to_numpy(object)})
    n_classes = per_subject.groupby("group")["cls"].nunique()
    mixed = sorted(map(str, n_classes.index[n_classes > 1]))
    if mixed:
        raise ValueError(f"subjects with images of more than one {stratify!r}: {_listing(mixed)}; "
                         "expected one class per subject")

    sizes = per_subject.groupby("group").size()
    subject_class = per_subject.drop_duplicates("group").set_index("group")["cls"]
    rng = np.random.default_rng(seed)
    assignment: dict = {}
    for cls in sorted(subject_class.unique(), key=str):
        # Sorted, so that the split depends on the seed and not on the table's row order.
        subjects = sorted(subject_class.index[subject_class == cls], key=str)
        if len(subjects) < len(parts):
            raise ValueError(
                f"class {cls!r} has {len(subjects)} subject{'s' if len(subjects) != 1 else ''} "
                f"({_listing(list(map(str, subjects)))}) but a subject-level split into {', '.join(parts)} needs "
                f"at least {len(parts)} per class (one in each part); use fewer parts (a fraction of 0) "
                "or an image-level split"
            )
        chosen = _assign(sizes.loc[subjects].to_numpy(), shares, rng)
        assignment.update({subject: parts[part] for subject, part in zip(subjects, chosen, strict=True)})
    result = np.array([assignment[subject] for subject in groups.to_numpy(object)], dtype=object)
    return pd.Series(result, index=table.index, name="split")


def assert_no_leakage(table: pd.DataFrame, split_column: str | pd.Series = "split", group: str = "subject") -> None:
    """Check that no subject (``group``) has images in two parts of a split.

    ``split_column`` names the column holding each row's part, or is the parts
    themselves as a Series aligned with ``table``; rows without a part or a
    subject are ignored. A :class:`LeakageError` names every offending subject
    and its parts.
    """
    split = table[split_column] if isinstance(split_column, str) else pd.Series(split_column, index=table.index)
    frame = pd.DataFrame({"group": table[group].astype(object), "split": split.astype(object)}).dropna()
    parts = frame.groupby("group")["split"].unique()
    leaked = {subject: sorted(map(str, found)) for subject, found in parts.items() if len(found) > 1}
    if leaked:
        name = split_column if isinstance(split_column, str) else (split.name or "the split")
        ordered = sorted(leaked.items(), key=lambda kv: str(kv[0]))
        listed = [f"{subject} ({', '.join(found)})" for subject, found in ordered]
        raise LeakageError(f"{len(leaked)} {group}{'s' if len(leaked) != 1 else ''} in more than one part of {name!r}: "
                           f"{_listing(listed)}")


def _check_fractions(fractions: Sequence[float]) -> tuple[float, float, float]:
    values = tuple(float(share) for share in fractions)
    shares_ok = len(values) == 3 and all(share >= 0 for share in values) and math.isclose(sum(values), 1, abs_tol=1e-6)
    if not shares_ok or values[0] == 0:
        raise ValueError("fractions must be three non-negative shares (train, val, test) summing to 1 "
                         f"with train > 0; got {tuple(fractions)}")
    return values  # type: ignore[return-value]


def _class_codes(table: pd.DataFrame, column: str | None) -> np.ndarray | None:
    if column is None:
        return None
    codes, _ = pd.factorize(table[column])
    if (codes < 0).any():
        raise ValueError(f"{int((codes < 0).sum())} rows have no {column!r}; "
                         "drop unlabelled rows or pass stratify=None")
    return codes


def _assign(sizes: np.ndarray, shares: np.ndarray, rng: np.random.Generator) -> list[int]:
    """Part index for each subject: every part non-empty, image counts close to ``shares``.

    Each trial takes the subjects in a random order, gives the first ones to
    the still-empty parts and every later one to the part furthest below its
    target; the smallest total deviation wins. Random orders make different
    seeds give different but equally balanced splits.
    """
    # Plain Python lists: with three parts they are several times faster than NumPy here.
    targets = [float(share) * float(sizes.sum()) for share in shares]
    sizes_list = [int(size) for size in sizes]
    parts = range(len(targets))
    best: list[int] = []
    best_cost = math.inf
    for _ in range(_TRIALS):
        counts = [0.0] * len(targets)
        members = [0] * len(targets)
        chosen = [0] * len(sizes_list)
        for index in rng.permutation(len(sizes_list)).tolist():
            deficit = [target - count for target, count in zip(targets, counts, strict=True)]
            empty = [p for p in parts if members[p] == 0]
            part = max(empty or parts, key=deficit.__getitem__)  # first one subject in every part
            chosen[index] = part
            counts[part] += sizes_list[index]
            members[part] += 1
        cost = sum(abs(c - t) for c, t in zip(counts, targets, strict=True))
        if cost < best_cost:
            best, best_cost = chosen, cost
    return best


def _listing(items: list[str], limit: int = 20) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f" ... and {len(items) - limit} more" if len(items) > limit else "")
