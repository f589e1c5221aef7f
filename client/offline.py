"""``squeezer compress`` / ``decompress``: the service's own codecs, on local files.

Output goes to a temporary file next to the target and is renamed into place
only once the stream is complete, so a failure never leaves a half-written
file behind, and an existing file is replaced only with ``force``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from chalicelib.codecs import (
    CodecError,
    Source,
    StreamStats,
    compress_stream,
    decompress_stream,
    detect_algorithm,
)
from chalicelib.domain import Algorithm

from .errors import InputError
from .files import atomic_file

_MAGIC_BYTES = 4


@dataclass(frozen=True)
class Outcome:
    source: Path
    output: Path
    algorithm: Algorithm
    stats: StreamStats


class _Counting:
    def __init__(self, source: Source, on_bytes: Callable[[int], None]) -> None:
        self._source = source
        self._on_bytes = on_bytes

    def read(self, size: int = -1) -> bytes:
        data: bytes = self._source.read(size)
        self._on_bytes(len(data))
        return data


def compress_file(
    source: Path,
    output: Path | None,
    algorithm: Algorithm,
    level: int | None,
    *,
    force: bool = False,
    on_bytes: Callable[[int], None] = lambda n: None,
) -> Outcome:
    output = output or source.with_name(source.name + algorithm.extension)
    _check_target(source, output, force)
    with _open_input(source) as src:
        stats = _write_atomically(
            output, lambda sink: compress_stream(_Counting(src, on_bytes), sink, algorithm, level)
        )
    return Outcome(source, output, algorithm, stats)


def decompress_file(
    source: Path,
    output: Path | None,
    *,
    force: bool = False,
    on_bytes: Callable[[int], None] = lambda n: None,
) -> Outcome:
    with _open_input(source) as src:
        head = src.read(_MAGIC_BYTES)
        src.seek(0)
        try:
            algorithm = detect_algorithm(head, source.name)
        except CodecError as exc:
            raise InputError(f"{source}: {exc}") from None
        if output is None:
            if not source.name.lower().endswith(algorithm.extension) or len(source.name) == len(algorithm.extension):
                raise InputError(
                    f"{source}: cannot name the output by dropping {algorithm.extension}: pass -o/--output"
                )
            output = source.with_name(source.name[: -len(algorithm.extension)])
        _check_target(source, output, force)
        try:
            stats = _write_atomically(output, lambda sink: decompress_stream(_Counting(src, on_bytes), sink, algorithm))
        except CodecError as exc:
            raise InputError(f"{source}: {exc}") from None
    return Outcome(source, output, algorithm, stats)


def _check_target(source: Path, output: Path, force: bool) -> None:
    if output.exists():
        if output.is_dir():
            raise InputError(f"{output} is a folder: pass a file name with -o/--output")
        if not force:
            raise InputError(f"{output} already exists: use --force to overwrite it")
        with contextlib.suppress(OSError):
            if output.samefile(source):
                raise InputError(f"{output} is the input file: choose another output")


def _open_input(path: Path) -> BinaryIO:
    try:
        return open(path, "rb")
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror or exc}") from None


def _write_atomically(output: Path, produce: Callable[[BinaryIO], StreamStats]) -> StreamStats:
    try:
        with atomic_file(output) as sink:
            return produce(sink)
    except OSError as exc:
        raise InputError(f"cannot write {output}: {exc.strerror or exc}") from None
