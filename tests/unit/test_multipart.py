import os

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chalicelib import multipart
from chalicelib.multipart import MAX_OBJECT_SIZE, MAX_PART_SIZE, MAX_PARTS, MiB, plan


@pytest.mark.parametrize(
    ("size", "part_size", "count", "last"),
    [
        (64 * MiB + 1, 8 * MiB, 9, 1),  # 1 byte over the default threshold
        (8 * MiB, 8 * MiB, 1, 8 * MiB),
        (MAX_PARTS * 8 * MiB, 8 * MiB, MAX_PARTS, 8 * MiB),  # exactly 10,000 parts of the smallest size
        (MAX_PARTS * 8 * MiB + 1, 9 * MiB, 8889, 8 * MiB + 1),  # one byte more: bigger parts, never 10,001
        (MAX_OBJECT_SIZE, MAX_PART_SIZE, MAX_PARTS, MAX_PART_SIZE),  # the largest object
    ],
)
def test_plan_edges(size, part_size, count, last):
    p = plan(size)
    assert (p.part_size, p.count, p.part_length(p.count)) == (part_size, count, last)
    assert p.part_offset(p.count) + p.part_length(p.count) == size


@pytest.mark.parametrize("size", [0, -1, MAX_OBJECT_SIZE + 1])
def test_sizes_outside_s3_s_limits_have_no_plan(size):
    with pytest.raises(ValueError):
        plan(size)


@given(st.integers(min_value=1, max_value=MAX_OBJECT_SIZE))
def test_every_plan_keeps_s3_s_rules(size):
    p = plan(size)
    assert 1 <= p.count <= MAX_PARTS and 8 * MiB <= p.part_size <= MAX_PART_SIZE and p.part_size % MiB == 0
    assert p.part_size * (p.count - 1) < size <= p.part_size * p.count
    assert plan(size) == p  # a function of the size: a resumed upload gets the same parts


def test_combined_part_checksums_equal_the_whole_file_s():
    data = os.urandom(3 * 1024 * 1024 + 17)
    cuts = [0, 1_000_000, 1_000_001, 2_500_000, len(data)]
    parts = [(multipart.crc64nvme(data[a:b]), b - a) for a, b in zip(cuts, cuts[1:], strict=False)]
    assert multipart.combine_parts(parts) == multipart.crc64nvme(data)
    streamed = 0
    for a, b in zip(cuts, cuts[1:], strict=False):
        streamed = multipart.crc64nvme(data[a:b], streamed)
    assert streamed == multipart.crc64nvme(data)


def test_encoding_is_s3_s_base64_of_8_big_endian_bytes():
    value = multipart.crc64nvme(b"hello")
    text = multipart.encode(value)
    assert len(text) == 12 and multipart.decode(text) == value
    for bad in ("", "AAAA", "!!!!!!!!!!!=", None, 42, "AAAAAAAAAAAAAAAA"):
        assert multipart.decode(bad) is None
