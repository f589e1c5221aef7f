"""The API's wire shapes as pydantic models: one source for request validation, responses and the OpenAPI document.

Requests are validated here (``parse``) and turned into our own errors:
each field names, in its ``Annotated`` metadata, the error code a bad value
gets (``Code("invalid_size")``), and a validator that knows better raises a
``PydanticCustomError`` whose type is our code. Responses are built from the
models in ``views.py``, so what the API answers is what ``openapi.py``
describes (``GET /openapi.json``).

Limits that depend on the deployment (files per job, file size) are checked
against the ``context`` given to ``parse`` and written into the document by
``openapi.py`` from the same settings.
"""

from __future__ import annotations

import types
import typing
from dataclasses import dataclass
from typing import Annotated, Any, Literal, TypeVar

import pydantic
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator
from pydantic_core import PydanticCustomError
from pydantic_core.core_schema import ErrorType

from . import multipart
from .domain import AddFilesRequest, Algorithm, FileSpec, FileState, JobRequest, JobState, UploadMethod
from .errors import ValidationError
from .validation import MAX_CONTENT_TYPE, MAX_NAME_BYTES, is_media_type, name_problem

M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class Code:
    """``Annotated`` metadata: the error code of a field's bad value.

    ``length`` is the code when a list's item count is out of range, if
    that differs (a job's file count).
    """

    code: str
    length: str | None = None


class Request(BaseModel):
    """A request body: unknown fields are refused, and JSON types are not coerced ("3" is not 3)."""

    model_config = ConfigDict(extra="forbid", strict=True)


class Response(BaseModel):
    model_config = ConfigDict(extra="forbid")


# -- requests ------------------------------------------------------------------------------------


def _error(code: str, message: str) -> PydanticCustomError:
    """An error whose type is our code (the message goes in as data: a name may hold braces)."""
    return PydanticCustomError(code, "{message}", {"message": message})


def _name(value: str) -> str:
    why = name_problem(value)
    if why is not None:
        raise _error("invalid_name", f"{why}: {value!r}")
    return value


def _media_type(value: str | None) -> str | None:
    if value is not None and not is_media_type(value):
        raise _error(
            "invalid_content_type",
            f"content_type must be a media type such as 'text/plain; charset=utf-8' (RFC 9110, visible ASCII, "
            f"at most {MAX_CONTENT_TYPE} characters), got {value!r}",
        )
    return value


def _checksum(value: str) -> str:
    if multipart.decode(value) is None:
        raise _error("invalid_checksum", "must be a CRC64NVME: base64 of its 8 big-endian bytes")
    return value


Crc64 = Annotated[
    str,
    Code("invalid_checksum"),
    Field(
        pattern="^[A-Za-z0-9+/]{11}=$",
        description="CRC64NVME: base64 of its 8 big-endian bytes",
        examples=["AAAAAAAAAAA="],
    ),
    AfterValidator(_checksum),
]


class FileIn(Request):
    """One file of a new job: its relative path, size and, optionally, content type and SHA-256."""

    name: Annotated[
        str,
        Code("invalid_name"),
        Field(
            min_length=1,
            max_length=MAX_NAME_BYTES,
            description=f"relative path with '/' between folders; no '..', '.', empty segments, backslashes or "
            f"control characters; at most {MAX_NAME_BYTES} bytes in UTF-8",
            examples=["logs/app.log"],
        ),
        AfterValidator(_name),
    ]
    size: Annotated[int, Code("invalid_size"), Field(ge=0, description="bytes")]
    content_type: Annotated[
        str | None,
        Code("invalid_content_type"),
        Field(max_length=MAX_CONTENT_TYPE, description="stored with the upload; default application/octet-stream"),
        AfterValidator(_media_type),
    ] = None
    sha256: Annotated[
        str | None,
        Code("invalid_sha256"),
        Field(pattern="^[0-9a-fA-F]{64}$", description="hex SHA-256 of the file: S3 refuses an upload that differs"),
    ] = None

    mode: Annotated[
        int | None,
        Code("invalid_mode"),
        Field(ge=0, le=0o7777, description="the original's permission bits (0 to 0o7777 = 4095), e.g. 493 for 0o755"),
    ] = None
    mtime: Annotated[
        float | None,
        Code("invalid_mtime"),
        Field(
            ge=0,
            le=2**40,
            allow_inf_nan=False,
            description="the original's modification time, seconds since the epoch",
            examples=[1767225600.5],
        ),
    ] = None

    @field_validator("size")
    @classmethod
    def _size_limit(cls, size: int, info: ValidationInfo) -> int:
        limit = (info.context or {}).get("max_file_size")
        if limit is not None and size > limit:
            raise _error("invalid_size", f"size must be at most {limit} bytes, got {size}")
        return size

    @field_validator("sha256")
    @classmethod
    def _lower(cls, value: str | None) -> str | None:
        return value.lower() if value is not None else None


