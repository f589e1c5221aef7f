"""How fast the worker compresses, and whether a file fits in its time budget.

``SPEEDS`` is input MiB per second of ONE core for compressing and verifying
(the worker decodes its own output inline), per algorithm and level. It was
measured on 2026-12-04 on a 2-core x86_64 box with
``python -m load.budget_bench --write-table --mib 2``: the slowest of five
kinds of data (service logs, JSON lines, a tar of mixed members, random
bytes, numeric CSV), then made non-increasing with the level and multiplied
by 0.8 so that it under-promises. ``make bench`` (benchmark 8) re-measures a
subset and says SHORT if the table promises more than is measured.

``POST /jobs`` refuses a file whose estimate exceeds the budget: the
worker's timeout minus its stop margin, times ``SAFETY``. It counts one core
even for zstd: the API does not know the worker's vCPUs, and a file that fits
one core fits two.
"""
from __future__ import annotations

from dataclasses import dataclass

from .domain import Algorithm

MiB = 1024 * 1024

# Data differ (the issue that asked for this saw brotli 9 at about 1 MiB/s
# on the local stack, under load), and so do Lambda's vCPUs: use at most half
# of the time the worker has.
SAFETY = 0.5

SPEEDS: dict[Algorithm, dict[int, float]] = {
    Algorithm.ZSTD: {1: 176.0, 2: 114.0, 3: 74.0, 4: 74.0, 5: 67.0, 6: 46.0, 7: 34.0, 8: 31.0, 9: 26.0,
                     10: 18.0, 11: 13.0, 12: 10.0, 13: 5.1, 14: 3.5, 15: 3.5, 16: 2.7, 17: 2.7, 18: 2.6,
                     19: 1.7, 20: 1.3, 21: 0.88, 22: 0.23},
    Algorithm.BROTLI: {0: 110.0, 1: 74.0, 2: 58.0, 3: 54.0, 4: 29.0, 5: 23.0, 6: 18.0, 7: 10.0, 8: 7.4,
                       9: 7.1, 10: 1.2, 11: 0.52},
    Algorithm.GZIP: {1: 62.0, 2: 51.0, 3: 48.0, 4: 46.0, 5: 45.0, 6: 37.0, 7: 19.0, 8: 11.0, 9: 11.0},
}


def budget_seconds(worker_timeout: float, stop_margin_ms: int) -> float:
    """The compression time a file may need: the worker's time, less its margin, times SAFETY."""
    return max(0.0, worker_timeout - stop_margin_ms / 1000) * SAFETY


def estimate_seconds(algorithm: Algorithm, level: int, size: int) -> float:
    """Seconds of compression and verification for ``size`` bytes on one core."""
    return size / MiB / SPEEDS[algorithm][level]


def largest_size(algorithm: Algorithm, level: int, budget: float) -> int:
    """The largest file that fits ``budget`` seconds at this algorithm and level."""
    return int(SPEEDS[algorithm][level] * budget * MiB)


@dataclass(frozen=True)
class TooSlow:
    """A file that does not fit, and what would."""

    seconds: float
    budget: float
    same_algorithm_level: int | None  # the highest level of the same algorithm that fits
    other: tuple[Algorithm, int] | None  # else the best level of another algorithm that fits

    def advice(self, algorithm: Algorithm) -> str:
        if self.same_algorithm_level is not None:
            return f"use {algorithm.value} level {self.same_algorithm_level} or lower"
        if self.other is not None:
            return f"use {self.other[0].value} level {self.other[1]} or lower"
        return "split the file into smaller files"


def check(algorithm: Algorithm, level: int, size: int, budget: float) -> TooSlow | None:
    """None if the file fits the budget, else what would fit."""
    seconds = estimate_seconds(algorithm, level, size)
    if seconds <= budget:
        return None
    return TooSlow(seconds, budget, _highest_fitting(algorithm, size, budget), _other_fitting(algorithm, size, budget))


def _highest_fitting(algorithm: Algorithm, size: int, budget: float) -> int | None:
    fitting = [level for level in SPEEDS[algorithm] if estimate_seconds(algorithm, level, size) <= budget]
    return max(fitting) if fitting else None


def _other_fitting(algorithm: Algorithm, size: int, budget: float) -> tuple[Algorithm, int] | None:
    for other in sorted(Algorithm, key=lambda a: a is not Algorithm.ZSTD):  # zstd first
        if other is algorithm:
            continue
        level = _highest_fitting(other, size, budget)
        if level is not None:
            return other, level
    return None
