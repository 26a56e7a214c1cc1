"""``cytobook run``: execute the notebooks in order with papermill into a new run directory.

A run directory holds everything one execution of the suite produced::

    runs/<run-id>/
        manifest.json            commit, packages, backend, device, profile, parameters, timings
        notebooks/NN_*.ipynb     the executed notebooks
        metrics/NN_*.json        each notebook's metrics
        artifacts/NN_*/          predictions, models, figures/ (every figure of the executed notebook)
        kernels/NN_*.log         each notebook's kernel's own output (a resume appends to it)
        interrupted/NN_*-<n>/    what an interrupted or failed notebook left, set aside by a resume

Run directories are created exclusively and never written into by a later
run, so results can always be traced to the run that made them. The one
exception is :func:`resume_suite`, which finishes the same run: it reruns the
notebooks that are not ``ok`` with the run's own parameters and never touches
the completed ones.
"""

from __future__ import annotations

import fnmatch
import importlib.metadata
import signal
import threading
import json
import os
import platform
import shutil
import subprocess
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from concurrent.futures import TimeoutError as FutureTimeout  # not the built-in one before Python 3.11
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from . import io
from .book import format_duration
from .suite import (CHAPTERS, ProjectLayoutError, SuiteNotebook, needed_notebooks, new_run_dir, parse_notebook_name, project_root,
                    resolve_run, run_holding)

#: Packages whose versions go into the manifest.
_RECORDED_PACKAGES = (
    "cytobook", "keras", "tensorflow", "tensorflow-cpu", "jax", "jaxlib", "torch", "numpy", "pandas",
    "scikit-learn", "scikit-image", "opencv-python-headless", "papermill", "jupyter-book",
)


#: Cells that run at least this long get a line on the log when they finish.
PROGRESS_AFTER_S = 5.0
#: A cell still running after this long gets a line saying so, again at every doubling.
STILL_RUNNING_AFTER_S = 60.0
#: Folder of the run directory that keeps each kernel's own output (its log, native libraries'
#: messages, errors while it is shut down mid-cell): not the reader's business while the run goes
#: on, and interleaved when several kernels run at once, but kept for a kernel that dies.
KERNEL_LOGS = "kernels"


class SuiteFailed(RuntimeError):
    """A notebook failed; the run directory keeps the partly executed notebook."""

    def __init__(self, message: str, run_dir: Path):
        super().__init__(message)
        self.run_dir = run_dir


class SuiteInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped the run during ``notebook`` (a KeyboardInterrupt); finish it with :func:`resume_suite`.

    ``notebook`` names the notebooks it stopped, comma-separated when several ran at once.
    """

    def __init__(self, run_dir: Path, notebook: str):
        super().__init__(f"interrupted during {notebook}")
        self.run_dir = run_dir
        self.notebook = notebook


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
    """Write every PNG figure of an executed notebook to ``folder`` as ``figure-NN.png``, in order."""
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
    progress_after_s: float = PROGRESS_AFTER_S,
    run_dir: Path | None = None,
    jobs: int = 1,
) -> Path:
    """Execute the suite's notebooks in order into a new run directory.

    Parameters
    ----------
    profile, seed
        Passed to every notebook.
    data_dirs
        ``{data set: path}`` of real data, given as ``data_dir`` to the
        notebooks whose chapter reads it; the others generate data.
    only
        Chapters or name patterns to run (see :func:`select`), with the
        notebooks whose results they read (:func:`cytobook.suite.needed_notebooks`).
    notebooks_dir, root
        Where the notebooks are and where run directories go.
    log
        Receives progress lines: one per notebook started and finished, one
        per cell that ran ``progress_after_s`` or longer, and one when a cell
        is still running after :data:`STILL_RUNNING_AFTER_S` (then at every doubling).
    run_dir
        An empty run directory made by :func:`cytobook.suite.new_run_dir`
        (a notebook run by hand fills its own, see :func:`prepare_earlier`);
        by default a new one under ``root``.
    jobs
        How many notebooks run at once, each in its own kernel: a notebook
        starts when the notebooks it reads have finished, so chapters run side
        by side. 1 (the default) runs them one after the other, in order;
        2 suits a 2-core machine, whose kernels use about 1.3 cores each. On
        a GPU the kernels share its memory: keep 1 unless the models are small.

    Returns
    -------
    Path
        The run directory.

    Raises
    ------
    SuiteFailed
        When a notebook fails (the message names it and the cell); later ones stay ``not run``.
    SuiteInterrupted
        On Ctrl-C: the running notebook is recorded as ``interrupted``, later ones as ``not run``.
    """
    from .datasets import DATASETS
    from .profiles import get_profile

    get_profile(profile)  # fail on a typo before making a run directory
    data_dirs = {name: Path(path).expanduser().resolve() for name, path in (data_dirs or {}).items()}
    for name, path in data_dirs.items():
        if name not in set(CHAPTERS.values()) | set(DATASETS):
            raise ValueError(f"--data-dir {name}=...: unknown data set; expected one of {', '.join(sorted(set(CHAPTERS.values())))}")
        if not path.exists():
            raise FileNotFoundError(f"--data-dir {name}={path}: no such folder")
    suite = discover(notebooks_dir)
    notebooks = select(suite, only)
    if not notebooks:
        raise ValueError("no notebooks to run")
    # A run holds what its notebooks read: `--only bagging` also runs report 1's notebooks that notebook 12 reads.
    chosen = {nb.name for nb in notebooks}
    added = {needed.name for nb in notebooks for needed in needed_notebooks(nb.name, suite)} - chosen
    if added:
        notebooks = [nb for nb in suite if nb.name in chosen | added]
        log(f"also running {', '.join(nb.name for nb in notebooks if nb.name in added)}: the selected notebooks read their results")

    if run_dir is None:
        run_dir = new_run_dir(profile, root=root)
    elif (run_dir / "manifest.json").exists():
        raise FileExistsError(f"{run_dir} already holds a run; a run is never written over")
    (run_dir / "notebooks").mkdir(parents=True, exist_ok=True)
    manifest = {
        "run_id": run_dir.name,
        "profile": profile,
        "seed": seed,
        "data_dirs": {k: str(v) for k, v in data_dirs.items()},
        "started": _now(),
        **describe_environment(),
        "notebooks": [
            {"name": nb.name, "chapter": nb.chapter, "status": "not run", "duration_s": None, "parameters": None}
            for nb in notebooks
        ],
    }
    io.write_json(run_dir / "manifest.json", manifest)
    log(f"run {run_dir.name}: {len(notebooks)} notebook(s), profile {profile}, backend {manifest['keras_backend']}, {manifest['device']}")
    return _execute(run_dir, manifest, list(zip(notebooks, manifest["notebooks"])), log, progress_after_s,
                    suite=suite, jobs=jobs)


def prepare_earlier(
    notebook: str,
    *,
    profile: str,
    seed: int,
    data_dir: Path | None,
    run_dir: Path,
    notebooks_dir: Path | None = None,
    log: Callable[[str], None] = print,
) -> Path | None:
    """Where a notebook run by hand (no ``run_dir``) reads the results of the notebooks it needs.

    The most recent run with the same profile, seed and data that ran all of
    them (:func:`cytobook.suite.run_holding`), which is only read; where there
    is none, they are executed first, through this runner with its progress
    lines, into the notebook's own new ``run_dir``.

    Returns
    -------
    Path or None
        The run holding them; ``None`` when the notebook needs none, or is
        not a notebook of a Cytobook checkout (then only ``run_dir`` is read).
    """
    try:
        notebooks = discover(notebooks_dir)
        needed = needed_notebooks(notebook, notebooks)
    except (ProjectLayoutError, ValueError):
        return None
    if not needed:
        return None
    names = [nb.name for nb in needed]
    data_dirs = {nb.dataset: None if data_dir is None else str(data_dir) for nb in needed}
    found = run_holding(names, profile=profile, seed=seed, data_dirs=data_dirs, runs=run_dir.parent)
    if found is not None:
        log(f"earlier   {', '.join(names)}: read from run {found}")
        return found
    log(f"earlier   no run of profile {profile}, seed {seed} holds {', '.join(names)}: running them first into {run_dir}")
    run_suite(profile, data_dirs={name: path for name, path in data_dirs.items() if path}, only=names, seed=seed,
              notebooks_dir=notebooks_dir, log=log, run_dir=run_dir)
    return run_dir


def resume_suite(
    run: str | os.PathLike,
    *,
    notebooks_dir: Path | None = None,
    log: Callable[[str], None] = print,
    progress_after_s: float = PROGRESS_AFTER_S,
    jobs: int = 1,
) -> Path:
    """Finish an interrupted or failed run (directory or id): execute, in order, its notebooks that are not ``ok``.

    They get the run's own profile, seed and data folders, from its manifest;
    completed notebooks and their files are never touched. What an earlier
    attempt left (notebook, metrics, artefacts) is first moved to
    ``interrupted/<name>-<n>/``, and recorded under the notebook's
    ``earlier_attempts``; the manifest lists the resumes under ``resumed``.
    ``notebooks_dir``, ``log``, ``progress_after_s`` and ``jobs`` are as for :func:`run_suite`.

    Raises
    ------
    ProjectLayoutError
        If ``run`` is not a run directory.
    ValueError
        If another process is still executing the run, or one of its notebooks is gone.
    FileNotFoundError
        If a data folder the run read is gone.
    SuiteFailed, SuiteInterrupted
        As for :func:`run_suite`.
    """
    run_dir = resolve_run(run)
    manifest = json.loads((run_dir / "manifest.json").read_text())
    pid = _executing_process(manifest)
    if pid is not None:
        raise ValueError(f"{run_dir.name} is still being executed by process {pid} on this host; stop it before resuming")
    records = [record for record in manifest["notebooks"] if record.get("status") != "ok"]
    if not records:
        log(f"run {run_dir.name}: every notebook is ok, nothing to resume")
        return run_dir
    suite = discover(notebooks_dir)
    available = {nb.name: nb for nb in suite}
    missing = [record["name"] for record in records if record["name"] not in available]
    if missing:
        where = notebooks_dir or "notebooks/"
        raise ValueError(f"{run_dir.name} needs notebooks that are no longer in {where}: {', '.join(missing)}")
    for name, path in manifest["data_dirs"].items():
        if not Path(path).exists():
            raise FileNotFoundError(f"{run_dir.name} read {name} from {path}, which no longer exists")

    for record in records:
        _set_aside(run_dir, record)
    manifest.setdefault("resumed", []).append(_now())
    io.write_json(run_dir / "manifest.json", manifest)
    log(f"resume {run_dir.name}: {len(records)} of {len(manifest['notebooks'])} notebook(s) to run, "
        f"profile {manifest['profile']}, seed {manifest['seed']}")
    commit = _git_commit()
    if commit != manifest.get("commit"):
        log(f"note: the run started at commit {manifest.get('commit')}; the checkout is now at {commit}")
    todo = [(available[record["name"]], record) for record in records]
    return _execute(run_dir, manifest, todo, log, progress_after_s, suite=suite, jobs=jobs)


def _dependencies(todo: Sequence[tuple[SuiteNotebook, dict[str, Any]]], suite: Sequence[SuiteNotebook]) -> dict[str, set[str]]:
    """For each notebook of ``todo``, those of ``todo`` it must wait for (:func:`cytobook.suite.needed_notebooks`).

    Notebooks it needs that are not in ``todo`` already ran (a resume keeps the ``ok`` ones).
    """
    names = {nb.name for nb, _ in todo}
    return {nb.name: {needed.name for needed in needed_notebooks(nb.name, list(suite))} & names for nb, _ in todo}


def _execute(
    run_dir: Path,
    manifest: dict[str, Any],
    todo: Sequence[tuple[SuiteNotebook, dict[str, Any]]],
    log: Callable[[str], None],
    progress_after_s: float,
    *,
    suite: Sequence[SuiteNotebook],
    jobs: int = 1,
) -> Path:
    """The execution loop of a fresh run and of a resume: run ``todo``, keeping the manifest current.

    ``todo`` pairs each notebook with its record in ``manifest["notebooks"]``.
    Up to ``jobs`` notebooks run at once, each in its own kernel, started in
    ``todo``'s order as soon as the notebooks it reads (among ``suite``) are
    done; with ``jobs=1`` that is the suite's order. After a failure or Ctrl-C
    no notebook is started; those running finish (or are interrupted with the
    Ctrl-C), so that every result kept is whole.
    """
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ValueError(f"jobs must be a positive whole number, got {jobs!r}")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # inherited by the kernels
    if jobs > 1:
        # Kernels sharing a GPU take its memory as they need it (JAX takes 75 % at start, TensorFlow all of it).
        os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
        os.environ.setdefault("TF_FORCE_GPU_ALLOW_GROWTH", "true")
    session = _Session(run_dir, manifest, log)
    needs = _dependencies(todo, suite)
    pending = [(f"[{index}/{len(todo)}]", nb, record) for index, (nb, record) in enumerate(todo, start=1)]
    running: dict[Future, tuple[str, _NotebookWatch]] = {}
    done: set[str] = set()
    failures: list[SuiteFailed] = []
    interrupted: list[str] = []
    # Lets a resume tell a run still being executed from a stopped one.
    manifest["executing"] = {"host": platform.node(), "pid": os.getpid()}
    ctrl_c = _CtrlC(lambda: [watch for _, watch in running.values()])
    try:
        with ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="notebook") as pool, ctrl_c.installed():
            try:
                while running or (pending and not (failures or interrupted or ctrl_c.pressed)):
                    if not (failures or interrupted or ctrl_c.pressed):
                        ready = [item for item in pending if needs[item[1].name] <= done][: jobs - len(running)]
                        for item in ready:
                            pending.remove(item)
                            counter, nb, record = item
                            watch = _NotebookWatch(session.log, progress_after_s, run_dir / KERNEL_LOGS / f"{nb.name}.log",
                                                   prefix=f"{nb.name}: " if jobs > 1 else "")
                            running[pool.submit(session.run_notebook, counter, nb, record, watch)] = (nb.name, watch)
                        if not running:  # cannot happen: todo is in suite order, so a notebook's needs come first
                            raise RuntimeError(f"no notebook can start: {[item[1].name for item in pending]} wait for "
                                               "notebooks that are not in this run")
                    finished, _ = wait(list(running), timeout=1.0, return_when=FIRST_COMPLETED)
                    for future in finished:
                        name, _ = running.pop(future)
                        _collect(future, name, done, failures, interrupted)
            except KeyboardInterrupt:
                # Ctrl-C pressed again, the kernels did not stop: kill them, and wait for their notebooks to be saved.
                for _, watch in running.values():
                    watch.kill()
                for future, (name, _) in list(running.items()):
                    _collect(future, name, done, failures, interrupted, wait_s=60.0)
                if not interrupted:
                    interrupted.append(pending[0][1].name if pending else "the run")
    finally:
        manifest.pop("executing", None)
        session.save()
    if ctrl_c.pressed and not interrupted:  # Ctrl-C between two notebooks
        interrupted.append(pending[0][1].name if pending else todo[-1][0].name)
    if interrupted:
        order = {nb.name: index for index, (nb, _) in enumerate(todo)}
        raise SuiteInterrupted(run_dir, ", ".join(sorted(interrupted, key=lambda name: order.get(name, len(order)))))
    if failures:
        raise failures[0]
    session.log(f"all {len(todo)} notebook(s) ran in {format_duration(session.elapsed(), compact=True)}")
    return run_dir


def _collect(future: Future, name: str, done: set[str], failures: list[SuiteFailed], interrupted: list[str],
             wait_s: float | None = None) -> None:
    """File a finished notebook's outcome under ``done``, ``failures`` or ``interrupted``."""
    try:
        future.result(timeout=wait_s)
    except SuiteFailed as failure:
        failures.append(failure)
    except (_Interrupted, FutureTimeout, KeyboardInterrupt):
        interrupted.append(name)
    else:
        done.add(name)