def _count_and_names(files: list[FileIn], info: ValidationInfo, *, least: int) -> list[FileIn]:
    limit = (info.context or {}).get("max_files")
    if limit is not None and len(files) > limit:
        raise _error("invalid_file_count", f"a request holds {least} to {limit} files, got {len(files)}")
    seen: set[str] = set()
    for spec in files:
        if spec.name in seen:
            raise _error("duplicate_name", f"duplicate file name: {spec.name!r}")
        seen.add(spec.name)
    return files


MORE_FILES = (
    "true: the job stays open for more files (POST /jobs/{job_id}/files) and is in state 'uploading', never "
    "finished, until a batch with more_files false (or cancel)"
)


class CreateJobIn(Request):
    """``POST /jobs``: the files to upload and how to compress them."""

    files: Annotated[
        list[FileIn],
        Code("invalid_files", length="invalid_file_count"),
        Field(min_length=1, description="at most max_files_per_request (GET /); more with more_files"),
    ]
    algorithm: Annotated[Algorithm, Code("invalid_algorithm"), Field(strict=False)] = Algorithm.ZSTD
    level: Annotated[
        int | None,
        Code("invalid_level"),
        Field(description="default: the algorithm's; zstd 1-22 (3), brotli 0-11 (5), gzip 1-9 (6)"),
    ] = None

    upload_method: Annotated[
        UploadMethod,
        Code("invalid_upload_method"),
        Field(
            strict=False,
            description="put: a presigned PUT URL per file (the CLI); post: a presigned POST form "
            "(multipart/form-data, what a browser sends) for files up to max_post_size (GET /); "
            "bigger files are uploaded in parts either way",
        ),
    ] = UploadMethod.PUT
    more_files: Annotated[bool, Code("invalid_more_files"), Field(description=MORE_FILES)] = False

    @field_validator("files")
    @classmethod
    def _count(cls, files: list[FileIn], info: ValidationInfo) -> list[FileIn]:
        return _count_and_names(files, info, least=1)

    @model_validator(mode="after")
    def _level(self) -> CreateJobIn:
        try:
            self.level = self.algorithm.check_level(self.algorithm.default_level if self.level is None else self.level)
        except ValueError as exc:
            raise _error("invalid_level", str(exc)) from None
        return self


class AddFilesIn(Request):
    """``POST /jobs/{job_id}/files``: a batch of files for a job open for more (created with more_files)."""

    files: Annotated[
        list[FileIn],
        Code("invalid_files", length="invalid_file_count"),
        Field(
            description="at most max_files_per_request (GET /); names unique across the whole job; "
            "empty with more_files false just closes the job for additions"
        ),
    ]
    more_files: Annotated[
        bool,
        Code("invalid_more_files"),
        Field(description="false (the default) closes the job for additions: this is the last batch"),
    ] = False
    upload_method: Annotated[
        UploadMethod, Code("invalid_upload_method"), Field(strict=False, description="as for POST /jobs")
    ] = UploadMethod.PUT

    @field_validator("files")
    @classmethod
    def _count(cls, files: list[FileIn], info: ValidationInfo) -> list[FileIn]:
        return _count_and_names(files, info, least=0)


class PartIn(Request):
    part_number: Annotated[int, Code("invalid_part_number"), Field(ge=1, le=multipart.MAX_PARTS)]
    crc64nvme: Crc64


class SignPartsIn(Request):
    """``POST .../parts``: the parts about to be sent, each bound to its CRC64NVME."""

    parts: Annotated[
        list[PartIn],
        Code("invalid_parts"),
        Field(min_length=1, max_length=multipart.MAX_PARTS_PER_SIGNING, description="sign only those about to be sent"),
    ]

    @field_validator("parts")
    @classmethod
    def _distinct(cls, parts: list[PartIn]) -> list[PartIn]:
        numbers = [part.part_number for part in parts]
        twice = sorted({n for n in numbers if numbers.count(n) > 1})
        if twice:
            raise _error("invalid_part_number", f"part {twice[0]} is asked for twice")
        return parts


class CompleteIn(Request):
    """``POST .../complete``: the whole file's CRC64NVME, which S3 checks."""

    crc64nvme: Crc64


def parse(model: type[M], body: Any, **context: Any) -> M:
    """``body`` as ``model``, or our ValidationError with the code and a message naming where."""
    try:
        return model.model_validate(body, context=context)
    except pydantic.ValidationError as exc:
        errors = exc.errors()
        # an unknown field first: it explains the other errors (a misspelt name is also a missing one)
        first = next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])
        raise _our_error(model, first) from None


