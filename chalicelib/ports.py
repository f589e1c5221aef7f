"""What the service and worker need from storage and queues: Protocols and the plain data they pass.

DynamoJobStore (jobstore.py), S3Storage (storage.py) and SqsWorkQueue
(queue.py) implement these on AWS; tests use the in-memory fakes in
tests/fakes.py, held to the same behaviour by contract tests. Adapters raise
the project's errors (errors.py), never botocore's.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, BinaryIO, Literal, Protocol

from .codecs import Sink
from .domain import AddOutcome, Claim, Completion, FileError, FileRecord, Job, RangeClaim, RangeRecord
from .tenants import Limits, Tenant, TokenRecord


@dataclass(frozen=True)
class PresignedRequest:
    """How to send one upload: the method, URL and headers to use exactly."""

    method: Literal["PUT"]
    url: str
    headers: dict[str, str]
    expires_in: int


@dataclass(frozen=True)
class PresignedPost:
    """How to send one upload as an HTML form (``multipart/form-data``) POSTed to ``url``.

    ``fields`` go first, in this order, then the file as the last field
    (``file``): S3 ignores fields after it. The signed policy binds the key,
    the content type, the exact size and (when given) the SHA-256.
    """

    url: str
    fields: dict[str, str]
    expires_in: int
    method: str = "POST"


PresignedUpload = PresignedRequest | PresignedPost


@dataclass(frozen=True)
class UploadedPart:
    """A part S3 holds for a multipart upload."""

    number: int
    size: int
    etag: str
    crc64nvme: str | None = None


@dataclass
class ObjectStream:
    """An object being read: its size (from the GET itself) and its body."""

    body: Any
    size: int

    def read(self, size: int = -1) -> bytes:
        data: bytes = self.body.read(size)
        return data

    def close(self) -> None:
        self.body.close()


class JobStore(Protocol):
    def create_job(self, job: Job, files: Sequence[FileRecord]) -> None: ...
    def add_files(self, job: Job, files: Sequence[FileRecord], *, max_files: int, close: bool) -> AddOutcome:
        """Add a batch to a job open for more files, so that it holds at most ``max_files``; ``close``: the last.

        Refused as a whole (nothing written) if the job is closed, would be
        too full, or holds one of the names; a batch racing another for the
        same names may be refused after some of its files were written.
        """

    def cancel_job(self, job_id: str, at: float) -> bool: ...
    def get_job(self, job_id: str) -> Job | None: ...
    def get_job_with_files(self, job_id: str) -> tuple[Job | None, list[FileRecord]]: ...
    def get_file_states(self, job_id: str) -> list[FileRecord]: ...
    def get_file(self, job_id: str, file_id: str) -> FileRecord | None: ...
    def list_jobs(self, owner: str, *, limit: int, cursor: str | None) -> tuple[list[Job], str | None]: ...
    def record_upload_checksum(self, job_id: str, file_id: str, *, upload_id: str, crc64nvme: str) -> bool: ...
    def mark_queued(self, job_id: str, file_id: str, at: float) -> bool: ...
    def claim_file(self, job_id: str, file_id: str, *, token: str, at: float, lease_until: float) -> Claim: ...
    def renew_claim(self, job_id: str, file_id: str, *, token: str, lease_until: float) -> bool: ...
    def complete_file(
        self,
        job_id: str,
        file_id: str,
        *,
        token: str,
        at: float,
        compressed_size: int,
        crc32: int,
        result_key: str,
        compress_seconds: float,
        result_crc64nvme: str | None = None,
    ) -> bool: ...
    def complete_files(self, completions: Sequence[Completion]) -> list[bool]:
        """``complete_file`` for each, answers in order, in as few requests as the store allows.

        A small-file batch's results, written together (one DynamoDB
        transaction instead of one write each). Raises when the outcome is
        unknown (the store unreachable): none, some or all may be recorded.
        """

    def release_file(self, job_id: str, file_id: str, *, token: str, error: FileError, at: float) -> bool: ...
    def fail_file(
        self, job_id: str, file_id: str, *, error: FileError, at: float, token: str | None = None
    ) -> bool: ...
    def cancel_file(self, job_id: str, file_id: str, at: float) -> bool: ...
    def requeue_file(self, job_id: str, file_id: str, *, error_codes: Iterable[str], at: float) -> bool: ...
    # -- fan-out (chalicelib/fanout.py) ----------------------------------------------------
    def start_fanout(
        self, job_id: str, file_id: str, *, token: str, upload_id: str, result_key: str, ranges: Sequence[RangeRecord]
    ) -> bool:
        """Write the ranges (pending), then record the result upload on the file, if ``token`` holds it."""

    def finish_dispatch(self, job_id: str, file_id: str, *, token: str, at: float) -> bool:
        """The range messages are sent: mark the file fanned out and drop its claim (the ranges hold their own)."""

    def claim_range(
        self, job_id: str, file_id: str, number: int, *, token: str, at: float, lease_until: float
    ) -> RangeClaim:
        """Take a pending range, or one whose claim expired; answers with the range as it is."""

    def renew_range(self, job_id: str, file_id: str, number: int, *, token: str, lease_until: float) -> bool:
        """Extend a range's claim; False if ``token`` lost it or the file is no longer processing (cancelled)."""

    def release_range(self, job_id: str, file_id: str, number: int, *, token: str, error: FileError | None) -> bool:
        """processing -> pending (a retry), only by the holder."""

    def complete_range(
        self,
        job_id: str,
        file_id: str,
        number: int,
        *,
        token: str,
        etag: str,
        part_size: int,
        crc32: int,
        crc64nvme: str,
        compress_seconds: float,
    ) -> bool:
        """processing -> done with its part's ETag and size, only by the holder (True if already so with this ETag)."""

    def count_range(self, job_id: str, file_id: str, number: int, *, upload_id: str) -> FileRecord | None:
        """Count a done range on its file once; the file after (None: not processing with this upload)."""

    def list_ranges(self, job_id: str, file_id: str) -> list[RangeRecord]: ...
    def complete_fanout(
        self,
        job_id: str,
        file_id: str,
        *,
        upload_id: str,
        at: float,
        compressed_size: int,
        crc32: int,
        result_key: str,
        compress_seconds: float,
    ) -> bool:
        """processing -> completed once every range is counted (True if already completed with ``result_key``)."""

    def fail_fanout(self, job_id: str, file_id: str, *, upload_id: str, error: FileError, at: float) -> bool:
        """processing -> failed for a fanned-out file of this result upload."""


