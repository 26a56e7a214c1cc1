"""Tests for cytobook.models.hep2 and the multi-class/multi-label parts of the transfer API: small VGG16 cuts
from random weights on drawn cells whose classes differ by brightness and texture."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from cytobook.models import hep2 as cell_models
from cytobook.models.transfer import transfer_classifier
from cytobook.profiles import Hep2ModelSpec
from cytobook.training import SplitArrays, compile_classifier, weighted_binary_crossentropy

SPEC = Hep2ModelSpec(image_size=32, cut_at="block1_pool", dense=(64, 64), epochs=30, patience=5, batch_size=16,
                     learning_rate=1e-3, stand_in_epochs=3, stand_in_learning_rate=1e-3)


def drawn_cells(n_per_class: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Three classes of 32 px cells: a dim disc, a bright disc, a disc of bright dots."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:32, :32]
    disc = (yy - 16) ** 2 + (xx - 16) ** 2 < 100
    images, labels = [], []
    for label in range(3):
        for _ in range(n_per_class):
            plane = rng.normal(8, 3, (32, 32))
            if label == 2:
                dots = disc & (rng.random((32, 32)) < 0.15)
                plane[disc] += 60
                plane[dots] += 150
            else:
                plane[disc] += (70, 180)[label] + rng.normal(0, 10)
            images.append(np.repeat(np.clip(plane, 0, 255).astype(np.uint8)[..., None], 3, axis=-1))
            labels.append(label)
    return np.stack(images), np.array(labels)


def test_transfer_classifier_has_the_asked_outputs_and_the_binary_default_is_unchanged():
    binary = transfer_classifier("vgg16", 32, truncated="block1_pool", weights=None, required=False)
    assert binary.output.shape[-1] == 1 and binary.get_layer("head").layers[-1].name == "p_all"
    multi = transfer_classifier("vgg16", 32, truncated="block1_pool", pooling="flatten", dense=(8, 8), weights=None,
                                required=False, outputs=5, activation="softmax")
    head = multi.get_layer("head")
    assert multi.output.shape[-1] == 5 and [type(layer).__name__ for layer in head.layers][-4:] == \
        ["Dense", "Dense", "Dropout", "Dense"]
    assert multi.name == "vgg16_to_block1_pool"


def test_compile_classifier_picks_the_loss_from_the_output():
    inputs = keras.Input((4,))
    softmax = compile_classifier(keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(inputs)))
    sigmoid = compile_classifier(keras.Model(inputs, keras.layers.Dense(3, activation="sigmoid")(inputs)))
    assert softmax.loss == "sparse_categorical_crossentropy" and sigmoid.loss == "binary_crossentropy"
    with pytest.raises(ValueError, match="softmax or sigmoid"):
        compile_classifier(keras.Model(inputs, keras.layers.Dense(3, activation="relu")(inputs)))


def test_weighted_binary_crossentropy_weighs_each_label_s_values():
    y_true = np.array([[1.0, 0.0]])
    y_pred = np.array([[0.8, 0.3]])
    plain = -(np.log(0.8) + np.log(0.7)) / 2
    assert float(weighted_binary_crossentropy([1, 1], [1, 1])(y_true, y_pred)[0]) == pytest.approx(plain, rel=1e-5)
    weighted = -(3 * np.log(0.8) + 0.5 * np.log(0.7)) / 2
    assert float(weighted_binary_crossentropy([3, 2], [4, 0.5])(y_true, y_pred)[0]) == pytest.approx(weighted, rel=1e-5)


def test_label_weights_balance_each_label_and_leave_constant_labels_alone():
    y = np.array([[1, 0, 1], [0, 0, 1], [0, 0, 1], [0, 0, 1]])
    positive, negative = cell_models.label_weights(y)
    np.testing.assert_allclose(positive, [2.0, 1.0, 1.0])
    np.testing.assert_allclose(negative, [4 / 6, 1.0, 1.0])


def test_stand_in_then_heads_learn_drawn_cells_and_the_base_reloads(tmp_path):
    x, y = drawn_cells(40)
    test_x, test_y = drawn_cells(15, seed=1)
    extractor = cell_models.cell_base(SPEC, required=False)
    settings = cell_models.train_stand_in(extractor, x, y, SPEC, seed=0)
    assert settings["epochs"] == 3 and len(settings["history"]["loss"]) == 3
    assert not extractor.get_layer("base").trainable
    model = cell_models.classify_cells(extractor, x, y, test_x, SPEC, outputs=3, seed=0)
    assert model.p_test.shape == (45, 3)
    assert np.mean(model.p_test.argmax(1) == test_y) > 0.8
    path = cell_models.save_base(extractor, tmp_path / "base.weights.h5")
    reloaded = cell_models.load_base(SPEC, path)
    np.testing.assert_allclose(cell_models.cell_features(reloaded, test_x), cell_models.cell_features(extractor, test_x),
                               rtol=1e-5, atol=1e-5)
    # a multi-label head: label 0 "bright" (classes 1, 2), label 1 "dots" (class 2)
    labels = np.stack([y >= 1, y == 2], axis=1).astype(int)
    multi = cell_models.classify_cells(extractor, x, labels, test_x, SPEC, outputs=2, seed=0, multilabel=True,
                                       weighted=True)
    truth = np.stack([test_y >= 1, test_y == 2], axis=1)
    assert multi.p_test.shape == (45, 2) and np.mean((multi.p_test > 0.5) == truth) > 0.8


def test_train_head_refuses_weights_for_a_multi_class_head():
    features = SplitArrays(*(np.zeros((4, 2, 2, 3)), np.zeros(4)) * 3)
    with pytest.raises(ValueError, match="multi-label"):
        cell_models.train_head(features, SPEC, outputs=3, weighted=True, seed=0)


def test_a_profile_without_stand_in_epochs_requires_imagenet():
    extractor = cell_models.cell_base(SPEC, required=False, weights=None)
    x, y = drawn_cells(2)
    with pytest.raises(ValueError, match="requires ImageNet"):
        cell_models.train_stand_in(extractor, x, y, Hep2ModelSpec(image_size=32, stand_in_epochs=0), seed=0)
