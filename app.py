"""Squeezer's Chalice app: routes and event handlers only.

Each handler parses its input, calls one function in chalicelib and shapes
the answer; the logic lives in chalicelib.
"""

from __future__ import annotations

import importlib
import logging
import os
from collections.abc import Mapping
from types import ModuleType
from typing import TYPE_CHECKING, Any

from chalice.app import AuthRequest, AuthResponse, Chalice, Request, Response, SQSEvent

from chalicelib.auth import AUTH_CACHE_SECONDS
from chalicelib.cors import CorsMiddleware, add_preflight_routes
from chalicelib.http import JSON_BODY_TYPES, chalice_errors, json_errors, parse_json
from chalicelib.settings import RANGES_BATCH_SIZE, queue_names
from chalicelib.wiring import (
    get_authenticator,
    get_openapi,
    get_range_worker,
    get_service,
    get_settings,
    get_uploads,
    get_web,
    get_worker,
)


class _OnFirstUse:
    """A module imported when one of its names is first read (Python's import lock makes that thread safe).

    The responses' models (``views``, pydantic) are not loaded by the
    authorizer, which runs in a Lambda function of its own that imports this
    file: its cold start stays with what it needs (boto3 and the tenant store).
    """

    def __init__(self, name: str) -> None:
        self._name = name

    def __getattr__(self, attribute: str) -> Any:
        module: ModuleType = importlib.import_module(self._name)
        return getattr(module, attribute)


if TYPE_CHECKING:
    from chalicelib import views
else:
    views = _OnFirstUse("chalicelib.views")

app = Chalice(app_name="squeezer")
app.register_middleware(CorsMiddleware(lambda: get_settings().cors_origins), "http")  # outermost: every answer
app.register_middleware(chalice_errors, "http")
logging.getLogger("squeezer").setLevel(os.environ.get("SQUEEZER_LOG_LEVEL", "INFO"))

# Chalice needs the queue names when it loads the app; they come from the
# stage's environment variables in .chalice/config.json.
JOBS_QUEUE, DEAD_LETTER_QUEUE, WORKER_BATCH_SIZE, RANGES_QUEUE = queue_names()


def _request() -> Request:
    request = app.current_request
    assert request is not None, "a route runs with a current request"
    return request


@app.authorizer(name="tenant_auth", ttl_seconds=AUTH_CACHE_SECONDS)
def tenant_auth(auth_request: AuthRequest) -> AuthResponse:
    """Bearer tokens (chalicelib/auth.py). A refused token gets a deny policy: API Gateway answers 401."""
    principal = get_authenticator().authenticate(auth_request.token)
    if principal is None:
        return AuthResponse(routes=[], principal_id="anonymous")
    # One answer for every route: API Gateway caches it per token.
    return AuthResponse(
        routes=["*"],
        principal_id=principal.tenant_id,
        context={"tenant_name": principal.name, "token_id": principal.token_id},
    )


def _owner() -> str:
    """The caller's tenant, as the authorizer found it: every job belongs to one."""
    context = _request().context or {}
    principal = (context.get("authorizer") or {}).get("principalId")
    assert isinstance(principal, str) and principal.startswith("t_"), "a route with tenant_auth runs authorized"
    return principal


@app.route("/", methods=["GET"])
@json_errors
def index() -> dict[str, Any]:
    return views.index(get_settings())


@app.route("/openapi.json", methods=["GET"])
@json_errors
def openapi_document() -> dict[str, Any]:
    """The API described (chalicelib/openapi.py): every route, its shapes and its error codes."""
    return get_openapi()


@app.route("/jobs", methods=["POST"], content_types=JSON_BODY_TYPES, authorizer=tenant_auth)
@json_errors
def create_job() -> Response:
    request = _request()
    body = parse_json(request.raw_body, request.headers.get("content-type"))
    created = get_service().create_job(body, owner=_owner())
    return Response(
        body=views.created_job(created),
        status_code=201,
        headers={"Location": f"/jobs/{created.job.job_id}"},
    )


@app.route("/jobs/{job_id}/files", methods=["POST"], content_types=JSON_BODY_TYPES, authorizer=tenant_auth)
@json_errors
def add_files(job_id: str) -> dict[str, Any]:
    return views.added_files(get_service().add_files(job_id, _body(), owner=_owner()))


@app.route("/jobs", methods=["GET"], authorizer=tenant_auth)
@json_errors
def list_jobs() -> dict[str, Any]:
    params: Mapping[str, str] = _request().query_params or {}
    page = get_service().list_jobs(owner=_owner(), limit=params.get("limit"), cursor=params.get("cursor"))
    return views.job_page(page)


@app.route("/jobs/{job_id}", methods=["GET"], authorizer=tenant_auth)
@json_errors
def job_status(job_id: str) -> dict[str, Any]:
    params: Mapping[str, str] = _request().query_params or {}
    status = get_service().get_status(job_id, owner=_owner(), limit=params.get("limit"), cursor=params.get("cursor"))
    return views.job_status(status)


