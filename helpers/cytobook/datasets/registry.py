"""The data sets the book knows, one :class:`DatasetEntry` each, in :data:`REGISTRY`.

Everything that acts on "a data set by its short name" (``cytobook data
generate|check NAME``, ``cytobook run --data-dir NAME=PATH``,
:meth:`cytobook.notebook.NotebookRun.dataset`) looks the name up here, so
adding a data set is one entry in :data:`REGISTRY` (beside its own loader and
generator modules and its spec on :class:`~cytobook.profiles.Profile`).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from ..io import cache_dir, cached_generation, spec_record
from ..profiles import Profile
from . import cnmc, cnmc_synthetic, dlmi, dlmi_synthetic, hep2, hep2_synthetic, wbc, wbc_synthetic
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
        ``loader(root)`` reads a copy (the tree or its parent).
    check
        ``check(root, decode=True)`` validates a copy into a :class:`~cytobook.datasets.check.CheckReport`.
    generator
        ``generator(dest, spec, seed)`` writes a generated tree under ``dest`` and returns its root.
    profile_spec
        The attribute of :class:`~cytobook.profiles.Profile` holding the generator's spec.
    generator_version
        The generator's ``GENERATOR_VERSION``, part of its cache key.
    """

    name: str
    title: str
    root_name: str
    loader: Callable[[str | os.PathLike], Any]
    check: Callable[..., CheckReport]
    generator: Callable[[str | Path, Any, int], Path]
    profile_spec: str
    generator_version: int

    def __post_init__(self) -> None:
        # A typo here would only show when the data set is first generated.
        if self.profile_spec not in {f.name for f in fields(Profile)}:
            raise ValueError(f"data set {self.name!r}: Profile has no field {self.profile_spec!r}")

    def spec(self, profile: Profile) -> Any:
        """The generator's spec in ``profile`` (its :attr:`profile_spec` attribute)."""
        return getattr(profile, self.profile_spec)

    def cached(self, profile: Profile, seed: int = 0) -> Path:
        """The generated tree of ``profile`` and ``seed``, generated on first use.

        It lies at ``cache_dir() / name / f"{profile.name}-seed{seed}-v{generator_version}" / root_name``
        (see :func:`cytobook.io.cache_dir`), whatever the generator writes beside it too.

        Raises
        ------
        ValueError
            If the copy cached under that name was generated from another spec
            (a profile with overridden fields): data of the wrong size is refused.
        """
        spec = self.spec(profile)
        folder = cache_dir() / self.name / f"{profile.name}-seed{seed}-v{self.generator_version}"
        record = spec_record(spec, seed, self.generator_version)
        return cached_generation(folder, self.root_name, record, lambda tmp: self.generator(tmp, spec, seed))


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
            profile_spec="dlmi",
            generator_version=dlmi_synthetic.GENERATOR_VERSION,
        ),
        # Report 3's white cells: the course copy it used, and three real layouts its notebooks also read.
        *(
            DatasetEntry(
                name=name,
                title=wbc.DATASET_NAMES[name],
                root_name=wbc_synthetic.ROOT_NAMES[name],
                loader=loader,
                check=check,
                generator=generator,
                profile_spec="wbc",
                generator_version=wbc_synthetic.GENERATOR_VERSION,
            )
            for name, loader, check, generator in (
                ("wbc", wbc.load_wbc_course, wbc.check_wbc_course, wbc_synthetic.generate_wbc_course),
                ("raabin", wbc.load_raabin, wbc.check_raabin, wbc_synthetic.generate_raabin),
                ("pbc", wbc.load_pbc, wbc.check_pbc, wbc_synthetic.generate_pbc),
                ("zheng", wbc.load_zheng, wbc.check_zheng, wbc_synthetic.generate_zheng),
            )
        ),
        # Report 5's HEp-2 cells (ICPR 2014 I3A, the chapter's data set), and the two other layouts it reads.
        *(
            DatasetEntry(
                name=name,
                title=hep2.DATASET_NAMES[name],
                root_name=hep2_synthetic.ROOT_NAMES[name],
                loader=loader,
                check=check,
                generator=generator,
                profile_spec="hep2",
                generator_version=hep2_synthetic.GENERATOR_VERSION,
            )
            for name, loader, check, generator in (
                ("hep2", hep2.load_i3a, hep2.check_i3a, hep2_synthetic.generate_i3a),
                ("hep2_mivia", hep2.load_mivia, hep2.check_mivia, hep2_synthetic.generate_mivia),
                ("hep2_fields", hep2.load_fields, hep2.check_fields, hep2_synthetic.generate_fields),
            )
        ),
    )
}


def dataset_entry(name: str) -> DatasetEntry:
    """The registry entry of data set ``name`` (e.g. ``"cnmc"``).

    Raises
    ------
    ValueError
        If ``name`` is not in :data:`REGISTRY`; the message lists the known names.
    """
    try:
        return REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown data set {name!r}; expected one of {', '.join(REGISTRY)}") from None
