"""What a CNN looks at: intermediate activations and Grad-CAM, on every Keras 3 backend.

Report 1 (C-NMC) shows the feature maps of the first convolutional layers and
Grad-CAM heatmaps of its classifiers. This module computes both for any
Functional or Sequential Keras model, including the usual transfer-learning
shape where a ``keras.applications`` base is one layer of the classifier.

Layer paths
-----------
Layers inside nested models are named by a path: the names of the enclosing
models and the layer, joined by ``/``, e.g. ``"vgg16/block1_conv1"`` for the
first convolution of a VGG16 base used as a layer, ``"conv1"`` for a layer of
the model itself. Wherever a layer name is expected, a bare name (``"Conv_1"``)
is accepted too when exactly one layer at any depth has it.

Backends
--------
The array math uses ``keras.ops`` only. Gradients are the one thing Keras 3
has no backend-neutral API for, so :func:`grad_cam` dispatches on
``keras.backend.backend()``: ``tf.GradientTape`` for TensorFlow,
``jax.grad`` for JAX, ``torch.autograd.grad`` for PyTorch. Each backend
library is imported inside its own branch, so the module imports on a machine
that has only one of them.

All three differentiate the same split of the model: a *features* model from
the image to the target layer's output ``A``, and a *head* model from
``(image, A)`` to the class scores, in which ``A`` is an input, so that the
head is a pure function of ``A`` (what ``jax.grad`` needs). The image is an
input of the head too because paths may bypass the target layer (residual
connections); the gradient is then the partial derivative with respect to
``A``, as in the original method. Nested models are inlined into one flat
graph first, so that a layer deep inside a base can be cut at.
"""

from __future__ import annotations

import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import cv2
import keras
import matplotlib
import matplotlib.pyplot as plt
import numpy as np
from keras import ops

#: Separator of the names in a layer path.
PATH_SEP = "/"

#: Layer classes counted as convolutional by :func:`conv_layers`.
CONV_CLASSES: tuple[type, ...] = (
    keras.layers.Conv1D,
    keras.layers.Conv2D,
    keras.layers.Conv3D,
    keras.layers.SeparableConv1D,
    keras.layers.SeparableConv2D,
    keras.layers.DepthwiseConv1D,
    keras.layers.DepthwiseConv2D,
    keras.layers.Conv1DTranspose,
    keras.layers.Conv2DTranspose,
    keras.layers.Conv3DTranspose,
)

# Output activations whose pre-activation (logit) is used as the class score.
_SQUASHING = ("sigmoid", "softmax")


# --------------------------------------------------------------------------- #
# Layer paths and the flat graph
# --------------------------------------------------------------------------- #


def _is_functional(layer: Any) -> bool:
    # Keras exports no public name for graph models built with keras.Model(inputs, outputs);
    # this is the class keras.models.clone_model itself checks for.
    from keras.src.models.functional import Functional

    return isinstance(layer, Functional)


def _is_graph_model(layer: Any) -> bool:
    """Whether ``layer`` is a model whose own layers can be walked (Sequential or Functional)."""
    return isinstance(layer, keras.Sequential) or _is_functional(layer)


def _walk(model: keras.Model, prefix: str = ""):
    """Yield ``(path, layer)`` for every layer of ``model``, descending into nested models."""
    for layer in model.layers:
        path = prefix + layer.name
        if _is_graph_model(layer):
            yield from _walk(layer, path + PATH_SEP)
        else:
            yield path, layer


def conv_layers(model: keras.Model) -> list[str]:
    """Paths of the convolutional layers of ``model``, in the model's order.

    Parameters
    ----------
    model
        A Functional or Sequential model. Nested Functional or Sequential
        models (a ``keras.applications`` base used as a layer) are looked
        into; subclassed models are opaque and skipped.

    Returns
    -------
    list of str
        Layer paths (see the module docstring), e.g.
        ``["vgg16/block1_conv1", ..., "vgg16/block5_conv3"]``. Every
        :data:`CONV_CLASSES` layer counts: 1D, 2D, 3D, separable, depthwise
        and transposed convolutions.
    """
    return [path for path, layer in _walk(model) if isinstance(layer, CONV_CLASSES)]