@app.route("/jobs/{job_id}/summary", methods=["GET"], authorizer=tenant_auth)
@json_errors
def job_summary(job_id: str) -> dict[str, Any]:
    return views.job_summary(*get_service().get_summary(job_id, owner=_owner()))


@app.route("/jobs/{job_id}", methods=["DELETE"], authorizer=tenant_auth)
@json_errors
def cancel_job(job_id: str) -> dict[str, Any]:
    return views.job_status(get_service().cancel_job(job_id, owner=_owner()))


@app.route("/jobs/{job_id}/retry", methods=["POST"], content_types=JSON_BODY_TYPES, authorizer=tenant_auth)
@json_errors
def retry_job(job_id: str) -> dict[str, Any]:
    return views.retry_outcome(get_service().retry_failed(job_id, owner=_owner()))


# -- a file's upload after POST /jobs (chalicelib/uploads.py) ----------------------------
FILE = "/jobs/{job_id}/files/{file_id}"


def _body() -> Any:
    request = _request()
    return parse_json(request.raw_body, request.headers.get("content-type"))


@app.route(f"{FILE}/parts", methods=["POST"], content_types=JSON_BODY_TYPES, authorizer=tenant_auth)
@json_errors
def sign_parts(job_id: str, file_id: str) -> dict[str, Any]:
    return views.signed_parts(get_uploads().sign_parts(job_id, file_id, _body(), owner=_owner()))


@app.route(f"{FILE}/parts", methods=["GET"], authorizer=tenant_auth)
@json_errors
def list_parts(job_id: str, file_id: str) -> dict[str, Any]:
    return views.parts_on_file(get_uploads().list_parts(job_id, file_id, owner=_owner()))


@app.route(f"{FILE}/complete", methods=["POST"], content_types=JSON_BODY_TYPES, authorizer=tenant_auth)
@json_errors
def complete_upload(job_id: str, file_id: str) -> dict[str, Any]:
    return views.file_status(get_uploads().complete(job_id, file_id, _body(), owner=_owner()))


@app.route(f"{FILE}/upload", methods=["DELETE"], authorizer=tenant_auth)
@json_errors
def abort_upload(job_id: str, file_id: str) -> dict[str, Any]:
    return views.file_status(get_uploads().abort(job_id, file_id, owner=_owner()))


@app.route(f"{FILE}/upload", methods=["POST"], content_types=JSON_BODY_TYPES, authorizer=tenant_auth)
@json_errors
def renew_upload(job_id: str, file_id: str) -> dict[str, Any]:
    return views.renewed_upload(*get_uploads().renew_upload(job_id, file_id, owner=_owner()))


# -- web pages (chalicelib/web.py): the upload page and the API docs, static files --------
# No authorizer: the upload page asks for a token itself; the docs need none.
def _web(page: str, asset: str | None = None) -> Response:
    request = _request()
    return get_web().respond(page, asset, request.headers, path=(request.context or {}).get("path", ""))


@app.route("/app", methods=["GET"])
@json_errors
def upload_page() -> Response:
    return _web("app")


@app.route("/app/{asset}", methods=["GET"])
@json_errors
def upload_page_asset(asset: str) -> Response:
    return _web("app", asset)


@app.route("/docs", methods=["GET"])
@json_errors
def docs_page() -> Response:
    return _web("docs")


@app.route("/docs/{asset}", methods=["GET"])
@json_errors
def docs_page_asset(asset: str) -> Response:
    return _web("docs", asset)


# CORS preflights (chalicelib/cors.py): OPTIONS without the authorizer on every path above.
add_preflight_routes(app)


# -- event handlers -------------------------------------------------------------------------
@app.on_sqs_message(queue=JOBS_QUEUE, batch_size=WORKER_BATCH_SIZE, name="compress")
def compress(event: SQSEvent) -> dict[str, Any]:
    remaining = getattr(event.context, "get_remaining_time_in_millis", None)
    return get_worker().handle_batch((record.to_dict() for record in event), remaining_ms=remaining)


# A fanned-out file's ranges (chalicelib/fanout.py), one message per invocation so
# they run in parallel invocations. Range messages still on the jobs queue (sent
# before this queue existed) are handled by ``compress`` as before.
@app.on_sqs_message(queue=RANGES_QUEUE, batch_size=RANGES_BATCH_SIZE, name="compress_range")
def compress_range(event: SQSEvent) -> dict[str, Any]:
    remaining = getattr(event.context, "get_remaining_time_in_millis", None)
    return get_range_worker().handle_batch((record.to_dict() for record in event), remaining_ms=remaining)


@app.on_sqs_message(queue=DEAD_LETTER_QUEUE, batch_size=WORKER_BATCH_SIZE, name="dead_letters")
def dead_letters(event: SQSEvent) -> dict[str, Any]:
    return get_worker().handle_dead_letters(record.to_dict() for record in event)
