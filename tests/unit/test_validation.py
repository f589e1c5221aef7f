import pytest

from chalicelib.domain import Algorithm
from chalicelib.errors import ValidationError
from chalicelib.validation import check_name, parse_job_request

GiB = 1024**3


def parse(body):
    return parse_job_request(body, max_files=1000, max_file_size=5 * GiB)


def error_code(body):
    with pytest.raises(ValidationError) as info:
        parse(body)
    return info.value.code


def test_defaults_to_zstd_level_3():
    request = parse({"files": [{"name": "a.txt", "size": 1}]})
    assert request.algorithm is Algorithm.ZSTD and request.level == 3


@pytest.mark.parametrize(("algorithm", "low", "high"), [("zstd", 1, 22), ("brotli", 0, 11), ("gzip", 1, 9)])
def test_level_ranges(algorithm, low, high):
    for level in (low, high):
        assert parse({"files": [{"name": "a", "size": 1}], "algorithm": algorithm, "level": level}).level == level
    for level in (low - 1, high + 1, "3", 3.5, True):
        assert error_code({"files": [{"name": "a", "size": 1}], "algorithm": algorithm, "level": level}) == "invalid_level"


@pytest.mark.parametrize("name", [
    "/etc/passwd", "../up", "a/../b", "a\\b", "a\x00b", "tab\there", "", "a//b", "./a", "dir/", "x" * 1025,
    "é" * 513,  # 1026 bytes in UTF-8
])
def test_bad_names_are_refused(name):
    assert error_code({"files": [{"name": name, "size": 1}]}) == "invalid_name"


@pytest.mark.parametrize("name", ["a.txt", "logs/2026/app.log", "données/été.json", "x" * 1024, ".hidden", "a..b"])
def test_good_names(name):
    assert check_name(name) == name


@pytest.mark.parametrize("files", [[], [{"name": f"f{i}", "size": 1} for i in range(1001)]])
def test_file_count_limits(files):
    assert error_code({"files": files}) == "invalid_file_count"


def test_thousand_files_are_fine():
    assert len(parse({"files": [{"name": f"f{i}", "size": 1} for i in range(1000)]}).files) == 1000


@pytest.mark.parametrize("size", [-1, 5 * GiB + 1, "10", 1.5, None, True])
def test_bad_sizes(size):
    assert error_code({"files": [{"name": "a", "size": size}]}) == "invalid_size"


def test_size_limits_inclusive():
    assert parse({"files": [{"name": "a", "size": 0}, {"name": "b", "size": 5 * GiB}]}).files[1].size == 5 * GiB


def test_duplicates_unknown_fields_and_shapes():
    assert error_code({"files": [{"name": "a", "size": 1}, {"name": "a", "size": 2}]}) == "duplicate_name"
    assert error_code({"files": [{"name": "a", "size": 1}], "colour": "red"}) == "unknown_field"
    assert error_code({"files": [{"name": "a", "size": 1, "mode": 1}]}) == "unknown_field"
    assert error_code({"files": "a"}) == "invalid_files"
    assert error_code({"files": ["a"]}) == "invalid_files"
    assert error_code([1, 2]) == "invalid_body"
    assert error_code({"files": [{"name": "a", "size": 1}], "algorithm": "lzma"}) == "invalid_algorithm"


def test_sha256_and_content_type():
    digest = "AB" * 32
    spec = parse({"files": [{"name": "a", "size": 1, "sha256": digest, "content_type": "text/plain; charset=utf-8"}]}).files[0]
    assert spec.sha256 == digest.lower()
    assert error_code({"files": [{"name": "a", "size": 1, "sha256": "xyz"}]}) == "invalid_sha256"
    assert error_code({"files": [{"name": "a", "size": 1, "content_type": "bad\r\nheader"}]}) == "invalid_content_type"


def test_messages_name_the_problem():
    with pytest.raises(ValidationError) as info:
        parse({"files": [{"name": "ok", "size": 1}, {"name": "../x", "size": 1}]})
    assert "files[1]" in info.value.message and "../x" in info.value.message
