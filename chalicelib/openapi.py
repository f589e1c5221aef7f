"""The OpenAPI 3.1 document of the API (``GET /openapi.json``), built from the models in ``schemas.py``.

``OPERATIONS`` lists every route app.py serves with its models, status and
the error codes it can answer; ``ERROR_STATUS`` gives each code its HTTP
status (one home: tests hold it to the codes the code raises, and every
route of the app to this list). The document takes the deployment's limits
(files per job, file size) from the settings, as the validation does.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from . import SERVICE_NAME, __version__
from . import schemas as s
from .http import GATEWAY_ERRORS
from .settings import Settings
from .web import CONTENT_TYPES

# -- error codes and their statuses -----------------------------------------------------------------

ERROR_STATUS: dict[str, int] = {
    # the body as a whole (chalicelib/http.py) and its fields (schemas.py)
    "invalid_json": 400,
    "json_too_deep": 400,
    "invalid_body": 400,
    "unknown_field": 400,
    "invalid_request": 400,
    "invalid_files": 400,
    "invalid_file_count": 400,
    "invalid_name": 400,
    "duplicate_name": 400,
    "invalid_size": 400,
    "invalid_content_type": 400,
    "invalid_sha256": 400,
    "invalid_algorithm": 400,
    "invalid_level": 400,
    "invalid_upload_method": 400,
    "invalid_more_files": 400,
    "invalid_mode": 400,
    "invalid_mtime": 400,
    "invalid_limit": 400,
    "invalid_cursor": 400,
    "invalid_parts": 400,
    "invalid_part_number": 400,
    "invalid_checksum": 400,
    # what the service refuses (service.py, quotas.py)
    "exceeds_quota": 400,
    "exceeds_time_budget": 400,
    "exceeds_fanout_limit": 400,
    "job_not_found": 404,
    "file_not_found": 404,
    "job_conflict": 409,
    "job_cancelled": 409,
    "job_finished": 409,
    "job_closed": 409,
    "not_multipart": 409,
    "not_single_upload": 409,
    "not_pending": 409,
    "upload_conflict": 409,
    "upload_finished": 409,
    "upload_gone": 409,
    "parts_missing": 409,
    "part_size_mismatch": 409,
    "parts_refused": 409,
    "checksum_mismatch": 409,
    "quota_exceeded": 429,
    "body_too_large": 413,
    "unsupported_media_type": 415,
    "not_found": 404,  # a web page's asset that does not exist
    "internal_error": 500,
    "misconfigured": 500,
    "aws_error": 503,
    "connection_error": 503,
    # API Gateway's own answers (http.GATEWAY_ERRORS) that a documented operation can get
    **{
        error.code: error.status
        for error in GATEWAY_ERRORS.values()
        if error.status is not None and error.code not in ("not_found", "bad_request")
    },
}

# Every operation can get these: the service failing, or its dependencies.
_ANY = ("internal_error", "misconfigured", "aws_error", "connection_error")
# ... and, behind the authorizer, these.
_AUTH = ("missing_token", "invalid_token", "auth_unavailable", "throttled")
# ... and, with a JSON body, these.
_BODY = ("invalid_json", "json_too_deep", "invalid_body", "unknown_field", "body_too_large", "unsupported_media_type")
_JOB = ("job_not_found",)
# What a request that brings new files can be refused for (POST /jobs and POST /jobs/{id}/files).
_NEW_FILES = (
    "invalid_files",
    "invalid_file_count",
    "invalid_name",
    "duplicate_name",
    "invalid_size",
    "invalid_content_type",
    "invalid_sha256",
    "invalid_mode",
    "invalid_mtime",
    "invalid_upload_method",
    "invalid_more_files",
    "exceeds_quota",
    "exceeds_time_budget",
    "exceeds_fanout_limit",
    "quota_exceeded",
)
_FILE = ("job_not_found", "file_not_found")


# The web pages' media types (chalicelib/web.py CONTENT_TYPES).
PAGE = CONTENT_TYPES[".html"]
ASSETS = tuple(CONTENT_TYPES.values())


@dataclass(frozen=True)
class Operation:
    method: Literal["GET", "POST", "DELETE"]
    path: str
    operation_id: str
    summary: str
    response: type[BaseModel] | str | tuple[str, ...]  # a model, or the media types of a page or asset
    request: type[BaseModel] | None = None
    status: int = 200
    errors: tuple[str, ...] = ()
    authorized: bool = True
    query: tuple[dict[str, Any], ...] = ()
    headers: dict[str, dict[str, Any]] = field(default_factory=dict)


OPERATIONS: tuple[Operation, ...] = (
    Operation("GET", "/", "index", "The service, its limits and its routes", s.IndexOut, authorized=False),
    Operation(
        "POST",
        "/jobs",
        "create_job",
        "Create a job: its files' upload URLs (or multipart plans) come back",
        s.CreatedJobOut,
        request=s.CreateJobIn,
        status=201,
        errors=(*_NEW_FILES, "invalid_algorithm", "invalid_level"),
        headers={"Location": {"description": "the job's status URL", "schema": {"type": "string"}}},
    ),
    Operation(
        "POST",
        "/jobs/{job_id}/files",
        "add_files",
        "Add a batch of files to a job created with more_files; a batch with more_files false is the last",
        s.AddedFilesOut,
        request=s.AddFilesIn,
        errors=(*_JOB, *_NEW_FILES, "job_cancelled", "job_closed"),
    ),
    Operation(
        "GET",
        "/jobs",
        "list_jobs",
        "The caller's jobs, newest first, a page at a time",
        s.JobPageOut,
        errors=("invalid_limit", "invalid_cursor"),
        query=(
            {
                "name": "limit",
                "in": "query",
                "required": False,
                "description": "jobs per page (default 20)",
                "schema": {"type": "integer", "minimum": 1, "maximum": 100},
            },
            {
                "name": "cursor",
                "in": "query",
                "required": False,
                "description": "next_cursor of the previous page",
                "schema": {"type": "string"},
            },
        ),
    ),
    Operation(
        "GET",
        "/jobs/{job_id}",
        "job_status",
        "A job's state and totals, and its files a page at a time",
        s.JobStatusOut,
        errors=(*_JOB, "invalid_limit", "invalid_cursor"),
        query=(
            {
                "name": "limit",
                "in": "query",
                "required": False,
                "description": "files per page (default and most: limits.max_status_page of GET /)",
                "schema": {"type": "integer", "minimum": 1},
            },
            {
                "name": "cursor",
                "in": "query",
                "required": False,
                "description": "next_cursor of the previous page",
                "schema": {"type": "string"},
            },
        ),
    ),
    Operation(
        "GET",
        "/jobs/{job_id}/summary",
        "job_summary",
        "A job's state and totals, without its files (cheap to poll)",
        s.JobSummaryOut,
        errors=_JOB,
    ),
    Operation(
        "DELETE",
        "/jobs/{job_id}",
        "cancel_job",
        "Cancel a job: files not finished are cancelled (repeating it is harmless)",
        s.JobStatusOut,
        errors=_JOB,
    ),
    Operation(
        "POST",
        "/jobs/{job_id}/retry",
        "retry_job",
        "Queue a job's failed files again",
        s.RetryOut,
        errors=(*_JOB, "job_cancelled"),
    ),
    Operation(
        "POST",
        "/jobs/{job_id}/files/{file_id}/parts",
        "sign_parts",
        "Sign part URLs of a multipart upload, each bound to its size and CRC64NVME",
        s.SignedPartsOut,
        request=s.SignPartsIn,
        errors=(*_FILE, "invalid_parts", "invalid_part_number", "invalid_checksum", "not_multipart", "upload_finished"),
    ),
    Operation(
        "GET",
        "/jobs/{job_id}/files/{file_id}/parts",
        "list_parts",
        "The parts S3 holds for a multipart upload (what a resumed upload need not send)",
        s.PartsOut,
        errors=(*_FILE, "not_multipart", "upload_gone"),
    ),
    Operation(
        "POST",
        "/jobs/{job_id}/files/{file_id}/complete",
        "complete_upload",
        "Join a multipart upload's parts; S3 checks the whole file's CRC64NVME",
        s.FileOut,
        request=s.CompleteIn,
        errors=(
            *_FILE,
            "invalid_checksum",
            "not_multipart",
            "upload_finished",
            "upload_gone",
            "parts_missing",
            "part_size_mismatch",
            "parts_refused",
            "checksum_mismatch",
        ),
    ),
    Operation(
        "DELETE",
        "/jobs/{job_id}/files/{file_id}/upload",
        "abort_upload",
        "Abort a multipart upload: the file fails (upload_aborted)",
        s.FileOut,
        errors=(*_FILE, "not_multipart", "upload_finished", "upload_gone"),
    ),
    Operation(
        "POST",
        "/jobs/{job_id}/files/{file_id}/upload",
        "renew_upload",
        "A fresh upload URL for a small file still waiting for its upload",
        s.RenewedUploadOut,
        errors=(*_FILE, "not_single_upload", "not_pending"),
    ),
    Operation("GET", "/openapi.json", "openapi", "This document", "application/json", authorized=False),
    # The web pages (chalicelib/web.py): static files, no token (the upload page asks for one itself).
    Operation("GET", "/app", "upload_page", "The upload page (HTML)", PAGE, authorized=False),
    Operation(
        "GET",
        "/app/{asset}",
        "upload_page_asset",
        "One of the upload page's files (script, style, icon)",
        ASSETS,
        errors=("not_found",),
        authorized=False,
    ),
    Operation("GET", "/docs", "docs_page", "This document in Swagger UI (HTML)", PAGE, authorized=False),
    Operation(
        "GET",
        "/docs/{asset}",
        "docs_page_asset",
        "One of the docs page's files (Swagger UI's script and style)",
        ASSETS,
        errors=("not_found",),
        authorized=False,
    ),
)

DOCUMENTED_STATUSES = {200: "OK", 201: "Created"}


def build(settings: Settings) -> dict[str, Any]:
    """The OpenAPI 3.1 document, with the deployment's limits."""
    models = sorted(_models(), key=lambda pair: pair[0].__name__)
    _, top = models_json_schema(models, ref_template="#/components/schemas/{model}")
    schemas: dict[str, Any] = top.get("$defs", {})
    _apply_limits(schemas, settings)
    paths: dict[str, Any] = {}
    for op in OPERATIONS:
        paths.setdefault(op.path, {})[op.method.lower()] = _operation(op)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": SERVICE_NAME.capitalize(),
            "version": __version__,
            "summary": "Compress files in the cloud: upload straight to S3, get zstd, brotli or gzip back",
            "description": (
                "Create a job (POST /jobs) with your files' names and sizes; send each file to its presigned "
                "upload URL (or in parts, for big files); poll the job until its files are completed; download "
                'the results from their download_url. Every error is {"error": {"code", "message"}}; each '
                "operation lists its codes per status."
            ),
        },
        # relative to where this document is served: the API's own base (a deployment's stage prefix included)
        "servers": [{"url": "."}],
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "a tenant's token, sqz_<id>_<secret> ('squeezer admin create-tenant')",
                }
            },
        },
    }


