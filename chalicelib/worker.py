"""The compression worker: S3 upload events from SQS -> compressed results.

One SQS message holds one S3 event notification. ``Worker.handle_batch``
parses every record on its own (``events.py``), and for each upload of ours
``FileProcessor`` claims the file for this one delivery, compresses it with
a heartbeat running (``heartbeat.py``), and records the outcome. Failed
messages are reported one by one (``batchItemFailures``).

Exactly-once effect: a claim belongs to one delivery (a fresh token, not the
SQS message id) and carries an expiry that the heartbeat keeps pushing out.
Each delivery writes its result under a key of its own; the conditional
completion write makes one of them final. A delivery that loses its claim
stops, and removes only the object it wrote itself, so a result the job
store records as completed is never deleted or replaced.

A large zstd or gzip file is fanned out instead (``fanout.py``): the
delivery that claims it sends one range message per range and lets go of
the file; range messages come back on the ranges queue, each compressed by
its own invocation (``RangeProcessor``).
"""

from __future__ import annotations

import datetime
import enum
import json
import logging
import math
import random
import time
import uuid
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from . import multipart
from .codecs import CHUNK_SIZE, CodecError, Crc64Sink, HashingReader, VerifyingSink, compress_stream
from .domain import Completion, FileError, FileRecord, FileState, now
from .errors import AwsError, PermanentError, TransientError
from .events import Delivery, Malformed, Parsed, RangeDelivery, Upload, parse_records
from .fanout import Dispatcher, RangePlan, RangeProcessor, plan_of
from .heartbeat import Heartbeat, Interrupted, StopReason
from .keys import ObjectKeys
from .ports import JobStore, ObjectStorage, WorkQueue
from .settings import Settings
from .streams import ReadAhead

log = logging.getLogger("squeezer.worker")

RemainingMs = Callable[[], float]


@dataclass(frozen=True)
class PendingResult:
    """A small file's result, written to S3; its record waits for the batch's one write (``complete_files``)."""

    delivery: Delivery | None
    upload: Upload
    completion: Completion