@dataclass
class _Trace:
    """One model replayed as a flat graph: every leaf layer's output reachable from the inputs.

    Attributes
    ----------
    inputs
        Fresh ``keras.Input`` tensors, one per model input.
    output
        The model's output in the flat graph.
    tensors
        Path of each leaf layer → its output tensor in the flat graph (the
        first call when a layer is called more than once).
    last_call
        ``(layer, args, kwargs, output)`` of the last leaf layer called: the
        one that produces ``output``, since layers are replayed in topological
        order and a single-output model ends with its output's layer.
    splits
        Cache of :func:`_split` results by target path.
    """

    inputs: list
    output: Any = None
    tensors: dict[str, Any] = field(default_factory=dict)
    last_call: tuple | None = None
    splits: dict[str, tuple] = field(default_factory=dict)


# Replaying a model adds nodes to its layers; caching the flat graph per model
# keeps repeated calls (a loop over images) from growing them without bound.
_TRACES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _visit(layer, args: tuple, kwargs: dict, prefix: str, trace: _Trace):
    """Call one layer of the replayed graph, inlining it if it is a model itself."""
    path = prefix + layer.name
    if _is_graph_model(layer):
        # A nested model's own keyword arguments (usually training=False) are
        # dropped: the split models are always called in inference mode.
        return _inline(layer, args[0], path + PATH_SEP, trace)
    output = layer(*args, **kwargs)
    trace.tensors.setdefault(path, output)
    trace.last_call = (layer, args, kwargs, output)
    return output


def _inline(model: keras.Model, inputs, prefix: str, trace: _Trace):
    """Replay ``model``'s layers on ``inputs``, recording each leaf output under ``prefix``."""
    if isinstance(model, keras.Sequential):
        x = inputs[0] if isinstance(inputs, (list, tuple)) else inputs
        for layer in model.layers:
            x = _visit(layer, (x,), {}, prefix, trace)
        return x
    # Replay the *same* layers (shared weights) in topological order, as
    # keras.models.clone_model does with an identity clone_function, recording
    # each output and inlining nested models. clone_model itself cannot be used:
    # it builds a Functional from ``inputs``, which fails when they are not
    # Input tensors (a nested base called after a preprocessing layer, or a
    # head called on the base's output).
    structure = inputs if isinstance(model.input, (list, tuple, dict)) else (
        inputs[0] if isinstance(inputs, (list, tuple)) else inputs)
    return model._run_through_graph(
        structure,
        operation_fn=lambda layer: layer,
        call_fn=lambda layer, *args, **kwargs: _visit(layer, args, kwargs, prefix, trace),
    )


def _trace(model: keras.Model) -> _Trace:
    """The flat graph of ``model`` (cached per model object)."""
    cached = _TRACES.get(model)
    if cached is not None:
        return cached
    if not _is_graph_model(model):
        raise TypeError(
            f"{type(model).__name__} is a subclassed model; explanations need a Functional or "
            "Sequential model whose layers can be walked"
        )
    try:
        model_inputs = model.inputs
    except (AttributeError, ValueError) as error:
        raise ValueError("the model has no defined inputs yet; build it with keras.Input first") from error
    if not model_inputs:
        raise ValueError("the model has no defined inputs yet; build it with keras.Input first")
    inputs = [keras.Input(batch_shape=tuple(t.shape), dtype=t.dtype) for t in model_inputs]
    trace = _Trace(inputs=inputs)
    structured = inputs[0] if len(inputs) == 1 else inputs
    if not isinstance(model, keras.Sequential) and isinstance(model.input, dict):
        structured = dict(zip(model.input, inputs))
    output = _inline(model, structured, "", trace)
    outputs = keras.tree.flatten(output)
    if len(outputs) != 1:
        raise ValueError(f"explanations need a single-output model; this one has {len(outputs)} outputs")
    trace.output = outputs[0]
    _TRACES[model] = trace
    return trace


def _model_inputs(trace: _Trace):
    # A lone tensor rather than a list of one, so that the models take a bare array.
    return trace.inputs[0] if len(trace.inputs) == 1 else trace.inputs


def _resolve(trace: _Trace, name: str) -> str:
    """The full path of ``name``: a path, or a bare layer name found exactly once."""
    if name in trace.tensors:
        return name
    matches = [path for path in trace.tensors if path.rsplit(PATH_SEP, 1)[-1] == name]
    if len(matches) == 1:
        return matches[0]
    if matches:
        raise ValueError(f"layer name {name!r} is ambiguous: {matches}; give its full path")
    raise ValueError(f"no layer {name!r} in the model; paths look like {list(trace.tensors)[:5]}")


