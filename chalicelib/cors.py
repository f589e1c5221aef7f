"""CORS for the API: the stage's allowed browser origins, answered per request.

Why not Chalice's ``cors=CORSConfig(...)``: it names one origin, and on API
Gateway its preflight is a mock integration with fixed headers, so it cannot
choose among several origins (aws/chalice#1290, #2122: "define a custom
handler that accepts OPTIONS requests and matches the Origin header against
a whitelist"). That is what this module does, in two pieces:

* :class:`CorsMiddleware` (``app.register_middleware(..., "http")``, the
  outermost middleware): when origins are configured every response gets
  ``Vary: Origin`` (a cache must not give one origin's answer to another),
  and a response to a request whose ``Origin`` is in the list gets
  ``Access-Control-Allow-Origin: <that origin>`` and exposes ``Location`` and
  ``Retry-After``. A preflight (``OPTIONS`` with
  ``Access-Control-Request-Method``) from such an origin, for a method the
  path has, also gets ``Access-Control-Allow-Methods`` (the path's methods),
  ``-Allow-Headers`` (``Authorization``, ``Content-Type``) and ``-Max-Age``.
  Any other origin, and every origin when none is configured (the default),
  gets no CORS header: the browser keeps the answer from the page.
* :func:`add_preflight_routes`: an ``OPTIONS`` route without authorizer on
  every path, answering 204 with ``Allow``. Browsers send preflights without
  the ``Authorization`` header; API Gateway answers a method a path does not
  have with its own 403 (our 404) and runs a route's authorizer before the
  function, so a preflight reaches the app only as a method of its own with
  no authorizer. ``chalice local`` and ``chalice.test.Client`` route a
  declared ``OPTIONS`` to the app the same way (without one, they answer
  200 with ``Access-Control-Allow-Methods: OPTIONS`` alone).

API Gateway's own error answers (401 without a token, 404, 413, 429) never
reach the function: ``infra/cloudformation.py`` gives them the CORS headers
when the stage has origins. The list itself is ``Settings.cors_origins``
(``SQUEEZER_CORS_ORIGINS``), which deployments and the local stack set from
the stage's ``"squeezer_infra": {"cors_origins": [...]}``, the list the
bucket's CORS rules allow (``infra/resources.py``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection
from typing import Any

from chalice.app import Chalice, Response

log = logging.getLogger("squeezer.cors")

# What a page sends to the API besides the CORS-safelisted headers.
ALLOWED_HEADERS = ("Authorization", "Content-Type")
# What a page may read besides the safelisted response headers: a created
# job's Location, and how long to wait after a 429 or 503.
EXPOSED_HEADERS = ("Location", "Retry-After")
# How long a browser may keep a preflight's answer (Chrome caps it at 2 hours).
MAX_AGE_SECONDS = 3000
PREFLIGHT = "OPTIONS"


class CorsMiddleware:
    """HTTP middleware adding the CORS headers for the allowed origins (see the module's docstring)."""

    def __init__(self, origins: Callable[[], Collection[str]]) -> None:
        # a callable: the settings are read on the first request, not at import
        self._origins = origins

    def __call__(self, event: Any, get_response: Callable[[Any], Response]) -> Response:
        response = get_response(event)
        try:
            origins = self._origins()
        except Exception:  # noqa: BLE001 - misconfigured: the route's own answer says so; no CORS headers
            log.exception("could not read the allowed origins")
            return response
        if origins:
            add_cors_headers(response, event.headers, event.method, origins)
        return response


def add_cors_headers(response: Response, headers: Any, method: str, origins: Collection[str]) -> None:
    """Add the CORS headers a request from ``headers`` gets, when its ``Origin`` is in ``origins``."""
    vary = [v.strip() for v in _header(response, "Vary").split(",") if v.strip()]
    if "origin" not in (v.lower() for v in vary):
        response.headers["Vary"] = ", ".join([*vary, "Origin"])
    origin = headers.get("origin")
    if origin is None or origin not in origins:
        return
    response.headers["Access-Control-Allow-Origin"] = origin
    response.headers["Access-Control-Expose-Headers"] = ", ".join(EXPOSED_HEADERS)
    requested = headers.get("access-control-request-method")
    if method == PREFLIGHT and requested is not None:
        allowed = [m.strip() for m in _header(response, "Allow").split(",") if m.strip() != PREFLIGHT]
        if requested in allowed:
            response.headers["Access-Control-Allow-Methods"] = ", ".join(allowed)
            response.headers["Access-Control-Allow-Headers"] = ", ".join(ALLOWED_HEADERS)
            response.headers["Access-Control-Max-Age"] = str(MAX_AGE_SECONDS)


def _header(response: Response, name: str) -> str:
    value = response.headers.get(name, "")
    return value if isinstance(value, str) else ", ".join(value)


def add_preflight_routes(app: Chalice) -> None:
    """Declare ``OPTIONS`` (no authorizer) on every path of ``app`` that lacks it; call after the routes."""
    for number, (path, methods) in enumerate(sorted(app.routes.items())):
        if PREFLIGHT in methods:
            continue
        allow = ", ".join([*sorted(methods), PREFLIGHT])

        def preflight(allow: str = allow, **_path_params: str) -> Response:
            return Response(body="", status_code=204, headers={"Allow": allow})

        preflight.__name__ = f"preflight_{number}"
        app.route(path, methods=[PREFLIGHT])(preflight)
