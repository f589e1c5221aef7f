"""Domain objects: jobs, files and their states. No AWS in here."""

from __future__ import annotations

import enum
import hashlib
import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any

# Re-exported (their home is algorithms.py, which the CLI imports without this module).
from .algorithms import ALGORITHM_SPECS as ALGORITHM_SPECS
from .algorithms import Algorithm as Algorithm
from .algorithms import AlgorithmSpec as AlgorithmSpec
from .algorithms import InvalidLevel as InvalidLevel


class UploadMethod(str, enum.Enum):
    """How a client sends a file that is not uploaded in parts.

    PUT: a presigned URL and the headers to send (the CLI). POST: a presigned
    form (``multipart/form-data``: its fields, then the file), what a browser
    page can send; S3 accepts a POST of at most 5 GiB (Settings.max_post_size).
    """

    PUT = "put"
    POST = "post"


class FileState(str, enum.Enum):
    """Where one file is. Moves only forward: a final state is never left."""

    PENDING = "pending"  # waiting for the upload
    QUEUED = "queued"  # uploaded; waiting for a worker (first try or a retry)
    PROCESSING = "processing"  # a worker holds it
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_final(self) -> bool:
        return self in FINAL_FILE_STATES


FINAL_FILE_STATES = frozenset({FileState.COMPLETED, FileState.FAILED, FileState.CANCELLED})
OPEN_FILE_STATES = frozenset(set(FileState) - FINAL_FILE_STATES)

# Error codes of failed files that ``POST /jobs/{id}/retry`` re-queues (when
# the upload is still there): what went wrong was not the file itself.
RETRYABLE_ERROR_CODES = frozenset(
    {
        "connection_error",
        "aws_error",
        "internal_error",
        "worker_timeout",
        "retries_exhausted",
        "upload_expired",
    }
)


class JobState(str, enum.Enum):
    """A job's overall state, derived from its files' states."""

    UPLOADING = "uploading"  # open for more files (POST /jobs/{id}/files): never finished while so
    PENDING = "pending"  # no file uploaded yet
    PROCESSING = "processing"  # some files are not final yet
    COMPLETED = "completed"  # every file completed
    PARTIALLY_FAILED = "partially_failed"  # all final, some failed, some completed
    FAILED = "failed"  # every file failed
    CANCELLED = "cancelled"  # cancelled with DELETE /jobs/{id}


def new_job_id() -> str:
    """An unguessable id: 128 random bits, URL-safe."""
    return "j_" + secrets.token_hex(16)


def new_file_id() -> str:
    return "f_" + secrets.token_hex(8)


def file_id_for(job_id: str, name: str) -> str:
    """The file id of ``name`` in ``job_id``: derived from both, so a name is one key of the job.

    A batch added to an open job (``POST /jobs/{id}/files``) is checked for
    names already in the job by reading these keys, and written only where
    no item has the key: no index of names is needed.
    """
    return "f_" + hashlib.sha256(f"{job_id}\0{name}".encode()).hexdigest()[:16]


def now() -> float:
    return round(time.time(), 3)


@dataclass(frozen=True)
class FileSpec:
    """One file as the client declared it."""

    name: str
    size: int
    content_type: str | None = None
    sha256: str | None = None
    mode: int | None = None  # permission bits, 0..0o7777
    mtime: float | None = None  # seconds since the epoch


@dataclass(frozen=True)
class JobRequest:
    files: tuple[FileSpec, ...]
    algorithm: Algorithm
    level: int
    upload_method: UploadMethod = UploadMethod.PUT
    more_files: bool = False  # the job stays open for POST /jobs/{id}/files


@dataclass(frozen=True)
class AddFilesRequest:
    """A batch for an open job (``POST /jobs/{id}/files``); ``more_files`` false closes the job for additions."""

    files: tuple[FileSpec, ...]
    more_files: bool = False
    upload_method: UploadMethod = UploadMethod.PUT


@dataclass(frozen=True)
class FileError:
    code: str
    message: str


@dataclass(frozen=True)
class FileRecord:
    job_id: str
    file_id: str
    name: str
    size: int
    algorithm: Algorithm
    level: int
    content_type: str | None = None
    sha256: str | None = None
    # the original's permission bits and modification time, as the client declared them
    mode: int | None = None
    mtime: float | None = None
    state: FileState = FileState.PENDING
    attempts: int = 0
    compressed_size: int | None = None
    crc32: int | None = None
    # the result object's CRC64NVME (base64), computed as it was written; None for a fan-out result
    result_crc64nvme: str | None = None
    error: FileError | None = None
    created_at: float = field(default_factory=now)
    queued_at: float | None = None
    started_at: float | None = None
    finished_at: float | None = None
    compress_seconds: float | None = None
    result_key: str | None = None
    lease_until: float | None = None
    # A multipart upload (files above the threshold): S3's upload id and the
    # part plan (chalicelib/multipart.py); the whole object's CRC64NVME once
    # the client completed it (base64, as S3 writes it).
    upload_id: str | None = None
    part_size: int | None = None
    part_count: int | None = None
    crc64nvme: str | None = None
    # How a single upload is sent (a fresh URL or form for it is of the same
    # kind); POST only for a file that gets a form, never for a multipart one.
    upload_method: UploadMethod = UploadMethod.PUT
    # Fan-out (chalicelib/fanout.py): the result's multipart upload and its
    # key, the range plan, how many ranges are done and counted, and when
    # the range messages were all sent (from then on no delivery holds the
    # file: its ranges carry the work, each with a claim of its own).
    fanout_upload_id: str | None = None
    fanout_key: str | None = None
    range_size: int | None = None
    range_count: int | None = None
    ranges_done: int = 0
    dispatched_at: float | None = None

    @property
    def multipart(self) -> bool:
        return self.upload_id is not None

    @property
    def fanned_out(self) -> bool:
        """True once its ranges were sent: no lease on the file, the ranges have their own."""
        return self.dispatched_at is not None

    @property
    def ratio(self) -> float | None:
        """Compressed size over original size (smaller is better)."""
        if self.compressed_size is None or self.size == 0:
            return None
        return round(self.compressed_size / self.size, 4)

    def evolve(self, **changes: Any) -> FileRecord:
        return replace(self, **changes)

    def held_at(self, at: float) -> bool:
        """True while a delivery holds a live claim on this file."""
        return self.state is FileState.PROCESSING and self.lease_until is not None and self.lease_until >= at