class Worker:
    """The SQS handlers: the jobs queue (or the ranges queue) and the dead-letter queue.

    ``queue`` is the queue this worker's messages come from: hand-backs and
    heartbeats change visibilities there, as a receipt handle is valid on
    its own queue only. ``ranges_queue`` is where a fanned-out file's range
    messages are sent (default: ``queue``).
    """

    def __init__(
        self,
        store: JobStore,
        storage: ObjectStorage,
        queue: WorkQueue | None,
        settings: Settings,
        *,
        ranges_queue: WorkQueue | None = None,
        dead_letter_queue: WorkQueue | None = None,
        clock: Callable[[], float] = now,
        token_factory: Callable[[], str] = lambda: uuid.uuid4().hex,
    ) -> None:
        self._store = store
        self._storage = storage
        self._queue = queue
        self._dead_letter_queue = dead_letter_queue
        self._settings = settings
        self._keys = ObjectKeys(settings.uploads_prefix, settings.results_prefix)
        self._clock = clock
        self.files = FileProcessor(
            store, storage, queue, settings, ranges_queue=ranges_queue, clock=clock, token_factory=token_factory
        )
        self.ranges = RangeProcessor(store, storage, queue, settings, clock=clock, token_factory=token_factory)

    # -- the jobs queue -----------------------------------------------------------
    def handle_batch(
        self, records: Iterable[dict[str, Any]], remaining_ms: RemainingMs | None = None
    ) -> dict[str, Any]:
        """Process an SQS batch; returns the Lambda partial-batch response.

        Small files (the notification's size at most ``small_file_size``) run
        side by side on up to ``file_threads`` threads, while everything else
        (large files, ranges, malformed records) runs on this thread, one
        after another. Each record's outcome is its own: a failure reports
        that message alone. The small files' results are recorded together
        once they are all written (one DynamoDB transaction), and the uploads
        of the files completed in the batch are deleted at the end, in one
        request.
        """
        parsed = parse_records(records, self._keys)
        deletions: list[str] = []
        pending: list[PendingResult] = []
        side_by_side, after = self._plan(parsed)
        self._mark_waiting(parsed, side_by_side, after)
        outcomes: dict[int, _Outcome] = {}
        threads = min(len(side_by_side), self._settings.file_threads)
        pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="file") if threads > 1 else None
        try:
            futures = {}
            if pool is not None:
                futures = {
                    id(item): pool.submit(self._one, item, remaining_ms, deletions, pending) for item in side_by_side
                }
            for item in parsed:
                if id(item) not in futures and id(item) not in after:
                    outcomes[id(item)] = self._one(item, remaining_ms, deletions)
            for key, future in futures.items():
                outcomes[key] = future.result()
        finally:
            if pool is not None:
                pool.shutdown(wait=True)
        for delivery in self._record_results(pending, deletions):  # before the duplicates, which must find them final
            outcomes[id(delivery)] = _Outcome.FAILED
            self._hand_back(self._queue, delivery, self._backoff(delivery.receive_count))
        for item in parsed:  # duplicates within the batch: they find their file final, or retry it
            if id(item) in after:
                outcomes[id(item)] = self._one(item, remaining_ms, deletions)
        self._delete_uploads(deletions)
        failures = [item for item in parsed if outcomes[id(item)] is not _Outcome.DONE]
        handed_back = [item for item in parsed if outcomes[id(item)] is _Outcome.HANDED_BACK]
        if handed_back:
            left = remaining_ms() if remaining_ms is not None else 0
            log.warning(
                "time is short (%d ms left, margin %d ms): handed back %d message(s) untouched: %s",
                left,
                self._settings.stop_margin_ms,
                len(handed_back),
                ", ".join(d.message_id for d in handed_back),
            )
        return _batch_response(failures)

    def _plan(self, parsed: list[Parsed]) -> tuple[list[Parsed], set[int]]:
        """The small messages to run side by side, and (by id) the messages to run after them.

        A message naming an upload that an earlier message of the batch names
        too (SQS delivers at least once) waits for that one to finish, as it
        would one after another, instead of finding it held and coming back
        a lease later.
        """
        seen: set[str] = set()
        side_by_side: list[Parsed] = []
        after: set[int] = set()
        for item in parsed:
            if not isinstance(item, Delivery):
                continue
            keys = {upload.key for upload in item.uploads}
            if keys & seen:
                after.add(id(item))
            elif self._is_small(item):
                side_by_side.append(item)
            seen |= keys
        return side_by_side, after

    def _mark_waiting(self, parsed: list[Parsed], side_by_side: list[Parsed], after: set[int]) -> None:
        """pending -> queued for the files that wait behind a large one of this batch (one write each).

        The small files are claimed at once (the claim records queued_at); a
        large file waits for the ones before it, maybe minutes, and its
        status should say it has arrived meanwhile (a client resuming an
        upload sends again only what is still pending).
        """
        running = {id(item) for item in side_by_side} | after
        in_turn = [item for item in parsed if isinstance(item, Delivery) and id(item) not in running]
        for item in in_turn[1:]:  # the first one is claimed right away
            self._mark_queued(item)

    def _is_small(self, item: Parsed) -> bool:
        """A message whose uploads are all known to be small (a retry's message states no size)."""
        if not isinstance(item, Delivery):
            return False
        limit = self._settings.small_file_size
        return all(upload.size is not None and upload.size <= limit for upload in item.uploads)

    def _one(
        self,
        item: Parsed,
        remaining_ms: RemainingMs | None,
        deletions: list[str],
        pending: list[PendingResult] | None = None,
    ) -> _Outcome:
        """One record, start to end; never raises (its failure is its own).

        With ``pending``, a completed file's record is left there for the
        batch's one write, which may still turn the outcome into a retry.
        """
        if isinstance(item, Malformed):
            # Its own failure: after maxReceiveCount it reaches the
            # dead-letter queue, whose handler keeps it for an operator.
            log.error("message %s is malformed (%s); reported as failed", item.message_id, item.reason)
            self._hand_back(self._queue, item, self._backoff(item.receive_count))
            return _Outcome.FAILED
        if self._out_of_time(remaining_ms):
            if isinstance(item, Delivery):
                self._mark_queued(item)
            self._hand_back(self._queue, item, 0)  # visible again at once, untouched
            return _Outcome.HANDED_BACK
        if isinstance(item, RangeDelivery):
            delay = self._deliver_range(item, remaining_ms)
        else:
            delay = self._deliver(item, remaining_ms, deletions, pending)
        if delay is None:
            return _Outcome.DONE
        self._hand_back(self._queue, item, delay)
        return _Outcome.FAILED

    def _mark_queued(self, delivery: Delivery) -> None:
        """pending -> queued: the status shows these uploads have arrived, though no claim holds them yet.

        For uploads handed back unclaimed, and for large files waiting their
        turn; a small file goes from pending straight to processing, its
        claim recording queued_at (one request fewer per file).
        """
        for upload in delivery.uploads:
            try:
                self._store.mark_queued(upload.ref.job_id, upload.ref.file_id, self._clock())
            except Exception:  # noqa: BLE001 - the claim records queued_at too
                log.warning("could not mark %s queued", upload.key, exc_info=True)

    def _record_results(self, pending: list[PendingResult], deletions: list[str]) -> list[Delivery]:
        """Record the small files' results in one write; the deliveries to retry (their outcome is unknown).

        When the write fails, none, some or all results may be recorded: the
        objects stay (a recorded result is never deleted) and the messages
        come back with backoff; the next delivery finds its file completed,
        or claims it again once the lease runs out.
        """
        if not pending:
            return []
        try:
            answers = self._store.complete_files([p.completion for p in pending])
        except Exception:  # noqa: BLE001 - the outcome is unknown: keep the objects, retry the messages
            log.warning("could not record %d result(s) of this batch; their messages come back", len(pending))
            return list({id(p.delivery): p.delivery for p in pending if p.delivery is not None}.values())
        for p, done in zip(pending, answers, strict=True):
            self.files.recorded(p.upload, p.completion.result_key, done, deletions)
        return []

    def _delete_uploads(self, keys: list[str]) -> None:
        """The uploads of completed files, one DeleteObjects for the batch.

        Not a failure of any message when it fails: the results are recorded,
        and the bucket's expire-uploads rule removes what stays.
        """
        if not keys:
            return
        try:
            self._storage.delete_many(keys)
        except Exception:  # noqa: BLE001 - the lifecycle rule removes them; the files are completed
            log.warning("could not delete %d completed upload(s); the lifecycle rule will", len(keys), exc_info=True)

    def _out_of_time(self, remaining_ms: RemainingMs | None) -> bool:
        margin = self._settings.stop_margin_ms
        return margin > 0 and remaining_ms is not None and remaining_ms() < margin

    def _deliver(
        self,
        delivery: Delivery,
        remaining_ms: RemainingMs | None,
        deletions: list[str],
        pending: list[PendingResult] | None = None,
    ) -> int | None:
        """Every upload of one message; None when the message is done, else the delay before it comes back."""
        delay: int | None = None
        for upload in delivery.uploads:
            try:
                wait = self.files.process(upload, delivery, remaining_ms, deletions=deletions, pending=pending)
            except TransientError:
                wait = self._backoff(delivery.receive_count)
            except Exception:  # noqa: BLE001 - reported and retried, never swallowed
                # e.g. DynamoDB unreachable before the file was claimed.
                log.exception("message %s failed unexpectedly on %s", delivery.message_id, upload.key)
                wait = self._backoff(delivery.receive_count)
            if wait is not None:
                delay = max(delay or 0, wait)
        return delay

    def _deliver_range(self, delivery: RangeDelivery, remaining_ms: RemainingMs | None) -> int | None:
        task = delivery.task
        try:
            return self.ranges.process(task, delivery, remaining_ms)
        except TransientError:
            return self._backoff(delivery.receive_count)
        except Exception:  # noqa: BLE001 - reported and retried, never swallowed
            log.exception(
                "message %s failed unexpectedly on range %d of %s/%s",
                delivery.message_id,
                task.number,
                task.ref.job_id,
                task.ref.file_id,
            )
            return self._backoff(delivery.receive_count)

    # -- the dead-letter queue -------------------------------------------------------
    def handle_dead_letters(self, records: Iterable[dict[str, Any]]) -> dict[str, Any]:
        """Messages that ran out of retries. Never raises: a malformed one is kept and let go."""
        failures: list[Parsed] = []
        for item in parse_records(records, self._keys):
            try:
                delay = self._dead_letter(item)
            except Exception:  # noqa: BLE001 - it comes back after the visibility timeout
                log.exception("dead letter %s could not be handled; it will come back", item.message_id)
                failures.append(item)
                continue
            if delay is not None:
                failures.append(item)
                self._hand_back(self._dead_letter_queue, item, delay)
        return _batch_response(failures)

    def _dead_letter(self, item: Parsed) -> int | None:
        if isinstance(item, Malformed):
            day = datetime.datetime.fromtimestamp(self._clock(), datetime.UTC).strftime("%Y/%m/%d")
            key = self._keys.dead_letter(day, item.message_id or uuid.uuid4().hex)
            body = json.dumps({"reason": item.reason, "record": item.raw}, default=str, indent=1)
            self._storage.put_bytes(key, body.encode(), content_type="application/json")
            log.error(
                "dead letter %s is malformed (%s); kept under the key %s and dropped", item.message_id, item.reason, key
            )
            return None
        if isinstance(item, RangeDelivery):
            return self.ranges.give_up(item.task, item.receive_count)
        delay: int | None = None
        for upload in item.uploads:
            wait = self.files.give_up(upload, item.receive_count)
            if wait is not None:
                delay = max(delay or 0, wait)
        return delay

    # -- plumbing -------------------------------------------------------------------
    def _backoff(self, receive_count: int) -> int:
        return backoff_seconds(receive_count, self._settings.retry_base_delay, self._settings.retry_max_delay)

    @staticmethod
    def _hand_back(queue: WorkQueue | None, item: Parsed, delay: int) -> None:
        if queue is None or not item.receipt_handle:
            return
        try:
            queue.delay(item.receipt_handle, delay)
        except Exception:  # noqa: BLE001 - it still comes back, after the visibility timeout
            log.warning("could not set the visibility of %s", item.message_id, exc_info=True)


