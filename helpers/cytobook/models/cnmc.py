"""Report 1's models for C-NMC: the scratch CNN and the transfer-learning classifiers.

Every classifier maps RGB images in [0, 255] to one sigmoid unit, P(ALL).
Transfer models are three layers: the ImageNet input preprocessing, the
(possibly truncated) ``keras.applications`` base named ``"base"``, which
:func:`set_trainable` freezes and unfreezes for feature extraction and
fine-tuning, and the classifier ``"head"``.

Choices the report leaves open are marked *our choice* in the docstrings.
"""

from __future__ import annotations

import keras

from ..weights import build_backbone
from .layers import imagenet_preprocessing

#: The scratch CNN's heads: report 1's best (first) and the variants it compares.
SCRATCH_HEADS: dict[str, tuple[tuple[str, float], ...]] = {
    "dropout-dense256-dropout": (("dropout", 0.5), ("dense", 256), ("dropout", 0.5)),
    "dense256-dropout": (("dense", 256), ("dropout", 0.5)),
    "dense128-dropout": (("dense", 128), ("dropout", 0.5)),
    "dense256-dense128": (("dense", 256), ("dropout", 0.5), ("dense", 128), ("dropout", 0.5)),
}

#: Where report 1 truncates each base: the last block or stage is removed.
TRUNCATION: dict[str, str] = {
    "vgg16": "block4_pool",  # without block 5
    "resnet50": "conv4_block6_out",  # without stage 5: 14x14x1024 at 224 px
    "mobilenet_v2": "block_12_add",  # our choice: without the 7x7 stage (blocks 13-16, Conv_1), as for ResNet50
}


#: Input size report 1 implies for an architecture, where it differs from the chapter's 300 px images:
#: the truncated ResNet50's 14x14x1024 output is stage 4 of ResNet50 at 224 px (at 300 px it is 19x19x1024).
REPORT_INPUT_SIZE: dict[str, int] = {"resnet50": 224}


def input_size(arch: str, available: int) -> int:
    """Side in pixels of the images fed to ``arch``: its :data:`REPORT_INPUT_SIZE`, never more than ``available``.

    ``available`` is the side of the run's prepared images (the profile's
    ``image_size``). The ``full`` profile prepares 300 px images, so ResNet50
    gets them shrunk to 224 px and its truncated base ends on the report's
    14x14x1024 map; the smaller images of ``smoke`` and ``demo`` are used as
    they are, and so are the other architectures' (*our reading* of the
    report, which states 300 px for the chapter and 14x14x1024 for ResNet50).
    """
    if available < 1:
        raise ValueError(f"available must be a positive image size, got {available}")
    return min(REPORT_INPUT_SIZE.get(arch, available), available)


def _head(x, layers: tuple[tuple[str, float], ...]):
    for kind, value in layers:
        x = keras.layers.Dropout(value)(x) if kind == "dropout" else keras.layers.Dense(int(value), activation="relu")(x)
    return keras.layers.Dense(1, activation="sigmoid", name="p_all")(x)


def scratch_cnn(size: int, head: str = "dropout-dense256-dropout") -> keras.Model:
    """Report 1's CNN trained from scratch.

    Four 3x3 same-padded ReLU convolutions of 32, 64, 128 and 256 filters,
    each followed by max pooling of 2, 2, 3 and 5, then a head from
    :data:`SCRATCH_HEADS`. The pools shrink the image 60-fold, so ``size``
    must be at least 60 (300 in the report: a 5x5x256 map).
    """
    if size < 60:
        raise ValueError(f"the scratch CNN pools by 2*2*3*5 = 60: input size {size} is too small")
    if head not in SCRATCH_HEADS:
        raise ValueError(f"unknown head {head!r}; expected one of {', '.join(SCRATCH_HEADS)}")
    inputs = keras.Input((size, size, 3), name="image")
    x = keras.layers.Rescaling(1 / 255, name="rescale")(inputs)
    for index, (filters, pool) in enumerate(zip((32, 64, 128, 256), (2, 2, 3, 5)), start=1):
        x = keras.layers.Conv2D(filters, 3, padding="same", activation="relu", name=f"conv{index}")(x)
        x = keras.layers.MaxPooling2D(pool, name=f"pool{index}")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    return keras.Model(inputs, _head(x, SCRATCH_HEADS[head]), name=f"scratch_cnn_{head}")