class _Interrupted(Exception):
    """A notebook was stopped by Ctrl-C; its record says ``interrupted``."""


class _Session:
    """What the notebooks running at once share: the run directory, its manifest and the log."""

    def __init__(self, run_dir: Path, manifest: dict[str, Any], log: Callable[[str], None]):
        self.run_dir = run_dir
        self.manifest = manifest
        self._log = log
        self._lock = threading.RLock()  # one writer of the manifest and the log at a time
        self._start = time.perf_counter()
        self._earlier_s = float(manifest.get("duration_s") or 0.0)  # a resumed run adds to its earlier sessions

    def elapsed(self) -> float:
        return time.perf_counter() - self._start

    def log(self, line: str) -> None:
        with self._lock:
            self._log(line)

    def save(self) -> None:
        with self._lock:
            self.manifest["duration_s"] = round(self._earlier_s + self.elapsed(), 1)
            io.write_json(self.run_dir / "manifest.json", self.manifest)

    def run_notebook(self, counter: str, nb: SuiteNotebook, record: dict[str, Any], watch: _NotebookWatch) -> None:
        """Execute one notebook with papermill into the run, and record how it went.

        Raises
        ------
        SuiteFailed
            When it fails (the message names the cell), after recording it.
        _Interrupted
            When Ctrl-C stopped it.
        """
        import papermill
        from papermill.exceptions import PapermillExecutionError

        tag = f"{counter} {nb.name}"
        output = self.run_dir / "notebooks" / nb.path.name
        try:
            with self._lock:
                record.update(status="running", duration_s=None, parameters=_parameters(self.manifest, nb, self.run_dir))
                self.save()
            self.log(f"{tag} ...")
            # The kernel starts in the notebook's folder. Not papermill's cwd=, which changes this whole
            # process's working directory: two notebooks running at once would restore each other's.
            papermill.execute_notebook(
                str(nb.path), str(output), parameters=record["parameters"], progress_bar=False, log_output=False,
                resources={"metadata": {"path": str(nb.path.parent)}}, **watch.engine_kwargs(),
            )
            if watch.interrupted:  # Ctrl-C after the last cell: stop all the same
                raise KeyboardInterrupt
            figures = export_figures(output, self.run_dir / "artifacts" / nb.name / "figures")
            with self._lock:
                record.update(status="ok", duration_s=round(watch.elapsed(), 1), figures=len(figures))
                self.save()
            self.log(f"{tag} done in {format_duration(watch.elapsed(), compact=True)}")
        except BaseException as error:
            with self._lock:
                record["duration_s"] = round(watch.elapsed(), 1)
                if watch.interrupted or isinstance(error, KeyboardInterrupt):
                    record["status"] = "interrupted"
                    self.save()
                    raise _Interrupted(nb.name) from None
                if not isinstance(error, Exception):
                    raise
                if isinstance(error, PapermillExecutionError):
                    first_line = _first_line(error.source or "")
                    where = (f"cell [{error.exec_count}] (cell {error.cell_index + 1} of the executed notebook"
                             + (f", starting `{_shorten(first_line, 60)}`)" if first_line else ")"))
                    problem = f"{where}: {error.ename}: {error.evalue}"
                    message = f"{nb.name} failed in {problem}"
                else:  # the kernel died (out of memory?), a timeout, papermill refused the notebook...
                    problem = f"{type(error).__name__}: {error}"
                    message = f"{nb.name} failed: {problem}"
                    if watch.kernel_log.exists():  # not when papermill refused the notebook before a kernel started
                        message += f"\n  the kernel's own output: {watch.kernel_log}"
                record.update(status="failed", error=problem)
                self.save()
            message += f"\n  executed notebook with the traceback: {output}"
            self.log(f"{counter} {message}")
            raise SuiteFailed(message, self.run_dir) from (None if isinstance(error, PapermillExecutionError) else error)
        finally:
            watch.stop()


