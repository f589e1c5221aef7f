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

import queue
import threading
import zlib as _stdlib_zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

import brotli
import zstandard

from .algorithms import Algorithm

_zlib: Any
try:  # zlib-ng: same output format, 1.6-2x the speed of the stdlib zlib
    from zlib_ng import zlib_ng as _zlib
except ImportError:  # pragma: no cover - the wheel exists for all our targets
    _zlib = _stdlib_zlib

CHUNK_SIZE = 1024 * 1024
"""Read size. zstandard's copy_stream is fastest with 1 MiB reads."""

_GZIP_WBITS = 31  # deflate with a gzip header and trailer


class Source(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


class Sink(Protocol):
    def write(self, data: bytes, /) -> object: ...


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
    job_size: int = 0,
    chunk_size: int = CHUNK_SIZE,
) -> StreamStats:
    """Compress everything ``source`` yields into ``sink``.

    ``threads`` >= 1 lets zstd compress on that many worker threads while
    this thread reads and writes, as ``zstd -T<threads>`` does (the output
    is still one standard zstd frame); 0 compresses on this thread, as
    ``zstd --single-thread``. ``job_size`` is the input of one such thread's
    job (0: libzstd's choice, 8 MiB at level 3; every job in flight holds its
    input and output, so it sets most of the memory). Other codecs ignore both.
    """
    algorithm = Algorithm(algorithm)
    level = algorithm.default_level if level is None else algorithm.check_level(level)
    if job_size < 0:
        raise ValueError("job_size must not be negative")
    src, dst = _CountingSource(source), _CountingSink(sink)
    CODECS[algorithm].compress(src, dst, level, threads=threads, job_size=job_size, chunk_size=chunk_size)
    return StreamStats(bytes_in=src.count, bytes_out=dst.count)


# -- the codecs: one class each, registered in CODECS ---------------------------------


class Codec:
    """One compression format: how to compress a stream and how to decode one."""

    algorithm: ClassVar[Algorithm]
    magic: ClassVar[bytes | None] = None  # first bytes of a stream, when the format has any
    # Decoder input per step: output per step is capped by the decoder for
    # brotli and gzip; zstd's is not, so its input goes in small slices.
    feed_size: ClassVar[int] = CHUNK_SIZE

    def compress(self, src: Source, dst: Sink, level: int, *, threads: int, job_size: int, chunk_size: int) -> None:
        compressor = self.compressor(level)
        while chunk := src.read(chunk_size):
            out = compressor.compress(chunk)
            if out:
                dst.write(out)
        dst.write(compressor.flush())

    def compressor(self, level: int) -> Any:
        """An object with ``compress(bytes) -> bytes`` and ``flush() -> bytes``."""
        raise NotImplementedError

    def decoder(self, max_output: int) -> _StreamDecoder:
        raise NotImplementedError


class ZstdCodec(Codec):
    algorithm = Algorithm.ZSTD
    magic = b"\x28\xb5\x2f\xfd"
    feed_size = 64 * 1024

    def compress(self, src: Source, dst: Sink, level: int, *, threads: int, job_size: int, chunk_size: int) -> None:
        # threads=1 is one worker thread beside this one (zstd -T1's mode), not the same as 0: the
        # reads and writes overlap the compression, and on a 200 MiB file it is faster and uses less CPU.
        threads = max(threads, 0)
        if threads and job_size:
            params = zstandard.ZstdCompressionParameters.from_level(
                level, threads=threads, job_size=job_size, write_checksum=True
            )
            compressor = zstandard.ZstdCompressor(compression_params=params)
        else:
            compressor = zstandard.ZstdCompressor(level=level, threads=threads, write_checksum=True)
        # copy_stream with 1 MiB reads and its default write size is the fast path.
        compressor.copy_stream(src, dst, read_size=chunk_size)  # type: ignore[arg-type]  # duck-typed: read/write

    def decoder(self, max_output: int) -> _StreamDecoder:
        return _MemberDecoder(lambda: zstandard.ZstdDecompressor().decompressobj(), max_output=None)


