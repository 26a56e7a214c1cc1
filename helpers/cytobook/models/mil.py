"""Report 4's multi-instance mixture of experts for lymphocytosis, in Keras 3.

A patient is a *bag*. Every model takes one bag per row as the inputs
``instances`` (``(N, H, W, 3)`` images in [0, 255] for a trainable encoder,
or ``(N, D)`` cached features of a frozen backbone), ``weights`` (``(N,)``,
summing to one: bags are padded or subsampled to a fixed ``N`` and padding
slots weigh zero, so the weighted sum is the mean over the bag's images),
``handmade`` (``(N, F)`` standardised features of
:mod:`cytobook.handmade`) and ``clinical`` (``(2,)`` standardised age and log
lymphocyte count), and returns a dict with the probability of malignancy
``p`` and, when multitask, the standardised log count ``count``.

After Bourbon & Bardusco's report (itself after Sahasrabudhe et al., 2021):
the **image expert** encodes every image, mean-aggregates and applies a
linear head (frozen features first go through an intermediate linear layer);
the **scalar expert** mean-aggregates the handmade features, adds age and
count, and applies two linear layers with a ReLU between; the **gate** is a
sigmoid linear layer on age, count and one bounded (tanh) scalar from each
aggregate, as in the authors' code, and
``p = pi * p_image + (1 - pi) * p_scalar``. Only ``keras.ops`` is used, so the
models train on the TensorFlow, JAX and PyTorch backends alike.
"""

from __future__ import annotations

from typing import Literal

import keras
from keras import ops

Experts = Literal["mixture", "image", "scalar"]


@keras.saving.register_keras_serializable(package="cytobook")
class BagMean(keras.layers.Layer):
    """Weighted mean over a bag's instances: ``(B, N, D)`` and ``(B, N)`` to ``(B, D)``."""

    def call(self, values, weights):
        return ops.sum(values * ops.expand_dims(weights, -1), axis=1)


@keras.saving.register_keras_serializable(package="cytobook")
class EncodeInstances(keras.layers.Layer):
    """Apply a per-image ``encoder`` to every image of a bag: ``(B, N, H, W, 3)`` to ``(B, N, D)``.

    The bag axis is folded into the batch axis, so the encoder runs once on
    ``B * N`` images. (``keras.layers.TimeDistributed`` unrolls a Python loop
    over a static bag axis instead: ``N`` copies of the encoder in the graph,
    which takes minutes to compile on a CPU.)
    """

    def __init__(self, encoder: keras.Model, **kwargs):
        super().__init__(**kwargs)
        self.encoder = encoder

    def call(self, images, training=None):
        shape = ops.shape(images)
        flat = ops.reshape(images, (-1, *images.shape[2:]))
        encoded = self.encoder(flat, training=training)
        return ops.reshape(encoded, (shape[0], shape[1], encoded.shape[-1]))

    def compute_output_shape(self, input_shape):
        return (*input_shape[:2], self.encoder.output_shape[-1])

    def get_config(self):
        return {**super().get_config(), "encoder": keras.saving.serialize_keras_object(self.encoder)}

    @classmethod
    def from_config(cls, config):
        config["encoder"] = keras.saving.deserialize_keras_object(config["encoder"])
        return cls(**config)


@keras.saving.register_keras_serializable(package="cytobook")
class MixExperts(keras.layers.Layer):
    """``pi * p_image + (1 - pi) * p_scalar``, the mixture's output."""

    def call(self, pi, p_image, p_scalar):
        return pi * p_image + (1.0 - pi) * p_scalar


@keras.saving.register_keras_serializable(package="cytobook")
class AddPositionEmbedding(keras.layers.Layer):
    """A learnt position embedding added to a ``(B, tokens, dim)`` sequence."""

    def build(self, input_shape):
        self.embedding = self.add_weight(
            shape=(1, input_shape[1], input_shape[2]), initializer=keras.initializers.RandomNormal(stddev=0.02), name="embedding"
        )

    def call(self, tokens):
        return tokens + self.embedding


# --------------------------------------------------------------------------- #
# Per-image encoders                                                          #
# --------------------------------------------------------------------------- #


