"""In-memory twins of the ports, with the same conditional semantics."""
from __future__ import annotations

import io
import threading
from dataclasses import replace

from chalicelib.domain import FileError, FileRecord, FileState, Job
from chalicelib.storage import ObjectStream, PresignedRequest

_OPEN = {FileState.PENDING, FileState.QUEUED, FileState.PROCESSING}


class InMemoryJobStore:
    def __init__(self) -> None:
        self.jobs: dict[str, Job] = {}
        self.files: dict[tuple[str, str], FileRecord] = {}
        self.leases: dict[tuple[str, str], tuple[str, float]] = {}
        self.batch_writes = 0
        self._lock = threading.Lock()

    def create_job(self, job, files):
        self.batch_writes += 1
        self.jobs[job.job_id] = job
        for record in files:
            self.files[(job.job_id, record.file_id)] = record

    def cancel_job(self, job_id, at):
        job = self.jobs.get(job_id)
        if job is None or job.cancelled_at is not None:
            return False
        self.jobs[job_id] = replace(job, cancelled_at=at)
        return True

    def get_job(self, job_id):
        return self.jobs.get(job_id)

    def get_job_with_files(self, job_id):
        files = sorted((f for (j, _), f in self.files.items() if j == job_id), key=lambda f: f.name)
        return self.jobs.get(job_id), files

    def get_file_states(self, job_id):
        return self.get_job_with_files(job_id)[1]

    def get_file(self, job_id, file_id):
        return self.files.get((job_id, file_id))

    def list_jobs(self, owner, *, limit, cursor):
        jobs = sorted((j for j in self.jobs.values() if j.owner == owner),
                      key=lambda j: (j.created_at, j.job_id), reverse=True)
        start = int(cursor) if cursor else 0
        page = jobs[start:start + limit]
        more = start + limit < len(jobs)
        return page, str(start + limit) if more else None

    def _change(self, job_id, file_id, allowed, token=None, **changes):
        with self._lock:
            key = (job_id, file_id)
            record = self.files.get(key)
            if record is None or record.state not in allowed:
                return None
            if token is not None and self.leases.get(key, ("", 0))[0] != token:
                return None
            self.files[key] = record = replace(record, **changes)
            return record

    def mark_queued(self, job_id, file_id, at):
        return self._change(job_id, file_id, {FileState.PENDING}, state=FileState.QUEUED, queued_at=at) is not None

    def claim_file(self, job_id, file_id, *, token, at, lease_until):
        with self._lock:
            key = (job_id, file_id)
            record = self.files.get(key)
            if record is None:
                return None
            holder, until = self.leases.get(key, ("", 0))
            retakable = record.state is FileState.PROCESSING and (until < at or holder == token)
            if record.state not in (FileState.PENDING, FileState.QUEUED) and not retakable:
                return None
            self.leases[key] = (token, lease_until)
            self.files[key] = record = replace(record, state=FileState.PROCESSING, started_at=at,
                                               queued_at=record.queued_at or at, attempts=record.attempts + 1)
            return record

    def complete_file(self, job_id, file_id, *, token, at, compressed_size, crc32, result_key, compress_seconds):
        done = self._change(job_id, file_id, {FileState.PROCESSING}, token=token, state=FileState.COMPLETED,
                            compressed_size=compressed_size, crc32=crc32, result_key=result_key,
                            finished_at=at, compress_seconds=compress_seconds, error=None)
        self.leases.pop((job_id, file_id), None) if done else None
        return done is not None

    def release_file(self, job_id, file_id, *, token, error, at):
        done = self._change(job_id, file_id, {FileState.PROCESSING}, token=token, state=FileState.QUEUED,
                            error=error, queued_at=at)
        self.leases.pop((job_id, file_id), None) if done else None
        return done is not None

    def fail_file(self, job_id, file_id, *, error, at, token=None):
        allowed = {FileState.PROCESSING} if token is not None else _OPEN
        done = self._change(job_id, file_id, allowed, token=token, state=FileState.FAILED, error=error,
                            finished_at=at)
        self.leases.pop((job_id, file_id), None) if done else None
        return done is not None

    def cancel_file(self, job_id, file_id, at):
        done = self._change(job_id, file_id, _OPEN, state=FileState.CANCELLED, finished_at=at)
        self.leases.pop((job_id, file_id), None) if done else None
        return done is not None


class FakeWriter:
    def __init__(self, storage: "InMemoryStorage", key: str, metadata: dict) -> None:
        self._storage, self._key, self._metadata = storage, key, metadata
        self._buffer = io.BytesIO()
        self.size = 0
        self.aborted = False

    def write(self, data):
        self._buffer.write(data)
        self.size += len(data)
        return len(data)

    def close(self, *, tags=None):
        self._storage.objects[self._key] = self._buffer.getvalue()
        self._storage.metadata[self._key] = dict(self._metadata)
        self._storage.tags[self._key] = dict(tags or {})
        return self.size

    def abort(self):
        self.aborted = True
        self._storage.aborted.append(self._key)


class FaultyReader:
    def __init__(self, data: bytes, error: Exception, after: int) -> None:
        self._data, self._error, self._after, self._pos = data, error, after, 0

    def close(self):
        pass

    def read(self, size=-1):
        if self._pos >= self._after:
            raise self._error
        chunk = self._data[self._pos:self._pos + (size if size > 0 else len(self._data))]
        self._pos += len(chunk)
        return chunk


class InMemoryStorage:
    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}
        self.metadata: dict[str, dict] = {}
        self.tags: dict[str, dict] = {}
        self.aborted: list[str] = []
        self.read_faults: dict[str, list[Exception]] = {}

    def presign_upload(self, key, *, size, content_type, sha256_hex, expires_in):
        headers = {"Content-Length": str(size), "Content-Type": content_type}
        if sha256_hex:
            headers["x-amz-checksum-sha256"] = sha256_hex
        return PresignedRequest("PUT", f"https://fake-s3/{key}?signed", headers, expires_in)

    def presign_download(self, key, *, filename, expires_in):
        return f"https://fake-s3/{key}?download={filename}"

    def open_read(self, key):
        if key not in self.objects:
            return None
        data = self.objects[key]
        faults = self.read_faults.get(key)
        body = FaultyReader(data, faults.pop(0), after=1) if faults else io.BytesIO(data)
        return ObjectStream(body=body, size=len(data), etag="etag")

    def open_writer(self, key, *, content_type, metadata):
        return FakeWriter(self, key, metadata)

    def delete(self, key):
        self.objects.pop(key, None)

    def delete_prefix(self, prefix):
        keys = [k for k in self.objects if k.startswith(prefix)]
        for key in keys:
            del self.objects[key]
        return len(keys)


class FakeRetryQueue:
    def __init__(self) -> None:
        self.delays: list[tuple[str, int]] = []

    def delay(self, receipt_handle, seconds):
        self.delays.append((receipt_handle, seconds))
