"""``cytobook book``: table of contents, notebook clean-up, the run's facts and pages, a full build."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import nbformat
import pytest

from cytobook import book, suite
from cytobook.profiles import PROFILES

REPO = Path(__file__).resolve().parent.parent

# Marker that the injected-parameters cell contains and the book must not show.
INJECTED_MARKER = "injected_marker_7f3a"


@pytest.fixture
def repo_root(monkeypatch) -> Path:
    """The real repository (its _config.yml and book/ pages) as the project root."""
    monkeypatch.setenv(suite.ROOT_ENV, str(REPO))
    monkeypatch.delenv(suite.RUNS_ENV, raising=False)
    return REPO


# --------------------------------------------------------------------------- fast tests


def test_toc_groups_chapters_in_order():
    names = [
        "12_hep2_vgg16.ipynb",
        "03_cnmc_mobilenet",
        "01_data_cnmc_tour",
        "02_cnmc_scratch_cnn",
        "07_wbc_unet_multitask",
        "10_data_hep2_tour",
        "06_lymphocytosis_moe",
    ]
    toc = book.make_toc(names)
    assert toc["format"] == "jb-book"
    assert toc["root"] == "book/intro"
    captions = [part["caption"] for part in toc["parts"]]
    assert captions[0] == "Introduction"
    assert captions[-1] == "References"
    assert len(captions) == 2 + 5  # introduction, five reports, references
    files = [[chapter["file"] for chapter in part["chapters"]] for part in toc["parts"]]
    assert files[0] == ["book/run", "notebooks/01_data_cnmc_tour", "notebooks/10_data_hep2_tour"]
    assert files[1] == ["book/cnmc", "notebooks/02_cnmc_scratch_cnn", "notebooks/03_cnmc_mobilenet"]
    assert files[2] == ["book/bagging"]  # no notebook yet: overview page only
    assert files[3] == ["book/wbc_unet", "notebooks/07_wbc_unet_multitask"]
    assert files[4] == ["book/lymphocytosis", "notebooks/06_lymphocytosis_moe"]
    assert files[5] == ["book/hep2", "notebooks/12_hep2_vgg16"]
    assert files[6] == ["book/bibliography"]
    assert "Lymphoblasts" in captions[1]


def test_toc_orders_by_number_not_by_text():
    toc = book.make_toc(["10_cnmc_b", "9_cnmc_a", "002_cnmc_c"])
    assert [c["file"] for c in toc["parts"][1]["chapters"]][1:] == [
        "notebooks/002_cnmc_c",
        "notebooks/9_cnmc_a",
        "notebooks/10_cnmc_b",
    ]


def test_chapter_with_underscore_is_recognised():
    assert book.notebook_chapter("05_wbc_unet_pretrain.ipynb") == "wbc_unet"
    assert book.notebook_chapter("01_data") == "data"


@pytest.mark.parametrize("name", ["01_histology_tour", "cnmc_tour", "01_wbc_tour", "01_datatour"])
def test_unknown_chapter_is_a_clear_error(name):
    with pytest.raises(ValueError, match="chapter|NN_<chapter>") as info:
        book.make_toc(["01_data_cnmc_tour", name])
    assert name in str(info.value)


def test_toc_yaml_round_trips():
    import yaml

    text = book.toc_yaml(["01_data_cnmc_tour"])
    assert yaml.safe_load(text) == book.make_toc(["01_data_cnmc_tour"])


def test_clean_notebook_hides_injected_parameters_and_startup_noise():
    notebook = {
        "cells": [
            {"cell_type": "code", "metadata": {"tags": ["parameters"]}, "source": "profile = 'demo'", "outputs": []},
            {"cell_type": "code", "metadata": {"tags": ["injected-parameters"]}, "source": "profile = 'smoke'", "outputs": []},
            {
                "cell_type": "code",
                "metadata": {},
                "source": "import tensorflow",
                "outputs": [
                    {
                        "output_type": "stream",
                        "name": "stderr",
                        "text": [
                            "2025-01-01 10:00:00.123456: I tensorflow/core/platform/cpu_feature_guard.cc:210] This TensorFlow binary is optimized.\n",
                            "To enable the following instructions: AVX2 FMA, in other operations, rebuild TensorFlow with the appropriate compiler flags.\n",
                            "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n",
                            "E0000 00:00:1732245180.123456   12345 cuda_dnn.cc:8310] Unable to register cuDNN factory\n",
                        ],
                    },
                    {"output_type": "stream", "name": "stderr", "text": "UserWarning: starting from random weights\n"},
                    {"output_type": "stream", "name": "stdout", "text": "accuracy 0.5\n"},
                ],
            },
        ],
        "metadata": {},
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    original = json.dumps(notebook, sort_keys=True)
    cleaned, removed = book.clean_notebook(notebook)
    assert json.dumps(notebook, sort_keys=True) == original  # the input is not modified
    assert removed == 4
    assert cleaned["cells"][0]["metadata"]["tags"] == ["parameters"]
    assert cleaned["cells"][1]["metadata"]["tags"] == ["injected-parameters", "remove-cell"]
    outputs = cleaned["cells"][2]["outputs"]
    assert [o["name"] for o in outputs] == ["stderr", "stdout"]  # the all-noise stream is gone
    assert "random weights" in outputs[0]["text"]  # real warnings stay


def test_project_root_walks_up_and_fails_clearly(tmp_path, monkeypatch):
    monkeypatch.delenv(suite.ROOT_ENV, raising=False)
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "_config.yml").write_text("title: x\n")
    deep = tmp_path / "runs" / "r1" / "metrics"
    deep.mkdir(parents=True)
    assert suite.project_root(deep) == tmp_path.resolve()
    elsewhere = tmp_path.parent / (tmp_path.name + "-outside")
    elsewhere.mkdir()
    with pytest.raises(suite.ProjectLayoutError, match="_config.yml"):
        suite.project_root(elsewhere)
    monkeypatch.setenv(suite.ROOT_ENV, str(elsewhere))
    with pytest.raises(suite.ProjectLayoutError, match="CYTOBOOK_ROOT"):
        suite.project_root()


def test_latest_run_uses_started_time(tmp_path, monkeypatch):
    monkeypatch.delenv(suite.RUNS_ENV, raising=False)
    for name, started in [("b-older", "2025-01-01T10:00:00"), ("a-newer", "2025-02-01T10:00:00+00:00")]:
        (tmp_path / "runs" / name).mkdir(parents=True)
        (tmp_path / "runs" / name / "manifest.json").write_text(json.dumps({"started": started}))
    (tmp_path / "runs" / "z-no-manifest").mkdir()
    assert suite.latest_run(tmp_path).name == "a-newer"
    assert suite.resolve_run("b-older", tmp_path).name == "b-older"
    with pytest.raises(suite.ProjectLayoutError, match="manifest"):
        suite.resolve_run("z-no-manifest", tmp_path)


def test_every_cited_key_is_in_the_bibliography():
    import re

    bib = (REPO / "book" / "references.bib").read_text()
    keys = set(re.findall(r"^@\w+\{([^,]+),", bib, flags=re.M))
    cited = set()
    for page in (REPO / "book").glob("*.md"):
        for group in re.findall(r"\{cite(?::\w+)?\}`([^`]+)`", page.read_text()):
            cited.update(key.strip() for key in group.split(","))
    assert cited, "the pages cite nothing"
    assert cited <= keys, f"cited but not in references.bib: {sorted(cited - keys)}"


# --------------------------------------------------------------------------- facts and pages of a run

NOISE = "2025-01-01 10:00:00.123456: I tensorflow/core/util/port.cc:153] start-up\n"


def _staged_run(run: Path, manifest: dict) -> Path:
    """A run holding ``manifest.json``, an executed copy of the ``ok`` and ``failed``
    notebooks it lists (one start-up noise line each) and metrics for some of them."""
    (run / "notebooks").mkdir(parents=True)
    (run / "metrics").mkdir()
    for entry in manifest.get("notebooks", []):
        if entry["status"] in ("ok", "failed"):
            notebook = nbformat.v4.new_notebook()
            cell = nbformat.v4.new_code_cell("x = 1")
            cell.outputs = [nbformat.v4.new_output("stream", name="stderr", text=NOISE + "UserWarning: kept\n")]
            notebook.cells = [nbformat.v4.new_markdown_cell(f"# {entry['name']}"), cell]
            nbformat.write(notebook, run / "notebooks" / f"{entry['name']}.ipynb")
    (run / "metrics" / "01_data_tour.json").write_text(json.dumps({"weighted_f1": 0.5317}))
    (run / "metrics" / "03_cnmc_mobilenet.json").write_text('{"auc": NaN}')
    (run / "manifest.json").write_text(json.dumps(manifest))
    return run


MANIFEST = {
    "run_id": "20250101-100000-smoke",
    "profile": "smoke",
    "seed": 0,
    "commit": "0123abc4567",
    "keras_backend": "jax",
    "device": "CPU (test)",
    "started": "2025-01-01T10:00:00+00:00",
    "python": "3.11.9",
    "duration_s": 3729.2,
    "data_dirs": {"cnmc": "/data/C-NMC"},
    "packages": {"tensorflow": "2.21.0", "keras": "3.10.0"},
    "notebooks": [
        {"name": "01_data_tour", "chapter": "data", "status": "ok", "duration_s": 4.2,
         "parameters": {"profile": "smoke", "seed": 0, "data_dir": None}},
        {"name": "02_cnmc_not_yet", "chapter": "cnmc", "status": "not run", "duration_s": None, "parameters": None},
        {"name": "03_cnmc_mobilenet", "chapter": "cnmc", "status": "failed", "duration_s": 3725.0,
         "parameters": {"profile": "smoke", "seed": 0, "data_dir": "/data/C-NMC"}},
    ],
}


def _facts(run: Path, manifest: dict, removed: int = 0) -> book.RunFacts:
    notebooks = book._collect_notebooks(run, manifest)
    for nb in notebooks:
        nb.removed_lines = removed if nb.shown else 0
    return book.run_facts(manifest, notebooks, run, run.parent)


def _row(page: str, stem: str) -> list[str]:
    """The cells of the notebook table's row for ``stem`` (escaped pipes stay inside a cell)."""
    (line,) = [line for line in page.splitlines() if line.startswith("| ") and f"`{stem}`" in line]
    return [cell.strip() for cell in re.split(r"(?<!\\)\|", line)[1:-1]]


