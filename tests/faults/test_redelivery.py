"""Fault: the same message delivered twice, at once or after a claim expired.

Both the in-memory store and DynamoDB (moto) run each case: the guarantee
rests on the conditional writes, so it must hold on the real adapter too.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import threading
import time

from events import s3_notification, sqs_record
from fakes import FakeWorkQueue, GatedBody, InMemoryStorage

from chalicelib.codecs import decompress_stream
from chalicelib.domain import Algorithm, FileState
from chalicelib.ports import ObjectStream
from chalicelib.service import JobService
from chalicelib.worker import Worker

BUCKET = "squeezer-test-files"
DATA = b"".join(b"line %d of a log that compresses well\n" % i for i in range(40_000))


class GatedStorage(InMemoryStorage):
    """Reads of uploads block at ``gate`` (per reader) until released: a slow compression."""

    def __init__(self) -> None:
        super().__init__()
        self.reading = threading.Semaphore(0)
        self.gates: list[threading.Event] = []

    def open_read(self, key):
        stream = super().open_read(key)
        if stream is None:
            return None
        gate = threading.Event()
        self.gates.append(gate)
        self.reading.release()
        return ObjectStream(body=GatedBody(stream.body, gate), size=stream.size)


def setup(store, settings, storage, **overrides):
    settings = dataclasses.replace(settings, **overrides)
    service = JobService(store, storage, settings)
    created = service.create_job(
        {
            "files": [{"name": "a.log", "size": len(DATA), "sha256": hashlib.sha256(DATA).hexdigest()}],
            "algorithm": "zstd",
            "level": 3,
        },
        owner="public",
    )
    record = created.files[0][0]
    key = f"uploads/public/{created.job.job_id}/{record.file_id}"
    storage.objects[key] = DATA
    return settings, service, created.job.job_id, key


def decoded(blob: bytes) -> bytes:
    out = io.BytesIO()
    decompress_stream(io.BytesIO(blob), out, Algorithm.ZSTD)
    return out.getvalue()


def run(worker, records, results, name):
    results[name] = worker.handle_batch(records)


def test_two_deliveries_of_the_same_message_at_once_give_one_byte_exact_result(store, settings):
    storage = GatedStorage()
    settings, service, job_id, key = setup(store, settings, storage, heartbeat_seconds=0.05, lease_seconds=2)
    queue = FakeWorkQueue()
    worker = Worker(store, storage, queue, settings)
    message = sqs_record(s3_notification(BUCKET, key, len(DATA)), message_id="same-message-id")
    second = dict(message, receiptHandle="another-receipt-handle")
    results: dict = {}
    first_thread = threading.Thread(target=run, args=(worker, [message], results, "first"))
    first_thread.start()
    assert storage.reading.acquire(timeout=10)  # the first delivery is compressing
    run(worker, [second], results, "second")  # the duplicate arrives meanwhile
    assert results["second"] == {"batchItemFailures": [{"itemIdentifier": "same-message-id"}]}
    assert queue.delays[-1][0] == "another-receipt-handle"  # it comes back after the claim could expire
    storage.gates[0].set()
    first_thread.join(20)
    assert results["first"] == {"batchItemFailures": []}
    status = service.get_status(job_id, owner="public")
    (record,) = status.files
    assert record.state is FileState.COMPLETED and record.attempts == 1
    results_written = [k for k in storage.objects if k.startswith("results/")]
    assert results_written == [record.result_key]
    assert decoded(storage.objects[record.result_key]) == DATA
    # the duplicate comes back later: dropped, the result untouched
    assert worker.handle_batch([dict(second, receiptHandle="third")]) == {"batchItemFailures": []}
    assert decoded(storage.objects[record.result_key]) == DATA


def test_a_delivery_that_lost_its_claim_never_deletes_the_recorded_result(store, settings):
    """The case from the field: a compression outlived its claim, a second delivery took
    the file over and finished first; the first then finished too. Before, the first
    took the 'cancelled' branch and deleted the result the second had recorded."""
    storage = GatedStorage()
    settings, service, job_id, key = setup(store, settings, storage, heartbeat_seconds=30, lease_seconds=90)
    clock = [time.time()]
    slow = Worker(store, storage, FakeWorkQueue(), settings, clock=lambda: clock[0])
    message = sqs_record(s3_notification(BUCKET, key, len(DATA)), message_id="m-1")
    results: dict = {}
    first_thread = threading.Thread(target=run, args=(slow, [message], results, "first"))
    first_thread.start()
    assert storage.reading.acquire(timeout=10)
    # The first delivery's heartbeat never got through (its clock stands still
    # and it beats every 30 s): its claim expires for everyone else.
    later = Worker(store, storage, FakeWorkQueue(), settings, clock=lambda: clock[0] + 600)
    redelivered = dict(message, receiptHandle="rh-2", attributes={"ApproximateReceiveCount": "2"})
    second_thread = threading.Thread(target=run, args=(later, [redelivered], results, "second"))
    second_thread.start()
    assert storage.reading.acquire(timeout=10)  # the second delivery took the file over
    storage.gates[1].set()  # the second finishes first
    second_thread.join(20)
    assert results["second"] == {"batchItemFailures": []}
    winner = service.get_status(job_id, owner="public").files[0]
    assert winner.state is FileState.COMPLETED and winner.attempts == 2
    storage.gates[0].set()  # now the first one finishes
    first_thread.join(20)
    assert results["first"] == {"batchItemFailures": []}
    after = service.get_status(job_id, owner="public").files[0]
    assert (after.state, after.result_key) == (FileState.COMPLETED, winner.result_key)
    assert decoded(storage.objects[winner.result_key]) == DATA  # still there, byte-exact
    assert [k for k in storage.objects if k.startswith("results/")] == [winner.result_key]  # the loser's is gone
