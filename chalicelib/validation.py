"""The rules for names, media types and list limits, shared by the API (``schemas.py``) and the client.

Plain functions with no dependency beyond the standard library: the client
checks names before it asks for a job.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

from .errors import ValidationError

MAX_NAME_BYTES = 1024
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


def is_media_type(value: Any) -> bool:
    """A Content-Type value by RFC 9110's grammar, visible ASCII only, at most 255 characters."""
    return isinstance(value, str) and len(value) <= MAX_CONTENT_TYPE and bool(_CONTENT_TYPE.fullmatch(value))


def check_name(name: Any, where: str = "name") -> str:
    """A clean relative path: no absolute paths, '..', backslashes or control characters."""
    why = name_problem(name)
    if why is not None:
        raise ValidationError(f"{where}: {why}: {name!r}", code="invalid_name")
    return str(name)


def name_problem(name: Any) -> str | None:
    """What is wrong with ``name`` as a file's relative path, or None."""
    if not isinstance(name, str) or name == "":
        return "name must be a non-empty string"
    if len(name.encode("utf-8", "surrogatepass")) > MAX_NAME_BYTES:
        return f"name is longer than {MAX_NAME_BYTES} bytes in UTF-8"
    if any(unicodedata.category(ch) in ("Cc", "Cs") for ch in name):
        return "name contains control characters"
    if "\\" in name:
        return "name contains a backslash; use '/' between folders"
    if name.startswith("/"):
        return "name must be a relative path"
    if any(part in ("", ".", "..") for part in name.split("/")):
        return "name has an empty, '.' or '..' segment"
    return None


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
