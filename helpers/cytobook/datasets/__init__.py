"""Data sets in their official layouts: a loader, a generator of look-alike data and a check for each.

One module per data set (:mod:`.cnmc` reads the C-NMC 2019 tree,
:mod:`.cnmc_synthetic` writes one). The two functions here dispatch on the
data set's short name, as used by ``cytobook data`` and by
:meth:`cytobook.notebook.NotebookRun.dataset`.
"""

from __future__ import annotations

from pathlib import Path

from ..profiles import Profile, get_profile

#: Short names accepted by ``cytobook data`` and ``cytobook run --data-dir NAME=PATH``.
DATASETS = ("cnmc",)


def _unknown(name: str) -> ValueError:
    return ValueError(f"unknown data set {name!r}; expected one of {', '.join(DATASETS)}")


def generated(name: str, profile: str | Profile = "demo", seed: int = 0) -> Path:
    """Root of the generated copy of data set ``name`` for a profile and seed, made on first use."""
    profile = get_profile(profile) if isinstance(profile, str) else profile
    if name == "cnmc":
        from .cnmc_synthetic import cached_cnmc

        return cached_cnmc(profile, seed)
    raise _unknown(name)


def generate(name: str, dest: str | Path, profile: str | Profile = "demo", seed: int = 0) -> Path:
    """Write a generated copy of data set ``name`` under ``dest`` and return its root."""
    profile = get_profile(profile) if isinstance(profile, str) else profile
    if name == "cnmc":
        from .cnmc_synthetic import generate_cnmc

        return generate_cnmc(dest, profile.cnmc, seed)
    raise _unknown(name)


def check(name: str, path: str | Path, decode: bool = True):
    """Validate a copy of data set ``name``; returns a :class:`~.check.CheckReport`."""
    if name == "cnmc":
        from .cnmc import check_cnmc

        return check_cnmc(path, decode=decode)
    raise _unknown(name)
