"""The set-up every notebook makes right after its ``parameters`` cell.

:func:`start` turns the four papermill parameters (``profile``, ``data_dir``,
``run_dir``, ``seed``) into a :class:`NotebookRun`: the resolved profile,
where the data and the run's artefacts live, seeds set once, and a printed
configuration so that every executed notebook states what produced it.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import io
from .profiles import PROFILE_ENV, Profile, get_profile

def _import_keras_quietly():
    """Import Keras with the process's standard error silenced for the duration.

    TensorFlow's C++ start-up lines (oneDNN, absl) ignore
    ``TF_CPP_MIN_LOG_LEVEL`` and would otherwise open every notebook. Errors
    still surface: a failed import raises after standard error is restored.
    """
    if "keras" in sys.modules:
        return sys.modules["keras"]
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            try:
                import keras
            finally:
                os.dup2(saved, 2)
    finally:
        os.close(saved)
    return keras


# Import time, so that a notebook's own `import keras` after this module is quiet too.
_import_keras_quietly()
# TensorFlow's Python logger warns about function retracing whenever several models of a
# notebook predict in turn: expected here, and noise in a saved notebook.
logging.getLogger("tensorflow").setLevel(logging.ERROR)

#: Set by the test suite so that all notebooks of one session share one run.
RUN_DIR_ENV = "CYTOBOOK_RUN_DIR"


@dataclass
class NotebookRun:
    """What a notebook needs to know about its own execution.

    Attributes
    ----------
    notebook
        The notebook's stem, e.g. ``"01_data_cnmc_tour"``, naming its metrics file and artefact folder.
    profile
        The resolved :class:`~cytobook.profiles.Profile`.
    data_dir
        A real data set given by the user, or ``None`` for generated data.
    run_dir
        The run directory, where this notebook writes.
    seed
        The one seed every random choice derives from.
    earlier_run
        Where earlier notebooks' results are read: ``run_dir`` by default; for
        a notebook run by hand, the run :func:`cytobook.runner.prepare_earlier` found.
    """

    notebook: str
    profile: Profile
    data_dir: Path | None
    run_dir: Path
    seed: int
    earlier_run: Path | None = None
    _written: set[Path] = field(default_factory=set, repr=False)

    @property
    def artifacts(self) -> Path:
        """This notebook's artefact folder, created on first use."""
        path = self.run_dir / "artifacts" / self.notebook
        path.mkdir(parents=True, exist_ok=True)
        return path

    def artifact(self, *parts: str) -> Path:
        """Path of one artefact of this notebook (parent folders created)."""
        path = self.artifacts.joinpath(*parts)
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def earlier_artifact(self, notebook: str, *parts: str) -> Path:
        """Path of an artefact that an earlier notebook wrote in :attr:`earlier_run` (a FileNotFoundError names it)."""
        return self._earlier(notebook, self._earlier_root.joinpath("artifacts", notebook, *parts))

    def earlier_metrics(self, notebook: str) -> dict[str, Any]:
        """The metrics an earlier notebook saved in :attr:`earlier_run` (a FileNotFoundError names it)."""
        return json.loads(self._earlier(notebook, self._earlier_root / "metrics" / f"{notebook}.json").read_text())

    @property
    def _earlier_root(self) -> Path:
        return self.earlier_run or self.run_dir

    def _earlier(self, notebook: str, path: Path) -> Path:
        if not path.exists():
            raise FileNotFoundError(f"{path} does not exist: run notebook {notebook} with "
                                    f"run_dir={str(self._earlier_root)!r} first (cytobook run does this in order)")
        return path

    def dataset(self, name: str) -> Path:
        """Root of data set ``name``: the user's ``data_dir``, else :func:`cytobook.datasets.generated` data."""
        if self.data_dir is not None:
            if not self.data_dir.exists():
                raise FileNotFoundError(f"data_dir {self.data_dir} does not exist (expected a copy of {name})")
            return self.data_dir
        from .datasets import generated

        return generated(name, self.profile, self.seed)

    @property
    def data_label(self) -> str:
        """How results are labelled: real data, or a pipeline check on generated data."""
        if self.data_dir is None:
            return f"generated data (profile {self.profile.name}, seed {self.seed}): a pipeline check, not comparable with published numbers"
        return f"data at {self.data_dir}"

    def save_metrics(self, metrics: dict[str, Any]) -> Path:
        """Write ``metrics`` (possibly nested per model) and a ``provenance`` to ``<run_dir>/metrics/<notebook>.json``.

        A notebook may rewrite its own file while it runs, never one left by an earlier execution.
        """
        path = self.run_dir / "metrics" / f"{self.notebook}.json"
        if path.exists() and path not in self._written:
            raise FileExistsError(f"{path} was written by an earlier execution; start a new run instead of overwriting it")
        provenance = {"notebook": self.notebook, "profile": self.profile.name, "data": self.data_label, "seed": self.seed}
        io.write_json(path, {**metrics, "provenance": provenance})
        self._written.add(path)
        return path