def _norm(channels: int, **kwargs) -> keras.layers.Layer:
    """Group normalisation (Wu & He, 2018): statistics per image, never over a bag or a batch."""
    return keras.layers.GroupNormalization(groups=min(GROUPS, channels), **kwargs)


#: Groups of :func:`_norm` (32 in Wu & He's ResNets; the CPU-sized encoders have as few as 8 channels).
GROUPS = 8


def resnet18_like(size: int, width: int = 64, name: str = "resnet18_like") -> keras.Model:
    """A ResNet-18 (He et al., 2016) encoder: images in [0, 255] to pooled features.

    Four stages of two basic blocks (two 3x3 convolutions and an identity or
    1x1 projection shortcut), after a 7x7 stride-2 stem and max pooling;
    global average pooling at the end. ``width`` is the first stage's channel
    count (64 in ResNet-18; the ``demo`` profile narrows it to train on a
    CPU), doubled at each later stage. *Our choice*: group normalisation
    instead of batch normalisation, because a batch here is a few bags of
    images of the same patients, whose batch statistics would normalise
    away the very differences between patients that the expert must see
    (and would disagree with the moving averages used at inference).
    """
    inputs = keras.Input((size, size, 3), name="image")
    x = keras.layers.Rescaling(1 / 127.5, offset=-1.0)(inputs)
    x = keras.layers.Conv2D(width, 7, strides=2, padding="same", use_bias=False)(x)
    x = keras.layers.ReLU()(_norm(width)(x))
    x = keras.layers.MaxPooling2D(3, strides=2, padding="same")(x)
    for stage in range(4):
        filters = width * 2**stage
        for block in range(2):
            strides = 2 if stage > 0 and block == 0 else 1
            shortcut = x
            if strides != 1 or x.shape[-1] != filters:
                shortcut = keras.layers.Conv2D(filters, 1, strides=strides, use_bias=False)(x)
                shortcut = _norm(filters)(shortcut)
            y = keras.layers.Conv2D(filters, 3, strides=strides, padding="same", use_bias=False)(x)
            y = keras.layers.ReLU()(_norm(filters)(y))
            y = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False)(y)
            y = _norm(filters, gamma_initializer="zeros")(y)  # each block starts as the identity
            x = keras.layers.ReLU()(keras.layers.Add()([shortcut, y]))
    outputs = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, outputs, name=name)


