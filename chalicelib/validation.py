"""Parse and validate API request bodies into domain objects."""

from __future__ import annotations

import re
import unicodedata
from typing import Any

from .domain import Algorithm, FileSpec, InvalidLevel, JobRequest, UploadMethod
from .errors import ValidationError

MAX_NAME_BYTES = 1024
_JOB_FIELDS = {"files", "algorithm", "level", "upload_method"}
_FILE_FIELDS = {"name", "size", "content_type", "sha256"}
_SHA256 = re.compile(r"[0-9a-fA-F]{64}")
# RFC 9110 section 8.3.1: media-type = type "/" subtype parameters, where
# parameters = *( OWS ";" OWS [ parameter ] ) and
# parameter = token "=" ( token / quoted-string ). Stricter than the RFC in
# what reaches S3 as a signed header: visible ASCII and spaces only (no tab,
# CR, LF, obs-text or other non-ASCII), and no trailing space, which is not
# part of a field value (RFC 9110 section 5.5) and would not arrive as sent.
_TOKEN = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
_QUOTED = r'"(?:[\x21\x23-\x5b\x5d-\x7e ]|\\[\x21-\x7e ])*"'
_PARAMETER = rf"{_TOKEN}=(?:{_TOKEN}|{_QUOTED})"
_CONTENT_TYPE = re.compile(rf"{_TOKEN}/{_TOKEN}(?: *;(?: *{_PARAMETER})?)*")
MAX_CONTENT_TYPE = 255


def parse_job_request(body: Any, *, max_files: int, max_file_size: int) -> JobRequest:
    """Turn the JSON body of ``POST /jobs`` into a JobRequest or raise ValidationError."""
    if not isinstance(body, dict):
        raise ValidationError("the body must be a JSON object", code="invalid_body")
    unknown = sorted(set(body) - _JOB_FIELDS)
    if unknown:
        raise ValidationError(
            f"unknown field(s): {', '.join(unknown)}; allowed: files, algorithm, level, upload_method",
            code="unknown_field",
        )
    algorithm = _parse_algorithm(body.get("algorithm", Algorithm.ZSTD.value))
    level = _parse_level(body.get("level", algorithm.default_level), algorithm)
    files = body.get("files")
    if not isinstance(files, list):
        raise ValidationError("files must be a list of {name, size} objects", code="invalid_files")
    if not 1 <= len(files) <= max_files:
        raise ValidationError(f"a job holds 1 to {max_files} files, got {len(files)}", code="invalid_file_count")
    specs = tuple(_parse_file(i, item, max_file_size) for i, item in enumerate(files))
    seen: set[str] = set()
    for spec in specs:
        if spec.name in seen:
            raise ValidationError(f"duplicate file name: {spec.name!r}", code="duplicate_name")
        seen.add(spec.name)
    upload_method = _parse_upload_method(body.get("upload_method", UploadMethod.PUT.value))
    return JobRequest(files=specs, algorithm=algorithm, level=level, upload_method=upload_method)


def _parse_upload_method(value: Any) -> UploadMethod:
    try:
        return UploadMethod(value)
    except ValueError:
        allowed = " or ".join(repr(m.value) for m in UploadMethod)
        raise ValidationError(
            f"unknown upload_method {value!r}: use {allowed} (a presigned PUT URL, or a presigned POST form "
            "for a browser)",
            code="invalid_upload_method",
        ) from None


def _parse_algorithm(value: Any) -> Algorithm:
    try:
        return Algorithm(value)
    except ValueError:
        allowed = ", ".join(a.value for a in Algorithm)
        raise ValidationError(f"unknown algorithm {value!r}: use one of {allowed}", code="invalid_algorithm") from None


def _parse_level(value: Any, algorithm: Algorithm) -> int:
    try:
        return algorithm.check_level(value)
    except InvalidLevel as exc:
        raise ValidationError(str(exc), code="invalid_level") from None


def _parse_file(index: int, item: Any, max_file_size: int) -> FileSpec:
    where = f"files[{index}]"
    if not isinstance(item, dict):
        raise ValidationError(f"{where} must be an object with name and size", code="invalid_files")
    unknown = sorted(set(item) - _FILE_FIELDS)
    if unknown:
        raise ValidationError(
            f"{where}: unknown field(s): {', '.join(unknown)}; allowed: name, size, content_type, sha256",
            code="unknown_field",
        )
    name = check_name(item.get("name"), where)
    size = item.get("size")
    if isinstance(size, bool) or not isinstance(size, int) or not 0 <= size <= max_file_size:
        raise ValidationError(
            f"{where} ({name}): size must be an integer from 0 to {max_file_size} bytes, got {size!r}",
            code="invalid_size",
        )
    content_type = item.get("content_type")
    if content_type is not None and not is_media_type(content_type):
        raise ValidationError(
            f"{where} ({name}): content_type must be a media type such as "
            f"'text/plain; charset=utf-8' (RFC 9110, visible ASCII, at most {MAX_CONTENT_TYPE} "
            f"characters), got {content_type!r}",
            code="invalid_content_type",
        )
    sha256 = item.get("sha256")
    if sha256 is not None:
        if not isinstance(sha256, str) or not _SHA256.fullmatch(sha256):
            raise ValidationError(f"{where} ({name}): sha256 must be 64 hex digits", code="invalid_sha256")
        sha256 = sha256.lower()
    return FileSpec(name=name, size=size, content_type=content_type, sha256=sha256)


def is_media_type(value: Any) -> bool:
    """A Content-Type value by RFC 9110's grammar, visible ASCII only, at most 255 characters."""
    return isinstance(value, str) and len(value) <= MAX_CONTENT_TYPE and bool(_CONTENT_TYPE.fullmatch(value))


def check_name(name: Any, where: str = "name") -> str:
    """A clean relative path: no absolute paths, '..', backslashes or control characters."""

    def bad(why: str) -> ValidationError:
        return ValidationError(f"{where}: {why}: {name!r}", code="invalid_name")

    if not isinstance(name, str) or name == "":
        raise bad("name must be a non-empty string")
    if len(name.encode("utf-8", "surrogatepass")) > MAX_NAME_BYTES:
        raise bad(f"name is longer than {MAX_NAME_BYTES} bytes in UTF-8")
    if any(unicodedata.category(ch) in ("Cc", "Cs") for ch in name):
        raise bad("name contains control characters")
    if "\\" in name:
        raise bad("name contains a backslash; use '/' between folders")
    if name.startswith("/"):
        raise bad("name must be a relative path")
    parts = name.split("/")
    if any(part in ("", ".", "..") for part in parts):
        raise bad("name has an empty, '.' or '..' segment")
    return name


def parse_limit(raw: str | None, maximum: int) -> int:
    if raw is None:
        return 20
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if not 1 <= value <= maximum:
        raise ValidationError(f"limit must be an integer from 1 to {maximum}", code="invalid_limit")
    return value
