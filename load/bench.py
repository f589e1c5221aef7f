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
import subprocess
import sys
import time
from dataclasses import dataclass

from . import (
    api_bench,
    budget_bench,
    codec_bench,
    corpus,
    e2e_bench,
    fanout_bench,
    memory_bench,
    pipeline_bench,
    threads_bench,
    upload_bench,
)
from .chart import latency_chart, throughput_chart
from .measure import Figure, MiB

GiB = 1024 * MiB
BENCHES = ("codec", "pipeline", "memory", "threads", "budget", "upload", "e2e", "api", "fanout")
STACK_BENCHES = ("upload", "e2e", "api")  # these share one local stack


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
    upload_small: tuple[int, int]  # files, bytes each
    upload_large: tuple[int, int]
    upload_rounds: int
    e2e_small: tuple[int, int, int]  # files, smallest, largest
    e2e_large: tuple[int, int]
    e2e_timeout: float
    api_users: int
    api_seconds: int
    budget_sample: int = 2 * 1024 * 1024  # timed bytes per data kind for benchmark 8
    budget_warm_cap: int = budget_bench.WARM_CAP  # untimed warm-up (one codec window) at most
    budget_repeats: int = 1  # runs per kind; the slowest kind's best counts
    resume_size: int = 1024**3  # the file killed at half and resumed (benchmark 5)
    fanout_size: int = 4 * 1024**3  # the object of benchmark 9 (issue 11: 4 GiB)
    process_size: int = 200 * 1024**2  # benchmark 1's whole-process files, text and JSON (issue 14: 200 MiB)
    process_rounds: int = 5  # alternating rounds of each whole-process pair
    pipeline_size: int = 200 * 1024**2  # benchmark 2's object (issue 14: 200 MiB)


KiB = 1024
FULL = Mode(
    "full",
    100 * MiB,
    3,
    16 * MiB,
    5,
    100 * MiB,
    2 * GiB,
    (100 * MiB,),
    100 * MiB,
    5,
    (1000, 4 * KiB),
    (1, 2 * GiB),  # one file in parts (issue 11: multipart upload of a 2 GiB file)
    3,
    (1000, 4 * KiB, 16 * KiB),
    (10, 100 * MiB),
    600.0,
    10,
    30,
)
QUICK = Mode(
    "quick",
    4 * MiB,
    3,
    4 * MiB,
    3,
    8 * MiB,
    128 * MiB,
    (),
    72 * MiB,
    5,
    (100, 4 * KiB),
    (2, 8 * MiB),
    3,
    (50, 4 * KiB, 16 * KiB),
    (2, 4 * MiB),
    120.0,
    10,
    5,
    1 * MiB,
    budget_warm_cap=0,
    resume_size=256 * MiB,
    fanout_size=48 * MiB,
    process_size=4 * MiB,  # the quick corpus's own files
    process_rounds=3,
    pipeline_size=4 * MiB,  # the quick corpus's own file
)  # no warm-up: benchmark 8 stays under 15 s, a smoke test only


def figure_names(only: str | None = None) -> list[str]:
    """Every figure a run prints (the quick test checks them all)."""
    names = {
        "codec": codec_bench.figure_names(corpus.KINDS),
        "pipeline": pipeline_bench.FIGURES,
        "memory": memory_bench.figure_names(),
        "threads": threads_bench.FIGURES,
        "budget": budget_bench.FIGURES,
        "upload": upload_bench.FIGURES,
        "e2e": e2e_bench.FIGURES,
        "api": api_bench.FIGURES,
        "fanout": fanout_bench.FIGURES,
    }
    return [n for bench in BENCHES if _selected(only, bench) for n in names[bench]]


def _selected(only: str | None, bench: str) -> bool:
    return only in (None, bench) or (only == "stack" and bench in STACK_BENCHES)


def run_stack_benches(mode: Mode, only: str | None, files: dict, section) -> None:
    """Benchmarks 5-7, on one local stack (emulator, chalice local, bridge) started here."""
    wanted = [b for b in STACK_BENCHES if _selected(only, b)]
    data = {}
    if "upload" in wanted:
        n, size = mode.upload_small
        big_n, big = mode.upload_large
        data["upload"] = (
            e2e_bench.small_files(n, size, size, mode.name),
            e2e_bench.large_files(big_n, big, None, mode.name),
            e2e_bench.large_files(1, mode.resume_size, None, f"{mode.name}-resume"),
        )
    if "e2e" in wanted:
        n, low, high = mode.e2e_small
        big_n, big = mode.e2e_large
        sources = [p for k, p in files.items() if k in ("logs", "jsonl") and p.stat().st_size == big]
        data["e2e"] = (
            e2e_bench.small_files(n, low, high, mode.name),
            e2e_bench.large_files(big_n, big, sources or None, mode.name),
        )
    with e2e_bench.bench_stack() as stack:
        if "upload" in wanted:
            small, large, resumable = data["upload"]
            section(
                f"5. squeezer upload vs aws s3 cp --recursive, same folder, same emulator "
                f"(median of {mode.upload_rounds} alternating rounds; value = aws time / squeezer time)",
                lambda: upload_bench.run(stack, small, large, mode.upload_rounds, resumable),
            )
        measured: dict = {}
        if "e2e" in wanted:
            small, large = data["e2e"]

            def e2e():
                new, got = e2e_bench.run(stack, small, large, mode.e2e_timeout)
                measured.update(got)
                return new

            section(
                "6. end to end on the local stack: squeezer upload -> S3 event -> SQS -> bridge -> worker -> completed",
                e2e,
            )
        if "api" in wanted:
            section(
                f"7. API under load: locust, {mode.api_users} users, {mode.api_seconds}s, against chalice local",
                lambda: api_bench.run(stack, mode.api_users, mode.api_seconds),
            )
        if measured:
            # Item 7's latencies are mostly queueing in one `chalice local`; on AWS each
            # request has its own Lambda, so the model uses the idle stack's measured service times.
            section(
                "cost model (us-east-1 list prices; worker at 3538 MB; measured seconds: worker invocations, "
                "API requests one at a time on the idle stack)",
                lambda: e2e_bench.cost_model(measured)[0],
            )


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
        "awscli": upload_bench.aws_version(),
        "locust": api_bench.locust_version(),
    }


