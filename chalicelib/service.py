"""The API's service layer: create, read, list, cancel and retry jobs.

Depends on the ports (JobStore, ObjectStorage, WorkQueue), never on boto3.
"""

from __future__ import annotations

import base64
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from . import fanout, multipart, throughput
from .domain import (
    RETRYABLE_ERROR_CODES,
    AddRefusal,
    Algorithm,
    FileError,
    FileRecord,
    FileSpec,
    FileState,
    Job,
    JobRequest,
    JobSummary,
    UploadMethod,
    file_id_for,
    new_job_id,
    now,
    summarize,
)
from .errors import JobConflict, JobNotFound, ValidationError
from .keys import FileRef, ObjectKeys
from .ports import JobStore, ObjectStorage, PresignedUpload, WorkQueue
from .quotas import Quotas
from .schemas import add_files_request, job_request
from .settings import Settings
from .validation import parse_limit

log = logging.getLogger("squeezer.service")

DEFAULT_CONTENT_TYPE = "application/octet-stream"


@dataclass(frozen=True)
class CreatedJob:
    job: Job
    # per file: a PUT URL or a POST form; None for a multipart upload (record.upload_id)
    files: list[tuple[FileRecord, PresignedUpload | None]]


@dataclass(frozen=True)
class AddedFiles:
    job: Job  # as it is after the batch
    files: list[tuple[FileRecord, PresignedUpload | None]]


@dataclass(frozen=True)
class JobStatus:
    """A job's state and totals over all its files, and one page of the files (``next_cursor``: the next)."""

    job: Job
    summary: JobSummary
    files: list[FileRecord]
    download_urls: dict[str, str]
    file_count: int
    next_cursor: str | None = None


