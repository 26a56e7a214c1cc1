"""The helper package's model code runs on JAX as well as TensorFlow (GPU machines often lack TensorFlow)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent(
    """
    import json
    import keras
    import numpy as np
    from cytobook.weights import build_backbone

    keras.utils.set_random_seed(0)
    base = build_backbone("mobilenet", (32, 32, 3), weights=None, alpha=0.25)
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.GlobalAveragePooling2D()(base(inputs))
    outputs = keras.layers.Dense(1, activation="sigmoid")(x)
    model = keras.Model(inputs, outputs)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="binary_crossentropy")
    rng = np.random.default_rng(0)
    x = rng.random((16, 32, 32, 3), dtype="float32")
    y = (rng.random(16) > 0.5).astype("float32")
    history = model.fit(x, y, epochs=2, batch_size=8, verbose=0)
    print(json.dumps({"backend": keras.backend.backend(), "loss": history.history["loss"]}))
    """
)


@pytest.mark.slow
def test_model_trains_under_jax_backend():
    pytest.importorskip("jax")
    env = {**os.environ, "KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu"}
    done = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["backend"] == "jax"
    assert all(loss == loss and loss < 10 for loss in result["loss"])  # finite, not diverged
