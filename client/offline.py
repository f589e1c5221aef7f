"""``squeezer compress`` / ``decompress``: the service's own codecs, on local files and pipes.

The codecs (``chalicelib.codecs``) stream in fixed-size chunks, so memory does
not grow with a file's size. Around them this module does what ``zstd`` and
``gzip`` do around theirs:

- an output file is written under a temporary name and renamed into place
  only once the stream is complete, so a failure never leaves a half-written
  file behind, and an existing file is replaced only with ``force``;
- an output file gets its input's permission bits and modification time;
- ``remove_source`` deletes the input only after a verified success: a
  compressed output is decoded on the fly while it is written (on a thread
  of its own, beside the compression) and must give back the input's exact
  length and CRC-32 before it is renamed into place (else neither is kept
  but the input); without ``remove_source`` nothing is decoded, as with
  ``zstd``; a decompressed output must come
  from a stream that decoded cleanly to its end (zstd and gzip check their own
  checksums too);
- ``-`` stands for stdin or stdout (:class:`Stdio`).

This module imports the codecs: the CLI imports it only when a command runs,
so ``squeezer --help`` does not load zstandard, brotli and zlib-ng.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, TypeVar

from chalicelib.algorithms import Algorithm
from chalicelib.codecs import (
    CodecError,
    HashingReader,
    Source,
    StreamStats,
    VerifyingSink,
    compress_stream,
    decompress_stream,
    detect_algorithm,
)

from .errors import InputError
from .files import atomic_file

_MAGIC_BYTES = 4
_T = TypeVar("_T")
STDIO = "-"


@dataclass(frozen=True)
class Stdio:
    """stdin as an input, or stdout as an output: a binary stream and the name messages use."""

    name: str
    stream: BinaryIO = field(repr=False, compare=False)

    def __str__(self) -> str:
        return self.name


Endpoint = Path | Stdio


@dataclass(frozen=True)
class Outcome:
    source: Endpoint
    output: Endpoint
    algorithm: Algorithm
    stats: StreamStats
    removed: bool = False  # the source was deleted (remove_source)


@dataclass(frozen=True)
class Skipped:
    """An input left alone on purpose (not a failure): a symlink met by -r, a name that says it is done."""

    path: Path
    reason: str
    named: bool = False  # named on the command line (not found in a folder): always reported


class _Counting:
    """Reports each read's size; a failed read becomes one clear InputError (not "cannot write")."""

    def __init__(self, source: Source, on_bytes: Callable[[int], None], name: Endpoint) -> None:
        self._source = source
        self._on_bytes = on_bytes
        self._name = name

    def read(self, size: int = -1) -> bytes:
        try:
            data: bytes = self._source.read(size)
        except OSError as exc:
            raise InputError(f"cannot read {self._name}: {exc.strerror or exc}") from None
        self._on_bytes(len(data))
        return data


class _Prefixed:
    """A source whose first bytes were already read (to look for magic bytes in a pipe)."""

    def __init__(self, head: bytes, rest: Source) -> None:
        self._head = head
        self._rest = rest

    def read(self, size: int = -1) -> bytes:
        if self._head:
            if size < 0 or size >= len(self._head):
                head, self._head = self._head, b""
                return head + (self._rest.read(size - len(head)) if size > len(head) else b"")
            head, self._head = self._head[:size], self._head[size:]
            return head
        data: bytes = self._rest.read(size)
        return data


# -- what to work on --------------------------------------------------------------------


