"""Data sets in their official layouts: a loader, a generator of look-alike data and a check for each.

One module per data set (:mod:`.cnmc` reads the C-NMC 2019 tree,
:mod:`.cnmc_synthetic` writes one; :mod:`.dlmi` and :mod:`.dlmi_synthetic` do
the same for the DLMI 2023 lymphocytosis challenge). The two functions here dispatch on the
data set's short name, as used by ``cytobook data`` and by
:meth:`cytobook.notebook.NotebookRun.dataset`.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from ..profiles import Profile, get_profile

# Import the submodule ``check`` now, before the function of the same name is
# defined below: Python binds a submodule to its package's attribute when the
# submodule is first imported, so a later first import (by any loader) would
# replace the function ``check`` with the module in ``from .datasets import check``.
importlib.import_module(f"{__name__}.check")

#: Short names accepted by ``cytobook data`` and ``cytobook run --data-dir NAME=PATH``.
DATASETS = ("cnmc", "dlmi")


def _unknown(name: str) -> ValueError:
    return ValueError(f"unknown data set {name!r}; expected one of {', '.join(DATASETS)}")


def generated(name: str, profile: str | Profile = "demo", seed: int = 0) -> Path:
    """Root of the generated copy of data set ``name`` for a profile and seed, made on first use."""
    profile = get_profile(profile) if isinstance(profile, str) else profile
    if name == "cnmc":
        from .cnmc_synthetic import cached_cnmc

        return cached_cnmc(profile, seed)
    if name == "dlmi":
        from .dlmi_synthetic import cached_dlmi

        return cached_dlmi(profile, seed)
    raise _unknown(name)


def generate(name: str, dest: str | Path, profile: str | Profile = "demo", seed: int = 0) -> Path:
    """Write a generated copy of data set ``name`` under ``dest`` and return its root."""
    profile = get_profile(profile) if isinstance(profile, str) else profile
    if name == "cnmc":
        from .cnmc_synthetic import generate_cnmc

        return generate_cnmc(dest, profile.cnmc, seed)
    if name == "dlmi":
        from .dlmi_synthetic import generate_dlmi

        return generate_dlmi(dest, profile.dlmi, seed)
    raise _unknown(name)


def check(name: str, path: str | Path, decode: bool = True):
    """Validate a copy of data set ``name``; returns a :class:`~.check.CheckReport`."""
    if name == "cnmc":
        from .cnmc import check_cnmc

        return check_cnmc(path, decode=decode)
    if name == "dlmi":
        from .dlmi import check_dlmi

        return check_dlmi(path, decode=decode)
    raise _unknown(name)
