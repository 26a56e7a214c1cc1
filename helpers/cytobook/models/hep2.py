"""Report 5's VGG16 cell classifiers: one frozen base, heads trained on its features.

The report stacks "two Dense layers with ReLU activation functions and a
dropout layer followed by a Dense layer with softmax activation" on VGG16
(its 2.3), and the same head with one sigmoid unit per label for the
multi-label task (2.4). It does not say that the base is fine-tuned: we keep
it frozen, as transfer learning by feature extraction, so every head of the
chapter (six I3A classes, 14 patterns, 47 HEP Annot classes, the labels)
trains on features computed once (:func:`cell_features`, :func:`train_head`).

**Without ImageNet weights** (``smoke`` and ``demo`` offline) the base is
first trained from random weights on the I3A training cells
(:func:`train_stand_in`), as report 1's chapter does for its bases
(:func:`cytobook.models.transfer.stand_in_base`), then frozen: a stand-in for
ImageNet learnt on HEp-2 cells, never on the cells a head is tested on.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import keras
import numpy as np
from sklearn.model_selection import train_test_split

from ..hep2_cells import oversample_minorities, random_symmetries
from ..training import SplitArrays, compile_classifier, fit, weighted_binary_crossentropy
from .layers import imagenet_preprocessing
from .transfer import convolutional_base, he_initialise, head_model

ARCH = "vgg16"


def cell_base(spec, *, required: bool, weights: str | None = "imagenet") -> keras.Model:
    """The feature extractor: VGG16's ImageNet preprocessing and its (possibly cut) base, frozen.

    Parameters
    ----------
    spec
        The profile's :class:`~cytobook.profiles.Hep2ModelSpec` (input side, where the base ends).
    required
        Missing ImageNet weights stop the run (``full``) or are announced
        (:func:`cytobook.weights.build_backbone`).
    weights
        ``"imagenet"`` or ``None`` (random weights, e.g. to load saved ones).

    Returns
    -------
    keras.Model
        Images in [0, 255] (N, S, S, 3) to the base's feature maps; its
        attribute ``imagenet_weights`` is the weight file used, or ``None``.
    """
    base = convolutional_base(ARCH, spec.image_size, truncated=spec.cut_at or False, weights=weights, required=required)
    base.trainable = False
    inputs = keras.Input((spec.image_size, spec.image_size, 3), name="image")
    extractor = keras.Model(inputs, base(imagenet_preprocessing(ARCH)(inputs)), name="vgg16_features")
    extractor.imagenet_weights = base.imagenet_weights
    return extractor


def train_stand_in(extractor: keras.Model, images: np.ndarray, labels: np.ndarray, spec, *, seed: int) -> dict:
    """Train the base of ``extractor`` from random weights on labelled cells, then freeze it again.

    The base's convolutions are drawn from He et al.'s initialisation
    (:func:`~cytobook.models.transfer.he_initialise`: with Glorot's, VGG16
    does not start learning), a global-average-pooling softmax layer is put on
    it, and the whole is trained with Adam at ``spec.stand_in_learning_rate``
    for ``spec.stand_in_epochs`` epochs, each cell under a fresh random flip
    or rotation every epoch (:func:`~cytobook.hep2_cells.random_symmetries`).

    Returns
    -------
    dict
        The settings as run and the training history (``loss``, ``accuracy`` per epoch).
    """
    if spec.stand_in_epochs < 1:
        raise ValueError("spec.stand_in_epochs is 0: this profile requires ImageNet weights for the base")
    keras.utils.set_random_seed(seed)
    base = extractor.get_layer("base")
    he_initialise(base, seed)
    base.trainable = True
    classes = int(np.max(labels)) + 1
    pooled = keras.layers.GlobalAveragePooling2D()(extractor.output)
    model = keras.Model(extractor.input, keras.layers.Dense(classes, activation="softmax")(pooled))
    compile_classifier(model, "adam", spec.stand_in_learning_rate)
    rng = np.random.default_rng(seed)
    history: dict[str, list[float]] = {"loss": [], "accuracy": []}
    for _ in range(spec.stand_in_epochs):
        result = model.fit(random_symmetries(images, rng), labels, batch_size=spec.batch_size, epochs=1, verbose=0)
        for key in history:
            history[key].append(float(result.history[key][0]))
    base.trainable = False
    return {"epochs": spec.stand_in_epochs, "optimizer": "adam", "learning_rate": spec.stand_in_learning_rate,
            "training_cells": len(images), "classes": classes, "history": history}


def save_base(extractor: keras.Model, path: str | Path) -> Path:
    """Write the base's weights (a ``.weights.h5`` file) for the chapter's later notebooks."""
    path = Path(path)
    extractor.get_layer("base").save_weights(path)
    return path


def load_base(spec, path: str | Path) -> keras.Model:
    """The extractor of :func:`cell_base` with the weights :func:`save_base` wrote."""
    extractor = cell_base(spec, required=False, weights=None)
    extractor.get_layer("base").load_weights(Path(path))
    return extractor


def cell_features(extractor: keras.Model, images: np.ndarray, batch_size: int = 64) -> np.ndarray:
    """The frozen base's feature maps of ``images`` (N, S, S, 3), as ``float32``."""
    return np.asarray(extractor.predict(images, batch_size=batch_size, verbose=0), dtype="float32")


