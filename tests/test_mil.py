"""Report 4's multi-instance models and their training mechanics."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from dataclasses import replace

import keras
import numpy as np
import pandas as pd
import pytest

from cytobook.lymphocytosis import (
    Bags,
    BagBatches,
    Standardizer,
    bag_indices,
    balanced_accuracy,
    clinical_logistic_fit_predict,
    cross_validate,
    MilTrainer,
    check_labelled,
    mil_fit_predict,
    stratified_folds,
)
from cytobook.models import mil
from cytobook.profiles import get_profile

SPEC = replace(get_profile("smoke").mil, epochs=30, bags_per_step=2, max_instances=6, stop_patience=30, learning_rate=1e-2)


def make_bags(n_patients: int = 24, features: int = 6, seed: int = 0, signal: float = 2.0) -> Bags:
    """Bags whose instance features and handmade features both carry the label."""
    rng = np.random.default_rng(seed)
    labels = np.array([1, 1, 0] * (n_patients // 3))
    instances, handmade = [], []
    for label in labels:
        n = int(rng.integers(2, 10))
        instances.append(rng.normal(signal * label, 1.0, (n, features)).astype(np.float32))
        handmade.append(rng.normal(signal * label, 1.0, (n, 3)))
    return Bags([f"P{i}" for i in range(len(labels))], instances, handmade,
                rng.uniform(40, 90, len(labels)), rng.uniform(3, 100, len(labels)), labels)


# --------------------------------------------------------------------------- #
# Bags and batches                                                            #
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize("n", [1, 3, 6, 7, 20])
def test_bag_indices_weighted_sum_is_the_mean_of_the_images_used(n):
    values = np.arange(n, dtype=float) ** 2
    chosen, weights = bag_indices(n, 6, np.random.default_rng(0))
    assert len(chosen) == len(weights) == 6
    assert weights.sum() == pytest.approx(1.0)
    assert (weights * values[chosen]).sum() == pytest.approx(values[np.unique(chosen)].mean())
    if n >= 6:
        assert len(np.unique(chosen)) == 6  # subsampled without replacement
    else:
        assert set(chosen) == set(range(n))  # every image used


def test_bag_indices_without_rng_is_deterministic_and_spans_the_bag():
    first, _ = bag_indices(50, 5, None)
    second, _ = bag_indices(50, 5, None)
    assert np.array_equal(first, second) and first[0] == 0 and first[-1] == 49


def test_bag_indices_rejects_an_empty_bag():
    with pytest.raises(ValueError, match="at least one image"):
        bag_indices(0, 4, None)


def test_bags_refuse_a_patient_without_images():
    with pytest.raises(ValueError, match="P1 has no images"):
        Bags(["P0", "P1"], [np.zeros((2, 3)), np.zeros((0, 3))], [np.zeros((2, 1)), np.zeros((0, 1))],
             np.ones(2), np.ones(2), np.array([0, 1]))


def test_bags_split_instances_round_trip():
    bags = make_bags(6)
    flat = np.concatenate(bags.instances)
    assert all(np.array_equal(a, b) for a, b in zip(bags.split_instances(flat), bags.instances))


def test_standardizer_imputes_missing_handmade_features_with_the_training_mean():
    bags = make_bags(6)
    bags.handmade[0][0, 1] = np.nan
    scaler = Standardizer.fit(bags)
    scaled = scaler.handmade(bags.handmade[0])
    assert np.isfinite(scaled).all() and scaled[0, 1] == 0.0
    clinical = scaler.clinical(bags)
    assert clinical.shape == (6, 2)
    np.testing.assert_allclose(clinical.mean(axis=0), 0.0, atol=1e-6)


def test_batches_give_padded_bags_with_their_targets_and_class_weights():
    bags = make_bags(6)
    batches = BagBatches(bags, Standardizer.fit(bags), bag_size=12, batch_size=4, class_weights=(2.0, 0.5))
    assert len(batches) == 2
    inputs, targets, weights = batches[0]
    assert inputs["instances"].shape == (4, 12, 6) and inputs["handmade"].shape == (4, 12, 3)
    np.testing.assert_allclose(inputs["weights"].sum(axis=1), 1.0, rtol=1e-6)
    sizes = [len(bag) for bag in bags.instances[:4]]
    assert [int((row > 0).sum()) for row in inputs["weights"]] == sizes  # padding slots weigh nothing
    np.testing.assert_array_equal(targets["p"][:, 0], bags.labels[:4])
    np.testing.assert_array_equal(weights["p"], np.where(bags.labels[:4] == 1, 0.5, 2.0))
    assert batches[1][0]["instances"].shape[0] == 2  # the last batch holds the rest
    assert len(BagBatches(bags, Standardizer.fit(bags), 12, 4)[0]) == 1  # prediction: inputs only


def test_views_are_drawn_at_random_in_training_and_view_0_otherwise():
    bags = make_bags(3)
    viewed = bags.with_instances([np.stack([i, i + 100.0], axis=1) for i in bags.instances], views=True)
    assert viewed.instance_shape(8) == (8, 6)
    fixed = BagBatches(viewed, Standardizer.fit(bags), 8, 3)[0][0]["instances"]
    drawn = BagBatches(viewed, Standardizer.fit(bags), 8, 3, shuffle=True, class_weights=(1.0, 1.0))[0][0]["instances"]
    assert fixed.max() < 50 and drawn.max() > 50


def test_unlabelled_patients_are_refused_for_training():
    bags = replace(make_bags(6), labels=np.array([1, 0, -1, 1, 0, 1]))
    with pytest.raises(ValueError, match="P2.*label -1"):
        check_labelled(bags)
    with pytest.raises(ValueError, match="P2"):
        BagBatches(bags, Standardizer.fit(bags), 4, 2, class_weights=(1.0, 1.0))


# --------------------------------------------------------------------------- #
# Models and losses                                                           #
# --------------------------------------------------------------------------- #


def test_mixture_output_is_the_gated_mix_of_the_two_experts():
    model = mil.mixture_of_experts((4, 6), 3, multitask=True, intermediate=5)
    viewer = mil.analysis_model(model)
    bags = make_bags(3)
    (inputs,) = BagBatches(bags, Standardizer.fit(bags), 4, 1)[0]
    out = {key: float(np.asarray(value).reshape(-1)[0]) for key, value in viewer.predict_on_batch(inputs).items()}
    assert set(out) == {"p", "count", "pi", "p_image", "p_scalar"}
    assert out["p"] == pytest.approx(out["pi"] * out["p_image"] + (1 - out["pi"]) * out["p_scalar"], abs=1e-6)


def test_bag_mean_layer_is_the_weighted_mean():
    values = np.arange(12, dtype="float32").reshape(1, 4, 3)
    weights = np.array([[0.5, 0.5, 0.0, 0.0]], dtype="float32")
    np.testing.assert_allclose(np.asarray(mil.BagMean()(values, weights)), [[1.5, 2.5, 3.5]])


@pytest.mark.parametrize("experts, outputs", [("image", {"p"}), ("scalar", {"p"})])
def test_single_experts_have_no_gate(experts, outputs):
    model = mil.mixture_of_experts((4, 6), 3, experts=experts)
    assert set(model.output) == outputs
    assert "pi" not in mil.analysis_model(model).output


def test_scalar_expert_cannot_be_multitask():
    with pytest.raises(ValueError, match="cannot be multitask"):
        mil.mixture_of_experts((4, 6), 3, experts="scalar", multitask=True)


def test_balanced_class_weights():
    assert mil.balanced_class_weights([1, 1, 1, 0]) == pytest.approx((2.0, 2 / 3))
    with pytest.raises(ValueError, match="both classes"):
        mil.balanced_class_weights([1, 1])


def test_lora_leaves_only_the_adapters_trainable():
    encoder = mil.vit_small(32, patch=16, dim=16, depth=2, heads=2)
    trainable = mil.enable_lora(encoder, rank=2)
    names = {w.name for w in encoder.trainable_weights}
    assert names == {"lora_kernel_a", "lora_kernel_b"}
    paths = {w.path.split("/")[-2] for w in encoder.trainable_weights}
    assert paths == {"query", "value"}
    # Keras factors an attention projection's (dim, heads, key_dim) kernel as A (dim, heads, rank) and B (rank, key_dim).
    assert trainable == 2 * 2 * (16 * 2 * 2 + 2 * 8)  # 2 layers x (query, value) x (A + B)


def test_encoders_map_images_to_vectors():
    images = np.zeros((2, 32, 32, 3), dtype="float32")
    assert mil.resnet18_like(32, width=4).predict(images, verbose=0).shape == (2, 32)
    assert mil.vit_small(32, patch=16, dim=16, depth=1, heads=2).predict(images, verbose=0).shape == (2, 16)
    with pytest.raises(ValueError, match="multiple of the patch"):
        mil.vit_small(30)


def test_encode_instances_is_the_encoder_on_each_image_and_round_trips(tmp_path):
    encoder = mil.resnet18_like(32, width=4)
    bags = np.random.default_rng(0).integers(0, 255, (2, 3, 32, 32, 3)).astype("float32")
    layer = mil.EncodeInstances(encoder)
    encoded = keras.ops.convert_to_numpy(layer(bags))
    each = encoder.predict(bags.reshape(6, 32, 32, 3), verbose=0).reshape(2, 3, -1)
    np.testing.assert_allclose(encoded, each, rtol=1e-4, atol=1e-5)
    model = mil.mixture_of_experts((3, 32, 32, 3), 2, encoder=encoder)
    model.save(tmp_path / "mixture.keras")
    loaded = keras.models.load_model(tmp_path / "mixture.keras")
    inputs = {"instances": bags, "weights": np.full((2, 3), 1 / 3, "float32"),
              "handmade": np.zeros((2, 3, 2), "float32"), "clinical": np.zeros((2, 2), "float32")}
    np.testing.assert_allclose(loaded.predict(inputs, verbose=0)["p"], model.predict(inputs, verbose=0)["p"], rtol=1e-5)


# --------------------------------------------------------------------------- #
# Training, cross-validation, baselines                                       #
# --------------------------------------------------------------------------- #


def test_mixture_learns_an_easy_problem_and_predicts_counts_back_in_units():
    bags = make_bags(30)
    train, val, test = bags.subset(range(18)), bags.subset(range(18, 24)), bags.subset(range(24, 30))
    trained = MilTrainer(lambda: mil.mixture_of_experts((6, 6), 3, multitask=True, intermediate=4), SPEC).fit(train, val)
    table = trained.predict(test)
    assert balanced_accuracy(test.labels, table["p"].to_numpy()) >= 0.8
    assert (table["count"] > 0).all() and {"pi", "p_image", "p_scalar"} <= set(table)
    assert trained.history["loss"][-1] < trained.history["loss"][0]
    assert "count_loss" in trained.history


def test_trainer_reuses_its_compiled_model_and_starts_every_fit_afresh():
    bags = make_bags(30)
    trainer = MilTrainer(lambda: mil.mixture_of_experts((6, 6), 3, intermediate=4), replace(SPEC, epochs=3))
    trainer.fit(bags.subset(range(18)), bags.subset(range(18, 24)))
    train_function = trainer.model.train_function
    trainer.model.optimizer.learning_rate = 1e-9  # as ReduceLROnPlateau leaves it
    again = trainer.fit(bags.subset(range(18)), bags.subset(range(18, 24)))
    assert trainer.model.train_function is train_function  # not compiled again
    assert int(trainer.model.optimizer.iterations) == 3 * 9  # counted from zero again: 18 bags in batches of 2
    assert again.history["loss"][-1] < again.history["loss"][0]  # learning at the spec's rate again
    trainer._reset()
    assert all(np.array_equal(now, initial) for now, initial in zip(trainer.model.get_weights(), trainer.initial_weights))


def test_cross_validation_never_trains_on_the_held_out_fold():
    bags = make_bags(15)
    seen = []

    def spy(train, val, test, seed):
        seen.append((set(train.patient_ids) | set(val.patient_ids), set(test.patient_ids)))
        return pd.DataFrame({"p": np.full(len(test), 0.7)}, index=test.patient_ids)

    result = cross_validate("constant", spy, bags, stratified_folds(bags.labels, 3))
    assert all(not (fit & held) for fit, held in seen)
    assert set().union(*(held for _, held in seen)) == set(bags.patient_ids)
    assert result.fold_scores == [0.5, 0.5, 0.5] and list(result.predictions.index) == bags.patient_ids


def test_clinical_baseline_and_scalar_expert_run_on_the_same_folds():
    bags = make_bags(15)
    folds = stratified_folds(bags.labels, 3)
    baseline = cross_validate("clinical", clinical_logistic_fit_predict, bags, folds)
    trainer = MilTrainer(lambda: mil.mixture_of_experts((6, 6), 3, experts="scalar"), replace(SPEC, epochs=2))
    scalar = cross_validate("scalar", mil_fit_predict(trainer), bags, folds)
    assert len(baseline.fold_scores) == len(scalar.fold_scores) == 3
    assert (baseline.predictions["fold"] == scalar.predictions["fold"]).all()


JAX_SCRIPT = textwrap.dedent(
    """
    import json
    from dataclasses import replace
    import numpy as np
    import keras
    from cytobook.lymphocytosis import Bags, MilTrainer
    from cytobook.models import mil
    from cytobook.profiles import get_profile

    rng = np.random.default_rng(0)
    labels = np.array([1, 0] * 6)
    images = [rng.integers(0, 255, (int(rng.integers(2, 5)), 32, 32, 3), dtype=np.uint8) for _ in labels]
    bags = Bags([f"P{i}" for i in range(12)], images, [rng.normal(size=(len(b), 3)) for b in images],
                rng.uniform(40, 90, 12), rng.uniform(3, 100, 12), labels)
    spec = replace(get_profile("smoke").mil, epochs=2, max_instances=4, bags_per_step=2)
    build = lambda: mil.mixture_of_experts((4, 32, 32, 3), 3, encoder=mil.resnet18_like(32, width=4), multitask=True)
    trained = MilTrainer(build, spec).fit(bags.subset(range(8)), bags.subset(range(8, 12)))
    table = trained.predict(bags.subset(range(8, 12)))
    print(json.dumps({"backend": keras.backend.backend(), "loss": trained.history["loss"], "p": table["p"].tolist()}))
    """
)


@pytest.mark.slow
def test_mixture_with_a_trainable_encoder_trains_under_jax():
    pytest.importorskip("jax")
    env = {**os.environ, "KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu"}
    done = subprocess.run([sys.executable, "-c", JAX_SCRIPT], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["backend"] == "jax"
    assert all(np.isfinite(result["loss"])) and all(0 <= p <= 1 for p in result["p"])


# --------------------------------------------------------------------------- #
# Backbones and result helpers of the lymphocytosis chapter                   #
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize("arch, maps", [("convnext_tiny", (2, 2, 384)), ("mobilenet_v2", (2, 2, 96))])
def test_split_before_the_last_stage_is_exact_and_shares_weights(arch, maps):
    from cytobook.weights import build_backbone

    base = build_backbone(arch, (32, 32, 3), weights=None, pooling="avg")
    front, last_stage = mil.split_last_stage(base, arch)
    images = np.random.default_rng(0).integers(0, 255, (2, 32, 32, 3)).astype("float32")
    cut = front.predict(images, verbose=0)
    assert cut.shape[1:] == maps  # the last stage works at 1/32 of the input
    np.testing.assert_allclose(last_stage.predict(cut, verbose=0), base.predict(images, verbose=0), rtol=1e-4, atol=1e-5)
    assert {id(w) for w in last_stage.weights} <= {id(w) for w in base.weights}
    assert not any(layer.trainable for layer in last_stage.layers if isinstance(layer, keras.layers.BatchNormalization))
    with pytest.raises(ValueError, match="no last stage"):
        mil.split_last_stage(mil.resnet18_like(32, width=4), "resnet18")


def test_backbone_features_cache_four_flips_and_read_them_back(tmp_path, monkeypatch):
    from cytobook.lymphocytosis import backbone_features, features_cache_name

    monkeypatch.setenv("CYTOBOOK_CACHE", str(tmp_path))
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 255, (n, 8, 8, 3)).astype(np.uint8) for n in (2, 3)]
    bags = Bags(["P0", "P1"], images, [np.zeros((n, 3)) for n in (2, 3)], np.array([50.0, 60.0]), np.array([5.0, 9.0]), np.array([1, 0]))
    inputs = keras.Input((8, 8, 3))
    encoder = keras.Model(inputs, keras.layers.Flatten()(inputs), name="identity")
    name = features_cache_name(encoder, None, 0, bags)
    features = backbone_features(encoder, bags, cache=name)
    assert features.views and features.instances[1].shape == (3, 4, 8 * 8 * 3)
    first = images[0][0].astype(np.float32)
    for view, flipped in enumerate([first, first[:, ::-1], first[::-1], first[::-1, ::-1]]):
        np.testing.assert_array_equal(features.instances[0][0, view], flipped.reshape(-1))
    assert (tmp_path / "features" / f"{name}.npy").is_file()
    again = backbone_features(None, bags, cache=name)  # read from the cache: no encoder needed
    np.testing.assert_array_equal(again.instances[1], features.instances[1])
    assert features_cache_name(encoder, None, 1, bags) != name  # random weights of another seed


def test_gain_table_counts_the_folds_won():
    from cytobook.lymphocytosis import CvResult, gain_table

    empty = pd.DataFrame()
    results = {"mixture": CvResult("mixture", empty, [0.9, 0.8, 0.7]), "baseline": CvResult("baseline", empty, [0.8, 0.8, 0.75])}
    row = gain_table(results, "mixture", ["baseline"]).loc[("mixture", "baseline")]
    assert row["gain in balanced accuracy"] == pytest.approx(0.0167, abs=1e-4)
    assert (row["folds won"], row["tied"], row["lost"]) == (1, 1, 1)


def test_holdout_keeps_one_patient_of_each_class_even_when_the_fraction_rounds_to_less():
    from cytobook.lymphocytosis import stratified_holdout

    labels = np.array([1, 1, 1, 0, 0])
    keep, held = stratified_holdout(labels, 0.2, seed=0)
    assert sorted(set(labels[held])) == [0, 1] and len(keep) + len(held) == 5 and not set(keep) & set(held)


def test_without_images_keeps_patients_and_handmade_features():
    from cytobook.lymphocytosis import without_images

    bags = make_bags(6)
    bare = without_images(bags)
    assert [len(i) for i in bare.instances] == [len(i) for i in bags.instances]
    assert all(i.shape[1:] == (1,) and not i.any() for i in bare.instances)
    assert bare.handmade is bags.handmade


def test_cv_table_count_nmse_and_gate_figure():
    from cytobook.lymphocytosis import CvResult, count_nmse, cv_table, gate_figure

    predictions = pd.DataFrame({
        "p": [0.9, 0.2, 0.7, 0.4], "pi": [0.8, 0.1, 0.5, 0.3], "p_image": [0.9, 0.4, 0.6, 0.5],
        "p_scalar": [0.6, 0.2, 0.8, 0.4], "label": [1, 0, 1, 1], "lymph_count": [50.0, 5.0, 20.0, 10.0],
    })
    result = CvResult("a", predictions, [0.5, 1.0])
    table = cv_table({"a": result})
    assert table.loc["a", "balanced accuracy"] == 0.75 and table.loc["a", "fold 1"] == 1.0
    assert cv_table({"a": result.summary()}).equals(table)  # a summary saved by an earlier notebook reads the same
    exact = predictions.assign(count=predictions["lymph_count"])
    assert count_nmse(exact) == 0.0
    constant = predictions.assign(count=np.exp(np.log(predictions["lymph_count"]).mean()))
    assert count_nmse(constant) == pytest.approx(1.0)
    with pytest.raises(KeyError, match="not multitask"):
        count_nmse(predictions)
    figure = gate_figure(predictions, "gate")
    assert len(figure.axes) == 2 and figure.axes[0].get_xscale() == "log"


def test_trained_encoders_get_their_own_sizes_and_every_chapter_model_builds():
    from cytobook.lymphocytosis import CHAPTER_MODELS, chapter_trainer, prepare_instances, spec_for

    spec = replace(get_profile("smoke").mil, encoder_image_size=16, encoder_instances=3, encoder_epochs=2)
    resnet, tuned = CHAPTER_MODELS["mixture, ResNet-18, MultiTask"], CHAPTER_MODELS["mixture, backbone last stage tuned, MultiTask"]
    assert (spec_for(resnet, spec).image_size, spec_for(resnet, spec).max_instances, spec_for(resnet, spec).epochs) == (16, 3, 2)
    assert spec_for(CHAPTER_MODELS["scalar expert"], spec) is spec
    assert (spec_for(tuned, spec).image_size, spec_for(tuned, spec).max_instances) == (spec.image_size, 3)
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 255, (n, 32, 32, 3)).astype(np.uint8) for n in (2, 4)]
    bags = Bags(["P0", "P1"], images, [np.zeros((n, 52)) for n in (2, 4)], np.array([50.0, 60.0]), np.array([5.0, 9.0]),
                np.array([1, 0]))
    resized, _, weights = prepare_instances(resnet, bags, spec, seed=0, required=False)
    assert resized.instances[1].shape == (4, 16, 16, 3) and weights == "—"
    trainer = chapter_trainer(resnet, spec, resized, intermediate=4, count_weight=0.5, seed=0)
    assert trainer.model.input["instances"].shape[1:] == (3, 16, 16, 3) and "count" in trainer.model.output
    scalar, _, _ = prepare_instances(CHAPTER_MODELS["scalar expert"], bags, spec, seed=0, required=False)
    assert set(chapter_trainer(CHAPTER_MODELS["scalar expert"], spec, scalar, intermediate=4, count_weight=0.5,
                               seed=0).model.output) == {"p"}


def test_frozen_backbone_reads_imagenet_weights_placed_offline(tmp_path, monkeypatch, keras_models):
    from cytobook.lymphocytosis import CHAPTER_MODELS, prepare_instances

    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    monkeypatch.setenv("CYTOBOOK_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("CYTOBOOK_OFFLINE", "1")
    monkeypatch.setenv("CYTOBOOK_WEIGHTS_DIR", str(keras_models))
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 255, (n, 32, 32, 3)).astype(np.uint8) for n in (2, 3)]
    bags = Bags(["P0", "P1"], images, [np.zeros((n, 52)) for n in (2, 3)], np.array([50.0, 60.0]), np.array([5.0, 9.0]),
                np.array([1, 0]))
    spec = get_profile("smoke").mil
    assert spec.backbone == "mobilenet_v2"
    features, _, weights = prepare_instances(CHAPTER_MODELS["image expert (frozen backbone)"], bags, spec, seed=0, required=True)
    assert weights == "ImageNet" and features.views and features.instances[1].shape == (3, 4, 1280)
