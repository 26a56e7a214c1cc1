"""``cytobook run``: execute the notebooks in order with papermill into a new run directory.

A run directory holds everything one execution of the suite produced::

    runs/<run-id>/
        manifest.json            commit, packages, backend, device, profile, parameters, timings
        notebooks/NN_*.ipynb     the executed notebooks
        metrics/NN_*.json        each notebook's metrics
        artifacts/NN_*/          predictions, models, figures/ (every figure of the executed notebook)

Run directories are created exclusively and never written into by a later
run, so results can always be traced to the run that made them.
"""

from __future__ import annotations

import fnmatch
import importlib.metadata
import json
import os
import platform
import shutil
import subprocess
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timezone
from pathlib import Path

from . import io
from .suite import CHAPTERS, SuiteNotebook, new_run_dir, parse_notebook_name, project_root

#: Packages whose versions go into the manifest.
_RECORDED_PACKAGES = (
    "cytobook", "keras", "tensorflow", "tensorflow-cpu", "jax", "jaxlib", "torch", "numpy", "pandas",
    "scikit-learn", "scikit-image", "opencv-python-headless", "papermill", "jupyter-book",
)


class SuiteFailed(RuntimeError):
    """A notebook failed; the run directory keeps the partly executed notebook."""

    def __init__(self, message: str, run_dir: Path):
        super().__init__(message)
        self.run_dir = run_dir


def discover(notebooks_dir: Path | None = None) -> list[SuiteNotebook]:
    """The suite's notebooks in execution order."""
    notebooks_dir = Path(notebooks_dir or project_root() / "notebooks")
    found = sorted(notebooks_dir.glob("[0-9]*_*.ipynb"))
    return sorted((parse_notebook_name(p) for p in found), key=lambda nb: (nb.number, nb.name))


def select(notebooks: Sequence[SuiteNotebook], only: Iterable[str] | None) -> list[SuiteNotebook]:
    """Keep the notebooks named by ``only``: a chapter, a glob on the name, or a substring of it.

    Raises
    ------
    ValueError
        If a pattern selects nothing (a typo must not silently run nothing).
    """
    if not only:
        return list(notebooks)
    chosen: set[Path] = set()
    for pattern in only:
        if pattern in CHAPTERS:  # a chapter name selects that chapter only, not every name containing it
            hits = [nb for nb in notebooks if nb.chapter == pattern]
        else:
            hits = [nb for nb in notebooks if fnmatch.fnmatch(nb.name, pattern) or pattern in nb.name]
        if not hits:
            names = ", ".join(nb.name for nb in notebooks)
            raise ValueError(f"--only {pattern!r} matches no notebook; chapters: {', '.join(CHAPTERS)}; notebooks: {names}")
        chosen.update(nb.path for nb in hits)
    return [nb for nb in notebooks if nb.path in chosen]


def describe_environment() -> dict:
    """Commit, package versions, Keras backend and device, for the manifest."""
    packages = {}
    for name in _RECORDED_PACKAGES:
        try:
            packages[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            pass
    return {
        "commit": _git_commit(),
        "packages": packages,
        "python": platform.python_version(),
        "keras_backend": _keras_backend(),
        "device": _device(),
        "host": platform.node(),
    }


def _git_commit() -> str:
    try:
        root = project_root()
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return "unknown (no git checkout)"
    if commit.returncode != 0:
        return "unknown (no git checkout)"
    return commit.stdout.strip() + (" (with uncommitted changes)" if dirty.stdout.strip() else "")


def _keras_backend() -> str:
    # Read the setting rather than importing Keras (which would import TensorFlow here).
    if os.environ.get("KERAS_BACKEND"):
        return os.environ["KERAS_BACKEND"]
    from .weights import keras_home

    config = keras_home() / "keras.json"
    if config.is_file():
        try:
            return json.loads(config.read_text()).get("backend", "tensorflow")
        except json.JSONDecodeError:
            pass
    return "tensorflow"


def _device() -> str:
    if shutil.which("nvidia-smi"):
        try:
            out = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
                                 capture_output=True, text=True, timeout=20)
            if out.returncode == 0 and out.stdout.strip():
                return "GPU: " + ", ".join(out.stdout.split("\n")[:8]).strip(", ")
        except subprocess.SubprocessError:
            pass
    return f"CPU: {platform.processor() or platform.machine()}, {os.cpu_count()} cores"


def export_figures(notebook: Path, folder: Path) -> list[Path]:
    """Write every PNG figure of an executed notebook to ``folder`` as ``figure-NN.png``, in order.

    The figures stay embedded in the notebook too; the files let a reader take
    a figure of a run without opening it.
    """
    import base64

    import nbformat

    written = []
    for cell in nbformat.read(notebook, as_version=4).cells:
        for output in cell.get("outputs", []):
            png = output.get("data", {}).get("image/png")
            if png:
                folder.mkdir(parents=True, exist_ok=True)
                path = folder / f"figure-{len(written) + 1:02d}.png"
                path.write_bytes(base64.b64decode(png))
                written.append(path)
    return written


