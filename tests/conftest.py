"""Fixtures reaching the real samples beside the checkout; tests using them skip when absent."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def real_data() -> Path:
    """``$CYTOBOOK_REAL_DATA``: the shared folder of real sample images."""
    root = os.environ.get("CYTOBOOK_REAL_DATA")
    if not root or not Path(root).is_dir():
        pytest.skip("CYTOBOOK_REAL_DATA does not name a folder of real samples")
    return Path(root)


@pytest.fixture(scope="session")
def real_cnmc(real_data: Path) -> Path:
    """The real C-NMC cells in the official tree."""
    root = real_data / "cnmc_samples" / "C-NMC_Leukemia"
    if not root.is_dir():
        pytest.skip(f"{root} is absent")
    return root


@pytest.fixture(scope="session")
def keras_models() -> Path:
    """``$CYTOBOOK_KERAS_MODELS``: the only ImageNet weight files available offline."""
    root = os.environ.get("CYTOBOOK_KERAS_MODELS")
    if not root and os.environ.get("CYTOBOOK_REAL_DATA"):
        root = str(Path(os.environ["CYTOBOOK_REAL_DATA"]).parent / "keras_models")
    if not root or not Path(root).is_dir():
        pytest.skip("CYTOBOOK_KERAS_MODELS does not name the folder of offline ImageNet weights")
    return Path(root)


@pytest.fixture(autouse=True)
def no_shared_weights_folder(monkeypatch):
    """Tests see only the weights they place: a ``$CYTOBOOK_WEIGHTS_DIR`` of the caller's is ignored."""
    monkeypatch.delenv("CYTOBOOK_WEIGHTS_DIR", raising=False)
