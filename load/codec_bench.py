"""Item 1: chalicelib.codecs.compress_stream against Debian's CLI tools, one core.

Both sides read the same corpus file from the page cache and throw the output
away (the CLI writes to /dev/null, compress_stream to a NullSink). The CLI
timings include starting the process (~1-2 ms), which matters only for the
quick corpus. A "native loop" (the wheel's one-shot call on the whole file,
read beforehand) shows how far the streaming wrapper is from the library it
wraps, since the Debian tools link older libraries than the wheels.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import brotli
import zstandard
from zlib_ng import zlib_ng

from chalicelib.codecs import compress_stream
from chalicelib.domain import Algorithm

from .measure import Figure, MiB, NullSink, alternate, median_ratio, say, timed

CLI = {
    Algorithm.ZSTD: lambda lvl, p: ["zstd", f"-{lvl}", "--single-thread", "-q", "-c", str(p)],
    Algorithm.BROTLI: lambda lvl, p: ["brotli", "-q", str(lvl), "-c", str(p)],
    Algorithm.GZIP: lambda lvl, p: ["gzip", f"-{lvl}", "-c", str(p)],
}
TARGETS = {Algorithm.ZSTD: (3, 0.95), Algorithm.BROTLI: (5, 0.95), Algorithm.GZIP: (6, 1.5)}
TABLE_LEVELS = {
    Algorithm.ZSTD: (1, 3, 6, 9, 12, 15),
    Algorithm.BROTLI: (0, 1, 3, 5, 7, 9),
    Algorithm.GZIP: (1, 3, 6, 9),
}


def figure_names(kinds) -> list[str]:
    names = []
    for algorithm in TARGETS:
        names += [f"codec.{algorithm.value}.vs_cli.{kind}" for kind in kinds]
        names += [f"codec.{algorithm.value}.vs_native.{kind}" for kind in kinds]
    return names + ["codec.table"]


def missing_tools() -> list[str]:
    return [cmd(1, "x")[0] for cmd in CLI.values() if shutil.which(cmd(1, "x")[0]) is None]


def _stream(path: Path, algorithm: Algorithm, level: int):
    def run():
        with open(path, "rb") as source:
            compress_stream(source, NullSink(), algorithm, level)

    return run


def _cli(path: Path, algorithm: Algorithm, level: int):
    argv = CLI[algorithm](level, path)
    return lambda: subprocess.run(argv, stdout=subprocess.DEVNULL, check=True)


def _native(data: bytes, algorithm: Algorithm, level: int):
    if algorithm is Algorithm.ZSTD:
        compressor = zstandard.ZstdCompressor(level=level, write_checksum=True)
        return lambda: compressor.compress(data)
    if algorithm is Algorithm.BROTLI:
        return lambda: brotli.compress(data, quality=level)

    def run():
        obj = zlib_ng.compressobj(level, zlib_ng.DEFLATED, 31)
        obj.compress(data)
        obj.flush()

    return run


def run(files: dict[str, Path], rounds: int, table_file: Path, table_bytes: int) -> list[Figure]:
    figures = []
    for algorithm, (level, target) in TARGETS.items():
        for kind, path in files.items():
            data = path.read_bytes()
            say(f"[1] {algorithm.value}-{level} on {kind}: {rounds} rounds")
            times = alternate(
                {
                    "stream": _stream(path, algorithm, level),
                    "cli": _cli(path, algorithm, level),
                    "native": _native(data, algorithm, level),
                },
                rounds,
            )
            del data
            size = path.stat().st_size

            def mbps(key: str, size: int = size, times: dict = times) -> float:
                return size / MiB / sorted(times[key])[len(times[key]) // 2]

            speeds = (
                f"stream {mbps('stream'):.0f} MiB/s, CLI {mbps('cli'):.0f} MiB/s, native {mbps('native'):.0f} MiB/s"
            )
            figures.append(
                Figure(
                    f"codec.{algorithm.value}.vs_cli.{kind}",
                    f"{algorithm.value} {level} stream / `{' '.join(CLI[algorithm](level, '<f>')[:-2])}` speed ({kind})",
                    median_ratio(times["cli"], times["stream"]),
                    target=target,
                    detail=speeds,
                    extra={k: v for k, v in times.items()},
                )
            )
            figures.append(
                Figure(
                    f"codec.{algorithm.value}.vs_native.{kind}",
                    f"{algorithm.value} {level} stream / one-shot wheel call speed ({kind})",
                    median_ratio(times["native"], times["stream"]),
                )
            )
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
