"""The data sets the book knows, one :class:`DatasetEntry` each, in :data:`REGISTRY`.

Everything that acts on "a data set by its short name" (``cytobook data
generate|check NAME``, ``cytobook run --data-dir NAME=PATH``,
:meth:`cytobook.notebook.NotebookRun.dataset`) looks the name up here, so
adding a data set is one entry in :data:`REGISTRY` (beside its own loader and
generator modules and its spec on :class:`~cytobook.profiles.Profile`); no
code elsewhere names the data sets one by one.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from ..profiles import Profile
from . import cnmc, cnmc_synthetic, dlmi, dlmi_synthetic
from .check import CheckReport


@dataclass(frozen=True)
class DatasetEntry:
    """How to read, check and generate one data set.

    Attributes
    ----------
    name
        Short name used on the command line and in ``--data-dir NAME=PATH``.
    title
        Human-readable name, as in its check report (e.g. ``"C-NMC 2019"``).
    root_name
        Name of the top folder of its tree (real or generated).
    loader
        ``loader(root)`` reads a copy of the data set (the tree or its parent).
    check
        ``check(root, decode=True)`` validates a copy and returns a
        :class:`~cytobook.datasets.check.CheckReport`.
    generator
        ``generator(dest, spec, seed)`` writes a generated tree under ``dest``
        and returns its root; ``spec`` is the profile's :attr:`profile_spec`.
    cached
        ``cached(profile, seed)`` returns the generated tree of a profile,
        generating it on first use.
    profile_spec
        Name of the attribute of :class:`~cytobook.profiles.Profile` that holds
        the generator's spec (image size and counts).
    generator_version
        The generator's ``GENERATOR_VERSION``, part of its cache key.
    """

    name: str
    title: str
    root_name: str
    loader: Callable[[str | os.PathLike], Any]
    check: Callable[..., CheckReport]
    generator: Callable[[str | Path, Any, int], Path]
    cached: Callable[[Profile, int], Path]
    profile_spec: str
    generator_version: int

    def __post_init__(self) -> None:
        # A typo here would only show when the data set is first generated.
        if self.profile_spec not in {f.name for f in fields(Profile)}:
            raise ValueError(f"data set {self.name!r}: Profile has no field {self.profile_spec!r}")

    def spec(self, profile: Profile) -> Any:
        """The generator's spec in ``profile`` (its :attr:`profile_spec` attribute)."""
        return getattr(profile, self.profile_spec)


#: Every data set by short name; add one entry per new data set.
REGISTRY: dict[str, DatasetEntry] = {
    entry.name: entry
    for entry in (
        DatasetEntry(
            name="cnmc",
            title=cnmc.DATASET_NAME,
            root_name=cnmc_synthetic.ROOT_NAME,
            loader=cnmc.load_cnmc,
            check=cnmc.check_cnmc,
            generator=cnmc_synthetic.generate_cnmc,
            cached=cnmc_synthetic.cached_cnmc,
            profile_spec="cnmc",
            generator_version=cnmc_synthetic.GENERATOR_VERSION,
        ),
        DatasetEntry(
            name="dlmi",
            title=dlmi.DATASET_NAME,
            root_name=dlmi_synthetic.ROOT_NAME,
            loader=dlmi.load_dlmi,
            check=dlmi.check_dlmi,
            generator=dlmi_synthetic.generate_dlmi,
            cached=dlmi_synthetic.cached_dlmi,
            profile_spec="dlmi",
            generator_version=dlmi_synthetic.GENERATOR_VERSION,
        ),
    )
}


def dataset_entry(name: str) -> DatasetEntry:
    """The registry entry of data set ``name``.

    Parameters
    ----------
    name
        Short name, e.g. ``"cnmc"``.

    Returns
    -------
    DatasetEntry

    Raises
    ------
    ValueError
        If ``name`` is not in :data:`REGISTRY`; the message lists the known names.
    """
    try:
        return REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown data set {name!r}; expected one of {', '.join(REGISTRY)}") from None
