"""Fan-out: one large file, many invocations, one result.

A zstd or gzip file above ``SQUEEZER_FANOUT_THRESHOLD`` (or one that would
not fit one invocation's time budget) is cut into ranges of
``SQUEEZER_RANGE_SIZE`` bytes. Each range is compressed by its own worker
invocation into one part of the result's multipart upload, in order:

    S3 event ──▶ FileProcessor claims the file ──▶ Dispatcher:
                   HEAD the upload; CreateMultipartUpload (the result);
                   write the ranges (pending); SendMessageBatch (one range
                   message each, to the ranges queue); mark the file fanned
                   out, drop its claim
    range message ──▶ RangeProcessor (one message per invocation of compress_range): claim the range (lease, heartbeat);
                   ranged GET; compress into a spooled temporary file,
                   verifying inline; pad to 5 MiB; UploadPart N; record the
                   range done (ETag, size, CRC32, CRC64NVME of its input);
                   count it on the file once
    the range whose count completes the set finishes: the combined
    CRC64NVME against the upload's, the seek table (zstd) as one last part,
    CompleteMultipartUpload with the recorded ETags, the file completed.

Exactly-once effect per range, as for files: a claim belongs to one
delivery, a live claim is never taken over, an expired one is; only the
holder records its range done; a range is counted once (the file keeps the
set of counted numbers). Compression is deterministic, so a part uploaded
again by a later holder has the same bytes and ETag; and a holder checks
its claim right before uploading. A cancel makes every range's renewal fail
(the renewal is a transaction that also checks the file): the range stops
and aborts the result upload. brotli streams cannot be joined: brotli files
are never fanned out (POST /jobs checks them whole).
"""

from __future__ import annotations

import io
import logging
import math
import os
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from . import multipart, throughput
from .codecs import CHUNK_SIZE, HashingReader, VerifyingSink, compress_stream
from .domain import Algorithm, FileError, FileRecord, FileState, RangeRecord, RangeState, now
from .errors import PermanentError, TransientError, UploadConflict
from .events import RangeDelivery, RangeTask, Upload, range_message
from .frames import seek_table, write_padding
from .heartbeat import Heartbeat, Interrupted, StopReason
from .keys import FileRef, ObjectKeys
from .ports import JobStore, ObjectStorage, WorkQueue
from .settings import Settings
from .streams import ReadAhead

log = logging.getLogger("squeezer.fanout")

MiB = 1024**2
GiB = 1024**3
MAX_RANGE_SIZE = GiB  # the seekable format's largest frame, and a range is one frame
MIN_RANGE_SIZE = MiB
FANOUT_ALGORITHMS = frozenset({Algorithm.ZSTD, Algorithm.GZIP})
# A range's output waits in a spooled temporary file (Lambda's /tmp) until
# it is uploaded as one part of known length: this much stays in memory.
SPOOL_MEMORY = MiB

RemainingMs = Callable[[], float]


class FanoutRefused(ValueError):
    """A file that cannot be cut into S3's 10,000 parts with ranges of at most 1 GiB."""


@dataclass(frozen=True)
class RangePlan:
    """``count`` ranges of ``range_size`` bytes (the last one smaller or equal) over ``size`` bytes."""

    size: int
    range_size: int
    count: int

    def length(self, number: int) -> int:
        if not 1 <= number <= self.count:
            raise ValueError(f"range {number} is outside 1..{self.count}")
        return self.range_size if number < self.count else self.size - self.range_size * (self.count - 1)

    def ranges(self, job_id: str, file_id: str) -> list[RangeRecord]:
        return [
            RangeRecord(job_id, file_id, n, offset=(n - 1) * self.range_size, length=self.length(n))
            for n in range(1, self.count + 1)
        ]


def max_ranges(algorithm: Algorithm) -> int:
    """Ranges per file: S3's 10,000 parts, less one for zstd's seek table."""
    return multipart.MAX_PARTS - 1 if algorithm is Algorithm.ZSTD else multipart.MAX_PARTS