def run_suite(
    profile: str = "demo",
    *,
    data_dirs: dict[str, str | os.PathLike] | None = None,
    only: Iterable[str] | None = None,
    seed: int = 0,
    notebooks_dir: Path | None = None,
    root: Path | None = None,
    log: Callable[[str], None] = print,
) -> Path:
    """Execute the suite's notebooks in order into a new run directory.

    Parameters
    ----------
    profile
        ``smoke``, ``demo`` or ``full``; passed to every notebook.
    data_dirs
        ``{data set: path}`` of real data; a notebook whose chapter reads a
        data set given here receives it as ``data_dir``, others generate data.
    only
        Chapters or name patterns to run (see :func:`select`).
    seed
        Passed to every notebook.
    notebooks_dir, root
        Where the notebooks are and where run directories go.
    log
        Receives progress lines.

    Returns
    -------
    Path
        The run directory.

    Raises
    ------
    SuiteFailed
        When a notebook fails; the message names the notebook and cell, and
        later notebooks are recorded as not run.
    """
    import papermill
    from papermill.exceptions import PapermillExecutionError

    from .datasets import DATASETS
    from .profiles import get_profile

    get_profile(profile)  # fail on a typo before making a run directory
    data_dirs = {name: Path(path).expanduser().resolve() for name, path in (data_dirs or {}).items()}
    for name, path in data_dirs.items():
        if name not in set(CHAPTERS.values()) | set(DATASETS):
            raise ValueError(f"--data-dir {name}=...: unknown data set; expected one of {', '.join(sorted(set(CHAPTERS.values())))}")
        if not path.exists():
            raise FileNotFoundError(f"--data-dir {name}={path}: no such folder")
    notebooks = select(discover(notebooks_dir), only)
    if not notebooks:
        raise ValueError("no notebooks to run")

    run_dir = new_run_dir(profile, root=root)
    (run_dir / "notebooks").mkdir()
    manifest = {
        "run_id": run_dir.name,
        "profile": profile,
        "seed": seed,
        "data_dirs": {k: str(v) for k, v in data_dirs.items()},
        "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        **describe_environment(),
        "notebooks": [
            {"name": nb.name, "chapter": nb.chapter, "status": "not run", "duration_s": None, "parameters": None}
            for nb in notebooks
        ],
    }
    io.write_json(run_dir / "manifest.json", manifest)
    log(f"run {run_dir.name}: {len(notebooks)} notebook(s), profile {profile}, backend {manifest['keras_backend']}, {manifest['device']}")

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # inherited by the kernels
    suite_start = time.perf_counter()
    for index, (nb, record) in enumerate(zip(notebooks, manifest["notebooks"]), start=1):
        data_dir = data_dirs.get(nb.dataset)
        parameters = {"profile": profile, "data_dir": str(data_dir) if data_dir else None,
                      "run_dir": str(run_dir), "seed": seed}
        record["parameters"] = parameters
        record["status"] = "running"
        io.write_json(run_dir / "manifest.json", manifest)
        log(f"[{index}/{len(notebooks)}] {nb.name} ...")
        output = run_dir / "notebooks" / nb.path.name
        started = time.perf_counter()
        try:
            papermill.execute_notebook(
                str(nb.path), str(output), parameters=parameters, cwd=str(nb.path.parent),
                progress_bar=False, log_output=False,
            )
        except PapermillExecutionError as error:
            first_line = (error.source or "").strip().splitlines()[:1]
            where = (f"cell [{error.exec_count}] (cell {error.cell_index + 1} of the executed notebook"
                     + (f", starting `{first_line[0][:60]}`)" if first_line else ")"))
            record.update(status="failed", duration_s=round(time.perf_counter() - started, 1),
                          error=f"{where}: {error.ename}: {error.evalue}")
            io.write_json(run_dir / "manifest.json", manifest)
            message = (f"{nb.name} failed in {where}: {error.ename}: {error.evalue}\n"
                       f"  executed notebook with the traceback: {output}")
            log(f"[{index}/{len(notebooks)}] {message}")
            raise SuiteFailed(message, run_dir) from None
        record.update(status="ok", duration_s=round(time.perf_counter() - started, 1),
                      figures=len(export_figures(output, run_dir / "artifacts" / nb.name / "figures")))
        io.write_json(run_dir / "manifest.json", manifest)
        log(f"[{index}/{len(notebooks)}] {nb.name} done in {record['duration_s']:.1f} s")

    manifest["duration_s"] = round(time.perf_counter() - suite_start, 1)
    io.write_json(run_dir / "manifest.json", manifest)
    log(f"all {len(notebooks)} notebook(s) ran in {manifest['duration_s']:.0f} s")
    return run_dir
