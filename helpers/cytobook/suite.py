"""The suite's map: chapters, notebook names, and where the project and its runs live.

Shared by ``cytobook run`` (:mod:`.runner`), ``cytobook book`` (:mod:`.book`)
and the notebooks' set-up (:mod:`.notebook`), so that all three agree on what
a notebook's chapter is and which run is "the latest".
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

#: Chapters in book order, each with the data set its notebooks read.
CHAPTERS: dict[str, str] = {
    "data": "cnmc",
    "cnmc": "cnmc",
    "bagging": "cnmc",
    "wbc_unet": "wbc",
    "lymphocytosis": "dlmi",
    "hep2": "hep2",
}

#: Notebooks that also read another chapter's results: that notebook's and those of every notebook before it
#: in its chapter (notebook 12 sets report 2's models beside report 1's ensembles of notebook 07).
READS_FROM: dict[str, tuple[str, ...]] = {"12_bagging_results": ("07_cnmc_ensembles",)}

_CNMC_MODELS = ("03_cnmc_scratch_cnn", "04_cnmc_vgg16", "05_cnmc_resnet50", "06_cnmc_mobilenet_v2")
#: Notebooks that read only some of the notebooks before them in their chapter: exactly these (the others read
#: all of them). Report 1's four model families each train on notebook 02's splits alone, and notebook 08
#: explains their models, not notebook 07's ensembles: ``cytobook run --jobs`` runs them side by side.
READS_IN_CHAPTER: dict[str, tuple[str, ...]] = {
    **dict.fromkeys(_CNMC_MODELS, ("02_cnmc_data_preparation",)),
    "08_cnmc_explainability": ("02_cnmc_data_preparation", *_CNMC_MODELS),
}

#: The repository root, when not found by walking up from the working directory.
ROOT_ENV = "CYTOBOOK_ROOT"
#: Where run directories go (default ``<project>/runs``).
RUNS_ENV = "CYTOBOOK_RUNS"

_NAME = re.compile(r"^(?P<number>\d+)_(?P<rest>[a-z0-9_]+)$")


class ProjectLayoutError(FileNotFoundError):
    """No Cytobook checkout, or no such run; the message says where it looked."""


@dataclass(frozen=True)
class SuiteNotebook:
    """One notebook of the suite, named ``NN_<chapter>_<topic>.ipynb``."""

    path: Path
    number: int
    chapter: str

    @property
    def name(self) -> str:
        return self.path.name.removesuffix(".ipynb")

    @property
    def dataset(self) -> str:
        return CHAPTERS[self.chapter]


def parse_notebook_name(path: str | os.PathLike) -> SuiteNotebook:
    """Split ``NN_<chapter>_<topic>[.ipynb]`` into number and chapter (the longest known one: ``wbc_unet``).

    Raises
    ------
    ValueError
        If the name does not follow the pattern or names no known chapter.
    """
    path = Path(path)
    match = _NAME.match(path.name.removesuffix(".ipynb"))
    if match:
        rest = match["rest"]
        for chapter in sorted(CHAPTERS, key=len, reverse=True):
            if rest == chapter or rest.startswith(chapter + "_"):
                return SuiteNotebook(path, int(match["number"]), chapter)
    raise ValueError(f"{path.name}: expected NN_<chapter>_<topic>.ipynb with chapter one of {', '.join(CHAPTERS)}")


def project_root(start: str | os.PathLike | None = None) -> Path:
    """The Cytobook checkout: ``$CYTOBOOK_ROOT``, else the first folder holding ``_config.yml`` and ``notebooks/``
    from ``start`` (the working directory) upwards; a :class:`ProjectLayoutError` says where it looked."""
    env = os.environ.get(ROOT_ENV)
    if env:
        root = Path(env).expanduser().resolve()
        if not (root / "_config.yml").is_file():
            raise ProjectLayoutError(f"${ROOT_ENV}={env} does not hold _config.yml: point it at the Cytobook checkout")
        return root
    here = Path(start or Path.cwd()).expanduser().resolve()
    for folder in (here, *here.parents):
        if (folder / "_config.yml").is_file() and (folder / "notebooks").is_dir():
            return folder
    raise ProjectLayoutError(f"no Cytobook checkout at or above {here} (a folder holding _config.yml and notebooks/): "
                             f"run from inside it or set ${ROOT_ENV}")


def runs_root(root: Path | None = None) -> Path:
    """Where runs live: ``$CYTOBOOK_RUNS``, else ``<project>/runs``, else ``./runs``."""
    if os.environ.get(RUNS_ENV):
        return Path(os.environ[RUNS_ENV]).expanduser().resolve()
    if root is None:
        try:
            root = project_root()
        except ProjectLayoutError:
            return Path.cwd() / "runs"
    return root / "runs"


def new_run_dir(profile: str, suffix: str | None = None, root: Path | None = None) -> Path:
    """Create a fresh, uniquely named run directory (never an existing one) under ``root``."""
    root = Path(root or runs_root())
    root.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    base = "-".join(part for part in (stamp, profile, suffix) if part)
    for attempt in range(1000):
        candidate = root / (base if attempt == 0 else f"{base}-{attempt + 1}")
        try:
            candidate.mkdir()  # exclusive: fails if another run took the name
            return candidate
        except FileExistsError:
            continue
    raise RuntimeError(f"could not create a new run directory under {root}")


def _started(run_dir: Path) -> float:
    """Start time of a run; the manifest's modification time when unreadable."""
    manifest = run_dir / "manifest.json"
    try:
        started = json.loads(manifest.read_text())["started"]
        return datetime.fromisoformat(str(started).replace("Z", "+00:00")).timestamp()
    except (OSError, ValueError, KeyError, TypeError):
        return manifest.stat().st_mtime


