"""Issue 11's acceptance run: one big file through the local stack, decoded by Debian's tools.

    python -m load.big_file [--size 6GiB] [--algorithms zstd,gzip]

Generates a mostly sparse file (holes, with 1 MiB of seeded random data
every 64 MiB, so the disk copes and the data is not all zeros), starts the
local stack on free ports (state in .state/bench/big-file), runs
``squeezer upload FILE -a ALGO --wait --download OUT`` for each algorithm,
decodes each result with ``zstd -d`` / ``gzip -d`` (Debian's tools, as a
user would) and compares the sha256 with the original's. Prints one line per
algorithm with the times, and exits non-zero on any mismatch.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path

from .corpus import ROOT
from .measure import MiB, say

GiB = 1024**3
STATE = ROOT / ".state" / "bench" / "big-file"
DECODERS = {"zstd": ["zstd", "-d", "-c", "-q"], "gzip": ["gzip", "-d", "-c"]}
EXTENSIONS = {"zstd": ".zst", "gzip": ".gz"}


def parse_size(text: str) -> int:
    units = {"": 1, "k": 1024, "m": MiB, "g": GiB, "t": 1024 * GiB}
    stripped = text.strip().lower().removesuffix("b").removesuffix("i")
    number = stripped.rstrip("kmgt")
    return int(float(number) * units[stripped[len(number) :]])


def make_file(path: Path, size: int, *, every: int = 64 * MiB, block: int = MiB) -> str:
    """A sparse file of ``size`` bytes with ``block`` random bytes every ``every``; its sha256."""
    rng = random.Random(f"big-file:{size}")
    digest = hashlib.sha256()
    zeros = bytes(MiB)
    with open(path, "wb") as out:
        out.truncate(size)
        position = 0
        while position < size:
            data = rng.randbytes(min(block, size - position))
            out.seek(position)
            out.write(data)
            digest.update(data)
            hole = min(every - len(data), size - position - len(data))
            for _ in range(hole // MiB):
                digest.update(zeros)
            digest.update(bytes(hole % MiB))
            position += len(data) + hole
    return digest.hexdigest()


def decoded_sha256(path: Path, algorithm: str) -> str:
    digest = hashlib.sha256()
    with subprocess.Popen([*DECODERS[algorithm], str(path)], stdout=subprocess.PIPE) as proc:
        assert proc.stdout is not None
        while chunk := proc.stdout.read(4 * MiB):
            digest.update(chunk)
    if proc.returncode != 0:
        raise RuntimeError(f"{DECODERS[algorithm][0]} -d exited {proc.returncode} on {path}")
    return digest.hexdigest()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m load.big_file", description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", default="6GiB", help="file size (default 6GiB)")
    parser.add_argument("--algorithms", default="zstd,gzip", help="comma-separated (zstd, gzip)")
    args = parser.parse_args(argv)
    size = parse_size(args.size)
    algorithms = [a for a in args.algorithms.split(",") if a]
    for algorithm in algorithms:
        if algorithm not in DECODERS or not shutil.which(DECODERS[algorithm][0]):
            parser.error(f"{algorithm}: unknown, or its Debian tool is missing (make bench-tools installs it)")
    shutil.rmtree(STATE, ignore_errors=True)
    source = STATE / "source"
    source.mkdir(parents=True)
    big = source / "big.bin"
    say(f"writing {big.relative_to(ROOT)} ({size / GiB:.1f} GiB, sparse)")
    expected = make_file(big, size)
    from .e2e_bench import bench_stack

    failures = 0
    with bench_stack() as stack:
        for algorithm in algorithms:
            out = STATE / f"out-{algorithm}"
            began = time.perf_counter()
            done = subprocess.run(
                [sys.executable, "-m", "client", "--api-url", stack.api_url, "upload", str(source),
                 "-a", algorithm, "--wait", "--download", str(out), "--new"],
                cwd=ROOT, env={**os.environ, "SQUEEZER_STATE_DIR": str(STATE / "client")},
                capture_output=True, text=True, timeout=3600,
            )  # fmt: skip
            seconds = time.perf_counter() - began
            if done.returncode != 0:
                print(f"FAIL  {algorithm}: squeezer upload exited {done.returncode}: {done.stderr[-1500:]}")
                failures += 1
                continue
            result = out / "source" / f"big.bin{EXTENSIONS[algorithm]}"
            began = time.perf_counter()
            got = decoded_sha256(result, algorithm)
            decode = time.perf_counter() - began
            ok = got == expected
            failures += not ok
            print(
                f"{'PASS' if ok else 'FAIL'}  {algorithm}: {size / GiB:.1f} GiB -> {result.stat().st_size / MiB:.1f} MiB "
                f"in {seconds:.0f}s (upload, compress, download); `{DECODERS[algorithm][0]} -d` in {decode:.0f}s, "
                f"sha256 {'matches' if ok else f'differs: {got} != {expected}'}"
            )
            shutil.rmtree(out, ignore_errors=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
