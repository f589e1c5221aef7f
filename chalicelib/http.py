"""HTTP helpers for app.py: JSON bodies in, one error shape out.

Every error the API gives is ``{"error": {"code", "message"}}``: the routes'
own (``json_errors``), Chalice's (405, 415: ``chalice_errors`` middleware),
and API Gateway's own answers before the app runs (unknown routes, bodies
over its limit), through the GatewayResponses in ``GATEWAY_ERRORS``, which
the packaged template configures and the local stack emulates.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Callable
from typing import Any, NamedTuple

from chalice.app import Response

from .errors import QuotaExceeded, SqueezerError, ValidationError
from .settings import SettingsError

log = logging.getLogger("squeezer.api")


# Accepted by the route so that a wrong type gets our error body, not Chalice's.
# All text types: `chalice deploy` refuses a route that mixes binary and text.
JSON_BODY_TYPES = ["application/json", "text/plain", "application/x-www-form-urlencoded", "multipart/form-data"]


# A 1,000-file job is about 250 KB of JSON; API Gateway itself stops at 10 MB.
MAX_BODY_BYTES = 1024 * 1024
# The deepest a valid request nests is 4 (body, files, file, value).
MAX_JSON_DEPTH = 32


class UnsupportedMediaType(SqueezerError):
    status = 415
    code = "unsupported_media_type"


class BodyTooLarge(SqueezerError):
    status = 413
    code = "body_too_large"


def parse_json(raw: bytes | str | None, content_type: str | None = "application/json") -> Any:
    """The request body as JSON, or a 4xx that says why not."""
    if content_type and not _is_json_type(content_type):
        raise UnsupportedMediaType(unsupported_media_type_message(content_type))
    if not raw:
        raise ValidationError("the request body is empty: send a JSON object", code="invalid_json")
    if isinstance(raw, str):
        raw = raw.encode("utf-8", "surrogatepass")
    if len(raw) > MAX_BODY_BYTES:
        raise BodyTooLarge(f"the request body is {len(raw)} bytes; the limit is {MAX_BODY_BYTES}")
    try:
        value = json.loads(raw)
    except RecursionError:
        # nested far too deeply for the parser (a C-level recursion guard,
        # no stack blown): the depth check below says so
        value = None
        depth = MAX_JSON_DEPTH + 1
    except json.JSONDecodeError as exc:
        raise ValidationError(f"the request body is not valid JSON: {exc}", code="invalid_json") from None
    except UnicodeDecodeError:
        raise ValidationError("the request body is not valid JSON: it is not UTF-8 text", code="invalid_json") from None
    except ValueError:
        # int() refuses a number of more than sys.get_int_max_str_digits() digits
        raise ValidationError(
            "the request body is not valid JSON: a number has too many digits", code="invalid_json"
        ) from None
    else:
        depth = json_depth(value, MAX_JSON_DEPTH + 1)
    if depth > MAX_JSON_DEPTH:
        raise ValidationError(f"the request body nests deeper than {MAX_JSON_DEPTH} levels", code="json_too_deep")
    return value


def _is_json_type(content_type: str) -> bool:
    media_type = content_type.split(";", 1)[0].strip().lower()
    return media_type == "application/json"


def unsupported_media_type_message(content_type: str) -> str:
    return f"send the body as application/json, not {content_type!r}"


def json_depth(value: Any, stop: int) -> int:
    """How deeply lists and objects nest in ``value`` (iteratively; gives up counting at ``stop``)."""
    deepest = 0
    pending = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, (dict, list)):
            deepest = max(deepest, depth)
            if deepest >= stop:
                return deepest
            children = item.values() if isinstance(item, dict) else item
            pending.extend((child, depth + 1) for child in children)
    return deepest


class GatewayError(NamedTuple):
    status: int | None  # None: keep API Gateway's own status
    code: str
    message: str | None  # None: API Gateway's own message


# API Gateway's own answers (its GatewayResponse types), in our shape.
GATEWAY_ERRORS: dict[str, GatewayError] = {
    # an unknown path, or a method a path does not have (API Gateway cannot
    # tell the two apart; the app itself answers 405 for a known path)
    "MISSING_AUTHENTICATION_TOKEN": GatewayError(
        404, "not_found", "no route matches this method and path: GET / lists the routes"
    ),
    # no Authorization header: API Gateway answers without calling the authorizer
    "UNAUTHORIZED": GatewayError(
        401,
        "missing_token",
        "send 'Authorization: Bearer <token>': 'squeezer configure' stores a token; "
        "an operator creates one with 'squeezer admin create-tenant'",
    ),
    # the authorizer denied the token (malformed, unknown, rotated away or revoked):
    # 401 like a missing one, never a 403 that hints the token half-worked
    "ACCESS_DENIED": GatewayError(
        401,
        "invalid_token",
        "the token is malformed, unknown, rotated or revoked: ask the operator for a new one "
        "('squeezer admin rotate-token') and store it with 'squeezer configure'",
    ),
    # the authorizer itself failed (DynamoDB unreachable, say): later may work
    "AUTHORIZER_FAILURE": GatewayError(
        503, "auth_unavailable", "the token could not be checked just now; try again shortly"
    ),
    "UNSUPPORTED_MEDIA_TYPE": GatewayError(415, "unsupported_media_type", "send the body as application/json"),
    "REQUEST_TOO_LARGE": GatewayError(413, "body_too_large", "the request body is larger than API Gateway accepts"),
    "THROTTLED": GatewayError(429, "throttled", "too many requests: slow down and retry"),
    "DEFAULT_4XX": GatewayError(None, "bad_request", None),
    "DEFAULT_5XX": GatewayError(None, "gateway_error", None),
}

# Chalice's own error responses ({"Code", "Message"}): its view errors
# (chalice.app.ChaliceViewError's subclasses, by class name), the 405 and 415
# it answers before a view runs, and its catch-all 500.
_CHALICE_CODES = {
    "BadRequestError": "bad_request",
    "BadRequest": "bad_request",  # a binary response without a matching Accept
    "UnauthorizedError": "unauthorized",
    "ForbiddenError": "forbidden",
    "NotFoundError": "not_found",
    "MethodNotAllowedError": "method_not_allowed",
    "RequestTimeoutError": "request_timeout",
    "ConflictError": "conflict",
    "UnprocessableEntityError": "unprocessable_entity",
    "TooManyRequestsError": "throttled",
    "UnsupportedMediaType": "unsupported_media_type",
    "InternalServerError": "internal_error",
    "ChaliceViewError": "internal_error",
}


def chalice_errors(event: Any, get_response: Callable[[Any], Response]) -> Response:
    """HTTP middleware: Chalice's own error bodies (405, 415, ...) in our shape.

    Registered with ``app.register_middleware(chalice_errors, "http")``. It
    also answers an exception that escapes the view (or a later middleware)
    itself, so Chalice's own 500 body never goes out.
    """
    try:
        response = get_response(event)
    except Exception:  # noqa: BLE001 - logged, answered as a 500 in our shape
        log.exception("unhandled error")
        return error_response(500, "internal_error", "an internal error occurred; try again later")
    body = response.body
    if response.status_code >= 400 and isinstance(body, dict) and set(body) == {"Code", "Message"}:
        fallback = "internal_error" if response.status_code >= 500 else "bad_request"
        code = _CHALICE_CODES.get(str(body["Code"]), fallback)
        message = str(body["Message"])
        if code == "method_not_allowed":
            allowed = response.headers.get("Allow", "")
            message = f"{message}; this route allows {allowed}" if allowed else message
        elif code == "unsupported_media_type" and event is not None:
            message = unsupported_media_type_message(event.headers.get("content-type", ""))
        response.body = {"error": {"code": code, "message": message}}
        response.headers["Content-Type"] = "application/json"
    return response


def error_response(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Response:
    return Response(
        body={"error": {"code": code, "message": message}},
        status_code=status,
        headers={"Content-Type": "application/json", **(headers or {})},
    )


def json_errors(view: Callable[..., Any]) -> Callable[..., Any]:
    """Map domain errors to ``{"error": {"code", "message"}}`` responses."""

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return view(*args, **kwargs)
        except QuotaExceeded as exc:
            return error_response(exc.status, exc.code, exc.message, {"Retry-After": str(exc.retry_after)})
        except SqueezerError as exc:
            return error_response(exc.status, exc.code, exc.message)
        except SettingsError as exc:
            log.error("configuration error: %s", exc)
            return error_response(500, "misconfigured", "the service is misconfigured; see its logs")
        except Exception:  # noqa: BLE001 - logged, answered as a 500
            log.exception("unhandled error")
            return error_response(500, "internal_error", "an internal error occurred; try again later")

    return wrapper
