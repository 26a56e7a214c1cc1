"""Training loops shared by the notebooks: compile, fit with the usual callbacks, predict.

The notebooks state *what* is trained (model, optimiser, learning rate,
epochs); the mechanics (callbacks, verbosity, probability extraction) are here
so that every model of a chapter is trained the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import keras
import numpy as np


@dataclass
class SplitArrays:
    """Images and labels of one train/validation/test split, as arrays.

    Images are ``uint8`` RGB ``(N, H, W, 3)``: the models rescale them inside.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray

    def save(self, path: str | Path) -> Path:
        """Write all six arrays to one ``.npz`` file."""
        path = Path(path)
        np.savez(path, **vars(self))
        return path

    @classmethod
    def load(cls, path: str | Path) -> "SplitArrays":
        """Read arrays written by :meth:`save`."""
        with np.load(path) as data:
            return cls(**{name: data[name] for name in data.files})


@dataclass
class Trained:
    """A trained model with its learning history and its validation and test probabilities.

    ``stage_starts`` marks where a later training stage begins in the history
    (e.g. ``{20: "fine-tuning"}``), for the learning curves; ``settings``
    records how it was trained, for the notebook's metrics.
    """

    name: str
    model: keras.Model
    history: dict[str, list[float]] = field(default_factory=dict)
    p_val: np.ndarray | None = None
    p_test: np.ndarray | None = None
    stage_starts: dict[int, str] = field(default_factory=dict)
    settings: dict = field(default_factory=dict)


def make_optimizer(name: str, learning_rate: float) -> keras.optimizers.Optimizer:
    """``"adam"``, ``"rmsprop"`` or ``"sgd"`` (momentum 0.9) at ``learning_rate``."""
    optimizers = {
        "adam": lambda: keras.optimizers.Adam(learning_rate),
        "rmsprop": lambda: keras.optimizers.RMSprop(learning_rate),
        "sgd": lambda: keras.optimizers.SGD(learning_rate, momentum=0.9),
    }
    if name not in optimizers:
        raise ValueError(f"unknown optimizer {name!r}; expected one of {', '.join(optimizers)}")
    return optimizers[name]()


def compile_binary(model: keras.Model, optimizer: str = "adam", learning_rate: float = 1e-3) -> keras.Model:
    """Compile for one sigmoid output: binary cross-entropy, accuracy and AUC."""
    model.compile(
        optimizer=make_optimizer(optimizer, learning_rate),
        loss="binary_crossentropy",
        metrics=["accuracy", keras.metrics.AUC(name="auc")],
    )
    return model


def _output_layer(model: keras.Model) -> keras.layers.Layer:
    """The layer that makes ``model``'s output, looking inside nested models (a transfer model's ``head``)."""
    layer = model.layers[-1]
    while isinstance(layer, keras.Model):
        layer = layer.layers[-1]
    return layer


def compile_classifier(model: keras.Model, optimizer: str = "adam", learning_rate: float = 1e-3, *,
                       loss=None) -> keras.Model:
    """Compile for the model's output layer: one sigmoid unit, softmax units or sigmoid units.

    One sigmoid unit is :func:`compile_binary`. Softmax units (multi-class,
    integer labels) get the sparse categorical cross-entropy and accuracy;
    several sigmoid units (multi-label, 0/1 rows) the binary cross-entropy, or
    ``loss`` (e.g. :func:`weighted_binary_crossentropy`), and the ROC AUC over the labels.
    """
    output = _output_layer(model)
    units, activation = int(output.units), getattr(output.activation, "__name__", str(output.activation))
    if units == 1:
        return compile_binary(model, optimizer, learning_rate)
    if activation == "softmax":
        model.compile(optimizer=make_optimizer(optimizer, learning_rate), loss=loss or "sparse_categorical_crossentropy",
                      metrics=["accuracy"])
    elif activation == "sigmoid":
        model.compile(optimizer=make_optimizer(optimizer, learning_rate), loss=loss or "binary_crossentropy",
                      metrics=[keras.metrics.AUC(name="auc", multi_label=True, num_labels=units)])
    else:
        raise ValueError(f"{model.name}: expected a softmax or sigmoid output layer, found {activation}")
    return model