def machine() -> str:
    model = "?"
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
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
    parser.add_argument(
        "--only", choices=(*BENCHES, "stack"), help="run one benchmark (stack: 5-7, which share one local stack)"
    )
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
        process_files = corpus.corpus(mode.name, mode.process_size, codec_bench.PROCESS_KINDS)
        section(
            f"1. like with like: `squeezer compress` vs the reference CLIs as whole processes "
            f"({mode.process_size / MiB:.0f} MiB logs and jsonl, median of {mode.process_rounds} alternating "
            f"rounds, wall and the child's CPU from wait4), compress_stream vs each library's own streaming "
            f"API in process ({mode.corpus_size / MiB:.0f} MiB files, {mode.rounds} rounds), squeezer --help's CPU",
            lambda: codec_bench.run(
                files,
                mode.rounds,
                files["mixed"],
                mode.table_bytes,
                process_files=process_files,
                process_rounds=mode.process_rounds,
                out_dir=corpus.STATE / "codec-out",
            ),
        )
    if args.only in (None, "pipeline"):
        section(
            f"2. whole worker path vs the codec alone ({mode.pipeline_size / MiB:.0f} MiB logs, zstd-3, "
            "the function's threads, moto server on 127.0.0.1)",
            lambda: pipeline_bench.run(
                corpus.corpus(mode.name, mode.pipeline_size, ("logs",))["logs"], mode.pipeline_rounds
            ),
        )
    if args.only in (None, "memory"):
        section(
            "3. memory: peak RSS of FileProcessor._compress, fresh process per size",
            lambda: memory_bench.run(mode.memory_small, mode.memory_large, files["logs"], mode.memory_moto),
        )
    if args.only in (None, "threads"):
        section(
            "4. two cores: zstd threads=2 vs single-thread",
            lambda: threads_bench.run(files["logs"], mode.threads_size, mode.threads_rounds),
        )

    if args.only in (None, "budget"):
        warm = (
            f"after one codec window (at most {mode.budget_warm_cap / MiB:g} MiB) untimed"
            if mode.budget_warm_cap
            else "no warm-up, so faster than steady state"
        )
        section(
            f"8. the speed table behind POST /jobs's time budget vs measured (sha256 + compress + verify, "
            f"one core, slowest of {len(budget_bench.KINDS)} data kinds, {mode.budget_sample / MiB:g} MiB "
            f"timed each, {warm}; value = measured / table)",
            lambda: budget_bench.run(mode.budget_sample, warm_cap=mode.budget_warm_cap, repeats=mode.budget_repeats),
        )

    if any(_selected(args.only, b) for b in STACK_BENCHES):
        run_stack_benches(mode, args.only, files, section)
    if args.only in (None, "fanout"):
        section(
            f"9. fan-out: one {mode.fanout_size / MiB:.0f} MiB object in {fanout_bench.RANGES} ranges, the bridge with "
            "two worker processes vs one (fresh local stack each; value = one's time / two's), and a model of 1 TiB",
            lambda: fanout_bench.run(mode.fanout_size),
        )

    # A partial run (--only) keeps the whole run's results file intact.
    out = corpus.STATE / f"results-{mode.name}{'-' + args.only if args.only else ''}.json"
    out.write_text(json.dumps([{**f.__dict__, "verdict": f.verdict} for f in figures], indent=1, default=str))
    table = next((f for f in figures if f.name == "codec.table"), None)
    if table is not None:
        folder = corpus.ROOT / "load" / "charts" if mode is FULL else corpus.STATE / "charts"
        path = throughput_chart(
            table.extra["rows"],
            f"compress_stream, {table.extra['file']} ({mode.table_bytes / MiB:.0f} MiB), {machine().split(',')[0]}",
            folder / "throughput.png",
        )
        print(f"\nchart: {path.relative_to(corpus.ROOT)} ({path.stat().st_size / 1024:.0f} KB)")
    folder = corpus.ROOT / "load" / "charts" if mode is FULL else corpus.STATE / "charts"
    lat = {f.name: f for f in figures if f.name in ("e2e.small_files_per_s", "e2e.large_mib_per_s")}
    if lat:
        path = latency_chart(
            {f.label.split(",")[0]: f.extra["latencies"] for f in lat.values()},
            f"end-to-end latency per file on the local stack ({mode.name} mode), {machine().split(',')[0]}",
            folder / "e2e_latency.png",
        )
        print(f"chart: {path.relative_to(corpus.ROOT)} ({path.stat().st_size / 1024:.0f} KB)")
    counts = {v: sum(f.verdict == v for f in figures) for v in ("PASS", "SHORT", "INFO")}
    print(
        f"\nsummary: {counts['PASS']} PASS, {counts['SHORT']} SHORT, {counts['INFO']} INFO "
        f"in {time.perf_counter() - began:.0f}s; results in {out.relative_to(corpus.ROOT)}"
    )
    for f in figures:
        if f.verdict == "SHORT":
            print(f"SHORT: {f.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
