"""In-memory twins of the ports, with the same conditional semantics."""

from __future__ import annotations

import base64
import hashlib
import io
import threading
from dataclasses import replace

from chalicelib.domain import AddOutcome, AddRefusal, Claim, FileRecord, FileState, Job, RangeClaim, RangeState
from chalicelib.errors import UploadConflict
from chalicelib.ports import ObjectStream, PresignedPost, PresignedRequest, UploadedPart
from chalicelib.tenants import Tenant, TenantExists, TokenRecord

_OPEN = {FileState.PENDING, FileState.QUEUED, FileState.PROCESSING}
_WAITING = {FileState.PENDING, FileState.QUEUED}


class InMemoryJobStore:
    def __init__(self) -> None:
        self.jobs: dict[str, Job] = {}
        self.files: dict[tuple[str, str], FileRecord] = {}
        self.leases: dict[tuple[str, str], tuple[str, float]] = {}
        # fan-out: ranges by (job, file, number), their holders, and each file's counted range numbers
        self.ranges: dict[tuple[str, str, int], object] = {}
        self.range_leases: dict[tuple[str, str, int], str] = {}
        self.counted: dict[tuple[str, str], set[int]] = {}
        self.batch_writes = 0
        self._lock = threading.Lock()

    def create_job(self, job, files):
        self.batch_writes += 1
        self.jobs[job.job_id] = job
        for record in files:
            self.files[(job.job_id, record.file_id)] = record

    def add_files(self, job, files, *, max_files, close):
        with self._lock:
            current = self.jobs.get(job.job_id)
            taken = sorted(r.name for r in files if (job.job_id, r.file_id) in self.files)
            if taken:
                return AddOutcome(AddRefusal.DUPLICATE, tuple(taken))
            if current is None or current.cancelled_at is not None or not current.more_files:
                return AddOutcome(AddRefusal.CLOSED)
            if current.file_count + len(files) > max_files:
                return AddOutcome(AddRefusal.FULL)
            self.jobs[job.job_id] = replace(
                current,
                file_count=current.file_count + len(files),
                total_size=current.total_size + sum(r.size for r in files),
                more_files=not close,
            )
            for record in files:
                self.files[(job.job_id, record.file_id)] = record
            return AddOutcome()

    def cancel_job(self, job_id, at):
        with self._lock:
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
        jobs = sorted(
            (j for j in self.jobs.values() if j.owner == owner), key=lambda j: (j.created_at, j.job_id), reverse=True
        )
        start = int(cursor) if cursor else 0
        page = jobs[start : start + limit]
        more = start + limit < len(jobs)
        return page, str(start + limit) if more else None

    def _change(self, job_id, file_id, allowed, token=None, **changes):
        with self._lock:
            key = (job_id, file_id)
            record = self.files.get(key)
            if record is None or record.state not in allowed:
                return None
            if token is not None and self.leases.get(key) != token:
                return None
            self.files[key] = record = replace(record, **changes)
            return record

    def record_upload_checksum(self, job_id, file_id, *, upload_id, crc64nvme):
        with self._lock:
            record = self.files.get((job_id, file_id))
            if record is None or record.upload_id != upload_id or record.state not in _WAITING:
                return False
            self.files[(job_id, file_id)] = replace(record, crc64nvme=crc64nvme)
            return True

    def mark_queued(self, job_id, file_id, at):
        return self._change(job_id, file_id, {FileState.PENDING}, state=FileState.QUEUED, queued_at=at) is not None

    def claim_file(self, job_id, file_id, *, token, at, lease_until):
        with self._lock:
            key = (job_id, file_id)
            record = self.files.get(key)
            if record is None:
                return Claim(False, None)
            # as DynamoDB's "lease_until < :at": a file without a lease (fanned out) is never taken over
            expired = (
                record.state is FileState.PROCESSING and record.lease_until is not None and record.lease_until < at
            )
            if record.state not in (FileState.PENDING, FileState.QUEUED) and not expired:
                return Claim(False, record)
            self.leases[key] = token
            self.files[key] = record = replace(
                record,
                state=FileState.PROCESSING,
                started_at=at,
                queued_at=record.queued_at or at,
                attempts=record.attempts + 1,
                lease_until=lease_until,
            )
            return Claim(True, record)

    def renew_claim(self, job_id, file_id, *, token, lease_until):
        return self._change(job_id, file_id, {FileState.PROCESSING}, token=token, lease_until=lease_until) is not None

    def _drop_lease(self, job_id, file_id, done):
        if done is not None:
            self.leases.pop((job_id, file_id), None)
        return done is not None

    def complete_file(
        self, job_id, file_id, *, token, at, compressed_size, crc32, result_key, compress_seconds, result_crc64nvme=None
    ):
        done = self._change(
            job_id,
            file_id,
            {FileState.PROCESSING},
            token=token,
            state=FileState.COMPLETED,
            compressed_size=compressed_size,
            crc32=crc32,
            result_crc64nvme=result_crc64nvme,
            result_key=result_key,
            finished_at=at,
            compress_seconds=compress_seconds,
            error=None,
            lease_until=None,
        )
        if done is None:  # a retried write that had landed: same answer as the first
            current = self.files.get((job_id, file_id))
            return current is not None and current.state is FileState.COMPLETED and current.result_key == result_key
        return self._drop_lease(job_id, file_id, done)

    def complete_files(self, completions):
        return [
            self.complete_file(
                c.job_id,
                c.file_id,
                token=c.token,
                at=c.at,
                compressed_size=c.compressed_size,
                crc32=c.crc32,
                result_key=c.result_key,
                compress_seconds=c.compress_seconds,
                result_crc64nvme=c.result_crc64nvme,
            )
            for c in completions
        ]

    def release_file(self, job_id, file_id, *, token, error, at):
        return self._drop_lease(
            job_id,
            file_id,
            self._change(
                job_id,
                file_id,
                {FileState.PROCESSING},
                token=token,
                state=FileState.QUEUED,
                error=error,
                queued_at=at,
                lease_until=None,
            ),
        )

    def fail_file(self, job_id, file_id, *, error, at, token=None):
        if token is None:
            current = self.files.get((job_id, file_id))
            if current is not None and current.held_at(at):
                return False
            # as DynamoDB's "lease_until < :at": a processing file without a lease (fanned out) is not taken
            if current is not None and current.state is FileState.PROCESSING and current.lease_until is None:
                return False
        allowed = {FileState.PROCESSING} if token is not None else _OPEN
        return self._drop_lease(
            job_id,
            file_id,
            self._change(
                job_id,
                file_id,
                allowed,
                token=token,
                state=FileState.FAILED,
                error=error,
                finished_at=at,
                lease_until=None,
            ),
        )

    def cancel_file(self, job_id, file_id, at):
        return self._drop_lease(
            job_id,
            file_id,
            self._change(job_id, file_id, _OPEN, state=FileState.CANCELLED, finished_at=at, lease_until=None),
        )

    def requeue_file(self, job_id, file_id, *, error_codes, at):
        with self._lock:
            record = self.files.get((job_id, file_id))
            if (
                record is None
                or record.state is not FileState.FAILED
                or record.error is None
                or record.error.code not in set(error_codes)
            ):
                return False
            self.files[(job_id, file_id)] = replace(
                record,
                state=FileState.QUEUED,
                queued_at=at,
                finished_at=None,
                fanout_upload_id=None,
                fanout_key=None,
                range_size=None,
                range_count=None,
                ranges_done=0,
                dispatched_at=None,
            )
            self.counted.pop((job_id, file_id), None)
            return True

    # -- fan-out ----------------------------------------------------------------------------
    def start_fanout(self, job_id, file_id, *, token, upload_id, result_key, ranges):
        with self._lock:
            for item in ranges:
                self.ranges[(job_id, file_id, item.number)] = item
                self.range_leases.pop((job_id, file_id, item.number), None)
        self.counted.pop((job_id, file_id), None)
        return (
            self._change(
                job_id,
                file_id,
                {FileState.PROCESSING},
                token=token,
                fanout_upload_id=upload_id,
                fanout_key=result_key,
                range_size=max((r.length for r in ranges), default=0),
                range_count=len(ranges),
                ranges_done=0,
                dispatched_at=None,
            )
            is not None
        )

    def finish_dispatch(self, job_id, file_id, *, token, at):
        with self._lock:
            record = self.files.get((job_id, file_id))
            if record is None or record.fanout_upload_id is None:
                return False
        done = self._change(job_id, file_id, {FileState.PROCESSING}, token=token, dispatched_at=at, lease_until=None)
        return self._drop_lease(job_id, file_id, done)

    def claim_range(self, job_id, file_id, number, *, token, at, lease_until):
        with self._lock:
            key = (job_id, file_id, number)
            item = self.ranges.get(key)
            if item is None:
                return RangeClaim(False, None)
            expired = item.state is RangeState.PROCESSING and (item.lease_until or 0) < at
            if item.state is not RangeState.PENDING and not expired:
                return RangeClaim(False, item)
            self.range_leases[key] = token
            self.ranges[key] = item = replace(
                item, state=RangeState.PROCESSING, lease_until=lease_until, attempts=item.attempts + 1
            )
            return RangeClaim(True, item)

    def _change_range(self, job_id, file_id, number, token, **changes):
        with self._lock:
            key = (job_id, file_id, number)
            item = self.ranges.get(key)
            if item is None or item.state is not RangeState.PROCESSING or self.range_leases.get(key) != token:
                return None
            self.ranges[key] = item = replace(item, **changes)
            if item.state is not RangeState.PROCESSING:
                self.range_leases.pop(key, None)
            return item

    def renew_range(self, job_id, file_id, number, *, token, lease_until):
        record = self.files.get((job_id, file_id))
        if record is None or record.state is not FileState.PROCESSING:
            return False  # the transaction's condition check on the file
        return self._change_range(job_id, file_id, number, token, lease_until=lease_until) is not None

    def release_range(self, job_id, file_id, number, *, token, error):
        changes = {"state": RangeState.PENDING, "lease_until": None}
        if error is not None:
            changes["error"] = error
        return self._change_range(job_id, file_id, number, token, **changes) is not None

    def complete_range(self, job_id, file_id, number, *, token, etag, part_size, crc32, crc64nvme, compress_seconds):
        done = self._change_range(
            job_id,
            file_id,
            number,
            token,
            state=RangeState.DONE,
            lease_until=None,
            error=None,
            etag=etag,
            part_size=part_size,
            crc32=crc32,
            crc64nvme=crc64nvme,
            compress_seconds=compress_seconds,
        )
        if done is None:
            current = self.ranges.get((job_id, file_id, number))
            return current is not None and current.state is RangeState.DONE and current.etag == etag
        return True

    def count_range(self, job_id, file_id, number, *, upload_id):
        with self._lock:
            record = self.files.get((job_id, file_id))
            if record is None or record.state is not FileState.PROCESSING or record.fanout_upload_id != upload_id:
                return None
            counted = self.counted.setdefault((job_id, file_id), set())
            if number in counted:
                return record
            counted.add(number)
            self.files[(job_id, file_id)] = record = replace(record, ranges_done=record.ranges_done + 1)
            return record

    def list_ranges(self, job_id, file_id):
        return sorted(
            (r for (j, f, _), r in self.ranges.items() if (j, f) == (job_id, file_id)), key=lambda r: r.number
        )

    def complete_fanout(self, job_id, file_id, *, upload_id, at, compressed_size, crc32, result_key, compress_seconds):
        with self._lock:
            record = self.files.get((job_id, file_id))
            if (
                record is None
                or record.state is not FileState.PROCESSING
                or record.fanout_upload_id != upload_id
                or record.ranges_done != record.range_count
            ):
                return record is not None and record.state is FileState.COMPLETED and record.result_key == result_key
            self.files[(job_id, file_id)] = replace(
                record,
                state=FileState.COMPLETED,
                compressed_size=compressed_size,
                crc32=crc32,
                result_key=result_key,
                finished_at=at,
                compress_seconds=compress_seconds,
                error=None,
                lease_until=None,
            )
            return True

    def fail_fanout(self, job_id, file_id, *, upload_id, error, at):
        with self._lock:
            record = self.files.get((job_id, file_id))
            if record is None or record.state is not FileState.PROCESSING or record.fanout_upload_id != upload_id:
                return False
            self.files[(job_id, file_id)] = replace(
                record, state=FileState.FAILED, error=error, finished_at=at, lease_until=None
            )
            self.leases.pop((job_id, file_id), None)
            return True