class ResultWriter(Sink, Protocol):
    size: int

    def close(self, *, tags: dict[str, str] | None = None) -> int: ...
    def abort(self) -> None: ...


class ObjectStorage(Protocol):
    def presign_upload(
        self, key: str, *, size: int, content_type: str, sha256_hex: str | None, expires_in: int
    ) -> PresignedRequest: ...
    def presign_post(
        self, key: str, *, size: int, content_type: str, sha256_hex: str | None, expires_in: int
    ) -> PresignedPost:
        """A POST form for ``key``: exactly ``size`` bytes of ``content_type`` (and the sha256, if given)."""

    def presign_download(self, key: str, *, filename: str, expires_in: int) -> str: ...
    def start_multipart(self, key: str, *, content_type: str) -> str:
        """Start a client's multipart upload (CRC64NVME, full object); its upload id."""

    def presign_part(
        self, key: str, *, upload_id: str, number: int, size: int, crc64nvme: str, expires_in: int
    ) -> PresignedRequest:
        """A PUT URL for one part, bound to its size and CRC64NVME (S3 checks both on arrival)."""

    def list_parts(self, key: str, *, upload_id: str) -> list[UploadedPart]:
        """The parts S3 holds, by number. UploadGone if the upload is no more."""

    def complete_multipart(self, key: str, *, upload_id: str, parts: list[UploadedPart], crc64nvme: str) -> None:
        """Join the parts; S3 checks the whole object's CRC64NVME (ChecksumRefused if it differs)."""

    def abort_multipart(self, key: str, *, upload_id: str) -> None: ...
    def open_read(self, key: str) -> ObjectStream | None: ...
    def open_read_range(self, key: str, *, offset: int, length: int) -> ObjectStream | None:
        """A ranged GET (``Range: bytes=offset-(offset+length-1)``); None if there is no object."""

    def object_size(self, key: str) -> int | None: ...
    def start_result_upload(self, key: str, *, content_type: str, metadata: dict[str, str]) -> str:
        """Start a fanned-out result's multipart upload; its upload id."""

    def upload_part(self, key: str, *, upload_id: str, number: int, body: BinaryIO, size: int) -> str:
        """Upload part ``number`` from a seekable file of ``size`` bytes; its ETag. UploadGone if aborted."""

    def complete_parts(
        self, key: str, *, upload_id: str, parts: list[tuple[int, str]], tags: dict[str, str] | None = None
    ) -> None:
        """Join (number, ETag) parts in order; UploadConflict if S3 refuses them or the upload is gone."""

    def open_writer(self, key: str, *, content_type: str, metadata: dict[str, str]) -> ResultWriter: ...
    def exists(self, key: str) -> bool: ...
    def put_bytes(self, key: str, data: bytes, *, content_type: str) -> None: ...
    def delete(self, key: str) -> None: ...
    def delete_many(self, keys: Sequence[str]) -> None:
        """Delete several objects in one request per 1,000 keys (missing ones are no error)."""


