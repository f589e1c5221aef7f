"""Item 4: zstd with threads=2 against one thread, on an object over 64 MiB.

The worker asks for ``Settings.compress_threads`` (os.cpu_count()) threads
when an object is at least ``threads_min_size`` (64 MiB); this measures what
that buys on this machine, through compress_stream like the worker calls it.
"""

from __future__ import annotations

import io
from pathlib import Path

from chalicelib.codecs import compress_stream
from chalicelib.domain import Algorithm

from .measure import Figure, MiB, NullSink, alternate, median_ratio, say

FIGURES = ["threads.zstd2_vs_1"]


def run(path: Path, size: int, rounds: int, level: int = 3) -> list[Figure]:
    with open(path, "rb") as f:
        block = f.read(size)
    data = (block * (size // len(block) + 1))[:size]  # the quick corpus is smaller than 64 MiB
    del block

    def variant(threads):
        return lambda: compress_stream(io.BytesIO(data), NullSink(), Algorithm.ZSTD, level, threads=threads)

    say(f"[4] zstd-{level} threads=2 vs 1 on {size / MiB:.0f} MiB of {path.name}: {rounds} rounds")
    times = alternate({"one": variant(0), "two": variant(2)}, rounds)
    speed = lambda k: size / MiB / sorted(times[k])[len(times[k]) // 2]  # noqa: E731
    return [
        Figure(
            "threads.zstd2_vs_1",
            f"zstd-{level} threads=2 speed / single-thread ({size / MiB:.0f} MiB)",
            median_ratio(times["one"], times["two"]),
            target=1.7,
            detail=f"single {speed('one'):.0f} MiB/s, two threads {speed('two'):.0f} MiB/s",
            extra={"times": times},
        )
    ]
