"""Time every chapter of the suite in one profile (``demo`` by default): the budget of ``make book``.

Not a test: a plain script. It runs the notebooks with
:func:`cytobook.runner.run_suite` into a new run directory (never over an
earlier run), two at a time as ``make book`` does, printing its progress, then each notebook's time from
that run's manifest, each chapter's total, the run's wall-clock time (the budget) and the machine it ran on. Generating the chapter's data is
part of its first notebook's time, unless the data cache already holds it;
the install of ``make book`` is not included.

    python bench/bench_chapters.py                       # every chapter, demo profile
    python bench/bench_chapters.py --only cnmc --profile smoke --jobs 1
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict

from cytobook.book import format_duration
from cytobook.runner import run_suite


def chapter_times(manifest: dict) -> dict[str, float]:
    """Seconds spent in each chapter's notebooks, in suite order."""
    totals: dict[str, float] = defaultdict(float)
    for record in manifest["notebooks"]:
        totals[record["chapter"]] += record["duration_s"] or 0.0
    return dict(totals)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="demo", help="smoke, demo or full (default demo)")
    parser.add_argument("--only", nargs="*", help="chapters or notebook-name patterns (default: all)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--jobs", type=int, default=2, help="notebooks at once (default 2, as make book)")
    args = parser.parse_args(argv)

    run_dir = run_suite(args.profile, only=args.only, seed=args.seed, jobs=args.jobs)
    manifest = json.loads((run_dir / "manifest.json").read_text())
    print(f"profile {args.profile}, {manifest['device']}, backend {manifest['keras_backend']}, run {run_dir}")
    for record in manifest["notebooks"]:
        print(f"  {record['name']:<34} {format_duration(record['duration_s']):>8}  {record['status']}")
    totals = chapter_times(manifest)
    for chapter, seconds in totals.items():
        print(f"chapter {chapter:<26} {format_duration(seconds):>8}")
    print(f"{'all, one after the other':<34} {format_duration(sum(totals.values())):>10}")
    print(f"{f'wall clock, {args.jobs} at a time':<34} {format_duration(manifest['duration_s']):>10}")


if __name__ == "__main__":
    main()
