"""``cytobook book``: build the HTML Jupyter Book of one run, without executing anything.

A run made by ``cytobook run`` holds executed notebooks, metrics and artefacts::

    runs/<run-id>/manifest.json
    runs/<run-id>/notebooks/NN_<chapter>_<topic>.ipynb
    runs/<run-id>/metrics/<notebook>.json
    runs/<run-id>/artifacts/<notebook>/...

:func:`build_book` stages a book source folder at ``runs/<run-id>/book/`` with
the repository's layout (``_config.yml``, ``book/``, ``notebooks/``), a
generated ``_toc.yml`` and a page ``book/run.md`` describing the run, and
builds it with ``jupyter-book build --builder html``, execution off. Only the
staging folder is written.

:func:`run_facts` computes what the page *This run* states (:class:`RunFacts`,
:class:`NotebookFacts`); the Jinja template :data:`TEMPLATE` holds all the
wording and layout of the generated Markdown.

The copies of the notebooks lose two things: the papermill cell tagged
``injected-parameters`` (its values are listed on *This run*, and it would
show machine-specific paths) and the stderr lines of TensorFlow/absl start-up
logging (:data:`STARTUP_NOISE`). Other stderr, such as Python warnings, is part
of the record and kept.
"""

from __future__ import annotations

import copy
import functools
import json
import math
import os
import re
import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path
from typing import Any

from . import io
from .suite import CHAPTERS, parse_notebook_name, project_root, resolve_run

__all__ = [
    "CHAPTERS",
    "PARTS",
    "STARTUP_NOISE",
    "BookBuildError",
    "BookError",
    "NotebookFacts",
    "RunFacts",
    "build_book",
    "clean_notebook",
    "format_duration",
    "group_notebooks",
    "make_toc",
    "notebook_chapter",
    "run_facts",
    "run_notebooks_section",
    "run_page",
    "stage_book",
    "toc_yaml",
]

#: Folder of the book's own pages, inside the repository and inside the staging copy.
PAGES_DIR = "book"
NOTEBOOKS_DIR = "notebooks"
#: Generated page describing the run (``book/run.md`` in the staging copy).
RUN_PAGE = "run"
#: Line of an overview page replaced by the list of the run's notebooks for that report.
RUN_NOTEBOOKS_MARKER = "<!-- cytobook:run-notebooks -->"
#: Wording and layout of the generated Markdown, inside the package (Jinja macros).
TEMPLATE = "templates/book.md.jinja"
#: Characters of a metrics file shown on the page *This run*; the rest is cut.
METRICS_LIMIT = 20_000


@dataclass(frozen=True)
class Part:
    """One part of the book: a caption and, for a report, its overview page."""

    chapter: str
    caption: str
    overview: str | None


PARTS: dict[str, Part] = {
    "data": Part("data", "Introduction", None),
    "cnmc": Part(
        "cnmc",
        "Report 1 · Classification of B-Cell Lymphoblasts versus Normal Cells in White Blood Cells Microscopic Images",
        "cnmc",
    ),
    "bagging": Part("bagging", "Report 2 · An Inception-ResNet-V2 bagging ensemble (C-NMC 2019)", "bagging"),
    "wbc_unet": Part("wbc_unet", "Report 3 · CS5242 Project Report: a UNet multitask network for white blood cells", "wbc_unet"),
    "lymphocytosis": Part("lymphocytosis", "Report 4 · Challenge Report: Lymphocytosis Classification", "lymphocytosis"),
    "hep2": Part("hep2", "Report 5 · Recognition of antinuclear antibody patterns using machine learning", "hep2"),
}

