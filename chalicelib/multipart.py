"""Multipart uploads: S3's limits, the part plan for a file size, and CRC64NVME checksums.

One home for these facts, used by the API (which plans and signs parts), the
worker (which checks the whole object's CRC64NVME as it reads it) and the
client (which computes each part's checksum before asking for its URL).

S3's limits: parts of 5 MiB to 5 GiB (the last may be smaller), at most
10,000 per upload, so at most 10,000 x 5 GiB (48.8 TiB) per object. The plan
is a function of the size alone: a resumed upload gets the same parts.

Checksums are CRC64NVME, the one S3 can check per part on arrival (signed
into each presigned part URL) and combine into a full-object value at
completion; ``combine`` joins part values without reading the data again,
so a resumed upload need not re-read the parts already sent.
"""

from __future__ import annotations

import base64
import binascii
import math
from dataclasses import dataclass
from typing import Final, cast

MiB = 1024**2
GiB = 1024**3

MIN_PART_SIZE = 5 * MiB  # S3's minimum (all but the last part)
MAX_PART_SIZE = 5 * GiB
MAX_PARTS = 10_000
MAX_OBJECT_SIZE = MAX_PARTS * MAX_PART_SIZE  # 48.8 TiB
# Our smallest part: fewer requests than S3's 5 MiB, small enough to buffer a few per thread.
PLAN_MIN_PART_SIZE = 8 * MiB
# A file above this many bytes is uploaded in parts (SQUEEZER_MULTIPART_THRESHOLD overrides).
DEFAULT_THRESHOLD = 64 * MiB
# Part URLs are signed only for the parts a client is about to send, this many at most per request.
MAX_PARTS_PER_SIGNING = 100
CHECKSUM_ALGORITHM: Final = "CRC64NVME"
# How long a client's multipart upload may stay open: then its file is
# upload_expired, and the bucket's lifecycle rule aborts it (its parts cost storage).
UPLOAD_DAYS = 3


@dataclass(frozen=True)
class PartPlan:
    """How a file of ``size`` bytes is cut: ``count`` parts of ``part_size`` (the last one smaller or equal)."""

    size: int
    part_size: int
    count: int

    def part_length(self, number: int) -> int:
        """The size of part ``number`` (1-based)."""
        if not 1 <= number <= self.count:
            raise ValueError(f"part number {number} is outside 1..{self.count}")
        if number < self.count:
            return self.part_size
        return self.size - self.part_size * (self.count - 1)

    def part_offset(self, number: int) -> int:
        self.part_length(number)
        return (number - 1) * self.part_size


def plan(size: int) -> PartPlan:
    """The part plan for ``size`` bytes: parts of at least 8 MiB (whole MiB), as few as 10,000 allow."""
    if not 0 < size <= MAX_OBJECT_SIZE:
        raise ValueError(f"a multipart upload holds 1 byte to {MAX_OBJECT_SIZE} bytes, not {size}")
    needed = math.ceil(size / MAX_PARTS)
    part_size = min(MAX_PART_SIZE, max(PLAN_MIN_PART_SIZE, math.ceil(needed / MiB) * MiB))
    return PartPlan(size=size, part_size=part_size, count=math.ceil(size / part_size))


# -- CRC64NVME -------------------------------------------------------------------


# awscrt is imported on first use: the API's settings need only the limits above.


def crc64nvme(data: bytes | bytearray | memoryview, previous: int = 0) -> int:
    """The CRC64NVME of ``data`` (any buffer: no copy), continuing from ``previous`` (streaming)."""
    from awscrt import checksums

    return int(checksums.crc64nvme(cast(bytes, data), previous))


def combine(first: int, second: int, second_length: int) -> int:
    """The CRC64NVME of two pieces joined, from theirs and the second's length."""
    from awscrt import checksums

    return int(checksums.combine_crc64nvme(first, second, second_length))


def combine_parts(parts: list[tuple[int, int]]) -> int:
    """The whole object's CRC64NVME from ``(crc, length)`` of every part, in order."""
    total = 0
    for index, (crc, length) in enumerate(parts):
        total = crc if index == 0 else combine(total, crc, length)
    return total


def encode(value: int) -> str:
    """The form S3 uses in ``x-amz-checksum-crc64nvme``: base64 of the 8 big-endian bytes."""
    return base64.b64encode(value.to_bytes(8, "big")).decode("ascii")


def decode(text: object) -> int | None:
    """The value of an encoded CRC64NVME, or None if ``text`` is not one."""
    if not isinstance(text, str) or len(text) != 12:
        return None
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None
    return int.from_bytes(raw, "big") if len(raw) == 8 else None