class _CtrlC:
    """Ctrl-C during a run: the first press interrupts the running notebooks' kernels and starts no other notebook.

    A press 2 s or more after the first raises KeyboardInterrupt (the kernels
    did not stop); an earlier one is impatience and is ignored. Installed only
    from the main thread; elsewhere Ctrl-C stays a plain KeyboardInterrupt.
    """

    def __init__(self, running: Callable[[], list[_NotebookWatch]]):
        self.running = running
        self.pressed = False
        self._pressed_at = 0.0

    @contextmanager
    def installed(self) -> Iterator[None]:
        try:
            previous = signal.signal(signal.SIGINT, self._on_sigint)
        except ValueError:  # not the main thread
            yield
            return
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, previous)

    def _on_sigint(self, signum: int, frame: Any) -> None:
        if self.pressed:
            if time.monotonic() - self._pressed_at < 2.0:
                return
            raise KeyboardInterrupt
        self.pressed = True
        self._pressed_at = time.monotonic()
        for watch in self.running():
            watch.interrupt()


class _Stop(Exception):
    """Raised by a hook to stop the notebook before its next cell (after Ctrl-C)."""


class _NotebookWatch:
    """Watches one notebook's execution: logs slow cells and turns Ctrl-C into a kernel interrupt.

    Its methods are nbclient hooks, passed through papermill; :class:`_CtrlC`
    calls :meth:`interrupt`. Interrupting the kernel (as Jupyter's stop button
    does) rather than raising here lets nbclient save the notebook with the
    interrupted cell's traceback.
    """

    def __init__(self, log: Callable[[str], None], after_s: float, kernel_log: Path, prefix: str = ""):
        self.log = log
        self.after_s = after_s
        self.prefix = prefix  # names the notebook on its cells' lines when several run at once
        self.kernel_log = kernel_log  # the kernel's stdout and stderr are appended there
        self.interrupted = False
        self.kernel: Any = None  # the notebook's kernel manager, once nbclient made it
        self._start = time.perf_counter()
        self._cells = 0
        self._cell: tuple[str, float] | None = None  # label and start of the running cell
        self._timer: threading.Timer | None = None
        self._lock = threading.Lock()  # the timer's thread logs too

    def elapsed(self) -> float:
        """Seconds since the notebook started (kernel start-up included)."""
        return time.perf_counter() - self._start

    def engine_kwargs(self) -> dict[str, Any]:
        """Keywords for :func:`papermill.execute_notebook`, passed on to nbclient."""
        from jupyter_client import AsyncKernelManager

        watch = self

        class WatchedKernelManager(AsyncKernelManager):
            """Remembers itself, so that Ctrl-C can interrupt the kernel it starts."""

            def __init__(self, **kwargs: Any):
                super().__init__(**kwargs)
                watch.kernel = self

            async def _async_launch_kernel(self, kernel_cmd: list[str], **kw: Any) -> None:
                watch.kernel_log.parent.mkdir(parents=True, exist_ok=True)
                # The kernel process gets its own copy of the file descriptor.
                with watch.kernel_log.open("ab") as output:
                    await super()._async_launch_kernel(kernel_cmd, stdout=output, stderr=output, **kw)

        return {
            "kernel_manager_class": WatchedKernelManager,
            "on_notebook_start": self._notebook_started,
            "on_cell_execute": self._cell_started,
            "on_cell_executed": self._cell_finished,
        }

    def interrupt(self) -> None:
        """Interrupt the kernel, as Jupyter's stop button does; without a kernel yet, stop before the first cell."""
        self.interrupted = True
        self._signal_kernel(signal.SIGINT)

    def kill(self) -> None:
        """Kill the kernel (it ignored the interrupt); nbclient then saves the notebook as it stands."""
        self.interrupted = True
        self._signal_kernel(signal.SIGKILL if hasattr(signal, "SIGKILL") else signal.SIGTERM)

    def _signal_kernel(self, signum: int) -> None:
        # The kernel runs in its own process group (jupyter_client starts it in a new session).
        pgid = getattr(getattr(self.kernel, "provisioner", None), "pgid", None)
        if pgid and hasattr(os, "killpg") and pgid != os.getpgrp():
            try:
                os.killpg(pgid, signum)
            except OSError:
                pass  # already gone; nbclient reports it

    def _notebook_started(self, notebook: Any) -> None:
        self._cells = len(notebook.cells)

    def _cell_started(self, cell: Any, cell_index: int) -> None:
        if self.interrupted:
            raise _Stop("interrupted")
        label = f"cell {cell_index + 1}/{self._cells} `{_shorten(_first_line(cell.source), 50)}`"
        with self._lock:
            self._cell = (label, time.perf_counter())
            self._arm(STILL_RUNNING_AFTER_S)

    def _arm(self, delay_s: float) -> None:
        self._timer = threading.Timer(delay_s, self._still_running)
        self._timer.daemon = True
        self._timer.start()

    def _still_running(self) -> None:
        with self._lock:
            if self._cell is None:
                return
            label, start = self._cell
            running = time.perf_counter() - start
            self.log(f"    {self.prefix}{label} still running after {format_duration(running, compact=True)}")
            self._arm(running)  # next notice when its time has doubled: a few lines even for hours

    def _cell_finished(self, cell: Any, cell_index: int, execute_reply: Any) -> None:
        with self._lock:
            if self._cell is None:
                return
            label, start = self._cell
            self._cell = None
            if self._timer is not None:
                self._timer.cancel()
        took = time.perf_counter() - start
        if took >= self.after_s:
            self.log(f"    {self.prefix}{label} {format_duration(took, compact=True)} "
                     f"({format_duration(self.elapsed(), compact=True)} so far)")

    def stop(self) -> None:
        """Cancel the pending still-running notice."""
        with self._lock:
            self._cell = None
            if self._timer is not None:
                self._timer.cancel()