#: stderr lines removed from the copies: TensorFlow/absl/XLA start-up logging,
#: which depends on the machine and says nothing about the results.
STARTUP_NOISE: tuple[re.Pattern[str], ...] = tuple(
    re.compile(pattern)
    for pattern in (
        # TensorFlow C++ logging: "2025-01-01 12:00:00.123456: I tensorflow/core/...cc:153] ..."
        r"^\s*\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d+)?: [IWEF] (tensorflow|external|xla|third_party|tsl)/\S+:\d+\]",
        # absl / glog format: "W0000 00:00:1700000000.123456   12345 gpu_device.cc:2344] ..."
        r"^\s*[IWEF]\d{4} [\d:]+\.\d+\s+\d+ \S+:\d+\]",
        r"^\s*WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR",
        # second line of TensorFlow's CPU feature message
        r"^\s*To enable the following instructions: .*rebuild TensorFlow with the appropriate compiler flags\.",
        r"^\s*Matplotlib is building the font cache; this may take a moment\.",
    )
)


class BookError(RuntimeError):
    """The book cannot be staged: no project root, no run, a malformed run."""


class BookBuildError(BookError):
    """``jupyter-book build`` failed; the message ends with the tail of its log, kept whole at ``log_path``."""

    def __init__(self, message: str, log_path: Path | None = None):
        super().__init__(message)
        self.log_path = log_path


# --------------------------------------------------------------------------- table of contents


def _stem(name: str) -> str:
    return Path(name).name.removesuffix(".ipynb")


def notebook_chapter(name: str) -> str:
    """The chapter of a notebook named ``NN_<chapter>_<topic>`` (``.ipynb`` optional)."""
    return parse_notebook_name(name).chapter


def _order(stem: str) -> tuple[int, str]:
    return int(stem.split("_", 1)[0]), stem


def group_notebooks(names: Iterable[str]) -> dict[str, list[str]]:
    """Notebook stems by chapter, each list in ``NN`` order (every chapter present)."""
    groups: dict[str, list[str]] = {chapter: [] for chapter in CHAPTERS}
    for name in names:
        groups[notebook_chapter(name)].append(_stem(name))
    for stems in groups.values():
        stems.sort(key=_order)
    return groups


def make_toc(names: Iterable[str], *, run_page: bool = True) -> dict[str, Any]:
    """The ``_toc.yml`` (jb-book format) for a book holding the notebooks ``names``.

    The root is ``book/intro``; then a part *Introduction* (the run page and the
    ``data`` notebooks), one part per report (its overview page, then its
    notebooks in ``NN`` order) and the bibliography. A ``ValueError`` names a
    notebook without a known chapter.
    """
    groups = group_notebooks(names)

    def page(name: str) -> dict[str, str]:
        return {"file": f"{PAGES_DIR}/{name}"}

    def notebooks(chapter: str) -> list[dict[str, str]]:
        return [{"file": f"{NOTEBOOKS_DIR}/{stem}"} for stem in groups[chapter]]

    intro = ([page(RUN_PAGE)] if run_page else []) + notebooks("data")
    parts: list[dict[str, Any]] = []
    if intro:
        parts.append({"caption": PARTS["data"].caption, "chapters": intro})
    for chapter in list(CHAPTERS)[1:]:
        part = PARTS[chapter]
        parts.append({"caption": part.caption, "chapters": [page(part.overview)] + notebooks(chapter)})
    parts.append({"caption": "References", "chapters": [page("bibliography")]})
    return {"format": "jb-book", "root": f"{PAGES_DIR}/intro", "parts": parts}


def toc_yaml(names: Iterable[str], *, run_page: bool = True) -> str:
    """:func:`make_toc` as YAML text."""
    import yaml

    header = "# Generated by `cytobook book`; edit cytobook/book.py, not this file.\n"
    return header + yaml.safe_dump(make_toc(names, run_page=run_page), sort_keys=False, allow_unicode=True)


# --------------------------------------------------------------------------- notebooks


def _text(value: str | list[str]) -> str:
    return "".join(value) if isinstance(value, list) else value


def _is_noise(line: str) -> bool:
    return any(pattern.search(line) for pattern in STARTUP_NOISE)