def test_run_facts_hold_the_manifest_values(tmp_path):
    run = _staged_run(tmp_path / "run", MANIFEST)
    facts = _facts(run, MANIFEST, removed=1)
    assert facts.run_id == "20250101-100000-smoke"
    assert (facts.profile, facts.seed, facts.commit) == ("smoke", "0", "0123abc4567")
    assert facts.profile_purpose == PROFILES["smoke"].purpose
    assert (facts.keras_backend, facts.device, facts.python) == ("jax", "CPU (test)", "3.11.9")
    assert facts.duration_s == 3729.2
    assert facts.data_dirs == {"cnmc": "/data/C-NMC"}
    assert facts.run_folder == "run"  # relative to the root given
    assert list(facts.packages) == ["keras", "tensorflow"]  # sorted
    assert facts.status_counts == {"ok": 1, "not run": 1, "failed": 1}
    assert facts.removed_lines == 2

    tour, not_yet, mobilenet = facts.notebooks
    assert [nb.stem for nb in facts.notebooks] == ["01_data_tour", "02_cnmc_not_yet", "03_cnmc_mobilenet"]
    assert [nb.status for nb in facts.notebooks] == ["ok", "not run", "failed"]
    assert [nb.shown for nb in facts.notebooks] == [True, False, True]
    assert [nb.link for nb in facts.notebooks] == ["../notebooks/01_data_tour", None, "../notebooks/03_cnmc_mobilenet"]
    assert [nb.duration_s for nb in facts.notebooks] == [4.2, None, 3725.0]
    assert [nb.data for nb in facts.notebooks] == ["generated", None, "real"]
    assert mobilenet.data_dir == "/data/C-NMC" and tour.data_dir is None
    assert not_yet.parameters is None and mobilenet.parameters["data_dir"] == "/data/C-NMC"
    assert json.loads(tour.metrics) == {"weighted_f1": 0.5317} and not tour.metrics_cut
    assert not_yet.metrics is None


