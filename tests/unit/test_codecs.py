import io
import os
import threading
from zlib import crc32

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chalicelib.codecs import (
    CodecError,
    Decoder,
    HashingReader,
    VerifyingSink,
    compress_stream,
    decompress_stream,
    detect_algorithm,
)
from chalicelib.domain import Algorithm

LEVELS = [
    (a, level)
    for a in Algorithm
    for level in range(a.level_range[0], a.level_range[1] + 1)
    if not (a is Algorithm.ZSTD and level > 19)
]  # 20-22 need >100 MB windows; covered below


def roundtrip(data: bytes, algorithm: Algorithm, level: int | None = None, chunk: int = 1024) -> bytes:
    packed = io.BytesIO()
    stats = compress_stream(io.BytesIO(data), packed, algorithm, level, chunk_size=chunk)
    assert stats.bytes_in == len(data)
    assert stats.bytes_out == len(packed.getvalue())
    plain = io.BytesIO()
    decompress_stream(io.BytesIO(packed.getvalue()), plain, algorithm, chunk_size=chunk)
    return plain.getvalue()


@pytest.mark.parametrize(("algorithm", "level"), LEVELS)
def test_every_level_round_trips(algorithm, level):
    data = b"squeezer " * 5000 + os.urandom(3000)
    assert roundtrip(data, algorithm, level) == data


@pytest.mark.parametrize("algorithm", list(Algorithm))
def test_highest_level_and_multi_chunk_input(algorithm):
    data = os.urandom(50_000) + b"\x00" * 200_000
    level = algorithm.level_range[1]
    assert roundtrip(data, algorithm, level, chunk=4096) == data


@pytest.mark.parametrize("algorithm", list(Algorithm))
def test_empty_input_round_trips_and_makes_a_valid_stream(algorithm):
    assert roundtrip(b"", algorithm) == b""


@settings(max_examples=60, deadline=None)
@given(
    data=st.binary(max_size=20_000),
    algorithm=st.sampled_from(list(Algorithm)),
    chunk=st.integers(min_value=1, max_value=5000),
)
def test_round_trip_property(data, algorithm, chunk):
    assert roundtrip(data, algorithm, chunk=chunk) == data


@pytest.mark.parametrize("algorithm", list(Algorithm))
def test_level_out_of_range_is_refused(algorithm):
    low, high = algorithm.level_range
    with pytest.raises(ValueError, match="from 1 to 22|from 0 to 11|from 1 to 9"):
        compress_stream(io.BytesIO(b"x"), io.BytesIO(), algorithm, high + 1)
    with pytest.raises(ValueError):
        compress_stream(io.BytesIO(b"x"), io.BytesIO(), algorithm, low - 1)


@pytest.mark.parametrize("algorithm", list(Algorithm))
def test_truncated_and_garbage_input_raise_codec_error(algorithm):
    packed = io.BytesIO()
    compress_stream(io.BytesIO(os.urandom(10_000)), packed, algorithm)
    for bad in (packed.getvalue()[:-5], b"definitely not compressed data"):
        with pytest.raises(CodecError):
            decompress_stream(io.BytesIO(bad), io.BytesIO(), algorithm)


@pytest.mark.parametrize("algorithm", [Algorithm.ZSTD, Algorithm.GZIP])
def test_concatenated_frames_decode_as_one_stream(algorithm):
    parts = [b"first part " * 100, b"second part " * 100]
    packed = b""
    for part in parts:
        out = io.BytesIO()
        compress_stream(io.BytesIO(part), out, algorithm)
        packed += out.getvalue()
    plain = io.BytesIO()
    decompress_stream(io.BytesIO(packed), plain, algorithm)
    assert plain.getvalue() == b"".join(parts)


@pytest.mark.parametrize("job_size", [0, 512 * 1024, 1 << 20])
def test_zstd_threads_with_small_jobs_give_a_standard_stream(job_size):
    data = (os.urandom(1 << 16) + b"log line " * 100_000) * 5  # several jobs, compressible
    out = io.BytesIO()
    stats = compress_stream(io.BytesIO(data), out, Algorithm.ZSTD, 3, threads=2, job_size=job_size)
    assert stats.bytes_in == len(data) and stats.bytes_out == len(out.getvalue())
    plain = io.BytesIO()
    decompress_stream(io.BytesIO(out.getvalue()), plain, Algorithm.ZSTD)
    assert plain.getvalue() == data


def test_a_negative_job_size_is_refused():
    with pytest.raises(ValueError, match="job_size"):
        compress_stream(io.BytesIO(b"x"), io.BytesIO(), Algorithm.ZSTD, 3, threads=2, job_size=-1)


class _Broken:
    def __init__(self, after: int) -> None:
        self.left = after

    def read(self, size=-1):
        if self.left <= 0:
            raise OSError("connection reset")
        self.left -= 1
        return os.urandom(256 * 1024)

    def write(self, data):
        if self.left <= 0:
            raise OSError("upload refused")
        self.left -= 1
        return len(data)