def clean_notebook(notebook: Mapping[str, Any]) -> tuple[dict[str, Any], int]:
    """A copy of an executed notebook for the book, and the number of stderr lines removed.

    The ``injected-parameters`` cell gets the ``remove-cell`` tag and stderr
    lines matching :data:`STARTUP_NOISE` are dropped (a stream left empty is
    removed); everything else is kept.
    """
    notebook = copy.deepcopy(dict(notebook))
    removed = 0
    for cell in notebook.get("cells", []):
        tags = cell.setdefault("metadata", {}).get("tags", [])
        if "injected-parameters" in tags and "remove-cell" not in tags:
            cell["metadata"]["tags"] = [*tags, "remove-cell"]
        if cell.get("cell_type") != "code":
            continue
        outputs = []
        for output in cell.get("outputs", []):
            if output.get("output_type") == "stream" and output.get("name") == "stderr":
                lines = _text(output.get("text", "")).splitlines(keepends=True)
                kept = [line for line in lines if not _is_noise(line)]
                removed += len(lines) - len(kept)
                if not "".join(kept).strip():
                    continue
                output = {**output, "text": "".join(kept)}
            outputs.append(output)
        cell["outputs"] = outputs
    return notebook, removed


# --------------------------------------------------------------------------- the run's notebooks


@dataclass
class _Notebook:
    stem: str
    chapter: str
    entry: dict[str, Any]  # the manifest's entry ({} when the manifest does not list it)
    path: Path | None  # the executed notebook, when the run holds one
    removed_lines: int = 0

    @property
    def status(self) -> str:
        return str(self.entry.get("status", "unknown" if self.path else "not run"))

    @property
    def shown(self) -> bool:
        return self.path is not None and self.status != "not run"


# --------------------------------------------------------------------------- pages of the run


@dataclass(frozen=True)
class NotebookFacts:
    """One notebook of the run, as the book's pages state it.

    Attributes
    ----------
    stem, chapter
        ``NN_<chapter>_<topic>`` and its chapter (a key of :data:`PARTS`).
    status
        The manifest's status (``ok``, ``failed``, ``not run``...); ``unknown``
        for an executed copy the manifest does not list.
    shown
        Whether the book holds its page (the run has an executed copy and the notebook ran).
    link
        Target of a ``{doc}`` role to its page, from ``book/``; ``None`` when not shown.
    duration_s, data
        Seconds it ran, and ``"real"`` or ``"generated"`` data; ``None`` when not shown (or not recorded).
    data_dir, parameters
        The real data folder it was given and the values papermill injected, if recorded.
    metrics, metrics_cut
        The text of ``metrics/<stem>.json`` (``None`` without one), and whether
        it was cut after :data:`METRICS_LIMIT` characters.
    removed_lines
        stderr lines of start-up logging removed from its copy.
    """

    stem: str
    chapter: str
    status: str
    shown: bool
    link: str | None
    duration_s: float | None
    data: str | None
    data_dir: str | None
    parameters: dict[str, Any] | None
    metrics: str | None
    metrics_cut: bool
    removed_lines: int


@dataclass(frozen=True)
class RunFacts:
    """Everything the page *This run* states, computed from the run's files.

    The wording and layout are in :data:`TEMPLATE`; this holds values only.
    A manifest field that is missing or empty is ``None``.

    Attributes
    ----------
    run_id, profile, seed, commit, keras_backend, device, started, python
        The manifest's fields, as text.
    profile_purpose
        What the profile is for (:data:`cytobook.profiles.PROFILES`), when known.
    duration_s
        The whole run's duration in seconds.
    data_dirs
        The ``--data-dir`` choices by data set: ``{}`` when all was generated, ``None`` when not recorded.
    run_folder, built
        The run directory (relative to the project root when inside it), and when the book was staged (UTC).
    notebooks, status_counts
        The manifest's and the run's notebooks in book order, and their numbers by status.
    removed_lines, packages
        stderr lines removed from all copies, and package versions sorted by name.
    """

    run_id: str | None
    profile: str | None
    profile_purpose: str | None
    seed: str | None
    commit: str | None
    keras_backend: str | None
    device: str | None
    started: str | None
    python: str | None
    duration_s: float | None
    data_dirs: dict[str, str] | None
    run_folder: str
    built: str
    notebooks: tuple[NotebookFacts, ...]
    status_counts: dict[str, int]
    removed_lines: int
    packages: dict[str, str]


