"""The ``cytobook`` command: run the suite, build the book, generate and check data."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from .profiles import PROFILES


def _data_dir_pair(text: str) -> tuple[str, str]:
    name, sep, path = text.partition("=")
    if not sep or not name or not path:
        raise argparse.ArgumentTypeError(f"expected DATASET=PATH (e.g. cnmc=/data/C-NMC_Leukemia), got {text!r}")
    return name, path


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``cytobook`` (exposed for the tests and the docs)."""
    from .datasets import DATASETS

    parser = argparse.ArgumentParser(prog="cytobook", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="execute the notebooks in order into a new run directory")
    run.add_argument("--profile", choices=list(PROFILES), default="demo")
    run.add_argument("--data-dir", metavar="DATASET=PATH", type=_data_dir_pair, action="append", default=[],
                     help="real data for a data set (repeatable); without it, notebooks use generated data")
    run.add_argument("--only", metavar="CHAPTER_OR_PATTERN", action="append",
                     help="run only these chapters or notebook-name patterns (repeatable)")
    run.add_argument("--seed", type=int, default=0)

    book = commands.add_parser("book", help="build the HTML book from a run's executed notebooks")
    book.add_argument("run", nargs="?", type=Path, help="run directory (default: the latest run)")
    book.add_argument("--no-strict", dest="strict", action="store_false", help="do not turn warnings into errors")

    data = commands.add_parser("data", help="generate or check a data set").add_subparsers(dest="data_command", required=True)
    generate = data.add_parser("generate", help="write a generated data set in its official layout")
    generate.add_argument("dataset", choices=DATASETS)
    generate.add_argument("dest", type=Path)
    generate.add_argument("--profile", choices=list(PROFILES), default="demo")
    generate.add_argument("--seed", type=int, default=0)
    check = data.add_parser("check", help="validate a copy of a data set before a long run")
    check.add_argument("dataset", choices=DATASETS)
    check.add_argument("path", type=Path)
    check.add_argument("--json", action="store_true", help="print the report as JSON")
    check.add_argument("--no-decode", dest="decode", action="store_false", help="skip reading every image")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``cytobook`` console script; returns the exit status."""
    args = build_parser().parse_args(argv)
    if args.command == "run":
        from .runner import SuiteFailed, run_suite

        try:
            run_dir = run_suite(args.profile, data_dirs=dict(args.data_dir), only=args.only, seed=args.seed,
                                log=lambda line: print(line, flush=True))
        except SuiteFailed as failure:
            print(failure.run_dir)
            return 1
        except (ValueError, FileNotFoundError) as error:
            print(f"cytobook run: {error}", file=sys.stderr)
            return 2
        print(run_dir)
        return 0
    if args.command == "book":
        from .book import BookError, build_book
        from .suite import ProjectLayoutError

        try:
            index = build_book(args.run, strict=args.strict)
        except (BookError, ProjectLayoutError) as error:
            print(f"cytobook book: {error}", file=sys.stderr)
            return 1
        print(f"open {index}")
        return 0
    if args.data_command == "generate":
        from .datasets import generate

        print(generate(args.dataset, args.dest, args.profile, args.seed))
        return 0
    from .datasets import check

    if not args.path.exists():
        print(f"cytobook data check: {args.path} does not exist (expected a copy of {args.dataset})", file=sys.stderr)
        return 2
    report = check(args.dataset, args.path, decode=args.decode)
    print(json.dumps(report.to_dict(), indent=2) if args.json else report.format())
    return 0 if report.ok else 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
