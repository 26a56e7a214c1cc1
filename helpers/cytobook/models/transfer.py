"""Transfer learning from ImageNet bases: the classifier, and staged recipes to train it.

Every transfer classifier maps RGB images in [0, 255] to one sigmoid unit. It
is three layers: the ImageNet input preprocessing ``"preprocess"``, the
(possibly truncated) ``keras.applications`` base ``"base"``, and the new
classifier ``"head"``. A :class:`Recipe` says how one such model is built and
trained, in the stages report 1 uses and reports 2 and 5 reuse:

1. **feature extraction**: the base is frozen, so its outputs are computed
   once and only the head is trained on them
   (:func:`cytobook.training.fit_head_on_features`);
2. optionally **fine-tuning**: part of the base (the last ``n`` layers with
   weights, everything from a named layer on, or everything) is unfrozen and
   the whole model trained on, continuing the same learning curve.

:func:`train_recipe` runs a recipe; :func:`recipe_table` lists recipes for a
notebook. Batch normalisation stays frozen in inference mode when a base is
unfrozen (*our choice*, as in the Keras transfer-learning guide).

**Without ImageNet weights** (a machine that has neither the file nor a
network, in the ``smoke`` and ``demo`` profiles) there are no pretrained
features to extract or fine-tune. :func:`train_recipe` then first trains the
whole base from random weights on the split's own training images, or on the
images it is given as ``stand_in_data`` (cells no split validates or tests on
let one base serve every split, as ImageNet weights do)
(:func:`stand_in_base`, at the profile's ``stand_in_epochs_for(arch)`` and
:data:`STAND_IN_LEARNING_RATE`), and runs the recipe's stages unchanged from that
stand-in for ImageNet: same architecture, same stages, same rates. The
returned :class:`~cytobook.training.Trained` records which weights it started
from.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace

import keras
import numpy as np
import pandas as pd

from ..training import SplitArrays, Trained, compile_binary, fit, fit_head_on_features
from ..weights import build_backbone
from .layers import imagenet_preprocessing

#: Where each base is truncated when its last block or stage is removed (report 1, 3.3.1.3 and 3.3.2.1).
TRUNCATION: dict[str, str] = {
    "vgg16": "block4_pool",  # without block 5
    "resnet50": "conv4_block6_out",  # without stage 5: 14x14x1024 at 224 px
    "mobilenet_v2": "block_12_add",  # our choice: without the 7x7 stage (blocks 13-16, Conv_1), as for ResNet50
}


def classifier_head(x, layers: tuple[tuple[str, float], ...], outputs: int = 1, activation: str = "sigmoid"):
    """Stack ``("dense", units)`` (ReLU) and ``("dropout", rate)`` layers on ``x``, then the output layer.

    The output is one sigmoid unit ``p_all`` (report 1's binary task) by
    default; ``outputs`` softmax units for a multi-class task, or ``outputs``
    sigmoid units for a multi-label one (report 5), named ``probabilities``.
    """
    for kind, value in layers:
        x = keras.layers.Dropout(value)(x) if kind == "dropout" else keras.layers.Dense(int(value), activation="relu")(x)
    return keras.layers.Dense(outputs, activation=activation, name="p_all" if outputs == 1 else "probabilities")(x)


def head_model(feature_shape: tuple[int, ...], *, pooling: str = "gap", dense: int | tuple[int, ...] | None = 256,
               dropout: float | None = 0.5, outputs: int = 1, activation: str = "sigmoid",
               standardise: bool = False) -> keras.Model:
    """The new classifier on a base's output: pooling, dense ReLU layers, optional dropout, the output layer.

    A model of its own, named ``"head"``, so that feature extraction can
    train it on cached base outputs (:func:`cytobook.training.fit_head_on_features`)
    and the full model sees the same weights. ``dense`` is one layer's units or
    a tuple of them (report 5: two dense layers, then the dropout).
    ``standardise`` puts a ``keras.layers.Normalization`` layer named
    ``"standardise"`` after the pooling: one mean and one variance over all
    features (per-feature statistics would blow up the features that are
    constant on the training images), to be adapted to the training features.
    """
    if pooling not in ("flatten", "gap"):
        raise ValueError(f"pooling must be 'flatten' or 'gap', got {pooling!r}")
    features = keras.Input(feature_shape, name="features")
    x = keras.layers.Flatten()(features) if pooling == "flatten" else keras.layers.GlobalAveragePooling2D()(features)
    if standardise:
        x = keras.layers.Normalization(axis=None, name="standardise")(x)
    units = () if not dense else (dense,) if isinstance(dense, int) else tuple(dense)
    layers = tuple(("dense", u) for u in units) + ((("dropout", dropout),) if dropout else ())
    return keras.Model(features, classifier_head(x, layers, outputs, activation), name="head")


def convolutional_base(
    arch: str,
    size: int,
    *,
    truncated: bool | str = False,
    weights: str | None = "imagenet",
    required: bool = True,
) -> keras.Model:
    """An ImageNet base, whole or cut at :data:`TRUNCATION` (``truncated=True``) or at a named layer, named ``"base"``.

    ``required`` follows the profile: missing ImageNet weights stop the
    ``full`` profile and are announced loudly in the others (see
    :func:`cytobook.weights.build_backbone`). The base's attribute
    ``imagenet_weights`` is the weight file used, or ``None``.
    """
    base = build_backbone(arch, (size, size, 3), weights=weights, required=required)
    loaded = base.imagenet_weights
    if truncated:
        cut = TRUNCATION[arch] if truncated is True else truncated
        base = keras.Model(base.input, base.get_layer(cut).output)
    base = keras.Model(base.input, base.output, name="base")
    base.imagenet_weights = loaded
    return base


def transfer_classifier(
    arch: str,
    size: int,
    *,
    truncated: bool | str = False,
    pooling: str = "gap",
    dense: int | tuple[int, ...] | None = 256,
    dropout: float | None = 0.5,
    weights: str | None = "imagenet",
    required: bool = True,
    outputs: int = 1,
    activation: str = "sigmoid",
) -> keras.Model:
    """ImageNet base + a new head: pooling, dense ReLU layers, optional dropout, the output layer.

    Parameters
    ----------
    arch
        ``"vgg16"``, ``"resnet50"`` or ``"mobilenet_v2"`` (any key of
        :data:`cytobook.weights.ARCHITECTURES` with a :data:`TRUNCATION` to truncate).
    truncated
        Cut the base at :data:`TRUNCATION` (``True``) or after the named layer.
    pooling
        ``"flatten"`` or ``"gap"`` (global average pooling).
    dense
        Units of the ReLU layer before the output, a tuple of them, or ``None``.
    dropout
        Rate of the dropout before the output, or ``None`` for none.
    outputs, activation
        One sigmoid unit (binary, the default), ``outputs`` softmax units
        (multi-class) or ``outputs`` sigmoid units (multi-label).

    The base starts frozen (feature extraction); see :func:`set_trainable`.
    """
    base = convolutional_base(arch, size, truncated=truncated, weights=weights, required=required)
    base.trainable = False
    head = head_model(base.output.shape[1:], pooling=pooling, dense=dense, dropout=dropout, outputs=outputs,
                      activation=activation)
    inputs = keras.Input((size, size, 3), name="image")
    suffix = "" if not truncated else "_truncated" if truncated is True else f"_to_{truncated}"
    model = keras.Model(inputs, head(base(imagenet_preprocessing(arch)(inputs))), name=f"{arch}{suffix}")
    model.imagenet_weights = base.imagenet_weights
    return model


def set_trainable(model: keras.Model, unfreeze: str | int) -> list[str]:
    """Unfreeze part of the model's ``"base"`` for fine-tuning; returns the unfrozen layer names.

    Parameters
    ----------
    unfreeze
        ``"everything"``; an integer ``n``, the last ``n`` layers that hold
        weights (batch normalisation not counted: ``3`` is the last three
        convolutions of VGG16 or of ResNet50's last bottleneck); or a layer
        name, that layer and all after it.

    Batch-normalisation layers stay frozen in inference mode: with small
    batches their statistics would otherwise drift. Recompile afterwards.
    """
    layers = model.get_layer("base").layers
    learnable = [i for i, layer in enumerate(layers) if layer.weights and not isinstance(layer, keras.layers.BatchNormalization)]
    if unfreeze == "everything":
        start = 0
    elif isinstance(unfreeze, int):
        if not 1 <= unfreeze <= len(learnable):
            raise ValueError(f"cannot unfreeze the last {unfreeze} of {len(learnable)} layers with weights")
        start = learnable[-unfreeze]
    else:
        names = [layer.name for layer in layers]
        if unfreeze not in names:
            raise ValueError(f"{unfreeze!r} is not a layer of {model.name}'s base")
        start = names.index(unfreeze)
    model.get_layer("base").trainable = True
    for index, layer in enumerate(layers):
        layer.trainable = index >= start and not isinstance(layer, keras.layers.BatchNormalization)
    return [layers[i].name for i in learnable if i >= start]


def recalibrate_batch_norm(model: keras.Model, images: np.ndarray, batch_size: int = 256) -> int:
    """Set every batch-normalisation layer of the base to the statistics of ``images``; returns how many.

    One pass in training mode with momentum 0 makes each layer's moving mean
    and variance those of the batch it normalises, layer after layer, so that
    inference sees features on the scale training will. Used for bases that
    start from random weights, whose default statistics (mean 0, variance 1)
    match nothing. Layers' ``trainable`` and ``momentum`` are restored.
    """
    base = model.get_layer("base")
    norms = [layer for layer in base.layers if isinstance(layer, keras.layers.BatchNormalization)]
    if not norms:
        return 0
    saved = [(layer.trainable, layer.momentum) for layer in norms]
    for layer in norms:
        layer.momentum = 0.0
        if not layer.trainable:  # a frozen BN layer ignores training=True; setting it needlessly costs
            layer.trainable = True  # ~15 s of Inception-ResNet-V2 retracing in the next fit on 2 cores
    try:
        base(model.get_layer("preprocess")(images[:batch_size]), training=True)
    finally:
        for layer, (trainable, momentum) in zip(norms, saved):
            layer.momentum = momentum
            if layer.trainable != trainable:
                layer.trainable = trainable
    return len(norms)


class BatchNormRecalibration(keras.callbacks.Callback):
    """Before each validation, set the base's batch-normalisation statistics from training images.

    A network trained from random weights moves faster than the moving
    averages of its batch-normalisation layers (momentum 0.99) follow it:
    for the first epochs, inference (and so the validation loss that early
    stopping and the learning-rate decay watch) would use statistics of
    weights long gone. :func:`recalibrate_batch_norm` on ``images`` fixes
    them before every evaluation; training itself is unchanged.
    """

    def __init__(self, images: np.ndarray):
        super().__init__()
        self.images = images

    def on_test_begin(self, logs=None):
        recalibrate_batch_norm(self.model, self.images)


#: Adam rate of a base trained from random weights (:func:`stand_in_base`); 1e-3 for any other. Measured on
#: the demo's generated cells: the networks with batch normalisation learn fastest at 1e-3; VGG16, without it,
#: stays at chance at 1e-3 and learns at 3e-4.
STAND_IN_LEARNING_RATE: dict[str, float] = {"vgg16": 3e-4, "resnet50": 1e-3, "mobilenet_v2": 1e-3}

_STAND_INS: dict[tuple, keras.Model] = {}
_EXTRACTED: dict[tuple, tuple[list[np.ndarray], dict[str, list[float]]]] = {}


def _fingerprint(data: SplitArrays) -> str:
    """A digest of the training and validation arrays: the same split gives the same key."""
    digest = hashlib.sha1()
    for array in (data.x_train, data.y_train, data.x_val, data.y_val):
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()


def he_initialise(base: keras.Model, seed: int) -> int:
    """Redraw every convolution kernel of ``base`` from He et al.'s initialisation; returns how many.

    Meant for deep ReLU networks trained from scratch: with Keras's default,
    Glorot's, VGG16 does not start learning.
    """
    convolutions = [layer for layer in base.layers if isinstance(layer, keras.layers.Conv2D)]
    for index, layer in enumerate(convolutions):
        layer.kernel.assign(keras.initializers.HeNormal(seed=seed + index)(layer.kernel.shape))
    return len(convolutions)


def stand_in_base(arch: str, data: SplitArrays, *, profile, seed: int) -> keras.Model:
    """The whole ``arch`` base trained from random weights on ``data``'s training images.

    It stands in for ImageNet weights where there are none. The base, its
    convolutions drawn from He et al.'s initialisation (meant for deep ReLU
    networks trained from scratch; with Keras's default, Glorot's, VGG16 does
    not start learning), is trained end to end under a global-average-pooling
    and sigmoid head, batch normalisation included, with Adam at
    :data:`STAND_IN_LEARNING_RATE` for ``profile.stand_in_epochs_for(arch)`` epochs.
    There is no early stopping: the validation loss of a network whose
    batch-normalisation statistics still move says little; those statistics
    are then set from the training images (:func:`recalibrate_batch_norm`).
    Validation and test images stay unseen. The result is kept for the
    kernel's life, keyed by architecture, training images and seed, so every
    recipe given the same images starts from the same base.

    Returns
    -------
    keras.Model
        The trained model (``preprocess``, ``base``, ``head``); its attribute
        ``stand_in_settings`` records epochs, optimiser, rate, training images and final training accuracy.
    """
    epochs = profile.stand_in_epochs_for(arch)
    key = (arch, seed, _fingerprint(data), epochs, profile.batch_size)
    if key not in _STAND_INS:
        keras.utils.set_random_seed(seed)
        model = transfer_classifier(arch, data.x_train.shape[1], dense=None, dropout=None, weights=None, required=False)
        base = model.get_layer("base")
        base.trainable = True  # batch normalisation too: its statistics must be learnt
        he_initialise(base, seed)
        rate = STAND_IN_LEARNING_RATE.get(arch, 1e-3)
        compile_binary(model, "adam", rate)
        result = model.fit(data.x_train, data.y_train, epochs=epochs,
                           batch_size=profile.batch_size, verbose=0)
        recalibrate_batch_norm(model, data.x_train[np.random.default_rng(seed).permutation(len(data.x_train))])
        model.stand_in_settings = {"epochs": epochs, "optimizer": "adam", "learning_rate": rate,
                                   "training_images": len(data.x_train),
                                   "final_training_accuracy": float(result.history["accuracy"][-1])}
        _STAND_INS[key] = model
    return _STAND_INS[key]


@dataclass(frozen=True)
class Stage:
    """One training stage of a :class:`Recipe`.

    Attributes
    ----------
    optimizer, learning_rate
        See :func:`cytobook.training.make_optimizer`.
    unfreeze
        What :func:`set_trainable` unfreezes; ``None`` for feature extraction
        (frozen base, head trained on cached features).
    """

    optimizer: str
    learning_rate: float
    unfreeze: str | int | None = None


@dataclass(frozen=True)
class Recipe:
    """How one transfer model is built and trained.

    Attributes
    ----------
    name
        The model's name in tables, saved predictions and published numbers.
    arch, truncated, pooling, dense, dropout
        See :func:`transfer_classifier`.
    extract
        The feature-extraction stage.
    fine_tune
        The fine-tuning stage, or ``None`` for a feature-extraction model.
    """

    name: str
    arch: str
    extract: Stage
    fine_tune: Stage | None = None
    truncated: bool = False
    pooling: str = "gap"
    dense: int | None = 256
    dropout: float | None = 0.5

    def describe(self) -> dict[str, object]:
        """One row of :func:`recipe_table`."""
        tuned = self.fine_tune
        return {
            "model": self.name,
            "base": f"{self.arch}, {'without its last block' if self.truncated else 'whole'}",
            "head": " + ".join(part for part in (
                "flatten" if self.pooling == "flatten" else "global average",
                f"dense {self.dense}" if self.dense else "",
                f"dropout {self.dropout:g}" if self.dropout else "") if part),
            "feature extraction": f"{self.extract.optimizer} {self.extract.learning_rate:g}",
            "fine-tuning": (f"{'last ' + str(tuned.unfreeze) + ' layers' if isinstance(tuned.unfreeze, int) else 'from ' + tuned.unfreeze if tuned.unfreeze != 'everything' else 'everything'}, "
                            f"{tuned.optimizer} {tuned.learning_rate:g}") if tuned else "-",
        }


def recipe_table(recipes: list[Recipe]) -> pd.DataFrame:
    """The recipes as a table, one row per model."""
    return pd.DataFrame([recipe.describe() for recipe in recipes]).set_index("model")


def train_recipe(recipe: Recipe, data: SplitArrays, *, profile, seed: int, size: int | None = None,
                 stand_in_data: SplitArrays | None = None) -> Trained:
    """Build ``recipe``'s model from ``seed`` and train it stage by stage on ``data``.

    Recipes that share their feature-extraction stage (a feature-extraction
    model and its fine-tuned sibling) share its result within the kernel: the
    stage is trained once, from the same seed, and its head weights and
    learning curve are reused, as if it had been trained again.

    Parameters
    ----------
    profile
        The run's :class:`~cytobook.profiles.Profile`: epochs, fine-tuning
        epochs, batch size, patience, whether ImageNet weights are required,
        and how a stand-in base is trained without them (:func:`stand_in_base`).
    size
        Input side; by default the side of ``data``'s images.
    stand_in_data
        Where a stand-in base is needed, the images it is trained on (their
        training part; default ``data``'s). Cells that no split validates or
        tests on (:func:`cytobook.results.stand_in_cells`) let one base serve
        every split, as ImageNet weights do.

    Returns
    -------
    Trained
        With ``stage_starts`` (where fine-tuning begins in the history) and
        ``settings`` (the ImageNet file or the stand-in base started from, and
        each stage's optimiser, rate and unfrozen layers, as actually run).
    """
    keras.utils.set_random_seed(seed)
    size = size or data.x_train.shape[1]
    model = transfer_classifier(recipe.arch, size, truncated=recipe.truncated, pooling=recipe.pooling,
                                dense=recipe.dense, dropout=recipe.dropout, required=profile.imagenet_required)
    settings: dict[str, object] = {"imagenet_weights": None if model.imagenet_weights is None else str(model.imagenet_weights)}
    stand_in_data = data if stand_in_data is None else stand_in_data
    if model.imagenet_weights is None:
        stand_in = stand_in_base(recipe.arch, stand_in_data, profile=profile, seed=seed)
        for layer in model.get_layer("base").layers:  # a truncated base has a prefix of the whole base's layers
            if layer.weights:
                layer.set_weights(stand_in.get_layer("base").get_layer(layer.name).get_weights())
        settings["stand_in_base"] = stand_in.stand_in_settings
    key = (replace(recipe, name="", fine_tune=None), seed, _fingerprint(data), settings["imagenet_weights"],
           None if model.imagenet_weights else (_fingerprint(stand_in_data), profile.stand_in_epochs_for(recipe.arch)),
           profile.epochs, profile.batch_size, profile.patience)
    if key not in _EXTRACTED:
        history = fit_head_on_features(model, data, epochs=profile.epochs, batch_size=profile.batch_size,
                                       optimizer=recipe.extract.optimizer, learning_rate=recipe.extract.learning_rate,
                                       patience=profile.patience)
        _EXTRACTED[key] = (model.get_layer("head").get_weights(), history)
    head_weights, history = _EXTRACTED[key]
    model.get_layer("head").set_weights(head_weights)
    history = {name: list(values) for name, values in history.items()}
    settings["feature_extraction"] = {"optimizer": recipe.extract.optimizer, "learning_rate": recipe.extract.learning_rate}
    trained = Trained(recipe.name, model, history, settings=settings)
    stage = recipe.fine_tune
    if stage is None:
        return trained
    keras.utils.set_random_seed(seed + 1)  # the same fine-tuning whether feature extraction ran here or earlier
    unfrozen = set_trainable(model, stage.unfreeze)
    compile_binary(model, stage.optimizer, stage.learning_rate)
    trained.stage_starts = {len(history["loss"]): "fine-tuning"}
    trained.history = fit(model, data, epochs=profile.fine_tune_epochs, batch_size=profile.batch_size,
                          patience=profile.patience, history=history)
    settings["fine_tuning"] = {"optimizer": stage.optimizer, "learning_rate": stage.learning_rate, "unfrozen_layers": len(unfrozen),
                               "from_layer": unfrozen[0], "trainable_parameters": sum(int(np.prod(w.shape)) for w in model.trainable_weights)}
    return trained