def _recorded(value: Any) -> str | None:
    return None if value in (None, "") else str(value)


def _seconds(value: Any) -> float | None:
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        return None
    return seconds if math.isfinite(seconds) else None


def _data_dirs(value: Any) -> dict[str, str] | None:
    if value is None:
        return None
    if isinstance(value, Mapping):
        return {str(name): str(path) for name, path in sorted(value.items())}
    return {"": str(value)} if value else {}


def _metrics(path: Path) -> tuple[str | None, bool]:
    if not path.is_file():
        return None, False
    text = path.read_text(errors="replace")
    if len(text) > METRICS_LIMIT:
        return text[:METRICS_LIMIT], True
    return text.rstrip("\n"), False


def _notebook_facts(nb: _Notebook, run_dir: Path) -> NotebookFacts:
    data_dir = _recorded((nb.entry.get("parameters") or {}).get("data_dir"))
    metrics, cut = _metrics(run_dir / "metrics" / f"{nb.stem}.json")
    return NotebookFacts(
        stem=nb.stem,
        chapter=nb.chapter,
        status=nb.status,
        shown=nb.shown,
        link=f"../{NOTEBOOKS_DIR}/{nb.stem}" if nb.shown else None,
        duration_s=_seconds(nb.entry.get("duration_s")) if nb.shown else None,
        data=("real" if data_dir else "generated") if nb.shown else None,
        data_dir=data_dir,
        parameters=nb.entry.get("parameters") or None,
        metrics=metrics,
        metrics_cut=cut,
        removed_lines=nb.removed_lines,
    )


def run_facts(
    manifest: Mapping[str, Any], notebooks: Sequence[_Notebook], run_dir: Path, root: Path | None = None
) -> RunFacts:
    """The facts of the page *This run*, from ``manifest`` and the files of ``run_dir``.

    ``notebooks`` are the run's notebooks in book order, after staging (their
    ``removed_lines`` filled in); ``run_folder`` is given relative to ``root``.
    """
    from .profiles import PROFILES

    profile = _recorded(manifest.get("profile"))
    try:
        folder = run_dir.relative_to(root) if root else run_dir
    except ValueError:
        folder = run_dir
    rows = tuple(_notebook_facts(nb, run_dir) for nb in notebooks)
    packages = manifest.get("packages") or {}
    return RunFacts(
        run_id=_recorded(manifest.get("run_id")),
        profile=profile,
        profile_purpose=PROFILES[profile].purpose if profile in PROFILES else None,
        seed=_recorded(manifest.get("seed")),
        commit=_recorded(manifest.get("commit")),
        keras_backend=_recorded(manifest.get("keras_backend")),
        device=_recorded(manifest.get("device")),
        started=_recorded(manifest.get("started")),
        python=_recorded(manifest.get("python")),
        duration_s=_seconds(manifest.get("duration_s")),
        data_dirs=_data_dirs(manifest.get("data_dirs")),
        run_folder=str(folder),
        built=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        notebooks=rows,
        status_counts=dict(Counter(row.status for row in rows)),
        removed_lines=sum(row.removed_lines for row in rows),
        packages={str(name): str(version) for name, version in sorted(packages.items())},
    )


def format_duration(seconds: float | None, compact: bool = False) -> str:
    """``4.2 s``, ``3 min 05 s``, ``1 h 02 min`` (``compact``: ``4.2s``, ``3m05s``, ``1h02m``); ``–`` for ``None``."""
    if seconds is None:
        return "–"
    s, m, h, space = ("s", "m", "h", "") if compact else (" s", " min", " h", " ")
    if seconds < 60:
        return f"{seconds:.1f}{s}"
    minutes, seconds = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes}{m}{space}{seconds:02d}{s}"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}{h}{space}{minutes:02d}{m}"


def _code(value: Any) -> str:
    """``value`` as an inline code span that survives backticks and table pipes."""
    text = str(value).replace("\n", " ")
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}".replace("|", "\\|")


