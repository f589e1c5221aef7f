"""Byte layouts of fanned-out results: padding frames and the zstd seek table. Pure, no AWS.

A fanned-out result is the parts of one multipart upload, one per range, in
order. S3 wants every part but the last to hold at least 5 MiB, so a small
range's output is padded with bytes every decoder skips:

- zstd: a skippable frame (magic 0x184D2A50..5F, a 4-byte length, that many
  bytes) after the range's frame;
- gzip: an empty gzip member whose header carries a comment (FCOMMENT) of
  the needed length: ``gzip -d`` joins members, and an empty one adds nothing.

A zstd result also ends with a seek table (facebook/zstd
``contrib/seekable_format/zstd_seekable_compression_format.md``): a
skippable frame with magic 0x184D2A5E holding one entry per frame
(compressed size, decompressed size: little-endian u32 each) and a 9-byte
footer (number of frames, a descriptor byte, magic 0x8F92EAB1). A range's
padding is counted in its frame's compressed size, so the offsets a seekable
reader computes land on frame starts.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

from .codecs import Sink
from .domain import Algorithm

SKIPPABLE_PADDING_MAGIC = 0x184D2A50  # the first of the 16 skippable-frame magics
SEEK_TABLE_MAGIC = 0x184D2A5E
SEEKABLE_MAGIC = 0x8F92EAB1
SKIPPABLE_HEADER = 8  # magic + frame size
SEEK_TABLE_FOOTER = 9
SEEK_TABLE_ENTRY = 8  # without checksums (descriptor bit 7 clear)
# The reference implementation's cap on one frame's input; a range is never larger.
MAX_FRAME_INPUT = 1 << 30
_U32 = 0xFFFFFFFF

# An empty gzip member: header with FCOMMENT (flag 0x10), mtime 0, XFL 0, OS
# unknown (255); then the comment and its NUL; then an empty final stored
# deflate block, CRC32 0 and ISIZE 0.
_GZIP_HEADER = b"\x1f\x8b\x08\x10\x00\x00\x00\x00\x00\xff"
_GZIP_TAIL = b"\x00" + b"\x03\x00" + b"\x00" * 8
GZIP_PADDING_MIN = len(_GZIP_HEADER) + len(_GZIP_TAIL)  # 21 bytes with an empty comment
_FILL = 1024 * 1024


def padding_size(algorithm: Algorithm, needed: int) -> int:
    """How many bytes the padding for ``needed`` more bytes takes (it may be more than needed)."""
    if needed <= 0:
        return 0
    minimum = SKIPPABLE_HEADER if algorithm is Algorithm.ZSTD else GZIP_PADDING_MIN
    return max(minimum, needed)


def write_padding(sink: Sink, algorithm: Algorithm, needed: int) -> int:
    """Write at least ``needed`` bytes that decode to nothing; returns how many were written.

    Written in 1 MiB pieces: a 5 MiB pad costs no 5 MiB buffer.
    """
    total = padding_size(algorithm, needed)
    if total == 0:
        return 0
    if algorithm is Algorithm.ZSTD:
        sink.write(struct.pack("<II", SKIPPABLE_PADDING_MAGIC, total - SKIPPABLE_HEADER))
        _fill(sink, total - SKIPPABLE_HEADER, b"\x00")
    elif algorithm is Algorithm.GZIP:
        sink.write(_GZIP_HEADER)
        _fill(sink, total - GZIP_PADDING_MIN, b" ")  # the comment: any bytes but NUL
        sink.write(_GZIP_TAIL)
    else:
        raise ValueError(f"{algorithm.value} streams cannot be padded or joined")
    return total


def _fill(sink: Sink, count: int, byte: bytes) -> None:
    block = byte * min(count, _FILL)
    while count > 0:
        piece = block if count >= len(block) else block[:count]
        sink.write(piece)
        count -= len(piece)


def seek_table(frames: Sequence[tuple[int, int]]) -> bytes:
    """The seek table for ``frames`` of (compressed size, decompressed size), in order."""
    entries = bytearray()
    for compressed, decompressed in frames:
        if not (0 <= compressed <= _U32 and 0 <= decompressed <= MAX_FRAME_INPUT):
            raise ValueError(f"a frame of {compressed} bytes for {decompressed} does not fit a seek table entry")
        entries += struct.pack("<II", compressed, decompressed)
    footer = struct.pack("<IBI", len(frames), 0, SEEKABLE_MAGIC)
    content = bytes(entries) + footer
    return struct.pack("<II", SEEK_TABLE_MAGIC, len(content)) + content


def read_seek_table(tail: bytes) -> list[tuple[int, int]]:
    """The (compressed, decompressed) entries of a seek table at the end of ``tail``; ValueError if none."""
    if len(tail) < SKIPPABLE_HEADER + SEEK_TABLE_FOOTER:
        raise ValueError("too short for a seek table")
    count, descriptor, magic = struct.unpack("<IBI", tail[-SEEK_TABLE_FOOTER:])
    if magic != SEEKABLE_MAGIC:
        raise ValueError("no seekable magic at the end")
    entry = SEEK_TABLE_ENTRY + (4 if descriptor & 0x80 else 0)
    length = SKIPPABLE_HEADER + count * entry + SEEK_TABLE_FOOTER
    if len(tail) < length:
        raise ValueError("the seek table is cut short")
    start = len(tail) - length
    frame_magic, size = struct.unpack_from("<II", tail, start)
    if frame_magic != SEEK_TABLE_MAGIC or size != length - SKIPPABLE_HEADER:
        raise ValueError("the seek table's skippable frame header is wrong")
    return [struct.unpack_from("<II", tail, start + SKIPPABLE_HEADER + i * entry) for i in range(count)]
