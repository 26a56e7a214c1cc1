"""``cytobook book``: build the HTML Jupyter Book of one run, without executing anything.

A run made by ``cytobook run`` holds executed notebooks, metrics and artefacts::

    runs/<run-id>/manifest.json
    runs/<run-id>/notebooks/NN_<chapter>_<topic>.ipynb
    runs/<run-id>/metrics/<notebook>.json
    runs/<run-id>/artifacts/<notebook>/...

:func:`build_book` stages a book source folder at ``runs/<run-id>/book/`` with
the same layout as the repository (``_config.yml``, ``book/``, ``notebooks/``),
adds a generated ``_toc.yml`` and a page ``book/run.md`` describing the run,
and builds it with ``jupyter-book build --builder html`` with execution off.
Only the staging folder is written: the run's notebooks, metrics and artefacts
are read, never changed.

What the copies of the notebooks lose, and why
----------------------------------------------
* The papermill cell tagged ``injected-parameters`` gets the ``remove-cell``
  tag: it repeats, as code, values that the page *This run* lists for every
  notebook, and it would show machine-specific paths (``run_dir``) in the middle
  of the narrative.
* stderr lines that are TensorFlow/absl start-up logging (see
  :data:`STARTUP_NOISE`) are removed. Other stderr is kept: Python warnings
  (for instance "starting from random weights") are part of the record, and a
  book that silently hid them would overstate its results.
"""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
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
    "build_book",
    "clean_notebook",
    "make_toc",
    "notebook_chapter",
    "run_page",
    "stage_book",
]

#: Folder of the book's own pages, inside the repository and inside the staging copy.
PAGES_DIR = "book"
NOTEBOOKS_DIR = "notebooks"
#: Generated page describing the run (``book/run.md`` in the staging copy).
RUN_PAGE = "run"
#: Line of an overview page replaced by the list of the run's notebooks for that report.
RUN_NOTEBOOKS_MARKER = "<!-- cytobook:run-notebooks -->"


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
    "wbc_unet": Part("wbc_unet", "Report 3 · A UNet multitask network for white blood cells (Raabin-WBC)", "wbc_unet"),
    "lymphocytosis": Part("lymphocytosis", "Report 4 · Challenge Report: Lymphocytosis Classification", "lymphocytosis"),
    "hep2": Part("hep2", "Report 5 · HEp-2 antinuclear antibody patterns (ICPR 2014)", "hep2"),
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
    """``jupyter-book build`` failed; the message ends with the tail of its log.

    Attributes
    ----------
    log_path
        The complete build log.
    """

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
    notebooks in ``NN`` order) and a part with the bibliography.

    Raises
    ------
    ValueError
        If a name has no known chapter.
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
    """A copy of an executed notebook, ready for the book.

    The ``injected-parameters`` cell gets the ``remove-cell`` tag and stderr
    lines matching :data:`STARTUP_NOISE` are dropped (a stream left empty is
    removed). Everything else is kept as it is.

    Returns
    -------
    notebook, removed
        The cleaned copy and the number of stderr lines removed.
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


# --------------------------------------------------------------------------- run page


def _code(value: Any) -> str:
    """``value`` as an inline code span that survives backticks and table pipes."""
    text = str(value).replace("\n", " ")
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}".replace("|", "\\|")


def _cell(value: Any) -> str:
    return str(value).replace("\n", " ").replace("|", "\\|")


def _duration(seconds: Any) -> str:
    try:
        seconds = float(seconds)
    except (TypeError, ValueError):
        return "–"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, seconds = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def _json_lexer(text: str) -> str:
    """``json`` for strict JSON, else ``text``: Pygments warns on NaN or a cut file, and -W fails on that."""

    def reject(constant: str) -> None:
        raise ValueError(constant)

    try:
        json.loads(text, parse_constant=reject)
    except ValueError:
        return "text"
    return "json"


def _data_dirs(data_dirs: Any) -> str:
    """The run's ``--data-dir`` choices, as a table cell."""
    if data_dirs is None:
        return "not recorded"
    if not data_dirs:
        return "none: every data set was generated"
    if isinstance(data_dirs, Mapping):
        return "; ".join(f"{_cell(name)}: {_code(path)}" for name, path in sorted(data_dirs.items()))
    return _code(data_dirs)