def _cell(value: Any) -> str:
    """``value`` as plain text on one line that does not break a table row."""
    return str(value).replace("\n", " ").replace("|", "\\|")


def _json(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, default=str)


def _json_lexer(text: str) -> str:
    """``json`` for strict JSON, else ``text``: Pygments warns on NaN or a cut file, and -W fails on that."""

    def reject(constant: str) -> None:
        raise ValueError(constant)

    try:
        json.loads(text, parse_constant=reject)
    except ValueError:
        return "text"
    return "json"


@functools.cache
def _template() -> Any:
    """The macros of :data:`TEMPLATE` (a Jinja module: one attribute per macro)."""
    import jinja2

    env = jinja2.Environment(
        autoescape=False,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters.update(code=_code, cell=_cell, duration=format_duration, json=_json, lexer=_json_lexer)
    text = resources.files("cytobook").joinpath(TEMPLATE).read_text(encoding="utf-8")
    return env.from_string(text).module


def run_page(facts: RunFacts) -> str:
    """Markdown of the page *This run* (macro ``run_page`` of :data:`TEMPLATE`)."""
    return str(_template().run_page(facts)).strip("\n") + "\n"


def run_notebooks_section(notebooks: Sequence[NotebookFacts], *, heading: bool = False) -> str:
    """Markdown listing a report's notebooks shown in this run, for its overview page.

    ``heading`` starts with the section heading, for a page without :data:`RUN_NOTEBOOKS_MARKER`.
    """
    return str(_template().run_notebooks(notebooks, heading)).strip("\n")


# --------------------------------------------------------------------------- staging and building


def _read_manifest(run_dir: Path) -> dict[str, Any]:
    path = run_dir / "manifest.json"
    try:
        manifest = json.loads(path.read_text())
    except FileNotFoundError:
        raise BookError(f"{run_dir} has no manifest.json; runs are made by `cytobook run`") from None
    except json.JSONDecodeError as error:
        raise BookError(f"{path} is not valid JSON ({error})") from None
    if not isinstance(manifest, dict):
        raise BookError(f"{path} does not hold a JSON object")
    return manifest


def _collect_notebooks(run_dir: Path, manifest: Mapping[str, Any]) -> list[_Notebook]:
    """The manifest's notebooks and the run's executed notebooks, in book order."""
    entries: dict[str, dict[str, Any]] = {}
    for entry in manifest.get("notebooks") or []:
        if isinstance(entry, dict) and entry.get("name"):
            entries[_stem(str(entry["name"]))] = entry
    files = {p.stem: p for p in sorted((run_dir / NOTEBOOKS_DIR).glob("*.ipynb"))}
    stems = set(entries) | set(files)
    chapter_rank = {chapter: i for i, chapter in enumerate(CHAPTERS)}
    try:
        notebooks = [_Notebook(stem, notebook_chapter(stem), entries.get(stem, {}), files.get(stem)) for stem in stems]
    except ValueError as error:
        raise BookError(f"{run_dir}: {error}") from None
    notebooks.sort(key=lambda nb: (chapter_rank[nb.chapter], _order(nb.stem)))
    return notebooks


def stage_book(run_dir: str | os.PathLike, root: Path | None = None) -> Path:
    """Write the book source of ``run_dir`` to ``<run_dir>/book/`` and return that folder.

    The folder is replaced as a whole (built under a temporary name, then moved
    into place); nothing else in the run is written.
    """
    run_dir = Path(run_dir).resolve()
    root = root or project_root()
    manifest = _read_manifest(run_dir)
    notebooks = _collect_notebooks(run_dir, manifest)
    pages = root / PAGES_DIR
    for name in ("intro", "bibliography", *(p.overview for p in PARTS.values() if p.overview)):
        if not (pages / f"{name}.md").is_file():
            raise BookError(f"{pages / name}.md is missing: the book needs it")

    staging = run_dir / "book"
    if staging.is_symlink() or (staging.exists() and not staging.is_dir()):
        raise BookError(f"{staging} exists and is not a folder; move it away first")
    if staging.exists():
        shutil.rmtree(staging)
    with io.atomic_directory(staging) as tmp:
        shutil.copy2(root / "_config.yml", tmp / "_config.yml")
        shutil.copytree(
            pages,
            tmp / PAGES_DIR,
            ignore=shutil.ignore_patterns("_build", "__pycache__", ".ipynb_checkpoints", f"{RUN_PAGE}.md"),
        )
        (tmp / NOTEBOOKS_DIR).mkdir()
        for nb in notebooks:
            if not nb.shown:
                continue
            assert nb.path is not None
            try:
                original = json.loads(nb.path.read_text(encoding="utf-8"))
            except (OSError, json.JSONDecodeError) as error:
                raise BookError(f"{nb.path} cannot be read as a notebook ({error})") from None
            cleaned, nb.removed_lines = clean_notebook(original)
            text = json.dumps(cleaned, indent=1, ensure_ascii=False) + "\n"
            (tmp / NOTEBOOKS_DIR / nb.path.name).write_text(text, encoding="utf-8")

        facts = run_facts(manifest, notebooks, run_dir, root)
        for chapter, part in PARTS.items():
            if part.overview is None:
                continue
            page = tmp / PAGES_DIR / f"{part.overview}.md"
            rows = [row for row in facts.notebooks if row.chapter == chapter]
            text = page.read_text(encoding="utf-8")
            if RUN_NOTEBOOKS_MARKER in text:
                text = text.replace(RUN_NOTEBOOKS_MARKER, run_notebooks_section(rows))
            else:
                text = text.rstrip("\n") + "\n\n" + run_notebooks_section(rows, heading=True) + "\n"
            page.write_text(text, encoding="utf-8")

        (tmp / PAGES_DIR / f"{RUN_PAGE}.md").write_text(run_page(facts), encoding="utf-8")
        (tmp / "_toc.yml").write_text(toc_yaml([nb.stem for nb in notebooks if nb.shown]), encoding="utf-8")
    return staging


def _tail(text: str, lines: int = 60) -> str:
    return "\n".join(text.splitlines()[-lines:])


def build_book(run_dir: str | os.PathLike | None = None, *, strict: bool = True) -> Path:
    """Build the HTML book of a run and return the path of its ``index.html``.

    Parameters
    ----------
    run_dir
        The run directory or id; ``None`` takes the most recent run.
    strict
        Pass ``-W --keep-going`` to ``jupyter-book build``: any Sphinx warning
        fails the build, after all warnings have been reported.

    Raises
    ------
    BookError
        If the project root or the run cannot be found or read.
    BookBuildError
        If ``jupyter-book build`` fails; the message ends with the tail of the
        log, kept at ``<run_dir>/book/_build/jupyter-book.log``.
    """
    root = project_root()
    run = resolve_run(run_dir, root)
    staging = stage_book(run, root)

    main = "import sys; from jupyter_book.cli.main import main; sys.exit(main())"
    command = [sys.executable, "-c", main, "build", str(staging), "--builder", "html"]
    if strict:
        command += ["-W", "--keep-going"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "NO_COLOR": "1", "TERM": "dumb"}
    result = subprocess.run(command, cwd=staging, env=env, capture_output=True, text=True)
    log = re.sub(r"\x1b\[[0-9;]*m", "", result.stdout + ("\n" + result.stderr if result.stderr else ""))
    log_path = staging / "_build" / "jupyter-book.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log_path.write_text(f"$ {' '.join(command)}\n\n{log}", encoding="utf-8")

    index = staging / "_build" / "html" / "index.html"
    if result.returncode != 0 or not index.is_file():
        warnings = [line for line in log.splitlines() if "WARNING" in line or "ERROR" in line]
        listed = "\n".join(dict.fromkeys(warnings[:40]))
        raise BookBuildError(
            f"jupyter-book build of {staging} failed (exit code {result.returncode}"
            f"{', warnings are errors' if strict else ''}); full log: {log_path}\n"
            + (f"\nwarnings and errors:\n{listed}\n" if listed else "")
            + f"\nlast lines of the log:\n{_tail(log)}",
            log_path,
        )
    return index