def _models() -> list[tuple[type[BaseModel], Literal["validation", "serialization"]]]:
    seen: list[tuple[type[BaseModel], Literal["validation", "serialization"]]] = [(s.ErrorOut, "serialization")]
    for op in OPERATIONS:
        if op.request is not None:
            seen.append((op.request, "validation"))
        if isinstance(op.response, type):
            seen.append((op.response, "serialization"))
    return list(dict.fromkeys(seen))


def _apply_limits(schemas: dict[str, Any], settings: Settings) -> None:
    schemas["FileIn"]["properties"]["size"]["maximum"] = settings.max_file_size
    per_request = min(settings.max_files_per_request, settings.max_files_per_job)
    schemas["CreateJobIn"]["properties"]["files"]["maxItems"] = per_request
    schemas["AddFilesIn"]["properties"]["files"]["maxItems"] = per_request


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def _operation(op: Operation) -> dict[str, Any]:
    if isinstance(op.response, type):
        content = {"application/json": {"schema": _ref(op.response)}}
    elif op.response == "application/json":
        content = {"application/json": {"schema": {"type": "object"}}}
    else:
        media_types = op.response if isinstance(op.response, tuple) else (op.response,)
        content = {media_type: {"schema": {"type": "string"}} for media_type in media_types}
    ok: dict[str, Any] = {"description": DOCUMENTED_STATUSES[op.status], "content": content}
    if op.headers:
        ok["headers"] = op.headers
    if op.operation_id == "create_job":
        ok["links"] = _links_from_a_new_job()
    out: dict[str, Any] = {
        "operationId": op.operation_id,
        "summary": op.summary,
        "security": [{"bearer": []}] if op.authorized else [],
        "responses": {str(op.status): ok, **_error_responses(op)},
    }
    parameters = [_path_parameter(name) for name in _path_names(op.path)] + list(op.query)
    if parameters:
        out["parameters"] = parameters
    if op.request is not None:
        out["requestBody"] = {"required": True, "content": {"application/json": {"schema": _ref(op.request)}}}
    return out


