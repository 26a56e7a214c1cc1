"""Keep committed notebooks clean: no outputs, no execution counts, no run metadata.

Cells whose source carries nbval's ``# NBVAL_CHECK_OUTPUT`` marker keep their
outputs: those are the expected values that ``pytest --nbval-lax`` compares.

Usage: ``python -m cytobook.nbclean notebooks/*.ipynb`` (``--check`` only reports).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import nbformat

CHECK_MARKER = "# NBVAL_CHECK_OUTPUT"


def clean(notebook: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Return ``notebook`` without outputs (except checked cells), counts or papermill metadata."""
    for cell in notebook.cells:
        cell.metadata.pop("papermill", None)
        cell.metadata.pop("execution", None)
        if cell.cell_type != "code":
            continue
        cell.execution_count = None
        if CHECK_MARKER not in cell.source:
            cell.outputs = []
        for output in cell.get("outputs", []):
            if "execution_count" in output:
                output["execution_count"] = None
    notebook.metadata.pop("papermill", None)
    notebook.metadata.pop("widgets", None)
    return notebook


def is_clean(path: Path) -> bool:
    """Whether the file at ``path`` is already as :func:`clean` would leave it."""
    notebook = nbformat.read(path, as_version=4)
    before = nbformat.writes(notebook)
    return nbformat.writes(clean(notebook)) == before


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="+", type=Path)
    parser.add_argument("--check", action="store_true", help="exit 1 if a notebook is not clean, change nothing")
    args = parser.parse_args(argv)
    dirty = []
    for path in args.paths:
        if is_clean(path):
            continue
        dirty.append(path)
        if not args.check:
            nbformat.write(clean(nbformat.read(path, as_version=4)), path)
    verb = "not clean" if args.check else "cleaned"
    for path in dirty:
        print(f"{verb}: {path}")
    return 1 if (args.check and dirty) else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
