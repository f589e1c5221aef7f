"""A client's uploads after ``POST /jobs``: parts of multipart uploads, their completion, a fresh PUT URL.

Routes under ``/jobs/{job_id}/files/{file_id}``:

    POST   .../parts      sign part URLs, each bound to its size and CRC64NVME (a few at a time)
    GET    .../parts      the parts S3 holds (what a resumed upload need not send again)
    POST   .../complete   join the parts; S3 checks the whole file's CRC64NVME
    DELETE .../upload     abort the multipart upload: the file fails (upload_aborted)
    POST   .../upload     a fresh PUT URL (or POST form, as the job asked) for a small file still waiting

Every call is scoped to the caller's tenant: another tenant's job or file is
404, as one that does not exist.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from . import multipart
from .domain import FileError, FileRecord, FileState, now
from .errors import JobConflict, JobNotFound, UploadConflict, ValidationError
from .keys import FileRef, ObjectKeys
from .ports import JobStore, ObjectStorage, PresignedRequest, PresignedUpload, UploadedPart
from .schemas import CompleteIn, SignPartsIn, parse
from .service import presign_single
from .settings import Settings

log = logging.getLogger("squeezer.uploads")


class FileNotFound(JobNotFound):
    code = "file_not_found"


@dataclass(frozen=True)
class SignedPart:
    number: int
    request: PresignedRequest


@dataclass(frozen=True)
class PartsOnFile:
    """A multipart upload's plan and the parts S3 holds."""

    record: FileRecord
    parts: list[UploadedPart]


class Uploads:
    def __init__(
        self,
        store: JobStore,
        storage: ObjectStorage,
        settings: Settings,
        *,
        clock: Callable[[], float] = now,
    ) -> None:
        self._store = store
        self._storage = storage
        self._settings = settings
        self._keys = ObjectKeys(settings.uploads_prefix, settings.results_prefix)
        self._clock = clock

    # -- multipart ---------------------------------------------------------------------
    def sign_parts(self, job_id: str, file_id: str, body: Any, *, owner: str) -> list[SignedPart]:
        record = self._waiting_multipart(job_id, file_id, owner)
        plan = _plan(record)
        requested = _parse_parts(body, plan)
        key = self._key(owner, record)
        assert record.upload_id is not None
        return [
            SignedPart(
                number,
                self._storage.presign_part(
                    key,
                    upload_id=record.upload_id,
                    number=number,
                    size=plan.part_length(number),
                    crc64nvme=crc,
                    expires_in=self._settings.part_url_ttl,
                ),
            )
            for number, crc in requested
        ]

    def list_parts(self, job_id: str, file_id: str, *, owner: str) -> PartsOnFile:
        record = self._file(job_id, file_id, owner)
        if not record.multipart or record.upload_id is None:
            raise JobConflict(f"file {file_id} is not a multipart upload", code="not_multipart")
        if record.state is not FileState.PENDING:
            return PartsOnFile(record, [])  # completed (or over): S3 holds no open upload
        return PartsOnFile(record, self._storage.list_parts(self._key(owner, record), upload_id=record.upload_id))

    def complete(self, job_id: str, file_id: str, body: Any, *, owner: str) -> FileRecord:
        """Join the parts S3 holds after checking them against the plan; S3 checks the whole CRC64NVME.

        Idempotent: a completion repeated with the same value (a client's
        retry after a lost answer) answers with the file as it is.
        """
        crc = _whole_checksum(body)
        done = self._file(job_id, file_id, owner)
        if done.multipart and done.crc64nvme == crc and done.state is not FileState.PENDING:
            return done
        record = self._waiting_multipart(job_id, file_id, owner)
        plan = _plan(record)
        key = self._key(owner, record)
        assert record.upload_id is not None
        try:
            parts = self._storage.list_parts(key, upload_id=record.upload_id)
        except UploadConflict as exc:
            if exc.code == "upload_gone" and record.crc64nvme == crc and self._storage.exists(key):
                return record  # completed by an earlier call whose answer was lost; its event is on its way
            raise
        _check_parts(parts, plan)
        # Recorded first: the completion's S3 event may reach the worker at
        # once, and the worker checks the object against it. A refused
        # completion leaves the upload open; a later one records its own value.
        self._store.record_upload_checksum(job_id, file_id, upload_id=record.upload_id, crc64nvme=crc)
        self._storage.complete_multipart(key, upload_id=record.upload_id, parts=parts, crc64nvme=crc)
        log.info("file %s/%s: multipart upload of %d parts completed", job_id, file_id, plan.count)
        return self._store.get_file(job_id, file_id) or record.evolve(crc64nvme=crc)

    def abort(self, job_id: str, file_id: str, *, owner: str) -> FileRecord:
        """Abort a multipart upload still waiting for parts: the file fails (upload_aborted)."""
        record = self._waiting_multipart(job_id, file_id, owner)
        assert record.upload_id is not None
        self._storage.abort_multipart(self._key(owner, record), upload_id=record.upload_id)
        at = self._clock()
        error = FileError("upload_aborted", "the client aborted the upload; upload the file again in a new job")
        self._store.fail_file(job_id, file_id, error=error, at=at)
        return self._store.get_file(job_id, file_id) or record

    # -- single PUT or POST ----------------------------------------------------------------
    def renew_upload(self, job_id: str, file_id: str, *, owner: str) -> tuple[FileRecord, PresignedUpload]:
        """A fresh PUT URL, or POST form if the job asked for forms, for a small file still waiting for its upload."""
        record = self._file(job_id, file_id, owner)
        if record.multipart:
            raise JobConflict(f"file {file_id} is uploaded in parts: sign its parts instead", code="not_single_upload")
        if record.state is not FileState.PENDING:
            raise JobConflict(f"file {file_id} is {record.state.value}, not waiting for its upload", code="not_pending")
        return record, presign_single(self._storage, self._keys, self._settings, owner, record)

    # -- lookups ---------------------------------------------------------------------------
    def _file(self, job_id: str, file_id: str, owner: str) -> FileRecord:
        job = self._store.get_job(job_id)
        if job is None or job.owner != owner:
            raise JobNotFound(f"no job with id {job_id!r}: check the id printed by 'squeezer upload'")
        record = self._store.get_file(job_id, file_id)
        if record is None:
            raise FileNotFound(f"job {job_id} has no file with id {file_id!r}")
        return record

    def _waiting_multipart(self, job_id: str, file_id: str, owner: str) -> FileRecord:
        record = self._file(job_id, file_id, owner)
        if not record.multipart:
            raise JobConflict(f"file {file_id} is a single PUT upload, not a multipart one", code="not_multipart")
        if record.state is not FileState.PENDING:
            raise UploadConflict(
                f"file {file_id}'s upload is over (the file is {record.state.value})", code="upload_finished"
            )
        return record

    def _key(self, owner: str, record: FileRecord) -> str:
        return self._keys.upload(FileRef(owner, record.job_id, record.file_id))


