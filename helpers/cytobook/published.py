"""Every number the five reports publish, read from one file.

``data/published.csv`` holds one row per published number: the report
(``cnmc``, ``lymphocytosis``, ...), the model or quantity it belongs to (the
model names the notebooks use), the metric, the value (and an upper bound
where the report gives a range), the data split it was measured on, the
report's section and a note. Notebooks read it through :func:`published` and
:func:`published_metrics`; no published number is typed in a notebook.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from importlib import resources

import pandas as pd

COLUMNS = ("report", "model", "metric", "value", "upper", "split", "section", "note")


@cache
def _table() -> pd.DataFrame:
    with resources.files("cytobook").joinpath("data", "published.csv").open() as handle:
        table = pd.read_csv(handle, dtype={"section": str, "note": str}, keep_default_na=False,
                            na_values={"upper": [""], "value": [""]})
    if tuple(table.columns) != COLUMNS:
        raise ValueError(f"data/published.csv: expected columns {COLUMNS}, got {tuple(table.columns)}")
    return table


def published(report: str) -> pd.DataFrame:
    """All numbers one report publishes, in the file's order (columns :data:`COLUMNS` but ``report``).

    Raises
    ------
    ValueError
        If the file has no row for ``report``.
    """
    table = _table()
    rows = table[table["report"] == report]
    if rows.empty:
        raise ValueError(f"no published numbers for report {report!r}; reports: {', '.join(table['report'].unique())}")
    return rows.drop(columns="report").reset_index(drop=True)


def published_metrics(
    report: str, metrics: Sequence[str] | None = None, *, section: str | None = None, models: Sequence[str] | None = None
) -> pd.DataFrame:
    """Published values as a table: one row per model, one column per metric.

    Parameters
    ----------
    report
        A report key of the file.
    metrics
        Columns to keep, in this order (absent ones are left out); all by default.
    section
        Only the numbers of this section (e.g. ``"3.4.3"``, the final table).
        Without it, a number published twice for the same model and metric is
        taken from its first occurrence, the model's own section.
    models
        Rows to keep, in this order; models the report does not publish are
        left out.
    """
    rows = published(report)
    if section is not None:
        rows = rows[rows["section"] == section]
    rows = rows.drop_duplicates(["model", "metric"])
    table = rows.pivot(index="model", columns="metric", values="value")
    order = [m for m in (metrics or rows["metric"].unique()) if m in table.columns]
    table = table[order]
    if models is not None:
        table = table.loc[[m for m in models if m in table.index]]
    else:
        table = table.loc[[m for m in rows["model"].unique() if m in table.index]]
    table.columns.name = None
    return table


def published_value(report: str, model: str, metric: str, *, section: str | None = None) -> float:
    """One published number (the first occurrence, or that of ``section``).

    Raises
    ------
    KeyError
        If the report publishes no such number.
    """
    rows = published(report)
    hit = rows[(rows["model"] == model) & (rows["metric"] == metric)]
    if section is not None:
        hit = hit[hit["section"] == section]
    if hit.empty:
        raise KeyError(f"report {report!r} publishes no {metric!r} for {model!r}" + (f" in section {section}" if section else ""))
    return float(hit["value"].iloc[0])
