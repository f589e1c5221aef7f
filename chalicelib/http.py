"""HTTP helpers for app.py: JSON bodies in, one error shape out."""
from __future__ import annotations

import functools
import json
import logging
from typing import Any, Callable

from chalice import Response

from .errors import SqueezerError, ValidationError
from .settings import SettingsError

log = logging.getLogger("squeezer.api")


# Accepted by the route so that a wrong type gets our error body, not Chalice's.
# All text types: `chalice deploy` refuses a route that mixes binary and text.
JSON_BODY_TYPES = ["application/json", "text/plain", "application/x-www-form-urlencoded",
                   "multipart/form-data"]


class UnsupportedMediaType(SqueezerError):
    status = 415
    code = "unsupported_media_type"


def parse_json(raw: bytes | None, content_type: str | None = "application/json") -> Any:
    """The request body as JSON, or a 4xx that says why not."""
    if content_type and not content_type.lower().startswith("application/json"):
        raise UnsupportedMediaType(f"send the body as application/json, not {content_type}")
    if not raw:
        raise ValidationError("the request body is empty: send a JSON object", code="invalid_json")
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValidationError(f"the request body is not valid JSON: {exc}", code="invalid_json") from None


def error_response(status: int, code: str, message: str) -> Response:
    return Response(
        body={"error": {"code": code, "message": message}},
        status_code=status,
        headers={"Content-Type": "application/json"},
    )


def json_errors(view: Callable[..., Any]) -> Callable[..., Any]:
    """Map domain errors to ``{"error": {"code", "message"}}`` responses."""

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return view(*args, **kwargs)
        except SqueezerError as exc:
            return error_response(exc.status, exc.code, exc.message)
        except SettingsError as exc:
            log.error("configuration error: %s", exc)
            return error_response(500, "misconfigured", "the service is misconfigured; see its logs")
        except Exception:  # noqa: BLE001 - logged, answered as a 500
            log.exception("unhandled error")
            return error_response(500, "internal_error", "an internal error occurred; try again later")

    return wrapper