def weighted_binary_crossentropy(positive: np.ndarray, negative: np.ndarray):
    """Binary cross-entropy of each label weighted by its class: ``positive[j]`` where label j is 1, ``negative[j]`` where 0.

    The class weights of binary relevance (report 5, 2.4): each label's rare
    value weighs more. The mean over the labels, as Keras's own loss.
    """
    positive = np.asarray(positive, dtype="float32")
    negative = np.asarray(negative, dtype="float32")

    def loss(y_true, y_pred):
        y_true = keras.ops.cast(y_true, "float32")
        y_pred = keras.ops.clip(keras.ops.cast(y_pred, "float32"), 1e-7, 1 - 1e-7)
        terms = -(positive * y_true * keras.ops.log(y_pred) + negative * (1 - y_true) * keras.ops.log(1 - y_pred))
        return keras.ops.mean(terms, axis=-1)

    return loss


def fit(
    model: keras.Model,
    data: SplitArrays,
    *,
    epochs: int,
    batch_size: int,
    patience: int | None = None,
    reduce_lr_patience: int | None = None,
    class_weight: dict[int, float] | None = None,
    history: dict[str, list[float]] | None = None,
    callbacks: Sequence[keras.callbacks.Callback] = (),
    monitor: str = "val_loss",
    verbose: int = 2,
) -> dict[str, list[float]]:
    """Fit on the training arrays, validating each epoch; returns the (extended) history.

    Parameters
    ----------
    patience
        Stop after this many epochs without a better ``monitor`` and keep
        the best weights; ``None`` trains for all ``epochs``.
    reduce_lr_patience
        Multiply the learning rate by 0.1 after this many epochs without a
        better ``monitor`` (report 2: 6); ``None`` keeps it constant.
    class_weight
        Loss weight of each class label (report 2: 2.5 for ALL, 1.0 for HEM).
    history
        A history to extend, so that feature extraction followed by
        fine-tuning shows as one learning curve.
    callbacks
        More Keras callbacks, run before early stopping and the learning-rate decay.
    monitor
        The validation metric that early stopping and the decay watch:
        ``"val_loss"`` (lower is better) or ``"val_accuracy"`` (higher is better).
    verbose
        2: one line per epoch (progress bars flood saved notebooks); 0: silent.
    """
    if monitor not in ("val_loss", "val_accuracy"):
        raise ValueError(f"monitor must be 'val_loss' or 'val_accuracy', got {monitor!r}")
    mode = "min" if monitor == "val_loss" else "max"
    callbacks = list(callbacks)
    if patience is not None:
        callbacks.append(keras.callbacks.EarlyStopping(monitor=monitor, mode=mode, patience=patience,
                                                       restore_best_weights=True))
    if reduce_lr_patience is not None:
        callbacks.append(keras.callbacks.ReduceLROnPlateau(monitor=monitor, mode=mode, factor=0.1,
                                                           patience=reduce_lr_patience))
    result = model.fit(
        data.x_train, data.y_train,
        validation_data=(data.x_val, data.y_val),
        epochs=epochs, batch_size=batch_size, class_weight=class_weight,
        callbacks=callbacks, verbose=verbose,
    )
    merged = {key: list(values) for key, values in (history or {}).items()}
    for key, values in result.history.items():
        merged.setdefault(key, []).extend(float(v) for v in values)
    return merged


def fit_head_on_features(
    model: keras.Model,
    data: SplitArrays,
    *,
    epochs: int,
    batch_size: int,
    optimizer: str = "adam",
    learning_rate: float = 1e-3,
    patience: int | None = None,
) -> dict[str, list[float]]:
    """Feature extraction the fast way: run the frozen base once, then train only the head.

    For a transfer model of :mod:`cytobook.models.cnmc` (layers ``preprocess``,
    ``base``, ``head``) this equals training the whole model with a frozen
    base, because nothing before the head changes between epochs; it costs one
    forward pass through the base instead of one per epoch. The head's weights
    are shared, so ``model`` is trained afterwards.
    """
    extractor = keras.Sequential([model.get_layer("preprocess"), model.get_layer("base")])
    if model.get_layer("base").trainable:
        raise ValueError("the base is trainable: fit_head_on_features is for a frozen base")
    features = SplitArrays(
        extractor.predict(data.x_train, batch_size=batch_size, verbose=0), data.y_train,
        extractor.predict(data.x_val, batch_size=batch_size, verbose=0), data.y_val,
        data.x_test[:0], data.y_test[:0],
    )
    head = compile_classifier(model.get_layer("head"), optimizer, learning_rate)
    return fit(head, features, epochs=epochs, batch_size=batch_size, patience=patience)


def predict_proba(model: keras.Model, x: np.ndarray, batch_size: int = 64) -> np.ndarray:
    """P(positive class) for each input row (``x``: an array, or one array per model input), as a flat float array."""
    p = np.asarray(model.predict(x, batch_size=batch_size, verbose=0), dtype=float)
    return p.reshape(len(p), -1)[:, -1]  # a sigmoid unit, or a softmax whose last column is the positive class