def _our_error(model: type[BaseModel], error: Any) -> ValidationError:
    loc = tuple(error["loc"])
    kind: str = error["type"]
    where = _where(loc)
    if kind == "model_type" and not loc:
        return ValidationError("the body must be a JSON object", code="invalid_body")
    if kind == "extra_forbidden":
        parent = _model_at(model, loc[:-1])
        allowed = ", ".join(parent.model_fields) if parent else ""
        return ValidationError(
            f"unknown field {loc[-1]!r}{' in ' + _where(loc[:-1]) if loc[:-1] else ''}; allowed: {allowed}",
            code="unknown_field",
        )
    message = f"{where}: {error['msg']}" if where else str(error["msg"])
    if kind not in _PYDANTIC_TYPES:  # ours: the validator chose the code
        return ValidationError(message, code=kind)
    code = _code_at(model, loc, kind) or "invalid_request"
    if kind == "missing":
        message = f"{where} is required"
    elif kind == "model_type":
        message = f"{where} must be an object"
    return ValidationError(message, code=code)


# pydantic's own error types (any other type came from our validators and is our code)
_PYDANTIC_TYPES = frozenset(typing.get_args(ErrorType))


def _where(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _model_at(model: type[BaseModel], loc: tuple[Any, ...]) -> type[BaseModel] | None:
    current: Any = model
    for part in loc:
        if isinstance(part, int):
            current = _item_type(current)
        elif isinstance(current, type) and issubclass(current, BaseModel) and part in current.model_fields:
            current = current.model_fields[part].annotation
        else:
            return None
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _item_type(annotation: Any) -> Any:
    args = typing.get_args(annotation)
    return args[0] if args else None


def _code_at(model: type[BaseModel], loc: tuple[Any, ...], kind: str) -> str | None:
    """The ``Code`` of the field nearest to ``loc`` (an item's error is its list's, unless the item has its own)."""
    found: str | None = None
    current: Any = model
    for index, part in enumerate(loc):
        if isinstance(part, int):
            current = _item_type(current)
            continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)) or part not in current.model_fields:
            break
        info = current.model_fields[part]
        for meta in info.metadata:
            if isinstance(meta, Code):
                last = index == len(loc) - 1
                found = meta.length if last and meta.length and kind in ("too_short", "too_long") else meta.code
        current = info.annotation
        current = _unwrap_optional(current)
    return found


def _unwrap_optional(annotation: Any) -> Any:
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if typing.get_origin(annotation) in (typing.Union, types.UnionType) and len(args) == 1:
        return args[0]
    return annotation


# -- responses -----------------------------------------------------------------------------------


class ErrorDetail(Response):
    code: str = Field(description="stable, machine-readable; the list per status is in each operation")
    message: str = Field(description="for people: what went wrong and what to do")


class ErrorOut(Response):
    """Every error the API answers, whatever the status."""

    error: ErrorDetail


class Link(Response):
    method: str
    href: str


class Limits(Response):
    max_files_per_job: int = Field(description="files in one job, over all its requests")
    max_files_per_request: int = Field(description="files in one POST /jobs or POST /jobs/{job_id}/files")
    max_file_size: int
    multipart_threshold: int
    max_post_size: int
    max_parts_per_signing: int
    max_status_page: int = Field(description="files in one page of GET /jobs/{job_id} (its default and most)")


class IndexOut(Response):
    """``GET /``: the service, its limits and its routes."""

    service: str
    version: str
    limits: Limits
    authentication: str
    links: dict[str, Link]


class UploadRequest(Response):
    """A presigned request.

    PUT: send the bytes to ``url`` with exactly these ``headers`` (``fields`` is null). POST: a form
    (``multipart/form-data``) to ``url`` with every field of ``fields`` in order, then the file last in
    a field named ``file`` (``headers`` is empty); S3 answers 204.
    """

    method: Literal["PUT", "POST"]
    url: str
    headers: dict[str, str]
    fields: dict[str, str] | None
    expires_in: int = Field(description="seconds")


class MultipartPlan(Response):
    """A file uploaded in parts: sign them with POST .../parts, then POST .../complete."""

    upload_id: str | None
    part_size: int | None
    part_count: int | None
    checksum_algorithm: Literal["CRC64NVME"]


class CreatedFile(Response):
    file_id: str
    name: str
    size: int
    upload: UploadRequest | None = Field(description="null for a multipart upload")
    multipart: MultipartPlan | None


class CreatedJobOut(Response):
    job_id: str
    algorithm: Algorithm
    level: int
    created_at: float
    status_url: str
    more_files: bool = Field(description="open for more files (POST /jobs/{job_id}/files)")
    files: list[CreatedFile]


