"""Report 2's combined model (cytobook.models.bagging) and the training it uses (class weights, learning-rate decay)."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from cytobook.models.bagging import combined_classifier, combined_head, member_features, pooled_extractor
from cytobook.models.transfer import transfer_classifier
from cytobook.training import SplitArrays, fit


def test_combined_head_follows_the_reports_figure_3():
    head = combined_head((12, 20), units=16)
    assert [tuple(x.shape) for x in head.inputs] == [(None, 12), (None, 20)]
    assert [x.name for x in head.inputs] == ["model_a", "model_b"]
    layers = {layer.name: layer for layer in head.layers}
    assert isinstance(layers["model_a_norm"], keras.layers.BatchNormalization)
    assert isinstance(layers["model_b_norm"], keras.layers.BatchNormalization)
    assert layers["joined"].output.shape[-1] == 32
    assert [layers[f"dense_{i}"].units for i in (1, 2)] == [16, 16]
    assert [layers[f"dropout_{i}"].rate for i in (1, 2)] == [0.6, 0.6]
    probabilities = head.predict([np.ones((3, 12)), np.zeros((3, 20))], verbose=0)
    assert probabilities.shape == (3, 2) and np.allclose(probabilities.sum(axis=1), 1.0, atol=1e-6)
    with pytest.raises(ValueError, match="at least two"):
        combined_head((12,))


def test_combined_classifier_equals_the_head_on_cached_features():
    keras.utils.set_random_seed(0)
    members = [transfer_classifier("mobilenet_v2", 32, dense=None, dropout=None, weights=None, required=False)
               for _ in range(2)]
    images = np.random.default_rng(0).integers(0, 255, (5, 32, 32, 3)).astype("float32")
    features = member_features(members, images)
    assert [f.shape for f in features] == [(5, 1280), (5, 1280)]
    head = combined_head([f.shape[1] for f in features], units=8)
    whole = combined_classifier(members, head)
    np.testing.assert_allclose(whole.predict(images, verbose=0), head.predict(features, verbose=0), atol=1e-5)
    assert not any(w is v for w in whole.trainable_weights for v in members[0].get_layer("base").weights)
    assert pooled_extractor(members[0]).output.shape[-1] == 1280


def test_fit_decays_the_learning_rate_on_a_plateau():
    # The validation labels are the training labels reversed: the better the fit, the worse the validation
    # loss, so the rate drops tenfold after the first epoch without improvement.
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 4)).astype("float32")
    y = (x[:, 0] > 0).astype("float32")
    data = SplitArrays(x, y, x[:16], 1 - y[:16], x[:0], y[:0])
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1, activation="sigmoid")])
    model.compile(optimizer=keras.optimizers.RMSprop(0.1), loss="binary_crossentropy")
    history = fit(model, data, epochs=8, batch_size=16, reduce_lr_patience=1)
    rates = history["learning_rate"]
    assert rates[0] == pytest.approx(0.1, rel=1e-6) and min(rates) < 0.1
    np.testing.assert_allclose(np.log10(rates), np.round(np.log10(rates)), atol=1e-5)  # steps of x0.1
    assert list(rates) == sorted(rates, reverse=True)