def error_codes(op: Operation) -> tuple[str, ...]:
    """Every code ``op`` can answer with."""
    codes = op.errors + _ANY
    if op.authorized:
        codes += _AUTH
    if op.request is not None:
        codes += _BODY
    return tuple(dict.fromkeys(codes))


def _error_responses(op: Operation) -> dict[str, Any]:
    by_status: dict[int, list[str]] = {}
    for code in error_codes(op):
        by_status.setdefault(ERROR_STATUS[code], []).append(code)
    responses: dict[str, Any] = {}
    for status in sorted(by_status):
        codes = sorted(by_status[status])
        response: dict[str, Any] = {
            "description": "error: " + ", ".join(codes),
            "content": {"application/json": {"schema": _error_schema(codes)}},
        }
        if status == 429:
            response["headers"] = {
                "Retry-After": {"description": "seconds to wait before trying again", "schema": {"type": "string"}}
            }
        responses[str(status)] = response
    return responses


def _error_schema(codes: list[str]) -> dict[str, Any]:
    return {
        "allOf": [_ref(s.ErrorOut)],
        "properties": {"error": {"properties": {"code": {"enum": codes}}}},
    }


def _links_from_a_new_job() -> dict[str, Any]:
    """What a client does next with a new job (and schemathesis's stateful tests follow)."""
    job = {"job_id": "$response.body#/job_id"}
    first_file = {**job, "file_id": "$response.body#/files/0/file_id"}
    links: dict[str, Any] = {}
    for op in OPERATIONS:
        names = _path_names(op.path)
        if names == ["job_id"]:
            links[op.operation_id] = {"operationId": op.operation_id, "parameters": job}
        elif names == ["job_id", "file_id"]:
            links[op.operation_id] = {"operationId": op.operation_id, "parameters": first_file}
    return links


def _path_names(path: str) -> list[str]:
    return [part[1:-1] for part in path.split("/") if part.startswith("{") and part.endswith("}")]


def _path_parameter(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string", "minLength": 1}}
