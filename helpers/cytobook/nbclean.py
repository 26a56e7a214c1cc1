"""Keep committed notebooks clean: no outputs, no execution counts, no run metadata.

Cells whose source carries nbval's ``# NBVAL_CHECK_OUTPUT`` marker keep their
outputs and execution count: those are the expected values that
``pytest --nbval-lax`` compares.

Usage: ``python -m cytobook.nbclean notebooks/*.ipynb`` (``--check`` only
reports; ``--expected-from RUN`` first copies the checked cells' outputs from
the executed notebooks of a ``smoke`` run).
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
        if CHECK_MARKER in cell.source:
            continue  # nbval needs both the expected outputs and an execution count here
        cell.execution_count = None
        cell.outputs = []
    notebook.metadata.pop("papermill", None)
    notebook.metadata.pop("widgets", None)
    return notebook


def copy_checked_outputs(notebook: nbformat.NotebookNode, executed: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Take the outputs of ``notebook``'s checked cells from an executed copy (matched by cell id)."""
    by_id = {cell.get("id"): cell for cell in executed.cells}
    for cell in notebook.cells:
        if cell.cell_type == "code" and CHECK_MARKER in cell.source:
            ran = by_id.get(cell.get("id"))
            if ran is None:
                raise ValueError(f"cell {cell.get('id')} is not in the executed notebook")
            cell.outputs, cell.execution_count = ran.outputs, ran.execution_count
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
    parser.add_argument("--expected-from", type=Path, metavar="RUN",
                        help="copy checked cells' outputs from RUN/notebooks/ (a smoke run) before cleaning")
    args = parser.parse_args(argv)
    dirty = []
    for path in args.paths:
        if args.expected_from:
            executed = nbformat.read(args.expected_from / "notebooks" / path.name, as_version=4)
            nbformat.write(copy_checked_outputs(nbformat.read(path, as_version=4), executed), path)
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
