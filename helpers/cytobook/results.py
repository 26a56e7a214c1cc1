"""A trained model's results: scored, shown the same way in every notebook, and saved to the run.

Each training notebook of a chapter ends a model with :func:`evaluate`, which
draws the learning curves, the confusion matrix and the ROC curve, returns the
report's metrics, and saves the validation and test probabilities
(``artifacts/<notebook>/predictions/<split scheme>/<model>.npz``, found by
:func:`load_predictions`) and the model (``.../models/<scheme>/<model>.keras``,
for the explainability notebook, without optimizer state: see
:func:`save_model`) to the run. :func:`random_initialised` reads back which
saved models started from random weights because their ImageNet weights were
not cached.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import keras
import matplotlib.pyplot as plt
import numpy as np

from .evaluation import binary_report, confusion_matrix_figure, learning_curves, predict_labels, roc_figure
from .notebook import NotebookRun
from .training import SplitArrays, Trained, predict_proba
from .weights import ARCHITECTURES, WeightFile, imagenet_file


def _without_compile_configs(config):
    """A copy of a model config without the ``compile_config`` entries of the model and its nested models."""
    if isinstance(config, dict):
        return {key: _without_compile_configs(value) for key, value in config.items() if key != "compile_config"}
    if isinstance(config, list):
        return [_without_compile_configs(value) for value in config]
    return config


def save_model(model: keras.Model, path: str | Path) -> Path:
    """Save ``model`` as a ``.keras`` file with its architecture and weights, but no optimizer state.

    Keras 3 accepts ``include_optimizer=False`` for ``.keras`` files but
    ignores it (only the legacy HDF5 writer reads it), and saves the state of
    every optimizer it finds: the model's and those of compiled sub-models,
    such as the head that :func:`cytobook.training.fit_head_on_features`
    trains. Adam's two moments per trainable weight make a fine-tuned model's
    file up to three times its weights. The copy saved here is rebuilt from
    the model's config, so it has the same layers, names, trainable flags and
    weights, and is not compiled: ``keras.models.load_model`` gives a model
    ready to predict (compile it again to train on).

    Models whose config cannot rebuild them (subclassed models without
    ``get_config``) are saved as they are, optimizer included.
    """
    path = Path(path)
    try:
        # Nested models (the head) carry their own compile settings in the config: drop them too.
        bare = model.__class__.from_config(_without_compile_configs(model.get_config()))
        bare.set_weights(model.get_weights())
    except (NotImplementedError, TypeError, ValueError):
        bare = model
    bare.save(path)
    return path


def evaluate(
    run: NotebookRun,
    trained: Trained,
    data: SplitArrays,
    scheme: str,
    show: bool = True,
    stage_starts: Mapping[int, str] | None = None,
) -> dict:
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
    stage_starts
        Where a training stage starts in ``trained.history`` (index of its
        first epoch) and its name, marked on the learning curves: e.g.
        ``{20: "fine-tuning"}`` after 20 epochs of feature extraction.

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
    save_model(trained.model, run.artifact("models", scheme, f"{trained.name}.keras"))
    if show:
        title = f"{trained.name} ({scheme}-level split)"
        if trained.history:
            learning_curves(trained.history, title, stage_starts=stage_starts)
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


def prediction_sources(run_dir: str | Path, scheme: str) -> dict[str, str]:
    """The notebook that saved each model's probabilities for one split scheme, by model name."""
    return {path.stem: path.parent.parent.parent.name
            for path in sorted(Path(run_dir).glob(f"artifacts/*/predictions/{scheme}/*.npz"))}


def architecture_of(name: str) -> str | None:
    """The :data:`cytobook.weights.ARCHITECTURES` key a model or notebook name refers to, if any.

    ``"mobilenet_v2_truncated"`` and ``"06_cnmc_mobilenet_v2"`` give
    ``"mobilenet_v2"`` (the longest key that matches wins over ``"mobilenet"``).
    """
    for arch in sorted(ARCHITECTURES, key=len, reverse=True):
        if name == arch or name.startswith(f"{arch}_") or f"_{arch}_" in name or name.endswith(f"_{arch}"):
            return arch
    return None


def random_initialised(run_dir: str | Path, scheme: str) -> dict[str, WeightFile | None]:
    """Models of the run whose base started from random weights because no ImageNet weights were cached.

    Each training notebook of a transfer model records in its metrics the
    ImageNet file it loaded (``imagenet_weights``), or ``null`` when the file
    was missing and the profile let it go on from random weights. A model
    counts here when the notebook that saved its predictions recorded
    ``null``; models of notebooks that record nothing (the scratch CNN) or
    whose metrics are absent are left out.

    Returns
    -------
    dict
        Model name to the :class:`~cytobook.weights.WeightFile` it lacked
        (``None`` if its architecture is not recognised), in the order of
        :func:`load_predictions`.
    """
    found: dict[str, WeightFile | None] = {}
    recorded: dict[str, dict] = {}
    for model, notebook in prediction_sources(run_dir, scheme).items():
        if notebook not in recorded:
            path = Path(run_dir) / "metrics" / f"{notebook}.json"
            recorded[notebook] = json.loads(path.read_text()) if path.is_file() else {}
        metrics = recorded[notebook]
        if "imagenet_weights" not in metrics or metrics["imagenet_weights"] is not None:
            continue
        arch = architecture_of(model) or architecture_of(notebook)
        found[model] = imagenet_file(arch) if arch else None
    return found