def last_conv_layer(model: keras.Model) -> str:
    """Path of the last convolutional layer with a 4D ``(batch, height, width, channels)`` output.

    This is Grad-CAM's default target: the deepest feature maps that still
    have a spatial layout.

    Raises
    ------
    ValueError
        If the model has no such layer.
    """
    trace = _trace(model)
    candidates = [path for path in conv_layers(model) if path in trace.tensors and len(trace.tensors[path].shape) == 4]
    if not candidates:
        raise ValueError("the model has no convolutional layer with a 4D output")
    return candidates[-1]


# --------------------------------------------------------------------------- #
# Intermediate activations
# --------------------------------------------------------------------------- #


def activation_model(model: keras.Model, layer_names: Sequence[str]) -> keras.Model:
    """A model from ``model``'s input to the outputs of ``layer_names``.

    Parameters
    ----------
    model
        A Functional or Sequential model, possibly with nested bases.
    layer_names
        Layer paths or unique bare names (see the module docstring).

    Returns
    -------
    keras.Model
        Shares ``model``'s weights; returns one array per name, in the order
        given (Keras unwraps a list of one into a bare array).
    """
    trace = _trace(model)
    outputs = [trace.tensors[_resolve(trace, name)] for name in layer_names]
    return keras.Model(_model_inputs(trace), outputs)


def _as_batch(image: np.ndarray, trace: _Trace) -> tuple[np.ndarray, bool]:
    """``image`` as a float32 batch for the model's one input, and whether it was a single image."""
    if len(trace.inputs) != 1:
        raise ValueError(f"explaining one image needs a single-input model; this one has {len(trace.inputs)} inputs")
    input_rank = len(trace.inputs[0].shape)
    array = np.asarray(image, dtype="float32")
    if array.ndim == input_rank - 1:
        return array[None], True
    if array.ndim == input_rank:
        return array, False
    raise ValueError(f"expected one image of rank {input_rank - 1} or a batch of rank {input_rank}, got shape {array.shape}")


def intermediate_activations(
    model: keras.Model, image: np.ndarray, layer_names: Sequence[str] | None = None
) -> dict[str, np.ndarray]:
    """The outputs of some layers of ``model`` for one image.

    Parameters
    ----------
    model
        A Functional or Sequential model, possibly with nested bases.
    image
        One input as the model takes it, ``(height, width, channels)``, or a
        batch of one.
    layer_names
        Layer paths or unique bare names; ``None`` for every convolutional
        layer (:func:`conv_layers`).

    Returns
    -------
    dict
        Name as given → ``numpy`` array with the batch axis of one, channels
        last, e.g. ``(1, 16, 16, 32)`` for a 2D convolution.
    """
    trace = _trace(model)
    names = list(conv_layers(model) if layer_names is None else layer_names)
    batch, _ = _as_batch(image, trace)
    outputs = keras.tree.flatten(activation_model(model, names)(ops.convert_to_tensor(batch), training=False))
    return {name: ops.convert_to_numpy(value) for name, value in zip(names, outputs)}


def _normalise_channel(channel: np.ndarray) -> np.ndarray:
    low, high = float(channel.min()), float(channel.max())
    if not high > low:
        return np.zeros_like(channel, dtype="float32")
    return ((channel - low) / (high - low)).astype("float32")


def activations_figure(
    activations: Mapping[str, np.ndarray],
    max_channels: int = 16,
    title: str | None = "Intermediate activations",
    size: float = 0.9,
) -> plt.Figure:
    """One row per layer showing its first feature maps in grayscale.

    Parameters
    ----------
    activations
        Layer name → activation of one image, ``(1, h, w, c)`` or ``(h, w, c)``
        (as returned by :func:`intermediate_activations`).
    max_channels
        Feature maps shown per layer: the first ones.
    title
        Figure title.
    size
        Side of one panel in inches.

    Notes
    -----
    Each feature map is stretched to its own minimum and maximum, so panels
    show where a channel fires, not how strongly compared with the others; a
    constant map (a dead ReLU channel) is drawn black.
    """
    maps = {}
    for name, value in activations.items():
        array = np.asarray(value)
        if array.ndim == 4:
            array = array[0]
        if array.ndim != 3:
            raise ValueError(f"{name}: expected (1, h, w, c) or (h, w, c) feature maps, got shape {np.shape(value)}")
        maps[name] = array
    if not maps:
        raise ValueError("no activations to show")
    ncols = max(1, min(max_channels, max(array.shape[-1] for array in maps.values())))
    nrows = len(maps)
    fig, axes = plt.subplots(nrows, ncols, figsize=(ncols * size + 1.6, nrows * size + 0.6), squeeze=False)
    for row, (name, array) in enumerate(maps.items()):
        height, width, channels = array.shape
        for col in range(ncols):
            ax = axes[row, col]
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_visible(False)
            if col < channels:
                ax.imshow(_normalise_channel(array[..., col]), cmap="gray", vmin=0.0, vmax=1.0)
        axes[row, 0].set_ylabel(
            f"{name}\n{height}×{width}×{channels}", fontsize=7, rotation=0, ha="right", va="center"
        )
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------- #
# Grad-CAM
# --------------------------------------------------------------------------- #