def _plan(record: FileRecord) -> multipart.PartPlan:
    assert record.part_size is not None and record.part_count is not None
    plan = multipart.plan(record.size)
    assert (plan.part_size, plan.count) == (record.part_size, record.part_count), "the plan is a function of the size"
    return plan


def _parse_parts(body: Any, plan: multipart.PartPlan) -> list[tuple[int, str]]:
    parts = parse(SignPartsIn, body).parts
    for index, part in enumerate(parts):
        if part.part_number > plan.count:
            raise ValidationError(
                f"parts[{index}].part_number must be an integer from 1 to {plan.count}", code="invalid_part_number"
            )
    return [(part.part_number, part.crc64nvme) for part in parts]


def _whole_checksum(body: Any) -> str:
    return parse(CompleteIn, body).crc64nvme


def _check_parts(parts: list[UploadedPart], plan: multipart.PartPlan) -> None:
    have = {part.number: part for part in parts}
    missing = [n for n in range(1, plan.count + 1) if n not in have]
    if missing:
        shown = ", ".join(str(n) for n in missing[:10]) + (" ..." if len(missing) > 10 else "")
        raise UploadConflict(
            f"{len(missing)} of {plan.count} parts have not arrived: {shown}; send them, then complete",
            code="parts_missing",
        )
    extra = sorted(set(have) - set(range(1, plan.count + 1)))
    wrong = [p.number for p in parts if p.number <= plan.count and p.size != plan.part_length(p.number)]
    if extra or wrong:
        raise UploadConflict(
            f"parts {', '.join(map(str, (wrong + extra)[:10]))} do not have the planned size "
            f"({plan.part_size} bytes, the last {plan.part_length(plan.count)})",
            code="part_size_mismatch",
        )