class AddedFilesOut(Response):
    """``POST /jobs/{job_id}/files``: the batch's uploads, as ``POST /jobs`` answers them."""

    job_id: str
    file_count: int = Field(description="files in the job now, this batch included")
    total_size: int = Field(description="bytes declared in the job now")
    more_files: bool = Field(description="still open for more files")
    files: list[CreatedFile]


class FileErrorOut(Response):
    code: str
    message: str


class Timings(Response):
    created_at: float | None
    queued_at: float | None
    started_at: float | None
    finished_at: float | None
    compress_seconds: float | None
    total_seconds: float | None


class Checksum(Response):
    algorithm: Literal["crc64nvme"]
    value: str


class FileOut(Response):
    file_id: str
    name: str
    state: FileState
    size: int
    compressed_size: int | None
    ratio: float | None = Field(description="compressed size over size: smaller is better")
    algorithm: Algorithm
    level: int
    attempts: int
    error: FileErrorOut | None
    timings: Timings
    checksum: Checksum | None
    mode: int | None = Field(description="the original's permission bits as declared (null: not given)")
    mtime: float | None = Field(description="the original's modification time as declared, seconds since the epoch")
    result_crc64nvme: str | None = Field(
        description="CRC64NVME of the compressed result (base64 of its 8 big-endian bytes), once completed: "
        "compare with a local copy without downloading it; null before, and for results compressed in ranges"
    )
    multipart: MultipartPlan | None
    download_url: str | None = Field(description="a presigned GET of the result, once completed")
    download_name: str | None


class Totals(Response):
    files: int
    bytes_in: int
    bytes_out: int
    ratio: float | None


class JobHeader(Response):
    job_id: str
    algorithm: Algorithm
    level: int
    file_count: int
    total_size: int
    created_at: float
    cancelled_at: float | None
    more_files: bool = Field(description="open for more files (POST /jobs/{job_id}/files): state 'uploading'")


class JobStatusOut(JobHeader):
    state: JobState
    counts: dict[str, int] = Field(description="files per state")
    totals: Totals
    finished_at: float | None
    files: list[FileOut] = Field(description="one page of the job's files, in name order")
    next_cursor: str | None = Field(
        description="pass as ?cursor= for the next page of files; null on the last (state and totals cover every file)"
    )


class JobSummaryOut(JobHeader):
    state: JobState
    counts: dict[str, int] = Field(description="files per state, and 'open': not finished yet")
    totals: Totals
    finished_at: float | None


class JobPageOut(Response):
    jobs: list[JobHeader]
    next_cursor: str | None = Field(description="pass as ?cursor= for the next page; null on the last")


class FileRef(Response):
    file_id: str
    name: str


class SkippedFile(FileRef):
    reason: str


class RetryOut(Response):
    job_id: str
    retried: list[FileRef]
    skipped: list[SkippedFile]


class SignedPartOut(UploadRequest):
    part_number: int


class SignedPartsOut(Response):
    parts: list[SignedPartOut]


class PartOut(Response):
    part_number: int
    size: int
    etag: str
    crc64nvme: str | None


class PartsOut(Response):
    upload_id: str | None = None
    part_size: int | None = None
    part_count: int | None = None
    checksum_algorithm: Literal["CRC64NVME"] | None = None
    state: FileState = Field(description="parts are listed only while the upload is open (pending)")
    parts: list[PartOut]


class RenewedUploadOut(Response):
    file_id: str
    name: str
    size: int
    upload: UploadRequest


def _spec(f: FileIn) -> FileSpec:
    return FileSpec(name=f.name, size=f.size, content_type=f.content_type, sha256=f.sha256, mode=f.mode, mtime=f.mtime)


def job_request(body: Any, *, max_files: int, max_file_size: int) -> JobRequest:
    """The body of ``POST /jobs`` as a domain JobRequest, or ValidationError."""
    parsed = parse(CreateJobIn, body, max_files=max_files, max_file_size=max_file_size)
    assert parsed.level is not None, "the model sets the algorithm's default"
    return JobRequest(
        files=tuple(_spec(f) for f in parsed.files),
        algorithm=parsed.algorithm,
        level=parsed.level,
        upload_method=parsed.upload_method,
        more_files=parsed.more_files,
    )


def add_files_request(body: Any, *, max_files: int, max_file_size: int) -> AddFilesRequest:
    """The body of ``POST /jobs/{job_id}/files`` as a domain AddFilesRequest, or ValidationError."""
    parsed = parse(AddFilesIn, body, max_files=max_files, max_file_size=max_file_size)
    return AddFilesRequest(
        files=tuple(_spec(f) for f in parsed.files),
        more_files=parsed.more_files,
        upload_method=parsed.upload_method,
    )
