"""DynamoDB adapter: jobs and their files in one table.

Layout (single table, see infra/resources.py for the key schema):

    pk = "JOB#<job_id>"  sk = "META"          the job
    pk = "JOB#<job_id>"  sk = "FILE#<file_id>" one item per file
    pk = "RANGES#<job_id>#<file_id>"  sk = "RANGE#<number, 5 digits>"
                                               the ranges of a fanned-out file
                                               (a partition of their own: the
                                               job's reads never see them)
    gsi1pk = "OWNER#<owner>", gsi1sk = "<created_at>#<job_id>" on job items,
    so an owner's jobs list newest first.

Every state change is a conditional write, so a redelivered message can
neither run a file twice at once nor move a final file back.
"""

from __future__ import annotations

import base64
import binascii
import json
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any

from boto3.dynamodb.conditions import Key
from boto3.dynamodb.types import TypeDeserializer
from botocore.exceptions import ClientError

from .aws import aws_errors
from .domain import (
    AddOutcome,
    AddRefusal,
    Algorithm,
    Claim,
    Completion,
    FileError,
    FileRecord,
    FileState,
    Job,
    RangeClaim,
    RangeRecord,
    RangeState,
    UploadMethod,
)
from .errors import AwsError, ValidationError
from .table import OWNER_INDEX, TTL_ATTRIBUTE

# Conditional writes in flight at once when a batch of files is added (POST /jobs/{id}/files).
ADD_WRITERS = 16
# DynamoDB's limit on the actions of one TransactWriteItems.
TRANSACTION_MAX_ITEMS = 100
# A new job's files: items per BatchWriteItem (DynamoDB's limit), calls in flight at once, and how
# often (with what backoff, seconds) items DynamoDB leaves unprocessed are sent again.
BATCH_WRITE_SIZE = 25
CREATE_WRITERS = 4
BATCH_WRITE_TRIES = 8
BATCH_WRITE_DELAY = 0.05
BATCH_WRITE_MAX_DELAY = 1.0
_DESERIALIZER = TypeDeserializer()
# What a fanned-out attempt leaves on its file; a retry of the file starts without it.
_FANOUT_FIELDS = "fanout_upload_id, fanout_key, range_size, range_count, ranges_done, ranges_counted, dispatched_at"


def _job_pk(job_id: str) -> str:
    return f"JOB#{job_id}"


def _file_sk(file_id: str) -> str:
    return f"FILE#{file_id}"


def _ranges_pk(job_id: str, file_id: str) -> str:
    return f"RANGES#{job_id}#{file_id}"


def _range_sk(number: int) -> str:
    return f"RANGE#{number:05d}"


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return value


def _num(value: float | int | None) -> Decimal | None:
    return None if value is None else Decimal(str(value))