class BrotliCodec(Codec):
    algorithm = Algorithm.BROTLI

    def compressor(self, level: int) -> Any:
        return _BrotliCompressor(level)

    def decoder(self, max_output: int) -> _StreamDecoder:
        return _BrotliDecoder(max_output)


class GzipCodec(Codec):
    algorithm = Algorithm.GZIP
    magic = b"\x1f\x8b"

    def compressor(self, level: int) -> Any:
        return _zlib.compressobj(level, _zlib.DEFLATED, _GZIP_WBITS)

    def decoder(self, max_output: int) -> _StreamDecoder:
        return _MemberDecoder(lambda: _zlib.decompressobj(_GZIP_WBITS), max_output=max_output)


CODECS: dict[Algorithm, Codec] = {codec.algorithm: codec for codec in (ZstdCodec(), BrotliCodec(), GzipCodec())}
_CODEC_ERRORS: tuple[type[Exception], ...] = (zstandard.ZstdError, brotli.error, _zlib.error, _stdlib_zlib.error)


class _BrotliCompressor:
    def __init__(self, level: int) -> None:
        self._obj = brotli.Compressor(quality=level)

    def compress(self, data: bytes) -> bytes:
        out: bytes = self._obj.process(data)
        return out

    def flush(self) -> bytes:
        out: bytes = self._obj.finish()
        return out


class _StreamDecoder(Protocol):
    at_boundary: bool

    def feed(self, data: bytes) -> Iterator[bytes]: ...


class _BrotliDecoder:
    """One brotli stream (concatenated brotli streams are not a valid stream)."""

    def __init__(self, max_output: int) -> None:
        self._obj = brotli.Decompressor()
        self._max = max_output
        self.at_boundary = True

    def feed(self, data: bytes) -> Iterator[bytes]:
        if self._obj.is_finished():
            raise CodecError("not valid brotli data: bytes after the end of the stream")
        self.at_boundary = False
        out = self._obj.process(data, output_buffer_limit=self._max)
        # With a limit, output can stay pending even when the decoder says it
        # accepts more input: drain until it hands back nothing.
        while out:
            yield out
            out = self._obj.process(b"", output_buffer_limit=self._max)
        self.at_boundary = self._obj.is_finished()


class _MemberDecoder:
    """zstd frames or gzip members, one after another (both formats allow it)."""

    def __init__(self, factory: Callable[[], Any], *, max_output: int | None) -> None:
        self._factory = factory
        self._obj = factory()
        self._max = max_output
        self.at_boundary = True

    def feed(self, data: bytes) -> Iterator[bytes]:
        while data:
            self.at_boundary = False
            if self._max is not None:
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
                self._obj = self._factory()
                self.at_boundary = True


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
        self._stream = CODECS[self.algorithm].decoder(max_output)
        self._fed = False  # any input at all

    def feed(self, data: bytes) -> Iterator[bytes]:
        """Yield the plain bytes that ``data`` decodes to."""
        if not data:
            return
        self._fed = True
        try:
            yield from self._stream.feed(data)
        except _CODEC_ERRORS as exc:
            raise CodecError(f"not valid {self.algorithm.value} data: {exc}") from exc

    def finish(self) -> None:
        """Raise CodecError unless the stream ended cleanly."""
        if not self._fed:
            raise CodecError(f"empty input is not a {self.algorithm.value} stream")
        if not self._stream.at_boundary:
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
    step = min(CODECS[decoder.algorithm].feed_size, chunk_size)
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
    for codec in CODECS.values():
        if codec.magic and head.startswith(codec.magic):
            return codec.algorithm
    names = ", ".join(a.extension for a in Algorithm)
    without = ", ".join(a.value for a in Algorithm if not CODECS[a].magic)
    raise CodecError(f"cannot tell the format: name the file {names} ({without} streams have no magic bytes)")


