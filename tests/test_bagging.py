"""Report 2's combined model (cytobook.models.bagging) and the training it uses (class weights, learning-rate decay)."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from cytobook.models.bagging import MemberTrainer, class_weight_trade_off, combined_head, train_combined
from cytobook.profiles import BaggingSpec
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


def _tiny_data(rng: np.random.Generator, n: int = 24) -> SplitArrays:
    y = np.arange(n) % 2
    x = (rng.integers(0, 60, (n, 32, 32, 3)) + 150 * y[:, None, None, None]).astype("uint8")  # ALL brighter
    return SplitArrays(x, y.astype("float32"), x[:8], y[:8].astype("float32"), x[8:16], y[8:16].astype("float32"))


def test_member_trainer_starts_every_member_from_the_same_state():
    rng = np.random.default_rng(0)
    data = _tiny_data(rng)
    keras.utils.set_random_seed(0)
    model = transfer_classifier("mobilenet_v2", 32, dense=None, dropout=None, weights=None, required=False)
    model.get_layer("base").trainable = True
    spec = BaggingSpec(image_size=32, epochs=3, patience=None, reduce_lr_patience=1, batch_size=8, learning_rate=0.01)
    trainer = MemberTrainer(model, spec, seed=0)
    start = [w.copy() for w in trainer.initial_weights]
    first, first_features = trainer.train("model_a", data, data.x_train[:5])
    assert {key: f.shape for key, f in first_features.items()} == {"train": (5, 1280), "val": (8, 1280), "test": (8, 1280)}
    assert first.settings["epochs_run"] == 3 and first.p_test.shape == (8,)
    # Trained: the weights moved; the features are the member's own.
    assert any(not np.allclose(w, v) for w, v in zip(trainer.model.get_weights(), start))
    pooled, p = trainer.extractor.predict(data.x_test, verbose=0)
    np.testing.assert_allclose(first_features["test"], pooled, atol=1e-5)
    np.testing.assert_allclose(first.p_test, trainer.model.predict(data.x_test, verbose=0).ravel(), atol=1e-5)
    steps = int(trainer.model.optimizer.iterations)
    second, _ = trainer.train("model_b", data, data.x_train[:0])
    # Reset before the second member: the same number of steps, and the rate back at the spec's.
    assert int(trainer.model.optimizer.iterations) == steps
    assert second.history["learning_rate"][0] == pytest.approx(0.01)
    assert second.name == "model_b" and len(second.history["loss"]) == 3


def test_combined_model_trains_on_member_features_with_class_weights():
    rng = np.random.default_rng(1)
    n = 120
    y = (np.arange(n) % 3 == 0).astype("float32")  # one in three is class 1
    features = [rng.normal(size=(n, 6)) + y[:, None] * 0.8, rng.normal(size=(n, 4)) + y[:, None] * 0.8]
    data = SplitArrays([f[:80] for f in features], y[:80], [f[80:100] for f in features], y[80:100],
                       [f[100:] for f in features], y[100:])
    spec = BaggingSpec(combined_epochs=5, patience=None, reduce_lr_patience=None, batch_size=16)
    light = train_combined(data, spec, class_weight={0: 1.0, 1: 1.0}, seed=0)
    heavy = train_combined(data, spec, class_weight={0: 1.0, 1: 5.0}, seed=0)
    assert light.p_test.shape == (20,) and light.settings["class_weight"] == {0: 1.0, 1: 1.0}
    assert (heavy.p_test > 0.5).mean() > (light.p_test > 0.5).mean()  # a heavier class 1 predicts it more often


def _reversed_validation() -> tuple[keras.Model, SplitArrays]:
    """A logistic model and data whose validation labels are the training labels reversed:
    the better the fit, the worse every validation score."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 4)).astype("float32")
    y = (x[:, 0] > 0).astype("float32")
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1, activation="sigmoid")])
    model.compile(optimizer=keras.optimizers.RMSprop(0.1), loss="binary_crossentropy", metrics=["accuracy"])
    return model, SplitArrays(x, y, x[:16], 1 - y[:16], x[:0], y[:0])


def test_fit_decays_the_learning_rate_on_a_plateau():
    # The rate drops tenfold after the first epoch without a lower validation loss.
    model, data = _reversed_validation()
    history = fit(model, data, epochs=8, batch_size=16, reduce_lr_patience=1)
    rates = history["learning_rate"]
    assert rates[0] == pytest.approx(0.1, rel=1e-6) and min(rates) < 0.1
    np.testing.assert_allclose(np.log10(rates), np.round(np.log10(rates)), atol=1e-5)  # steps of x0.1
    assert list(rates) == sorted(rates, reverse=True)


def test_fit_watches_the_validation_accuracy_when_asked():
    # The validation accuracy falls as the fit improves, so watching it (higher is better) stops early and
    # keeps the weights of its best epoch.
    model, data = _reversed_validation()
    history = fit(model, data, epochs=30, batch_size=16, patience=2, monitor="val_accuracy", verbose=0)
    assert len(history["loss"]) < 30
    kept = float(np.mean((model.predict(data.x_val, verbose=0).ravel() > 0.5) == data.y_val))
    assert kept == pytest.approx(max(history["val_accuracy"]))
    with pytest.raises(ValueError, match="monitor must be"):
        fit(model, data, epochs=1, batch_size=16, monitor="val_auc")


def test_class_weight_trade_off_averages_seeds_per_weight():
    rng = np.random.default_rng(2)
    n = 120
    y = (np.arange(n) % 3 == 0).astype("float32")
    features = [rng.normal(size=(n, 6)) + y[:, None] * 0.6, rng.normal(size=(n, 4)) + y[:, None] * 0.6]
    data = SplitArrays([f[:80] for f in features], y[:80], [f[80:100] for f in features], y[80:100],
                       [f[100:] for f in features], y[100:])
    spec = BaggingSpec(combined_epochs=4, patience=None, reduce_lr_patience=None, batch_size=16)
    table = class_weight_trade_off(data, spec, [1.0, 8.0], seeds=[0, 1])
    assert list(table.index) == [1.0, 8.0]
    assert "recall ALL sd" in table.columns and table["epochs mean"].eq(4).all()
    # A much heavier ALL weight buys ALL recall with HEM recall.
    assert table.loc[8.0, "recall ALL mean"] > table.loc[1.0, "recall ALL mean"]
    assert table.loc[8.0, "recall HEM mean"] < table.loc[1.0, "recall HEM mean"]
