"""What a CNN looks at: intermediate activations and Grad-CAM, with public Keras 3 APIs on every backend.

Report 1 (C-NMC) shows the feature maps of the first convolutional layers and
Grad-CAM heatmaps of its classifiers (:mod:`cytobook.models.cnmc`): the flat
scratch CNN, and transfer models whose layers are a chain ``image →
preprocess → base → head``, the base being a nested ``keras.applications``
model (possibly truncated) and the head a nested model ending in
``Dense(1, sigmoid)``.

Layer names
-----------
A layer of the model itself is named as it is (``"pool4"``); a layer inside
the nested base by ``"<base>/<layer>"`` (``"base/block1_conv1"``). A bare
name not found in the model is looked up in its base too.

How
---
Everything is a sub-model built with ``keras.Model(inputs, outputs)`` on the
models' own tensors, with public layer attributes only (``input``,
``output``, ``get_layer``, ``Dense.kernel``): :func:`feature_split` cuts a
model in two at a layer (Keras builds a model from an intermediate tensor,
and refuses with a ``ValueError`` when the layer is not a cut of the graph,
e.g. inside a residual block). A layer inside the base is reached by a
sub-model of the base called on what the base receives in the chain. Gradients are the one thing Keras 3 has no backend-neutral
API for: :func:`_gradient` uses ``tf.GradientTape``, ``jax.grad`` or
``torch.autograd``, importing only the active backend's library.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import cv2
import keras
import matplotlib
import matplotlib.pyplot as plt
import numpy as np
from keras import ops

#: Layer classes listed by :func:`conv_layers`.
CONV_CLASSES = (keras.layers.Conv2D, keras.layers.SeparableConv2D, keras.layers.DepthwiseConv2D)


def _base(model: keras.Model) -> keras.Model | None:
    """The nested base of a transfer model: its first layer that is a model itself (``None`` if flat)."""
    return next((layer for layer in model.layers if isinstance(layer, keras.Model)), None)


def _locate(model: keras.Model, name: str) -> tuple[keras.layers.Layer, keras.Model]:
    """The layer called ``name`` (see the module docstring) and the model whose graph holds it."""
    base = _base(model)
    outer, _, inner = name.rpartition("/")
    for container, key in [(base, inner)] if outer else [(model, name), (base, name)]:
        if container is not None and outer in ("", container.name):
            try:
                return container.get_layer(key), container
            except ValueError:
                pass
    raise ValueError(f"no layer {name!r} in {model.name} (see explain.conv_layers for names)")


def _outputs(model: keras.Model, names: Sequence[str]) -> keras.Model:
    """A model from ``model``'s input to the outputs of the named layers, inside its base or not."""
    base, located = _base(model), [_locate(model, name) for name in names]
    inner = [layer.output for layer, container in located if container is not model]
    if inner:  # the base's own sub-model, called on what the base receives in the model's chain
        feed = model.layers[model.layers.index(base) - 1].output
        inner = keras.tree.flatten(keras.Model(base.input, inner)(feed))
    tensors = [layer.output if container is model else inner.pop(0) for layer, container in located]
    return keras.Model(model.input, tensors[0] if len(tensors) == 1 else tensors)


def conv_layers(model: keras.Model) -> list[str]:
    """Names of the convolutions of ``model`` and of its nested base (``"base/block1_conv1"``), in order."""
    base = _base(model)
    own = [layer.name for layer in model.layers if isinstance(layer, CONV_CLASSES)]
    return own + ([f"{base.name}/{name}" for name in conv_layers(base)] if base is not None else [])


def grad_cam_layer(model: keras.Model) -> str:
    """Grad-CAM's default target: the base's output layer for a transfer model, else the last 4D layer.

    That is ``"base/conv4_block6_out"`` (after the residual add) for the
    truncated ResNet50, ``"base/block4_pool"`` for the truncated VGG16 and
    ``"pool4"``, the last convolutional block's output, for the scratch CNN.
    """
    base = _base(model)
    if base is not None:
        return f"{base.name}/" + next(layer.name for layer in base.layers if layer.output is base.output)
    spatial = [layer.name for layer in model.layers
               if not isinstance(layer, keras.layers.InputLayer) and len(layer.output.shape) == 4]
    if not spatial:
        raise ValueError(f"{model.name} has no layer with (batch, height, width, channels) output")
    return spatial[-1]


def _submodel(start, end) -> keras.Model:
    try:
        return keras.Model(start, end)
    except ValueError as error:  # Keras: "Output ... is not connected to `inputs`"
        raise ValueError("cannot split the model at this layer: other paths (a residual connection?) bypass it; "
                         f"choose a block output such as a ResNet '..._out' layer ({error})") from None


def _split(model: keras.Model, layer: str | None):
    """``(features, stages, (start, graph))``: the head chains ``stages``, then ``graph`` from its tensor ``start``.

    ``graph`` is the model itself when it is cut at one of its own layers,
    else the last layer after the base (the transfer models' ``"head"``).
    """
    name = layer or grad_cam_layer(model)
    target, container = _locate(model, name)
    features = _outputs(model, [name])
    if container is model:
        return features, [], (target.output, model)
    stages = [] if target.output is container.output else [_submodel(target.output, container.output)]
    *after, last = model.layers[model.layers.index(container) + 1:]
    return features, stages + after, (last.input, last)