def convolutional_base(
    arch: str,
    size: int,
    *,
    truncated: bool = False,
    weights: str | None = "imagenet",
    required: bool = True,
) -> keras.Model:
    """An ImageNet base, whole or cut at :data:`TRUNCATION`, named ``"base"``.

    ``required`` follows the profile: missing ImageNet weights stop the
    ``full`` profile and are announced loudly in the others (see
    :func:`cytobook.weights.build_backbone`).
    """
    base = build_backbone(arch, (size, size, 3), weights=weights, required=required)
    loaded = base.imagenet_weights
    if truncated:
        base = keras.Model(base.input, base.get_layer(TRUNCATION[arch]).output)
    base = keras.Model(base.input, base.output, name="base")
    base.imagenet_weights = loaded
    return base


def transfer_classifier(
    arch: str,
    size: int,
    *,
    truncated: bool = False,
    pooling: str = "gap",
    dense: int | None = 256,
    dropout: float = 0.5,
    weights: str | None = "imagenet",
    required: bool = True,
) -> keras.Model:
    """ImageNet base + report 1's head: pooling, optional dense layer, dropout, one sigmoid unit.

    Parameters
    ----------
    arch
        ``"vgg16"``, ``"resnet50"`` or ``"mobilenet_v2"``.
    truncated
        Cut the base at :data:`TRUNCATION`.
    pooling
        ``"flatten"`` (VGG16 with its whole base) or ``"gap"`` (global average pooling).
    dense
        Units of the ReLU layer before the output, or ``None`` (MobileNetV2).
    dropout
        Rate of the dropout before the output (0.5: *our choice*).

    The base starts frozen (feature extraction); see :func:`set_trainable`.
    """
    base = convolutional_base(arch, size, truncated=truncated, weights=weights, required=required)
    base.trainable = False
    # The head is a model of its own, so that feature extraction can train it on cached base outputs
    # (cytobook.training.fit_head_on_features) and the full model sees the same weights.
    features = keras.Input(base.output.shape[1:], name="features")
    x = keras.layers.Flatten()(features) if pooling == "flatten" else keras.layers.GlobalAveragePooling2D()(features)
    layers = ((("dense", dense),) if dense else ()) + (("dropout", dropout),)
    head = keras.Model(features, _head(x, layers), name="head")
    inputs = keras.Input((size, size, 3), name="image")
    preprocess = imagenet_preprocessing(arch)
    model = keras.Model(inputs, head(base(preprocess(inputs))), name=f"{arch}{'_truncated' if truncated else ''}")
    model.imagenet_weights = base.imagenet_weights
    return model


def set_trainable(model: keras.Model, *, from_layer: str | None = None, last: int | None = None,
                  everything: bool = False) -> list[str]:
    """Unfreeze part of the model's ``"base"`` for fine-tuning; returns the unfrozen layer names.

    Exactly one of ``from_layer`` (this layer and all after it), ``last`` (the
    last ``n`` layers that hold weights, batch normalisation not counted: the
    last three convolutions of VGG16 or of ResNet50's last bottleneck) or
    ``everything``. Batch-normalisation layers stay frozen in inference mode:
    with small batches their statistics would otherwise drift (*our choice*,
    as in the Keras transfer-learning guide). Recompile the model afterwards.
    """
    if sum(x is not None and x is not False for x in (from_layer, last, everything or None)) != 1:
        raise ValueError("give exactly one of from_layer, last or everything")
    base = model.get_layer("base")
    layers = base.layers
    learnable = [i for i, layer in enumerate(layers) if layer.weights and not isinstance(layer, keras.layers.BatchNormalization)]
    if from_layer is not None:
        names = [layer.name for layer in layers]
        if from_layer not in names:
            raise ValueError(f"{from_layer!r} is not a layer of {model.name}'s base")
        start = names.index(from_layer)
    elif last is not None:
        start = learnable[-last]
    else:
        start = 0
    base.trainable = True
    for index, layer in enumerate(layers):
        layer.trainable = index >= start and not isinstance(layer, keras.layers.BatchNormalization)
    return [layers[i].name for i in learnable if i >= start]