def test_run_page_shows_every_fact(tmp_path):
    run = _staged_run(tmp_path / "run", MANIFEST)
    facts = _facts(run, MANIFEST, removed=1)
    page = book.run_page(facts)
    assert page.startswith("# This run\n") and page.endswith("|\n")
    for value in ("20250101-100000-smoke", "0123abc4567", "jax", "CPU (test)", "3.11.9", facts.built,
                  PROFILES["smoke"].purpose, book.format_duration(3729.2), "/data/C-NMC", "`3.10.0`", "`2.21.0`"):
        assert value in page, value
    tour = _row(page, "01_data_tour")
    assert "{doc}`../notebooks/01_data_tour`" in tour[0]
    assert tour[1:] == ["data", "ok", "4.2 s", "generated"]
    not_yet = _row(page, "02_cnmc_not_yet")
    assert "{doc}" not in not_yet[0] and "not run" in not_yet[2] and not_yet[3] == not_yet[4] == "–"
    mobilenet = _row(page, "03_cnmc_mobilenet")
    assert "failed" in mobilenet[2] and mobilenet[3] == "1 h 02 min" and "`/data/C-NMC`" in mobilenet[4]
    assert '"weighted_f1": 0.5317' in page  # the metrics file
    assert "```text\n{\"auc\": NaN}\n```" in page  # not strict JSON: no json lexer for Pygments to warn about
    assert '"data_dir": "/data/C-NMC"' in page  # the injected parameters
    assert " 2 lines " in page  # the removed start-up logging
    assert "None" not in page