class WorkQueue(Protocol):
    def delay(self, receipt_handle: str, seconds: int) -> None:
        """Make a received message visible again after ``seconds``."""

    def send_upload(self, bucket: str, key: str) -> None:
        """Queue an uploaded object for the worker (as an S3 notification)."""

    def send_ranges(self, bodies: Sequence[str]) -> None:
        """Send range messages (chalicelib/events.py builds their bodies), ten per request; AwsError if any is refused."""


class TenantStore(Protocol):
    """Tenants, their tokens and their usage (DynamoTenantStore in tenantstore.py)."""

    def create_tenant(self, tenant: Tenant, token: TokenRecord) -> None:
        """Write the tenant and its token at once; TenantExists if the name is taken."""

    def get_tenant(self, tenant_id: str) -> Tenant | None: ...
    def find_tenant(self, name: str) -> Tenant | None: ...
    def list_tenants(self) -> list[Tenant]: ...
    def get_token(self, token_id: str) -> TokenRecord | None: ...
    def touch_token(self, token_id: str, *, at: float, unless_after: float) -> None:
        """Record a use of the token, unless one after ``unless_after`` is recorded already."""

    def replace_token(self, tenant: Tenant, token: TokenRecord, *, at: float) -> bool:
        """Give the tenant ``token`` and revoke its current one, if it still is ``tenant.token_id``."""

    def revoke_tenant(self, tenant: Tenant, *, at: float) -> None: ...
    def set_limits(self, tenant_id: str, limits: Limits) -> None: ...
    def reserve_bytes(self, tenant_id: str, day: str, amount: int, *, limit: int, expires_at: int) -> int | None:
        """Add ``amount`` to the day's declared bytes if the total stays within ``limit``.

        None: reserved. Otherwise the bytes already declared that day (nothing changed).
        """

    def release_bytes(self, tenant_id: str, day: str, amount: int) -> None: ...
    def add_open_job(self, tenant_id: str, job_id: str, *, limit: int) -> bool:
        """Count ``job_id`` as open if fewer than ``limit`` are; False (nothing changed) if not."""

    def remove_open_jobs(self, tenant_id: str, job_ids: Iterable[str]) -> None: ...