class FileProcessor:
    """One upload, one delivery: claim, compress with a heartbeat, record.

    ``queue``: the queue the file's message came from (its heartbeat);
    ``ranges_queue``: where a fan-out sends its range messages (default: ``queue``).
    """

    def __init__(
        self,
        store: JobStore,
        storage: ObjectStorage,
        queue: WorkQueue | None,
        settings: Settings,
        *,
        ranges_queue: WorkQueue | None = None,
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
        ranges_queue = ranges_queue if ranges_queue is not None else queue
        self._dispatcher = (
            Dispatcher(store, storage, ranges_queue, settings, clock=clock) if ranges_queue is not None else None
        )

    def process(
        self,
        upload: Upload,
        delivery: Delivery | None = None,
        remaining_ms: RemainingMs | None = None,
        *,
        deletions: list[str] | None = None,
        pending: list[PendingResult] | None = None,
    ) -> int | None:
        """Compress one uploaded file.

        ``deletions``: where to put the upload's key once it may go (the
        caller deletes a batch's keys in one request); None deletes it here.
        ``pending``: where to leave the result's record for the caller to
        write with others (``Worker._record_results``); None records it here.

        Returns None when this delivery is done with it (completed, failed
        for good, cancelled, a duplicate), or the seconds after which the
        message should come back (another delivery holds a live claim, or
        time ran out). Raises TransientError to ask for a retry with backoff.
        """
        ref = upload.ref
        token = self._token()
        started = self._clock()
        claim = self._store.claim_file(
            ref.job_id,
            ref.file_id,
            token=token,
            at=started,
            lease_until=started + self._settings.lease_seconds,
        )
        if not claim.won or claim.record is None:
            return self._not_claimed(upload, claim.record, started, deletions)
        record = claim.record
        attempt = delivery.receive_count if delivery else 1
        plan = plan_of(record, self._settings) if self._dispatcher is not None else None
        if plan is not None:
            return self._fan_out(upload, record, token, plan, delivery, remaining_ms)
        result_key = self._keys.result(ref, token, record.algorithm)
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
        )
        try:
            with heartbeat:
                compressed_size, crc, seconds, result_crc = self._compress(record, upload.key, result_key, heartbeat)
        except Interrupted as stop:
            return self._interrupted(record, token, stop.reason)
        except Exception as exc:  # noqa: BLE001 - classified: failed now, or re-raised for a retry
            self._failed(record, token, attempt, exc)
            return None
        completion = Completion(
            ref.job_id, ref.file_id, token, self._clock(), compressed_size, crc, result_key, seconds, result_crc
        )
        if pending is not None:
            pending.append(PendingResult(delivery, upload, completion))  # list.append is atomic
            return None
        self._record(upload, completion, deletions)
        return None

    def _failed(self, record: FileRecord, token: str, attempt: int, exc: Exception) -> None:
        """Fail the file for good, or release it and raise a TransientError for a retry."""
        error = classify(exc)
        if isinstance(error, PermanentError):
            log.warning("file %s/%s failed: %s", record.job_id, record.file_id, error.code)
            self._store.fail_file(
                record.job_id, record.file_id, token=token, error=FileError(error.code, error.message), at=self._clock()
            )
            self._abort_fanout(record)
            return
        log.warning("file %s/%s attempt %d: %s", record.job_id, record.file_id, attempt, error.message)
        self._store.release_file(
            record.job_id, record.file_id, token=token, error=FileError(error.code, error.message), at=self._clock()
        )
        raise error from exc

    def _abort_fanout(self, record: FileRecord) -> None:
        """A failed file taken again after a fan-out began: its result upload goes too."""
        if record.fanout_upload_id and record.fanout_key:
            self._storage.abort_multipart(record.fanout_key, upload_id=record.fanout_upload_id)

    def _fan_out(
        self,
        upload: Upload,
        record: FileRecord,
        token: str,
        plan: RangePlan,
        delivery: Delivery | None,
        remaining_ms: RemainingMs | None,
    ) -> int | None:
        """Hand the file to its ranges (fanout.py); the heartbeat keeps the claim while messages go out."""
        assert self._dispatcher is not None
        heartbeat = Heartbeat(
            self._store,
            self._queue,
            upload.ref,
            token=token,
            receipt_handle=delivery.receipt_handle if delivery else None,
            interval=self._settings.heartbeat_seconds,
            lease_seconds=self._settings.lease_seconds,
            clock=self._clock,
        )
        try:
            with heartbeat:
                sent = self._dispatcher.dispatch(upload, record, token, plan)
        except Exception as exc:  # noqa: BLE001 - classified: failed now, or re-raised for a retry
            self._failed(record, token, delivery.receive_count if delivery else 1, exc)
            return None
        if not sent:
            log.info("file %s/%s: claim lost while fanning out; stopped", record.job_id, record.file_id)
        return None

    def _record(self, upload: Upload, completion: Completion, deletions: list[str] | None) -> None:
        try:
            done = self._store.complete_files([completion])[0]
        except Exception as exc:  # noqa: BLE001 - the outcome is unknown: keep our object, retry later
            # Not deleted: the write may have landed. If it did not, the claim
            # expires and another delivery compresses the file again; this
            # object is then an orphan that the bucket's lifecycle removes.
            raise TransientError(f"could not record the result: {exc}", code="aws_error") from exc
        self.recorded(upload, completion.result_key, done, deletions)

    def recorded(self, upload: Upload, result_key: str, done: bool, deletions: list[str] | None) -> None:
        """After the result's write: the upload may go, or (claim lost) this delivery's own object goes."""
        if done:
            self._drop_upload(upload.key, deletions)  # the result is safe; stop paying for the upload
            return
        # The claim was lost meanwhile (cancelled, or taken over after it
        # expired): the object is ours alone and no record points at it.
        log.info(
            "file %s/%s: claim lost before completing; removed this delivery's result %s",
            upload.ref.job_id,
            upload.ref.file_id,
            result_key,
        )
        self._storage.delete(result_key)

    def _interrupted(self, record: FileRecord, token: str, reason: StopReason) -> int | None:
        if reason is StopReason.CLAIM_LOST:
            # Cancelled or taken over: the writer was aborted, nothing of ours remains.
            log.info("file %s/%s: claim lost (cancelled or taken over); stopped", record.job_id, record.file_id)
            return None
        error = FileError("worker_timeout", "the invocation ran out of time while compressing; retried")
        self._store.release_file(record.job_id, record.file_id, token=token, error=error, at=self._clock())
        log.warning(
            "file %s/%s: the invocation is about to time out; released and handed back", record.job_id, record.file_id
        )
        return 0

    def _drop_upload(self, key: str, deletions: list[str] | None) -> None:
        if deletions is None:
            self._storage.delete(key)
        else:
            deletions.append(key)  # list.append is atomic: the batch's threads share the list

    def _not_claimed(
        self, upload: Upload, record: FileRecord | None, at: float, deletions: list[str] | None = None
    ) -> int | None:
        """Why the claim failed (the store answered with the file as it is)."""
        ref = upload.ref
        if record is None:
            log.warning("upload %s belongs to no known file; ignored", upload.key)
            return None
        if record.state is FileState.CANCELLED:
            self._drop_upload(upload.key, deletions)  # arrived after the job was cancelled
            return None
        if record.state.is_final:
            log.info("file %s/%s is %s; duplicate delivery dropped", ref.job_id, ref.file_id, record.state.value)
            return None
        if record.fanned_out:
            log.info("file %s/%s is fanned out; its ranges carry the work; dropped", ref.job_id, ref.file_id)
            return None
        if record.held_at(at):
            # Another delivery is compressing it. Look again once its claim
            # could have expired: by then it is final, or its holder died.
            wait = max(1, math.ceil((record.lease_until or at) - at) + 1)
            log.info(
                "file %s/%s is held by another delivery; this message comes back in %d s", ref.job_id, ref.file_id, wait
            )
            return wait
        return 1  # the state changed between the claim and now: look again soon

    def give_up(self, upload: Upload, receive_count: int) -> int | None:
        """Dead-letter side: fail the file with the last error, unless it is final or held."""
        ref = upload.ref
        at = self._clock()
        record = self._store.get_file(ref.job_id, ref.file_id)
        if record is None or record.state.is_final:
            return None
        if record.fanned_out:
            return None  # its ranges carry the work; their own dead letters fail it
        if record.held_at(at):
            return max(1, math.ceil((record.lease_until or at) - at) + 1)
        last = record.error
        detail = f"; last error: {last.code}: {last.message}" if last else ""
        error = FileError(
            "retries_exhausted",
            f"gave up after {record.attempts} attempt(s) and {receive_count} deliveries{detail}",
        )
        if self._store.fail_file(ref.job_id, ref.file_id, error=error, at=at):
            log.warning("file %s/%s failed for good: %s", ref.job_id, ref.file_id, error.message)
            self._abort_fanout(record)
            return None
        return 1  # claimed or changed meanwhile: look again

    def _compress(
        self, record: FileRecord, upload_key: str, result_key: str, heartbeat: Heartbeat
    ) -> tuple[int, int, float, str]:
        """Compress the upload into the result object: its size, the input's CRC32, seconds, the result's CRC64NVME."""
        stream = self._storage.open_read(upload_key)
        if stream is None:
            raise PermanentError(
                f"the uploaded object for {record.name!r} is gone; upload the file again in a new job",
                code="object_missing",
            )
        if stream.size != record.size:
            stream.close()
            raise PermanentError(
                f"{record.name!r} was declared as {record.size} bytes but {stream.size} bytes were uploaded",
                code="size_mismatch",
            )
        body = ReadAhead(stream, chunk_size=CHUNK_SIZE)
        reader = HashingReader(heartbeat.guard(body), sha256=bool(record.sha256), crc64nvme=bool(record.crc64nvme))
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
        if record.mode is not None:
            metadata["original-mode"] = f"{record.mode:o}"  # octal, as chmod takes it
        if record.mtime is not None:
            metadata["original-mtime"] = repr(float(record.mtime))
        writer = self._storage.open_writer(
            result_key,
            content_type="application/" + record.algorithm.value,
            metadata=metadata,
        )
        use_threads = self._settings.zstd_threads(record.size)
        result_crc = Crc64Sink(writer)
        # the check decodes on a thread of its own, beside the compression (issue 14: it was the largest extra)
        verifier = VerifyingSink(result_crc, record.algorithm, background=True)
        began = time.perf_counter()
        try:
            compress_stream(
                reader,
                verifier,
                record.algorithm,
                record.level,
                threads=use_threads,
                job_size=self._settings.zstd_job_size,
            )
            verifier.finish()
            self._check(record, reader, verifier)
            heartbeat.check()  # a cancel seen after the last read: do not finish the object
            size = writer.close(tags={"original-crc32": f"{reader.crc32:08x}"})
        except BaseException:
            writer.abort()
            raise
        finally:
            verifier.close()
            body.close()
        return size, reader.crc32, time.perf_counter() - began, multipart.encode(result_crc.crc64nvme)

    @staticmethod
    def _check(record: FileRecord, reader: HashingReader, verifier: VerifyingSink) -> None:
        if reader.count != record.size:
            raise PermanentError(
                f"{record.name!r}: read {reader.count} bytes, declared {record.size}",
                code="size_mismatch",
            )
        if record.sha256 and reader.sha256_hex != record.sha256:
            raise PermanentError(
                f"{record.name!r}: sha256 of the upload is {reader.sha256_hex}, declared {record.sha256}",
                code="checksum_mismatch",
            )
        if record.crc64nvme and reader.crc64nvme != record.crc64nvme:
            raise PermanentError(
                f"{record.name!r}: CRC64NVME of the upload is {reader.crc64nvme}, completed with {record.crc64nvme}",
                code="checksum_mismatch",
            )
        if verifier.plain_count != reader.count or verifier.plain_crc32 != reader.crc32:
            raise PermanentError(
                f"{record.name!r}: the compressed result does not decode to the input "
                f"(crc32 {verifier.plain_crc32:08x} != {reader.crc32:08x})",
                code="verification_failed",
            )