def test_run_page_of_a_bare_manifest(tmp_path):
    manifest = {"run_id": "bare", "data_dirs": {}, "duration_s": "n/a"}
    run = _staged_run(tmp_path / "run", manifest)
    facts = _facts(run, manifest)
    assert facts.notebooks == () and facts.packages == {} and facts.status_counts == {}
    assert facts.profile is None and facts.profile_purpose is None and facts.commit is None
    assert facts.duration_s is None and facts.data_dirs == {}
    assert book.run_facts({"data_dirs": None}, [], run).data_dirs is None
    page = book.run_page(facts)
    assert "`bare`" in page
    assert "None" not in page and "{doc}" not in page and "```" not in page


def test_run_page_keeps_awkward_values_inside_their_cell(tmp_path):
    manifest = {
        "device": "GPU `0` | H200",
        "notebooks": [{"name": "01_data_x", "status": "ok", "duration_s": 1, "parameters": {"data_dir": "/d|a`t"}}],
    }
    run = _staged_run(tmp_path / "run", manifest)
    page = book.run_page(_facts(run, manifest))
    assert len(_row(page, "01_data_x")) == 5
    (device,) = [line for line in page.splitlines() if line.startswith("| Device |")]
    assert len(re.split(r"(?<!\\)\|", device)) == 4


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(None, "–"), (0.04, "0.0 s"), (4.25, "4.2 s"), (59.9, "59.9 s"), (185, "3 min 05 s"), (3725, "1 h 02 min")],
)
def test_format_duration(seconds, text):
    assert book.format_duration(seconds) == text


