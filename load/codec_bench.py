"""Benchmark 1: like against like, wall time and CPU time, in alternating rounds.

- **Whole process against whole process**: the venv's ``squeezer compress -c
  FILE`` against ``zstd -3 -T1 -c FILE`` (and ``-T2`` against ``squeezer
  compress -T2``), ``brotli -q 5 -c`` and ``gzip -6 -c``. Each child writes to
  a file of its own (page cache, same folder for both); its wall time is
  measured around ``fork``/``wait4`` and its CPU time (user + system, all its
  threads) comes from ``wait4``'s rusage. Both sides pay for starting: a
  Python interpreter and the imports for squeezer, a C binary for the tools.
  The tools are Debian's and link their own libraries (zstd CLI vs the
  libzstd bundled in python-zstandard; GNU gzip's deflate vs zlib-ng): the
  versions are in each figure's detail.
- **In process against the same library in process**:
  ``chalicelib.codecs.compress_stream`` against the library's own streaming
  API on the same file (python-zstandard ``copy_stream``,
  ``brotli.Compressor``, zlib-ng ``compressobj``), same read size, output
  counted and dropped: what the wrapper costs, nothing else.
- **Start-up**: the CPU time of ``squeezer --help`` (median of runs).

Issue 14's targets: ``squeezer compress`` at least 0.95x the wall speed of
``zstd -3`` with the same thread count and at most 1.05x its CPU time, on
200 MiB of text (logs) and of JSON (jsonl); ``squeezer --help`` under 0.1 s
of CPU.
"""

from __future__ import annotations

import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import brotli
import zstandard
from zlib_ng import zlib_ng

from chalicelib.codecs import CHUNK_SIZE, compress_stream
from chalicelib.domain import Algorithm

from .measure import Figure, MiB, NullSink, alternate, median_ratio, say, timed

PROCESS_KINDS = ("logs", "jsonl")  # text and JSON, as the issue asks


@dataclass(frozen=True)
class Pair:
    """One whole-process comparison: squeezer's command line against a tool's, same level and threads."""

    name: str
    algorithm: Algorithm
    level: int
    tool: tuple[str, ...]  # argv before the file
    squeezer: tuple[str, ...]  # arguments of `squeezer compress` before the file
    speed_target: float | None
    cpu_target: float | None


PAIRS = (
    Pair("zstd_t1", Algorithm.ZSTD, 3, ("zstd", "-3", "-T1", "-q", "-c"), ("-T1",), 0.95, 1.05),
    Pair("zstd_t2", Algorithm.ZSTD, 3, ("zstd", "-3", "-T2", "-q", "-c"), ("-T2",), 0.95, 1.05),
    # brotli and gzip: no target in issue 14; the earlier ones (stream vs CLI) were 0.95 and 1.5 for speed.
    Pair("brotli", Algorithm.BROTLI, 5, ("brotli", "-q", "5", "-c"), ("-a", "brotli", "-l", "5"), 0.95, None),
    Pair("gzip", Algorithm.GZIP, 6, ("gzip", "-6", "-c"), ("-a", "gzip", "-l", "6"), 1.5, None),
)
LIBRARY = {Algorithm.ZSTD: 3, Algorithm.BROTLI: 5, Algorithm.GZIP: 6}
LIBRARY_TARGET = 1.05  # the wrapper's CPU at most 1.05x the library's own streaming API's
HELP_TARGET_MS = 100.0
TABLE_LEVELS = {
    Algorithm.ZSTD: (1, 3, 6, 9, 12, 15),
    Algorithm.BROTLI: (0, 1, 3, 5, 7, 9),
    Algorithm.GZIP: (1, 3, 6, 9),
}


def figure_names(kinds=PROCESS_KINDS) -> list[str]:
    names = []
    for pair in PAIRS:
        for kind in PROCESS_KINDS:
            names += [f"codec.process.{pair.name}.{kind}.speed", f"codec.process.{pair.name}.{kind}.cpu"]
    for algorithm in LIBRARY:
        names += [f"codec.inprocess.{algorithm.value}.{kind}" for kind in kinds]
    return [*names, "codec.help_cpu", "codec.table"]


def missing_tools() -> list[str]:
    return sorted({p.tool[0] for p in PAIRS if shutil.which(p.tool[0]) is None})


def squeezer_command() -> str:
    """The venv's console script (what a user runs), else the one on PATH."""
    beside = Path(sys.executable).parent / "squeezer"
    found = str(beside) if beside.exists() else shutil.which("squeezer")
    if found is None:
        raise RuntimeError("no squeezer command: install the project (make venv)")
    return found


# -- whole processes ----------------------------------------------------------------------


@dataclass
class Child:
    wall: float
    cpu: float  # user + system of the child and all its threads
    size: int  # bytes written


def run_child(argv: list[str], out: Path) -> Child:
    """Run ``argv`` with stdout to ``out``; wall time around fork/wait4, CPU time from wait4's rusage."""
    with open(out, "wb") as sink:
        began = time.perf_counter()
        proc = subprocess.Popen(argv, stdout=sink, stdin=subprocess.DEVNULL)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - began
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {proc.returncode}")
    return Child(wall, usage.ru_utime + usage.ru_stime, out.stat().st_size)