def label_weights(y_train: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-label loss weights of binary relevance: each value weighs ``n / (2 * its count)`` (balanced).

    A label never or always present in the training rows keeps weights 1:
    there is nothing to balance.
    """
    y_train = np.asarray(y_train, dtype=float)
    n = len(y_train)
    positives = y_train.sum(axis=0)
    negatives = n - positives
    both = (positives > 0) & (negatives > 0)
    positive = np.where(both, n / (2 * np.maximum(positives, 1)), 1.0)
    negative = np.where(both, n / (2 * np.maximum(negatives, 1)), 1.0)
    return positive, negative


def train_head(features: SplitArrays, spec, *, outputs: int, multilabel: bool = False, weighted: bool = False,
               seed: int) -> tuple[keras.Model, dict[str, list[float]]]:
    """Train the report's head on cached base features.

    Parameters
    ----------
    features
        Feature maps and labels of the training and validation cells
        (integer classes, or 0/1 rows of labels when ``multilabel``).
    spec
        :class:`~cytobook.profiles.Hep2ModelSpec`: units, dropout, epochs, patience, batch, rate.
    outputs
        Classes (softmax) or labels (sigmoid units, ``multilabel``).
    weighted
        Multi-label only: the class weights of binary relevance (:func:`label_weights`).

    Returns
    -------
    keras.Model, dict
        The head (named ``"head"``: the features flattened and standardised,
        then the report's layers) and its learning history.
    """
    if weighted and not multilabel:
        raise ValueError("weighted applies to the multi-label head (per-label class weights)")
    keras.utils.set_random_seed(seed)
    head = head_model(features.x_train.shape[1:], pooling="flatten", dense=spec.dense, dropout=spec.dropout,
                      outputs=outputs, activation="sigmoid" if multilabel else "softmax", standardise=True)
    # The features to mean 0 and variance 1 over the training cells (*our choice*): VGG16's outputs span orders of
    # magnitude, and a base trained from random weights gives values in the hundreds, on which the head's first
    # steps kill its ReLUs (it then predicts one class).
    head.get_layer("standardise").adapt(features.x_train.reshape(len(features.x_train), -1))
    loss = weighted_binary_crossentropy(*label_weights(features.y_train)) if weighted else None
    compile_classifier(head, "adam", spec.learning_rate, loss=loss)
    history = fit(head, features, epochs=spec.epochs, batch_size=spec.batch_size, patience=spec.patience, verbose=0)
    return head, history


def predict(head: keras.Model, features: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """Class probabilities (softmax) or label probabilities (sigmoid units), (N, outputs)."""
    return np.asarray(head.predict(features, batch_size=batch_size, verbose=0), dtype=float)


@dataclass
class CellModel:
    """A head trained on a frozen base's features, with what it was trained on and its test probabilities."""

    head: keras.Model
    history: dict[str, list[float]]
    p_test: np.ndarray
    training_cells: int
    stopping_cells: int
    settings: dict = field(default_factory=dict)


def classify_cells(extractor: keras.Model, train_images: np.ndarray, train_labels: np.ndarray,
                   test_images: np.ndarray, spec, *, outputs: int, seed: int, multilabel: bool = False,
                   weighted: bool = False, stopping: float = 0.15) -> CellModel:
    """Train a head on the training cells and score the test cells: the chapter's whole classification step.

    A share ``stopping`` of the training cells (stratified by class where
    every class has two or more) is held out for early stopping; for a
    multi-class head, the classes of the rest smaller than the median class
    get flipped and rotated copies up to it (the report augmented "only [...]
    classes that were lacking in images", after the split:
    :func:`~cytobook.hep2_cells.oversample_minorities`; up to the median
    rather than the largest class is *our choice*, to bound the cost).
    Multi-label heads are balanced by their loss weights instead (``weighted``).

    Returns
    -------
    CellModel
        The head, its history and the test cells' probabilities (N, outputs).
    """
    rng = np.random.default_rng(seed)
    labels = np.asarray(train_labels)
    index = np.arange(len(labels))
    classes, counts = np.unique(labels, return_counts=True) if not multilabel else (None, None)
    stratify = labels if not multilabel and counts.min() >= 2 and len(classes) * 2 <= stopping * len(labels) else None
    fit_rows, stop_rows = train_test_split(index, test_size=stopping, stratify=stratify, random_state=seed)
    fit_images, fit_labels = train_images[fit_rows], labels[fit_rows]
    if not multilabel:
        _, fit_counts = np.unique(fit_labels, return_counts=True)
        fit_images, fit_labels = oversample_minorities(fit_images, fit_labels, rng, target=int(np.median(fit_counts)))
    features = SplitArrays(cell_features(extractor, fit_images), fit_labels,
                           cell_features(extractor, train_images[stop_rows]), labels[stop_rows],
                           cell_features(extractor, test_images), np.zeros(len(test_images)))
    head, history = train_head(features, spec, outputs=outputs, multilabel=multilabel, weighted=weighted, seed=seed)
    return CellModel(head, history, predict(head, features.x_test), len(fit_labels), len(stop_rows),
                     {"epochs_run": len(history["loss"]), "oversampled_to_median": not multilabel,
                      "class_weighted": weighted})
