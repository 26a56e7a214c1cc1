"""A trained model's results: scored, shown the same way in every notebook, and saved to the run.

Each training notebook of a chapter ends a model with :func:`evaluate`, which
draws the learning curves, the confusion matrix and the ROC curve, returns the
report's metrics, and saves the validation and test probabilities
(``artifacts/<notebook>/predictions/<split scheme>/<model>.npz``, found by
:func:`load_predictions`) and, when asked, the model
(``.../models/<scheme>/<model>.keras``, for the explainability notebook,
without optimizer state: see :func:`save_model`) to the run. :func:`load_splits` gives a chapter's
notebooks the arrays of the data-preparation notebook, and
:func:`load_predictions` the saved probabilities of named models.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import keras
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from .evaluation import binary_report, confusion_matrix_figure, learning_curves, predict_labels, roc_figure
from .notebook import NotebookRun
from .preprocess import resize_square
from .training import SplitArrays, Trained, predict_proba

#: The two ways the C-NMC chapter splits the training folds (see notebook 02).
SCHEMES = ("image", "subject")


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
    keep_model: bool = False,
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
        ``{20: "fine-tuning"}`` after 20 epochs of feature extraction;
        ``trained.stage_starts`` by default.
    keep_model
        Also save the model, for a later notebook that loads it. Only the
        models used later are kept: a ResNet50 file is about 95 MB.

    Returns
    -------
    dict
        :func:`cytobook.evaluation.binary_report` of the test set, with
        ``validation``: the loss (binary cross-entropy) and accuracy of the
        final model on the validation set, as the report gives for every model.
    """
    if trained.p_val is None:
        trained.p_val = predict_proba(trained.model, data.x_val)
    if trained.p_test is None:
        trained.p_test = predict_proba(trained.model, data.x_test)
    report = binary_report(data.y_test, trained.p_test)
    p_val = np.clip(trained.p_val, 1e-7, 1 - 1e-7)
    report["validation"] = {
        "loss": float(-np.mean(data.y_val * np.log(p_val) + (1 - data.y_val) * np.log(1 - p_val))),
        "accuracy": float(np.mean((trained.p_val > 0.5) == (data.y_val > 0.5))),
    }
    stage_starts = trained.stage_starts if stage_starts is None else stage_starts
    np.savez(
        run.artifact("predictions", scheme, f"{trained.name}.npz"),
        p_val=trained.p_val, y_val=data.y_val, p_test=trained.p_test, y_test=data.y_test,
    )
    if keep_model:
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


def load_splits(run: NotebookRun, size: int | None = None) -> dict[str, SplitArrays]:
    """The arrays of both split schemes that ``02_cnmc_data_preparation`` saved in this run.

    ``size`` resizes the images (area interpolation) when a model takes
    another input side than the prepared one (ResNet50's 224 px).
    """
    splits = {scheme: SplitArrays.load(run.earlier_artifact("02_cnmc_data_preparation", f"{scheme}_split.npz"))
              for scheme in SCHEMES}
    if size is None or size == splits["image"].x_train.shape[1]:
        return splits

    def resized(images: np.ndarray) -> np.ndarray:
        return np.stack([resize_square(image, size) for image in images]) if len(images) else images[:, :size, :size]

    return {scheme: SplitArrays(resized(s.x_train), s.y_train, resized(s.x_val), s.y_val, resized(s.x_test), s.y_test)
            for scheme, s in splits.items()}


def stand_in_cells(run: NotebookRun, splits: dict[str, SplitArrays]) -> SplitArrays:
    """The training images that every split scheme trains on: those no split validates or tests on.

    A base trained from random weights on them (where there are no ImageNet
    weights, :func:`cytobook.models.transfer.stand_in_base`) can serve both
    splits, as ImageNet weights would, having seen none of either split's
    validation or test cells; one base instead of one per split. They are the
    rows of ``splits["image"]``'s (balanced) training part whose cell is in
    the training part of every scheme (``02_cnmc_data_preparation``'s tables),
    with the augmented copies of those cells.

    Returns
    -------
    SplitArrays
        Those images and labels as the training part; validation and test parts empty.

    Raises
    ------
    ValueError
        If no cell is in every scheme's training part, or the tables do not match ``splits``.
    """
    folds = pd.read_csv(run.earlier_artifact("02_cnmc_data_preparation", "training_folds.csv"))
    balanced = pd.read_csv(run.earlier_artifact("02_cnmc_data_preparation", "image_split_balanced_train.csv"))
    image = splits["image"]
    if len(balanced) != len(image.x_train):
        raise ValueError(f"image_split_balanced_train.csv lists {len(balanced)} training images, the image-level arrays "
                         f"hold {len(image.x_train)}: rerun 02_cnmc_data_preparation")
    everywhere = (folds[[f"{scheme}_split" for scheme in SCHEMES]] == "train").all(axis=1)
    keep = balanced["path"].isin(set(folds.loc[everywhere, "path"])).to_numpy()
    if not keep.any():
        raise ValueError("no cell is in the training part of every split scheme: no stand-in base can serve them all")
    x, y = image.x_train[keep], image.y_train[keep]
    return SplitArrays(x, y, x[:0], y[:0], x[:0], y[:0])


def load_predictions(run: NotebookRun, scheme: str, members: Sequence[Sequence[str]]) -> dict[str, dict[str, np.ndarray]]:
    """The saved probabilities of named models for one split scheme.

    Parameters
    ----------
    members
        ``(notebook, model name)`` pairs; the files read are exactly these
        models', never whatever else lies in the run.

    Returns
    -------
    dict
        Model name to the arrays ``p_val``, ``y_val``, ``p_test``, ``y_test``.

    Raises
    ------
    FileNotFoundError
        Naming the notebook to run first, for a missing model.
    """
    predictions = {}
    for notebook, model in members:
        with np.load(run.earlier_artifact(notebook, "predictions", scheme, f"{model}.npz")) as data:
            predictions[model] = {key: data[key] for key in data.files}
    return predictions
