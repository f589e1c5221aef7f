"""JSON shapes of the API's responses, built from the models in ``schemas.py`` (which the OpenAPI document describes)."""

from __future__ import annotations

from typing import Any

from . import SERVICE_NAME, __version__
from . import schemas as s
from .domain import OPEN_FILE_STATES, FileRecord, FileState, Job, JobSummary
from .multipart import CHECKSUM_ALGORITHM, MAX_PARTS_PER_SIGNING
from .ports import PresignedPost, PresignedUpload
from .service import AddedFiles, CreatedJob, JobPage, JobStatus, RetryOutcome
from .settings import Settings
from .uploads import PartsOnFile, SignedPart

Json = dict[str, Any]

# The routes GET / lists (the OpenAPI document at /openapi.json has them all, with their shapes).
LINKS = {
    "create_job": ("POST", "/jobs"),
    "add_files": ("POST", "/jobs/{job_id}/files"),
    "list_jobs": ("GET", "/jobs"),
    "job_status": ("GET", "/jobs/{job_id}"),
    "job_summary": ("GET", "/jobs/{job_id}/summary"),
    "cancel_job": ("DELETE", "/jobs/{job_id}"),
    "retry_job": ("POST", "/jobs/{job_id}/retry"),
    "sign_parts": ("POST", "/jobs/{job_id}/files/{file_id}/parts"),
    "list_parts": ("GET", "/jobs/{job_id}/files/{file_id}/parts"),
    "complete_upload": ("POST", "/jobs/{job_id}/files/{file_id}/complete"),
    "abort_upload": ("DELETE", "/jobs/{job_id}/files/{file_id}/upload"),
    "renew_upload": ("POST", "/jobs/{job_id}/files/{file_id}/upload"),
    "openapi": ("GET", "/openapi.json"),
    "docs": ("GET", "/docs"),
    "app": ("GET", "/app"),
}


def _json(model: s.Response) -> Json:
    return model.model_dump(mode="json")


def index(settings: Settings) -> Json:
    return _json(
        s.IndexOut(
            service=SERVICE_NAME,
            version=__version__,
            limits=s.Limits(
                max_files_per_job=settings.max_files_per_job,
                max_files_per_request=min(settings.max_files_per_request, settings.max_files_per_job),
                max_file_size=settings.max_file_size,
                multipart_threshold=settings.multipart_threshold,
                max_post_size=settings.max_post_size,
                max_parts_per_signing=MAX_PARTS_PER_SIGNING,
                max_status_page=settings.max_status_page,
            ),
            authentication=(
                "every link but this one, openapi, docs and app needs 'Authorization: Bearer <token>' (a tenant's token)"
            ),
            links={name: s.Link(method=method, href=href) for name, (method, href) in LINKS.items()},
        )
    )


def created_job(created: CreatedJob) -> Json:
    job = created.job
    return _json(
        s.CreatedJobOut(
            job_id=job.job_id,
            algorithm=job.algorithm,
            level=job.level,
            created_at=job.created_at,
            status_url=f"/jobs/{job.job_id}",
            more_files=job.more_files,
            files=_created_files(created.files),
        )
    )


def added_files(added: AddedFiles) -> Json:
    job = added.job
    return _json(
        s.AddedFilesOut(
            job_id=job.job_id,
            file_count=job.file_count,
            total_size=job.total_size,
            more_files=job.more_files,
            files=_created_files(added.files),
        )
    )


def _created_files(files: list[tuple[FileRecord, PresignedUpload | None]]) -> list[s.CreatedFile]:
    return [
        s.CreatedFile(
            file_id=record.file_id,
            name=record.name,
            size=record.size,
            upload=_upload(upload) if upload else None,
            multipart=_plan(record),
        )
        for record, upload in files
    ]


def _upload(request: PresignedUpload) -> s.UploadRequest:
    """One shape for every signed request: a PUT (its headers; ``fields`` null) or a POST form."""
    if isinstance(request, PresignedPost):
        return s.UploadRequest(
            method="POST", url=request.url, headers={}, fields=dict(request.fields), expires_in=request.expires_in
        )
    return s.UploadRequest(
        method=request.method, url=request.url, headers=request.headers, fields=None, expires_in=request.expires_in
    )


def _plan(record: FileRecord) -> s.MultipartPlan | None:
    if not record.multipart:
        return None
    return s.MultipartPlan(
        upload_id=record.upload_id,
        part_size=record.part_size,
        part_count=record.part_count,
        checksum_algorithm=CHECKSUM_ALGORITHM,
    )


