"""cytobook.results: models saved without optimizer state, validation scores, predictions read back by name."""

from __future__ import annotations

import zipfile

import matplotlib

matplotlib.use("Agg")

import h5py
import keras
import numpy as np
import pytest

from cytobook import results
from cytobook.models.cnmc import scratch_cnn
from cytobook.models.transfer import transfer_classifier
from cytobook.notebook import NotebookRun
from cytobook.profiles import get_profile
from cytobook.training import SplitArrays, Trained, compile_binary, fit, fit_head_on_features


def tiny_split(size: int, n: int = 8, seed: int = 0) -> SplitArrays:
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8)
    y = np.tile([0, 1], n // 2).astype("float32")
    return SplitArrays(x, y, x, y, x, y)


def optimizer_groups(path) -> list[str]:
    """Top-level groups of the weights file inside a .keras archive that hold optimizer variables."""
    with zipfile.ZipFile(path) as archive, archive.open("model.weights.h5") as handle, h5py.File(handle) as weights:
        found = []
        weights.visit(lambda name: found.append(name) if name.split("/")[-1] == "optimizer" else None)
        return found


def test_evaluate_saves_the_model_without_optimizer_state_and_it_reloads(tmp_path):
    keras.utils.set_random_seed(0)
    data = tiny_split(32)
    # A transfer model trained like the notebooks train it: the head compiled on its own (feature
    # extraction), then the whole model compiled and fitted (fine-tuning). Both leave an optimizer.
    model = transfer_classifier("mobilenet_v2", 32, dense=None, weights=None)
    history = fit_head_on_features(model, data, epochs=1, batch_size=4)
    compile_binary(model, "adam", 1e-4)
    history = fit(model, data, epochs=1, batch_size=4, history=history)
    assert model.optimizer.variables and model.get_layer("head").optimizer.variables

    run = NotebookRun("05_test", get_profile("smoke"), None, tmp_path, 0)
    report = results.evaluate(run, Trained("tiny", model, history), data, "image", show=False, keep_model=True)
    path = tmp_path / "artifacts" / "05_test" / "models" / "image" / "tiny.keras"
    assert path.is_file() and optimizer_groups(path) == []
    results.evaluate(run, Trained("not_kept", model, history), data, "image", show=False)
    assert not path.with_name("not_kept.keras").exists()  # only models a later notebook loads are saved

    with_optimizer = tmp_path / "with_optimizer.keras"
    model.save(with_optimizer)
    assert optimizer_groups(with_optimizer)  # what evaluate used to save
    assert path.stat().st_size < with_optimizer.stat().st_size

    loaded = keras.models.load_model(path)
    np.testing.assert_allclose(loaded.predict(data.x_test, verbose=0), model.predict(data.x_test, verbose=0), atol=1e-6)
    assert [layer.name for layer in loaded.layers] == [layer.name for layer in model.layers]
    assert [w.trainable for w in loaded.weights] == [w.trainable for w in model.weights]
    saved = results.load_predictions(run, "image", [("05_test", "tiny")])["tiny"]
    np.testing.assert_allclose(saved["p_test"], model.predict(data.x_test, verbose=0)[:, 0], atol=1e-6)
    assert report["n"] == len(data.y_test)
    p = np.clip(saved["p_val"], 1e-7, 1 - 1e-7)
    expected_loss = -np.mean(data.y_val * np.log(p) + (1 - data.y_val) * np.log(1 - p))
    assert report["validation"]["loss"] == pytest.approx(expected_loss, rel=1e-6)
    assert report["validation"]["accuracy"] == pytest.approx(np.mean((saved["p_val"] > 0.5) == (data.y_val > 0.5)))
    with pytest.raises(FileNotFoundError, match="05_test"):
        results.load_predictions(run, "image", [("05_test", "absent")])


def test_save_model_keeps_a_scratch_cnn_and_leaves_the_original_compiled(tmp_path):
    data = tiny_split(60)
    model = compile_binary(scratch_cnn(60), "adam", 1e-3)
    fit(model, data, epochs=1, batch_size=4)
    path = results.save_model(model, tmp_path / "cnn.keras")
    assert optimizer_groups(path) == []
    assert model.compiled and model.optimizer.variables  # the model itself is untouched
    loaded = keras.models.load_model(path)
    np.testing.assert_allclose(loaded.predict(data.x_test, verbose=0), model.predict(data.x_test, verbose=0), atol=1e-6)


def test_evaluate_marks_the_fine_tuning_stage_on_the_learning_curves(tmp_path, monkeypatch):
    import matplotlib.pyplot as plt

    monkeypatch.setattr(plt, "show", lambda: None)
    data = tiny_split(60)
    model = compile_binary(scratch_cnn(60), "adam", 1e-3)
    history = fit(model, data, epochs=2, batch_size=4)
    history = fit(model, data, epochs=1, batch_size=4, history=history)
    run = NotebookRun("03_test", get_profile("smoke"), None, tmp_path, 0)
    results.evaluate(run, Trained("cnn", model, history), data, "image", stage_starts={2: "fine-tuning"})
    curves = plt.figure(1)
    assert [line.get_xdata()[0] for line in curves.axes[0].get_lines()][-1] == 2.5
    plt.close("all")


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    import matplotlib.pyplot as plt

    plt.close("all")


def test_stand_in_cells_are_the_training_images_of_every_split_and_no_other(tmp_path):
    import pandas as pd

    # Six cells; the image-level split trains on a, b, c, d (d augmented once more), the subject-level on b, c, e.
    folds = pd.DataFrame({"path": list("abcdef"),
                          "image_split": ["train", "train", "train", "train", "val", "test"],
                          "subject_split": ["val", "train", "train", "test", "train", "train"]})
    balanced = pd.DataFrame({"path": ["a", "b", "c", "d", "c"], "augmentation": ["none"] * 4 + ["rotate_90"]})
    folder = tmp_path / "artifacts" / "02_cnmc_data_preparation"
    folder.mkdir(parents=True)
    folds.to_csv(folder / "training_folds.csv", index=False)
    balanced.to_csv(folder / "image_split_balanced_train.csv", index=False)
    x = np.arange(5, dtype=np.uint8)[:, None, None, None] * np.ones((1, 4, 4, 3), np.uint8)
    y = np.array([0, 1, 0, 1, 0], dtype="float32")
    splits = {"image": SplitArrays(x, y, x[:1], y[:1], x[:1], y[:1]), "subject": tiny_split(4)}
    run = NotebookRun("04_test", get_profile("smoke"), None, tmp_path, 0)

    pool = results.stand_in_cells(run, splits)
    assert pool.x_train[:, 0, 0, 0].tolist() == [1, 2, 4]  # b, c and c's augmented copy
    assert pool.y_train.tolist() == [1, 0, 0] and len(pool.x_val) == len(pool.x_test) == 0
    with pytest.raises(ValueError, match="lists 5 training images, the image-level arrays hold 4"):
        results.stand_in_cells(run, {"image": SplitArrays(x[:4], y[:4], x, y, x, y)})
    folds.assign(subject_split="test").to_csv(folder / "training_folds.csv", index=False)
    with pytest.raises(ValueError, match="no cell is in the training part of every split scheme"):
        results.stand_in_cells(run, splits)
