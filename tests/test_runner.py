"""`cytobook run`: ordered execution into a new run directory, manifest, failures named."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest

from cytobook import cli
from cytobook.runner import SuiteFailed, discover, run_suite, select
from cytobook.suite import parse_notebook_name


def write_notebook(path: Path, body: str) -> None:
    """A minimal suite notebook: title, tagged parameters cell, then ``body``."""
    notebook = nbformat.v4.new_notebook()
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    parameters = nbformat.v4.new_code_cell('profile = "demo"\ndata_dir = None\nrun_dir = None\nseed = 0')
    parameters.metadata["tags"] = ["parameters"]
    notebook.cells = [nbformat.v4.new_markdown_cell(f"# {path.stem}"), parameters, nbformat.v4.new_code_cell(body)]
    nbformat.write(notebook, path)


WRITES_MARKER = (
    "from pathlib import Path\n"
    "out = Path(run_dir) / 'artifacts' / '{name}'\n"
    "out.mkdir(parents=True)\n"
    "(out / 'seen.json').write_text(__import__('json').dumps([profile, data_dir, seed]))\n"
    "import matplotlib.pyplot as plt\n"
    "plt.plot([1, 2])\n"
    "plt.show()"
)


@pytest.fixture
def suite(tmp_path):
    notebooks = tmp_path / "notebooks"
    notebooks.mkdir()
    write_notebook(notebooks / "01_data_first.ipynb", WRITES_MARKER.format(name="01_data_first"))
    write_notebook(
        notebooks / "02_cnmc_second.ipynb",
        "from pathlib import Path\nassert (Path(run_dir) / 'artifacts' / '01_data_first' / 'seen.json').exists()",
    )
    return notebooks


def test_notebook_names_give_number_and_chapter():
    assert parse_notebook_name(Path("07_wbc_unet_pretraining.ipynb")).chapter == "wbc_unet"
    assert parse_notebook_name(Path("01_data_cnmc_tour.ipynb")).number == 1
    for bad in ("data_tour.ipynb", "01_unknown_topic.ipynb", "01_Data_x.ipynb"):
        with pytest.raises(ValueError, match="NN_<chapter>_<topic>"):
            parse_notebook_name(Path(bad))


def test_select_by_chapter_pattern_and_typo(suite):
    notebooks = discover(suite)
    assert [nb.name for nb in select(notebooks, ["cnmc"])] == ["02_cnmc_second"]
    assert [nb.name for nb in select(notebooks, ["01_*"])] == ["01_data_first"]
    assert len(select(notebooks, None)) == 2
    with pytest.raises(ValueError, match="matches no notebook"):
        select(notebooks, ["cnmcc"])


@pytest.mark.slow
def test_run_executes_in_order_into_new_directories(suite, tmp_path):
    runs = tmp_path / "runs"
    lines: list[str] = []
    first = run_suite("smoke", data_dirs={"cnmc": tmp_path}, seed=3, notebooks_dir=suite, root=runs, log=lines.append)
    manifest = json.loads((first / "manifest.json").read_text())
    assert [nb["status"] for nb in manifest["notebooks"]] == ["ok", "ok"]
    assert all(nb["duration_s"] >= 0 for nb in manifest["notebooks"])
    assert manifest["profile"] == "smoke" and manifest["keras_backend"] and manifest["device"]
    assert "numpy" in manifest["packages"] and manifest["commit"]
    seen = json.loads((first / "artifacts" / "01_data_first" / "seen.json").read_text())
    assert seen == ["smoke", str(tmp_path.resolve()), 3]
    assert (first / "notebooks" / "02_cnmc_second.ipynb").exists()
    assert (first / "artifacts" / "01_data_first" / "figures" / "figure-01.png").read_bytes().startswith(b"\x89PNG")
    assert manifest["notebooks"][0]["figures"] == 1
    assert any("01_data_first done in" in line for line in lines)

    before = {p: p.read_bytes() for p in first.rglob("*") if p.is_file()}
    second = run_suite("smoke", notebooks_dir=suite, root=runs, log=lines.append)
    assert second != first
    assert before == {p: p.read_bytes() for p in first.rglob("*") if p.is_file()}


@pytest.mark.slow
def test_failing_notebook_stops_the_run_and_is_named(suite, tmp_path):
    write_notebook(suite / "01_data_first.ipynb", "x = 1\nraise RuntimeError('broken on purpose')")
    with pytest.raises(SuiteFailed, match=r"01_data_first failed in cell \[3\] \(cell 4 of the executed notebook, starting `x = 1`\): RuntimeError: broken on purpose") as caught:
        run_suite("smoke", notebooks_dir=suite, root=tmp_path / "runs", log=lambda line: None)
    manifest = json.loads((caught.value.run_dir / "manifest.json").read_text())
    assert [nb["status"] for nb in manifest["notebooks"]] == ["failed", "not run"]


def test_cli_rejects_bad_arguments(capsys):
    with pytest.raises(SystemExit):
        cli.main(["run", "--data-dir", "cnmc"])
    assert "DATASET=PATH" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["run", "--profile", "huge"])