def plan_ranges(size: int, range_size: int, algorithm: Algorithm) -> RangePlan:
    """Ranges of ``range_size``, grown (whole MiB) as the part limit needs, at most 1 GiB."""
    limit = max_ranges(algorithm)
    needed = math.ceil(math.ceil(size / limit) / MiB) * MiB
    chosen = max(range_size, needed)
    if chosen > MAX_RANGE_SIZE:
        largest = limit * MAX_RANGE_SIZE
        raise FanoutRefused(
            f"{throughput.format_size(size)} does not fit {limit:,} ranges of at most 1 GiB "
            f"(the largest file is {throughput.format_size(largest)} with {algorithm.value}); split the file"
        )
    return RangePlan(size=size, range_size=chosen, count=math.ceil(size / chosen))


def budget(settings: Settings) -> float:
    return throughput.budget_seconds(settings.worker_timeout_seconds, settings.stop_margin_ms)


def threads_for(size: int, settings: Settings) -> int:
    return throughput.worker_threads(
        size, compress_threads=settings.compress_threads, threads_min_size=settings.threads_min_size
    )


def plan_file(size: int, algorithm: Algorithm, level: int, settings: Settings) -> RangePlan | None:
    """The ranges a file is cut into, or None when one invocation compresses it whole.

    Fanned out: zstd and gzip files above the threshold, or whose estimate
    does not fit one invocation. A level too slow for the configured range
    size gets smaller ranges (whole MiB, the largest that fit). Raises
    FanoutRefused when 10,000 parts of 1 GiB are not enough.
    """
    algorithm = Algorithm(algorithm)
    if algorithm not in FANOUT_ALGORITHMS:
        return None
    seconds = budget(settings)
    fits_whole = (
        throughput.check_fits(algorithm, level, size, budget_seconds=seconds, threads=threads_for(size, settings))
        is None
    )
    if size <= settings.fanout_threshold and fits_whole:
        return None
    range_size = settings.range_size
    fitting = throughput.largest_size(algorithm, level, seconds) // MiB * MiB
    if fitting >= MIN_RANGE_SIZE:
        range_size = min(range_size, fitting)
    if size <= range_size:
        return None  # one range: the file's own invocation does it
    return plan_ranges(size, range_size, algorithm)


def range_fits(plan: RangePlan, algorithm: Algorithm, level: int, settings: Settings) -> throughput.TooSlow | None:
    """None if one range fits an invocation's budget, else what would."""
    return throughput.check_fits(
        algorithm,
        level,
        plan.range_size,
        budget_seconds=budget(settings),
        threads=threads_for(plan.range_size, settings),
    )


def highest_fanout_level(algorithm: Algorithm, size: int, settings: Settings) -> int | None:
    """The highest level of a fan-out codec at which a file of ``size`` is accepted (None: none is)."""
    low, high = algorithm.level_range
    for level in range(high, low - 1, -1):
        try:
            plan = plan_file(size, algorithm, level, settings)
        except FanoutRefused:
            return None
        if plan is None:
            fits = throughput.check(algorithm, level, size, budget(settings)) is None
        else:
            fits = range_fits(plan, algorithm, level, settings) is None
        if fits:
            return level
    return None


def result_metadata(record: FileRecord) -> dict[str, str]:
    """The result object's metadata (the same for one invocation or many)."""
    metadata = {
        "original-size": str(record.size),
        "algorithm": record.algorithm.value,
        "level": str(record.level),
        "job-id": record.job_id,
        "file-id": record.file_id,
    }
    if record.sha256:
        metadata["original-sha256"] = record.sha256
    if record.crc64nvme:
        metadata["original-crc64nvme"] = record.crc64nvme
    return metadata


def content_type(algorithm: Algorithm) -> str:
    return "application/" + algorithm.value


# -- dispatch: the delivery of a big file's S3 event ------------------------------------------