@dataclass(frozen=True)
class RetryOutcome:
    job: Job
    retried: list[FileRecord]
    skipped: list[tuple[FileRecord, str]]


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
        queue: WorkQueue | None = None,
        quotas: Quotas | None = None,
        clock: Callable[[], float] = now,
    ) -> None:
        self._store = store
        self._quotas = quotas
        self._storage = storage
        self._queue = queue
        self._settings = settings
        self._keys = ObjectKeys(settings.uploads_prefix, settings.results_prefix)
        self._clock = clock

    def create_job(self, body: Any, *, owner: str) -> CreatedJob:
        """Validate the request, record the job and its files, presign the uploads."""
        request = job_request(
            body,
            max_files=min(self._settings.max_files_per_request, self._settings.max_files_per_job),
            max_file_size=self._settings.max_file_size,
        )
        self._check_time_budget(request.files, request.algorithm, request.level)
        job_id = new_job_id()
        total_size = sum(spec.size for spec in request.files)
        reservation = (
            self._quotas.admit(owner, job_id, total_size, is_open=lambda other: self._is_open(owner, other))
            if self._quotas
            else None
        )
        try:
            return self._create(request, owner, job_id, total_size)
        except BaseException:
            if self._quotas and reservation:
                self._quotas.release(reservation)
            raise

    def _create(self, request: JobRequest, owner: str, job_id: str, total_size: int) -> CreatedJob:
        created = self._clock()
        job = Job(
            job_id=job_id,
            owner=owner,
            algorithm=request.algorithm,
            level=request.level,
            file_count=len(request.files),
            total_size=total_size,
            created_at=created,
            more_files=request.more_files,
        )
        # Presign (and start the multipart uploads) before writing: an error
        # leaves no job behind (an orphaned multipart upload is aborted by the
        # bucket's lifecycle rule).
        records = self._records(job, request.files, request.upload_method, created)
        uploads = [self._presign(owner, record) for record in records]
        self._store.create_job(job, records)
        log.info("created job %s with %d files", job.job_id, len(records))
        return CreatedJob(job=job, files=list(zip(records, uploads, strict=True)))

    def _records(self, job: Job, specs: tuple[FileSpec, ...], method: UploadMethod, created: float) -> list[FileRecord]:
        """The files' records, their multipart uploads started where they are big enough."""
        records = [
            FileRecord(
                job_id=job.job_id,
                file_id=file_id_for(job.job_id, spec.name),
                name=spec.name,
                size=spec.size,
                algorithm=job.algorithm,
                level=job.level,
                content_type=spec.content_type,
                sha256=spec.sha256,
                mode=spec.mode,
                mtime=spec.mtime,
                created_at=created,
            )
            for spec in specs
        ]
        return [self._start_upload(job.owner, record, method) for record in records]

    def add_files(self, job_id: str, body: Any, *, owner: str) -> AddedFiles:
        """Add a batch of files to a job created with ``more_files``; the batch without it closes the job.

        The batch's bytes are reserved from the tenant's daily allowance like
        a new job's; the job already holds its open-job slot.
        """
        request = add_files_request(
            body, max_files=self._settings.max_files_per_request, max_file_size=self._settings.max_file_size
        )
        job = self._store.get_job(job_id)
        if job is None or job.owner != owner:
            raise _not_found(job_id)
        self._check_open(job)
        limit = self._settings.max_files_per_job
        if job.file_count + len(request.files) > limit:
            raise _too_many(job, len(request.files), limit)
        self._check_time_budget(request.files, job.algorithm, job.level)
        size = sum(spec.size for spec in request.files)
        reservation = self._quotas.reserve_bytes(owner, job_id, size) if self._quotas and size else None
        try:
            records = self._records(job, request.files, request.upload_method, self._clock())
            uploads = [self._presign(owner, record) for record in records]
            outcome = self._store.add_files(job, records, max_files=limit, close=not request.more_files)
            if outcome.refused is AddRefusal.DUPLICATE:
                shown = ", ".join(repr(name) for name in outcome.names[:5])
                more = f" and {len(outcome.names) - 5:,} more" if len(outcome.names) > 5 else ""
                raise ValidationError(
                    f"job {job_id} holds a file named {shown}{more} already: names are unique in a job",
                    code="duplicate_name",
                )
            if outcome.refused is AddRefusal.FULL:
                raise _too_many(job, len(request.files), limit)
            if outcome.refused is AddRefusal.CLOSED:
                self._check_open(self._store.get_job(job_id) or job)
                raise _closed(job_id)
        except BaseException:
            if self._quotas and reservation:
                self._quotas.release_bytes(reservation)
            raise
        after = self._store.get_job(job_id) or job
        log.info(
            "job %s: added %d files (%d in all)%s",
            job_id,
            len(records),
            after.file_count,
            "" if request.more_files else ", closed for more",
        )
        return AddedFiles(job=after, files=list(zip(records, uploads, strict=True)))

    @staticmethod
    def _check_open(job: Job) -> None:
        if job.cancelled_at is not None:
            raise JobConflict(f"job {job.job_id} is cancelled; start a new job", code="job_cancelled")
        if not job.more_files:
            raise _closed(job.job_id)

    def _start_upload(self, owner: str, record: FileRecord, method: UploadMethod) -> FileRecord:
        """A file above the threshold is uploaded in parts: start its multipart upload, plan its parts.

        With POST forms the threshold is S3's (max_post_size, 5 GiB): a
        browser sends a file up to it in one request, a larger one in parts.
        """
        threshold = self._settings.multipart_threshold
        if method is UploadMethod.POST:
            threshold = self._settings.max_post_size
        if record.size <= threshold:
            return record.evolve(upload_method=method)
        plan = multipart.plan(record.size)
        upload_id = self._storage.start_multipart(
            self._keys.upload(FileRef(owner, record.job_id, record.file_id)),
            content_type=record.content_type or DEFAULT_CONTENT_TYPE,
        )
        # the whole file is checked with CRC64NVME (per part by S3, whole by S3 and the worker)
        return record.evolve(upload_id=upload_id, part_size=plan.part_size, part_count=plan.count, sha256=None)

    def _presign(self, owner: str, record: FileRecord) -> PresignedUpload | None:
        if record.multipart:
            return None  # its parts are signed a few at a time (chalicelib/uploads.py)
        return presign_single(self._storage, self._keys, self._settings, owner, record)

    def _check_time_budget(self, files: tuple[FileSpec, ...], algorithm: Algorithm, level: int) -> None:
        """Refuse a file the worker could not compress before its timeout (chalicelib/throughput.py).

        A file that fans out (chalicelib/fanout.py: zstd and gzip above the
        threshold) is checked per range; any other file, brotli always, whole.
        """
        budget = throughput.budget_seconds(self._settings.worker_timeout_seconds, self._settings.stop_margin_ms)
        for spec in files:
            try:
                plan = fanout.plan_file(spec.size, algorithm, level, self._settings)
            except fanout.FanoutRefused as exc:
                raise ValidationError(f"{spec.name!r}: {exc}", code="exceeds_fanout_limit") from None
            if plan is not None:
                too_slow = fanout.range_fits(plan, algorithm, level, self._settings)
                if too_slow is not None:
                    raise ValidationError(
                        f"{spec.name!r} ({spec.size / 2**20:,.1f} MiB) is compressed in {plan.count:,} ranges of "
                        f"{plan.range_size / 2**20:,.0f} MiB; each would take about {too_slow.seconds:,.0f} s with "
                        f"{algorithm.value} level {level}, more than the worker's budget of {budget:,.0f} s; "
                        + (f"use {options}" if (options := self._fanout_options(spec.size)) else "split the file"),
                        code="exceeds_time_budget",
                    )
                continue
            too_slow = throughput.check(algorithm, level, spec.size, budget)
            if too_slow is not None:
                raise ValidationError(
                    f"{spec.name!r} ({spec.size / 2**20:,.1f} MiB) would take about {too_slow.seconds:,.0f} s to "
                    f"compress with {algorithm.value} level {level}, more than the worker's budget "
                    f"of {budget:,.0f} s; {too_slow.advice(algorithm)}{self._fanout_advice(algorithm, spec.size)}",
                    code="exceeds_time_budget",
                )

    def _fanout_advice(self, algorithm: Algorithm, size: int) -> str:
        """For a codec that cannot be split: the levels at which the codecs that can would take the file."""
        if algorithm in fanout.FANOUT_ALGORITHMS:
            return ""
        options = self._fanout_options(size)
        if not options:
            return f" ({algorithm.value} streams cannot be split across workers)"
        return (
            f" ({algorithm.value} streams cannot be split across workers; files this large in zstd or gzip are "
            f"compressed in ranges by several workers: {options} fits)"
        )

    def _fanout_options(self, size: int) -> str:
        """'zstd level 16 or lower, or gzip level 9 or lower': what a file of ``size`` is accepted with in ranges."""
        return ", or ".join(
            f"{codec.value} level {level} or lower"
            for codec in sorted(fanout.FANOUT_ALGORITHMS, key=lambda a: a is not Algorithm.ZSTD)
            if (level := fanout.highest_fanout_level(codec, size, self._settings)) is not None
        )

    def get_status(self, job_id: str, *, owner: str, limit: str | None = None, cursor: str | None = None) -> JobStatus:
        """The job's state and totals (over every file) and one page of its files, in name order.

        A page holds at most ``max_status_page`` files (``limit`` asks for
        fewer), so the answer stays within Lambda's 6 MB response limit
        however many files the job has; ``next_cursor`` names the next page.
        Only the page's results are signed.
        """
        page_size = (
            self._settings.max_status_page if limit is None else parse_limit(limit, self._settings.max_status_page)
        )
        after = _decode_file_cursor(cursor) if cursor is not None else None
        job, files = self._store.get_job_with_files(job_id)
        if job is None or job.owner != owner:
            raise _not_found(job_id)
        files = [self._settle_unsent(owner, record) for record in files]
        return self._status(job, files, page_size, after)

    def _status(self, job: Job, files: list[FileRecord], page_size: int, after: str | None) -> JobStatus:
        """``files`` in name order (the store's); the page starts after the file ``after`` names."""
        start = 0
        if after is not None:
            position = next((n for n, record in enumerate(files) if record.file_id == after), None)
            if position is None:
                raise _bad_cursor()
            start = position + 1
        page = files[start : start + page_size]
        more = start + page_size < len(files)
        # Completed results are never deleted while their record lives (a
        # delivery deletes only its own unrecorded object; a cancel keeps
        # them), so every URL offered points at an object that exists.
        urls = {
            record.file_id: self._storage.presign_download(
                record.result_key,
                filename=_basename(record.name) + record.algorithm.extension,
                expires_in=self._settings.download_url_ttl,
            )
            for record in page
            if record.state is FileState.COMPLETED and record.result_key
        }
        return JobStatus(
            job=job,
            summary=summarize(job, files),
            files=page,
            download_urls=urls,
            file_count=len(files),
            next_cursor=_encode_file_cursor(page[-1].file_id) if more and page else None,
        )

    def get_summary(self, job_id: str, *, owner: str) -> tuple[Job, JobSummary]:
        """State, counts and totals without the per-file list (nothing is signed).

        Derived from the file records like the full status, read with a
        projection, so the two always agree and nothing can be counted twice.
        """
        job = self._store.get_job(job_id)
        if job is None or job.owner != owner:
            raise _not_found(job_id)
        files = [self._settle_unsent(owner, record) for record in self._store.get_file_states(job_id)]
        return job, summarize(job, files)

    def _is_open(self, owner: str, job_id: str) -> bool:
        """Whether one of the owner's jobs still has a file that is not final (for the open-jobs limit)."""
        job = self._store.get_job(job_id)
        if job is None or job.owner != owner or job.cancelled_at is not None:
            return False
        if job.more_files:
            return True
        return any(not self._settle_unsent(owner, r).state.is_final for r in self._store.get_file_states(job_id))

    def _upload_window(self, record: FileRecord) -> int:
        """How long a file waits for its upload: its URL's life, or a multipart upload's days."""
        return self._settings.multipart_upload_days * 86400 if record.multipart else self._settings.upload_url_ttl

    def _settle_unsent(self, owner: str, record: FileRecord) -> FileRecord:
        """A file still pending well after its upload URL expired: did the upload arrive?

        Asked of S3, once: if the object is there (its notification was lost
        or is still queued), the file is queued and sent to the worker again;
        if not, it fails with ``upload_expired``, so the job can end. Either
        way the answer is written, so later reads cost nothing.
        """
        deadline = record.created_at + self._upload_window(record) + self._settings.upload_grace_seconds
        at = self._clock()
        if record.state is not FileState.PENDING or at <= deadline:
            return record
        key = self._keys.upload(FileRef(owner, record.job_id, record.file_id))
        if self._storage.exists(key):
            if self._store.mark_queued(record.job_id, record.file_id, at) and self._queue is not None:
                self._queue.send_upload(self._settings.bucket, key)
                log.warning("file %s/%s was uploaded but never queued; queued it again", record.job_id, record.file_id)
            return record.evolve(state=FileState.QUEUED, queued_at=at)
        window = (
            f"its multipart upload's {self._settings.multipart_upload_days} days"
            if record.multipart
            else f"the upload URL's {self._settings.upload_url_ttl} s"
        )
        error = FileError(
            "upload_expired",
            f"no upload arrived within {window}; upload the file again in a new job",
        )
        self._store.fail_file(record.job_id, record.file_id, error=error, at=deadline)
        return record.evolve(state=FileState.FAILED, finished_at=deadline, error=error)

    def list_jobs(self, *, owner: str, limit: str | None, cursor: str | None) -> JobPage:
        jobs, next_cursor = self._store.list_jobs(
            owner, limit=parse_limit(limit, self._settings.max_list_page), cursor=cursor
        )
        return JobPage(jobs=jobs, next_cursor=next_cursor)

    def cancel_job(self, job_id: str, *, owner: str) -> JobStatus:
        """Stop a job's unfinished files; completed results stay and stay downloadable.

        Idempotent: every cancel of a job, concurrent or repeated, answers
        with the job's status (state ``cancelled``, the first cancel's time).
        A job whose files are all final already has nothing to cancel (409).
        """
        job, files = self._store.get_job_with_files(job_id)
        if job is None or job.owner != owner:
            raise _not_found(job_id)
        open_files = [record for record in files if not record.state.is_final]
        if job.cancelled_at is None and not open_files and not job.more_files:
            raise JobConflict(
                f"job {job_id} has finished: every file is completed or failed, nothing to cancel",
                code="job_finished",
            )
        at = self._clock()
        if self._store.cancel_job(job_id, at):
            log.info("cancelled job %s", job_id)
        else:  # cancelled already (maybe this very moment): the first cancel's time is the time
            at = job.cancelled_at or self._cancelled_at(job_id) or at
        for record in open_files:
            # A worker holding the file notices at its next heartbeat, stops
            # and removes its own partial result; a later upload is deleted
            # by the worker when its claim finds the file cancelled.
            if self._store.cancel_file(job_id, record.file_id, at):
                self._storage.delete(self._keys.upload(FileRef(owner, job_id, record.file_id)))
        return self.get_status(job_id, owner=owner)

    def _cancelled_at(self, job_id: str) -> float | None:
        job = self._store.get_job(job_id)
        return job.cancelled_at if job else None

    def retry_failed(self, job_id: str, *, owner: str) -> RetryOutcome:
        """Queue again the failed files a retry can fix, whose uploads still exist."""
        job, files = self._store.get_job_with_files(job_id)
        if job is None or job.owner != owner:
            raise _not_found(job_id)
        if job.cancelled_at is not None:
            raise JobConflict(f"job {job_id} is cancelled; start a new job", code="job_cancelled")
        if self._queue is None:
            raise RuntimeError("the service was built without a work queue")
        retried: list[FileRecord] = []
        skipped: list[tuple[FileRecord, str]] = []
        at = self._clock()
        for record in (self._settle_unsent(owner, r) for r in files):
            if record.state is not FileState.FAILED:
                continue
            code = record.error.code if record.error else ""
            if code not in RETRYABLE_ERROR_CODES:
                skipped.append((record, f"{code or 'failed'} is not fixed by a retry; upload the file again"))
                continue
            key = self._keys.upload(FileRef(owner, job_id, record.file_id))
            if not self._storage.exists(key):
                skipped.append((record, "the upload is gone (expired or never sent); upload the file again"))
                continue
            if not self._store.requeue_file(job_id, record.file_id, error_codes=RETRYABLE_ERROR_CODES, at=at):
                skipped.append((record, "its state changed meanwhile"))
                continue
            self._queue.send_upload(self._settings.bucket, key)
            retried.append(record)
        log.info("job %s: %d file(s) queued again, %d skipped", job_id, len(retried), len(skipped))
        return RetryOutcome(job=job, retried=retried, skipped=skipped)