def expand(
    paths: Sequence[Path], *, recursive: bool, skip: Callable[[Path, bool], str | None]
) -> Iterator[Path | Skipped]:
    """The files to work on, in the order given; folders walked (sorted) with ``recursive``.

    A folder without ``recursive`` and a missing path are yielded as they are
    (the per-file step reports them). Inside a folder, symlinks are skipped
    (a link can leave the tree or loop). ``skip(path, named)`` gives a reason
    to leave a file alone, or None; ``named`` is true for a file named on the
    command line, false for one found in a folder.
    """
    for path in paths:
        if not (recursive and path.is_dir() and not path.is_symlink()):
            reason = skip(path, True) if path.is_file() else None
            yield Skipped(path, reason, named=True) if reason else path
            continue
        for folder, dirs, files in os.walk(path):
            base = Path(folder)
            dirs.sort()
            for name in list(dirs):
                if (base / name).is_symlink():
                    dirs.remove(name)
                    yield Skipped(base / name, "symbolic link to a folder: not followed")
            for name in sorted(files):
                child = base / name
                if child.is_symlink():
                    yield Skipped(child, "symbolic link: not followed by -r")
                    continue
                reason = skip(child, False)
                yield Skipped(child, reason) if reason else child


def compressed_name(path: Path, algorithm: Algorithm) -> Path:
    return path.with_name(path.name + algorithm.extension)


def known_extension(path: Path) -> Algorithm | None:
    lowered = path.name.lower()
    for algorithm in Algorithm:
        if lowered.endswith(algorithm.extension) and len(lowered) > len(algorithm.extension):
            return algorithm
    return None


# -- one file ---------------------------------------------------------------------------


def compress_file(
    source: Endpoint,
    output: Endpoint | None,
    algorithm: Algorithm,
    level: int | None,
    *,
    force: bool = False,
    threads: int = 1,
    remove_source: bool = False,
    on_bytes: Callable[[int], None] = lambda n: None,
) -> Outcome:
    """Compress ``source`` (a file or stdin) into ``output`` (default: its name plus the extension)."""
    if output is None:
        if isinstance(source, Stdio):
            raise InputError("stdin has no name to derive an output from: pass -o/--output or -c/--stdout")
        output = compressed_name(source, algorithm)
    kept = _input_stat(source)
    _check_target(source, output, force)
    # Only --rm needs the proof that the output decodes back (zstd checks nothing either unless asked):
    # without it, no CRC-32 of the input and no decoding, so the whole process costs what zstd's does.
    # With it, the decoding runs on a thread of its own beside the compression (the codecs and zlib-ng's
    # crc32 release the GIL), as in the worker.
    verify = remove_source and isinstance(source, Path)
    checked: VerifyingSink | None = None
    try:
        with _open_input(source) as raw:
            reader = HashingReader(raw) if verify else None
            counted = _Counting(reader or raw, on_bytes, source)

            def produce(sink: BinaryIO) -> tuple[StreamStats, None]:
                nonlocal checked
                if reader is None:
                    return compress_stream(counted, sink, algorithm, level, threads=threads), None
                checked = VerifyingSink(sink, algorithm, background=True)
                stats = compress_stream(counted, checked, algorithm, level, threads=threads)
                # Checked before the rename: an output that does not decode back is not left behind.
                checked.finish()
                if (checked.plain_count, checked.plain_crc32) != (reader.count, reader.crc32):
                    raise InputError(f"{source}: {output} does not decode back to the same bytes; {source} was kept")
                return stats, None

            try:
                stats, _ = _write(output, produce, kept)
            except CodecError as exc:
                raise InputError(f"{source}: the output does not decode back ({exc}); {source} was kept") from None
    finally:
        if checked is not None:
            checked.close()  # stops the decoding thread on every path (finish() already did on success)
    removed = _remove(source) if verify else False
    return Outcome(source, output, algorithm, stats, removed)