def start(
    notebook: str,
    *,
    profile: str = "demo",
    data_dir: str | os.PathLike | None = None,
    run_dir: str | os.PathLike | None = None,
    seed: int = 0,
    quiet: bool = False,
) -> NotebookRun:
    """Resolve a notebook's parameters, set the seeds and print the configuration.

    Parameters
    ----------
    notebook
        The notebook's stem.
    profile
        Profile name; ``$CYTOBOOK_PROFILE`` overrides it (the tests use this).
    data_dir
        A real copy of the data set, or ``None`` for generated data.
    run_dir
        The run directory made by ``cytobook run``, which must hold the
        results of the notebooks this one needs. ``None`` (a notebook opened
        by hand, or run by plain papermill) uses ``$CYTOBOOK_RUN_DIR`` (the
        tests) or makes a new run directory for this notebook's results, and
        reads the earlier notebooks' results from the latest run that holds
        them, or runs them first (:func:`cytobook.runner.prepare_earlier`).
    seed
        Seeds Python, NumPy and the Keras backend.
    quiet
        Skip the printed configuration.
    """
    import keras

    resolved = get_profile(os.environ.get(PROFILE_ENV) or profile)
    if run_dir is None and os.environ.get(RUN_DIR_ENV):
        run_dir = os.environ[RUN_DIR_ENV]
    by_hand = run_dir is None
    if by_hand:
        from .suite import new_run_dir

        run_dir = new_run_dir(resolved.name, suffix="interactive")
    run = NotebookRun(
        notebook=notebook,
        profile=resolved,
        data_dir=Path(data_dir).expanduser().resolve() if data_dir else None,
        run_dir=Path(run_dir).resolve(),
        seed=int(seed),
    )
    if by_hand:
        from .runner import prepare_earlier

        run.earlier_run = prepare_earlier(notebook, profile=resolved.name, seed=run.seed, data_dir=run.data_dir,
                                          run_dir=run.run_dir)
    metrics = run.run_dir / "metrics" / f"{notebook}.json"
    if metrics.exists():
        raise FileExistsError(f"{metrics} exists: {run.run_dir} already holds results of {notebook}; use a new run_dir")
    keras.utils.set_random_seed(run.seed)
    if not quiet:
        note = f" (from ${PROFILE_ENV}; the parameter said {profile!r})" if resolved.name != profile else ""
        print(f"notebook  {notebook}")
        print(f"profile   {resolved.name}{note}: {resolved.purpose}")
        print(f"data      {run.data_label}")
        print(f"run_dir   {run.run_dir}")
        if run.earlier_run not in (None, run.run_dir):
            print(f"reads     the results of earlier notebooks from {run.earlier_run} (never written to)")
        print(f"seed      {run.seed}")
        print(f"keras     {keras.__version__}, backend {keras.backend.backend()}, {describe_device()}")
    return run


def describe_device() -> str:
    """One line naming the accelerator the Keras backend will use, else the CPU."""
    import keras

    backend = keras.backend.backend()
    try:
        if backend == "tensorflow":
            import tensorflow as tf

            gpus = tf.config.list_logical_devices("GPU")
            if gpus:
                return f"{len(gpus)} GPU(s): " + ", ".join(g.name for g in gpus)
        elif backend == "jax":
            import jax

            devices = [d for d in jax.devices() if d.platform != "cpu"]
            if devices:
                return ", ".join(d.device_kind for d in devices)
        elif backend == "torch":
            import torch

            if torch.cuda.is_available():
                return torch.cuda.get_device_name(0)
    except Exception as error:  # a broken driver must not stop the notebook
        return f"CPU (accelerator query failed: {error})"
    return f"CPU ({platform.processor() or platform.machine()}, {os.cpu_count()} cores)"