def vit_small(
    size: int, patch: int = 16, dim: int = 384, depth: int = 12, heads: int = 6, name: str = "vit_small"
) -> keras.Model:
    """A ViT-Small/16 encoder (Dosovitskiy et al., 2021): images in [0, 255] to mean-pooled tokens.

    Patch embedding by a strided convolution, learnt position embeddings,
    ``depth`` pre-norm transformer blocks (multi-head self-attention and a
    GELU MLP four times wider) and a final layer norm; the tokens are
    averaged (*our choice*, instead of a class token: the same output size
    with one layer fewer).
    """
    if size % patch:
        raise ValueError(f"image size {size} is not a multiple of the patch size {patch}")
    inputs = keras.Input((size, size, 3), name="image")
    x = keras.layers.Rescaling(1 / 127.5, offset=-1.0)(inputs)
    x = keras.layers.Conv2D(dim, patch, strides=patch, name="patch_embedding")(x)
    x = keras.layers.Reshape(((size // patch) ** 2, dim))(x)
    x = AddPositionEmbedding(name="position_embedding")(x)
    for index in range(depth):
        y = keras.layers.LayerNormalization(epsilon=1e-6)(x)
        y = keras.layers.MultiHeadAttention(heads, dim // heads, name=f"attention_{index}")(y, y)
        x = keras.layers.Add()([x, y])
        y = keras.layers.LayerNormalization(epsilon=1e-6)(x)
        y = keras.layers.Dense(4 * dim, activation="gelu")(y)
        y = keras.layers.Dense(dim)(y)
        x = keras.layers.Add()([x, y])
    x = keras.layers.LayerNormalization(epsilon=1e-6)(x)
    outputs = keras.layers.GlobalAveragePooling1D()(x)
    return keras.Model(inputs, outputs, name=name)


#: Where the last stage of each tunable backbone begins: the input of this layer.
LAST_STAGE_START = {
    "convnext_tiny": "convnext_tiny_downsampling_block_2",
    "convnext_small": "convnext_small_downsampling_block_2",
    "mobilenet_v2": "block_13_expand",
}


def split_last_stage(base: keras.Model, arch: str) -> tuple[keras.Model, keras.Model]:
    """Cut a ``keras.applications`` backbone (no top, pooled) before its last stage: ``(front, last_stage)``.

    ``last_stage(front(x))`` equals ``base(x)``, both sharing ``base``'s
    weights; the cut is at the input of :data:`LAST_STAGE_START` ``[arch]``,
    where no residual path bypasses it. Tuning only the last stage on the
    frozen front's cached outputs is how the lymphocytosis chapter tunes a
    backbone on a CPU (*our choice*: the report does not say how much was
    tuned). Batch normalisation in the last stage keeps its ImageNet
    statistics (its layers are frozen): batches of a few patients' bags are
    no sample of cells.
    """
    if arch not in LAST_STAGE_START:
        raise ValueError(f"no last stage is known for {arch!r}; expected one of {', '.join(LAST_STAGE_START)}")
    cut = base.get_layer(LAST_STAGE_START[arch]).input
    front = keras.Model(base.input, cut, name=f"{base.name}_front")
    last_stage = keras.Model(cut, base.output, name=f"{base.name}_last_stage")
    for layer in last_stage.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.trainable = False  # inference mode: the moving statistics, never a batch's
    return front, last_stage


def enable_lora(encoder: keras.Model, rank: int = 8) -> int:
    """Freeze ``encoder`` and add LoRA adapters (Hu et al., 2022) to its attention.

    As in the LoRA paper, only the query and value projections of every
    multi-head attention layer get a trainable low-rank update; every other
    weight stays frozen. Returns the number of trainable parameters left.
    """
    attention = [layer for layer in encoder.layers if isinstance(layer, keras.layers.MultiHeadAttention)]
    if not attention:
        raise ValueError(f"{encoder.name} has no multi-head attention layer to adapt")
    for layer in encoder.layers:
        layer.trainable = False
    for layer in attention:
        layer.trainable = True  # the adapters' parent must be trainable; enable_lora freezes the kernels
        layer.key_dense.trainable = False
        layer.output_dense.trainable = False
        for projection in (layer.query_dense, layer.value_dense):
            projection.enable_lora(rank)  # freezes the kernel, adds trainable low-rank factors
            if projection.bias is not None:
                projection.bias.trainable = False  # only the adapters learn (LoRA without bias tuning)
    return sum(int(ops.size(w)) for w in encoder.trainable_weights)


# --------------------------------------------------------------------------- #
# The mixture of experts                                                      #
# --------------------------------------------------------------------------- #


def mixture_of_experts(
    instance_shape: tuple[int, ...],
    handmade_dim: int,
    *,
    encoder: keras.Model | None = None,
    experts: Experts = "mixture",
    multitask: bool = False,
    intermediate: int | None = None,
    scalar_hidden: int = 32,
    flips: bool = True,
    name: str | None = None,
) -> keras.Model:
    """Build the report's multi-instance model (or one of its experts alone).

    Parameters
    ----------
    instance_shape
        One bag's instances: ``(N, H, W, 3)`` images with an ``encoder``, ``(N, D)`` features without.
    handmade_dim
        Number of handmade features per image.
    encoder
        Trainable per-image encoder, or ``None`` for features of a frozen backbone.
    experts
        ``"mixture"`` (the report's model), ``"image"`` or ``"scalar"`` (the report's ablations).
    multitask
        Add the ``count`` head on the aggregated image features (the report's MultiTask model).
    intermediate
        Width of the intermediate layer after frozen features; ``None`` for none.
    scalar_hidden
        Width of the scalar expert's hidden layer (*our choice*; the report does not give it).
    flips
        Flip each image at random, horizontally and vertically, while training
        (the report's augmentation), before a trainable ``encoder``. Cached
        features are flipped before they are cached (:func:`cytobook.lymphocytosis.backbone_features`).

    Returns
    -------
    keras.Model
        See the module docstring; :func:`analysis_model` finds its layers
        ``gate``, ``image_expert`` and ``scalar_expert`` by name.
    """
    if experts not in ("mixture", "image", "scalar"):
        raise ValueError(f"experts must be 'mixture', 'image' or 'scalar', not {experts!r}")
    if multitask and experts == "scalar":
        raise ValueError("the count head reads image features: a scalar expert alone cannot be multitask")
    bag_size = instance_shape[0]
    instances = keras.Input(instance_shape, name="instances")
    weights = keras.Input((bag_size,), name="weights")
    handmade = keras.Input((bag_size, handmade_dim), name="handmade")
    clinical = keras.Input((2,), name="clinical")
    outputs = {}

    if experts in ("mixture", "image"):
        encoded = instances
        if encoder is not None:
            if flips and len(instance_shape) == 4:
                image = keras.Input(instance_shape[1:], name="image")
                flipped = keras.layers.RandomFlip("horizontal_and_vertical", name="flips")(image)
                encoder = keras.Model(image, encoder(flipped), name=f"flipped_{encoder.name}")
            encoded = EncodeInstances(encoder, name="encoder")(instances)
        image_features = BagMean(name="image_mean")(encoded, weights)
        if intermediate:
            image_features = keras.layers.Dense(intermediate, name="intermediate")(image_features)
        p_image = keras.layers.Dense(1, activation="sigmoid", name="image_expert")(image_features)
        if multitask:
            outputs["count"] = keras.layers.Dense(1, name="count")(image_features)
    if experts in ("mixture", "scalar"):
        handmade_features = BagMean(name="handmade_mean")(handmade, weights)
        x = keras.layers.Concatenate(name="scalar_inputs")([handmade_features, clinical])
        x = keras.layers.Dense(scalar_hidden, activation="relu", name="scalar_hidden")(x)
        p_scalar = keras.layers.Dense(1, activation="sigmoid", name="scalar_expert")(x)

    if experts == "mixture":
        # One bounded scalar per aggregate (tanh, as in the authors' code), so that no input swamps the gate.
        image_summary = keras.layers.Dense(1, activation="tanh", name="image_summary")(image_features)
        handmade_summary = keras.layers.Dense(1, activation="tanh", name="handmade_summary")(handmade_features)
        gate_inputs = keras.layers.Concatenate(name="gate_inputs")([clinical, image_summary, handmade_summary])
        pi = keras.layers.Dense(1, activation="sigmoid", name="gate")(gate_inputs)
        outputs["p"] = MixExperts(name="p")(pi, p_image, p_scalar)
    else:
        outputs["p"] = keras.layers.Identity(name="p")(p_image if experts == "image" else p_scalar)
    model_name = name or f"{experts}_{'multitask' if multitask else 'onetask'}"
    return keras.Model({"instances": instances, "weights": weights, "handmade": handmade, "clinical": clinical},
                       outputs, name=model_name)


def analysis_model(model: keras.Model) -> keras.Model:
    """The same network with the gate ``pi`` and each expert's probability as extra outputs.

    Shares every weight with ``model`` (a view, not a copy). Outputs that a
    model lacks (the gate of an expert alone) are left out.
    """
    outputs = dict(model.output)
    for layer_name, key in (("gate", "pi"), ("image_expert", "p_image"), ("scalar_expert", "p_scalar")):
        try:
            outputs[key] = model.get_layer(layer_name).output
        except ValueError:
            continue
    return keras.Model(model.input, outputs, name=f"{model.name}_analysis")


# --------------------------------------------------------------------------- #
# Losses                                                                      #
# --------------------------------------------------------------------------- #


def balanced_class_weights(labels) -> tuple[float, float]:
    """``(w0, w1) = n / (2 n_c)``: each class weighs half of the total loss.

    The report's class-weighted BCE, ``-(w1 * y * log p + w0 * (1 - y) * log(1 - p))``,
    is the BCE with these as per-bag sample weights (how :mod:`cytobook.lymphocytosis`
    applies them, so that one compiled model serves every fold).

    Raises
    ------
    ValueError
        If one of the two classes is absent.
    """
    labels = [int(y) for y in labels]
    n0, n1 = labels.count(0), labels.count(1)
    if not n0 or not n1:
        raise ValueError(f"both classes are needed to weight the loss; got {n0} reactive and {n1} malignant bags")
    n = n0 + n1
    return n / (2 * n0), n / (2 * n1)
