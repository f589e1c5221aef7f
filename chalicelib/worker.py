"""The compression worker: S3 upload events from SQS -> compressed results.

One SQS message holds one S3 event notification (one or more records). For
every uploaded object the worker claims its file with a conditional write,
streams the object through the codec into a result object while checking the
declared size, the optional sha256 and a crc32 of the decoded output, then
records the outcome. Failed messages are reported individually
(``batchItemFailures``) so the rest of the batch is not run again.
"""
from __future__ import annotations

import json
import logging
import random
import time
import urllib.parse
import uuid
from dataclasses import dataclass
from typing import Any, Callable, Iterable

from botocore.exceptions import BotoCoreError, ClientError

from .codecs import CHUNK_SIZE, CodecError, HashingReader, VerifyingSink, compress_stream
from .domain import FileError, FileRecord, FileState, now
from .errors import PermanentError, TransientError
from .keys import FileRef, ObjectKeys
from .ports import JobStore, ObjectStorage, RetryQueue
from .settings import Settings
from .streams import ReadAhead

log = logging.getLogger("squeezer.worker")

# S3 error codes that mean "try again later"; anything else from S3 or
# DynamoDB is treated as transient too unless listed as permanent here.
_PERMANENT_S3_CODES = {"NoSuchKey": "object_missing", "NoSuchBucket": "bucket_missing"}


@dataclass(frozen=True)
class Upload:
    """One S3 ObjectCreated record that belongs to a file of ours."""

    ref: FileRef
    key: str


@dataclass(frozen=True)
class Message:
    message_id: str
    receipt_handle: str
    receive_count: int
    uploads: tuple[Upload, ...]