class Dispatcher:
    """Starts a file's fan-out for the delivery that holds its claim.

    ``queue`` is the ranges queue: its event source hands each range message
    to an invocation of its own, so the ranges run in parallel.
    """

    def __init__(
        self,
        store: JobStore,
        storage: ObjectStorage,
        queue: WorkQueue,
        settings: Settings,
        *,
        clock: Callable[[], float] = now,
    ) -> None:
        self._store = store
        self._storage = storage
        self._queue = queue
        self._keys = ObjectKeys(settings.uploads_prefix, settings.results_prefix)
        self._clock = clock

    def dispatch(self, upload: Upload, record: FileRecord, token: str, plan: RangePlan) -> bool:
        """Create the result upload and ranges, send one message per range; False if the claim was lost.

        A file taken again after a dispatch that did not finish (its claim
        released after an error, or expired) keeps its upload and ranges:
        the messages of the ranges not done yet are sent again.
        """
        ref = upload.ref
        size = self._storage.object_size(upload.key)
        if size is None:
            raise PermanentError(
                f"the uploaded object for {record.name!r} is gone; upload the file again in a new job",
                code="object_missing",
            )
        if size != record.size:
            raise PermanentError(
                f"{record.name!r} was declared as {record.size} bytes but {size} bytes were uploaded",
                code="size_mismatch",
            )
        if record.fanout_upload_id is None:
            result_key = self._keys.result(ref, token, record.algorithm)
            upload_id = self._storage.start_result_upload(
                result_key, content_type=content_type(record.algorithm), metadata=result_metadata(record)
            )
            try:
                started = self._store.start_fanout(
                    ref.job_id,
                    ref.file_id,
                    token=token,
                    upload_id=upload_id,
                    result_key=result_key,
                    ranges=plan.ranges(ref.job_id, ref.file_id),
                )
            except BaseException:
                self._storage.abort_multipart(result_key, upload_id=upload_id)
                raise
            if not started:
                self._storage.abort_multipart(result_key, upload_id=upload_id)
                return False
            numbers = list(range(1, plan.count + 1))
        else:
            numbers = [
                r.number
                for r in self._store.list_ranges(ref.job_id, ref.file_id)
                if r.state is not RangeState.DONE and r.number <= (record.range_count or 0)
            ]
        self._queue.send_ranges([range_message(RangeTask(ref, number)) for number in numbers])
        sent = self._store.finish_dispatch(ref.job_id, ref.file_id, token=token, at=self._clock())
        log.info(
            "file %s/%s fanned out: %d range message(s) sent (%d ranges of %s)",
            ref.job_id,
            ref.file_id,
            len(numbers),
            plan.count,
            throughput.format_size(plan.range_size),
        )
        return sent


def plan_of(record: FileRecord, settings: Settings) -> RangePlan | None:
    """The plan a file is (or was already) fanned out with; None for one invocation."""
    if record.fanout_upload_id is not None and record.range_size and record.range_count:
        return RangePlan(size=record.size, range_size=record.range_size, count=record.range_count)
    try:
        return plan_file(record.size, record.algorithm, record.level, settings)
    except FanoutRefused:
        return None  # the API refuses these; settings changed since: one invocation tries


# -- one range, one delivery ------------------------------------------------------------------


@dataclass(frozen=True)
class _RangeOutput:
    etag: str
    part_size: int
    crc32: int
    crc64nvme: str
    seconds: float


