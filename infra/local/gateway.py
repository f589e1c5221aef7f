"""API Gateway's GatewayResponses, emulated for ``chalice local`` and ``chalice.test.Client``.

On AWS the packaged template configures API Gateway to answer an unknown
route in our error shape (``chalicelib.http.GATEWAY_ERRORS``). Chalice's
local gateway answers it with API Gateway's default instead (403 ``Missing
Authentication Token``); ``install()`` makes it answer as the deployed API
does, from the same table.
"""

from __future__ import annotations

import functools
import json
from typing import Any

from chalice import local

from chalicelib.http import GATEWAY_ERRORS

_MISSING_TOKEN = b"Missing Authentication Token"


class GatewayErrorResponse(local.LocalGatewayException):
    def __init__(self, status: int, body: bytes) -> None:
        super().__init__({"Content-Type": "application/json"}, body)
        self.CODE = status


def gateway_error(kind: str) -> GatewayErrorResponse:
    error = GATEWAY_ERRORS[kind]
    assert error.status is not None and error.message is not None, kind
    body = json.dumps({"error": {"code": error.code, "message": error.message}}).encode()
    return GatewayErrorResponse(error.status, body)


def install() -> None:
    """Patch Chalice's local gateway once (idempotent)."""
    original = local.LocalGateway.handle_request
    if getattr(original, "_squeezer_gateway", False):
        return

    @functools.wraps(original)
    def handle_request(self: local.LocalGateway, method: str, path: str, headers: Any, body: Any) -> Any:
        try:
            return original(self, method, path, headers, body)
        except local.ForbiddenError as exc:
            if exc.body and (_MISSING_TOKEN in exc.body or b"Authorization header requires" in exc.body):
                raise gateway_error("MISSING_AUTHENTICATION_TOKEN") from None
            raise

    handle_request._squeezer_gateway = True  # type: ignore[attr-defined]
    local.LocalGateway.handle_request = handle_request  # type: ignore[method-assign]
