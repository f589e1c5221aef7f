"""Streaming compression codecs: pure Python, no AWS.

The worker Lambda and the client's offline ``compress``/``decompress``
commands share this module. Every function reads its source in fixed-size
chunks and writes to a sink as it goes, so memory does not grow with the
size of the data.

A *source* is anything with ``read(n) -> bytes``; a *sink* is anything with
``write(b)``. Checksumming, counting and uploading are done by wrapping the
source or sink (see :class:`HashingReader`), not inside the codecs.
"""
from __future__ import annotations

import enum
import zlib as _stdlib_zlib
from dataclasses import dataclass
from typing import Protocol

import brotli
import zstandard

try:  # zlib-ng: same output format, 1.6-2x the speed of the stdlib zlib
    from zlib_ng import zlib_ng as _zlib
except ImportError:  # pragma: no cover - the wheel exists for all our targets
    _zlib = _stdlib_zlib  # type: ignore[assignment]

CHUNK_SIZE = 1024 * 1024
"""Read size. zstandard's copy_stream is fastest with 1 MiB reads."""

_ZSTD_SLICE = 64 * 1024
_GZIP_WBITS = 31  # deflate with a gzip header and trailer
_GZIP_MAGIC = b"\x1f\x8b"
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


class Source(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


class Sink(Protocol):
    def write(self, data: bytes, /) -> object: ...


class Algorithm(str, enum.Enum):
    """A compression format the service can produce."""

    ZSTD = "zstd"
    BROTLI = "brotli"
    GZIP = "gzip"

    @property
    def level_range(self) -> tuple[int, int]:
        return _LEVEL_RANGES[self]

    @property
    def default_level(self) -> int:
        return _DEFAULT_LEVELS[self]

    @property
    def extension(self) -> str:
        """File name suffix of results, with the dot."""
        return _EXTENSIONS[self]

    @property
    def content_encoding(self) -> str:
        return {"zstd": "zstd", "brotli": "br", "gzip": "gzip"}[self.value]

    def check_level(self, level: int) -> None:
        low, high = self.level_range
        if not low <= level <= high:
            raise ValueError(
                f"level {level} is out of range for {self.value}: use {low}-{high}"
            )


_LEVEL_RANGES = {
    Algorithm.ZSTD: (1, 22),
    Algorithm.BROTLI: (0, 11),
    Algorithm.GZIP: (1, 9),
}
_DEFAULT_LEVELS = {Algorithm.ZSTD: 3, Algorithm.BROTLI: 5, Algorithm.GZIP: 6}
_EXTENSIONS = {Algorithm.ZSTD: ".zst", Algorithm.BROTLI: ".br", Algorithm.GZIP: ".gz"}


class CodecError(Exception):
    """The data could not be decoded with the chosen algorithm."""


@dataclass(frozen=True)
class StreamStats:
    bytes_in: int
    bytes_out: int


class _CountingSink:
    __slots__ = ("_sink", "count")

    def __init__(self, sink: Sink) -> None:
        self._sink = sink
        self.count = 0

    def write(self, data: bytes) -> int:
        self._sink.write(data)
        self.count += len(data)
        return len(data)


class _CountingSource:
    __slots__ = ("_source", "count")

    def __init__(self, source: Source) -> None:
        self._source = source
        self.count = 0

    def read(self, size: int = -1) -> bytes:
        data = self._source.read(size)
        self.count += len(data)
        return data


def compress_stream(
    source: Source,
    sink: Sink,
    algorithm: Algorithm,
    level: int | None = None,
    *,
    threads: int = 0,
    chunk_size: int = CHUNK_SIZE,
) -> StreamStats:
    """Compress everything ``source`` yields into ``sink``.

    ``threads`` > 1 lets zstd compress with that many worker threads (the
    output is still a standard zstd stream); other codecs ignore it.
    """
    algorithm = Algorithm(algorithm)
    level = algorithm.default_level if level is None else level
    algorithm.check_level(level)
    src, dst = _CountingSource(source), _CountingSink(sink)
    if algorithm is Algorithm.ZSTD:
        compressor = zstandard.ZstdCompressor(
            level=level, threads=threads if threads > 1 else 0, write_checksum=True
        )
        # copy_stream with 1 MiB reads and its default write size is the fast path.
        compressor.copy_stream(src, dst, read_size=chunk_size)
    elif algorithm is Algorithm.BROTLI:
        compressor = brotli.Compressor(quality=level)
        while chunk := src.read(chunk_size):
            out = compressor.process(chunk)
            if out:
                dst.write(out)
        dst.write(compressor.finish())
    else:
        compressor = _zlib.compressobj(level, _zlib.DEFLATED, _GZIP_WBITS)
        while chunk := src.read(chunk_size):
            out = compressor.compress(chunk)
            if out:
                dst.write(out)
        dst.write(compressor.flush())
    return StreamStats(bytes_in=src.count, bytes_out=dst.count)


class Decoder:
    """Incremental decoder: feed compressed chunks, get plain chunks back.

    Concatenated zstd frames and gzip members decode as one stream (both
    formats allow it, and split-and-join of large objects relies on it).
    brotli and gzip output per step is capped at ``max_output``; zstd output
    per step is bounded by what one input chunk holds, so untrusted zstd input
    should go through :func:`decompress_stream`, which caps it too.
    """

    def __init__(self, algorithm: Algorithm, *, max_output: int = CHUNK_SIZE) -> None:
        self.algorithm = Algorithm(algorithm)
        self._max = max_output
        self._obj = self._new_member()
        self._fed = False  # any input at all
        self._at_boundary = True  # no member/frame is half-read

    def _new_member(self):
        if self.algorithm is Algorithm.ZSTD:
            return zstandard.ZstdDecompressor().decompressobj()
        if self.algorithm is Algorithm.BROTLI:
            return brotli.Decompressor()
        return _zlib.decompressobj(_GZIP_WBITS)

    def feed(self, data: bytes):
        """Yield the plain bytes that ``data`` decodes to."""
        if not data:
            return
        self._fed = True
        try:
            if self.algorithm is Algorithm.BROTLI:
                yield from self._feed_brotli(data)
            else:
                yield from self._feed_members(data)
        except (zstandard.ZstdError, brotli.error, _zlib.error, _stdlib_zlib.error) as exc:
            raise CodecError(f"not valid {self.algorithm.value} data: {exc}") from exc

    def _feed_brotli(self, data: bytes):
        if self._obj.is_finished():
            raise CodecError("not valid brotli data: bytes after the end of the stream")
        self._at_boundary = False
        out = self._obj.process(data, output_buffer_limit=self._max)
        # With a limit, output can stay pending even when the decoder says it
        # accepts more input: drain until it hands back nothing.
        while out:
            yield out
            out = self._obj.process(b"", output_buffer_limit=self._max)
        self._at_boundary = self._obj.is_finished()

    def _feed_members(self, data: bytes):
        gzip = self.algorithm is Algorithm.GZIP
        while data:
            self._at_boundary = False
            if gzip:
                out = self._obj.decompress(data, self._max)
                if out:
                    yield out
                data = self._obj.unconsumed_tail
            else:
                out = self._obj.decompress(data)
                if out:
                    yield out
                data = b""
            if self._obj.eof:
                # At a member's end zlib reports the rest in unused_data (and
                # may repeat it in unconsumed_tail): take it once.
                data = self._obj.unused_data
                self._obj = self._new_member()
                self._at_boundary = True

    def finish(self) -> None:
        """Raise CodecError unless the stream ended cleanly."""
        if not self._fed:
            raise CodecError(f"empty input is not a {self.algorithm.value} stream")
        if not self._at_boundary:
            raise CodecError(f"truncated {self.algorithm.value} data")


def decompress_stream(
    source: Source,
    sink: Sink,
    algorithm: Algorithm,
    *,
    chunk_size: int = CHUNK_SIZE,
) -> StreamStats:
    """Decompress ``source`` into ``sink``, raising CodecError on bad data.

    Memory stays bounded for brotli and gzip. zstd's streaming decoder has no
    output cap, so its input goes in 64 KiB slices: each step's output is
    what one slice decodes to (normal data: well under 10 MiB).
    """
    src, dst = _CountingSource(source), _CountingSink(sink)
    decoder = Decoder(algorithm, max_output=chunk_size)
    step = _ZSTD_SLICE if decoder.algorithm is Algorithm.ZSTD else chunk_size
    while chunk := src.read(step):
        for out in decoder.feed(chunk):
            dst.write(out)
    decoder.finish()
    return StreamStats(bytes_in=src.count, bytes_out=dst.count)


def detect_algorithm(head: bytes, filename: str = "") -> Algorithm:
    """Pick the codec from a file's extension, else its first bytes."""
    lowered = filename.lower()
    for algorithm in Algorithm:
        if lowered.endswith(algorithm.extension):
            return algorithm
    if head.startswith(_ZSTD_MAGIC):
        return Algorithm.ZSTD
    if head.startswith(_GZIP_MAGIC):
        return Algorithm.GZIP
    raise CodecError(
        "cannot tell the format: name the file .zst, .br or .gz "
        "(brotli streams have no magic bytes)"
    )


class HashingReader:
    """Wrap a source: count the bytes read and checksum them on the way.

    crc32 (zlib-ng, ~10 GB/s) always; sha256 only when asked, because it is
    ~8x slower and would cost a measurable share of the worker's time.
    """

    def __init__(self, source: Source, *, sha256: bool = False) -> None:
        import hashlib

        self._source = source
        self.count = 0
        self.crc32 = 0
        self._sha = hashlib.sha256() if sha256 else None

    def read(self, size: int = -1) -> bytes:
        data = self._source.read(size)
        if data:
            self.count += len(data)
            self.crc32 = _zlib.crc32(data, self.crc32)
            if self._sha is not None:
                self._sha.update(data)
        return data

    @property
    def sha256_hex(self) -> str | None:
        return self._sha.hexdigest() if self._sha is not None else None


class VerifyingSink:
    """A sink that decodes what passes through it and checksums the result.

    Put it in front of the real sink to prove that the compressed stream
    decodes back to the input, without reading the result a second time.
    """

    def __init__(self, sink: Sink, algorithm: Algorithm) -> None:
        self._sink = sink
        self._decoder = Decoder(algorithm)
        self.plain_count = 0
        self.plain_crc32 = 0

    def write(self, data: bytes) -> int:
        for plain in self._decoder.feed(data):
            self.plain_count += len(plain)
            self.plain_crc32 = _zlib.crc32(plain, self.plain_crc32)
        self._sink.write(data)
        return len(data)

    def finish(self) -> None:
        self._decoder.finish()


def crc32(data: bytes, value: int = 0) -> int:
    return _zlib.crc32(data, value)