class RangeProcessor:
    """One range message, one delivery: claim the range, compress it into its part, count it, maybe finish."""

    def __init__(
        self,
        store: JobStore,
        storage: ObjectStorage,
        queue: WorkQueue | None,
        settings: Settings,
        *,
        clock: Callable[[], float] = now,
        token_factory: Callable[[], str] = lambda: uuid.uuid4().hex,
    ) -> None:
        self._store = store
        self._storage = storage
        self._queue = queue
        self._settings = settings
        self._keys = ObjectKeys(settings.uploads_prefix, settings.results_prefix)
        self._clock = clock
        self._token = token_factory

    def process(
        self, task: RangeTask, delivery: RangeDelivery | None = None, remaining_ms: RemainingMs | None = None
    ) -> int | None:
        """None when this delivery is done with the range, else seconds before its message comes back.

        Raises TransientError to ask for a retry with backoff.
        """
        ref = task.ref
        record = self._store.get_file(ref.job_id, ref.file_id)
        if record is None:
            log.warning("range %d names no known file %s/%s; dropped", task.number, ref.job_id, ref.file_id)
            return None
        if record.state.is_final:
            self._abort_if_stopped(record)
            return None
        if record.state is not FileState.PROCESSING or record.fanout_upload_id is None or not record.fanout_key:
            # its file is being dispatched again (a released claim): look again soon
            return self._settings.retry_base_delay
        token = self._token()
        at = self._clock()
        claim = self._store.claim_range(
            ref.job_id, ref.file_id, task.number, token=token, at=at, lease_until=at + self._settings.lease_seconds
        )
        if not claim.won or claim.range is None:
            return self._not_claimed(record, task, claim.range, at)
        part = claim.range
        heartbeat = Heartbeat(
            self._store,
            self._queue,
            ref,
            token=token,
            receipt_handle=delivery.receipt_handle if delivery else None,
            interval=self._settings.heartbeat_seconds,
            lease_seconds=self._settings.lease_seconds,
            remaining_ms=remaining_ms,
            stop_margin_ms=self._settings.stop_margin_ms,
            clock=self._clock,
            renew=lambda until: self._store.renew_range(
                ref.job_id, ref.file_id, task.number, token=token, lease_until=until
            ),
            label=f"range {task.number} of file {ref.job_id}/{ref.file_id}",
        )
        try:
            with heartbeat:
                output = self._compress(ref, record, part, token, heartbeat)
        except Interrupted as stop:
            return self._interrupted(record, part, token, stop.reason)
        except Exception as exc:  # noqa: BLE001 - classified: the file fails now, or the range is retried
            from .worker import classify

            error = classify(exc)
            if isinstance(error, PermanentError):
                self._fail(record, FileError(error.code, f"range {part.number}: {error.message}"))
                return None
            log.warning("range %d of %s/%s: %s", part.number, ref.job_id, ref.file_id, error.message)
            self._store.release_range(
                ref.job_id, ref.file_id, part.number, token=token, error=FileError(error.code, error.message)
            )
            raise error from exc
        try:
            done = self._store.complete_range(
                ref.job_id,
                ref.file_id,
                part.number,
                token=token,
                etag=output.etag,
                part_size=output.part_size,
                crc32=output.crc32,
                crc64nvme=output.crc64nvme,
                compress_seconds=output.seconds,
            )
        except Exception as exc:  # noqa: BLE001 - unknown outcome: the claim expires and another delivery redoes it
            raise TransientError(f"could not record range {part.number}: {exc}", code="aws_error") from exc
        if not done:
            log.info("range %d of %s/%s: claim lost before recording; stopped", part.number, ref.job_id, ref.file_id)
            self._abort_if_stopped(self._store.get_file(ref.job_id, ref.file_id))
            return None
        log.info(
            "range %d of %s/%s done (pid %d): %d bytes into a part of %d bytes in %.2f s",
            part.number,
            ref.job_id,
            ref.file_id,
            os.getpid(),
            part.length,
            output.part_size,
            output.seconds,
        )
        return self._count(ref, record, part.number)

    # -- counting and finishing ------------------------------------------------------------
    def _count(self, ref: FileRef, record: FileRecord, number: int) -> int | None:
        assert record.fanout_upload_id is not None
        after = self._store.count_range(record.job_id, record.file_id, number, upload_id=record.fanout_upload_id)
        if after is None:
            current = self._store.get_file(record.job_id, record.file_id)
            if current is None or current.state.is_final:
                self._abort_if_stopped(current)
                return None
            raise TransientError(f"range {number} is done but its file could not count it yet", code="aws_error")
        if after.range_count is not None and after.ranges_done >= after.range_count:
            self._finish(ref, after)
        return None

    def _finish(self, ref: FileRef, record: FileRecord) -> None:
        """The last range is counted: check, add the seek table, complete the upload, complete the file."""
        upload_id, key = record.fanout_upload_id, record.fanout_key
        count = record.range_count or 0
        assert upload_id is not None and key is not None
        ranges = [r for r in self._store.list_ranges(record.job_id, record.file_id) if r.number <= count]
        if len(ranges) != count or any(r.state is not RangeState.DONE or not r.etag for r in ranges):
            raise TransientError(f"file {record.job_id}/{record.file_id}: not every range is recorded yet")
        crc64 = multipart.combine_parts([(multipart.decode(r.crc64nvme) or 0, r.length) for r in ranges])
        if record.crc64nvme and multipart.encode(crc64) != record.crc64nvme:
            self._fail(
                record,
                FileError(
                    "checksum_mismatch",
                    f"{record.name!r}: the CRC64NVME of the ranges read is {multipart.encode(crc64)}, "
                    f"the upload was completed with {record.crc64nvme}",
                ),
            )
            return
        from awscrt import checksums  # on first use, as in multipart.py

        crc32 = 0
        for index, r in enumerate(ranges):
            crc32 = (r.crc32 or 0) if index == 0 else int(checksums.combine_crc32(crc32, r.crc32 or 0, r.length))
        parts = [(r.number, r.etag or "") for r in ranges]
        size = sum(r.part_size or 0 for r in ranges)
        if record.algorithm is Algorithm.ZSTD:
            table = seek_table([(r.part_size or 0, r.length) for r in ranges])
            etag = self._storage.upload_part(
                key, upload_id=upload_id, number=count + 1, body=io.BytesIO(table), size=len(table)
            )
            parts.append((count + 1, etag))
            size += len(table)
        try:
            self._storage.complete_parts(key, upload_id=upload_id, parts=parts, tags={"original-crc32": f"{crc32:08x}"})
        except UploadConflict as exc:
            if exc.code != "upload_gone":
                self._fail(record, FileError("parts_refused", f"S3 refused the result's parts: {exc.message}"))
                return
            # completed by a concurrent finisher, or aborted by a cancel
            if not self._storage.exists(key):
                current = self._store.get_file(record.job_id, record.file_id)
                if current is not None and current.state.is_final:
                    return
                raise TransientError("the result upload is gone and no result exists", code="upload_gone") from exc
        seconds = sum(r.compress_seconds or 0 for r in ranges)
        done = self._store.complete_fanout(
            record.job_id,
            record.file_id,
            upload_id=upload_id,
            at=self._clock(),
            compressed_size=size,
            crc32=crc32,
            result_key=key,
            compress_seconds=seconds,
        )
        if done:
            self._storage.delete(self._keys.upload(ref))  # the result is safe; stop paying for the upload
            log.info(
                "file %s/%s completed from %d ranges (%d bytes, %.1f s of compression)",
                record.job_id,
                record.file_id,
                count,
                size,
                seconds,
            )
            return
        log.info("file %s/%s: cancelled while finishing; removed its result", record.job_id, record.file_id)
        self._storage.delete(key)

    # -- the other outcomes ------------------------------------------------------------------
    def _not_claimed(self, record: FileRecord, task: RangeTask, part: RangeRecord | None, at: float) -> int | None:
        ref = task.ref
        if part is None:
            log.warning("range %d of %s/%s does not exist; dropped", task.number, ref.job_id, ref.file_id)
            return None
        if part.state is RangeState.DONE:
            # a duplicate, or a redelivery after a count that did not land: counting again is harmless
            return self._count(ref, record, part.number)
        if part.held_at(at):
            return max(1, math.ceil((part.lease_until or at) - at) + 1)
        return 1

    def _interrupted(self, record: FileRecord, part: RangeRecord, token: str, reason: StopReason) -> int | None:
        if reason is StopReason.CLAIM_LOST:
            log.info(
                "range %d of %s/%s: claim lost (cancelled or taken over); stopped",
                part.number,
                record.job_id,
                record.file_id,
            )
            self._abort_if_stopped(self._store.get_file(record.job_id, record.file_id))
            return None
        error = FileError("worker_timeout", "the invocation ran out of time while compressing a range; retried")
        self._store.release_range(record.job_id, record.file_id, part.number, token=token, error=error)
        return 0

    def _fail(self, record: FileRecord, error: FileError) -> None:
        assert record.fanout_upload_id is not None and record.fanout_key is not None
        if self._store.fail_fanout(
            record.job_id, record.file_id, upload_id=record.fanout_upload_id, error=error, at=self._clock()
        ):
            log.warning("file %s/%s failed: %s", record.job_id, record.file_id, error.code)
        self._storage.abort_multipart(record.fanout_key, upload_id=record.fanout_upload_id)

    def _abort_if_stopped(self, record: FileRecord | None) -> None:
        """A cancelled or failed file's result upload is aborted (S3 answers a second abort as gone: a no-op)."""
        if record is None or record.state not in (FileState.CANCELLED, FileState.FAILED):
            return
        if record.fanout_upload_id and record.fanout_key:
            self._storage.abort_multipart(record.fanout_key, upload_id=record.fanout_upload_id)

    def give_up(self, task: RangeTask, receive_count: int) -> int | None:
        """A range message out of retries (dead-letter queue): its file fails unless the range is done or held."""
        ref = task.ref
        at = self._clock()
        record = self._store.get_file(ref.job_id, ref.file_id)
        if record is None or record.state.is_final or record.fanout_upload_id is None:
            self._abort_if_stopped(record)
            return None
        part = next((r for r in self._store.list_ranges(ref.job_id, ref.file_id) if r.number == task.number), None)
        if part is None or part.state is RangeState.DONE:
            return None
        if part.held_at(at):
            return max(1, math.ceil((part.lease_until or at) - at) + 1)
        last = part.error
        detail = f"; last error: {last.code}: {last.message}" if last else ""
        self._fail(
            record,
            FileError(
                "retries_exhausted",
                f"range {part.number} of {record.range_count} gave up after {part.attempts} attempt(s) "
                f"and {receive_count} deliveries{detail}",
            ),
        )
        return None

    # -- the work --------------------------------------------------------------------------
    def _compress(
        self, ref: FileRef, record: FileRecord, part: RangeRecord, token: str, heartbeat: Heartbeat
    ) -> _RangeOutput:
        key = self._keys.upload(ref)
        stream = self._storage.open_read_range(key, offset=part.offset, length=part.length)
        if stream is None:
            raise PermanentError(
                f"the uploaded object for {record.name!r} is gone; upload the file again in a new job",
                code="object_missing",
            )
        if stream.size != part.length:
            stream.close()
            raise PermanentError(
                f"{record.name!r}: range {part.number} holds {stream.size} bytes, expected {part.length}",
                code="size_mismatch",
            )
        algorithm = record.algorithm
        # every part but the upload's last must hold 5 MiB: zstd's last part is the seek table
        last_part = algorithm is not Algorithm.ZSTD and part.number == record.range_count
        use_threads = self._settings.zstd_threads(part.length)
        body = ReadAhead(stream, chunk_size=CHUNK_SIZE)
        reader = HashingReader(heartbeat.guard(body), crc64nvme=True)
        with tempfile.SpooledTemporaryFile(max_size=SPOOL_MEMORY) as spool:
            verifier = VerifyingSink(spool, algorithm, background=True)  # decodes beside the compression
            began = time.perf_counter()
            try:
                compress_stream(
                    reader,
                    verifier,
                    algorithm,
                    record.level,
                    threads=use_threads,
                    job_size=self._settings.zstd_job_size,
                )
                if not last_part:
                    write_padding(verifier, algorithm, multipart.MIN_PART_SIZE - spool.tell())
                verifier.finish()
            finally:
                verifier.close()
                body.close()
            seconds = time.perf_counter() - began
            if reader.count != part.length:
                raise PermanentError(
                    f"{record.name!r}: range {part.number}: read {reader.count} bytes, expected {part.length}",
                    code="size_mismatch",
                )
            if verifier.plain_count != reader.count or verifier.plain_crc32 != reader.crc32:
                raise PermanentError(
                    f"{record.name!r}: range {part.number}: the compressed output does not decode to the input",
                    code="verification_failed",
                )
            size = spool.tell()
            heartbeat.check()
            # One more renewal right before the upload: a delivery that lost the
            # range (taken over, or the file cancelled) never sends its part.
            if not self._store.renew_range(
                ref.job_id,
                ref.file_id,
                part.number,
                token=token,
                lease_until=self._clock() + self._settings.lease_seconds,
            ):
                raise Interrupted(StopReason.CLAIM_LOST)
            assert record.fanout_key is not None and record.fanout_upload_id is not None
            etag = self._storage.upload_part(
                record.fanout_key,
                upload_id=record.fanout_upload_id,
                number=part.number,
                body=spool,  # type: ignore[arg-type]  # a SpooledTemporaryFile is a binary file
                size=size,
            )
        return _RangeOutput(
            etag=etag, part_size=size, crc32=reader.crc32, crc64nvme=reader.crc64nvme or "", seconds=seconds
        )
