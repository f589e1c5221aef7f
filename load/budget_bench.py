"""Benchmark 8: the speed table behind POST /jobs's time budget still under-promises.

``chalicelib.throughput.SPEEDS`` says how fast the worker gets through its
input per algorithm and level on one core. This re-measures a subset of
levels the worker's way -- sha256 of the input (the client declares one by
default), ``compress_stream``, and the inline verification that decodes the
output (``VerifyingSink``) -- on every data kind, and compares the slowest
kind with the table: the table must not promise more than is measured
(measured / table >= 0.9, 10% for noise; SHORT otherwise).

Files the budget matters for are hundreds of MiB to GiB, and the codecs slow
down as their window fills (zstd 19 on numeric CSV: 2.0 MiB/s over the first
2 MiB, 0.9 over 16 MiB). So each measurement first feeds one window of the
codec (zstd's window for the level, brotli's 4 MiB; at most ``WARM_CAP``)
untimed, then times the next ``sample`` bytes: the steady-state speed. The
quick mode skips the warm-up (it has to stay under 15 s), so it can only
catch a gross error.

``python -m load.budget_bench --write-table`` measures every level and
prints the table to paste into chalicelib/throughput.py.
"""

from __future__ import annotations

import argparse
import time

import zstandard

from chalicelib.codecs import HashingReader, VerifyingSink, compress_stream
from chalicelib.domain import Algorithm

from . import corpus
from .measure import Figure, MiB, say

FIGURES_LEVELS = {Algorithm.ZSTD: (1, 3, 9, 19), Algorithm.BROTLI: (1, 5, 9, 11), Algorithm.GZIP: (1, 6, 9)}
KINDS = ("logs", "jsonl", "mixed", "random", "csv")
TOLERANCE = 0.9  # measured / table below this: the table promises too much
# The table is the slowest kind x MARGIN: one run on a shared 2-core box
# reads up to ~20% slow or fast, and the table must stay below the next one.
MARGIN = 0.8
# Untimed warm-up at most this long: zstd 20-22's windows (32-128 MiB) would
# take minutes per kind at under 1 MiB/s; their speeds are the least certain.
WARM_CAP = 8 * MiB
BROTLI_WINDOW = 4 * MiB  # brotli.Compressor's default lgwin=22, which the codec uses
FIGURES = [f"budget.{a.value}_{level}" for a, levels in FIGURES_LEVELS.items() for level in levels]


def window(algorithm: Algorithm, level: int) -> int:
    """How much history the codec keeps: what it takes to reach its steady speed."""
    if algorithm is Algorithm.ZSTD:  # the worker streams without a size hint: the level's own window
        return 1 << zstandard.ZstdCompressionParameters.from_level(level).window_log
    if algorithm is Algorithm.BROTLI:
        return BROTLI_WINDOW
    return 32 * 1024  # deflate


class _Discard:
    def write(self, data: bytes) -> int:
        return len(data)


class _Source:
    """In-memory source that notes the CPU clock when the warm-up part has been read."""

    def __init__(self, data: bytes, warm: int) -> None:
        self._view, self._pos, self._warm = memoryview(data), 0, warm
        self.warm_at = time.process_time() if warm == 0 else None

    def read(self, size: int = -1) -> bytes:
        end = len(self._view) if size < 0 else self._pos + size
        chunk = bytes(self._view[self._pos : end])
        self._pos += len(chunk)
        if self.warm_at is None and self._pos >= self._warm:
            self.warm_at = time.process_time()
        return chunk


def measure(algorithm: Algorithm, level: int, data: bytes, *, warm: int = 0) -> float:
    """Input MiB per CPU second of the worker's path on one thread, after ``warm`` untimed bytes.

    The worker's path: sha256 + crc32 of the input, compress_stream, decode
    and crc32 of the output (VerifyingSink). Reads are 1 MiB, so ``warm``
    should be a multiple of it.
    """
    source = _Source(data, warm)
    reader = HashingReader(source, sha256=True)
    sink = VerifyingSink(_Discard(), algorithm)
    compress_stream(reader, sink, algorithm, level, threads=0)
    sink.finish()
    seconds = max(time.process_time() - source.warm_at, 1e-6)
    assert sink.plain_count == len(data)
    return (len(data) - warm) / MiB / seconds


def slowest(
    algorithm: Algorithm, level: int, samples: dict[str, bytes], *, warm: int = 0, repeats: int = 1
) -> tuple[float, str]:
    """The slowest kind's speed; each kind's best of ``repeats`` (noise on a shared box only slows)."""
    speeds = {
        kind: max(measure(algorithm, level, data, warm=warm) for _ in range(repeats)) for kind, data in samples.items()
    }
    kind = min(speeds, key=lambda k: speeds[k])
    return speeds[kind], kind


