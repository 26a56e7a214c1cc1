"""Intermediate activations and Grad-CAM (cytobook.explain), checked against independent computations.

The TensorFlow-only checks skip on another backend; the cross-backend test
recomputes the heatmaps of fixed-weight models under JAX (and PyTorch, when
installed) in a subprocess and compares them with this process's.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import cv2
import keras
import matplotlib
import numpy as np
import pytest

from cytobook import explain

matplotlib.use("Agg")

on_tensorflow = pytest.mark.skipif(
    keras.backend.backend() != "tensorflow", reason="the manual reference uses tf.GradientTape"
)
# MobileNetV2 runs op by op and slowly on the JAX CPU backend; nested models are covered on the
# other backends by the cross-backend test's tiny nested base.
mobilenet_on_tensorflow = pytest.mark.skipif(
    keras.backend.backend() != "tensorflow", reason="the MobileNetV2 checks run on TensorFlow only"
)


# --------------------------------------------------------------------------- #
# Models (also imported by the cross-backend subprocess, so keep them backend-neutral)
# --------------------------------------------------------------------------- #


def build_tiny(outputs: int = 1, flatten: bool = False) -> keras.Model:
    """32×32 RGB → two 3×3 convolutions → GAP (or Flatten) → Dense sigmoid (or softmax)."""
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="conv1")(inputs)
    x = keras.layers.Conv2D(8, 3, strides=2 if flatten else 1, padding="same", activation="relu", name="conv2")(x)
    x = keras.layers.Flatten()(x) if flatten else keras.layers.GlobalAveragePooling2D()(x)
    activation = "sigmoid" if outputs == 1 else "softmax"
    return keras.Model(inputs, keras.layers.Dense(outputs, activation=activation, name="head")(x))


def build_nested() -> keras.Model:
    """A small Functional base (with a residual path around its last conv) used as a layer."""
    inputs = keras.Input((32, 32, 3))
    a = keras.layers.Conv2D(6, 3, padding="same", activation="relu", name="c1")(inputs)
    b = keras.layers.Conv2D(6, 3, padding="same", activation="relu", name="c2")(a)
    base = keras.Model(inputs, keras.layers.Add()([a, b]), name="base")
    outer = keras.Input((32, 32, 3))
    x = keras.layers.GlobalAveragePooling2D()(base(outer, training=False))
    return keras.Model(outer, keras.layers.Dense(3, activation="softmax", name="head")(x))


def numpy_weights(model: keras.Model, seed: int) -> keras.Model:
    """Set every weight from a NumPy generator: the same model on every backend (Keras's own
    initialisers draw different numbers on each), with He-scaled kernels and small biases."""
    rng = np.random.default_rng(seed)
    for variable in model.weights:
        shape = tuple(variable.shape)
        scale = np.sqrt(2.0 / np.prod(shape[:-1])) if len(shape) > 1 else 0.05
        variable.assign(rng.normal(0.0, scale, shape).astype("float32"))
    return model


def images(count: int = 2, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((count, 32, 32, 3), dtype="float32")


def heatmaps_of(models: dict[str, keras.Model], batch: np.ndarray) -> dict[str, np.ndarray]:
    """The heatmaps compared across backends: default layers, explicit layers, both classes."""
    return {
        "tiny": explain.grad_cam(models["tiny"], batch),
        "tiny_class0": explain.grad_cam(models["tiny"], batch, class_index=0),
        "tiny_conv1": explain.grad_cam(models["tiny"], batch, layer_name="conv1", class_index=1),
        "flat_head": explain.grad_cam(models["flat_head"], batch),
        "nested": explain.grad_cam(models["nested"], batch),
        "nested_c1": explain.grad_cam(models["nested"], batch, layer_name="base/c1", class_index=2),
    }


BUILDERS = {"tiny": build_tiny, "flat_head": lambda: build_tiny(flatten=True), "nested": build_nested}


@pytest.fixture(scope="module")
def tiny() -> keras.Model:
    keras.utils.set_random_seed(0)
    return build_tiny()


def _normalise(cam: np.ndarray) -> np.ndarray:
    cam = np.maximum(cam, 0.0)
    return cam / cam.max() if cam.max() > 0 else cam


# --------------------------------------------------------------------------- #
# The tiny CNN
# --------------------------------------------------------------------------- #


def test_conv_layers_and_default_layer(tiny):
    assert explain.conv_layers(tiny) == ["conv1", "conv2"]
    assert explain.last_conv_layer(tiny) == "conv2"
    image = images(1)[0]
    heatmap = explain.grad_cam(tiny, image)
    assert heatmap.shape == (32, 32) and heatmap.dtype == np.float32
    assert heatmap.min() >= 0.0 and heatmap.max() == pytest.approx(1.0)
    np.testing.assert_array_equal(heatmap, explain.grad_cam(tiny, image, layer_name="conv2"))
    assert not np.allclose(heatmap, explain.grad_cam(tiny, image, layer_name="conv1"))


def test_matches_class_activation_map(tiny):
    # With GAP → Dense, d logit / dA_k = w_k / (h·w): Grad-CAM reduces to CAM, relu(Σ_k w_k A_k).
    image = images(1)[0]
    maps = explain.intermediate_activations(tiny, image, ["conv2"])["conv2"][0]
    weights = tiny.get_layer("head").get_weights()[0][:, 0]
    for class_index, sign in ((1, 1.0), (0, -1.0)):  # class 0 is explained with the negated logit
        expected = _normalise(sign * maps @ weights)
        np.testing.assert_allclose(explain.grad_cam(tiny, image, class_index=class_index), expected, atol=1e-5)
    predicted = int(float(keras.ops.convert_to_numpy(tiny(image[None]))[0, 0]) > 0.5)
    np.testing.assert_array_equal(explain.grad_cam(tiny, image), explain.grad_cam(tiny, image, class_index=predicted))


@pytest.mark.parametrize("ending", ["dense_sigmoid", "activation_layer", "dense_linear", "saturated"])
def test_score_is_the_logit_however_the_output_ends(tiny, ending):
    # Same conv layers and head weights, different endings: all explain the logit, so all give CAM.
    image = images(1, seed=10)[0]
    kernel, bias = tiny.get_layer("head").get_weights()
    if ending == "saturated":
        kernel, bias = kernel * 1e4, bias * 1e4  # p rounds to exactly 0 or 1: probability gradients vanish
    x = tiny.layers[-2].output  # the pooled features
    dense = keras.layers.Dense(1, activation=None if ending in ("activation_layer", "dense_linear") else "sigmoid")
    y = dense(x)
    if ending == "activation_layer":
        y = keras.layers.Activation("sigmoid")(y)
    model = keras.Model(tiny.input, y)
    dense.set_weights([kernel, bias])
    maps = explain.intermediate_activations(tiny, image, ["conv2"])["conv2"][0]
    heatmap = explain.grad_cam(model, image, class_index=1)
    np.testing.assert_allclose(heatmap, _normalise(maps @ kernel[:, 0]), atol=1e-5)


def test_softmax_explains_argmax_logit():
    keras.utils.set_random_seed(1)
    model = build_tiny(outputs=3)
    batch = images(3, seed=1)
    maps = explain.intermediate_activations(model, batch[:1], ["conv2"])["conv2"][0]
    kernel = model.get_layer("head").get_weights()[0]
    winner = int(np.argmax(keras.ops.convert_to_numpy(model(batch[:1]))[0]))
    np.testing.assert_allclose(explain.grad_cam(model, batch[0]), _normalise(maps @ kernel[:, winner]), atol=1e-5)
    for class_index in range(3):
        expected = _normalise(maps @ kernel[:, class_index])
        np.testing.assert_allclose(explain.grad_cam(model, batch[0], class_index=class_index), expected, atol=1e-5)
    # A batch gives the same heatmaps as one image at a time.
    stacked = explain.grad_cam(model, batch)
    assert stacked.shape == (3, 32, 32)
    for row, image in zip(stacked, batch):
        np.testing.assert_allclose(row, explain.grad_cam(model, image), atol=1e-6)
    with pytest.raises(ValueError, match="class_index"):
        explain.grad_cam(model, batch[0], class_index=3)


@on_tensorflow
def test_matches_manual_gradient_tape():
    import tensorflow as tf

    keras.utils.set_random_seed(2)
    model = build_tiny(flatten=True)  # no GAP shortcut: a real gradient through a dense head
    image = images(1, seed=2)[0]
    probe = keras.Model(model.input, [model.get_layer("conv2").output, model.output])
    with tf.GradientTape() as tape:
        maps, probability = probe(image[None], training=False)
        # The probability, not the logit: d p / dz = p (1 - p) > 0 only rescales the map.
        score = probability[0, 0] if float(probability[0, 0]) > 0.5 else 1.0 - probability[0, 0]
    grads = tape.gradient(score, maps)
    weights = tf.reduce_mean(grads, axis=(1, 2))[0].numpy()
    cam = np.maximum(maps[0].numpy() @ weights, 0.0)
    expected = _normalise(cv2.resize(cam, (32, 32), interpolation=cv2.INTER_LINEAR))
    np.testing.assert_allclose(explain.grad_cam(model, image), expected, atol=1e-4)


def test_flat_gradient_gives_zeros_not_nan():
    keras.utils.set_random_seed(3)
    model = build_tiny()
    kernel, bias = model.get_layer("head").get_weights()
    model.get_layer("head").set_weights([np.zeros_like(kernel), bias])
    for class_index in (None, 0, 1):
        heatmap = explain.grad_cam(model, images(1)[0], class_index=class_index)
        assert heatmap.shape == (32, 32)
        assert np.all(heatmap == 0.0)


def test_sequential_model_matches_functional(tiny):
    sequential = keras.Sequential([keras.Input((32, 32, 3)), *tiny.layers[1:]])
    image = images(1, seed=4)[0]
    assert explain.conv_layers(sequential) == ["conv1", "conv2"]
    np.testing.assert_allclose(explain.grad_cam(sequential, image), explain.grad_cam(tiny, image), atol=1e-6)


def test_bad_layer_names(tiny):
    with pytest.raises(ValueError, match="no layer"):
        explain.grad_cam(tiny, images(1)[0], layer_name="nope")
    with pytest.raises(ValueError, match="height, width"):
        explain.grad_cam(tiny, images(1)[0], layer_name="head")


# --------------------------------------------------------------------------- #
# Localisation: a model that looks at one quadrant only
# --------------------------------------------------------------------------- #


class QuadrantMask(keras.layers.Layer):
    """Multiplies feature maps by a fixed 0/1 mask that keeps the top-right quadrant."""

    def call(self, inputs):
        height, width = inputs.shape[1], inputs.shape[2]
        mask = np.zeros((1, height, width, 1), dtype="float32")
        mask[:, : height // 2, width // 2 :] = 1.0
        return inputs * keras.ops.convert_to_tensor(mask)


def test_heatmap_lands_in_the_quadrant_the_model_uses():
    inputs = keras.Input((32, 32, 1))
    x = keras.layers.Conv2D(1, 3, padding="same", activation="relu", name="smooth")(inputs)
    x = QuadrantMask()(x)
    x = keras.layers.Conv2D(1, 3, padding="same", activation="relu", name="detect")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid", name="head")(x))
    averaging = [np.full((3, 3, 1, 1), 1.0 / 9.0, dtype="float32"), np.zeros(1, dtype="float32")]
    model.get_layer("smooth").set_weights(averaging)
    model.get_layer("detect").set_weights(averaging)
    model.get_layer("head").set_weights([np.ones((1, 1), dtype="float32"), np.full(1, -0.05, dtype="float32")])

    # Dim texture everywhere and a bright disc in the bottom-left quadrant, which the model ignores:
    # a method that followed image brightness, or swapped the axes, would point at the disc.
    image = 0.2 * np.random.default_rng(5).random((32, 32, 1), dtype="float32")
    yy, xx = np.mgrid[:32, :32]
    disc = (yy - 24) ** 2 + (xx - 8) ** 2 < 36
    image[disc] = 1.0
    heatmap = explain.grad_cam(model, image, class_index=1)
    assert explain.last_conv_layer(model) == "detect"
    top_right = heatmap[:16, 16:].sum() / heatmap.sum()
    assert top_right > 0.9, f"only {top_right:.0%} of the Grad-CAM mass is in the quadrant the model reads"
    assert heatmap[disc].max() == 0.0


# --------------------------------------------------------------------------- #
# A keras.applications base nested in a classifier
# --------------------------------------------------------------------------- #


@pytest.fixture(scope="module")
def nested_mobilenet() -> tuple[keras.Model, keras.Model]:
    keras.utils.set_random_seed(6)
    base = keras.applications.MobileNetV2(weights=None, include_top=False, input_shape=(32, 32, 3), alpha=0.35)
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.GlobalAveragePooling2D()(base(inputs, training=False))
    model = keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid")(x))
    return base, model


@mobilenet_on_tensorflow
def test_nested_base_layers_and_activations(nested_mobilenet):
    base, model = nested_mobilenet
    layers = explain.conv_layers(model)
    assert layers[0] == f"{base.name}/Conv1"
    assert explain.last_conv_layer(model) == f"{base.name}/Conv_1"
    assert len(layers) == len([layer for layer in base.layers if isinstance(layer, explain.CONV_CLASSES)])
    activations = explain.intermediate_activations(model, images(1)[0], layers[:3])
    assert list(activations) == layers[:3]
    assert [value.shape for value in activations.values()] == [(1, 16, 16, 16), (1, 16, 16, 16), (1, 16, 16, 8)]
    # The same numbers as the base's own graph.
    direct = keras.Model(base.input, base.get_layer("Conv1").output)(images(1))
    np.testing.assert_allclose(activations[layers[0]], keras.ops.convert_to_numpy(direct), atol=1e-5)
    figure = explain.activations_figure(activations, max_channels=8)
    assert len(figure.axes) == 3 * 8
    matplotlib.pyplot.close(figure)


@mobilenet_on_tensorflow
def test_nested_base_grad_cam(nested_mobilenet):
    base, model = nested_mobilenet
    image = images(1, seed=7)[0]
    default = explain.grad_cam(model, image)
    assert default.shape == (32, 32) and np.isfinite(default).all()
    assert 0.0 <= default.min() and default.max() <= 1.0
    np.testing.assert_array_equal(default, explain.grad_cam(model, image, layer_name=f"{base.name}/Conv_1"))
    # relu(S) and relu(-S): with random weights either may be empty, never both.
    inner = [explain.grad_cam(model, image, layer_name="block_2_expand", class_index=c) for c in (0, 1)]
    assert all(heatmap.shape == (32, 32) for heatmap in inner)
    assert max(heatmap.max() for heatmap in inner) == pytest.approx(1.0)
    np.testing.assert_array_equal(
        inner[1], explain.grad_cam(model, image, layer_name=f"{base.name}/block_2_expand", class_index=1)
    )


@on_tensorflow
def test_nested_base_matches_flat_twin(nested_mobilenet):
    # The textbook recipe needs the conv layer and the output in one graph: rebuild the classifier
    # flat on the base's own input (same layer objects) and differentiate with a GradientTape.
    import tensorflow as tf

    base, model = nested_mobilenet
    pool, dense = model.layers[-2:]
    flat = keras.Model(base.input, dense(pool(base.output)))
    probe = keras.Model(flat.input, [base.get_layer("block_2_expand").output, flat.output])
    image = images(1, seed=7)[0]
    for class_index in (0, 1):
        with tf.GradientTape() as tape:
            maps, probability = probe(image[None], training=False)
            score = probability[0, 0] if class_index == 1 else 1.0 - probability[0, 0]
        grads = tape.gradient(score, maps)
        cam = np.maximum(maps[0].numpy() @ tf.reduce_mean(grads, axis=(1, 2))[0].numpy(), 0.0)
        expected = _normalise(cv2.resize(cam, (32, 32), interpolation=cv2.INTER_LINEAR))
        actual = explain.grad_cam(model, image, layer_name="block_2_expand", class_index=class_index)
        np.testing.assert_allclose(actual, expected, atol=1e-4)


# --------------------------------------------------------------------------- #
# Overlays and figures
# --------------------------------------------------------------------------- #


def test_overlay_and_figure():
    image = (np.random.default_rng(8).random((40, 30, 3)) * 255).astype(np.uint8)
    heatmap = np.zeros((10, 10), dtype="float32")
    heatmap[2:5, 2:5] = 1.0
    blended = explain.overlay(image, heatmap)
    assert blended.shape == (40, 30, 3) and blended.dtype == np.uint8
    np.testing.assert_array_equal(explain.overlay(image, heatmap, alpha=0.0), image)
    hot = explain.overlay(np.zeros((10, 10)), np.ones((10, 10)), alpha=1.0)
    np.testing.assert_array_equal(hot[0, 0], [128, 0, 0])  # the top of jet is dark red
    figure = explain.grad_cam_figure([image, image / 255.0], [heatmap, heatmap], ["a", "b"])
    assert len(figure.axes) == 4
    matplotlib.pyplot.close(figure)
    with pytest.raises(ValueError):
        explain.grad_cam_figure([image], [heatmap, heatmap], None)


# --------------------------------------------------------------------------- #
# The same heatmaps on the other Keras backends
# --------------------------------------------------------------------------- #

SUBPROCESS = textwrap.dedent(
    """
    import importlib.util, json, sys
    from pathlib import Path
    import keras
    import numpy as np

    here = Path(sys.argv[1])
    spec = importlib.util.spec_from_file_location("explain_tests", sys.argv[2])
    tests = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tests)
    models = {}
    for name, build in tests.BUILDERS.items():
        models[name] = build()
        models[name].load_weights(here / f"{name}.weights.h5")
    result = tests.heatmaps_of(models, np.load(here / "images.npy"))
    np.savez(here / f"{keras.backend.backend()}.npz", **result)
    print(json.dumps({"backend": keras.backend.backend()}))
    """
)


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_same_heatmaps_on_other_backend(backend, tmp_path):
    if backend == keras.backend.backend():
        pytest.skip(f"this process already runs on {backend}")
    if importlib.util.find_spec(backend) is None:
        pytest.skip(f"{backend} is not installed")
    models = {name: numpy_weights(build(), seed) for seed, (name, build) in enumerate(BUILDERS.items())}
    for name, model in models.items():
        model.save_weights(tmp_path / f"{name}.weights.h5")
    batch = images(2, seed=9)
    np.save(tmp_path / "images.npy", batch)
    expected = heatmaps_of(models, batch)

    env = {**os.environ, "KERAS_BACKEND": backend, "JAX_PLATFORMS": "cpu", "CUDA_VISIBLE_DEVICES": ""}
    done = subprocess.run(
        [sys.executable, "-c", SUBPROCESS, str(tmp_path), str(Path(__file__).resolve())],
        env=env, capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout.strip().splitlines()[-1])["backend"] == backend
    actual = np.load(tmp_path / f"{backend}.npz")
    assert sorted(actual.files) == sorted(expected)
    for name, heatmap in expected.items():
        assert heatmap.max() == pytest.approx(1.0), f"{name}: degenerate reference heatmap"
        np.testing.assert_allclose(actual[name], heatmap, atol=1e-4, err_msg=name)