def test_threaded_small_jobs_raise_a_source_error_from_mid_stream():
    with pytest.raises(OSError, match="connection reset"):
        compress_stream(_Broken(after=12), io.BytesIO(), Algorithm.ZSTD, 3, threads=2, job_size=512 * 1024)


def test_threaded_small_jobs_raise_a_sink_error_from_mid_stream():
    data = os.urandom(8 << 20)
    with pytest.raises(OSError, match="upload refused"):
        compress_stream(io.BytesIO(data), _Broken(after=3), Algorithm.ZSTD, 3, threads=2, job_size=512 * 1024)


def test_zstd_threads_give_a_standard_stream():
    data = os.urandom(1 << 20) * 3
    out = io.BytesIO()
    compress_stream(io.BytesIO(data), out, Algorithm.ZSTD, 3, threads=2)
    plain = io.BytesIO()
    decompress_stream(io.BytesIO(out.getvalue()), plain, Algorithm.ZSTD)
    assert plain.getvalue() == data


def test_decoder_caps_output_per_step_for_brotli_and_gzip():
    data = b"\x00" * (8 << 20)
    for algorithm in (Algorithm.BROTLI, Algorithm.GZIP):
        packed = io.BytesIO()
        compress_stream(io.BytesIO(data), packed, algorithm, 9)
        decoder = Decoder(algorithm, max_output=64 * 1024)
        sizes = [len(piece) for piece in decoder.feed(packed.getvalue())]
        decoder.finish()
        assert sum(sizes) == len(data)
        # brotli stops growing its buffer once past the limit: within 2x of it.
        assert max(sizes) <= 2 * 64 * 1024, algorithm
        assert len(sizes) >= len(data) // (128 * 1024)


def test_hashing_reader_and_verifying_sink_agree_on_a_good_stream():
    data = os.urandom(300_000)
    reader = HashingReader(io.BytesIO(data), sha256=True)
    sink = VerifyingSink(io.BytesIO(), Algorithm.ZSTD)
    compress_stream(reader, sink, Algorithm.ZSTD, 3, chunk_size=10_000)
    sink.finish()
    import hashlib

    assert reader.sha256_hex == hashlib.sha256(data).hexdigest()
    assert reader.crc32 == sink.plain_crc32 == crc32(data)
    assert reader.count == sink.plain_count == len(data)


@pytest.mark.parametrize("background", [False, True])
def test_verifying_sink_notices_a_stream_that_stops_early(background):
    packed = io.BytesIO()
    compress_stream(io.BytesIO(os.urandom(100_000)), packed, Algorithm.GZIP)
    sink = VerifyingSink(io.BytesIO(), Algorithm.GZIP, background=background)
    sink.write(packed.getvalue()[:-10])
    with pytest.raises(CodecError, match="truncated"):
        sink.finish()


@pytest.mark.parametrize("algorithm", list(Algorithm))
def test_background_verification_counts_what_inline_counts_and_passes_every_byte_on(algorithm):
    data = b"".join(b"line %d of a log with some repetition\n" % i for i in range(60_000)) + os.urandom(50_000)
    outputs, counts = [], []
    for background in (False, True):
        out = io.BytesIO()
        sink = VerifyingSink(out, algorithm, background=background, depth=2)
        compress_stream(io.BytesIO(data), sink, algorithm, 3, chunk_size=8192)
        sink.finish()
        outputs.append(out.getvalue())
        counts.append((sink.plain_count, sink.plain_crc32))
    plain = io.BytesIO()
    decompress_stream(io.BytesIO(outputs[1]), plain, algorithm)
    assert outputs[0] == outputs[1] and plain.getvalue() == data
    assert counts[0] == counts[1] == (len(data), crc32(data))


def test_background_verification_reports_garbage_and_never_blocks_the_writer():
    sink = VerifyingSink(io.BytesIO(), Algorithm.ZSTD, background=True, depth=1)
    with pytest.raises(CodecError):
        for _ in range(50):  # more than the queue holds: after the failure, writes fail instead of blocking
            sink.write(b"not a zstd frame at all" * 100)
        sink.finish()
    sink.close()
    assert sink._thread is None


def test_closing_a_background_verifier_stops_its_thread_without_finishing():
    before = threading.active_count()
    sink = VerifyingSink(io.BytesIO(), Algorithm.GZIP, background=True)
    sink.write(b"\x1f\x8b")  # a partial header: the upload failed midway
    sink.close()
    sink.close()  # twice is harmless (the worker's finally after finish)
    assert threading.active_count() == before


@pytest.mark.parametrize(
    ("name", "head", "expected"),
    [
        ("a.zst", b"", Algorithm.ZSTD),
        ("b.BR", b"", Algorithm.BROTLI),
        ("c.gz", b"", Algorithm.GZIP),
        ("noext", b"\x28\xb5\x2f\xfd....", Algorithm.ZSTD),
        ("noext", b"\x1f\x8b\x08", Algorithm.GZIP),
    ],
)
def test_detect_algorithm(name, head, expected):
    assert detect_algorithm(head, name) is expected


def test_detect_algorithm_gives_a_helpful_error():
    with pytest.raises(CodecError, match="name the file"):
        detect_algorithm(b"plain text", "notes.txt")
