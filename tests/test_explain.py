"""Grad-CAM and activations (cytobook.explain) on report 1's models, checked against independent computations.

Every test runs on the active backend; run the file once more with
``KERAS_BACKEND=jax``. ``test_same_heatmaps_on_jax`` also recomputes some
heatmaps under JAX in a subprocess and compares the numbers.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import keras
import matplotlib
import numpy as np
import pytest

import cytobook.models  # noqa: F401  (registers the preprocessing layer for load_model)
from cytobook import explain
from cytobook.models.cnmc import scratch_cnn
from cytobook.models.transfer import transfer_classifier

matplotlib.use("Agg")

SIZE = 64
#: (arch, truncated) → (default Grad-CAM target, a layer inside the base that cuts its graph).
TRANSFER = {
    ("vgg16", True): ("base/block4_pool", "block3_pool"),
    ("resnet50", True): ("base/conv4_block6_out", "conv3_block4_out"),
    ("resnet50", False): ("base/conv5_block3_out", "conv4_block6_out"),
    ("mobilenet_v2", False): ("base/out_relu", "block_6_expand"),
}
_BUILT: dict = {}


def transfer(arch: str, truncated: bool) -> keras.Model:
    """A small transfer classifier with random weights (no download), built once per session."""
    if (arch, truncated) not in _BUILT:
        keras.utils.set_random_seed(0)
        _BUILT[arch, truncated] = transfer_classifier(arch, SIZE, truncated=truncated, weights=None, required=False)
    return _BUILT[arch, truncated]


def images(count: int = 2, size: int = SIZE, seed: int = 0) -> np.ndarray:
    return (np.random.default_rng(seed).random((count, size, size, 3)) * 255).astype("float32")


def close(a, b, atol=1e-5):
    np.testing.assert_allclose(keras.ops.convert_to_numpy(a), keras.ops.convert_to_numpy(b), atol=atol, rtol=1e-4)


def check_heatmaps(heatmaps: np.ndarray, shape: tuple) -> None:
    assert heatmaps.shape == shape and heatmaps.dtype == np.float32 and np.isfinite(heatmaps).all()
    assert heatmaps.min() >= 0.0 and heatmaps.max() <= 1.0
    for heatmap in heatmaps.reshape(-1, *shape[-2:]):  # scaled to a peak of 1, or no positive evidence at all
        assert heatmap.max() == pytest.approx(1.0) or heatmap.max() == 0.0


# --------------------------------------------------------------------------- #
# Splits: head(features(x)) == model(x)
# --------------------------------------------------------------------------- #


def test_scratch_cnn_split_and_grad_cam():
    keras.utils.set_random_seed(1)
    model = scratch_cnn(120)
    x = images(2, 120)
    assert explain.conv_layers(model) == ["conv1", "conv2", "conv3", "conv4"]
    assert explain.grad_cam_layer(model) == "pool4"  # the last block's output, before flatten
    for layer, shape in ((None, (2, 2, 2, 256)), ("pool2", (2, 30, 30, 64)), ("conv3", (2, 30, 30, 128))):
        features, head = explain.feature_split(model, layer)
        maps = features(x)
        assert tuple(maps.shape) == shape
        close(head(maps), model(x))
        check_heatmaps(explain.grad_cam(model, x, layer), (2, 120, 120))


@pytest.mark.parametrize(("arch", "truncated"), list(TRANSFER))
def test_transfer_split_and_grad_cam(arch, truncated):
    model = transfer(arch, truncated)
    default, inside = TRANSFER[arch, truncated]
    assert explain.grad_cam_layer(model) == default
    x = images()
    features, head = explain.feature_split(model)
    assert head is model.get_layer("head")  # preprocess + base | head
    assert tuple(features.output.shape) == tuple(model.get_layer("base").output.shape)
    close(head(features(x)), model(x))
    features, head = explain.feature_split(model, inside)  # the rest of the base, then the head
    assert tuple(features.output.shape) == tuple(model.get_layer("base").get_layer(inside).output.shape)
    close(head(features(x)), model(x))
    check_heatmaps(explain.grad_cam(model, x), (2, SIZE, SIZE))
    check_heatmaps(explain.grad_cam(model, x, f"base/{inside}", class_index=1), (2, SIZE, SIZE))
    check_heatmaps(explain.grad_cam(model, x[0], inside), (SIZE, SIZE))


def test_layer_inside_a_residual_block_is_refused():
    model = transfer("resnet50", True)
    with pytest.raises(ValueError, match="bypass"):
        explain.feature_split(model, "conv3_block4_2_conv")  # the shortcut skips it
    with pytest.raises(ValueError, match="no layer"):
        explain.grad_cam(model, images(1), "nope")
    with pytest.raises(ValueError, match="class_index"):
        explain.grad_cam(model, images(1), class_index=2)


def test_activations_inside_the_base():
    model = transfer("resnet50", True)
    base = model.get_layer("base")
    names = explain.conv_layers(model)
    assert names[:2] == ["base/conv1_conv", "base/conv2_block1_1_conv"]
    assert len(names) == len([layer for layer in base.layers if isinstance(layer, keras.layers.Conv2D)])
    x = images(1)
    activations = explain.intermediate_activations(model, x[0], [*names[:2], "preprocess"])
    assert list(activations) == [*names[:2], "preprocess"]
    assert [value.shape for value in activations.values()] == [(1, 32, 32, 64), (1, 16, 16, 64), (1, 64, 64, 3)]
    # The base's own graph on the preprocessed image gives the same numbers.
    direct = keras.Model(base.input, base.get_layer("conv1_conv").output)(model.get_layer("preprocess")(x))
    close(activations["base/conv1_conv"], direct, atol=1e-3)
    vgg = transfer("vgg16", True)
    assert explain.conv_layers(vgg)[0] == "base/block1_conv1"
    by_path = explain.intermediate_activations(vgg, x, ["base/block1_conv1"])["base/block1_conv1"]
    close(by_path, explain.intermediate_activations(vgg, x, ["block1_conv1"])["block1_conv1"], atol=0)
    figure = explain.activations_figure(activations, max_channels=8)
    assert len(figure.axes) == 3 * 8
    matplotlib.pyplot.close(figure)


def test_saved_and_reloaded_model_still_explains(tmp_path):
    model = transfer("resnet50", True)
    model.save(tmp_path / "resnet50.keras")
    loaded = keras.models.load_model(tmp_path / "resnet50.keras")
    assert explain.grad_cam_layer(loaded) == "base/conv4_block6_out"
    assert explain.conv_layers(loaded) == explain.conv_layers(model)
    x = images(seed=3)
    features, head = explain.feature_split(loaded, "conv3_block4_out")
    close(head(features(x)), model(x))
    np.testing.assert_allclose(explain.grad_cam(loaded, x), explain.grad_cam(model, x), atol=1e-4)


# --------------------------------------------------------------------------- #
# What the heatmaps say
# --------------------------------------------------------------------------- #


def gap_classifier(scale: float = 1.0) -> keras.Model:
    """32×32 RGB → two convolutions → GAP → Dense(1, sigmoid); ``scale`` multiplies the dense weights."""
    keras.utils.set_random_seed(2)
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="conv1")(inputs)
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="conv2")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid", name="p_all")(x))
    model.get_layer("p_all").set_weights([w * scale for w in model.get_layer("p_all").get_weights()])
    return model


@pytest.mark.parametrize("scale", [1.0, 1e4])
def test_grad_cam_is_cam_of_the_logit(scale):
    # GAP → Dense: d logit / dA_k = w_k / (h·w), so Grad-CAM is CAM, relu(Σ_k w_k A_k). At scale 1e4 the
    # sigmoid saturates to exactly 0 or 1 and probability gradients vanish: only the logit still explains.
    model = gap_classifier(scale)
    x = np.random.default_rng(4).random((2, 32, 32, 3)).astype("float32")
    assert explain.grad_cam_layer(model) == "conv2"
    maps = explain.intermediate_activations(model, x, ["conv2"])["conv2"]
    kernel = model.get_layer("p_all").get_weights()[0][:, 0]
    for class_index, sign in ((1, 1.0), (0, -1.0)):  # class 0 is explained with the negated logit
        cam = np.maximum(sign * maps @ kernel, 0.0)
        expected = cam / cam.max(axis=(1, 2), keepdims=True)
        np.testing.assert_allclose(explain.grad_cam(model, x, class_index=class_index), expected, atol=1e-5)
    predicted = keras.ops.convert_to_numpy(model(x))[:, 0] > 0.5
    for image, ill in zip(x, predicted):
        np.testing.assert_array_equal(explain.grad_cam(model, image), explain.grad_cam(model, image, class_index=int(ill)))


class QuadrantMask(keras.layers.Layer):
    """Keeps the top-right quadrant of the feature maps, zeroes the rest."""

    def call(self, inputs):
        height, width = inputs.shape[1], inputs.shape[2]
        mask = np.zeros((1, height, width, 1), dtype="float32")
        mask[:, : height // 2, width // 2 :] = 1.0
        return inputs * keras.ops.convert_to_tensor(mask)


def test_heat_lands_where_the_model_looks():
    # A hand-set detector of brightness in the top-right quadrant. The image has a bright square there
    # and a brighter disc bottom-left, which the model ignores: a method that followed brightness,
    # or swapped the axes, would point at the disc.
    inputs = keras.Input((32, 32, 1))
    x = keras.layers.Conv2D(1, 3, padding="same", activation="relu", name="smooth")(inputs)
    x = keras.layers.Conv2D(1, 3, padding="same", activation="relu", name="detect")(QuadrantMask()(x))
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid", name="p_all")(x))
    averaging = [np.full((3, 3, 1, 1), 1 / 9, dtype="float32"), np.zeros(1, dtype="float32")]
    model.get_layer("smooth").set_weights(averaging)
    model.get_layer("detect").set_weights(averaging)
    model.get_layer("p_all").set_weights([np.ones((1, 1), dtype="float32"), np.full(1, -0.05, dtype="float32")])
    image = 0.1 * np.random.default_rng(5).random((32, 32, 1)).astype("float32")
    image[4:10, 20:26] = 0.8
    yy, xx = np.mgrid[:32, :32]
    disc = (yy - 24) ** 2 + (xx - 8) ** 2 < 36
    image[disc] = 1.0
    heatmap = explain.grad_cam(model, image, class_index=1)
    assert explain.grad_cam_layer(model) == "detect"
    assert heatmap[:16, 16:].sum() / heatmap.sum() > 0.9
    assert heatmap[disc].max() == 0.0
    peak = np.unravel_index(heatmap.argmax(), heatmap.shape)
    assert 3 <= peak[0] <= 10 and 19 <= peak[1] <= 26, f"the heat peaks at {peak}, not on the square"


# --------------------------------------------------------------------------- #
# Figures
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
        explain.grad_cam_figure([image], [heatmap, heatmap])


# --------------------------------------------------------------------------- #
# The same numbers under JAX
# --------------------------------------------------------------------------- #

ON_JAX = textwrap.dedent(
    """
    import sys
    import numpy as np
    import keras
    import cytobook.models
    from cytobook import explain
    from cytobook.models.cnmc import scratch_cnn
    from cytobook.models.transfer import transfer_classifier

    assert keras.backend.backend() == "jax"
    folder = sys.argv[1]
    scratch = scratch_cnn(120)
    scratch.load_weights(f"{folder}/scratch.weights.h5")
    resnet = transfer_classifier("resnet50", 64, truncated=True, weights=None, required=False)
    resnet.load_weights(f"{folder}/resnet.weights.h5")
    x120, x64 = np.load(f"{folder}/x120.npy"), np.load(f"{folder}/x64.npy")
    np.savez(f"{folder}/jax.npz", scratch=explain.grad_cam(scratch, x120, "conv3"),
             resnet=explain.grad_cam(resnet, x64), resnet_inside=explain.grad_cam(resnet, x64, "conv3_block4_out", 0))
    """
)


def test_same_heatmaps_on_jax(tmp_path):
    if keras.backend.backend() == "jax":
        pytest.skip("this process runs on JAX already")
    pytest.importorskip("jax")
    keras.utils.set_random_seed(7)
    scratch = scratch_cnn(120)
    resnet = transfer("resnet50", True)
    scratch.save_weights(tmp_path / "scratch.weights.h5")
    resnet.save_weights(tmp_path / "resnet.weights.h5")
    x120, x64 = images(2, 120, seed=9), images(2, SIZE, seed=9)
    np.save(tmp_path / "x120.npy", x120)
    np.save(tmp_path / "x64.npy", x64)
    expected = {"scratch": explain.grad_cam(scratch, x120, "conv3"), "resnet": explain.grad_cam(resnet, x64),
                "resnet_inside": explain.grad_cam(resnet, x64, "conv3_block4_out", 0)}
    env = {**os.environ, "KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu"}
    done = subprocess.run([sys.executable, "-c", ON_JAX, str(tmp_path)], env=env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    actual = np.load(tmp_path / "jax.npz")
    for name, heatmaps in expected.items():
        assert heatmaps.max() == pytest.approx(1.0), f"{name}: a degenerate reference"
        np.testing.assert_allclose(actual[name], heatmaps, atol=2e-3, err_msg=name)
