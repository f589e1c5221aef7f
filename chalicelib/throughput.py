"""How fast the worker compresses, and whether a file fits in its time budget.

``SPEEDS`` is input MiB per second of ONE core for everything the worker
does per input byte -- sha256 and crc32 of the input, ``compress_stream``,
and the inline verification that decodes the output (``VerifyingSink``) --
for every algorithm and level. It is the one source of these figures.

Measured on 2026-12-04 on the project's 2-core x86_64 box (AMD EPYC, KVM,
shared with other work) with ``python -m load.budget_bench --write-table
--mib 2`` (zstandard 0.25 / libzstd 1.5.7, brotli 1.2, zlib-ng 2.3), which
for each level:

- feeds each of five data kinds -- service logs, JSON lines, a tar of mixed
  text and binary members, random bytes (load/corpus.py) and numeric CSV --
  through that path on one thread, and times (CPU seconds) 2 MiB after one
  untimed window of the codec (zstd's window for the level, brotli's 4 MiB;
  at most 8 MiB): the steady speed a file of hundreds of MiB sees, which is
  up to 2-3x slower than the first few MiB;
- keeps the slowest kind (numeric CSV for most levels), times 0.8 for the
  noise of one run, never faster than the level below, rounded down to two
  significant figures.

The 2 MiB after the window are a slow stretch of the CSV: over 60 MiB zstd 9
gets 22 MiB/s against 18 there, brotli 9 5.2 against 3.7, so the table errs
towards refusing. zstd 20-22 keep windows of 32-128 MiB, longer than the
8 MiB warm-up: theirs are the least certain figures. The whole measurement
took 452 s (load average about 2 from other work, which only slows it).

``make bench`` (benchmark 8, load/budget_bench.py) re-measures a subset the
same way and says SHORT if the table promises more than 0.9x of what it
measures; ``python -m load.budget_bench --write-table`` rewrites the table.

``POST /jobs`` refuses a file whose estimate exceeds the budget: the worker's
timeout less its stop margin, times ``SAFETY``.
"""

from __future__ import annotations

from dataclasses import dataclass

import zstandard

from .domain import Algorithm

MiB = 1024 * 1024
GiB = 1024 * MiB

# The table is one machine and five kinds of data; Lambda's vCPUs, other
# data (the issue saw brotli 9 at about 1 MiB/s on the local stack under
# load), S3 reads and the multipart upload all vary: promise at most half of
# the time the worker has.
SAFETY = 0.5

# zstd with N threads is credited with 0.65 x N cores, not N: the worker's
# own thread still hashes, decodes and uploads beside the compressing
# threads, each job re-reads part of the window, and two threads on this box
# measured 1.40x to 1.90x one (benchmark 4, BENCHMARKS.md): 0.65 x 2 = 1.3
# stays under the slowest of those. brotli and gzip use one thread.
ZSTD_THREAD_EFFICIENCY = 0.65

SPEEDS: dict[Algorithm, dict[int, float]] = {
    Algorithm.ZSTD: {
        1: 110.0,
        2: 85.0,
        3: 50.0,
        4: 38.0,
        5: 28.0,
        6: 23.0,
        7: 14.0,
        8: 14.0,
        9: 12.0,
        10: 7.4,
        11: 4.4,
        12: 3.3,
        13: 1.7,
        14: 1.6,
        15: 1.1,
        16: 0.97,
        17: 0.57,
        18: 0.47,
        19: 0.33,
        20: 0.3,
        21: 0.28,
        22: 0.28,
    },
    Algorithm.BROTLI: {
        0: 71.0,
        1: 59.0,
        2: 40.0,
        3: 33.0,
        4: 12.0,
        5: 9.4,
        6: 6.9,
        7: 3.6,
        8: 2.3,
        9: 2.0,
        10: 0.27,
        11: 0.21,
    },
    Algorithm.GZIP: {1: 39.0, 2: 35.0, 3: 32.0, 4: 32.0, 5: 27.0, 6: 26.0, 7: 13.0, 8: 8.1, 9: 8.1},
}


def budget_seconds(worker_timeout: float, stop_margin_ms: int) -> float:
    """The compression time a file may need: the worker's time, less its stop margin, times SAFETY."""
    return max(0.0, worker_timeout - stop_margin_ms / 1000) * SAFETY


def worker_threads(size: int, *, compress_threads: int, threads_min_size: int) -> int:
    """The zstd threads the worker uses for a file of ``size`` bytes (as chalicelib.worker decides)."""
    return compress_threads if compress_threads > 1 and size >= threads_min_size else 1


