"""JSON shapes of the API's responses (wire format lives here, not in routes)."""

from __future__ import annotations

from typing import Any

from . import SERVICE_NAME, __version__
from .domain import OPEN_FILE_STATES, FileRecord, Job, JobSummary
from .multipart import CHECKSUM_ALGORITHM, MAX_PARTS_PER_SIGNING
from .ports import PresignedPost, PresignedUpload
from .service import CreatedJob, JobPage, JobStatus, RetryOutcome
from .settings import Settings
from .uploads import PartsOnFile, SignedPart


def index(settings: Settings) -> dict[str, Any]:
    return {
        "service": SERVICE_NAME,
        "version": __version__,
        "limits": {
            "max_files_per_job": settings.max_files_per_job,
            "max_file_size": settings.max_file_size,
            "multipart_threshold": settings.multipart_threshold,
            "max_post_size": settings.max_post_size,
            "max_parts_per_signing": MAX_PARTS_PER_SIGNING,
        },
        "authentication": "every link needs 'Authorization: Bearer <token>' (a tenant's token)",
        "links": {
            "create_job": {"method": "POST", "href": "/jobs"},
            "list_jobs": {"method": "GET", "href": "/jobs"},
            "job_status": {"method": "GET", "href": "/jobs/{job_id}"},
            "job_summary": {"method": "GET", "href": "/jobs/{job_id}/summary"},
            "cancel_job": {"method": "DELETE", "href": "/jobs/{job_id}"},
            "retry_job": {"method": "POST", "href": "/jobs/{job_id}/retry"},
            "sign_parts": {"method": "POST", "href": "/jobs/{job_id}/files/{file_id}/parts"},
            "list_parts": {"method": "GET", "href": "/jobs/{job_id}/files/{file_id}/parts"},
            "complete_upload": {"method": "POST", "href": "/jobs/{job_id}/files/{file_id}/complete"},
            "abort_upload": {"method": "DELETE", "href": "/jobs/{job_id}/files/{file_id}/upload"},
            "renew_upload": {"method": "POST", "href": "/jobs/{job_id}/files/{file_id}/upload"},
        },
    }


def created_job(created: CreatedJob) -> dict[str, Any]:
    job = created.job
    return {
        "job_id": job.job_id,
        "algorithm": job.algorithm.value,
        "level": job.level,
        "created_at": job.created_at,
        "status_url": f"/jobs/{job.job_id}",
        "files": [
            {
                "file_id": record.file_id,
                "name": record.name,
                "size": record.size,
                "upload": presigned(upload) if upload else None,
                "multipart": multipart_plan(record),
            }
            for record, upload in created.files
        ],
    }


def presigned(request: PresignedUpload) -> dict[str, Any]:
    """One shape for every signed request: a PUT (its headers; ``fields`` null) or a POST form.

    A form is sent as ``multipart/form-data`` to ``url``: ``fields`` in their
    order, then the file last, in a field named ``file``; ``headers`` is empty.
    """
    if isinstance(request, PresignedPost):
        return {
            "method": request.method,
            "url": request.url,
            "headers": {},
            "fields": dict(request.fields),
            "expires_in": request.expires_in,
        }
    return {
        "method": request.method,
        "url": request.url,
        "headers": request.headers,
        "fields": None,
        "expires_in": request.expires_in,
    }


def multipart_plan(record: FileRecord) -> dict[str, Any] | None:
    if not record.multipart:
        return None
    return {
        "upload_id": record.upload_id,
        "part_size": record.part_size,
        "part_count": record.part_count,
        "checksum_algorithm": CHECKSUM_ALGORITHM,
    }


def signed_parts(parts: list[SignedPart]) -> dict[str, Any]:
    return {"parts": [{"part_number": part.number, **presigned(part.request)} for part in parts]}


def parts_on_file(found: PartsOnFile) -> dict[str, Any]:
    return {
        **(multipart_plan(found.record) or {}),
        "state": found.record.state.value,  # parts are listed only while the upload is open (pending)
        "parts": [
            {"part_number": p.number, "size": p.size, "etag": p.etag, "crc64nvme": p.crc64nvme} for p in found.parts
        ],
    }


def file_status(record: FileRecord) -> dict[str, Any]:
    """One file's status, without a download URL (the upload routes answer with it)."""
    return _file(record, None)


def renewed_upload(record: FileRecord, request: PresignedUpload) -> dict[str, Any]:
    return {"file_id": record.file_id, "name": record.name, "size": record.size, "upload": presigned(request)}


def job_status(status: JobStatus) -> dict[str, Any]:
    job, summary = status.job, status.summary
    return {
        **_job_header(job),
        "state": summary.state.value,
        "counts": summary.counts,
        "totals": {
            "files": len(status.files),
            "bytes_in": summary.bytes_in,
            "bytes_out": summary.bytes_out,
            "ratio": summary.ratio,
        },
        "finished_at": summary.finished_at,
        "files": [_file(record, status.download_urls.get(record.file_id)) for record in status.files],
    }


def job_summary(job: Job, summary: JobSummary) -> dict[str, Any]:
    open_files = sum(summary.counts[state.value] for state in OPEN_FILE_STATES)
    return {
        **_job_header(job),
        "state": summary.state.value,
        "counts": {**summary.counts, "open": open_files},
        "totals": {
            "files": job.file_count,
            "bytes_in": summary.bytes_in,
            "bytes_out": summary.bytes_out,
            "ratio": summary.ratio,
        },
        "finished_at": summary.finished_at,
    }


def retry_outcome(outcome: RetryOutcome) -> dict[str, Any]:
    return {
        "job_id": outcome.job.job_id,
        "retried": [{"file_id": r.file_id, "name": r.name} for r in outcome.retried],
        "skipped": [{"file_id": r.file_id, "name": r.name, "reason": why} for r, why in outcome.skipped],
    }


def job_page(page: JobPage) -> dict[str, Any]:
    return {"jobs": [_job_header(job) for job in page.jobs], "next_cursor": page.next_cursor}


def _job_header(job: Job) -> dict[str, Any]:
    return {
        "job_id": job.job_id,
        "algorithm": job.algorithm.value,
        "level": job.level,
        "file_count": job.file_count,
        "total_size": job.total_size,
        "created_at": job.created_at,
        "cancelled_at": job.cancelled_at,
    }


def _file(record: FileRecord, download_url: str | None) -> dict[str, Any]:
    def seconds(start: float | None, end: float | None) -> float | None:
        return round(end - start, 3) if start is not None and end is not None else None

    return {
        "file_id": record.file_id,
        "name": record.name,
        "state": record.state.value,
        "size": record.size,
        "compressed_size": record.compressed_size,
        "ratio": record.ratio,
        "algorithm": record.algorithm.value,
        "level": record.level,
        "attempts": record.attempts,
        "error": ({"code": record.error.code, "message": record.error.message} if record.error else None),
        "timings": {
            "created_at": record.created_at,
            "queued_at": record.queued_at,
            "started_at": record.started_at,
            "finished_at": record.finished_at,
            "compress_seconds": record.compress_seconds,
            "total_seconds": seconds(record.created_at, record.finished_at),
        },
        "checksum": {"algorithm": "crc64nvme", "value": record.crc64nvme} if record.crc64nvme else None,
        "multipart": multipart_plan(record),
        "download_url": download_url,
        "download_name": (record.name.rsplit("/", 1)[-1] + record.algorithm.extension if download_url else None),
    }
