"""Fault: a range message delivered again on the ranges queue while its first delivery still compresses it.

SQS delivers at least once, and the ranges queue's event source runs every
message in an invocation of its own: two invocations can hold the same
range message at once. The range's claim (``claim_range``) belongs to one
delivery: the second finds it held and comes back once the claim could have
expired, handed back on the ranges queue; the range is uploaded and counted
once, and the file completes byte-exact. Both the in-memory store and
DynamoDB (moto) run it: the guarantee rests on the conditional writes.
"""

from __future__ import annotations

import dataclasses
import io
import json
import threading
import time

from events import s3_notification, sqs_record
from fakes import FakeWorkQueue, GatedBody, InMemoryStorage

from chalicelib.codecs import decompress_stream
from chalicelib.domain import Algorithm, FileState, RangeState
from chalicelib.ports import ObjectStream
from chalicelib.service import JobService
from chalicelib.worker import Worker

MiB = 1024**2
BUCKET = "squeezer-test-files"
DATA = b"".join(b"%d;an event line that compresses well;%x\n" % (i, i * 31) for i in range(80_000))  # ~3.4 MiB


class GatedRanges(InMemoryStorage):
    """Ranged reads block after their first chunk until their gate opens: a slow range."""

    def __init__(self) -> None:
        super().__init__()
        self.reading = threading.Semaphore(0)
        self.gates: list[threading.Event] = []

    def open_read_range(self, key, *, offset, length):
        stream = super().open_read_range(key, offset=offset, length=length)
        if stream is None:
            return None
        gate = threading.Event()
        self.gates.append(gate)
        self.reading.release()
        return ObjectStream(body=GatedBody(stream.body, gate), size=stream.size)


def decoded(blob: bytes) -> bytes:
    out = io.BytesIO()
    decompress_stream(io.BytesIO(blob), out, Algorithm.ZSTD)
    return out.getvalue()


def test_a_range_redelivered_on_the_ranges_queue_while_held_is_done_once(store, settings):
    settings = dataclasses.replace(
        settings, fanout_threshold=2 * MiB, range_size=MiB, stop_margin_ms=0, heartbeat_seconds=0.05, lease_seconds=2
    )
    storage = GatedRanges()
    jobs, ranges = FakeWorkQueue(), FakeWorkQueue()
    service = JobService(store, storage, settings)
    created = service.create_job(
        {"algorithm": "zstd", "level": 3, "files": [{"name": "big.log", "size": len(DATA)}]}, owner="public"
    )
    job_id, file_id = created.job.job_id, created.files[0][0].file_id
    key = f"uploads/public/{job_id}/{file_id}"
    storage.objects[key] = DATA
    jobs_worker = Worker(store, storage, jobs, settings, ranges_queue=ranges)
    range_worker = Worker(store, storage, ranges, settings, ranges_queue=ranges)
    upload = sqs_record(s3_notification(BUCKET, key, len(DATA)))
    assert jobs_worker.handle_batch([upload]) == {"batchItemFailures": []}
    records = {json.loads(body)["range"]: sqs_record(body) for body in ranges.range_bodies}
    assert sorted(records) == [1, 2, 3, 4]

    first = records[2]
    again = dict(first, receiptHandle="rh-second-delivery", attributes={"ApproximateReceiveCount": "2"})
    results: dict = {}
    holder = threading.Thread(target=lambda: results.update(first=range_worker.handle_batch([first])))
    holder.start()
    assert storage.reading.acquire(timeout=10)  # the first delivery is compressing range 2
    # the same message again, in an invocation of its own: the range is held, it comes back later
    assert range_worker.handle_batch([again]) == {"batchItemFailures": [{"itemIdentifier": first["messageId"]}]}
    handle, seconds = ranges.delays[-1]
    assert handle == "rh-second-delivery" and 1 <= seconds <= settings.lease_seconds + 1
    assert len(storage.gates) == 1  # it never read the range
    # the first delivery's heartbeat keeps its own message hidden, on the ranges queue
    beat = time.monotonic() + 10
    while not any(d[0] == first["receiptHandle"] for d in ranges.delays) and time.monotonic() < beat:
        time.sleep(0.02)
    assert any(d[0] == first["receiptHandle"] for d in ranges.delays)
    storage.gates[0].set()
    holder.join(20)
    assert results["first"] == {"batchItemFailures": []}
    parts = list(storage.part_uploads)
    done = {r.number: r for r in store.list_ranges(job_id, file_id)}
    assert done[2].state is RangeState.DONE and done[2].attempts == 1
    assert store.get_file(job_id, file_id).ranges_done == 1
    # the redelivery comes back: dropped (counting again changes nothing), no second upload
    assert range_worker.handle_batch([dict(again, receiptHandle="rh-third")]) == {"batchItemFailures": []}
    assert storage.part_uploads == parts and store.get_file(job_id, file_id).ranges_done == 1
    for number in (1, 3, 4):
        worker_thread = threading.Thread(
            target=lambda n=number: results.update({n: range_worker.handle_batch([records[n]])})
        )
        worker_thread.start()
        assert storage.reading.acquire(timeout=10)
        storage.gates[-1].set()
        worker_thread.join(20)
        assert results[number] == {"batchItemFailures": []}
    record = store.get_file(job_id, file_id)
    assert record.state is FileState.COMPLETED and record.ranges_done == 4, record.error
    assert decoded(storage.objects[record.result_key]) == DATA
    # nothing of the ranges touched the jobs queue (only the file's own message, kept hidden while dispatching)
    assert {handle for handle, _ in jobs.delays} <= {upload["receiptHandle"]} and jobs.range_batches == []
