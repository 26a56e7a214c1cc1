"""Which Keras backend runs the notebooks: the user's choice, made at install time.

Keras reads its backend from ``$KERAS_BACKEND``, else from ``keras.json`` in
``$KERAS_HOME`` (default ``~/.keras``), else uses TensorFlow. Cytobook does not
depend on TensorFlow: ``pip install -e ".[jax]"`` gives an environment without
it, where Keras's default would fail at import. :func:`choose_backend` keeps
any explicit choice and otherwise, when the configured backend is not
installed, picks the first installed one of :data:`BACKENDS`. It runs when the
package is imported, before Keras is.
"""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

#: Keras backends in order of preference, each with the module it needs.
BACKENDS: dict[str, str] = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}


def configured_backend() -> str:
    """The backend Keras would use: ``$KERAS_BACKEND``, else ``keras.json``, else ``"tensorflow"``."""
    if os.environ.get("KERAS_BACKEND"):
        return os.environ["KERAS_BACKEND"]
    config = Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")) / "keras.json"
    try:
        return json.loads(config.read_text()).get("backend", "tensorflow")
    except (OSError, ValueError):
        return "tensorflow"


def installed(backend: str) -> bool:
    """Whether the package ``backend`` needs can be imported (found, not imported)."""
    module = BACKENDS.get(backend)
    try:
        return module is not None and importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a broken or blocked installation
        return False


def choose_backend() -> str:
    """Set ``$KERAS_BACKEND`` to an installed backend when none is chosen and the default is missing.

    An explicit ``$KERAS_BACKEND`` is never changed (Keras then says what is
    missing). Returns the backend Keras will use.

    Raises
    ------
    ImportError
        If no backend of :data:`BACKENDS` is installed, naming the extras that install one.
    """
    wanted = configured_backend()
    if os.environ.get("KERAS_BACKEND") or installed(wanted):
        return wanted
    for backend in BACKENDS:
        if installed(backend):
            os.environ["KERAS_BACKEND"] = backend
            return backend
    raise ImportError(f"Keras's backend {wanted!r} is not installed, nor any other of {', '.join(BACKENDS)}: "
                      'install one with pip install -e ".[tensorflow]" (or ".[jax]", ".[tensorflow-cuda]", ".[jax-cuda]")')
