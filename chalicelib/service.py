"""The API's service layer: create, read, list and cancel jobs.

Depends on the ports (JobStore, ObjectStorage), never on boto3.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Callable

from .domain import FileError, FileRecord, FileState, Job, JobSummary, new_file_id, new_job_id, now, summarize
from .errors import JobConflict, JobNotFound
from .keys import ObjectKeys
from .ports import JobStore, ObjectStorage
from .settings import Settings
from .storage import PresignedRequest
from .validation import parse_job_request, parse_limit

log = logging.getLogger("squeezer.service")

DEFAULT_CONTENT_TYPE = "application/octet-stream"


@dataclass(frozen=True)
class CreatedJob:
    job: Job
    files: list[tuple[FileRecord, PresignedRequest]]


@dataclass(frozen=True)
class JobStatus:
    job: Job
    summary: JobSummary
    files: list[FileRecord]
    download_urls: dict[str, str]


@dataclass(frozen=True)
class JobPage:
    jobs: list[Job]
    next_cursor: str | None


class JobService:
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

    def create_job(self, body: Any, *, owner: str) -> CreatedJob:
        """Validate the request, record the job and its files, presign the uploads."""
        request = parse_job_request(
            body,
            max_files=self._settings.max_files_per_job,
            max_file_size=self._settings.max_file_size,
        )
        created = self._clock()
        job = Job(
            job_id=new_job_id(),
            owner=owner,
            algorithm=request.algorithm,
            level=request.level,
            file_count=len(request.files),
            total_size=sum(spec.size for spec in request.files),
            created_at=created,
        )
        records = [
            FileRecord(
                job_id=job.job_id,
                file_id=new_file_id(),
                name=spec.name,
                size=spec.size,
                algorithm=request.algorithm,
                level=request.level,
                content_type=spec.content_type,
                sha256=spec.sha256,
                created_at=created,
            )
            for spec in request.files
        ]
        # Presign before writing: a signing error leaves nothing behind.
        uploads = [
            self._storage.presign_upload(
                self._keys.upload(job.job_id, record.file_id),
                size=record.size,
                content_type=record.content_type or DEFAULT_CONTENT_TYPE,
                sha256_hex=record.sha256,
                expires_in=self._settings.upload_url_ttl,
            )
            for record in records
        ]
        self._store.create_job(job, records)
        log.info("created job %s with %d files", job.job_id, len(records))
        return CreatedJob(job=job, files=list(zip(records, uploads)))

    def get_status(self, job_id: str, *, owner: str) -> JobStatus:
        job, files = self._store.get_job_with_files(job_id)
        if job is None or job.owner != owner:
            raise _not_found(job_id)
        files = [self._expire_unsent(record) for record in files]
        urls = {
            record.file_id: self._storage.presign_download(
                record.result_key,
                filename=_basename(record.name) + record.algorithm.extension,
                expires_in=self._settings.download_url_ttl,
            )
            for record in files
            if record.state is FileState.COMPLETED and record.result_key
        }
        return JobStatus(job=job, summary=summarize(job, files), files=files, download_urls=urls)

    def get_summary(self, job_id: str, *, owner: str) -> tuple[Job, JobSummary]:
        """State, counts and totals without the per-file list (nothing is signed).

        Derived from the file records like the full status, read with a
        projection, so the two always agree and nothing can be counted twice.
        """
        job = self._store.get_job(job_id)
        if job is None or job.owner != owner:
            raise _not_found(job_id)
        files = [self._expire_unsent(record) for record in self._store.get_file_states(job_id)]
        return job, summarize(job, files)

    def _expire_unsent(self, record: FileRecord) -> FileRecord:
        """A file still pending after its upload URL expired can no longer arrive.

        Shown as failed (derived on read, nothing is written) so the job can
        reach a final state instead of waiting for ever.
        """
        deadline = record.created_at + self._settings.upload_url_ttl
        if record.state is not FileState.PENDING or self._clock() <= deadline:
            return record
        return record.evolve(
            state=FileState.FAILED,
            finished_at=deadline,
            error=FileError(
                "upload_expired",
                f"no upload arrived before the upload URL expired ({self._settings.upload_url_ttl} s); "
                "upload the file again in a new job",
            ),
        )

    def list_jobs(self, *, owner: str, limit: str | None, cursor: str | None) -> JobPage:
        jobs, next_cursor = self._store.list_jobs(
            owner, limit=parse_limit(limit, self._settings.max_list_page), cursor=cursor
        )
        return JobPage(jobs=jobs, next_cursor=next_cursor)

    def cancel_job(self, job_id: str, *, owner: str) -> JobStatus:
        """Stop a job: open files become cancelled, its objects are deleted."""
        job, files = self._store.get_job_with_files(job_id)
        if job is None or job.owner != owner:
            raise _not_found(job_id)
        if job.cancelled_at is not None:
            raise JobConflict(f"job {job_id} is already cancelled", code="already_cancelled")
        at = self._clock()
        self._store.cancel_job(job_id, at)
        for record in files:
            if not record.state.is_final:
                self._store.cancel_file(job_id, record.file_id, at)
        # A worker that finishes after this finds its lease gone and deletes
        # its own result; an upload arriving later is deleted by the worker.
        self._storage.delete_prefix(self._keys.job_uploads(job_id))
        self._storage.delete_prefix(self._keys.job_results(job_id))
        log.info("cancelled job %s", job_id)
        return self.get_status(job_id, owner=owner)


def _basename(name: str) -> str:
    return name.rsplit("/", 1)[-1]


def _not_found(job_id: str) -> JobNotFound:
    return JobNotFound(f"no job with id {job_id!r}: check the id printed by 'squeezer upload'")