def presign_single(
    storage: ObjectStorage, keys: ObjectKeys, settings: Settings, owner: str, record: FileRecord
) -> PresignedUpload:
    """A file's one-request upload, of the kind the job asked for: a PUT URL or a POST form."""
    key = keys.upload(FileRef(owner, record.job_id, record.file_id))
    content_type = record.content_type or DEFAULT_CONTENT_TYPE
    if record.upload_method is UploadMethod.POST:
        return storage.presign_post(
            key,
            size=record.size,
            content_type=content_type,
            sha256_hex=record.sha256,
            expires_in=settings.upload_url_ttl,
        )
    return storage.presign_upload(
        key, size=record.size, content_type=content_type, sha256_hex=record.sha256, expires_in=settings.upload_url_ttl
    )


def _basename(name: str) -> str:
    return name.rsplit("/", 1)[-1]


def _closed(job_id: str) -> JobConflict:
    return JobConflict(
        f"job {job_id} takes no more files: it was created without more_files, or its last batch was added; "
        "start a new job",
        code="job_closed",
    )


def _too_many(job: Job, adding: int, limit: int) -> ValidationError:
    return ValidationError(
        f"job {job.job_id} holds {job.file_count:,} files; {adding:,} more would pass its limit of {limit:,} "
        "files (max_files_per_job, GET /)",
        code="invalid_file_count",
    )


_FILE_CURSOR = "file:"
_FILE_ID = re.compile(r"[A-Za-z0-9_-]{1,128}")


def _encode_file_cursor(file_id: str) -> str:
    """The cursor after ``file_id`` in GET /jobs/{id}'s pages: opaque to callers, not a secret."""
    return base64.urlsafe_b64encode((_FILE_CURSOR + file_id).encode()).decode().rstrip("=")


def _decode_file_cursor(cursor: str) -> str:
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (ValueError, UnicodeDecodeError):
        text = ""
    file_id = text.removeprefix(_FILE_CURSOR)
    if not text.startswith(_FILE_CURSOR) or not _FILE_ID.fullmatch(file_id):
        raise _bad_cursor()
    return file_id


def _bad_cursor() -> ValidationError:
    return ValidationError(
        "cursor is not a next_cursor of this job's pages: pass it as GET /jobs/{id} returned it",
        code="invalid_cursor",
    )


def _not_found(job_id: str) -> JobNotFound:
    return JobNotFound(f"no job with id {job_id!r}: check the id printed by 'squeezer upload'")
