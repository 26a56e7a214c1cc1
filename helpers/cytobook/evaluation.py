"""Metrics, result tables and evaluation figures, for binary and multi-class models.

Report 1 (C-NMC) scores its models by the weighted F1 and tabulates per-class
precision and recall ("normal" = HEM = label 0, "cancer" = ALL = label 1):
:func:`binary_report` computes them for one model, :func:`report_table` lays
several out as that table; :func:`multiclass_report` serves multi-class
models. The ``*_report`` functions return plain Python, ready for
:meth:`cytobook.notebook.NotebookRun.save_metrics`; no deep-learning backend
is imported.

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
