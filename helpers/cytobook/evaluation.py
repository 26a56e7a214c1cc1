"""Metrics, result tables and evaluation figures, for binary, multi-class and multi-label models.

Report 1 (C-NMC) scores its models by the weighted F1 and tabulates per-class
precision and recall ("normal" = HEM = label 0, "cancer" = ALL = label 1):
:func:`binary_report` computes them for one model, :func:`report_table` lays
several out as that table; :func:`multiclass_report` serves multi-class
models. The ``*_report`` functions return plain Python, ready for
:meth:`cytobook.notebook.NotebookRun.save_metrics`; no deep-learning backend
is imported. Report 5 (HEp-2 antinuclear antibody patterns) adds the ICPR
2014 contest's :func:`mean_class_accuracy`, a per-image :func:`majority_vote`
over cells, a dendrogram of the classes from the confusion matrix
(:func:`confusion_dendrogram`) and the per-label ROC AUC of multi-label models
(:func:`per_label_auc`, :func:`auc_summary`, :func:`auc_comparison_figure`).

Conventions: confusion matrices have the true class in rows (scikit-learn's
layout); ``p > threshold`` predicts the positive class, as Keras'
``BinaryAccuracy`` does; a ratio with an empty denominator is 0
(scikit-learn's ``zero_division=0``), which leaves support-weighted averages
unchanged.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from scipy.cluster.hierarchy import dendrogram, linkage
from scipy.spatial.distance import squareform
from sklearn.metrics import confusion_matrix, roc_auc_score, roc_curve

#: Column order of the report's final table (see :func:`report_table`).
TABLE_COLUMNS = (
    "precision normal",
    "precision cancer",
    "recall normal",
    "recall cancer",
    "weighted F1",
    "ROC AUC",
)
#: The validation metrics report 1 gives for every model it trains.
VALIDATION_COLUMNS = ("validation loss", "validation accuracy")


class _HasHistory(Protocol):
    history: Mapping[str, Sequence[float]]


# ---------------------------------------------------------------------------
# Metrics


def predict_labels(p_positive: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """Labels 0/1 from positive-class probabilities: 1 where ``p > threshold``."""
    return (np.asarray(p_positive, dtype=float) > threshold).astype(np.int64)


def per_class_scores(cm: np.ndarray) -> dict[str, np.ndarray]:
    """Precision, recall, F1 and support per class from confusion matrices ``(..., k, k)``.

    Vectorised over leading axes (one matrix per ensemble candidate, say).
    Returns ``precision``, ``recall``, ``f1`` and ``support`` of shape
    ``(..., k)`` and ``weighted_f1`` of shape ``(...)`` (scikit-learn's
    ``average="weighted"``).
    """
    cm = np.asarray(cm, dtype=float)
    tp = np.diagonal(cm, axis1=-2, axis2=-1)
    support = cm.sum(axis=-1)
    predicted = cm.sum(axis=-2)
    precision = _safe_divide(tp, predicted)
    recall = _safe_divide(tp, support)
    # 2 TP / (2 TP + FP + FN), and 2 TP + FP + FN = predicted + support.
    f1 = _safe_divide(2 * tp, predicted + support)
    weighted_f1 = _safe_divide((f1 * support).sum(axis=-1), support.sum(axis=-1))
    return {"precision": precision, "recall": recall, "f1": f1, "support": support, "weighted_f1": weighted_f1}


def _safe_divide(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    numerator, denominator = np.broadcast_arrays(np.asarray(numerator, float), np.asarray(denominator, float))
    out = np.zeros(numerator.shape)
    np.divide(numerator, denominator, out=out, where=denominator > 0)
    return out


def binary_report(
    y_true: Sequence[int] | np.ndarray,
    p_positive: Sequence[float] | np.ndarray,
    threshold: float = 0.5,
    class_names: Sequence[str] = ("HEM", "ALL"),
) -> dict[str, Any]:
    """The report's metrics for one binary classifier.

    Parameters
    ----------
    y_true
        True labels, 0 (``class_names[0]``, HEM) or 1 (``class_names[1]``, ALL).
    p_positive
        Probability of label 1, shape ``(n,)`` or ``(n, 1)``.
    threshold
        Label 1 is predicted where ``p_positive > threshold``.
    class_names
        Keys of the per-class entries.

    Returns
    -------
    dict
        ``weighted_f1``, ``accuracy``, ``balanced_accuracy``, ``roc_auc``;
        ``precision``, ``recall``, ``f1`` and ``support`` by class name;
        ``confusion_matrix`` (``[[TN, FP], [FN, TP]]``); ``n``, ``threshold``
        and ``class_names``. A single-class ``y_true`` gives ``roc_auc``
        ``None`` instead of raising.

    Raises
    ------
    ValueError
        On empty or mismatched inputs, labels other than 0/1, or non-finite probabilities.
    """
    y = _check_labels(y_true, 2, "y_true")
    p = np.asarray(p_positive, dtype=float)
    if p.ndim == 2 and p.shape[1] == 1:
        p = p[:, 0]
    if p.ndim != 1 or len(p) != len(y):
        raise ValueError(f"p_positive must have shape ({len(y)},) to match y_true, got {p.shape}")
    if not np.all(np.isfinite(p)):
        raise ValueError("p_positive contains NaN or infinite values")
    if len(class_names) != 2:
        raise ValueError(f"class_names must name the two classes, got {list(class_names)}")
    y_pred = predict_labels(p, threshold)
    cm = confusion_matrix(y, y_pred, labels=[0, 1])
    report = _report_from_confusion(cm, class_names)
    report["roc_auc"] = float(roc_auc_score(y, p)) if len(np.unique(y)) == 2 else None
    report["threshold"] = float(threshold)
    return report


def multiclass_report(
    y_true: Sequence[int] | np.ndarray,
    proba: np.ndarray,
    class_names: Sequence[str],
) -> dict[str, Any]:
    """Metrics of a multi-class classifier from its class probabilities.

    Parameters
    ----------
    y_true
        True labels ``0 .. k-1``, indices into ``class_names``.
    proba
        Scores ``(n, k)``, predicting each row's arg-max; rows need not sum to one.
    class_names
        The ``k`` class names, in label order.

    Returns
    -------
    dict
        As :func:`binary_report` without ``threshold``, plus ``macro_f1``
        (absent classes counting 0), ``roc_auc`` (macro average of the
        one-vs-rest AUCs) and ``roc_auc_per_class``, both ``None`` unless every
        class occurs in ``y_true`` and there are two or more.
    """
    k = len(class_names)
    y = _check_labels(y_true, k, "y_true")
    scores = np.asarray(proba, dtype=float)
    if scores.shape != (len(y), k):
        raise ValueError(f"proba must have shape ({len(y)}, {k}) for {k} classes, got {scores.shape}")
    if not np.all(np.isfinite(scores)):
        raise ValueError("proba contains NaN or infinite values")
    cm = confusion_matrix(y, scores.argmax(axis=1), labels=list(range(k)))
    report = _report_from_confusion(cm, class_names)
    report["macro_f1"] = float(np.mean(list(report["f1"].values())))
    present = np.bincount(y, minlength=k)
    if k >= 2 and np.all(present > 0):
        # Same as roc_auc_score(multi_class="ovr", average="macro"), minus its sum-to-one check.
        per_class = [float(roc_auc_score(y == c, scores[:, c])) for c in range(k)]
        report["roc_auc_per_class"] = dict(zip(class_names, per_class))
        report["roc_auc"] = float(np.mean(per_class))
    else:
        report["roc_auc_per_class"] = None
        report["roc_auc"] = None
    return report


def mean_class_accuracy(
    y_true: Sequence[int] | np.ndarray,
    y_pred: Sequence[int] | np.ndarray,
    k: int,
) -> float:
    """Mean class accuracy (MCA): the mean of the per-class recalls, the ICPR 2014 HEp-2 contest metric.

    Report 5 scores its HEp-2 cell classifiers by per-cell accuracy; the
    contest ranks by MCA, which weighs every staining pattern equally however
    many cells it has. It equals scikit-learn's ``balanced_accuracy_score``.

    Parameters
    ----------
    y_true
        True labels ``0 .. k-1``.
    y_pred
        Predicted labels ``0 .. k-1``, one per true label.
    k
        Number of classes.

    Returns
    -------
    float
        The mean recall over the classes present in ``y_true``; classes absent
        from ``y_true`` have no recall and are left out of the mean (predicting
        them still costs the recall of the class whose cells were given them).

    Raises
    ------
    ValueError
        When ``y_true`` is empty, the lengths differ, or a label lies outside ``0 .. k-1``.
    """
    y = _check_labels(y_true, k, "y_true")
    pred = _check_labels(y_pred, k, "y_pred")
    if len(pred) != len(y):
        raise ValueError(f"y_pred has {len(pred)} labels, y_true {len(y)}")
    scores = per_class_scores(confusion_matrix(y, pred, labels=list(range(k))))
    return float(scores["recall"][scores["support"] > 0].mean())


def majority_vote(
    groups: Sequence[Any] | np.ndarray | pd.Series,
    y_true: Sequence[Any] | np.ndarray | pd.Series,
    y_pred: Sequence[Any] | np.ndarray | pd.Series,
) -> pd.DataFrame:
    """One prediction per group of cells (e.g. per field image) by majority vote of its cells' predictions.

    Report 5 classifies single cells segmented from each immunofluorescence
    field image; an image's pattern is the label most of its cells received.

    Parameters
    ----------
    groups
        The group (field image id) of each cell.
    y_true
        True label of each cell; all cells of a group must share it.
    y_pred
        Predicted label of each cell.

    Returns
    -------
    pandas.DataFrame
        Indexed by group id (sorted, index name ``group``), columns ``true``
        (the group's label), ``predicted`` (the most frequent predicted label;
        a tie goes to the smallest of the tied labels), ``cells`` (the group's
        number of cells) and ``agreement`` (the share of its cells that voted
        for ``predicted``).

    Raises
    ------
    ValueError
        On empty or mismatched inputs, missing group ids, or a group whose
        cells have different true labels (the group is named).
    """
    g, y, pred = (np.asarray(values) for values in (groups, y_true, y_pred))
    for name, values in (("groups", g), ("y_true", y), ("y_pred", pred)):
        if values.ndim != 1 or len(values) == 0:
            raise ValueError(f"{name} must be a non-empty 1-D array, got shape {values.shape}")
    if not len(g) == len(y) == len(pred):
        raise ValueError(
            f"groups, y_true and y_pred must have one entry per cell, got {len(g)}, {len(y)} and {len(pred)}"
        )
    if pd.isna(g).any():
        raise ValueError(f"groups holds {int(pd.isna(g).sum())} missing ids")
    cells = pd.DataFrame({"group": g, "true": y, "predicted": pred})
    by_group = cells.groupby("group", sort=True)
    truths = by_group["true"].nunique(dropna=False)
    mixed = truths.index[truths > 1]
    if len(mixed):
        examples = ", ".join(
            f"{group!r} ({sorted(cells.loc[cells['group'] == group, 'true'].unique().tolist())})" for group in mixed[:5]
        )
        raise ValueError(f"{len(mixed)} group(s) mix true labels: {examples}")
    votes = cells.groupby(["group", "predicted"], sort=True).size().rename("votes").reset_index()
    # Most votes first; among equal counts the smaller label (ascending sort) comes first.
    votes = votes.sort_values(["group", "votes", "predicted"], ascending=[True, False, True], kind="stable")
    winners = votes.drop_duplicates("group").set_index("group")
    table = pd.DataFrame(
        {"true": by_group["true"].first(), "predicted": winners["predicted"], "cells": by_group.size()}
    )
    table["agreement"] = winners["votes"] / table["cells"]
    table.index.name = "group"
    return table


def class_distances(cm: np.ndarray) -> np.ndarray:
    """A symmetric distance between classes from how often a classifier confuses them.

    Report 5 clusters its 47 HEp-2 classes from the confusion matrix (its
    Fig. 22) but does not say how the matrix became distances; this is our
    choice. Rows are normalised to rates ``r_ij`` (the share of class ``i``'s
    cells predicted as ``j``; a row without support stays zero), symmetrised
    to ``s_ij = (r_ij + r_ji) / 2``, and the distance is ``1 - s_ij`` off the
    diagonal, 0 on it. Classes never confused with each other are at
    distance 1; two classes whose cells are all given to each other at 0.

    Parameters
    ----------
    cm
        Confusion matrix ``(k, k)``, true class in rows, non-negative counts.

    Returns
    -------
    numpy.ndarray
        Distances ``(k, k)``: symmetric, zero diagonal, values in ``[0, 1]``.
    """
    counts = _check_confusion(cm)
    rates = _safe_divide(counts, counts.sum(axis=1, keepdims=True))
    distances = 1.0 - (rates + rates.T) / 2
    np.fill_diagonal(distances, 0.0)
    return distances


def confusion_linkage(cm: np.ndarray) -> np.ndarray:
    """Single-linkage clustering of the classes of a confusion matrix, as report 5's dendrogram (Fig. 22).

    Parameters
    ----------
    cm
        Confusion matrix ``(k, k)``, ``k >= 2``, true class in rows.

    Returns
    -------
    numpy.ndarray
        SciPy's linkage matrix ``(k - 1, 4)`` of :func:`class_distances`
        (``scipy.cluster.hierarchy.linkage(..., method="single")``): each row
        merges two clusters (ids ``< k`` are classes) at a distance, the most
        confused pair first.
    """
    distances = class_distances(cm)
    if len(distances) < 2:
        raise ValueError(f"clustering needs two or more classes, cm is {distances.shape}")
    return linkage(squareform(distances, checks=False), method="single")


def _check_confusion(cm: np.ndarray) -> np.ndarray:
    counts = np.asarray(cm, dtype=float)
    if counts.ndim != 2 or counts.shape[0] != counts.shape[1] or counts.shape[0] == 0:
        raise ValueError(f"cm must be a square (k, k) confusion matrix, got shape {counts.shape}")
    if not np.all(np.isfinite(counts)) or np.any(counts < 0):
        raise ValueError("cm must hold finite, non-negative counts")
    return counts


def per_label_auc(
    y_true: np.ndarray | pd.DataFrame,
    scores: np.ndarray | pd.DataFrame,
    label_names: Sequence[str],
) -> pd.DataFrame:
    """ROC AUC of each label of a multi-label classifier (report 5's binary relevance models, Fig. 24).

    Parameters
    ----------
    y_true
        Label indicators ``(n, L)``, 0 or 1.
    scores
        Scores ``(n, L)`` (probabilities or logits), higher meaning the label is more likely.
    label_names
        The ``L`` label names, in column order.

    Returns
    -------
    pandas.DataFrame
        Indexed by label (index name ``label``), columns ``positives`` and
        ``negatives`` (counts) and ``auc``; a label without positives or
        without negatives has no ROC curve and gets ``auc`` NaN.

    Raises
    ------
    ValueError
        On shapes that do not match, indicators other than 0/1, or non-finite scores.
    """
    y = np.asarray(y_true)
    s = np.asarray(scores, dtype=float)
    n_labels = len(label_names)
    if y.ndim != 2 or y.shape[0] == 0 or y.shape[1] != n_labels:
        raise ValueError(f"y_true must have shape (n, {n_labels}) for {n_labels} labels, n > 0, got {y.shape}")
    if s.shape != y.shape:
        raise ValueError(f"scores must have the shape of y_true {y.shape}, got {s.shape}")
    if y.dtype.kind not in "biuf" or not np.all((y == 0) | (y == 1)):
        raise ValueError("y_true must hold 0/1 label indicators")
    if not np.all(np.isfinite(s)):
        raise ValueError("scores contains NaN or infinite values")
    y = y.astype(np.int64)
    positives = y.sum(axis=0)
    negatives = len(y) - positives
    auc = [
        float(roc_auc_score(y[:, j], s[:, j])) if positives[j] and negatives[j] else np.nan for j in range(n_labels)
    ]
    return pd.DataFrame({"positives": positives, "negatives": negatives, "auc": auc},
                        index=pd.Index([str(name) for name in label_names], name="label"))


def auc_summary(table: pd.DataFrame) -> dict[str, Any]:
    """Summary of a :func:`per_label_auc` table, over the labels that have an AUC.

    Returns
    -------
    dict
        ``mean_auc`` (unweighted mean over labels), ``weighted_auc`` (mean
        weighted by each label's positives), ``lowest_auc`` and
        ``lowest_label`` (the first such label in table order on a tie), and
        ``labels_scored`` (labels with an AUC). Without any, the first four are
        ``None`` and ``labels_scored`` is 0.
    """
    missing = {"positives", "auc"} - set(table.columns)
    if missing:
        raise ValueError(f"table lacks the column(s) {sorted(missing)}; pass a per_label_auc table")
    scored = table[table["auc"].notna()]
    if scored.empty:
        return {"mean_auc": None, "weighted_auc": None, "lowest_auc": None, "lowest_label": None, "labels_scored": 0}
    auc = scored["auc"].to_numpy(dtype=float)
    lowest = int(np.argmin(auc))
    return {
        "mean_auc": float(auc.mean()),
        "weighted_auc": float(np.average(auc, weights=scored["positives"].to_numpy(dtype=float))),
        "lowest_auc": float(auc[lowest]),
        "lowest_label": str(scored.index[lowest]),
        "labels_scored": int(len(scored)),
    }


def _check_labels(y_true: Sequence[int] | np.ndarray, k: int, name: str) -> np.ndarray:
    y = np.asarray(y_true)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1 or len(y) == 0:
        raise ValueError(f"{name} must be a non-empty 1-D array of labels, got shape {y.shape}")
    if y.dtype.kind == "f" and not np.all(np.mod(y, 1) == 0):
        raise ValueError(f"{name} must hold integer labels, not probabilities")
    if y.dtype.kind not in "biuf":
        raise ValueError(f"{name} must hold integer labels 0..{k - 1}, got dtype {y.dtype}")
    y = y.astype(np.int64)
    if y.min() < 0 or y.max() >= k:
        raise ValueError(f"{name} must hold labels 0..{k - 1}, found {sorted(set(np.unique(y).tolist()))}")
    return y


def _report_from_confusion(cm: np.ndarray, class_names: Sequence[str]) -> dict[str, Any]:
    scores = per_class_scores(cm)
    names = [str(name) for name in class_names]
    present = scores["support"] > 0

    def by_class(values: np.ndarray, kind: type = float) -> dict[str, Any]:
        return {name: kind(value) for name, value in zip(names, values)}

    return {
        "n": int(cm.sum()),
        "class_names": names,
        "accuracy": float(np.trace(cm) / cm.sum()),
        "balanced_accuracy": float(scores["recall"][present].mean()),
        "weighted_f1": float(scores["weighted_f1"]),
        "precision": by_class(scores["precision"]),
        "recall": by_class(scores["recall"]),
        "f1": by_class(scores["f1"]),
        "support": by_class(scores["support"], int),
        "confusion_matrix": np.asarray(cm, dtype=np.int64).tolist(),
    }


def report_table(
    results: Mapping[str, Mapping[str, Any]],
    published: pd.DataFrame | None = None,
    columns: Sequence[str] = TABLE_COLUMNS,
) -> pd.DataFrame:
    """The report's table: one row per model, four decimals, the published values beside the run's.

    Parameters
    ----------
    results
        Model name to its :func:`binary_report` ("normal" is label 0, "cancer"
        label 1); the validation columns come from its ``"validation"`` entry
        (see :func:`cytobook.results.evaluate`).
    published
        Published values by model and metric (:func:`cytobook.published.published_metrics`),
        added as ``"published <column>"`` for each of ``columns`` they hold.
    columns
        :data:`TABLE_COLUMNS` (test set) or :data:`VALIDATION_COLUMNS`.

    Returns
    -------
    pandas.DataFrame
        Indexed by model; missing values are NaN.
    """
    rows = {}
    for model, report in results.items():
        normal, cancer = report.get("class_names") or list(report["precision"])
        values = {
            "precision normal": report["precision"][normal],
            "precision cancer": report["precision"][cancer],
            "recall normal": report["recall"][normal],
            "recall cancer": report["recall"][cancer],
            "weighted F1": report["weighted_f1"],
            "ROC AUC": report.get("roc_auc"),
            **{f"validation {key}": value for key, value in report.get("validation", {}).items()},
        }
        rows[model] = [np.nan if values.get(column) is None else values[column] for column in columns]
    table = pd.DataFrame.from_dict(rows, orient="index", columns=list(columns), dtype=float)
    table.index.name = "model"
    if published is not None:
        for column in columns:
            if column in published.columns:
                values = published[column].reindex(table.index)
                if values.notna().any():
                    table[f"published {column}"] = values.to_numpy(dtype=float)
    return table.round(4)


def per_class_table(report: Mapping[str, Any], published: Mapping[str, float] | None = None) -> pd.DataFrame:
    """A classification report in the layout of report 2's Table 1: per class, then the weighted average.

    Parameters
    ----------
    report
        A :func:`binary_report` or :func:`multiclass_report`.
    published
        Published values keyed ``"<metric> <class>"`` and ``"weighted <metric>"``
        (a row of :func:`cytobook.published.published_metrics`), added as
        ``"published <metric>"`` columns.

    Returns
    -------
    pandas.DataFrame
        Rows: each class, then ``weighted average`` (support-weighted means,
        total support); columns ``precision``, ``recall``, ``F1``, ``support``,
        then the published ones. Scores to four decimals.
    """
    names = list(report["class_names"])
    support = np.array([report["support"][name] for name in names], dtype=float)
    scores = {"precision": "precision", "recall": "recall", "F1": "f1"}
    table = pd.DataFrame({column: [report[key][name] for name in names] for column, key in scores.items()}, index=names)
    weighted = {column: float(np.average(table[column], weights=support)) if support.sum() else np.nan for column in scores}
    table.loc["weighted average"] = weighted
    table["support"] = [*support.astype(int), int(support.sum())]
    if published is not None:
        for column in (*scores, "support"):
            keys = [f"{column} {name}" for name in names] + [f"weighted {column}"]
            table[f"published {column}"] = [published.get(key, np.nan) for key in keys]
    return table.round(4)


def claims_table(claims: Mapping[str, Callable[[Mapping[str, float]], bool]],
                 results: Mapping[str, Mapping[str, float]]) -> pd.DataFrame:
    """Whether each of a report's claims holds in each set of results.

    Parameters
    ----------
    claims
        Each claim, in words, with a test of one set of results (scores by
        model name) that says whether it holds.
    results
        Sets of scores by model name, e.g. ``{"published": ..., "this run": ...}``.

    Returns
    -------
    pandas.DataFrame
        One row per claim, one boolean column per set of results.
    """
    return pd.DataFrame({column: {claim: bool(holds(scores)) for claim, holds in claims.items()}
                         for column, scores in results.items()}).rename_axis("claim")


# ---------------------------------------------------------------------------
# Figures

_ACCURACY_KEYS = ("accuracy", "acc", "binary_accuracy", "categorical_accuracy", "sparse_categorical_accuracy")


def learning_curves(
    history: Mapping[str, Sequence[float]] | _HasHistory,
    title: str,
    stage_starts: Mapping[int, str] | None = None,
) -> plt.Figure:
    """Loss and accuracy per epoch, training against validation, side by side.

    Parameters
    ----------
    history
        A Keras ``History`` or its ``.history`` dict: ``loss``, an accuracy
        (``accuracy``, ``acc``, ``binary_accuracy``...) and their ``val_`` twins.
    title
        Figure title.
    stage_starts
        For training stages concatenated in ``history`` (feature extraction,
        then fine-tuning): the index of each later stage's first epoch
        (``1 .. epochs - 1``), mapped to its label; each is marked by a dashed line.

    Returns
    -------
    matplotlib.figure.Figure
        One panel per quantity found, training and (when recorded) validation curves.
    """
    logs = getattr(history, "history", history)
    panels = [key for key in ("loss",) if key in logs]
    panels += [key for key in _ACCURACY_KEYS if key in logs][:1]
    if not panels:
        raise ValueError(f"history has neither a loss nor an accuracy, only {sorted(logs)}")
    n_epochs = len(logs[panels[0]])
    stages = sorted((stage_starts or {}).items())
    for start, label in stages:
        if not 1 <= start <= n_epochs - 1:
            raise ValueError(f"stage {label!r} starts at index {start}, outside 1..{n_epochs - 1} of a {n_epochs}-epoch history")
    fig, axes = plt.subplots(1, len(panels), figsize=(5.0 * len(panels), 3.4), squeeze=False)
    for ax, key in zip(axes.flat, panels):
        train = np.asarray(logs[key], dtype=float)
        epochs = np.arange(1, len(train) + 1)
        ax.plot(epochs, train, marker="o", markersize=3, label="training")
        if f"val_{key}" in logs:
            val = np.asarray(logs[f"val_{key}"], dtype=float)
            ax.plot(np.arange(1, len(val) + 1), val, marker="o", markersize=3, label="validation")
        for index, (start, label) in enumerate(stages):
            # Epochs are numbered from 1: the stage's first epoch is start + 1, the line lies just before it.
            ax.axvline(start + 0.5, color=f"C{index + 2}", linestyle="--", linewidth=1.2, label=f"{label} from epoch {start + 1}")
        label = "loss" if key == "loss" else "accuracy"
        ax.set_title(label)
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        # Integer epochs only: a one- or two-epoch smoke run would otherwise show 1.25, 1.5...
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def confusion_matrix_figure(
    y_true: Sequence[int] | np.ndarray,
    y_pred: Sequence[int] | np.ndarray,
    class_names: Sequence[str],
    title: str,
    normalize: bool = False,
) -> plt.Figure:
    """Heat map of a confusion matrix: each cell shows its count and row percentage.

    ``y_true`` and ``y_pred`` are labels ``0 .. k-1`` into ``class_names``;
    ``normalize`` colours the cells by row fraction (each class's recall)
    instead of by count.
    """
    k = len(class_names)
    y = _check_labels(y_true, k, "y_true")
    pred = _check_labels(y_pred, k, "y_pred")
    if len(pred) != len(y):
        raise ValueError(f"y_pred has {len(pred)} labels, y_true {len(y)}")
    cm = confusion_matrix(y, pred, labels=list(range(k)))
    fractions = _safe_divide(cm, cm.sum(axis=1, keepdims=True))
    annotations = [[f"{count}\n{100 * fraction:.1f}%" for count, fraction in zip(*row)] for row in zip(cm, fractions)]
    fig, ax = plt.subplots(figsize=(1.3 * k + 1.8, 1.1 * k + 1.2))
    sns.heatmap(
        fractions if normalize else cm,
        annot=np.array(annotations),
        fmt="",
        cmap="Blues",
        cbar=False,  # the numbers are written in the cells
        vmin=0,
        vmax=1 if normalize else None,
        xticklabels=class_names,
        yticklabels=class_names,
        square=True,
        linewidths=0.5,
        ax=ax,
    )
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(title)
    fig.tight_layout()
    return fig


def roc_figure(curves: Mapping[str, tuple[np.ndarray, np.ndarray]], title: str) -> plt.Figure:
    """ROC curves of several binary models (``curves``: name to ``(y_true, p_positive)``) with their AUC.

    A ``ValueError`` says when a model's ``y_true`` holds a single class (no ROC curve exists).
    """
    fig, ax = plt.subplots(figsize=(4.8, 4.4))
    for name, (y_true, p) in curves.items():
        y = _check_labels(y_true, 2, f"y_true of {name!r}")
        if len(np.unique(y)) < 2:
            raise ValueError(f"{name!r}: y_true holds a single class, so it has no ROC curve")
        p = np.asarray(p, dtype=float).ravel()
        fpr, tpr, _ = roc_curve(y, p)
        ax.plot(fpr, tpr, label=f"{name} (AUC {roc_auc_score(y, p):.4f})")
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1, label="chance")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.01)
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.set_title(title)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    return fig


def confusion_dendrogram(cm: np.ndarray, class_names: Sequence[str], title: str) -> plt.Figure:
    """Dendrogram of the classes by how often they are confused, as report 5's Fig. 22.

    Single linkage (:func:`confusion_linkage`) of :func:`class_distances`;
    the leaves are labelled with ``class_names`` (in label order), rotated,
    and the figure widens with the number of classes so that 47 stay readable.
    """
    z = confusion_linkage(cm)
    k = len(z) + 1
    if len(class_names) != k:
        raise ValueError(f"class_names has {len(class_names)} names for a {k}-class confusion matrix")
    fig, ax = plt.subplots(figsize=(max(6.0, 0.3 * k + 1.5), 5.0))
    dendrogram(
        z,
        labels=[str(name) for name in class_names],
        leaf_rotation=90,
        leaf_font_size=8 if k > 20 else 10,
        color_threshold=0,  # one colour: single linkage's flat clusters are not the point here
        above_threshold_color="C0",
        ax=ax,
    )
    ax.set_ylabel("distance (1 - mean confusion rate)")
    ax.set_ylim(0, 1.02)
    ax.set_title(title)
    fig.tight_layout()
    return fig


def auc_comparison_figure(tables: Mapping[str, pd.DataFrame], title: str) -> plt.Figure:
    """Per-label ROC AUC of several multi-label models as grouped horizontal bars, as report 5's Fig. 24.

    Parameters
    ----------
    tables
        Model name (e.g. ``"class-weighted"``, ``"unweighted"``) to its
        :func:`per_label_auc` table; one bar per model and label.
    title
        Figure title.

    Returns
    -------
    matplotlib.figure.Figure
        Labels sorted by the first table's AUC, highest at the top (labels
        without an AUC, or only in later tables, at the bottom, without a bar
        where there is no AUC); a dotted line marks chance (0.5).
    """
    if not tables:
        raise ValueError("tables is empty: pass at least one per_label_auc table")
    for name, table in tables.items():
        if "auc" not in table.columns:
            raise ValueError(f"table {name!r} has no 'auc' column; pass a per_label_auc table")
    first = next(iter(tables.values()))["auc"]
    labels = list(first.sort_values(ascending=False, na_position="last", kind="stable").index)
    for table in tables.values():
        labels += [label for label in table.index if label not in labels]
    n_models = len(tables)
    height = 0.8 / n_models
    positions = np.arange(len(labels))
    fig, ax = plt.subplots(figsize=(7.0, max(3.0, len(labels) * (0.12 + 0.1 * n_models) + 1.2)))
    for index, (name, table) in enumerate(tables.items()):
        auc = table["auc"].reindex(labels).to_numpy(dtype=float)
        ax.barh(positions + (index - (n_models - 1) / 2) * height, auc, height=height, label=name)
    ax.axvline(0.5, color="grey", linestyle=":", linewidth=1.2, label="chance")
    ax.set_yticks(positions, [str(label) for label in labels])
    ax.invert_yaxis()  # the first label (highest AUC) on top
    ax.set_xlim(0, 1)
    ax.set_xlabel("ROC AUC")
    ax.set_title(title)
    handles, names = ax.get_legend_handles_labels()
    order = [names.index(name) for name in (*tables, "chance")]  # the models first, chance last
    ax.legend([handles[i] for i in order], [names[i] for i in order], loc="lower left", fontsize=8)
    fig.tight_layout()
    return fig
