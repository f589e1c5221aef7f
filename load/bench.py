"""The benchmark runner: ``python -m load.bench [--quick] [--only NAME]``.

Prints every figure with its target and PASS/SHORT (INFO when it has none)
on stdout; progress goes to stderr. Exits 0 whatever the figures say: speed
never fails a build, a crash does. Results are also written as JSON to
``.state/bench/results-<mode>.json``; the full run's chart goes to
``load/charts/``, the quick run's to ``.state/bench/charts/``.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass

from . import codec_bench, corpus, memory_bench, pipeline_bench, threads_bench
from .chart import throughput_chart
from .measure import Figure, MiB, say

GiB = 1024 * MiB
BENCHES = ("codec", "pipeline", "memory", "threads")


@dataclass(frozen=True)
class Mode:
    name: str
    corpus_size: int
    rounds: int
    table_bytes: int
    pipeline_rounds: int
    memory_small: int
    memory_large: int
    memory_moto: tuple[int, ...]
    threads_size: int
    threads_rounds: int


FULL = Mode("full", 100 * MiB, 3, 32 * MiB, 5, 100 * MiB, 2 * GiB, (100 * MiB,), 100 * MiB, 5)
QUICK = Mode("quick", 4 * MiB, 3, 4 * MiB, 3, 8 * MiB, 128 * MiB, (), 72 * MiB, 5)


def figure_names(only: str | None = None) -> list[str]:
    """Every figure a run prints (the quick test checks them all)."""
    names = {
        "codec": codec_bench.figure_names(corpus.KINDS),
        "pipeline": pipeline_bench.FIGURES,
        "memory": memory_bench.figure_names(),
        "threads": threads_bench.FIGURES,
    }
    return [n for bench in BENCHES if only in (None, bench) for n in names[bench]]


def versions() -> dict[str, str]:
    import brotli
    import zlib_ng
    import zstandard

    def tool(argv):
        try:
            out = subprocess.run(argv, capture_output=True, text=True, timeout=10)
            return (out.stdout or out.stderr).strip().splitlines()[0]
        except (OSError, IndexError, subprocess.TimeoutExpired):
            return "missing"

    return {
        "python": platform.python_version(),
        "zstandard": f"{zstandard.__version__} (libzstd {zstandard.ZSTD_VERSION[0]}.{zstandard.ZSTD_VERSION[1]}."
                     f"{zstandard.ZSTD_VERSION[2]}, backend {zstandard.backend})",
        "brotli": getattr(brotli, "__version__", "?"),
        "zlib-ng": f"{getattr(zlib_ng, '__version__', '?')} (zlib-ng {zlib_ng.zlib_ng.ZLIBNG_VERSION})",
        "zstd CLI": tool(["zstd", "--version"]),
        "brotli CLI": tool(["brotli", "--version"]),
        "gzip CLI": tool(["gzip", "--version"]),
    }


def machine() -> str:
    model = "?"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
        ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / GiB
    except (OSError, ValueError):
        ram = 0
    return f"{model}, {os.cpu_count()} cores, {ram:.1f} GiB RAM, {platform.system()} {platform.release()}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m load.bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small inputs, under a minute (CI)")
    parser.add_argument("--only", choices=BENCHES, help="run one benchmark")
    args = parser.parse_args(argv)
    mode = QUICK if args.quick else FULL
    missing = codec_bench.missing_tools()
    if missing and args.only in (None, "codec"):
        parser.error(f"missing CLI tools {missing}: apt-get install -y zstd brotli gzip")

    began = time.perf_counter()
    print(f"# Squeezer benchmarks, {mode.name} mode")
    print(f"machine: {machine()}")
    for name, version in versions().items():
        print(f"{name}: {version}")
    files = corpus.corpus(mode.name, mode.corpus_size)
    figures: list[Figure] = []

    def section(title: str, produce) -> None:
        print(f"\n## {title}", flush=True)
        started = time.perf_counter()
        new = produce()
        for figure in new:
            print(figure.line(), flush=True)
        figures.extend(new)
        print(f"({time.perf_counter() - started:.0f}s)", flush=True)

    if args.only in (None, "codec"):
        section(f"1. codec core vs reference tools ({mode.corpus_size / MiB:.0f} MiB files, one core, "
                f"median of {mode.rounds} alternating rounds; value = CLI time / stream time)",
                lambda: codec_bench.run(files, mode.rounds, files["mixed"], mode.table_bytes))
    if args.only in (None, "pipeline"):
        section("2. whole worker path vs the codec alone (zstd-3, logs file, moto server on 127.0.0.1)",
                lambda: pipeline_bench.run(files["logs"], mode.pipeline_rounds))
    if args.only in (None, "memory"):
        section("3. memory: peak RSS of Worker._compress, fresh process per size",
                lambda: memory_bench.run(mode.memory_small, mode.memory_large, files["logs"], mode.memory_moto))
    if args.only in (None, "threads"):
        section("4. two cores: zstd threads=2 vs single-thread",
                lambda: threads_bench.run(files["logs"], mode.threads_size, mode.threads_rounds))

    out = corpus.STATE / f"results-{mode.name}.json"
    out.write_text(json.dumps([{**f.__dict__, "verdict": f.verdict} for f in figures], indent=1, default=str))
    table = next((f for f in figures if f.name == "codec.table"), None)
    if table is not None:
        folder = corpus.ROOT / "load" / "charts" if mode is FULL else corpus.STATE / "charts"
        path = throughput_chart(table.extra["rows"], f"compress_stream, {table.extra['file']} "
                                f"({mode.table_bytes / MiB:.0f} MiB), {machine().split(',')[0]}",
                                folder / "throughput.png")
        print(f"\nchart: {path.relative_to(corpus.ROOT)} ({path.stat().st_size / 1024:.0f} KB)")
    counts = {v: sum(f.verdict == v for f in figures) for v in ("PASS", "SHORT", "INFO")}
    print(f"\nsummary: {counts['PASS']} PASS, {counts['SHORT']} SHORT, {counts['INFO']} INFO "
          f"in {time.perf_counter() - began:.0f}s; results in {out.relative_to(corpus.ROOT)}")
    for f in figures:
        if f.verdict == "SHORT":
            print(f"SHORT: {f.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