def alternate_children(variants: dict[str, list[str]], rounds: int, out_dir: Path) -> dict[str, list[Child]]:
    """Every variant once per round, the order rotating, as :func:`load.measure.alternate`."""
    names = list(variants)
    runs: dict[str, list[Child]] = {name: [] for name in names}
    for r in range(rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            runs[name].append(run_child(variants[name], out_dir / f"{name}.out"))
    return runs


def process_figures(pair: Pair, kind: str, path: Path, rounds: int, out_dir: Path, versions: str) -> list[Figure]:
    squeezer = [squeezer_command(), "compress", *pair.squeezer, "-q", "-c", str(path)]
    tool = [*pair.tool, str(path)]
    say(f"[1] {' '.join(pair.tool)} vs squeezer compress {' '.join(pair.squeezer)} on {kind}: {rounds} rounds")
    runs = alternate_children({"squeezer": squeezer, "tool": tool}, rounds, out_dir)
    mine, theirs = runs["squeezer"], runs["tool"]
    size = path.stat().st_size

    def med(children: list[Child], attr: str) -> float:
        return statistics.median(getattr(c, attr) for c in children)

    detail = (
        f"wall {med(mine, 'wall'):.3f} s vs {med(theirs, 'wall'):.3f} s "
        f"({size / MiB / med(mine, 'wall'):.0f} vs {size / MiB / med(theirs, 'wall'):.0f} MiB/s), "
        f"CPU {med(mine, 'cpu'):.3f} s vs {med(theirs, 'cpu'):.3f} s, "
        f"output {mine[-1].size:,} vs {theirs[-1].size:,} bytes; {versions}"
    )
    shown = " ".join(pair.tool[:-2] if pair.tool[-2:] == ("-q", "-c") else pair.tool[:-1])
    what = f"`squeezer compress {' '.join(pair.squeezer)}` vs `{shown}`, whole process, {size / MiB:.0f} MiB {kind}"
    extra = {k: [c.__dict__ for c in v] for k, v in runs.items()}
    return [
        Figure(
            f"codec.process.{pair.name}.{kind}.speed",
            f"speed (tool wall / squeezer wall): {what}",
            median_ratio([c.wall for c in theirs], [c.wall for c in mine]),
            target=pair.speed_target,
            detail=detail,
            extra=extra,
        ),
        Figure(
            f"codec.process.{pair.name}.{kind}.cpu",
            f"CPU (squeezer CPU / tool CPU): {what}",
            median_ratio([c.cpu for c in mine], [c.cpu for c in theirs]),
            target=pair.cpu_target,
            higher_is_better=False,
        ),
    ]


def help_cpu(runs: int = 9) -> Figure:
    """CPU time of ``squeezer --help``, median of ``runs`` (start-up: imports and Click)."""
    argv = [squeezer_command(), "--help"]
    children = [run_child(argv, Path(os.devnull)) for _ in range(runs)]
    cpu = sorted(c.cpu * 1000 for c in children)
    wall = statistics.median(c.wall * 1000 for c in children)
    return Figure(
        "codec.help_cpu",
        f"CPU of `squeezer --help` (median of {runs} runs)",
        statistics.median(cpu),
        unit="ms",
        target=HELP_TARGET_MS,
        higher_is_better=False,
        detail=f"min {cpu[0]:.0f} ms, max {cpu[-1]:.0f} ms, wall median {wall:.0f} ms",
    )


# -- in process ---------------------------------------------------------------------------


def _ours(path: Path, algorithm: Algorithm, level: int) -> Callable[[], None]:
    def run() -> None:
        with open(path, "rb") as source:
            compress_stream(source, NullSink(), algorithm, level)

    return run


def _library(path: Path, algorithm: Algorithm, level: int) -> Callable[[], None]:
    """The library's own streaming API, as its documentation shows it, with the same read size."""

    def run() -> None:
        sink = NullSink()
        with open(path, "rb") as source:
            if algorithm is Algorithm.ZSTD:
                zstandard.ZstdCompressor(level=level, write_checksum=True).copy_stream(
                    source, sink, read_size=CHUNK_SIZE
                )
                return
            obj = brotli.Compressor(quality=level) if algorithm is Algorithm.BROTLI else None
            deflate = zlib_ng.compressobj(level, zlib_ng.DEFLATED, 31) if obj is None else None
            while chunk := source.read(CHUNK_SIZE):
                sink.write(obj.process(chunk) if obj is not None else deflate.compress(chunk))
            sink.write(obj.finish() if obj is not None else deflate.flush())

    return run


def inprocess_figure(algorithm: Algorithm, kind: str, path: Path, rounds: int, library: str) -> Figure:
    level = LIBRARY[algorithm]
    say(f"[1] compress_stream vs {library} in process, {algorithm.value}-{level} on {kind}: {rounds} rounds")
    cpu: dict[str, list[float]] = {}
    times = alternate({"ours": _ours(path, algorithm, level), "library": _library(path, algorithm, level)}, rounds, cpu)
    size = path.stat().st_size
    speed = {k: size / MiB / statistics.median(v) for k, v in times.items()}
    # CPU as the value: on this shared box it moves less with the load than wall time does.
    return Figure(
        f"codec.inprocess.{algorithm.value}.{kind}",
        f"{algorithm.value} {level} CPU, compress_stream / {library} in the same process ({size / MiB:.0f} MiB {kind})",
        median_ratio(cpu["ours"], cpu["library"]),
        target=LIBRARY_TARGET,
        higher_is_better=False,
        detail=f"wall speed {speed['ours']:.0f} vs {speed['library']:.0f} MiB/s, "
        f"ratio {median_ratio(times['library'], times['ours']):.3f}",
        extra={"times": times, "cpu": cpu},
    )


# -- versions -----------------------------------------------------------------------------


def _tool_version(argv: list[str]) -> str:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    found = re.search(r"v?(\d+\.\d+(?:\.\d+)?)", out.stdout + out.stderr)
    return found.group(1) if found else "?"


def versions() -> dict[Algorithm, str]:
    """What each side of a whole-process figure runs, for its detail line."""
    libzstd = ".".join(str(n) for n in zstandard.ZSTD_VERSION)
    return {
        Algorithm.ZSTD: f"zstd CLI {_tool_version(['zstd', '--version'])} vs python-zstandard "
        f"{zstandard.__version__} (libzstd {libzstd})",
        Algorithm.BROTLI: f"brotli CLI {_tool_version(['brotli', '--version'])} vs Python brotli "
        f"{getattr(brotli, '__version__', '?')}",
        Algorithm.GZIP: f"GNU gzip {_tool_version(['gzip', '--version'])} vs zlib-ng {zlib_ng.ZLIBNG_VERSION}",
    }


LIBRARY_NAMES = {
    Algorithm.ZSTD: "python-zstandard copy_stream",
    Algorithm.BROTLI: "brotli.Compressor",
    Algorithm.GZIP: "zlib-ng compressobj",
}


def run(
    files: dict[str, Path],
    rounds: int,
    table_file: Path,
    table_bytes: int,
    *,
    process_files: dict[str, Path] | None = None,
    process_rounds: int | None = None,
    out_dir: Path,
) -> list[Figure]:
    """Every figure of benchmark 1. ``process_files`` (text and JSON) for the whole-process pairs."""
    figures = []
    out_dir.mkdir(parents=True, exist_ok=True)
    named = versions()
    chosen = process_files or {k: files[k] for k in PROCESS_KINDS}
    for pair in PAIRS:
        for kind in PROCESS_KINDS:
            figures += process_figures(
                pair, kind, chosen[kind], process_rounds or rounds, out_dir, named[pair.algorithm]
            )
    for algorithm in LIBRARY:
        for kind, path in files.items():
            figures.append(inprocess_figure(algorithm, kind, path, rounds, LIBRARY_NAMES[algorithm]))
    for leftover in out_dir.glob("*.out"):
        leftover.unlink()
    figures.append(help_cpu())
    figures.append(table(table_file, table_bytes))
    return figures


def table(path: Path, limit: int) -> Figure:
    """Throughput and ratio per codec and level (best of 2), for the chart."""
    with open(path, "rb") as f:
        data = f.read(limit)
    rows = []
    for algorithm, levels in TABLE_LEVELS.items():
        for level in levels:
            sink = NullSink()
            best = float("inf")
            for _ in range(2):
                sink = NullSink()
                best = min(best, timed(lambda s=sink, a=algorithm, lv=level: compress_stream(_Reader(data), s, a, lv)))
            rows.append(
                {
                    "codec": algorithm.value,
                    "level": level,
                    "mib_s": len(data) / MiB / best,
                    "ratio": len(data) / sink.count,
                }
            )
            say(f"[1] table {algorithm.value}-{level}: {rows[-1]['mib_s']:.0f} MiB/s ratio {rows[-1]['ratio']:.2f}")
    text = "\n".join(
        f"      {r['codec']:7} {r['level']:>3}  {r['mib_s']:8.1f} MiB/s  ratio {r['ratio']:.3f}" for r in rows
    )
    return Figure(
        "codec.table",
        f"throughput per codec and level on {path.name} ({len(data) / MiB:.0f} MiB)",
        len(rows),
        unit="rows",
        detail=text.lstrip(),
        extra={"rows": rows, "file": path.name},
    )


class _Reader:
    """An in-memory source without BytesIO's copy on every read."""

    def __init__(self, data: bytes) -> None:
        self._view = memoryview(data)
        self._pos = 0

    def read(self, size: int = -1) -> bytes:
        end = len(self._view) if size < 0 else self._pos + size
        chunk = self._view[self._pos : end]
        self._pos += len(chunk)
        return bytes(chunk)
