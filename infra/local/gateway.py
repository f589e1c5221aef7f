"""API Gateway's GatewayResponses, emulated for ``chalice local`` and ``chalice.test.Client``.

On AWS the packaged template configures API Gateway to answer an unknown
route, a missing token, a refused token and a failed authorizer in our
error shape (``chalicelib.http.GATEWAY_ERRORS``). Chalice's local gateway
answers them with API Gateway's defaults instead (403 ``Missing
Authentication Token``, 401 ``Unauthorized``, 403 ``User is not authorized``,
an exception); ``install()`` makes it answer as the deployed API does, from
the same table.
"""

from __future__ import annotations

import functools
import json
import logging
from typing import Any

from chalice import local

from chalicelib.http import GATEWAY_ERRORS

log = logging.getLogger("squeezer.gateway")

_MISSING_TOKEN = b"Missing Authentication Token"
_DENIED = b"User is not authorized to access this resource"


class GatewayErrorResponse(local.LocalGatewayException):
    def __init__(self, status: int, body: bytes) -> None:
        super().__init__({"Content-Type": "application/json"}, body)
        self.CODE = status


def gateway_error(kind: str) -> GatewayErrorResponse:
    error = GATEWAY_ERRORS[kind]
    assert error.status is not None and error.message is not None, kind
    body = json.dumps({"error": {"code": error.code, "message": error.message}}).encode()
    return GatewayErrorResponse(error.status, body)


def _route_any_method(handler: Any, name: str) -> Any:
    """``do_<METHOD>`` for a method Chalice's server has no handler for: its generic one."""
    if name.startswith("do_"):
        return handler._generic_handle
    raise AttributeError(name)


def install() -> None:
    """Patch Chalice's local gateway once (idempotent)."""
    original = local.LocalGateway.handle_request
    if getattr(original, "_squeezer_gateway", False):
        return

    @functools.wraps(original)
    def handle_request(self: local.LocalGateway, method: str, path: str, headers: Any, body: Any) -> Any:
        try:
            return original(self, method, path, headers, body)
        except local.NotAuthorizedError:
            raise gateway_error("UNAUTHORIZED") from None  # no Authorization header
        except local.ForbiddenError as exc:
            if exc.body and (_MISSING_TOKEN in exc.body or b"Authorization header requires" in exc.body):
                raise gateway_error("MISSING_AUTHENTICATION_TOKEN") from None
            if exc.body and _DENIED in exc.body:
                raise gateway_error("ACCESS_DENIED") from None  # the authorizer's deny policy
            raise
        except local.LocalGatewayException:
            raise
        except Exception:  # noqa: BLE001 - only the authorizer runs unguarded here (the app answers its own errors)
            log.exception("the authorizer failed")
            raise gateway_error("AUTHORIZER_FAILURE") from None

    handle_request._squeezer_gateway = True  # type: ignore[attr-defined]
    local.LocalGateway.handle_request = handle_request  # type: ignore[method-assign]
    # Any other method (TRACE, PROPFIND, ...) goes through the same routing, as on API Gateway:
    # Python's HTTP server itself would answer it with an HTML 501 (schemathesis sent TRACE).
    local.ChaliceRequestHandler.__getattr__ = _route_any_method  # type: ignore[attr-defined]