def signed_parts(parts: list[SignedPart]) -> Json:
    return _json(
        s.SignedPartsOut(
            parts=[s.SignedPartOut(part_number=part.number, **_upload(part.request).model_dump()) for part in parts]
        )
    )


def parts_on_file(found: PartsOnFile) -> Json:
    plan = _plan(found.record)
    return _json(
        s.PartsOut(
            **(plan.model_dump() if plan else {}),
            state=found.record.state,  # parts are listed only while the upload is open (pending)
            parts=[
                s.PartOut(part_number=p.number, size=p.size, etag=p.etag, crc64nvme=p.crc64nvme) for p in found.parts
            ],
        )
    )


def file_status(record: FileRecord) -> Json:
    """One file's status, without a download URL (the upload routes answer with it)."""
    return _json(_file(record, None))


def renewed_upload(record: FileRecord, request: PresignedUpload) -> Json:
    return _json(
        s.RenewedUploadOut(file_id=record.file_id, name=record.name, size=record.size, upload=_upload(request))
    )


def _job_state(job: Job, summary: JobSummary, files: int, counts: dict[str, int]) -> dict[str, Any]:
    """What GET /jobs/{id} and its summary share: the header, state, counts, totals and end."""
    return {
        **_job_header(job).model_dump(),
        "state": summary.state,
        "counts": counts,
        "totals": s.Totals(files=files, bytes_in=summary.bytes_in, bytes_out=summary.bytes_out, ratio=summary.ratio),
        "finished_at": summary.finished_at,
    }


def job_status(status: JobStatus) -> Json:
    return _json(
        s.JobStatusOut(
            **_job_state(status.job, status.summary, status.file_count, status.summary.counts),
            files=[_file(record, status.download_urls.get(record.file_id)) for record in status.files],
            next_cursor=status.next_cursor,
        )
    )


def job_summary(job: Job, summary: JobSummary) -> Json:
    open_files = sum(summary.counts[state.value] for state in OPEN_FILE_STATES)
    return _json(s.JobSummaryOut(**_job_state(job, summary, job.file_count, {**summary.counts, "open": open_files})))


def retry_outcome(outcome: RetryOutcome) -> Json:
    return _json(
        s.RetryOut(
            job_id=outcome.job.job_id,
            retried=[s.FileRef(file_id=r.file_id, name=r.name) for r in outcome.retried],
            skipped=[s.SkippedFile(file_id=r.file_id, name=r.name, reason=why) for r, why in outcome.skipped],
        )
    )


def job_page(page: JobPage) -> Json:
    return _json(s.JobPageOut(jobs=[_job_header(job) for job in page.jobs], next_cursor=page.next_cursor))


def _job_header(job: Job) -> s.JobHeader:
    return s.JobHeader(
        job_id=job.job_id,
        algorithm=job.algorithm,
        level=job.level,
        file_count=job.file_count,
        total_size=job.total_size,
        created_at=job.created_at,
        cancelled_at=job.cancelled_at,
        more_files=job.more_files,
    )


def _file(record: FileRecord, download_url: str | None) -> s.FileOut:
    def seconds(start: float | None, end: float | None) -> float | None:
        return round(end - start, 3) if start is not None and end is not None else None

    return s.FileOut(
        file_id=record.file_id,
        name=record.name,
        state=record.state,
        size=record.size,
        compressed_size=record.compressed_size,
        ratio=record.ratio,
        algorithm=record.algorithm,
        level=record.level,
        attempts=record.attempts,
        error=s.FileErrorOut(code=record.error.code, message=record.error.message) if record.error else None,
        timings=s.Timings(
            created_at=record.created_at,
            queued_at=record.queued_at,
            started_at=record.started_at,
            finished_at=record.finished_at,
            compress_seconds=record.compress_seconds,
            total_seconds=seconds(record.created_at, record.finished_at),
        ),
        checksum=s.Checksum(algorithm="crc64nvme", value=record.crc64nvme) if record.crc64nvme else None,
        mode=record.mode,
        mtime=record.mtime,
        result_crc64nvme=record.result_crc64nvme if record.state is FileState.COMPLETED else None,
        multipart=_plan(record),
        download_url=download_url,
        download_name=(record.name.rsplit("/", 1)[-1] + record.algorithm.extension if download_url else None),
    )
