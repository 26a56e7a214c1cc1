"""Cytobook without TensorFlow: the package, its models and a notebook on JAX (GPU machines often lack TensorFlow).

TensorFlow is an extra (``.[tensorflow]``), not a dependency. The test runs
in a child process where TensorFlow cannot be imported (a ``sitecustomize``
on ``PYTHONPATH`` blocks it, in the notebook's kernel too) and no backend is
named, so the package itself must pick JAX.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from cytobook.backend import choose_backend

ROOT = Path(__file__).resolve().parents[1]

BLOCK_TENSORFLOW = textwrap.dedent(
    """
    import importlib.abc
    import sys


    class _NoTensorFlow(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name == "tensorflow" or name.startswith("tensorflow."):
                raise ModuleNotFoundError(f"No module named {name!r} (blocked by the test)", name=name)
            return None


    sys.meta_path.insert(0, _NoTensorFlow())
    """
)

IMPORT_AND_TRAIN = textwrap.dedent(
    """
    import importlib, json, pkgutil, sys
    import cytobook
    modules = [m.name for m in pkgutil.walk_packages(cytobook.__path__, "cytobook.")]
    for name in modules:
        importlib.import_module(name)
    import keras
    import numpy as np
    from cytobook.models.transfer import transfer_classifier
    from cytobook.training import compile_binary, predict_proba

    keras.utils.set_random_seed(0)
    model = compile_binary(transfer_classifier("mobilenet_v2", 32, weights=None, required=False, dense=8), "adam", 1e-3)
    model.get_layer("base").trainable = True
    rng = np.random.default_rng(0)
    x = rng.integers(0, 255, (16, 32, 32, 3)).astype("uint8")
    y = (np.arange(16) % 2).astype("float32")
    history = model.fit(x, y, epochs=2, batch_size=8, verbose=0)

    # Report 3's UNet: its custom joint loss and loss trackers on JAX.
    from cytobook.models.unet import mask_targets, multitask_unet
    unet = multitask_unet(32, 2, width=4, depth=2, embedding=8)
    unet.compile(optimizer=keras.optimizers.Adam(1e-3, clipnorm=1.0))
    targets = {"classes": y.astype(int), "masks": mask_targets(x[..., 0] > 127, y.astype(int), 2),
               "has_label": np.ones(16), "has_mask": (np.arange(16) < 4).astype(float)}
    unet_history = unet.fit(x, targets, epochs=2, batch_size=8, verbose=0).history
    print(json.dumps({"backend": keras.backend.backend(), "modules": len(modules), "loss": history.history["loss"],
                      "p": predict_proba(model, x).tolist(), "tensorflow_loaded": "tensorflow" in sys.modules,
                      "unet_loss": unet_history["loss"], "unet_dice": unet_history["dice"]}))
    """
)


@pytest.fixture
def without_tensorflow(tmp_path):
    """Environment of a child process that cannot import TensorFlow and names no Keras backend."""
    blocker = tmp_path / "blocker"
    blocker.mkdir()
    (blocker / "sitecustomize.py").write_text(BLOCK_TENSORFLOW)
    env = {key: value for key, value in os.environ.items() if key not in ("KERAS_BACKEND", "CYTOBOOK_RUN_DIR")}
    env.update(PYTHONPATH=os.pathsep.join(filter(None, [str(blocker), env.get("PYTHONPATH")])), JAX_PLATFORMS="cpu",
               KERAS_HOME=str(tmp_path / "keras"), CYTOBOOK_RUNS=str(tmp_path / "runs"), CYTOBOOK_PROFILE="smoke")
    return env


def test_choose_backend_keeps_an_explicit_choice_and_replaces_a_missing_default(monkeypatch, tmp_path):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    monkeypatch.setenv("KERAS_BACKEND", "torch")
    assert choose_backend() == "torch"  # explicit: kept, installed or not
    monkeypatch.delenv("KERAS_BACKEND")
    monkeypatch.setattr("cytobook.backend.installed", lambda backend: backend == "jax")
    assert choose_backend() == "jax" and os.environ["KERAS_BACKEND"] == "jax"
    monkeypatch.delenv("KERAS_BACKEND")
    monkeypatch.setattr("cytobook.backend.installed", lambda backend: False)
    with pytest.raises(ImportError, match=r"\.\[tensorflow\]"):
        choose_backend()


@pytest.mark.slow
def test_package_models_and_a_notebook_run_without_tensorflow(without_tensorflow, tmp_path):
    pytest.importorskip("jax")
    done = subprocess.run([sys.executable, "-c", IMPORT_AND_TRAIN], env=without_tensorflow, capture_output=True,
                          text=True, timeout=600, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["backend"] == "jax" and not result["tensorflow_loaded"]
    assert result["modules"] >= 25
    assert all(loss == loss and loss < 10 for loss in result["loss"])  # finite, not diverged
    assert all(0.0 <= p <= 1.0 for p in result["p"])
    assert all(0 < loss < 10 for loss in result["unet_loss"]) and all(0 < d <= 1 for d in result["unet_dice"])

    # One notebook, executed by plain papermill in a kernel that cannot import TensorFlow either.
    out = tmp_path / "01_data_cnmc_tour.ipynb"
    done = subprocess.run([sys.executable, "-m", "papermill", str(ROOT / "notebooks" / "01_data_cnmc_tour.ipynb"), str(out),
                           "-p", "profile", "smoke", "--cwd", str(ROOT / "notebooks")],
                          env=without_tensorflow, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    text = out.read_text()
    assert "backend jax" in text
    (metrics,) = (tmp_path / "runs").glob("*/metrics/01_data_cnmc_tour.json")
    assert json.loads(metrics.read_text())