class DynamoJobStore:
    """JobStore on a DynamoDB table (boto3 Table resource passed in)."""

    def __init__(self, table: Any, *, ttl_days: int = 30) -> None:
        self._table = table
        self._ttl_seconds = ttl_days * 86400

    # -- writes from the API ------------------------------------------------
    def create_job(self, job: Job, files: Sequence[FileRecord]) -> None:
        """Write the job and all its files: BatchWriteItem of 25, ``CREATE_WRITERS`` calls in flight at once.

        Unconditional writes are safe here: the job id is new, so none of
        its keys can hold an item yet. The files go first and the job's own
        item last, so a job that can be read has all its files; a failure
        leaves at most files without a job (they expire with their TTL).
        """
        expires = int(job.created_at) + self._ttl_seconds
        items = [self._file_item(record, expires) for record in files]
        chunks = [items[i : i + BATCH_WRITE_SIZE] for i in range(0, len(items), BATCH_WRITE_SIZE)]
        if chunks:
            with ThreadPoolExecutor(max_workers=min(CREATE_WRITERS, len(chunks))) as pool:
                futures = [pool.submit(self._batch_put, chunk) for chunk in chunks]
                try:
                    for future in futures:
                        future.result()
                except BaseException:
                    for future in futures:
                        future.cancel()  # a failed job: no more writes
                    raise
        self._batch_put([self._job_item(job, expires)])

    def _batch_put(self, items: Sequence[dict[str, Any]]) -> None:
        """One BatchWriteItem of at most 25 items, sending again what DynamoDB left unprocessed (with backoff).

        Through the low-level client (thread safe, unlike the Table
        resource); an AwsError if items are still left after
        ``BATCH_WRITE_TRIES`` calls (DynamoDB throttling for that long).
        """
        client = self._table.meta.client  # the resource's client: it serializes plain values itself
        request: dict[str, Any] = {self._table.name: [{"PutRequest": {"Item": item}} for item in items]}
        for attempt in range(BATCH_WRITE_TRIES):
            if attempt:
                time.sleep(min(BATCH_WRITE_MAX_DELAY, BATCH_WRITE_DELAY * 2 ** (attempt - 1)))
            with aws_errors("writing a job"):
                response = client.batch_write_item(RequestItems=request)
            request = response.get("UnprocessedItems") or {}
            if not request:
                return
        left = sum(len(requests) for requests in request.values())
        raise AwsError(
            f"writing a job: DynamoDB left {left} item(s) unprocessed after {BATCH_WRITE_TRIES} tries (throttled)",
            aws_code="UnprocessedItems",
        )

    def add_files(self, job: Job, files: Sequence[FileRecord], *, max_files: int, close: bool) -> AddOutcome:
        """Add a batch to a job open for more files (see the port).

        Names are unique because a file's key is derived from its name
        (domain.file_id_for): the keys are read first (BatchGetItem, 100 at a
        time). The job's count then grows by the batch under the condition
        that the job is open and has room, so concurrent batches cannot
        overfill it; each file is written only if its key is free, and a
        batch that meets a name written meanwhile takes back what it wrote.
        (Not one transaction per 99 files: moto takes about a minute for
        1,000 files in transactions, where single writes take a second.)
        """
        taken = self._existing(job.job_id, [record.file_id for record in files])
        if taken:
            return AddOutcome(AddRefusal.DUPLICATE, tuple(sorted(taken)))
        size = sum(record.size for record in files)
        if files and not self._grow_job(job.job_id, len(files), size, room=max_files - len(files)):
            return self._refusal(job.job_id)
        expires = int(job.created_at) + self._ttl_seconds
        written: list[FileRecord] = []
        try:
            clash = self._put_new_files(files, expires, written)
        except BaseException:
            self._take_back(job.job_id, written, len(files), size)
            raise
        if clash is not None:
            self._take_back(job.job_id, written, len(files), size)
            return AddOutcome(AddRefusal.DUPLICATE, (clash.name,))
        if close and not self._update(
            _job_pk(job.job_id),
            "META",
            "REMOVE more_files",
            "attribute_exists(pk) AND attribute_not_exists(cancelled_at) AND more_files = :open",
            {":open": True},
        ):
            return self._refusal(job.job_id)
        return AddOutcome()

    def _put_new_files(self, files: Sequence[FileRecord], expires: int, written: list[FileRecord]) -> FileRecord | None:
        """Write each file only if its key is free, ``ADD_WRITERS`` at a time; the first that was not, or None.

        One conditional PutItem per file (BatchWriteItem takes no
        conditions), sent concurrently through the low-level client (thread
        safe, unlike the Table resource): 1,000 files are 1,000 round trips,
        which one at a time would take most of API Gateway's 29 s on a slow
        day. ``written`` gets each file as its write succeeds.
        """
        client = self._table.meta.client  # the resource's client: it serializes plain values itself
        table = self._table.name

        def put(record: FileRecord) -> FileRecord | None:
            item = self._file_item(record, expires)
            try:
                with aws_errors("adding files to a job"):
                    client.put_item(TableName=table, Item=item, ConditionExpression="attribute_not_exists(pk)")
            except AwsError as exc:
                if exc.aws_code == "ConditionalCheckFailedException":
                    return record
                raise
            written.append(record)
            return None

        with ThreadPoolExecutor(max_workers=min(ADD_WRITERS, max(1, len(files)))) as pool:
            clashes = [clash for clash in pool.map(put, files) if clash is not None]
        return clashes[0] if clashes else None

    def _grow_job(self, job_id: str, count: int, size: int, *, room: int) -> bool:
        return self._update(
            _job_pk(job_id),
            "META",
            "SET file_count = file_count + :n, total_size = total_size + :bytes",
            "attribute_exists(pk) AND attribute_not_exists(cancelled_at) AND more_files = :open AND file_count <= :room",
            {":n": count, ":bytes": size, ":open": True, ":room": room},
        )

    def _take_back(self, job_id: str, written: Sequence[FileRecord], count: int, size: int) -> None:
        """Undo a batch's writes: its files (ours: their keys were free) and its share of the job's count."""
        with aws_errors("taking back a refused batch"), self._table.batch_writer() as batch:
            for record in written:
                batch.delete_item(Key={"pk": _job_pk(job_id), "sk": _file_sk(record.file_id)})
        with aws_errors("taking back a refused batch"):
            self._table.update_item(
                Key={"pk": _job_pk(job_id), "sk": "META"},
                UpdateExpression="SET file_count = file_count - :n, total_size = total_size - :bytes",
                ExpressionAttributeValues={":n": count, ":bytes": size},
            )

    def _refusal(self, job_id: str) -> AddOutcome:
        job = self.get_job(job_id)
        if job is None or job.cancelled_at is not None or not job.more_files:
            return AddOutcome(AddRefusal.CLOSED)
        return AddOutcome(AddRefusal.FULL)

    def _existing(self, job_id: str, file_ids: Sequence[str]) -> list[str]:
        """The names of the files among ``file_ids`` that the job holds already."""
        found: list[str] = []
        client = self._table.meta.client
        for start in range(0, len(file_ids), 100):
            keys = [{"pk": _job_pk(job_id), "sk": _file_sk(file_id)} for file_id in file_ids[start : start + 100]]
            request: dict[str, Any] = {
                self._table.name: {
                    "Keys": keys,
                    "ConsistentRead": True,
                    "ProjectionExpression": "#n",
                    "ExpressionAttributeNames": {"#n": "name"},
                }
            }
            while request:
                with aws_errors("reading a job's files"):
                    response = client.batch_get_item(RequestItems=request)
                found += [item["name"] for item in response.get("Responses", {}).get(self._table.name, [])]
                request = response.get("UnprocessedKeys") or {}
                if request:
                    time.sleep(0.05)
        return found

    def cancel_job(self, job_id: str, at: float) -> bool:
        """Mark the job cancelled; False if it already was."""
        return self._update(
            _job_pk(job_id),
            "META",
            "SET cancelled_at = :at",
            "attribute_exists(pk) AND attribute_not_exists(cancelled_at)",
            {":at": _num(at)},
        )

    # -- reads ----------------------------------------------------------------
    def get_job(self, job_id: str) -> Job | None:
        with aws_errors("reading a job"):
            item = self._table.get_item(Key={"pk": _job_pk(job_id), "sk": "META"}, ConsistentRead=True).get("Item")
        return self._to_job(item) if item else None

    def get_job_with_files(self, job_id: str) -> tuple[Job | None, list[FileRecord]]:
        job, files = None, []
        for item in self._query(Key("pk").eq(_job_pk(job_id))):
            if item["sk"] == "META":
                job = self._to_job(item)
            else:
                files.append(self._to_file(item))
        files.sort(key=lambda f: f.name)
        return job, files

    def get_file_states(self, job_id: str) -> list[FileRecord]:
        """The job's files with only what a summary needs (state, sizes, times).

        Same query as the full status, projected: no names, errors or keys
        travel, and nothing is signed.
        """
        records = []
        names = {"#s": "state", "#sz": "size"}
        for item in self._query(
            Key("pk").eq(_job_pk(job_id)) & Key("sk").begins_with("FILE#"),
            projection="job_id, file_id, #s, #sz, algorithm, #l, created_at, finished_at, compressed_size, upload_id",
            names={**names, "#l": "level"},
        ):
            item.setdefault("name", "")
            records.append(self._to_file(item))
        return records

    def get_file(self, job_id: str, file_id: str) -> FileRecord | None:
        with aws_errors("reading a file"):
            item = self._table.get_item(Key={"pk": _job_pk(job_id), "sk": _file_sk(file_id)}, ConsistentRead=True).get(
                "Item"
            )
        return self._to_file(item) if item else None

    def list_jobs(self, owner: str, *, limit: int, cursor: str | None) -> tuple[list[Job], str | None]:
        kwargs: dict[str, Any] = {
            "IndexName": OWNER_INDEX,
            "KeyConditionExpression": Key("gsi1pk").eq(f"OWNER#{owner}"),
            "ScanIndexForward": False,
            "Limit": limit,
        }
        if cursor:
            kwargs["ExclusiveStartKey"] = _decode_cursor(cursor, owner)
        with aws_errors("listing jobs"):
            response = self._table.query(**kwargs)
        jobs = [self._to_job(item) for item in response.get("Items", [])]
        last = response.get("LastEvaluatedKey")
        return jobs, _encode_cursor(last) if last else None

    # -- file state transitions (worker) ---------------------------------------
    def record_upload_checksum(self, job_id: str, file_id: str, *, upload_id: str, crc64nvme: str) -> bool:
        """Keep the whole object's CRC64NVME of a completed multipart upload (the worker checks it).

        Only while the file waits for that upload (pending or queued: the
        completion's S3 event may already have queued it).
        """
        return self._update(
            _job_pk(job_id),
            _file_sk(file_id),
            "SET crc64nvme = :crc",
            "upload_id = :upload AND #s IN (:pending, :queued)",
            {
                ":crc": crc64nvme,
                ":upload": upload_id,
                ":pending": FileState.PENDING.value,
                ":queued": FileState.QUEUED.value,
            },
        )

    def mark_queued(self, job_id: str, file_id: str, at: float) -> bool:
        """pending -> queued: the upload has been seen."""
        return self._update(
            _job_pk(job_id),
            _file_sk(file_id),
            "SET #s = :queued, queued_at = :at",
            "#s = :pending",
            {":queued": FileState.QUEUED.value, ":pending": FileState.PENDING.value, ":at": _num(at)},
        )

    def claim_file(self, job_id: str, file_id: str, *, token: str, at: float, lease_until: float) -> Claim:
        """Take the file for processing, for one delivery (``token``) until ``lease_until``.

        Claimable: pending or queued, or processing with an expired lease
        (the delivery that held it died or stopped renewing it). A live claim
        is never taken over, whoever asks. On failure DynamoDB answers with
        the item as it is (``ALL_OLD``), so the caller learns why in the
        same request.
        """
        try:
            response = self._write(
                Key={"pk": _job_pk(job_id), "sk": _file_sk(file_id)},
                UpdateExpression=(
                    "SET #s = :processing, lease_token = :token, lease_until = :until, started_at = :at, "
                    "queued_at = if_not_exists(queued_at, :at), attempts = if_not_exists(attempts, :zero) + :one"
                ),
                ConditionExpression=("#s IN (:pending, :queued) OR (#s = :processing AND lease_until < :at)"),
                ExpressionAttributeNames={"#s": "state"},
                ExpressionAttributeValues={
                    ":processing": FileState.PROCESSING.value,
                    ":pending": FileState.PENDING.value,
                    ":queued": FileState.QUEUED.value,
                    ":token": token,
                    ":until": _num(lease_until),
                    ":at": _num(at),
                    ":zero": 0,
                    ":one": 1,
                },
                ReturnValues="ALL_NEW",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except _ConditionFailed as failed:
            return Claim(won=False, record=self._to_file(failed.item) if failed.item else None)
        return Claim(won=True, record=self._to_file(response["Attributes"]))

    def renew_claim(self, job_id: str, file_id: str, *, token: str, lease_until: float) -> bool:
        """Extend a live claim; False if this delivery no longer holds it (cancelled, taken over, final)."""
        return self._update(
            _job_pk(job_id),
            _file_sk(file_id),
            "SET lease_until = :until",
            "#s = :processing AND lease_token = :token",
            {":processing": FileState.PROCESSING.value, ":token": token, ":until": _num(lease_until)},
        )

    def complete_file(
        self,
        job_id: str,
        file_id: str,
        *,
        token: str,
        at: float,
        compressed_size: int,
        crc32: int,
        result_key: str,
        compress_seconds: float,
        result_crc64nvme: str | None = None,
    ) -> bool:
        """processing -> completed, only by the holder of the claim.

        True also when the file is already completed with this very result
        (a retried request whose first try landed), so the caller never
        mistakes its own recorded result for a stray one.
        """
        return self._record_result(
            Completion(
                job_id, file_id, token, at, compressed_size, crc32, result_key, compress_seconds, result_crc64nvme
            ),
            _HOLDER,
            {":token": token},
        )

    def complete_files(self, completions: Sequence[Completion]) -> list[bool]:
        """Each ``complete_file``, as one TransactWriteItems per 100 (one request for a worker's batch).

        A transaction is all or nothing: when any file's condition fails
        (its claim was lost, or a retried request had landed) nothing of it
        is written, and each file is then recorded on its own, which gives
        that file's own answer. Costs two write units per file instead of
        one, and saves a request per file.
        """
        answers: list[bool] = []
        for start in range(0, len(completions), TRANSACTION_MAX_ITEMS):
            chunk = completions[start : start + TRANSACTION_MAX_ITEMS]
            if len(chunk) > 1 and self._transact([self._result_update(c, _HOLDER, {":token": c.token}) for c in chunk]):
                answers += [True] * len(chunk)
            else:
                answers += [self._record_result(c, _HOLDER, {":token": c.token}) for c in chunk]
        return answers

    def _transact(self, updates: list[dict[str, Any]]) -> bool:
        """One TransactWriteItems of Update actions; False if it was cancelled (a condition or a conflict)."""
        client = self._table.meta.client
        items = [{"Update": {"TableName": self._table.name, **update}} for update in updates]
        try:
            with aws_errors("updating the job table"):
                client.transact_write_items(TransactItems=items)
        except AwsError as exc:
            if exc.aws_code in ("TransactionCanceledException", "TransactionConflictException"):
                return False
            raise
        return True

    @staticmethod
    def _result_update(completion: Completion, condition: str, values: dict[str, Any]) -> dict[str, Any]:
        """The UpdateItem arguments that record ``completion``'s result under ``condition``."""
        c = completion
        result_crc = ", result_crc64nvme = :rcrc" if c.result_crc64nvme else ""
        if c.result_crc64nvme:
            values = {**values, ":rcrc": c.result_crc64nvme}
        return {
            "Key": {"pk": _job_pk(c.job_id), "sk": _file_sk(c.file_id)},
            "UpdateExpression": (
                "SET #s = :completed, compressed_size = :out, crc32 = :crc, result_key = :key, "
                f"finished_at = :at, compress_seconds = :secs{result_crc} REMOVE lease_token, lease_until, "
                "error_code, error_message"
            ),
            "ConditionExpression": condition,
            "ExpressionAttributeNames": {"#s": "state"},
            "ExpressionAttributeValues": {
                ":completed": FileState.COMPLETED.value,
                ":processing": FileState.PROCESSING.value,
                ":out": c.compressed_size,
                ":crc": c.crc32,
                ":key": c.result_key,
                ":at": _num(c.at),
                ":secs": _num(round(c.compress_seconds, 4)),
                **values,
            },
        }

    def _record_result(self, completion: Completion, condition: str, values: dict[str, Any]) -> bool:
        """processing -> completed under ``condition``; True also if this very result is recorded already."""
        try:
            self._write(
                **self._result_update(completion, condition, values), ReturnValuesOnConditionCheckFailure="ALL_OLD"
            )
        except _ConditionFailed as failed:
            old = failed.item or {}
            return old.get("state") == FileState.COMPLETED.value and old.get("result_key") == completion.result_key
        return True

    def release_file(self, job_id: str, file_id: str, *, token: str, error: FileError, at: float) -> bool:
        """processing -> queued after a transient error; keeps the error for status."""
        return self._update(
            _job_pk(job_id),
            _file_sk(file_id),
            "SET #s = :queued, error_code = :code, error_message = :msg, queued_at = :at "
            "REMOVE lease_token, lease_until",
            "#s = :processing AND lease_token = :token",
            {
                ":queued": FileState.QUEUED.value,
                ":processing": FileState.PROCESSING.value,
                ":token": token,
                ":code": error.code,
                ":msg": error.message,
                ":at": _num(at),
            },
        )

    def fail_file(self, job_id: str, file_id: str, *, error: FileError, at: float, token: str | None = None) -> bool:
        """Move a file to failed.

        With ``token``: only while that delivery holds the claim. Without: an
        open file that no delivery holds a live claim on (pending, queued, or
        processing with an expired lease).
        """
        values: dict[str, Any] = {
            ":failed": FileState.FAILED.value,
            ":processing": FileState.PROCESSING.value,
            ":code": error.code,
            ":msg": error.message,
            ":at": _num(at),
        }
        if token is not None:
            condition = "#s = :processing AND lease_token = :token"
            values[":token"] = token
        else:
            condition = "#s IN (:pending, :queued) OR (#s = :processing AND lease_until < :at)"
            values[":pending"] = FileState.PENDING.value
            values[":queued"] = FileState.QUEUED.value
        return self._update(
            _job_pk(job_id),
            _file_sk(file_id),
            "SET #s = :failed, error_code = :code, error_message = :msg, finished_at = :at "
            "REMOVE lease_token, lease_until",
            condition,
            values,
        )

    def requeue_file(self, job_id: str, file_id: str, *, error_codes: Iterable[str], at: float) -> bool:
        """failed -> queued for a retry, only if it failed with one of ``error_codes``."""
        codes = sorted(error_codes)
        placeholders = {f":c{i}": code for i, code in enumerate(codes)}
        return self._update(
            _job_pk(job_id),
            _file_sk(file_id),
            f"SET #s = :queued, queued_at = :at REMOVE finished_at, {_FANOUT_FIELDS}",
            f"#s = :failed AND error_code IN ({', '.join(placeholders)})",
            {":queued": FileState.QUEUED.value, ":failed": FileState.FAILED.value, ":at": _num(at), **placeholders},
        )

    def cancel_file(self, job_id: str, file_id: str, at: float) -> bool:
        return self._update(
            _job_pk(job_id),
            _file_sk(file_id),
            "SET #s = :cancelled, finished_at = :at REMOVE lease_token, lease_until",
            "#s IN (:pending, :queued, :processing)",
            {
                ":cancelled": FileState.CANCELLED.value,
                ":pending": FileState.PENDING.value,
                ":queued": FileState.QUEUED.value,
                ":processing": FileState.PROCESSING.value,
                ":at": _num(at),
            },
        )

    # -- fan-out (chalicelib/fanout.py) ------------------------------------------------
    def start_fanout(
        self, job_id: str, file_id: str, *, token: str, upload_id: str, result_key: str, ranges: Sequence[RangeRecord]
    ) -> bool:
        """Write the ranges (pending), then record the result upload on the file, if ``token`` holds it.

        The ranges go first: once the file names its upload, every range it
        counts on exists. A claim lost meanwhile leaves range items that no
        message names (they expire with the job).
        """
        expires = int(time.time()) + self._ttl_seconds
        with aws_errors("writing a file's ranges"), self._table.batch_writer() as batch:
            for item in ranges:
                batch.put_item(Item=self._range_item(item, expires))
        return self._update(
            _job_pk(job_id),
            _file_sk(file_id),
            "SET fanout_upload_id = :upload, fanout_key = :key, range_size = :size, range_count = :count, "
            "ranges_done = :zero REMOVE ranges_counted, dispatched_at",
            "#s = :processing AND lease_token = :token",
            {
                ":processing": FileState.PROCESSING.value,
                ":token": token,
                ":upload": upload_id,
                ":key": result_key,
                ":size": max((r.length for r in ranges), default=0),
                ":count": len(ranges),
                ":zero": 0,
            },
        )

    def finish_dispatch(self, job_id: str, file_id: str, *, token: str, at: float) -> bool:
        return self._update(
            _job_pk(job_id),
            _file_sk(file_id),
            "SET dispatched_at = :at REMOVE lease_token, lease_until",
            "#s = :processing AND lease_token = :token AND attribute_exists(fanout_upload_id)",
            {":processing": FileState.PROCESSING.value, ":token": token, ":at": _num(at)},
        )

    def claim_range(
        self, job_id: str, file_id: str, number: int, *, token: str, at: float, lease_until: float
    ) -> RangeClaim:
        try:
            response = self._write(
                Key={"pk": _ranges_pk(job_id, file_id), "sk": _range_sk(number)},
                UpdateExpression=(
                    "SET #s = :processing, lease_token = :token, lease_until = :until, "
                    "attempts = if_not_exists(attempts, :zero) + :one"
                ),
                ConditionExpression="#s = :pending OR (#s = :processing AND lease_until < :at)",
                ExpressionAttributeNames={"#s": "state"},
                ExpressionAttributeValues={
                    ":processing": RangeState.PROCESSING.value,
                    ":pending": RangeState.PENDING.value,
                    ":token": token,
                    ":until": _num(lease_until),
                    ":at": _num(at),
                    ":zero": 0,
                    ":one": 1,
                },
                ReturnValues="ALL_NEW",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except _ConditionFailed as failed:
            return RangeClaim(won=False, range=self._to_range(failed.item) if failed.item else None)
        return RangeClaim(won=True, range=self._to_range(response["Attributes"]))

    def renew_range(self, job_id: str, file_id: str, number: int, *, token: str, lease_until: float) -> bool:
        """One transaction: the file is still processing (a cancel fails it) and the range still ours.

        The Table resource's client takes plain values, as the table does (boto3 serializes them).
        """
        name = self._table.name
        items = [
            {
                "ConditionCheck": {
                    "TableName": name,
                    "Key": {"pk": _job_pk(job_id), "sk": _file_sk(file_id)},
                    "ConditionExpression": "#s = :processing",
                    "ExpressionAttributeNames": {"#s": "state"},
                    "ExpressionAttributeValues": {":processing": FileState.PROCESSING.value},
                }
            },
            {
                "Update": {
                    "TableName": name,
                    "Key": {"pk": _ranges_pk(job_id, file_id), "sk": _range_sk(number)},
                    "UpdateExpression": "SET lease_until = :until",
                    "ConditionExpression": "#s = :processing AND lease_token = :token",
                    "ExpressionAttributeNames": {"#s": "state"},
                    "ExpressionAttributeValues": {
                        ":processing": RangeState.PROCESSING.value,
                        ":token": token,
                        ":until": _num(lease_until),
                    },
                }
            },
        ]
        try:
            with aws_errors("renewing a range's claim"):
                self._table.meta.client.transact_write_items(TransactItems=items)
        except AwsError as exc:
            if exc.aws_code == "TransactionCanceledException":
                return False
            raise
        return True

    def release_range(self, job_id: str, file_id: str, number: int, *, token: str, error: FileError | None) -> bool:
        values: dict[str, Any] = {
            ":pending": RangeState.PENDING.value,
            ":processing": RangeState.PROCESSING.value,
            ":token": token,
        }
        expression = "SET #s = :pending REMOVE lease_token, lease_until"
        if error is not None:
            expression = "SET #s = :pending, error_code = :code, error_message = :msg REMOVE lease_token, lease_until"
            values.update({":code": error.code, ":msg": error.message})
        return self._update(
            _ranges_pk(job_id, file_id),
            _range_sk(number),
            expression,
            "#s = :processing AND lease_token = :token",
            values,
        )

    def complete_range(
        self,
        job_id: str,
        file_id: str,
        number: int,
        *,
        token: str,
        etag: str,
        part_size: int,
        crc32: int,
        crc64nvme: str,
        compress_seconds: float,
    ) -> bool:
        try:
            self._write(
                Key={"pk": _ranges_pk(job_id, file_id), "sk": _range_sk(number)},
                UpdateExpression=(
                    "SET #s = :done, etag = :etag, part_size = :size, crc32 = :crc, crc64nvme = :crc64, "
                    "compress_seconds = :secs REMOVE lease_token, lease_until, error_code, error_message"
                ),
                ConditionExpression="#s = :processing AND lease_token = :token",
                ExpressionAttributeNames={"#s": "state"},
                ExpressionAttributeValues={
                    ":done": RangeState.DONE.value,
                    ":processing": RangeState.PROCESSING.value,
                    ":token": token,
                    ":etag": etag,
                    ":size": part_size,
                    ":crc": crc32,
                    ":crc64": crc64nvme,
                    ":secs": _num(round(compress_seconds, 4)),
                },
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except _ConditionFailed as failed:
            old = failed.item or {}
            return old.get("state") == RangeState.DONE.value and old.get("etag") == etag
        return True

    def count_range(self, job_id: str, file_id: str, number: int, *, upload_id: str) -> FileRecord | None:
        """ADD to the file's count and to its set of counted ranges, unless the set holds ``number``."""
        try:
            response = self._write(
                Key={"pk": _job_pk(job_id), "sk": _file_sk(file_id)},
                UpdateExpression="ADD ranges_done :one, ranges_counted :numbers",
                ConditionExpression=(
                    "#s = :processing AND fanout_upload_id = :upload AND NOT contains(ranges_counted, :number)"
                ),
                ExpressionAttributeNames={"#s": "state"},
                ExpressionAttributeValues={
                    ":processing": FileState.PROCESSING.value,
                    ":upload": upload_id,
                    ":one": 1,
                    ":numbers": {number},
                    ":number": number,
                },
                ReturnValues="ALL_NEW",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except _ConditionFailed as failed:
            old = failed.item
            if old and old.get("state") == FileState.PROCESSING.value and old.get("fanout_upload_id") == upload_id:
                return self._to_file(old)  # counted before (a retried request, or a redelivery)
            return None
        return self._to_file(response["Attributes"])

    def list_ranges(self, job_id: str, file_id: str) -> list[RangeRecord]:
        ranges = [self._to_range(item) for item in self._query(Key("pk").eq(_ranges_pk(job_id, file_id)))]
        return sorted(ranges, key=lambda r: r.number)

    def complete_fanout(
        self,
        job_id: str,
        file_id: str,
        *,
        upload_id: str,
        at: float,
        compressed_size: int,
        crc32: int,
        result_key: str,
        compress_seconds: float,
    ) -> bool:
        return self._record_result(
            Completion(job_id, file_id, "", at, compressed_size, crc32, result_key, compress_seconds),
            "#s = :processing AND fanout_upload_id = :upload AND ranges_done = range_count",
            {":upload": upload_id},
        )

    def fail_fanout(self, job_id: str, file_id: str, *, upload_id: str, error: FileError, at: float) -> bool:
        return self._update(
            _job_pk(job_id),
            _file_sk(file_id),
            "SET #s = :failed, error_code = :code, error_message = :msg, finished_at = :at "
            "REMOVE lease_token, lease_until",
            "#s = :processing AND fanout_upload_id = :upload",
            {
                ":failed": FileState.FAILED.value,
                ":processing": FileState.PROCESSING.value,
                ":upload": upload_id,
                ":code": error.code,
                ":msg": error.message,
                ":at": _num(at),
            },
        )

    # -- helpers ----------------------------------------------------------------
    def _update(self, pk: str, sk: str, expression: str, condition: str, values: dict[str, Any]) -> bool:
        names = {"#s": "state"} if "#s" in expression or "#s" in condition else None
        kwargs: dict[str, Any] = {
            "Key": {"pk": pk, "sk": sk},
            "UpdateExpression": expression,
            "ConditionExpression": condition,
            "ExpressionAttributeValues": values,
        }
        if names:
            kwargs["ExpressionAttributeNames"] = names
        try:
            self._write(**kwargs)
        except _ConditionFailed:
            return False
        return True

    def _write(self, **kwargs: Any) -> dict[str, Any]:
        """One conditional UpdateItem; a failed condition raises _ConditionFailed with the old item.

        Sent through the resource's low-level client, which serializes plain
        values as the resource does and, unlike the resource, is thread safe:
        the worker runs a batch's small files on several threads.
        """
        try:
            with aws_errors("updating the job table"):
                client = self._table.meta.client
                response: dict[str, Any] = client.update_item(TableName=self._table.name, **kwargs)
        except AwsError as exc:
            if exc.aws_code == "ConditionalCheckFailedException" and isinstance(exc.__cause__, ClientError):
                raise _ConditionFailed(_old_item(exc.__cause__)) from None
            raise
        return response

    def _query(
        self, condition: Any, *, projection: str | None = None, names: dict[str, str] | None = None
    ) -> Iterable[dict[str, Any]]:
        kwargs: dict[str, Any] = {"KeyConditionExpression": condition, "ConsistentRead": True}
        if projection:
            kwargs["ProjectionExpression"] = projection
            kwargs["ExpressionAttributeNames"] = names or {}
        while True:
            with aws_errors("reading a job's files"):
                response = self._table.query(**kwargs)
            yield from response.get("Items", [])
            if "LastEvaluatedKey" not in response:
                return
            kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    @staticmethod
    def _job_item(job: Job, expires: int) -> dict[str, Any]:
        item = {
            "pk": _job_pk(job.job_id),
            "sk": "META",
            "kind": "job",
            "job_id": job.job_id,
            "owner": job.owner,
            "algorithm": job.algorithm.value,
            "level": job.level,
            "file_count": job.file_count,
            "total_size": job.total_size,
            "created_at": _num(job.created_at),
            "gsi1pk": f"OWNER#{job.owner}",
            "gsi1sk": f"{job.created_at:017.3f}#{job.job_id}",
            TTL_ATTRIBUTE: expires,
        }
        if job.more_files:  # present only while the job is open for more files
            item["more_files"] = True
        return item

    @staticmethod
    def _file_item(record: FileRecord, expires: int) -> dict[str, Any]:
        item = {
            "pk": _job_pk(record.job_id),
            "sk": _file_sk(record.file_id),
            "kind": "file",
            "job_id": record.job_id,
            "file_id": record.file_id,
            "name": record.name,
            "size": record.size,
            "algorithm": record.algorithm.value,
            "level": record.level,
            "state": record.state.value,
            "attempts": record.attempts,
            "created_at": _num(record.created_at),
            TTL_ATTRIBUTE: expires,
        }
        if record.content_type:
            item["content_type"] = record.content_type
        if record.sha256:
            item["sha256"] = record.sha256
        if record.mode is not None:
            item["mode"] = record.mode
        if record.mtime is not None:
            item["mtime"] = _num(record.mtime)
        if record.upload_id:
            item.update(upload_id=record.upload_id, part_size=record.part_size, part_count=record.part_count)
        if record.upload_method is not UploadMethod.PUT:  # written only when not the default
            item["upload_method"] = record.upload_method.value
        return item

    @staticmethod
    def _range_item(record: RangeRecord, expires: int) -> dict[str, Any]:
        return {
            "pk": _ranges_pk(record.job_id, record.file_id),
            "sk": _range_sk(record.number),
            "kind": "range",
            "job_id": record.job_id,
            "file_id": record.file_id,
            "number": record.number,
            "offset": record.offset,
            "length": record.length,
            "state": record.state.value,
            "attempts": record.attempts,
            TTL_ATTRIBUTE: expires,
        }

    @staticmethod
    def _to_range(item: dict[str, Any]) -> RangeRecord:
        item = {k: _plain(v) for k, v in item.items()}
        error = None
        if item.get("error_code"):
            error = FileError(code=item["error_code"], message=item.get("error_message", ""))
        return RangeRecord(
            job_id=item["job_id"],
            file_id=item["file_id"],
            number=item["number"],
            offset=item["offset"],
            length=item["length"],
            state=RangeState(item["state"]),
            attempts=item.get("attempts", 0),
            lease_until=item.get("lease_until"),
            error=error,
            etag=item.get("etag"),
            part_size=item.get("part_size"),
            crc32=item.get("crc32"),
            crc64nvme=item.get("crc64nvme"),
            compress_seconds=item.get("compress_seconds"),
        )

    @staticmethod
    def _to_job(item: dict[str, Any]) -> Job:
        item = {k: _plain(v) for k, v in item.items()}
        return Job(
            job_id=item["job_id"],
            owner=item["owner"],
            algorithm=Algorithm(item["algorithm"]),
            level=item["level"],
            file_count=item["file_count"],
            total_size=item["total_size"],
            created_at=item["created_at"],
            cancelled_at=item.get("cancelled_at"),
            more_files=bool(item.get("more_files", False)),
        )

    @staticmethod
    def _to_file(item: dict[str, Any]) -> FileRecord:
        item = {k: _plain(v) for k, v in item.items()}
        error = None
        if item.get("error_code"):
            error = FileError(code=item["error_code"], message=item.get("error_message", ""))
        return FileRecord(
            job_id=item["job_id"],
            file_id=item["file_id"],
            name=item["name"],
            size=item["size"],
            algorithm=Algorithm(item["algorithm"]),
            level=item["level"],
            content_type=item.get("content_type"),
            sha256=item.get("sha256"),
            mode=item.get("mode"),
            mtime=item.get("mtime"),
            state=FileState(item["state"]),
            attempts=item.get("attempts", 0),
            compressed_size=item.get("compressed_size"),
            crc32=item.get("crc32"),
            result_crc64nvme=item.get("result_crc64nvme"),
            error=error,
            created_at=item["created_at"],
            queued_at=item.get("queued_at"),
            started_at=item.get("started_at"),
            finished_at=item.get("finished_at"),
            compress_seconds=item.get("compress_seconds"),
            result_key=item.get("result_key"),
            lease_until=item.get("lease_until"),
            upload_id=item.get("upload_id"),
            part_size=item.get("part_size"),
            part_count=item.get("part_count"),
            crc64nvme=item.get("crc64nvme"),
            upload_method=UploadMethod(item.get("upload_method", UploadMethod.PUT.value)),
            fanout_upload_id=item.get("fanout_upload_id"),
            fanout_key=item.get("fanout_key"),
            range_size=item.get("range_size"),
            range_count=item.get("range_count"),
            ranges_done=item.get("ranges_done", 0),
            dispatched_at=item.get("dispatched_at"),
        )


# A file's result is recorded only by the delivery whose claim (lease token) holds it.
_HOLDER = "#s = :processing AND lease_token = :token"


def _old_item(exc: ClientError) -> dict[str, Any] | None:
    """The item as it was, from a failed condition with ReturnValuesOnConditionCheckFailure=ALL_OLD."""
    item: dict[str, Any] | None = exc.response.get("Item")  # type: ignore[assignment]  # not in botocore's TypedDict
    if not item:
        return None
    return {name: _DESERIALIZER.deserialize(value) for name, value in item.items()}


class _ConditionFailed(Exception):
    def __init__(self, item: dict[str, Any] | None) -> None:
        super().__init__("condition failed")
        self.item = item


def _encode_cursor(key: dict[str, Any]) -> str:
    raw = json.dumps({k: _plain(v) for k, v in key.items()}, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _decode_cursor(cursor: str, owner: str) -> dict[str, Any]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        key = json.loads(base64.urlsafe_b64decode(padded.encode()))
        if not isinstance(key, dict) or key.get("gsi1pk") != f"OWNER#{owner}":
            raise ValueError("cursor of another listing")
        if set(key) != {"pk", "sk", "gsi1pk", "gsi1sk"}:
            raise ValueError("unexpected cursor fields")
        return {k: str(v) for k, v in key.items()}
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise ValidationError(
            "cursor is not valid: pass the next_cursor value of a previous GET /jobs",
            code="invalid_cursor",
        ) from None