class Worker:
    def __init__(
        self,
        store: JobStore,
        storage: ObjectStorage,
        retry_queue: RetryQueue,
        settings: Settings,
        *,
        clock: Callable[[], float] = now,
        token_factory: Callable[[], str] = lambda: uuid.uuid4().hex,
    ) -> None:
        self._store = store
        self._storage = storage
        self._retry_queue = retry_queue
        self._settings = settings
        self._keys = ObjectKeys(settings.uploads_prefix, settings.results_prefix)
        self._clock = clock
        self._token = token_factory

    # -- entry points ---------------------------------------------------------
    def handle_batch(self, records: Iterable[dict], remaining_ms: Callable[[], int] | None = None) -> dict:
        """Process an SQS batch; returns the Lambda partial-batch response."""
        messages = self._parse(records)
        failures: list[str] = []
        for message in messages:  # the uploads are in: pending -> queued
            for upload in message.uploads:
                self._store.mark_queued(upload.ref.job_id, upload.ref.file_id, self._clock())
        for message in messages:
            if remaining_ms is not None and remaining_ms() < self._settings.stop_margin_ms:
                # Not enough time left to finish safely: hand it back untouched,
                # visible at once for the next invocation.
                failures.append(message.message_id)
                self._hand_back(message)
                continue
            try:
                for upload in message.uploads:
                    self.process(upload, attempt=message.receive_count, token=message.message_id or None)
            except TransientError:
                failures.append(message.message_id)
                self._delay(message)
            except Exception:  # noqa: BLE001 - reported and retried, never swallowed
                # e.g. DynamoDB unreachable before a file was claimed.
                log.exception("message %s failed unexpectedly", message.message_id)
                failures.append(message.message_id)
                self._delay(message)
        return {"batchItemFailures": [{"itemIdentifier": mid} for mid in failures]}

    def handle_dead_letters(self, records: Iterable[dict]) -> dict:
        """Messages that ran out of retries: fail their files with the last error."""
        messages = self._parse(records)
        failures: list[str] = []
        for message in messages:
            try:
                for upload in message.uploads:
                    self._give_up(upload.ref, message.receive_count)
            except Exception:  # noqa: BLE001 - retried by SQS, never swallowed
                log.exception("dead letter %s could not be recorded", message.message_id)
                failures.append(message.message_id)
        return {"batchItemFailures": [{"itemIdentifier": mid} for mid in failures]}

    # -- one file ----------------------------------------------------------------
    def process(self, upload: Upload, *, attempt: int = 1, token: str | None = None) -> None:
        """Compress one uploaded file. Raises TransientError to ask for a retry.

        ``token`` names the claim: the SQS message id, so that a redelivery of
        the same message can take back a claim it could not release.
        """
        ref = upload.ref
        token = token or self._token()
        started = self._clock()
        claimed = self._store.claim_file(
            ref.job_id, ref.file_id, token=token, at=started,
            lease_until=started + self._settings.lease_seconds,
        )
        if claimed is None:
            self._not_claimed(upload)
            return
        try:
            compressed_size, crc, seconds = self._compress(claimed)
        except Exception as exc:  # noqa: BLE001 - classified: failed now, or re-raised for a retry
            error = _classify(exc)
            if isinstance(error, PermanentError):
                log.warning("file %s/%s failed: %s", ref.job_id, ref.file_id, error.code)
                self._store.fail_file(ref.job_id, ref.file_id, token=token,
                                      error=FileError(error.code, error.message), at=self._clock())
                return
            log.warning("file %s/%s attempt %d: %s", ref.job_id, ref.file_id, attempt, error.message)
            self._store.release_file(ref.job_id, ref.file_id, token=token,
                                     error=FileError(error.code, error.message), at=self._clock())
            raise error from exc
        result_key = self._keys.result(ref.job_id, ref.file_id, claimed.algorithm)
        try:
            done = self._store.complete_file(
                ref.job_id, ref.file_id, token=token, at=self._clock(),
                compressed_size=compressed_size, crc32=crc, result_key=result_key,
                compress_seconds=seconds,
            )
        except Exception as exc:  # noqa: BLE001 - retried: this message may re-claim with its token
            raise TransientError(f"could not record the result: {exc}", code="aws_error") from exc
        if done:
            self._storage.delete(upload.key)  # the result is safe; stop paying for the upload
        else:
            log.info("file %s/%s was cancelled while compressing; result removed", ref.job_id, ref.file_id)
            self._storage.delete(result_key)

    def _not_claimed(self, upload: Upload) -> None:
        """Why the claim failed: unknown file, cancelled, final, or held by another delivery."""
        ref = upload.ref
        record = self._store.get_file(ref.job_id, ref.file_id)
        if record is None:
            log.warning("upload %s belongs to no known file; ignored", upload.key)
        elif record.state is FileState.CANCELLED:
            self._storage.delete(upload.key)  # arrived after the job was cancelled
        else:
            # Final already, or another delivery holds a live lease: that
            # delivery's own message stays in flight until it finishes.
            log.info("file %s/%s is %s; duplicate delivery skipped", ref.job_id, ref.file_id, record.state.value)

    def _compress(self, record: FileRecord) -> tuple[int, int, float]:
        upload_key = self._keys.upload(record.job_id, record.file_id)
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
        reader = HashingReader(body, sha256=bool(record.sha256))
        metadata = {
            "original-size": str(record.size),
            "algorithm": record.algorithm.value,
            "level": str(record.level),
            "job-id": record.job_id,
            "file-id": record.file_id,
        }
        if record.sha256:
            metadata["original-sha256"] = record.sha256
        writer = self._storage.open_writer(
            self._keys.result(record.job_id, record.file_id, record.algorithm),
            content_type="application/" + record.algorithm.value, metadata=metadata,
        )
        threads = self._settings.compress_threads
        use_threads = threads if threads > 1 and record.size >= self._settings.threads_min_size else 0
        verifier = VerifyingSink(writer, record.algorithm)
        began = time.perf_counter()
        try:
            compress_stream(reader, verifier, record.algorithm, record.level, threads=use_threads)
            verifier.finish()
            self._check(record, reader, verifier)
            size = writer.close(tags={"original-crc32": f"{reader.crc32:08x}"})
        except BaseException:
            writer.abort()
            raise
        finally:
            body.close()
        return size, reader.crc32, time.perf_counter() - began

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
        if verifier.plain_count != reader.count or verifier.plain_crc32 != reader.crc32:
            raise PermanentError(
                f"{record.name!r}: the compressed result does not decode to the input "
                f"(crc32 {verifier.plain_crc32:08x} != {reader.crc32:08x})",
                code="verification_failed",
            )

    def _give_up(self, ref: FileRef, receive_count: int) -> None:
        record = self._store.get_file(ref.job_id, ref.file_id)
        if record is None or record.state.is_final:
            return
        last = record.error
        detail = f"; last error: {last.code}: {last.message}" if last else ""
        error = FileError(
            "retries_exhausted",
            f"gave up after {record.attempts} attempt(s) and {receive_count} deliveries{detail}",
        )
        if self._store.fail_file(ref.job_id, ref.file_id, error=error, at=self._clock()):
            log.warning("file %s/%s failed for good: %s", ref.job_id, ref.file_id, error.message)

    # -- plumbing ---------------------------------------------------------------
    def _delay(self, message: Message) -> None:
        self._hand_back(message, backoff_seconds(
            message.receive_count, self._settings.retry_base_delay, self._settings.retry_max_delay))

    def _hand_back(self, message: Message, delay: int = 0) -> None:
        try:
            self._retry_queue.delay(message.receipt_handle, delay)
        except (ClientError, BotoCoreError):
            # The message still comes back, after the queue's visibility timeout.
            log.exception("could not set the visibility of %s", message.message_id)

    def _parse(self, records: Iterable[dict]) -> list[Message]:
        messages = []
        for raw in records:
            message_id = raw.get("messageId", "")
            try:
                body = json.loads(raw.get("body") or "{}")
            except ValueError:
                log.error("message %s is not JSON; dropped", message_id)
                continue  # retrying cannot fix it
            uploads = tuple(self._uploads(body))
            messages.append(Message(
                message_id=message_id,
                receipt_handle=raw.get("receiptHandle", ""),
                receive_count=int(raw.get("attributes", {}).get("ApproximateReceiveCount", 1)),
                uploads=uploads,
            ))
        return messages

    def _uploads(self, body: Any) -> Iterable[Upload]:
        if not isinstance(body, dict):
            return
        for record in body.get("Records", []) or []:
            if not str(record.get("eventName", "")).startswith("ObjectCreated"):
                continue
            obj = record.get("s3", {}).get("object", {})
            key = urllib.parse.unquote_plus(obj.get("key", ""))
            ref = self._keys.parse_upload(key)
            if ref is None:
                log.warning("object %r is not an upload of ours; ignored", key)
                continue
            yield Upload(ref=ref, key=key)


def backoff_seconds(receive_count: int, base: int, maximum: int) -> int:
    """Exponential backoff with jitter: base * 2^(n-1), capped, plus up to base."""
    exponent = max(receive_count, 1) - 1
    delay = min(maximum, base * (2 ** min(exponent, 20)))
    return int(min(43_200, delay + random.uniform(0, base)))


def _classify(exc: BaseException) -> PermanentError | TransientError:
    if isinstance(exc, (PermanentError, TransientError)):
        return exc
    if isinstance(exc, CodecError):
        return PermanentError(str(exc), code="codec_error")
    if isinstance(exc, ClientError):
        code = exc.response.get("Error", {}).get("Code", "")
        if code in _PERMANENT_S3_CODES:
            return PermanentError(f"S3 said {code}: {exc}", code=_PERMANENT_S3_CODES[code])
        return TransientError(f"AWS error {code}: {exc}", code="aws_error")
    if isinstance(exc, BotoCoreError):
        return TransientError(f"{type(exc).__name__}: {exc}", code="connection_error")
    return TransientError(f"{type(exc).__name__}: {exc}", code="internal_error")