def _csv(size: int) -> bytes:
    """Numeric CSV rows, a dataset's shape: slower than logs for brotli and high zstd levels."""
    rows, total, i = [], 0, 0
    while total < size:
        row = b"%d,%x,event-%d,user-%d,%d\n" % (i, i * 7919, i % 97, i % 1013, i * i % 65521)
        rows.append(row)
        total += len(row)
        i += 1
    return b"".join(rows)[:size]


def samples_of(size: int) -> dict[str, bytes]:
    return {kind: _csv(size) if kind == "csv" else corpus.generate(kind, size) for kind in KINDS}


def warm_up(algorithm: Algorithm, level: int, cap: int) -> int:
    """Untimed bytes before the timed sample: one window, whole MiB, at most ``cap``."""
    return min(-(-window(algorithm, level) // MiB) * MiB, cap)


def run(sample_bytes: int, *, warm_cap: int = WARM_CAP, repeats: int = 2) -> list[Figure]:
    """Benchmark 8's figures: measured / table for FIGURES_LEVELS."""
    from chalicelib.throughput import SPEEDS

    longest = max(warm_up(a, lvl, warm_cap) for a, levels in FIGURES_LEVELS.items() for lvl in levels)
    pool = samples_of(longest + sample_bytes)
    figures = []
    for algorithm, levels in FIGURES_LEVELS.items():
        for level in levels:
            warm = warm_up(algorithm, level, warm_cap)
            samples = {kind: data[: warm + sample_bytes] for kind, data in pool.items()}
            speed, kind = slowest(algorithm, level, samples, warm=warm, repeats=repeats)
            table = SPEEDS[algorithm][level]
            verdict = "PASS" if speed / table >= TOLERANCE else "SHORT"
            say(f"budget {algorithm.value}-{level}: {speed:.2f} MiB/s measured ({kind}), table {table}: {verdict}")
            figures.append(
                Figure(
                    f"budget.{algorithm.value}_{level}",
                    f"{algorithm.value} level {level}: measured / table",
                    speed / table,
                    target=TOLERANCE,
                    detail=f"measured {speed:.2f} MiB/s on the slowest kind ({kind}; {warm / MiB:g} MiB warm-up, "
                    f"{sample_bytes / MiB:g} MiB timed), table {table} MiB/s",
                    extra={"measured": speed, "table": table, "kind": kind, "warm": warm},
                )
            )
    return figures


def measure_table(sample_bytes: int, *, warm_cap: int = WARM_CAP) -> dict[Algorithm, dict[int, float]]:
    """Every level's table entry: slowest kind x MARGIN, never faster than the level below, rounded down."""
    longest = max(warm_up(a, lvl, warm_cap) for a in Algorithm for lvl in _levels(a))
    pool = samples_of(longest + sample_bytes)
    table: dict[Algorithm, dict[int, float]] = {}
    for algorithm in Algorithm:
        row, ceiling = {}, float("inf")
        for level in _levels(algorithm):
            warm = warm_up(algorithm, level, warm_cap)
            samples = {kind: data[: warm + sample_bytes] for kind, data in pool.items()}
            speed, kind = slowest(algorithm, level, samples, warm=warm)
            ceiling = min(ceiling, round_down(speed * MARGIN))
            row[level] = ceiling
            say(f"{algorithm.value}-{level}: {speed:.3f} MiB/s ({kind}, {warm / MiB:g} MiB warm-up) -> {ceiling}")
        table[algorithm] = row
    return table


def _levels(algorithm: Algorithm) -> range:
    low, high = algorithm.level_range
    return range(low, high + 1)


def round_down(speed: float) -> float:
    """Two significant figures, rounded down: the table under-promises."""
    if speed <= 0:
        return 0.0
    scale = 10.0 ** (1 - int(f"{speed:e}".split("e")[1]))
    return int(speed * scale) / scale


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m load.budget_bench", description=__doc__.splitlines()[0])
    parser.add_argument("--write-table", action="store_true", help="measure every level; print the table")
    parser.add_argument("--mib", type=float, default=2, help="timed sample per data kind, after the warm-up (MiB)")
    parser.add_argument(
        "--quick", action="store_true", help="no warm-up, one run per kind (what make bench QUICK=1 does)"
    )
    args = parser.parse_args(argv)
    size = int(args.mib * MiB)
    began = time.perf_counter()
    if args.write_table:
        table = measure_table(size)
        print("SPEEDS: dict[Algorithm, dict[int, float]] = {")
        for algorithm, row in table.items():
            print(f"    Algorithm.{algorithm.name}: {{{', '.join(f'{lvl}: {v:g}' for lvl, v in row.items())}}},")
        print("}")
    else:
        for figure in run(size, warm_cap=0 if args.quick else WARM_CAP, repeats=1 if args.quick else 2):
            print(figure.line())
    say(f"{time.perf_counter() - began:.0f}s wall")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