def test_stage_book_writes_run_page_overviews_and_toc(tmp_path):
    run = _staged_run(tmp_path / "run", MANIFEST)
    before = {p: _digest(p) for p in run.rglob("*") if p.is_file()}

    staging = book.stage_book(run, REPO)

    assert {p: _digest(p) for p in before} == before  # the run's own files are untouched
    copies = sorted(p.name for p in (staging / "notebooks").iterdir())
    assert copies == ["01_data_tour.ipynb", "03_cnmc_mobilenet.ipynb"]  # not the one that did not run
    copy = (staging / "notebooks" / "01_data_tour.ipynb").read_text()
    assert "start-up" not in copy and "UserWarning: kept" in copy
    run_page = (staging / "book" / "run.md").read_text()
    assert "0123abc4567" in run_page and " 2 lines " in run_page
    cnmc = (staging / "book" / "cnmc.md").read_text()
    assert book.RUN_NOTEBOOKS_MARKER not in cnmc
    assert "{doc}`../notebooks/03_cnmc_mobilenet`" in cnmc and "**failed**" in cnmc
    assert "02_cnmc_not_yet" not in cnmc  # not part of the book
    bagging = (staging / "book" / "bagging.md").read_text()
    assert book.RUN_NOTEBOOKS_MARKER not in bagging and "{doc}`../notebooks" not in bagging
    toc = (staging / "_toc.yml").read_text()
    assert "notebooks/01_data_tour" in toc and "notebooks/03_cnmc_mobilenet" in toc and "02_cnmc_not_yet" not in toc


def test_overview_without_marker_gets_its_own_section():
    rows = [book.NotebookFacts("03_cnmc_a", "cnmc", "ok", True, "../notebooks/03_cnmc_a", 1.0, "generated", None,
                               None, None, False, 0)]
    plain = book.run_notebooks_section(rows)
    headed = book.run_notebooks_section(rows, heading=True)
    assert "{doc}`../notebooks/03_cnmc_a`" in plain and "**" not in plain  # no status note for "ok"
    assert headed.startswith("## ") and headed.endswith(plain)
    assert "{doc}" not in book.run_notebooks_section([])


def test_template_ships_with_the_package():
    import fnmatch
    from importlib import resources

    tomllib = pytest.importorskip("tomllib")

    assert resources.files("cytobook").joinpath(book.TEMPLATE).is_file()
    package_data = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    assert any(fnmatch.fnmatch(book.TEMPLATE, pattern) for pattern in package_data["cytobook"])


# --------------------------------------------------------------------------- full build


