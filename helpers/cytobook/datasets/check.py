"""What a data-set check returns: the problems found and what was counted.

Every data set's check (C-NMC 2019 here; DLMI, HEp-2 and Raabin later) scans
its official tree, collects *all* problems instead of stopping at the first,
optionally decodes every image, and hands back one :class:`CheckReport`. The
report prints as text for people (``cytobook data check``) and converts to
plain JSON for machines (``--json``), so the pieces here know nothing about any
particular data set.
"""

from __future__ import annotations

import math
import os
from collections import Counter
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ..io import ImageReadError, read_image

#: Label shown for rows without a class (an unlabelled test set) in count tables.
UNLABELLED = "unlabelled"


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a data set copy.

    Attributes
    ----------
    path
        The file or folder concerned (absolute, as a string).
    message
        What was expected there and what was found instead.
    """

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


@dataclass
class CheckReport:
    """Outcome of checking one copy of a data set.

    Attributes
    ----------
    dataset
        Human-readable name of the data set, e.g. ``"C-NMC 2019"``.
    root
        The folder that was checked.
    problems
        Everything found wrong, in the order found. Empty means the copy is
        usable.
    counts
        Named tables of image counts, e.g. ``"images by split × class"``;
        each a :class:`pandas.DataFrame` (rows × columns of integers) or a
        plain ``{row: {column: count}}`` dict.
    """

    dataset: str
    root: str
    problems: list[Problem] = field(default_factory=list)
    counts: dict[str, pd.DataFrame | dict] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True when no problem was found."""
        return not self.problems

    def add(self, path: str | os.PathLike, message: str) -> None:
        """Record a problem with ``path``."""
        self.problems.append(Problem(str(path), message))

    def to_dict(self) -> dict[str, Any]:
        """Plain, JSON-serialisable form (for ``--json``).

        Count tables become ``{row: {column: count}}`` with string keys, so the
        output does not depend on pandas.
        """
        return {
            "dataset": self.dataset,
            "root": self.root,
            "ok": self.ok,
            "n_problems": len(self.problems),
            "counts": {name: _table_to_dict(table) for name, table in self.counts.items()},
            "problems": [{"path": p.path, "message": p.message} for p in self.problems],
        }

    def format(self) -> str:
        """Readable text report: header, count tables, then one problem per line."""
        verdict = "OK" if self.ok else f"{len(self.problems)} problem{'s' if len(self.problems) != 1 else ''}"
        lines = [f"{self.dataset} data set check: {self.root}", f"Result: {verdict}"]
        for name, table in self.counts.items():
            lines += ["", f"{name[:1].upper()}{name[1:]}:"]
            frame = (
                table if isinstance(table, pd.DataFrame) else pd.DataFrame.from_dict(table, orient="index")
            )
            lines.append(frame.to_string() if not frame.empty else "  (none)")
        if self.problems:
            lines += ["", "Problems:"]
            lines += [str(problem) for problem in self.problems]
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.format()


def class_counts(
    table: pd.DataFrame,
    by: str,
    label: str = "label_name",
    order: Iterable | None = None,
) -> pd.DataFrame:
    """Count images per value of ``by`` and per class, with totals.

    Parameters
    ----------
    table
        One row per image.
    by
        Column giving the table's rows (split, subject, fold...). Images whose
        ``by`` is missing are left out (e.g. test images have no fold).
    label
        Column giving the table's columns; missing labels count as
        ``"unlabelled"``.
    order
        Row order; by default the order of first appearance in ``table``.

    Returns
    -------
    pandas.DataFrame
        Integer counts with a ``total`` column and a ``total`` row.
    """
    rows = table[table[by].notna()]
    if rows.empty:
        return pd.DataFrame()
    labels = rows[label].astype(object).where(rows[label].notna(), UNLABELLED)
    counts = pd.crosstab(rows[by].astype(object), labels)
    # crosstab sorts; first appearance keeps e.g. train before the test sets.
    row_order = list(order) if order is not None else list(pd.unique(rows[by].astype(object)))
    col_order = list(pd.unique(labels))
    counts = counts.reindex(
        index=[r for r in row_order if r in counts.index], columns=col_order, fill_value=0
    )
    counts["total"] = counts.sum(axis=1)
    counts.loc["total"] = counts.sum(axis=0)
    counts.index.name = by
    counts.columns.name = None
    return counts.astype(int)


def check_images(
    paths: Iterable[str | os.PathLike], workers: int = 8
) -> tuple[list[Problem], dict[str, int]]:
    """Decode every image fully and report those that cannot be read.

    Parameters
    ----------
    paths
        Image files to read with :func:`cytobook.io.read_image`.
    workers
        Threads used. Reading files releases the GIL, so threads overlap disk
        waits: on files not yet in the page cache, 8 threads checked 450×450
        BMPs about twice as fast as 1 (2-core machine); on cached files the
        decoding itself is GIL-bound and threads neither help nor cost much.

    Returns
    -------
    problems
        One :class:`Problem` per unreadable, truncated or non-image file, in
        the order of ``paths``.
    sizes
        Number of readable images per size, keyed ``"<height>×<width>"``.
    """
    paths = [str(path) for path in paths]
    problems: list[Problem] = []
    sizes: Counter[str] = Counter()
    if not paths:
        return problems, {}
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for path, size, error in pool.map(_decode_one, paths, chunksize=32):
            if error is not None:
                problems.append(Problem(path, error))
            else:
                sizes[size] += 1
    return problems, dict(sorted(sizes.items()))


def _decode_one(path: str) -> tuple[str, str | None, str | None]:
    try:
        array = read_image(path)
    except ImageReadError as error:
        message = str(error)
        # read_image names the file itself; the Problem already carries it.
        prefix = f"{path}: "
        return path, None, message[len(prefix) :] if message.startswith(prefix) else message
    except Exception as error:  # e.g. Pillow's DecompressionBombError: still a bad file, not a crash
        return path, None, f"cannot be read as an image ({type(error).__name__}: {error})"
    return path, f"{array.shape[0]}×{array.shape[1]}", None


def _table_to_dict(table: pd.DataFrame | Mapping) -> dict[str, Any]:
    if isinstance(table, pd.DataFrame):
        table = table.to_dict(orient="index")
    return {str(row): _plain(values) for row, values in table.items()}


def _plain(value: Any) -> Any:
    """Convert NumPy/pandas scalars and nested mappings to JSON-ready values."""
    if isinstance(value, Mapping):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, np.generic):
        return value.item()
    return value


class ProblemCollector:
    """Raise at the first layout problem (loading) or collect them all (checking).

    Parameters
    ----------
    strict
        Raise ``error_type`` at the first problem instead of collecting.
    error_type
        The data set's layout error, a ``ValueError`` subclass; the raised
        error carries the :class:`Problem` as its ``problem`` attribute.
    """

    def __init__(self, strict: bool, error_type: type[ValueError]) -> None:
        self.strict = strict
        self.error_type = error_type
        self.items: list[Problem] = []

    def add(self, path: str | os.PathLike, message: str) -> None:
        problem = Problem(str(path), message)
        if self.strict:
            error = self.error_type(str(problem))
            error.problem = problem
            raise error
        self.items.append(problem)
