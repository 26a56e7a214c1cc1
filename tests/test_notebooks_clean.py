"""Every notebook of the suite is named, parameterised and committed as the suite expects."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

from cytobook.nbclean import is_clean
from cytobook.runner import discover
from cytobook.suite import parse_notebook_name

NOTEBOOKS = sorted((Path(__file__).parent.parent / "notebooks").glob("*.ipynb"))
COMMON_PARAMETERS = ("profile", "data_dir", "run_dir", "seed")


def test_there_are_notebooks():
    assert NOTEBOOKS
    assert len(discover(NOTEBOOKS[0].parent)) == len(NOTEBOOKS)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_named_parameterised_and_clean(path):
    parse_notebook_name(path)  # NN_<chapter>_<topic>
    notebook = nbformat.read(path, as_version=4)
    assert notebook.cells[0].cell_type == "markdown" and notebook.cells[0].source.startswith("# "), "title first"
    first_code = next(cell for cell in notebook.cells if cell.cell_type == "code")
    assert "parameters" in first_code.metadata.get("tags", []), "the first code cell is the papermill parameters cell"
    for name in COMMON_PARAMETERS:
        assert f"{name} = " in first_code.source, f"parameter {name} missing"
    assert f'start("{path.stem}"' in "".join(cell.source for cell in notebook.cells), "start() names the notebook"
    assert is_clean(path), f"run `make clean-notebooks`: {path.name} has outputs or execution counts"