def _last(start, graph):
    """The last stage of a head: ``graph`` itself, or its part from the tensor ``start`` on."""
    return graph if start is graph.input else _submodel(start, graph.output)


def _chain(x, stages, training=False):
    for stage in stages:
        x = stage(x, training=training)
    return x


def feature_split(model: keras.Model, layer: str | None = None) -> tuple[keras.Model, keras.Model]:
    """Cut ``model`` at ``layer`` into ``(features, head)`` with ``head(features(x)) == model(x)``.

    ``layer`` defaults to :func:`grad_cam_layer`: for a transfer model the
    features are preprocessing + base and the head is its ``"head"``; a layer
    inside the base splits it, the head then running the rest of the base
    and the head. Raises ``ValueError`` for a layer that other paths bypass.
    """
    features, stages, (start, graph) = _split(model, layer)
    last = _last(start, graph)
    if not stages and isinstance(last, keras.Model):
        return features, last
    maps = keras.Input(features.output.shape[1:])
    return features, keras.Model(maps, _chain(maps, [*stages, last], training=None), name=f"{model.name}_head")


def _score(stages, start, graph) -> tuple:
    """The class scores as a function of the feature maps, and whether they are logits.

    When the model ends in a ``Dense`` layer with a sigmoid or softmax, the
    score is its pre-activation, from the layer's input and its public
    ``kernel`` and ``bias``; otherwise the model's output (a probability).
    """
    dense = graph.layers[-1] if isinstance(graph, keras.Model) else graph
    if not (isinstance(dense, keras.layers.Dense) and getattr(dense.activation, "__name__", "") in ("sigmoid", "softmax")):
        return (lambda maps: _chain(maps, [*stages, _last(start, graph)])), False
    body = [*stages, keras.Model(start, dense.input)] if isinstance(graph, keras.Model) else stages
    return (lambda maps: ops.matmul(_chain(maps, body), dense.kernel) + (dense.bias if dense.use_bias else 0)), True


def _gradient(score, maps):
    """Gradient of the scalar ``score(maps)`` with respect to ``maps``, by the active backend's autodiff."""
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        with tf.GradientTape() as tape:
            tape.watch(maps)
            value = score(maps)
        return tape.gradient(value, maps)
    if backend == "jax":
        import jax

        return jax.grad(score)(maps)  # inference mode: a pure function of the maps
    if backend == "torch":
        import torch

        with torch.enable_grad():
            maps = maps.detach().requires_grad_(True)
            return torch.autograd.grad(score(maps), maps, allow_unused=True)[0]
    raise NotImplementedError(f"Grad-CAM does not support the {backend!r} backend")


def _class_weights(scores: np.ndarray, logits: bool, class_index: int | None) -> np.ndarray:
    """Per image, the weights that turn the scores into the explained class's score.

    One sigmoid unit: ``+1`` for class 1 (ALL), ``-1`` for class 0 (the score
    ``-z``, i.e. ``log(p0 / p1)``, or ``1 - p``); several: one-hot.
    """
    count, classes = scores.shape
    if class_index is not None and not 0 <= class_index < max(classes, 2):
        raise ValueError(f"class_index must be in [0, {max(classes, 2)}), got {class_index}")
    if classes == 1:
        chosen = scores[:, 0] > (0.0 if logits else 0.5) if class_index is None else np.full(count, class_index)
        return np.where(chosen, 1.0, -1.0).astype("float32")[:, None]
    chosen = scores.argmax(axis=1) if class_index is None else np.full(count, class_index)
    return np.eye(classes, dtype="float32")[chosen]


def grad_cam(model: keras.Model, images: np.ndarray, layer: str | None = None,
             class_index: int | None = None) -> np.ndarray:
    """Grad-CAM heatmaps (Selvaraju et al. 2017): ``(n, height, width)`` in [0, 1] for a batch.

    The gradient of the class score with respect to the feature maps ``A`` of
    ``layer`` (default :func:`grad_cam_layer`) is averaged over space to
    weight the channels; the heatmap is ``relu(sum_k w_k A_k)``, resized
    bilinearly to the image and divided by its maximum (all zeros when there
    is no positive evidence). The score is the logit (pre-sigmoid) when the
    model ends in ``Dense(sigmoid)`` or ``Dense(softmax)``, as for every
    C-NMC model, else the output probability; with one unit, class 1 is
    explained with ``z`` and class 0 with ``-z``. ``class_index=None``
    explains each image's predicted class. One image ``(h, w, c)`` gives one
    ``(h, w)`` heatmap.
    """
    batch = np.asarray(images, dtype="float32")
    single = batch.ndim == len(model.input.shape) - 1
    batch = batch[None] if single else batch
    features, stages, tail = _split(model, layer)
    maps = features(batch, training=False)
    if len(maps.shape) != 4:
        raise ValueError(f"Grad-CAM needs a layer with (batch, height, width, channels) output, got {maps.shape}")
    score, logits = _score(stages, *tail)
    weights = _class_weights(ops.convert_to_numpy(score(maps)), logits, class_index)
    grads = _gradient(lambda a: ops.sum(score(a) * weights), maps)
    grads = ops.zeros_like(maps) if grads is None else grads
    cams = ops.convert_to_numpy(ops.relu(ops.einsum("nhwk,nk->nhw", maps, ops.mean(grads, axis=(1, 2)))))
    heatmaps = []
    for cam in cams:
        cam = cv2.resize(cam.astype("float32"), batch.shape[2:0:-1], interpolation=cv2.INTER_LINEAR)
        peak = cam.max()
        heatmaps.append(np.clip(cam / peak, 0, 1) if np.isfinite(cam).all() and peak > 0 else np.zeros_like(cam))
    return heatmaps[0] if single else np.stack(heatmaps)