def decompress_file(
    source: Endpoint,
    output: Endpoint | None,
    *,
    algorithm: Algorithm | None = None,
    force: bool = False,
    remove_source: bool = False,
    on_bytes: Callable[[int], None] = lambda n: None,
) -> Outcome:
    """Decompress ``source`` into ``output`` (default: its name without the extension).

    The format is ``algorithm`` if given, else the name's extension, else the
    first bytes (brotli has none: from a pipe it needs ``algorithm``).
    """
    kept = _input_stat(source)
    with _open_input(source) as raw:
        counted = _Counting(raw, on_bytes, source)
        head = counted.read(_MAGIC_BYTES)
        src = _Prefixed(head, counted)
        if algorithm is None:
            try:
                algorithm = detect_algorithm(head, source.name if isinstance(source, Path) else "")
            except CodecError as exc:
                hint = " (or pass -a/--algorithm)" if isinstance(source, Stdio) else ""
                raise InputError(f"{source}: {exc}{hint}") from None
        if output is None:
            if isinstance(source, Stdio):
                raise InputError("stdin has no name to derive an output from: pass -o/--output or -c/--stdout")
            if known_extension(source) is not algorithm:
                raise InputError(
                    f"{source}: cannot name the output by dropping {algorithm.extension}: pass -o/--output"
                )
            output = source.with_name(source.name[: -len(algorithm.extension)])
        _check_target(source, output, force)
        chosen = algorithm
        try:
            stats, _ = _write(
                output,
                lambda sink: (decompress_stream(src, sink, chosen), None),
                kept,
            )
        except CodecError as exc:
            raise InputError(f"{source}: {exc}") from None
    removed = _remove(source) if remove_source and isinstance(source, Path) else False
    return Outcome(source, output, algorithm, stats, removed)


# -- helpers ----------------------------------------------------------------------------


def _input_stat(source: Endpoint) -> os.stat_result | None:
    """The input's stat (its mode and times go to the output); a clear InputError if it is not a file."""
    if isinstance(source, Stdio):
        return None
    try:
        found = source.stat()
    except FileNotFoundError:
        raise InputError(f"{source}: no such file") from None
    except OSError as exc:
        raise InputError(f"cannot read {source}: {exc.strerror or exc}") from None
    if stat.S_ISDIR(found.st_mode):
        raise InputError(f"{source} is a folder: pass -r/--recursive to work on the files inside it")
    return found


def _check_target(source: Endpoint, output: Endpoint, force: bool) -> None:
    if isinstance(output, Stdio):
        return
    if output.exists():
        if output.is_dir():
            raise InputError(f"{output} is a folder: pass a file name with -o/--output")
        if not force:
            raise InputError(f"{output} already exists: use -f/--force to overwrite it")
        if isinstance(source, Path):
            with contextlib.suppress(OSError):
                if output.samefile(source):
                    raise InputError(f"{output} is the input file: choose another output")


@contextlib.contextmanager
def _open_input(source: Endpoint) -> Iterator[BinaryIO]:
    if isinstance(source, Stdio):
        yield source.stream
        return
    try:
        handle = open(source, "rb")  # noqa: SIM115 - closed below
    except OSError as exc:
        raise InputError(f"cannot read {source}: {exc.strerror or exc}") from None
    with handle:
        yield handle


def _write(
    output: Endpoint,
    produce: Callable[[BinaryIO], tuple[StreamStats, _T]],
    kept: os.stat_result | None,
) -> tuple[StreamStats, _T]:
    """Run ``produce`` into stdout, or into ``output`` atomically, which then gets the input's mode and mtime."""
    if isinstance(output, Stdio):
        result = produce(output.stream)
        output.stream.flush()
        return result
    mode = stat.S_IMODE(kept.st_mode) if kept is not None else None
    try:
        with atomic_file(output, mode=mode) as sink:
            result = produce(sink)
        if kept is not None:
            os.utime(output, ns=(kept.st_atime_ns, kept.st_mtime_ns))
    except OSError as exc:
        raise InputError(f"cannot write {output}: {exc.strerror or exc}") from None
    return result


def _remove(source: Endpoint) -> bool:
    if not isinstance(source, Path):
        return False
    try:
        source.unlink()
    except OSError as exc:
        raise InputError(f"the output is complete but {source} could not be removed: {exc.strerror or exc}") from None
    return True
