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


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive whole number, got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``cytobook`` (exposed for the tests and the docs)."""
    from .datasets import DATASETS

    parser = argparse.ArgumentParser(prog="cytobook", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="execute the notebooks in order into a new run directory")
    # --profile and --seed default to None so that combining them with --resume can be refused.
    run.add_argument("--profile", choices=list(PROFILES), help="default: demo")
    run.add_argument("--data-dir", metavar="DATASET=PATH", type=_data_dir_pair, action="append", default=[],
                     help="real data for a data set (repeatable); without it, notebooks use generated data")
    run.add_argument("--only", metavar="CHAPTER_OR_PATTERN", action="append",
                     help="run only these chapters or notebook-name patterns (repeatable)")
    run.add_argument("--seed", type=int, help="default: 0")
    run.add_argument("--jobs", type=_positive_int, default=1,
                     help="notebooks run at once, each in its own kernel, chapters side by side (default 1: one after "
                          "the other); 2 on a 2-core machine")
    run.add_argument("--resume", metavar="RUN",
                     help="finish an interrupted or failed run (its directory or id): execute its notebooks that are "
                          "not ok, with the run's own profile, seed and data")

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
        return _run(args)
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


def _run(args: argparse.Namespace) -> int:
    """``cytobook run``: 0 when every notebook ran, 1 when one failed, 2 on bad input, 130 on Ctrl-C."""
    from .runner import SuiteFailed, SuiteInterrupted, resume_suite, run_suite

    def log(line: str) -> None:
        print(line, flush=True)

    if args.resume is not None:
        given = [flag for flag, value in (("--profile", args.profile), ("--only", args.only),
                                          ("--data-dir", args.data_dir), ("--seed", args.seed))
                 if value not in (None, [])]
        if given:
            print(f"cytobook run: --resume reruns the run with its own settings; it cannot be combined with {', '.join(given)}",
                  file=sys.stderr)
            return 2
    try:
        if args.resume is not None:
            run_dir = resume_suite(args.resume, log=log, jobs=args.jobs)
        else:
            run_dir = run_suite(args.profile or "demo", data_dirs=dict(args.data_dir), only=args.only,
                                seed=0 if args.seed is None else args.seed, log=log, jobs=args.jobs)
    except SuiteInterrupted as stop:
        # stderr: under `make book`, Ctrl-C also stops the `tee` that reads stdout.
        print(f"interrupted during {stop.notebook}; finish this run with: cytobook run --resume {_shown(stop.run_dir)}",
              file=sys.stderr)
        return 130
    except KeyboardInterrupt:  # before a notebook started: nothing to resume
        print("cytobook run: interrupted", file=sys.stderr)
        return 130
    except SuiteFailed as failure:
        print(f"after a fix, finish this run with: cytobook run --resume {_shown(failure.run_dir)}", file=sys.stderr)
        print(failure.run_dir)
        return 1
    except (ValueError, FileNotFoundError) as error:
        print(f"cytobook run: {error}", file=sys.stderr)
        return 2
    print(run_dir)
    return 0


def _shown(path: Path) -> str:
    """``path`` relative to the working directory when under it, else absolute: what a user would type."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