def intermediate_activations(model: keras.Model, image: np.ndarray, layer_names: Sequence[str]) -> dict[str, np.ndarray]:
    """Outputs of the named layers (see :func:`conv_layers`) for one image: name → ``(1, h, w, c)`` array."""
    batch = np.asarray(image, dtype="float32")
    batch = batch[None] if batch.ndim == len(model.input.shape) - 1 else batch
    values = keras.tree.flatten(_outputs(model, layer_names)(batch, training=False))
    return {name: ops.convert_to_numpy(value) for name, value in zip(layer_names, values)}


def _panel(ax) -> None:
    ax.set_xticks([])
    ax.set_yticks([])
    ax.spines[:].set_visible(False)


def activations_figure(activations: Mapping[str, np.ndarray], max_channels: int = 16,
                       title: str | None = "Intermediate activations", size: float = 0.9) -> plt.Figure:
    """One row per layer, its first ``max_channels`` feature maps in grayscale, each stretched to its own range."""
    maps = {name: np.asarray(value).reshape(np.shape(value)[-3:]) for name, value in activations.items()}
    ncols = min(max_channels, max(array.shape[-1] for array in maps.values()))
    fig, axes = plt.subplots(len(maps), ncols, figsize=(ncols * size + 1.6, len(maps) * size + 0.6), squeeze=False)
    for row, (name, array) in zip(axes, maps.items()):
        for channel, ax in enumerate(row):
            _panel(ax)
            if channel < array.shape[-1]:
                ax.imshow(array[..., channel], cmap="gray")
        row[0].set_ylabel(f"{name}\n{'×'.join(map(str, array.shape))}", fontsize=7, rotation=0, ha="right", va="center")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def _rgb(image: np.ndarray) -> np.ndarray:
    """``image`` as ``uint8`` RGB: floats in [0, 1] or [0, 255] are scaled, other ranges stretched."""
    array = np.asarray(image)
    if array.ndim == 2 or array.shape[-1] == 1:
        array = np.repeat(array.reshape(*array.shape[:2], 1), 3, axis=-1)
    if array.dtype == np.uint8:
        return array
    low, high = float(array.min()), float(array.max())
    if low >= 0 and high <= 1:
        array = array * 255.0
    elif low < 0 or high > 255:
        array = (array - low) / (high - low or 1.0) * 255.0
    return np.clip(np.rint(array), 0, 255).astype(np.uint8)


def overlay(image: np.ndarray, heatmap: np.ndarray, alpha: float = 0.4) -> np.ndarray:
    """``uint8`` RGB blend of ``image`` with ``heatmap`` (in [0, 1], resized to it) in the jet colormap."""
    rgb = _rgb(image)
    heat = np.clip(np.nan_to_num(np.asarray(heatmap, dtype="float32")), 0.0, 1.0)
    heat = cv2.resize(heat, rgb.shape[1::-1], interpolation=cv2.INTER_LINEAR) if heat.shape != rgb.shape[:2] else heat
    blended = (1.0 - alpha) * rgb + alpha * 255.0 * matplotlib.colormaps["jet"](heat)[..., :3]
    return np.clip(np.rint(blended), 0, 255).astype(np.uint8)


def grad_cam_figure(images: Sequence[np.ndarray], heatmaps: Sequence[np.ndarray], titles: Sequence[str] | None = None,
                    alpha: float = 0.4, suptitle: str | None = "Grad-CAM", size: float = 1.9) -> plt.Figure:
    """Images (top row) over their Grad-CAM overlays (bottom row), with optional captions."""
    if len(images) != len(heatmaps) or (titles is not None and len(titles) != len(images)):
        raise ValueError("give one heatmap (and one title, if any) per image")
    fig, axes = plt.subplots(2, len(images), figsize=(len(images) * size + 0.8, 2 * size + 0.6), squeeze=False)
    for col, (top, bottom) in enumerate(axes.T):
        _panel(top)
        _panel(bottom)
        top.imshow(_rgb(images[col]))
        bottom.imshow(overlay(images[col], heatmaps[col], alpha=alpha))
        if titles is not None:
            top.set_title(titles[col], fontsize=8)
    axes[0, 0].set_ylabel("image", fontsize=9)
    axes[1, 0].set_ylabel("Grad-CAM", fontsize=9)
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    return fig
