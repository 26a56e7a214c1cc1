"""Timing shared by the benchmarks (plain scripts run as ``python bench/<name>.py``)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence


def best_of(functions: Sequence[Callable[[], object]], repeat: int) -> list[float]:
    """Fastest of ``repeat`` runs of each function, in seconds.

    The functions take turns, so a burst of load from other processes hits
    all of them alike instead of skewing the comparison; the minimum is the
    least disturbed run.
    """
    times: list[list[float]] = [[] for _ in functions]
    for _ in range(repeat):
        for function, record in zip(functions, times):
            start = time.perf_counter()
            function()
            record.append(time.perf_counter() - start)
    return [min(record) for record in times]
