"""Report 1's architectures: shapes, truncation points, freezing, fast feature extraction."""

from __future__ import annotations

import numpy as np
import pytest

from cytobook.notebook import _import_keras_quietly

keras = _import_keras_quietly()

from cytobook.profiles import get_profile  # noqa: E402
from cytobook.models.cnmc import SCRATCH_HEADS, input_size, scratch_cnn  # noqa: E402
from cytobook.models.transfer import TRUNCATION, set_trainable, transfer_classifier  # noqa: E402
from cytobook.training import SplitArrays, fit_head_on_features, predict_proba  # noqa: E402


@pytest.fixture(autouse=True)
def no_cached_weights(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))


def test_scratch_cnn_matches_the_report_at_300_px():
    model = scratch_cnn(300)
    assert model.get_layer("pool4").output.shape == (None, 5, 5, 256)
    assert [model.get_layer(f"conv{i}").filters for i in range(1, 5)] == [32, 64, 128, 256]
    assert model.output.shape == (None, 1)
    with pytest.raises(ValueError, match="60"):
        scratch_cnn(48)


def test_input_size_is_the_reports_224_for_resnet50_and_never_above_the_profiles_limits():
    full = get_profile("full")
    assert input_size("resnet50", full) == 224  # the truncated base ends on 14x14x1024
    assert input_size("vgg16", full) == 300 and input_size("mobilenet_v2", full) == 300
    assert input_size("resnet50", get_profile("full", image_size=128)) == 128
    assert input_size("vgg16", get_profile("full", image_size=64, transfer_image_size={"vgg16": 32})) == 32
    assert input_size("resnet50", get_profile("full", image_size=64, transfer_image_size={"vgg16": 32})) == 64


@pytest.mark.parametrize("arch, shape", [("vgg16", (14, 14, 512)), ("resnet50", (14, 14, 1024)), ("mobilenet_v2", (14, 14, 96))])
def test_truncated_bases_end_a_stage_early(arch, shape):
    model = transfer_classifier(arch, 224, truncated=True, required=False)
    assert model.get_layer("base").output.shape[1:] == shape
    assert model.get_layer("base").layers[-1].name == TRUNCATION[arch]


def test_fine_tuning_unfreezes_only_what_is_asked_and_keeps_batchnorm_frozen():
    model = transfer_classifier("resnet50", 64, required=False)
    assert not model.get_layer("base").trainable
    unfrozen = set_trainable(model, 3)
    assert unfrozen == ["conv5_block3_1_conv", "conv5_block3_2_conv", "conv5_block3_3_conv"]
    assert not any(isinstance(layer, keras.layers.BatchNormalization) and layer.trainable
                   for layer in model.get_layer("base").layers)
    assert set_trainable(model, "conv5_block3_2_conv") == unfrozen[1:]
    assert len(set_trainable(model, "everything")) == 53  # every convolution of ResNet50, no batch normalisation
    with pytest.raises(ValueError, match="not a layer"):
        set_trainable(model, "conv9_block1_1_conv")


def test_head_trained_on_cached_features_is_the_models_head():
    rng = np.random.default_rng(0)
    x = (rng.random((24, 64, 64, 3)) * 255).astype("uint8")
    y = (x[:, :32].mean(axis=(1, 2, 3)) > x[:, 32:].mean(axis=(1, 2, 3))).astype("float32")
    data = SplitArrays(x, y, x[:8], y[:8], x[:8], y[:8])
    model = transfer_classifier("mobilenet_v2", 64, dense=None, required=False)
    before = predict_proba(model, x)
    history = fit_head_on_features(model, data, epochs=2, batch_size=8)
    assert len(history["loss"]) == 2 and "val_loss" in history
    assert not np.allclose(before, predict_proba(model, x))  # the full model sees the trained head


def test_transfer_models_can_be_explained():
    from cytobook import explain

    model = transfer_classifier("vgg16", 64, truncated=True, required=False)
    image = (np.random.default_rng(0).random((64, 64, 3)) * 255).astype("uint8")
    layers = explain.conv_layers(model)
    assert layers[0] == "base/block1_conv1" and explain.grad_cam_layer(model) == "base/block4_pool"
    assert explain.intermediate_activations(model, image, layers[:1])["base/block1_conv1"].shape == (1, 64, 64, 64)
    heatmap = explain.grad_cam(model, image)
    assert heatmap.shape == (64, 64) and 0.0 <= heatmap.min() and heatmap.max() <= 1.0


def test_scratch_heads_are_the_reports():
    """3.2.1-3.2.4: one dropout, two dropouts around 256 units (best), the same with 128, two dense layers of 256."""
    dense_units = {head: [layer.units for layer in scratch_cnn(64, head).layers if isinstance(layer, keras.layers.Dense)]
                   for head in SCRATCH_HEADS}
    dropouts = {head: sum(isinstance(layer, keras.layers.Dropout) for layer in scratch_cnn(64, head).layers)
                for head in SCRATCH_HEADS}
    assert dense_units == {"dropout-dense256-dropout": [256, 1], "dense256-dropout": [256, 1],
                           "dropout-dense128-dropout": [128, 1], "dropout-dense256-dense256-dropout": [256, 256, 1]}
    assert dropouts == {"dropout-dense256-dropout": 2, "dense256-dropout": 1,
                        "dropout-dense128-dropout": 2, "dropout-dense256-dense256-dropout": 2}


def test_resnet50_v2_head_has_no_dropout():
    model = transfer_classifier("resnet50", 64, truncated=True, dense=512, dropout=None, required=False)
    head = [type(layer).__name__ for layer in model.get_layer("head").layers[1:]]
    assert head == ["GlobalAveragePooling2D", "Dense", "Dense"]
    assert model.get_layer("head").layers[2].units == 512