class _Outcome(enum.Enum):
    """What became of one record of a batch."""

    DONE = "done"  # deleted from the queue by Lambda
    FAILED = "failed"  # reported; back after its delay
    HANDED_BACK = "handed_back"  # reported untouched: the invocation's time ran short


def _batch_response(failures: list[Parsed]) -> dict[str, Any]:
    return {"batchItemFailures": [{"itemIdentifier": item.message_id} for item in failures]}


def backoff_seconds(receive_count: int, base: int, maximum: int) -> int:
    """Exponential backoff with jitter: base * 2^(n-1), capped, plus up to base."""
    exponent = max(receive_count, 1) - 1
    delay = min(maximum, base * (2 ** min(exponent, 20)))
    return int(min(43_200, delay + random.uniform(0, base)))


def classify(exc: BaseException) -> PermanentError | TransientError:
    """What a failure means for the file: fail it now, or retry later.

    Only the data can be permanently wrong (checked sizes and checksums,
    undecodable output); AWS errors and anything unexpected are retried, and
    after maxReceiveCount end in the dead-letter queue with their message.
    """
    if isinstance(exc, (PermanentError, TransientError)):
        return exc
    if isinstance(exc, CodecError):
        return PermanentError(str(exc), code="codec_error")
    if isinstance(exc, AwsError):  # AwsUnreachable's code is connection_error
        return TransientError(exc.message, code=exc.code)
    return TransientError(f"{type(exc).__name__}: {exc}", code="internal_error")