def latest_run(root: Path | None = None) -> Path:
    """The most recently started run (with a ``manifest.json``) under ``root``; else a ProjectLayoutError."""
    runs = runs_root(root)
    candidates = [d for d in runs.iterdir() if (d / "manifest.json").is_file()] if runs.is_dir() else []
    if not candidates:
        raise ProjectLayoutError(f"no run with a manifest.json under {runs}: make one with `cytobook run` first")
    return max(candidates, key=lambda d: (_started(d), d.name))


def resolve_run(run: str | os.PathLike | None = None, root: Path | None = None) -> Path:
    """A run directory from a path, a run id under the runs folder, or ``None`` for the latest.

    A :class:`ProjectLayoutError` says when the run does not exist or has no ``manifest.json``.
    """
    if run is None:
        return latest_run(root)
    path = Path(run).expanduser()
    if not path.is_dir():
        path = runs_root(root) / str(run)
    if not (path / "manifest.json").is_file():
        raise ProjectLayoutError(f"{path} is not a run directory (no manifest.json); runs are made by `cytobook run`")
    return path.resolve()


def needed_notebooks(name: str, notebooks: list[SuiteNotebook]) -> list[SuiteNotebook]:
    """The notebooks whose results ``name`` reads, in suite order.

    Those before it in its chapter (only those of :data:`READS_IN_CHAPTER`
    where it is listed there) and those :data:`READS_FROM` names for it, with
    what each of them needs in turn.

    Raises
    ------
    ValueError
        If ``name`` is not among ``notebooks``.
    """
    by_name = {nb.name: nb for nb in notebooks}
    if name not in by_name:
        raise ValueError(f"no notebook {name!r} in the suite; notebooks: {', '.join(by_name)}")

    def closure(target: SuiteNotebook) -> set[str]:
        direct = {nb.name for nb in notebooks if nb.chapter == target.chapter and nb.number < target.number}
        if target.name in READS_IN_CHAPTER:
            direct &= set(READS_IN_CHAPTER[target.name])
        direct |= set(READS_FROM.get(target.name, ()))
        found = set(direct)
        for other in direct:  # and what those read in turn
            found |= closure(by_name[other])
        return found

    wanted = closure(by_name[name])
    return [nb for nb in notebooks if nb.name in wanted]


def run_holding(names: list[str], *, profile: str, seed: int, data_dirs: dict[str, str | None],
                runs: Path | None = None) -> Path | None:
    """The most recently started run that ran every notebook of ``names`` successfully, with these settings.

    ``data_dirs`` maps each data set the notebooks read to the real folder
    they read it from, or ``None`` for generated data, as a run's manifest records it;
    ``runs`` is the folder of runs (default :func:`runs_root`). Returns
    ``None`` when no run qualifies.
    """
    runs = Path(runs) if runs is not None else runs_root()
    candidates = []
    for run_dir in (runs.iterdir() if runs.is_dir() else ()):
        try:
            manifest = json.loads((run_dir / "manifest.json").read_text())
        except (OSError, ValueError):
            continue
        if manifest.get("profile") != profile or manifest.get("seed") != seed:
            continue
        if any(manifest.get("data_dirs", {}).get(name) != path for name, path in data_dirs.items()):
            continue
        ok = {record.get("name") for record in manifest.get("notebooks", []) if record.get("status") == "ok"}
        if set(names) <= ok:
            candidates.append(run_dir)
    return max(candidates, key=lambda d: (_started(d), d.name), default=None)