def _fake_run(run: Path) -> Path:
    """A run directory with one notebook executed by papermill, as `cytobook run` leaves it."""
    import papermill

    source = nbformat.v4.new_notebook()
    source.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    parameters = nbformat.v4.new_code_cell("profile = 'demo'\nseed = 0\nmarker = ''")
    parameters.metadata["tags"] = ["parameters"]
    source.cells = [
        nbformat.v4.new_markdown_cell("# A demo notebook\n\nChecks the book build.\n\n## Parameters"),
        parameters,
        nbformat.v4.new_markdown_cell("## Results"),
        nbformat.v4.new_code_cell(
            "import sys\n"
            "print(f'weighted F1 {0.5 + seed / 100:.4f}')\n"
            # The texts are split so that only the outputs, not the code, hold them whole.
            "sys.stderr.write('2025-01-01 10:00:00.123456: I tensorflow/core/util/port.cc:153] ' + 'one' + 'DNN start-up\\n')\n"
            "sys.stderr.write('UserWarning: ' + 'random' + ' weights\\n')"
        ),
        nbformat.v4.new_code_cell(
            "import matplotlib\n"
            "matplotlib.use('Agg')\n"
            "import matplotlib.pyplot as plt\n"
            "%matplotlib inline\n"
            "fig, ax = plt.subplots(figsize=(3, 2))\n"
            "ax.plot([0, 1, 2], [0.2, 0.5, 0.7])\n"
            "ax.set_title('learning curve')\n"
            "plt.show()"
        ),
    ]
    (run / "notebooks").mkdir(parents=True)
    (run / "metrics").mkdir()
    src = run.parent / "01_data_demo_test.source.ipynb"
    nbformat.write(source, src)
    target = run / "notebooks" / "01_data_demo_test.ipynb"
    parameters = {"profile": "smoke", "seed": 3, "marker": INJECTED_MARKER}
    papermill.execute_notebook(str(src), str(target), parameters=parameters, kernel_name="python3", progress_bar=False)
    (run / "metrics" / "01_data_demo_test.json").write_text(json.dumps({"weighted_f1": 0.53}))
    manifest = {
        "run_id": run.name,
        "profile": "smoke",
        "commit": "0123abc4567",
        "keras_backend": "tensorflow",
        "device": "CPU (test)",
        "started": "2025-01-01T10:00:00+00:00",
        "notebooks": [
            {"name": "01_data_demo_test", "chapter": "data", "status": "ok", "duration_s": 4.2, "parameters": parameters},
            {"name": "02_cnmc_not_yet", "chapter": "cnmc", "status": "not run", "duration_s": 0.0, "parameters": {}},
        ],
        "packages": {"keras": "3.0.0", "tensorflow": "2.21.0"},
    }
    (run / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return target


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.slow
def test_build_book_from_a_fake_run(tmp_path, repo_root):
    run = tmp_path / "runs" / "20250101-100000-smoke"
    notebook = _fake_run(run)
    before = {p: _digest(p) for p in run.rglob("*") if p.is_file()}

    index = book.build_book(run)

    html = index.parent
    assert index == run / "book" / "_build" / "html" / "index.html"
    assert index.is_file()
    page = (html / "notebooks" / "01_data_demo_test.html").read_text()
    assert "A demo notebook" in page
    assert "weighted F1 0.5300" in page  # the saved output, with the injected seed
    assert "<img" in page  # the figure
    assert INJECTED_MARKER not in page  # injected-parameters cell hidden
    assert "oneDNN start-up" not in page  # start-up noise stripped
    assert "UserWarning: random weights" in page  # real warnings kept
    assert "output stderr" in page

    run_page = (html / "book" / "run.html").read_text()
    assert "smoke" in run_page and "0123abc4567" in run_page
    assert "02_cnmc_not_yet" in run_page and "not run" in run_page
    assert INJECTED_MARKER in run_page  # the hidden parameter values are listed here
    assert "0.53" in run_page  # metrics file shown

    bibliography = (html / "book" / "bibliography.html").read_text()
    assert "deep residual learning for image recognition" in bibliography.lower()
    assert "Challenge Report: Lymphocytosis Classification" in bibliography  # a report's own title, verbatim

    overview = (run / "book" / "book" / "bagging.md").read_text()
    assert book.RUN_NOTEBOOKS_MARKER not in overview and "{doc}" not in overview  # no notebook for report 2
    assert (html / "book" / "bagging.html").is_file()

    # The run's own files are untouched; only run/book was written.
    after = {p: _digest(p) for p in before}
    assert after == before
    assert _digest(notebook) == before[notebook]
    assert not (run / "book" / "notebooks" / "02_cnmc_not_yet.ipynb").exists()

    # A second build replaces the staging folder instead of failing on it.
    (run / "book" / "stale.txt").write_text("old")
    assert book.build_book(run) == index
    assert not (run / "book" / "stale.txt").exists()


@pytest.mark.slow
def test_build_failure_reports_the_log(tmp_path, repo_root):
    run = tmp_path / "runs" / "broken"
    _fake_run(run)
    path = run / "notebooks" / "01_data_demo_test.ipynb"
    notebook = json.loads(path.read_text())
    # A heading jump (H2 to H4) is a Sphinx warning, hence an error under -W.
    notebook["cells"].insert(1, nbformat.v4.new_markdown_cell("#### Skipped a level"))
    path.write_text(json.dumps(notebook))
    with pytest.raises(book.BookBuildError, match="header|Non-consecutive") as info:
        book.build_book(run)
    assert info.value.log_path is not None and info.value.log_path.is_file()
    assert book.build_book(run, strict=False).is_file()