class _WithoutActivation(keras.layers.Layer):
    """Calls a layer with its activation switched off, sharing its weights.

    Used to read the logits of a classifier whose last layer is, say,
    ``Dense(1, activation="sigmoid")`` without changing the model: the
    activation is swapped only for the duration of each call.
    """

    def __init__(self, layer: keras.layers.Layer, **kwargs):
        super().__init__(name=f"{layer.name}_logits", **kwargs)
        self.wrapped = layer

    def call(self, inputs):
        saved = self.wrapped.activation
        self.wrapped.activation = keras.activations.linear
        try:
            return self.wrapped(inputs)
        finally:
            self.wrapped.activation = saved

    def compute_output_shape(self, input_shape):
        return self.wrapped.compute_output_shape(input_shape)


def _scores(trace: _Trace) -> tuple[Any, bool]:
    """The class-score tensor of the flat graph and whether it holds logits.

    The scores are the logits when the output is squashed by a sigmoid or a
    softmax that can be peeled off (the activation of the last layer, or a
    final ``Activation``/``Softmax`` layer), or when the last layer has no
    activation. Otherwise the output itself is used and taken to be
    probabilities.
    """
    layer, args, kwargs, output = trace.last_call
    if output is not trace.output and tuple(output.shape) != tuple(trace.output.shape):
        return trace.output, False
    activation = getattr(getattr(layer, "activation", None), "__name__", None)
    if isinstance(layer, keras.layers.Softmax) or (
        isinstance(layer, keras.layers.Activation) and activation in _SQUASHING
    ):
        return args[0], True
    if activation in _SQUASHING and len(args) == 1 and not kwargs:
        return _WithoutActivation(layer)(args[0]), True
    if activation == "linear":
        return output, True
    return output, False


def _split(model: keras.Model, path: str) -> tuple[keras.Model, keras.Model, bool]:
    """Features model ``image → A`` and head model ``(image, A) → scores`` for the layer at ``path``."""
    trace = _trace(model)
    if path not in trace.splits:
        target = trace.tensors[path]
        scores, logits = _scores(trace)
        if len(scores.shape) != 2:
            raise ValueError(f"expected class scores of shape (batch, classes), got {tuple(scores.shape)}")
        features = keras.Model(_model_inputs(trace), target)
        # `target` as an input cuts the graph there: the head computes the
        # scores from the given A, and from the image only along paths that
        # bypass the target layer.
        head = keras.Model([*trace.inputs, target], scores)
        trace.splits[path] = (features, head, logits)
    return trace.splits[path]


def _class_weights(scores: np.ndarray, logits: bool, class_index: int | None) -> tuple[np.ndarray, np.ndarray]:
    """Per-image classes explained and the matrix that turns scores into the explained score.

    For a single sigmoid unit the score of class 1 ("ALL" in C-NMC) is the
    logit ``z`` and the score of class 0 is ``-z`` (``log(p0 / p1)``), so the
    weight is ``+1`` or ``-1``. With several units it is a one-hot row.
    """
    count, classes = scores.shape
    if classes == 1:
        if class_index is None:
            chosen = (scores[:, 0] > (0.0 if logits else 0.5)).astype(int)
        elif class_index in (0, 1):
            chosen = np.full(count, class_index)
        else:
            raise ValueError(f"class_index must be 0 or 1 for a single-output model, got {class_index}")
        return chosen, np.where(chosen == 1, 1.0, -1.0).astype("float32")[:, None]
    if class_index is None:
        chosen = scores.argmax(axis=1)
    elif 0 <= class_index < classes:
        chosen = np.full(count, class_index)
    else:
        raise ValueError(f"class_index must be in [0, {classes}), got {class_index}")
    return chosen, np.eye(classes, dtype="float32")[chosen]