def _data_of(entry: Mapping[str, Any]) -> str | None:
    """The real data folder a notebook was given, or ``None`` for generated data."""
    value = (entry.get("parameters") or {}).get("data_dir")
    return str(value) if value else None


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


def run_page(manifest: Mapping[str, Any], notebooks: list[_Notebook], run_dir: Path, root: Path | None = None) -> str:
    """Markdown of the page *This run*, generated from ``manifest.json``."""
    from .profiles import PROFILES

    def get(key: str) -> str:
        value = manifest.get(key)
        return _code(value) if value not in (None, "") else "not recorded"

    profile = manifest.get("profile")
    purpose = f": {PROFILES[profile].purpose}" if profile in PROFILES else ""
    built = datetime.now(timezone.utc).isoformat(timespec="seconds")
    try:
        folder = run_dir.relative_to(root) if root else run_dir
    except ValueError:
        folder = run_dir
    lines = [
        "# This run",
        "",
        "Every output in this book was produced by the run below and copied from its executed",
        "notebooks; building the book executed nothing. The numbers of a notebook come from that",
        "notebook's code, with the parameters listed here, on the data named here.",
        "",
        "| Field | Value |",
        "|---|---|",
        f"| Run | {get('run_id')} |",
        f"| Profile | {get('profile')}{_cell(purpose)} |",
        f"| Commit | {get('commit')} |",
        f"| Keras backend | {get('keras_backend')} |",
        f"| Device | {get('device')} |",
        f"| Started | {get('started')} |",
        f"| Total duration | {_duration(manifest['duration_s']) if 'duration_s' in manifest else 'not recorded'} |",
        f"| Seed | {get('seed')} |",
        f"| Python | {get('python')} |",
        f"| Real data | {_data_dirs(manifest.get('data_dirs'))} |",
        f"| Run folder | {_code(folder)} (notebooks in `notebooks/`, metrics in `metrics/`, artefacts in `artifacts/`) |",
        f"| Book built | {_code(built)} |",
        "",
    ]

    real = {nb.stem: _data_of(nb.entry) for nb in notebooks if _data_of(nb.entry)}
    if not real:
        lines += [
            ":::{important}",
            "No notebook of this run was given a real data folder: all results come from **generated",
            "data**. They are pipeline checks, not comparable with the numbers published in the reports.",
            ":::",
            "",
        ]
    else:
        lines += [
            ":::{important}",
            "Only the notebooks marked *real* in the table below used real data; all others used",
            "**generated data**, and their results are pipeline checks, not comparable with the",
            "numbers published in the reports.",
            ":::",
            "",
        ]

    lines += [
        "## Notebooks",
        "",
        "| Notebook | Chapter | Status | Duration | Data |",
        "|---|---|---|---|---|",
    ]
    for nb in notebooks:
        name = f"{{doc}}`../{NOTEBOOKS_DIR}/{nb.stem}` ({_code(nb.stem)})" if nb.shown else _code(nb.stem)
        status = nb.status if nb.status == "ok" else f"**{nb.status}**"
        if not nb.shown:
            data, duration = "–", "–"
        else:
            data = f"real: {_code(real[nb.stem])}" if nb.stem in real else "generated"
            duration = _duration(nb.entry.get("duration_s"))
        lines.append(f"| {name} | {_cell(nb.chapter)} | {_cell(status)} | {duration} | {data} |")
    if not notebooks:
        lines.append("| (none) | | | | |")
    lines.append("")
    missing = [nb.stem for nb in notebooks if not nb.shown]
    if missing:
        lines += [
            "Notebooks without outputs in this run (not run, or no executed copy) are not part of the book:",
            ", ".join(_code(stem) for stem in missing) + ".",
            "",
        ]

    lines += [
        "## Parameters",
        "",
        "The values papermill injected into each notebook. The book hides the injected cell",
        "itself; the values are here.",
        "",
    ]
    for nb in notebooks:
        parameters = nb.entry.get("parameters")
        if not parameters:
            lines += [f"{_code(nb.stem)}: none recorded.", ""]
            continue
        text = json.dumps(parameters, indent=2, sort_keys=True, default=str)
        lines += [f"{_code(nb.stem)}:", "", f"```{_json_lexer(text)}", text, "```", ""]

    metrics = [(nb, run_dir / "metrics" / f"{nb.stem}.json") for nb in notebooks]
    metrics = [(nb, path) for nb, path in metrics if path.is_file()]
    lines += ["## Metrics", ""]
    if metrics:
        lines += ["Each notebook's metrics file, `metrics/<notebook>.json`, as the run wrote it.", ""]
        for nb, path in metrics:
            text = path.read_text(errors="replace")
            if len(text) > 20_000:
                text = text[:20_000] + "\n... (cut here; the file is longer)"
            lines += [f":::{{dropdown}} {nb.stem}", f"```{_json_lexer(text)}", text.rstrip("\n"), "```", ":::", ""]
    else:
        lines += ["This run wrote no metrics files.", ""]

    removed = sum(nb.removed_lines for nb in notebooks)
    lines += [
        "## What the book hides",
        "",
        "- the papermill cell tagged `injected-parameters` of every notebook (its values are listed above);",
        f"- {removed} line{'s' if removed != 1 else ''} of TensorFlow/absl start-up logging on stderr "
        "(machine-specific, unrelated to the results). Any other stderr output, such as Python "
        "warnings, is shown.",
        "",
    ]

    packages = manifest.get("packages") or {}
    lines += ["## Packages", ""]
    if packages:
        lines += ["| Package | Version |", "|---|---|"]
        lines += [f"| {_cell(name)} | {_code(version)} |" for name, version in sorted(packages.items())]
    else:
        lines.append("The manifest records no package versions.")
    lines.append("")
    return "\n".join(lines)