def speed(algorithm: Algorithm, level: int, size: int = 0, *, threads: int = 1) -> float:
    """Input MiB/s the worker gets through at this algorithm and level.

    zstd with ``threads`` > 1 splits its input into jobs of four windows
    (libzstd's rule), so only as many threads count as there are whole jobs
    in ``size``; each counts for ZSTD_THREAD_EFFICIENCY of a core.
    """
    one_core = SPEEDS[Algorithm(algorithm)][level]
    if algorithm is not Algorithm.ZSTD or threads <= 1:
        return one_core
    busy = min(threads, size // _zstd_job_size(level))
    return one_core * max(1.0, ZSTD_THREAD_EFFICIENCY * busy)


def estimate_seconds(algorithm: Algorithm, level: int, size: int, *, threads: int = 1) -> float:
    """Seconds the worker needs to compress and verify ``size`` bytes (``threads``: zstd's, see speed())."""
    return size / MiB / speed(algorithm, level, size, threads=threads)


def largest_size(algorithm: Algorithm, level: int, budget: float) -> int:
    """The largest file that fits ``budget`` seconds at this algorithm and level on one core."""
    return int(SPEEDS[Algorithm(algorithm)][level] * budget * MiB)


@dataclass(frozen=True)
class TooSlow:
    """A file that does not fit its budget, and what would: the answer of check_fits()."""

    algorithm: Algorithm
    level: int
    size: int
    seconds: float  # the estimate at the requested algorithm and level
    budget: float
    same_algorithm_level: int | None  # the highest level of the same algorithm that fits
    other: tuple[Algorithm, int] | None  # the highest fitting level of another algorithm, zstd first

    def advice(self, algorithm: Algorithm | None = None) -> str:
        """What to ask for instead: 'use brotli level 5 or lower, or zstd level 9 or lower'."""
        algorithm = self.algorithm if algorithm is None else algorithm
        options = []
        if self.same_algorithm_level is not None:
            options.append(f"{algorithm.value} level {self.same_algorithm_level} or lower")
        if self.other is not None:
            options.append(f"{self.other[0].value} level {self.other[1]} or lower")
        if not options:
            return "split the file into smaller files"
        return "use " + ", or ".join(options)

    def message(self, name: str) -> str:
        """The whole refusal, naming the file: what POST /jobs answers with its 400."""
        return (
            f"{name} ({format_size(self.size)}) would take about {self.seconds:,.0f} s to compress with "
            f"{self.algorithm.value} level {self.level}, more than the worker's budget of "
            f"{self.budget:,.0f} s; {self.advice()}"
        )


Suggestion = TooSlow  # the name the issue uses


def check_fits(
    algorithm: Algorithm, level: int, size: int, *, budget_seconds: float, threads: int = 1
) -> TooSlow | None:
    """None if ``size`` bytes fit ``budget_seconds`` at this algorithm and level, else what would fit.

    ``threads`` is what the worker would give zstd for this file (see
    worker_threads()); alternatives are judged with the same.
    """
    algorithm = Algorithm(algorithm)
    seconds = estimate_seconds(algorithm, level, size, threads=threads)
    if seconds <= budget_seconds:
        return None
    others = sorted((a for a in Algorithm if a is not algorithm), key=lambda a: a is not Algorithm.ZSTD)
    other = next(
        ((a, lvl) for a in others if (lvl := _highest_fitting(a, size, budget_seconds, threads)) is not None), None
    )
    return TooSlow(
        algorithm,
        level,
        size,
        seconds,
        budget_seconds,
        _highest_fitting(algorithm, size, budget_seconds, threads),
        other,
    )


def check(algorithm: Algorithm, level: int, size: int, budget: float) -> TooSlow | None:
    """check_fits() on one core, with the budget positional (the first API; service.py calls it)."""
    return check_fits(algorithm, level, size, budget_seconds=budget)


def format_size(size: int) -> str:
    """'5.0 GiB', '300.0 MiB', '12.0 KiB', '512 bytes'."""
    for unit, scale in (("GiB", GiB), ("MiB", MiB), ("KiB", 1024)):
        if size >= scale:
            return f"{size / scale:,.1f} {unit}"
    return f"{size} bytes"


def _highest_fitting(algorithm: Algorithm, size: int, budget: float, threads: int) -> int | None:
    fitting = [lvl for lvl in SPEEDS[algorithm] if estimate_seconds(algorithm, lvl, size, threads=threads) <= budget]
    return max(fitting) if fitting else None


def _zstd_job_size(level: int) -> int:
    # libzstd (ZSTDMT_computeTargetJobLog): a job is 4 windows, at least 1 MiB.
    window_log = zstandard.ZstdCompressionParameters.from_level(level).window_log
    return 1 << max(20, window_log + 2)