class RangeState(str, enum.Enum):
    """One range of a fanned-out file (chalicelib/fanout.py)."""

    PENDING = "pending"  # waiting for a delivery of its message
    PROCESSING = "processing"  # a delivery holds it
    DONE = "done"  # its part is uploaded and recorded


@dataclass(frozen=True)
class RangeRecord:
    """Range ``number`` (1-based, also its part number) of a fanned-out file: input bytes offset..offset+length-1."""

    job_id: str
    file_id: str
    number: int
    offset: int
    length: int
    state: RangeState = RangeState.PENDING
    attempts: int = 0
    lease_until: float | None = None
    error: FileError | None = None
    # once done: the part as uploaded (padding included) and the input's checksums
    etag: str | None = None
    part_size: int | None = None
    crc32: int | None = None
    crc64nvme: str | None = None
    compress_seconds: float | None = None

    def evolve(self, **changes: Any) -> RangeRecord:
        return replace(self, **changes)

    def held_at(self, at: float) -> bool:
        return self.state is RangeState.PROCESSING and self.lease_until is not None and self.lease_until >= at


@dataclass(frozen=True)
class RangeClaim:
    """The answer to a range claim: ``won`` and the range as it now is (None: no such range)."""

    won: bool
    range: RangeRecord | None


@dataclass(frozen=True)
class Claim:
    """The answer to a claim: ``won`` and the file as it now is (None: no such file)."""

    won: bool
    record: FileRecord | None


@dataclass(frozen=True)
class Completion:
    """A compressed file's result, to record on its file if ``token`` still holds the claim."""

    job_id: str
    file_id: str
    token: str
    at: float
    compressed_size: int
    crc32: int
    result_key: str
    compress_seconds: float
    result_crc64nvme: str | None = None


@dataclass(frozen=True)
class Job:
    job_id: str
    owner: str
    algorithm: Algorithm
    level: int
    file_count: int
    total_size: int
    created_at: float = field(default_factory=now)
    cancelled_at: float | None = None
    # open for additions (POST /jobs/{id}/files) until a batch says no more
    more_files: bool = False


class AddRefusal(str, enum.Enum):
    """Why a job store did not add a batch to a job."""

    CLOSED = "closed"  # gone, cancelled, or no longer open for more files
    FULL = "full"  # more files than the job may hold
    DUPLICATE = "duplicate"  # a name the job holds already


@dataclass(frozen=True)
class AddOutcome:
    """A job store's answer to adding a batch: ``refused`` None when every file was written."""

    refused: AddRefusal | None = None
    names: tuple[str, ...] = ()  # DUPLICATE: the names the job holds already


@dataclass(frozen=True)
class JobSummary:
    state: JobState
    counts: dict[str, int]
    bytes_in: int
    bytes_out: int
    ratio: float | None
    finished_at: float | None


def summarize(job: Job, files: Iterable[FileRecord]) -> JobSummary:
    """Derive a job's state and totals from its files.

    Totals are computed from the file records on every read instead of being
    kept as counters, so a redelivered message can never double-count.
    """
    files = list(files)
    counts = {state.value: 0 for state in FileState}
    bytes_in = bytes_out = 0
    finished = []
    for record in files:
        counts[record.state.value] += 1
        if record.state is FileState.COMPLETED:
            bytes_in += record.size
            bytes_out += record.compressed_size or 0
        if record.finished_at:
            finished.append(record.finished_at)
    total = len(files)
    if job.cancelled_at is not None:
        state = JobState.CANCELLED
    elif job.more_files:
        state = JobState.UPLOADING
    elif counts[FileState.PENDING.value] == total:
        state = JobState.PENDING
    elif any(not r.state.is_final for r in files):
        state = JobState.PROCESSING
    elif counts[FileState.COMPLETED.value] == total:
        state = JobState.COMPLETED
    elif counts[FileState.FAILED.value] == total:
        state = JobState.FAILED
    else:
        state = JobState.PARTIALLY_FAILED
    open_files = job.more_files or any(not r.state.is_final for r in files)
    return JobSummary(
        state=state,
        counts=counts,
        bytes_in=bytes_in,
        bytes_out=bytes_out,
        ratio=round(bytes_out / bytes_in, 4) if bytes_in else None,
        finished_at=None if open_files or not finished else max(finished),
    )