class HashingReader:
    """Wrap a source: count the bytes read and checksum them on the way.

    crc32 (zlib-ng, ~10 GB/s) always; sha256 only when asked, because it is
    ~8x slower and would cost a measurable share of the worker's time.
    """

    def __init__(self, source: Source, *, sha256: bool = False, crc64nvme: bool = False) -> None:
        import hashlib

        self._source = source
        self.count = 0
        self.crc32 = 0
        self._sha = hashlib.sha256() if sha256 else None
        # a multipart upload's whole-object checksum (chalicelib/multipart.py), when asked
        self._crc64: int | None = 0 if crc64nvme else None

    def read(self, size: int = -1) -> bytes:
        data = self._source.read(size)
        if data:
            self.count += len(data)
            self.crc32 = _zlib.crc32(data, self.crc32)
            if self._sha is not None:
                self._sha.update(data)
            if self._crc64 is not None:
                from .multipart import crc64nvme

                self._crc64 = crc64nvme(data, self._crc64)
        return data

    @property
    def crc64nvme(self) -> str | None:
        """The CRC64NVME of what was read, as S3 writes it (base64), if asked for."""
        if self._crc64 is None:
            return None
        from .multipart import encode

        return encode(self._crc64)

    @property
    def sha256_hex(self) -> str | None:
        return self._sha.hexdigest() if self._sha is not None else None


class Crc64Sink:
    """A sink that passes bytes on and keeps their CRC64NVME (S3's full-object checksum), as they go by."""

    def __init__(self, sink: Sink) -> None:
        self._sink = sink
        self.crc64nvme = 0

    def write(self, data: bytes) -> int:
        from . import multipart  # awscrt on first use, as multipart does

        self.crc64nvme = multipart.crc64nvme(data, self.crc64nvme)
        self._sink.write(data)
        return len(data)


class VerifyingSink:
    """A sink that decodes what passes through it and checksums the result.

    Put it in front of the real sink to prove that the compressed stream
    decodes back to the input, without reading the result a second time.

    With ``background=True`` the decoding runs on a thread of its own, fed
    through a queue of at most ``depth`` chunks (memory stays bounded): the
    codecs and zlib-ng's crc32 release the GIL, so the check overlaps the
    compression instead of adding to it. ``finish()`` waits for it and
    raises what it found; ``close()`` stops it whatever happened (call it
    on every path, as the worker does in ``finally``).
    """

    def __init__(self, sink: Sink, algorithm: Algorithm, *, background: bool = False, depth: int = 16) -> None:
        self._sink = sink
        self._decoder = Decoder(algorithm)
        self.plain_count = 0
        self.plain_crc32 = 0
        self._queue: queue.Queue[bytes | None] | None = None
        self._thread: threading.Thread | None = None
        self._failure: BaseException | None = None
        if background:
            self._queue = queue.Queue(maxsize=depth)
            self._thread = threading.Thread(target=self._decode_queued, name="verify", daemon=True)
            self._thread.start()

    def write(self, data: bytes) -> int:
        self._sink.write(data)
        if self._queue is None:
            self._decode(data)
        else:
            if self._failure is not None:
                raise self._failure
            self._queue.put(bytes(data))
        return len(data)

    def _decode(self, data: bytes) -> None:
        for plain in self._decoder.feed(data):
            self.plain_count += len(plain)
            self.plain_crc32 = _zlib.crc32(plain, self.plain_crc32)

    def _decode_queued(self) -> None:
        assert self._queue is not None
        while (chunk := self._queue.get()) is not None:
            if self._failure is None:  # after a failure, only drain: the writer must never block
                try:
                    self._decode(chunk)
                except BaseException as exc:  # noqa: BLE001 - raised in the writer's thread by write()/finish()
                    self._failure = exc

    def finish(self) -> None:
        self.close()
        if self._failure is not None:
            raise self._failure
        self._decoder.finish()

    def close(self) -> None:
        """Stop the background thread (if any) once it has decoded what was queued."""
        if self._thread is not None and self._queue is not None:
            self._queue.put(None)
            self._thread.join()
            self._thread = None
