import pytest

from chalicelib.domain import Algorithm, UploadMethod
from chalicelib.errors import ValidationError
from chalicelib.schemas import job_request
from chalicelib.validation import MAX_CONTENT_TYPE, check_name, is_media_type

GiB = 1024**3


def parse(body):
    return job_request(body, max_files=1000, max_file_size=5 * GiB)


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
        assert (
            error_code({"files": [{"name": "a", "size": 1}], "algorithm": algorithm, "level": level}) == "invalid_level"
        )


@pytest.mark.parametrize(
    "name",
    [
        "/etc/passwd",
        "../up",
        "a/../b",
        "a\\b",
        "a\x00b",
        "a\x07",  # any control character, not only NUL and tab
        "tab\there",
        "",
        "a//b",
        "./a",
        "dir/",
        "x" * 1025,
        "é" * 513,  # 1026 bytes in UTF-8
    ],
)
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
    assert error_code({"files": [{"name": "a", "size": 1, "uid": 1}]}) == "unknown_field"
    assert error_code({"files": "a"}) == "invalid_files"
    assert error_code({"files": ["a"]}) == "invalid_files"
    assert error_code([1, 2]) == "invalid_body"
    for algorithm in ("lzma", "xz", "ZSTD", 3, None):
        assert error_code({"files": [{"name": "a", "size": 1}], "algorithm": algorithm}) == "invalid_algorithm"


def test_sha256_and_content_type():
    digest = "AB" * 32
    spec = parse(
        {"files": [{"name": "a", "size": 1, "sha256": digest, "content_type": "text/plain; charset=utf-8"}]}
    ).files[0]
    assert spec.sha256 == digest.lower()
    assert error_code({"files": [{"name": "a", "size": 1, "sha256": "xyz"}]}) == "invalid_sha256"
    assert error_code({"files": [{"name": "a", "size": 1, "content_type": "bad\r\nheader"}]}) == "invalid_content_type"


@pytest.mark.parametrize(
    "sha256",
    [
        "ab" * 32 + "\n",  # `$` matches before a final newline: the old check let this through
        "ab" * 32 + "\r\n",
        "\n" + "ab" * 32,
        "ab" * 32 + " ",
        "ab" * 31,
        "ab" * 33,
        "ab" * 31 + "zz",
        "٠" * 64,  # Arabic-Indic digits: digits to \\d, not hex digits
        "",
        12,
        ["ab" * 32],
    ],
)
def test_sha256_is_exactly_64_hex_digits(sha256):
    assert error_code({"files": [{"name": "a", "size": 1, "sha256": sha256}]}) == "invalid_sha256"


@pytest.mark.parametrize(
    "content_type",
    [
        "text/plain",
        "application/vnd.api+json",
        "application/x-ndjson",
        "image/svg+xml",
        "text/plain; charset=utf-8",
        'text/plain; charset="utf-8"',
        "text/plain;charset=utf-8;format=flowed",
        "text/plain ;  charset=utf-8",
        "text/plain;",
        'multipart/mixed; boundary="a b;c=d"',
        'text/plain; x="quoted \\"pair\\" and \\\\"',
        "application/x-!#$%&'*+.^_`|~",
        "a/" + "b" * (MAX_CONTENT_TYPE - 2),
    ],
)
def test_rfc_9110_media_types_are_accepted(content_type):
    assert is_media_type(content_type), content_type
    spec = parse({"files": [{"name": "a", "size": 1, "content_type": content_type}]}).files[0]
    assert spec.content_type == content_type


@pytest.mark.parametrize(
    "content_type",
    [
        "text/plain\r\nX-Injected: 1",
        "text/plain\n",
        "text/plain\r",
        "text/plain\t",
        "text/plain;\tcharset=utf-8",
        "text/pläin",
        'text/plain; charset="ü"',
        'text/plain; a="\x85"',  # obs-text is refused too
        'text/plain; a="\\\t"',
        "text/plain\x00",
        "text/plain\x7f",
        "",
        "text",
        "text/",
        "/plain",
        "text /plain",
        "text/ plain",
        " text/plain",
        "text/plain ",
        "text/plain; ",
        "text/plain;a",
        "text/plain; a=",
        "text/plain; =b",
        "text/plain; a=b c",
        'text/plain; a="unterminated',
        "text/plain; a=b; c",
        "text/pl@in",
        "text/plain, text/html",
        "a/" + "b" * (MAX_CONTENT_TYPE - 1),
    ],
)
def test_other_content_types_are_refused(content_type):
    assert not is_media_type(content_type), content_type
    assert error_code({"files": [{"name": "a", "size": 1, "content_type": content_type}]}) == "invalid_content_type"


@pytest.mark.parametrize("content_type", [7, ["text/plain"], {"type": "text"}, True])
def test_content_type_must_be_a_string(content_type):
    assert error_code({"files": [{"name": "a", "size": 1, "content_type": content_type}]}) == "invalid_content_type"


def test_messages_name_the_problem():
    with pytest.raises(ValidationError) as info:
        parse({"files": [{"name": "ok", "size": 1}, {"name": "../x", "size": 1}]})
    assert "files[1]" in info.value.message and "../x" in info.value.message


def test_upload_method_is_put_unless_post_is_asked_for():
    def parse(**extra):
        return job_request({"files": [{"name": "a", "size": 1}], **extra}, max_files=5, max_file_size=10)

    assert parse().upload_method is UploadMethod.PUT
    assert parse(upload_method="put").upload_method is UploadMethod.PUT
    assert parse(upload_method="post").upload_method is UploadMethod.POST
    for bad in ("POST", "form", "", None, 1, ["post"]):
        with pytest.raises(ValidationError, match="'put' or 'post'") as refused:
            parse(upload_method=bad)
        assert refused.value.code == "invalid_upload_method"
    with pytest.raises(ValidationError, match="allowed: files, algorithm, level, upload_method"):
        parse(method="post")


@pytest.mark.parametrize(
    ("field", "value", "code"),
    [
        ("mode", -1, "invalid_mode"),
        ("mode", 0o10000, "invalid_mode"),
        ("mode", "755", "invalid_mode"),
        ("mode", True, "invalid_mode"),
        ("mode", 1.5, "invalid_mode"),
        ("mtime", "1700000000", "invalid_mtime"),
        ("mtime", -1, "invalid_mtime"),
        ("mtime", float("inf"), "invalid_mtime"),
    ],
)
def test_mode_and_mtime_refused(field, value, code):
    assert error_code({"files": [{"name": "a", "size": 1, field: value}]}) == code


def test_mode_and_mtime_taken():
    spec = parse({"files": [{"name": "a", "size": 1, "mode": 0o7777, "mtime": 1700000000}]}).files[0]
    assert (spec.mode, spec.mtime) == (0o7777, 1700000000.0)
    assert parse({"files": [{"name": "a", "size": 1}]}).files[0].mode is None
