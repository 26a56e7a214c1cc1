"""Staged transfer recipes: stages run as asked, random bases get usable statistics, settings are recorded."""

from __future__ import annotations

import numpy as np
import pytest

from cytobook.notebook import _import_keras_quietly

keras = _import_keras_quietly()

from cytobook.models.transfer import Recipe, Stage, recalibrate_batch_norm, recipe_table, train_recipe, transfer_classifier  # noqa: E402
from cytobook.profiles import get_profile  # noqa: E402
from cytobook.training import SplitArrays  # noqa: E402


@pytest.fixture(autouse=True)
def offline(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    monkeypatch.setenv("CYTOBOOK_OFFLINE", "1")


def tiny_data(n: int = 16, size: int = 32) -> SplitArrays:
    rng = np.random.default_rng(0)
    x = (rng.random((n, size, size, 3)) * 255).astype("uint8")
    y = (np.arange(n) % 2).astype("float32")
    return SplitArrays(x, y, x[:8], y[:8], x[:8], y[:8])


def test_batch_norm_statistics_become_those_of_the_images():
    model = transfer_classifier("mobilenet_v2", 32, dense=None, weights=None, required=False)
    images = tiny_data().x_train
    first = next(layer for layer in model.get_layer("base").layers if isinstance(layer, keras.layers.BatchNormalization))
    assert np.allclose(keras.ops.convert_to_numpy(first.moving_variance), 1.0)
    before = (first.trainable, first.momentum)
    assert recalibrate_batch_norm(model, images) == 52
    conv_output = keras.Model(model.get_layer("base").input, first.input)(model.get_layer("preprocess")(images))
    expected = keras.ops.convert_to_numpy(conv_output).var(axis=(0, 1, 2))
    assert np.allclose(keras.ops.convert_to_numpy(first.moving_variance), expected, rtol=1e-3, atol=1e-6)
    assert (first.trainable, first.momentum) == before  # restored


def test_recipe_runs_both_stages_and_records_them():
    profile = get_profile("smoke", epochs=2, fine_tune_epochs=1, random_init_learning_rate=1e-4)
    recipe = Recipe("mobilenet_v2_last_block", "mobilenet_v2", Stage("adam", 1e-3), Stage("adam", 1e-5, "block_16_expand"),
                    dense=None)
    trained = train_recipe(recipe, tiny_data(), profile=profile, seed=0)
    assert len(trained.history["loss"]) == 3 and trained.stage_starts == {2: "fine-tuning"}
    assert trained.settings["imagenet_weights"] is None and trained.settings["batch_norm_recalibrated"] == 52
    # A random base is fine-tuned at the profile's rate, not at the rate meant for ImageNet weights.
    assert trained.settings["fine_tuning"]["learning_rate"] == 1e-4
    assert trained.settings["fine_tuning"]["from_layer"] == "block_16_expand"


def test_feature_extraction_recipe_stops_after_one_stage():
    profile = get_profile("smoke", epochs=1)
    recipe = Recipe("vgg16_feature_extraction", "vgg16", Stage("adam", 1e-3), pooling="flatten")
    trained = train_recipe(recipe, tiny_data(), profile=profile, seed=0)
    assert len(trained.history["loss"]) == 1 and trained.stage_starts == {} and "fine_tuning" not in trained.settings
    assert not trained.model.get_layer("base").trainable


def test_recipe_table_names_each_stage():
    table = recipe_table([
        Recipe("a", "vgg16", Stage("adam", 1e-3), Stage("adam", 1e-5, 3), pooling="flatten"),
        Recipe("b", "resnet50", Stage("rmsprop", 5e-5), Stage("rmsprop", 1e-5, "everything"), truncated=True, dense=512, dropout=None),
    ])
    assert table.loc["a", "fine-tuning"] == "last 3 layers, adam 1e-05"
    assert table.loc["b", "head"] == "global average + dense 512"
    assert table.loc["b", "base"] == "resnet50, without its last block"
    assert table.loc["b", "fine-tuning"] == "everything, rmsprop 1e-05"