class FakeWriter:
    def __init__(self, storage: InMemoryStorage, key: str, content_type: str, metadata: dict) -> None:
        self._storage, self._key, self._metadata = storage, key, metadata
        self._content_type = content_type
        self._buffer = io.BytesIO()
        self.size = 0
        self.aborted = False

    def write(self, data):
        self._buffer.write(data)
        self.size += len(data)
        return len(data)

    def close(self, *, tags=None):
        self._storage._store(self._key, self._buffer.getvalue(), self._content_type, self._metadata, tags)
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
        chunk = self._data[self._pos : self._pos + (size if size > 0 else len(self._data))]
        self._pos += len(chunk)
        return chunk


class InMemoryStorage:
    """S3Storage's twin; tests/adapters/test_storage.py holds the two to one contract."""

    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}
        self.content_types: dict[str, str] = {}
        self.metadata: dict[str, dict] = {}
        self.tags: dict[str, dict] = {}
        self.aborted: list[str] = []
        self.read_faults: dict[str, list[Exception]] = {}
        self.uploads: dict[str, dict] = {}
        self.aborted_uploads: list[str] = []
        self.range_reads: list[tuple[str, int, int]] = []
        self.part_uploads: list[tuple[str, int]] = []
        self.batch_deletes: list[list[str]] = []

    def presign_upload(self, key, *, size, content_type, sha256_hex, expires_in):
        headers = {"Content-Length": str(size), "Content-Type": content_type}
        if sha256_hex:  # S3 takes the digest in base64, as S3Storage signs it
            headers["x-amz-checksum-sha256"] = base64.b64encode(bytes.fromhex(sha256_hex)).decode("ascii")
        return PresignedRequest("PUT", f"https://fake-s3/{key}?signed", headers, expires_in)

    def presign_post(self, key, *, size, content_type, sha256_hex, expires_in):
        """S3Storage's form, in the same order: its own fields, the key, then the signature's."""
        fields = {"Content-Type": content_type}
        if sha256_hex:
            fields["x-amz-checksum-sha256"] = base64.b64encode(bytes.fromhex(sha256_hex)).decode("ascii")
        fields.update({"key": key, "policy": f"fake-policy;size={size}", "x-amz-signature": "fake"})
        return PresignedPost("https://fake-s3/", fields, expires_in)

    def presign_download(self, key, *, filename, expires_in):
        return f"https://fake-s3/{key}?download={filename}"

    # -- clients' multipart uploads: parts arrive through put_part (what a client's PUT to a part URL does)
    def start_multipart(self, key, *, content_type):
        upload_id = f"up-{len(self.uploads) + 1}"
        self.uploads[upload_id] = {"key": key, "content_type": content_type, "parts": {}}
        return upload_id

    def presign_part(self, key, *, upload_id, number, size, crc64nvme, expires_in):
        headers = {"Content-Length": str(size), "x-amz-checksum-crc64nvme": crc64nvme}
        return PresignedRequest(
            "PUT", f"https://fake-s3/{key}?uploadId={upload_id}&partNumber={number}", headers, expires_in
        )

    def put_part(self, upload_id, number, data, crc64nvme=None):
        """A client's part arriving: S3 checks its CRC64NVME when one is sent."""
        from chalicelib import multipart

        actual = multipart.encode(multipart.crc64nvme(data))
        if crc64nvme is not None and crc64nvme != actual:
            raise ValueError("BadDigest")
        self.uploads[upload_id]["parts"][number] = (bytes(data), actual)

    def _upload(self, upload_id):
        if upload_id not in self.uploads:
            raise UploadConflict("the multipart upload is no more", code="upload_gone")
        return self.uploads[upload_id]

    def list_parts(self, key, *, upload_id):
        parts = self._upload(upload_id)["parts"]
        return [
            UploadedPart(number=n, size=len(data), etag=f'"etag-{n}"', crc64nvme=crc)
            for n, (data, crc) in sorted(parts.items())
        ]

    def complete_multipart(self, key, *, upload_id, parts, crc64nvme):
        from chalicelib import multipart

        upload = self._upload(upload_id)
        data = b"".join(upload["parts"][p.number][0] for p in parts)
        if multipart.encode(multipart.crc64nvme(data)) != crc64nvme:
            raise UploadConflict("S3 refused the whole file's CRC64NVME", code="checksum_mismatch")
        del self.uploads[upload_id]
        self._store(upload["key"], data, upload["content_type"], {}, None)

    def abort_multipart(self, key, *, upload_id):
        if self.uploads.pop(upload_id, None) is not None:
            self.aborted_uploads.append(upload_id)  # a second abort of a gone upload is a no-op, as on S3

    # -- fanned-out results: parts arrive through upload_part, as S3Storage sends them
    def open_read_range(self, key, *, offset, length):
        if key not in self.objects:
            return None
        data = self.objects[key][offset : offset + length]
        faults = self.read_faults.get(key)
        body = FaultyReader(data, faults.pop(0), after=1) if faults else io.BytesIO(data)
        self.range_reads.append((key, offset, length))
        return ObjectStream(body=body, size=len(data))

    def object_size(self, key):
        return len(self.objects[key]) if key in self.objects else None

    def start_result_upload(self, key, *, content_type, metadata):
        upload_id = f"result-{len(self.uploads) + len(self.aborted_uploads) + 1}"
        self.uploads[upload_id] = {"key": key, "content_type": content_type, "metadata": dict(metadata), "parts": {}}
        return upload_id

    def upload_part(self, key, *, upload_id, number, body, size):
        upload = self._upload(upload_id)
        body.seek(0)
        data = body.read()
        if len(data) != size:
            raise ValueError(f"part {number}: {len(data)} bytes sent, {size} declared")
        etag = '"' + hashlib.md5(data).hexdigest() + '"'
        upload["parts"][number] = (data, etag)
        self.part_uploads.append((upload_id, number))
        return etag

    def complete_parts(self, key, *, upload_id, parts, tags=None):
        """As S3: the named parts with their ETags, in order, each but the last at least 5 MiB."""
        upload = self._upload(upload_id)
        held = upload["parts"]
        numbers = [n for n, _ in parts]
        if numbers != sorted(numbers):
            raise UploadConflict("S3 refused the parts: InvalidPartOrder", code="parts_refused")
        for index, (number, etag) in enumerate(parts):
            if number not in held or held[number][1] != etag:
                raise UploadConflict(f"S3 refused the parts: InvalidPart {number}", code="parts_refused")
            if index < len(parts) - 1 and len(held[number][0]) < 5 * 1024 * 1024:
                raise UploadConflict(f"S3 refused the parts: EntityTooSmall {number}", code="parts_refused")
        del self.uploads[upload_id]
        data = b"".join(held[n][0] for n, _ in parts)
        self._store(upload["key"], data, upload["content_type"], upload.get("metadata", {}), tags)

    def open_read(self, key):
        if key not in self.objects:
            return None
        data = self.objects[key]
        faults = self.read_faults.get(key)
        body = FaultyReader(data, faults.pop(0), after=1) if faults else io.BytesIO(data)
        return ObjectStream(body=body, size=len(data))

    def open_writer(self, key, *, content_type, metadata):
        return FakeWriter(self, key, content_type, metadata)

    def exists(self, key):
        return key in self.objects

    def put_bytes(self, key, data, *, content_type):
        self._store(key, bytes(data), content_type, {}, None)

    def delete(self, key):
        for table in (self.objects, self.content_types, self.metadata, self.tags):
            table.pop(key, None)

    def delete_many(self, keys):
        self.batch_deletes.append(list(keys))
        for key in keys:
            self.delete(key)

    def _store(self, key, data, content_type, metadata, tags):
        """A whole object, as a PUT replaces one: body, type, metadata and tags together."""
        self.objects[key] = data
        self.content_types[key] = content_type
        self.metadata[key] = dict(metadata)
        self.tags[key] = dict(tags or {})


