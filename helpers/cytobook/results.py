"""A trained model's results: scored, shown the same way in every notebook, and saved to the run.

Each training notebook of a chapter ends a model with :func:`evaluate`, which
draws the learning curves, the confusion matrix and the ROC curve, returns the
report's metrics, and saves the validation and test probabilities
(``artifacts/<notebook>/predictions/<split scheme>/<model>.npz``, found by
:func:`load_predictions`) and the model (``.../models/<scheme>/<model>.keras``,
for the explainability notebook) to the run.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from .evaluation import binary_report, confusion_matrix_figure, learning_curves, predict_labels, roc_figure
from .notebook import NotebookRun
from .training import SplitArrays, Trained, predict_proba


def evaluate(run: NotebookRun, trained: Trained, data: SplitArrays, scheme: str, show: bool = True) -> dict:
    """Score ``trained`` on the test set, show its figures and save its probabilities.

    Parameters
    ----------
    run
        The notebook's run (for the artefact folder).
    trained
        The model and its history; probabilities are predicted if missing.
    data
        The arrays it was trained on.
    scheme
        ``"image"`` or ``"subject"``: which split the arrays come from.
    show
        Draw learning curves, confusion matrix and ROC curve.

    Returns
    -------
    dict
        :func:`cytobook.evaluation.binary_report` of the test set.
    """
    if trained.p_val is None:
        trained.p_val = predict_proba(trained.model, data.x_val)
    if trained.p_test is None:
        trained.p_test = predict_proba(trained.model, data.x_test)
    report = binary_report(data.y_test, trained.p_test)
    np.savez(
        run.artifact("predictions", scheme, f"{trained.name}.npz"),
        p_val=trained.p_val, y_val=data.y_val, p_test=trained.p_test, y_test=data.y_test,
    )
    trained.model.save(run.artifact("models", scheme, f"{trained.name}.keras"))
    if show:
        title = f"{trained.name} ({scheme}-level split)"
        if trained.history:
            learning_curves(trained.history, title)
        confusion_matrix_figure(data.y_test.astype(int), predict_labels(trained.p_test), ("HEM", "ALL"), f"Test set: {title}")
        roc_figure({trained.name: (data.y_test, trained.p_test)}, f"Test ROC: {title}")
        plt.show()
        print(f"{title}: test weighted F1 {report['weighted_f1']:.4f}, ROC AUC "
              + (f"{report['roc_auc']:.4f}" if report["roc_auc"] is not None else "undefined (one class)"))
    return report


def load_predictions(run_dir: str | Path, scheme: str) -> dict[str, dict[str, np.ndarray]]:
    """Every model's saved probabilities for one split scheme, by model name (notebook order).

    Raises
    ------
    FileNotFoundError
        If the run holds none: the training notebooks must run first.
    """
    files = sorted(Path(run_dir).glob(f"artifacts/*/predictions/{scheme}/*.npz"))
    if not files:
        raise FileNotFoundError(f"no predictions for the {scheme}-level split under {run_dir}/artifacts: run the training notebooks first")
    predictions = {}
    for path in files:
        with np.load(path) as data:
            predictions[path.stem] = {name: data[name] for name in data.files}
    return predictions
