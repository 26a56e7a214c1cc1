"""Staged transfer recipes: stages run as asked, random bases are replaced by a stand-in trained on the images, settings are recorded."""

from __future__ import annotations

import numpy as np
import pytest

from cytobook.notebook import _import_keras_quietly

keras = _import_keras_quietly()

from cytobook.models.transfer import (  # noqa: E402
    Recipe, Stage, recalibrate_batch_norm, recipe_table, stand_in_base, train_recipe, transfer_classifier,
)
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
    profile = get_profile("smoke", epochs=2, fine_tune_epochs=1)
    recipe = Recipe("mobilenet_v2_last_block", "mobilenet_v2", Stage("adam", 1e-3), Stage("adam", 1e-5, "block_16_expand"),
                    dense=None)
    trained = train_recipe(recipe, tiny_data(), profile=profile, seed=0)
    assert len(trained.history["loss"]) == 3 and trained.stage_starts == {2: "fine-tuning"}
    assert trained.settings["imagenet_weights"] is None and trained.settings["stand_in_base"]["epochs"] == 1
    # The stand-in replaces the ImageNet weights, not the recipe: fine-tuning keeps the recipe's rate.
    assert trained.settings["fine_tuning"]["learning_rate"] == 1e-5
    assert trained.settings["fine_tuning"]["from_layer"] == "block_16_expand"


def separable_data(n: int = 32, size: int = 32) -> SplitArrays:
    """Bright cells against dark cells: any base that learns at all separates them."""
    rng = np.random.default_rng(1)
    y = (np.arange(n) % 2).astype("float32")
    x = (rng.random((n, size, size, 3)) * 60 + 40 + 120 * y[:, None, None, None]).astype("uint8")
    return SplitArrays(x, y, x[:8], y[:8], x[:8], y[:8])


def test_stand_in_base_learns_the_training_images_and_is_shared_by_recipes():
    data = separable_data()
    profile = get_profile("smoke", epochs=1, stand_in_epochs=1, stand_in_epochs_by_arch={"mobilenet_v2": 8})
    stand_in = stand_in_base("mobilenet_v2", data, profile=profile, seed=0)
    assert stand_in.stand_in_settings["epochs"] == 8  # the architecture's own number, not the profile's default
    assert stand_in.stand_in_settings["final_training_accuracy"] >= 0.9
    assert stand_in_base("mobilenet_v2", data, profile=profile, seed=0) is stand_in  # trained once per split
    # A truncated feature-extraction model starts from (and keeps) the stand-in's weights, layer by layer.
    trained = train_recipe(Recipe("fe", "mobilenet_v2", Stage("adam", 1e-3), truncated=True, dense=None), data,
                           profile=profile, seed=0)
    layer = trained.model.get_layer("base").get_layer("block_5_project")
    assert np.array_equal(layer.get_weights()[0], stand_in.get_layer("base").get_layer("block_5_project").get_weights()[0])


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


def test_recipes_sharing_feature_extraction_train_it_once(monkeypatch):
    import cytobook.models.transfer as transfer

    calls = []
    original = transfer.fit_head_on_features
    monkeypatch.setattr(transfer, "fit_head_on_features", lambda *a, **k: calls.append(1) or original(*a, **k))
    profile = get_profile("smoke", epochs=2, fine_tune_epochs=1)
    data = tiny_data(n=20)
    extract = Stage("adam", 1e-3)
    alone = train_recipe(Recipe("fe", "mobilenet_v2", extract, dense=None), data, profile=profile, seed=3)
    tuned = train_recipe(Recipe("ft", "mobilenet_v2", extract, Stage("adam", 1e-5, "block_16_expand"), dense=None), data,
                         profile=profile, seed=3)
    other_head = train_recipe(Recipe("fe64", "mobilenet_v2", extract, dense=64), data, profile=profile, seed=3)
    assert len(calls) == 2  # "fe" and "fe64"; "ft" reuses the stage of "fe"
    assert tuned.history["loss"][:2] == alone.history["loss"] and len(tuned.history["loss"]) == 3
    assert other_head.history["loss"] != alone.history["loss"]


def test_one_stand_in_serves_recipes_on_other_data():
    pool, data = separable_data(), tiny_data(size=32)
    profile = get_profile("smoke", epochs=1, stand_in_epochs=1)
    trained = train_recipe(Recipe("fe", "mobilenet_v2", Stage("adam", 1e-3), dense=None), data, profile=profile, seed=0,
                           stand_in_data=pool)
    assert trained.settings["stand_in_base"]["training_images"] == len(pool.x_train)
    stand_in = stand_in_base("mobilenet_v2", pool, profile=profile, seed=0)  # the one trained above, not a new one
    layer = trained.model.get_layer("base").get_layer("block_5_project")
    assert np.array_equal(layer.get_weights()[0], stand_in.get_layer("base").get_layer("block_5_project").get_weights()[0])