class GatedBody:
    """A body whose reads after the first wait for ``gate`` (fault tests hold a delivery mid-file with it)."""

    def __init__(self, body, gate) -> None:
        self._body, self._gate, self._first = body, gate, True

    def read(self, size=-1):
        if not self._first:
            assert self._gate.wait(20), "test gate never opened"
        self._first = False
        return self._body.read(size)

    def close(self):
        self._body.close()


class FakeWorkQueue:
    def __init__(self) -> None:
        self.delays: list[tuple[str, int]] = []
        self.sent: list[tuple[str, str]] = []
        self.range_batches: list[list[str]] = []

    @property
    def range_bodies(self) -> list[str]:
        return [body for batch in self.range_batches for body in batch]

    def delay(self, receipt_handle, seconds):
        self.delays.append((receipt_handle, seconds))

    def send_upload(self, bucket, key):
        self.sent.append((bucket, key))

    def send_ranges(self, bodies):
        self.range_batches.append(list(bodies))


class InMemoryTenantStore:
    """TenantStore in memory, with the DynamoDB adapter's conditions (tests/adapters/test_tenantstore.py)."""

    def __init__(self) -> None:
        self.tenants: dict[str, Tenant] = {}
        self.names: dict[str, str] = {}
        self.tokens: dict[str, TokenRecord] = {}
        self.days: dict[tuple[str, str], int] = {}
        self.token_reads = 0
        self._lock = threading.Lock()

    def create_tenant(self, tenant, token):
        with self._lock:
            if tenant.name in self.names or tenant.tenant_id in self.tenants or token.token_id in self.tokens:
                raise TenantExists(f"a tenant named {tenant.name!r} exists already")
            self.names[tenant.name] = tenant.tenant_id
            self.tenants[tenant.tenant_id] = tenant
            self.tokens[token.token_id] = token

    def get_tenant(self, tenant_id):
        return self.tenants.get(tenant_id)

    def find_tenant(self, name):
        tenant_id = self.names.get(name)
        return self.tenants.get(tenant_id) if tenant_id else None

    def list_tenants(self):
        return list(self.tenants.values())

    def get_token(self, token_id):
        self.token_reads += 1
        return self.tokens.get(token_id)

    def touch_token(self, token_id, *, at, unless_after):
        with self._lock:
            token = self.tokens.get(token_id)
            if token and (token.last_used_at is None or token.last_used_at < unless_after):
                self.tokens[token_id] = replace(token, last_used_at=at)

    def replace_token(self, tenant, token, *, at):
        with self._lock:
            current = self.tenants.get(tenant.tenant_id)
            if current is None or current.token_id != tenant.token_id or current.revoked_at is not None:
                return False
            if token.token_id in self.tokens:
                return False
            self.tokens[token.token_id] = token
            old = self.tokens[tenant.token_id]
            self.tokens[tenant.token_id] = replace(old, revoked_at=at)
            self.tenants[tenant.tenant_id] = replace(current, token_id=token.token_id)
            return True

    def revoke_tenant(self, tenant, *, at):
        with self._lock:
            current = self.tenants[tenant.tenant_id]
            self.tenants[tenant.tenant_id] = replace(current, revoked_at=current.revoked_at or at)
            token = self.tokens[tenant.token_id]
            self.tokens[tenant.token_id] = replace(token, revoked_at=token.revoked_at or at)

    def set_limits(self, tenant_id, limits):
        with self._lock:
            self.tenants[tenant_id] = replace(self.tenants[tenant_id], limits=limits)

    def reserve_bytes(self, tenant_id, day, amount, *, limit, expires_at):
        with self._lock:
            used = self.days.get((tenant_id, day), 0)
            if used + amount > limit:
                return used
            self.days[(tenant_id, day)] = used + amount
            return None

    def release_bytes(self, tenant_id, day, amount):
        with self._lock:
            if (tenant_id, day) in self.days:
                self.days[(tenant_id, day)] -= amount

    def add_open_job(self, tenant_id, job_id, *, limit):
        with self._lock:
            tenant = self.tenants.get(tenant_id)
            if tenant is None or len(tenant.open_jobs) >= limit:
                return False
            self.tenants[tenant_id] = replace(tenant, open_jobs=tenant.open_jobs | {job_id})
            return True

    def remove_open_jobs(self, tenant_id, job_ids):
        with self._lock:
            tenant = self.tenants.get(tenant_id)
            if tenant is not None:
                self.tenants[tenant_id] = replace(tenant, open_jobs=tenant.open_jobs - set(job_ids))