def _run_notebooks_section(notebooks: list[_Notebook]) -> str:
    shown = [nb for nb in notebooks if nb.shown]
    if not shown:
        return "This run holds no notebook for this report yet: notebooks for this report are added as they are built."
    items = []
    for nb in shown:
        note = "" if nb.status == "ok" else f" (status in this run: **{_cell(nb.status)}**)"
        items.append(f"- {{doc}}`../{NOTEBOOKS_DIR}/{nb.stem}`{note}")
    return "\n".join(items)


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

        for chapter, part in PARTS.items():
            if part.overview is None:
                continue
            page = tmp / PAGES_DIR / f"{part.overview}.md"
            section = _run_notebooks_section([nb for nb in notebooks if nb.chapter == chapter])
            text = page.read_text(encoding="utf-8")
            if RUN_NOTEBOOKS_MARKER in text:
                text = text.replace(RUN_NOTEBOOKS_MARKER, section)
            else:
                text = text.rstrip("\n") + "\n\n## Notebooks in this run\n\n" + section + "\n"
            page.write_text(text, encoding="utf-8")

        (tmp / PAGES_DIR / f"{RUN_PAGE}.md").write_text(run_page(manifest, notebooks, run_dir, root), encoding="utf-8")
        (tmp / "_toc.yml").write_text(toc_yaml([nb.stem for nb in notebooks if nb.shown]), encoding="utf-8")
    return staging


def _tail(text: str, lines: int = 60) -> str:
    return "\n".join(text.splitlines()[-lines:])


def build_book(run_dir: str | os.PathLike | None = None, *, strict: bool = True) -> Path:
    """Build the HTML book of a run and return the path of its ``index.html``.

    Parameters
    ----------
    run_dir
        The run directory (or a run id under the runs folder); ``None`` takes
        the most recent run that has a ``manifest.json``.
    strict
        Pass ``-W --keep-going`` to ``jupyter-book build``: any Sphinx warning
        fails the build, after all warnings have been reported.

    Raises
    ------
    BookError
        If the project root or the run cannot be found or read.
    BookBuildError
        If ``jupyter-book build`` fails; the message ends with the tail of the
        log, which is kept at ``<run_dir>/book/_build/jupyter-book.log``.
    """
    root = project_root()
    run = resolve_run(run_dir, root)
    staging = stage_book(run, root)

    command = [
        sys.executable,
        "-c",
        "import sys; from jupyter_book.cli.main import main; sys.exit(main())",
        "build",
        str(staging),
        "--builder",
        "html",
    ]
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