def _gradients(features: keras.Model, head: keras.Model, batch: np.ndarray, weights: np.ndarray):
    """Feature maps ``A`` and the gradient of ``sum(weights * scores)`` with respect to them."""
    backend = keras.backend.backend()
    x = ops.convert_to_tensor(batch)
    w = ops.convert_to_tensor(weights)
    if backend == "tensorflow":
        import tensorflow as tf

        maps = features(x, training=False)
        with tf.GradientTape() as tape:
            tape.watch(maps)
            score = ops.sum(head([x, maps], training=False) * w)
        grads = tape.gradient(score, maps)
    elif backend == "jax":
        import jax

        maps = features(x, training=False)

        # Inference mode updates no state, and the weights enter as constants:
        # the score is a pure function of the feature maps.
        def score(a):
            return ops.sum(head([x, a], training=False) * w)

        grads = jax.grad(score)(maps)
    elif backend == "torch":
        import torch

        with torch.enable_grad():
            # A fresh leaf: the gradient is wanted with respect to A only, even
            # when every weight below it is frozen.
            maps = features(x, training=False).detach().requires_grad_(True)
            score = ops.sum(head([x, maps], training=False) * w)
            (grads,) = torch.autograd.grad(score, maps, allow_unused=True)
        maps = maps.detach()
    else:
        raise NotImplementedError(f"Grad-CAM does not support the {backend!r} Keras backend")
    if grads is None:  # the scores do not depend on the layer at all
        grads = ops.zeros_like(maps)
    return maps, grads


def _normalise_heatmap(heatmap: np.ndarray) -> np.ndarray:
    """Scale to a maximum of 1; an all-zero (or non-finite) map stays zeros instead of becoming NaN."""
    peak = float(heatmap.max()) if heatmap.size else 0.0
    if not np.isfinite(heatmap).all() or not peak > 0.0:
        return np.zeros_like(heatmap, dtype="float32")
    return np.clip(heatmap / peak, 0.0, 1.0).astype("float32")


def grad_cam(
    model: keras.Model,
    image: np.ndarray,
    layer_name: str | None = None,
    class_index: int | None = None,
) -> np.ndarray:
    """Grad-CAM heatmap (Selvaraju et al. 2017) of a classifier for one image or a batch.

    The gradients of the class score with respect to the target layer's
    feature maps ``A`` are averaged over space to weight each channel; the
    heatmap is the ReLU of the weighted sum of the channels, upsampled
    bilinearly to the image size and scaled to a maximum of 1.

    Parameters
    ----------
    model
        A single-output classifier, Functional or Sequential, possibly with a
        nested base: a sigmoid unit (C-NMC: class 1 = "ALL") or softmax scores.
    image
        One input as the model takes it, ``(height, width, channels)``, or a
        batch ``(n, height, width, channels)``.
    layer_name
        Target layer path or unique bare name; ``None`` for the last
        convolutional layer with a 4D output (:func:`last_conv_layer`), which
        may lie inside a nested base.
    class_index
        Class to explain; ``None`` for the predicted class of each image.

    Returns
    -------
    numpy.ndarray
        ``float32`` heatmap in [0, 1], ``(height, width)`` for one image or
        ``(n, height, width)`` for a batch. A heatmap with no positive
        evidence (a flat or zero gradient, or a non-finite one) is all zeros.

    Notes
    -----
    The class score is the logit, as in the paper: the output activation
    (``sigmoid``/``softmax`` of the last layer, or a final
    ``Activation``/``Softmax`` layer) is bypassed without changing the model.
    For a single sigmoid unit with logit ``z``, class 1 is explained with
    ``z`` and class 0 with ``-z``; the predicted class is 1 when ``z > 0``,
    i.e. when the output is above 0.5. When the activation cannot be
    bypassed, the output itself is the score (threshold 0.5 for one unit).
    """
    trace = _trace(model)
    path = last_conv_layer(model) if layer_name is None else _resolve(trace, layer_name)
    if len(trace.tensors[path].shape) != 4:
        raise ValueError(f"Grad-CAM needs a layer with (batch, height, width, channels) output; {path} has {trace.tensors[path].shape}")
    features, head, logits = _split(model, path)
    batch, single = _as_batch(image, trace)

    x = ops.convert_to_tensor(batch)
    scores = ops.convert_to_numpy(head([x, features(x, training=False)], training=False)).astype("float64")
    _, weights = _class_weights(scores, logits, class_index)
    maps, grads = _gradients(features, head, batch, weights)

    maps = ops.cast(maps, "float32")
    channel_weights = ops.mean(ops.cast(grads, "float32"), axis=(1, 2))
    cams = ops.convert_to_numpy(ops.relu(ops.einsum("nhwk,nk->nhw", maps, channel_weights)))

    height, width = batch.shape[1:3]
    heatmaps = np.stack([
        _normalise_heatmap(cv2.resize(cam, (width, height), interpolation=cv2.INTER_LINEAR)) for cam in cams
    ])
    return heatmaps[0] if single else heatmaps


