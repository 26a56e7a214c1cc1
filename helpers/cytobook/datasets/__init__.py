"""Data sets in their official layouts: a loader, a generator of look-alike data and a check for each.

One module per data set reads its tree (:mod:`.cnmc` for C-NMC 2019, :mod:`.dlmi`
for the DLMI 2023 lymphocytosis challenge) and one writes a generated copy
(:mod:`.cnmc_synthetic`, :mod:`.dlmi_synthetic`, drawing with the shared
primitives of :mod:`.drawing`). :mod:`.registry` lists them all; the functions
here look a data set up there by its short name, as used by ``cytobook data``
and by :meth:`cytobook.notebook.NotebookRun.dataset`.
"""

from __future__ import annotations

from pathlib import Path

from ..profiles import Profile, get_profile

# Import the submodule ``check`` (here and, with every data set's modules, in the
# registry) before the function of the same name is defined below: Python binds
# a submodule to its package's attribute when it is first imported, so a later
# first import would replace the function ``check`` in ``from .datasets import check``.
from .check import CheckReport
from .registry import REGISTRY, DatasetEntry, dataset_entry

__all__ = ["DATASETS", "REGISTRY", "DatasetEntry", "check", "dataset_entry", "generate", "generated"]

#: Short names accepted by ``cytobook data`` and ``cytobook run --data-dir NAME=PATH``.
DATASETS = tuple(REGISTRY)


def _resolve(profile: str | Profile) -> Profile:
    return get_profile(profile) if isinstance(profile, str) else profile


# Each function below raises a ValueError listing the known data sets for an unknown ``name``.


def generated(name: str, profile: str | Profile = "demo", seed: int = 0) -> Path:
    """Root of the generated copy of data set ``name`` for a profile and seed, made on first use."""
    return dataset_entry(name).cached(_resolve(profile), seed)


def generate(name: str, dest: str | Path, profile: str | Profile = "demo", seed: int = 0) -> Path:
    """Write a generated copy of data set ``name`` under ``dest`` and return its root."""
    entry = dataset_entry(name)
    return entry.generator(dest, entry.spec(_resolve(profile)), seed)


def check(name: str, path: str | Path, decode: bool = True) -> CheckReport:
    """Validate a copy of data set ``name``; returns a :class:`~.check.CheckReport`."""
    return dataset_entry(name).check(path, decode=decode)