def _parameters(manifest: dict[str, Any], nb: SuiteNotebook, run_dir: Path) -> dict[str, Any]:
    """What papermill injects into ``nb``: the run's profile and seed, and its data folder for ``nb``'s data set."""
    return {"profile": manifest["profile"], "data_dir": manifest["data_dirs"].get(nb.dataset),
            "run_dir": str(run_dir), "seed": manifest["seed"]}


def _set_aside(run_dir: Path, record: dict[str, Any]) -> None:
    """Move what an earlier attempt at ``record``'s notebook left to ``interrupted/<name>-<n>/``; reset the record.

    The files keep their place relative to the run directory (``interrupted/<name>-1/metrics/<name>.json``...).
    """
    name = record["name"]
    leftovers = [path for path in (run_dir / "notebooks" / f"{name}.ipynb", run_dir / "metrics" / f"{name}.json",
                                   run_dir / "artifacts" / name) if path.exists()]
    attempt = {key: record[key] for key in ("status", "duration_s", "error") if record.get(key) is not None}
    if leftovers:
        number = 1
        while (run_dir / "interrupted" / f"{name}-{number}").exists():
            number += 1
        folder = run_dir / "interrupted" / f"{name}-{number}"
        for path in leftovers:
            target = folder / path.relative_to(run_dir)
            target.parent.mkdir(parents=True, exist_ok=True)
            path.rename(target)
        attempt["set_aside"] = str(folder.relative_to(run_dir))
    if leftovers or record.get("status") != "not run":
        record.setdefault("earlier_attempts", []).append(attempt)
    for key in ("error", "figures"):
        record.pop(key, None)
    record.update(status="not run", duration_s=None)


def _executing_process(manifest: dict[str, Any]) -> int | None:
    """The process id of another process on this host still executing the run, else ``None``."""
    owner = manifest.get("executing") or {}
    pid = owner.get("pid")
    if os.name != "posix" or owner.get("host") != platform.node() or not isinstance(pid, int) or pid == os.getpid():
        return None
    try:
        os.kill(pid, 0)  # signal 0 only checks that the process exists
    except ProcessLookupError:
        return None  # the run was killed without clean-up
    except PermissionError:
        pass  # it exists, under another user
    return pid


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _first_line(source: str) -> str:
    """The first non-blank line of a cell's source, stripped."""
    return next((line.strip() for line in source.splitlines() if line.strip()), "")


def _shorten(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."