# --------------------------------------------------------------------------- #
# Overlays
# --------------------------------------------------------------------------- #


def _to_uint8_rgb(image: np.ndarray) -> np.ndarray:
    """``image`` as ``uint8`` RGB: floats in [0, 1] or [0, 255] are scaled, others stretched."""
    array = np.asarray(image)
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim == 2:
        array = np.stack([array] * 3, axis=-1)
    if array.dtype == np.uint8:
        return array
    array = array.astype("float64")
    low, high = float(array.min()), float(array.max())
    if low >= 0.0 and high <= 1.0:
        array = array * 255.0
    elif not (low >= 0.0 and high <= 255.0):  # e.g. preprocessed to [-1, 1]
        array = (array - low) / (high - low or 1.0) * 255.0
    return np.clip(np.rint(array), 0, 255).astype(np.uint8)


def overlay(image: np.ndarray, heatmap: np.ndarray, alpha: float = 0.4) -> np.ndarray:
    """Blend a heatmap, coloured with the jet colormap, over an image.

    Parameters
    ----------
    image
        RGB or grayscale image: ``uint8``, or floats (in [0, 1] or [0, 255],
        anything else is stretched to the full range).
    heatmap
        Values in [0, 1], any size (resized to the image bilinearly).
    alpha
        Weight of the colours: 0 shows the image only, 1 the heatmap only.

    Returns
    -------
    numpy.ndarray
        ``uint8`` RGB array of the image's height and width.
    """
    rgb = _to_uint8_rgb(image)
    heat = np.clip(np.nan_to_num(np.asarray(heatmap, dtype="float32")), 0.0, 1.0)
    if heat.shape != rgb.shape[:2]:
        heat = cv2.resize(heat, (rgb.shape[1], rgb.shape[0]), interpolation=cv2.INTER_LINEAR)
    colours = matplotlib.colormaps["jet"](heat)[..., :3] * 255.0
    blended = (1.0 - alpha) * rgb.astype("float64") + alpha * colours
    return np.clip(np.rint(blended), 0, 255).astype(np.uint8)


def grad_cam_figure(
    images: Sequence[np.ndarray],
    heatmaps: Sequence[np.ndarray],
    titles: Sequence[str] | None = None,
    alpha: float = 0.4,
    suptitle: str | None = "Grad-CAM",
    size: float = 1.9,
) -> plt.Figure:
    """Images (top row) over their Grad-CAM overlays (bottom row).

    Parameters
    ----------
    images
        Images as shown to a person (``uint8`` RGB preferred, see :func:`overlay`).
    heatmaps
        One heatmap in [0, 1] per image, e.g. from :func:`grad_cam`.
    titles
        One caption per image (say, true and predicted class).
    alpha
        Opacity of the heatmap colours.
    suptitle
        Figure title.
    size
        Side of one panel in inches.
    """
    if len(images) != len(heatmaps):
        raise ValueError(f"{len(images)} images but {len(heatmaps)} heatmaps")
    if titles is not None and len(titles) != len(images):
        raise ValueError(f"{len(images)} images but {len(titles)} titles")
    ncols = max(1, len(images))
    fig, axes = plt.subplots(2, ncols, figsize=(ncols * size + 0.8, 2 * size + 0.6), squeeze=False)
    for col, ax in enumerate(axes.T):
        for panel in ax:
            panel.set_xticks([])
            panel.set_yticks([])
            for spine in panel.spines.values():
                spine.set_visible(False)
        if col >= len(images):
            continue
        ax[0].imshow(_to_uint8_rgb(images[col]))
        ax[1].imshow(overlay(images[col], heatmaps[col], alpha=alpha))
        if titles is not None:
            ax[0].set_title(titles[col], fontsize=8)
    axes[0, 0].set_ylabel("image", fontsize=9)
    axes[1, 0].set_ylabel("Grad-CAM", fontsize=9)
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    return fig
