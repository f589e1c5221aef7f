"""The ranges queue: range messages go there, and every message's visibility changes on the queue it came from.

A receipt handle is valid on its own queue only: a range message received
from the ranges queue is handed back (and kept hidden by its heartbeat) on
the ranges queue, a file's message on the jobs queue. Range messages still on
the jobs queue (sent before the ranges queue existed, in flight during a
deploy) are compressed there, and handed back there.
"""

from __future__ import annotations

import dataclasses
import io
import json
import threading
import time

import pytest
from events import s3_notification, sqs_record
from fakes import FakeWorkQueue, InMemoryJobStore, InMemoryStorage

from chalicelib.codecs import decompress_stream
from chalicelib.domain import Algorithm, FileState
from chalicelib.ports import ObjectStream
from chalicelib.service import JobService
from chalicelib.worker import Worker

MiB = 1024**2
BUCKET = "squeezer-test-files"
DATA = b"".join(b"%d,row of a table that compresses,%x\n" % (i, i * 7919) for i in range(90_000))  # ~3.6 MiB


class SlowStorage(InMemoryStorage):
    """Reads block on their second chunk until ``release`` is set (or ``hold`` seconds passed)."""

    def __init__(self, hold: float = 10.0) -> None:
        super().__init__()
        self.release = threading.Event()
        self.hold = hold

    def _slow(self, stream: ObjectStream | None) -> ObjectStream | None:
        if stream is None:
            return None
        return ObjectStream(body=_Held(stream.body, self.release, self.hold), size=stream.size)

    def open_read(self, key):
        return self._slow(super().open_read(key))

    def open_read_range(self, key, *, offset, length):
        return self._slow(super().open_read_range(key, offset=offset, length=length))


class _Held:
    def __init__(self, body, release: threading.Event, hold: float) -> None:
        self._body, self._release, self._hold, self._reads = body, release, hold, 0

    def read(self, size=-1):
        self._reads += 1
        if self._reads == 2:
            self._release.wait(self._hold)
        return self._body.read(size)

    def close(self):
        self._body.close()


@pytest.fixture
def fan_settings(settings):
    return dataclasses.replace(
        settings,
        fanout_threshold=2 * MiB,
        range_size=MiB,
        stop_margin_ms=0,
        heartbeat_seconds=0.05,
        lease_seconds=5,
    )


@pytest.fixture
def env(fan_settings):
    """Two workers as wiring.py builds them: one per source queue, both sending ranges to the ranges queue."""
    store, storage = InMemoryJobStore(), SlowStorage(hold=0.0)
    jobs, ranges = FakeWorkQueue(), FakeWorkQueue()
    service = JobService(store, storage, fan_settings, queue=jobs)
    jobs_worker = Worker(store, storage, jobs, fan_settings, ranges_queue=ranges)
    range_worker = Worker(store, storage, ranges, fan_settings, ranges_queue=ranges)
    return service, store, storage, jobs, ranges, jobs_worker, range_worker


def start(service, storage, data=DATA):
    created = service.create_job(
        {"algorithm": "zstd", "level": 3, "files": [{"name": "big.csv", "size": len(data)}]}, owner="public"
    )
    record = created.files[0][0]
    key = f"uploads/public/{created.job.job_id}/{record.file_id}"
    storage.objects[key] = data
    return created.job.job_id, record.file_id, key


def fan_out(jobs_worker, ranges, key):
    assert jobs_worker.handle_batch([sqs_record(s3_notification(BUCKET, key, len(DATA)))]) == {"batchItemFailures": []}
    return [sqs_record(body) for body in ranges.range_bodies]


def beating(worker, record, queue, storage, beats=2):
    """Run ``record`` with its read held until its heartbeat changed its visibility ``beats`` times on ``queue``."""
    storage.hold = 20.0
    storage.release.clear()
    result: dict = {}
    thread = threading.Thread(target=lambda: result.update(response=worker.handle_batch([record])))
    thread.start()
    deadline = time.monotonic() + 10
    while len([d for d in queue.delays if d[0] == record["receiptHandle"]]) < beats and time.monotonic() < deadline:
        time.sleep(0.02)
    storage.release.set()
    thread.join(20)
    return result["response"]


def decoded(blob: bytes) -> bytes:
    out = io.BytesIO()
    decompress_stream(io.BytesIO(blob), out, Algorithm.ZSTD)
    return out.getvalue()


def test_the_dispatcher_sends_range_messages_to_the_ranges_queue(env):
    service, store, storage, jobs, ranges, jobs_worker, range_worker = env
    job_id, file_id, key = start(service, storage)
    records = fan_out(jobs_worker, ranges, key)
    assert sorted(json.loads(r["body"])["range"] for r in records) == [1, 2, 3, 4]
    assert jobs.range_batches == [] and jobs.sent == []  # nothing of the fan-out on the jobs queue
    for record in records:
        assert range_worker.handle_batch([record]) == {"batchItemFailures": []}
    done = store.get_file(job_id, file_id)
    assert done.state is FileState.COMPLETED and decoded(storage.objects[done.result_key]) == DATA
    assert jobs.delays == []  # no range message's receipt handle ever went to the jobs queue


def test_a_range_message_s_heartbeat_and_hand_back_use_the_ranges_queue(env):
    service, store, storage, jobs, ranges, jobs_worker, range_worker = env
    job_id, file_id, key = start(service, storage)
    first, second = fan_out(jobs_worker, ranges, key)[:2]
    assert beating(range_worker, first, ranges, storage) == {"batchItemFailures": []}
    beats = [d for d in ranges.delays if d[0] == first["receiptHandle"]]
    assert len(beats) >= 2 and all(seconds == 6 for _, seconds in beats)  # kept hidden for lease + a beat
    # a range another delivery holds comes back later: handed back on the ranges queue
    at = time.time()
    assert store.claim_range(job_id, file_id, 2, token="someone", at=at, lease_until=at + 600).won
    response = range_worker.handle_batch([second])
    assert response == {"batchItemFailures": [{"itemIdentifier": second["messageId"]}]}
    handle, seconds = ranges.delays[-1]
    assert handle == second["receiptHandle"] and 600 <= seconds <= 602
    assert jobs.delays == []


def test_a_file_message_s_heartbeat_and_hand_back_use_the_jobs_queue(env):
    service, store, storage, jobs, ranges, jobs_worker, range_worker = env
    small = DATA[: MiB + 5]  # below the threshold: compressed whole, by the jobs queue's worker
    job_id, file_id, key = start(service, storage, small)
    message = sqs_record(s3_notification(BUCKET, key, len(small)))
    assert beating(jobs_worker, message, jobs, storage) == {"batchItemFailures": []}
    assert store.get_file(job_id, file_id).state is FileState.COMPLETED
    beats = [d for d in jobs.delays if d[0] == message["receiptHandle"]]
    assert len(beats) >= 2
    # a held file's message is handed back on the jobs queue
    job_id, file_id, key = start(service, storage, small)
    at = time.time()
    assert store.claim_file(job_id, file_id, token="someone", at=at, lease_until=at + 600).won
    held = sqs_record(s3_notification(BUCKET, key, len(small)))
    assert jobs_worker.handle_batch([held]) == {"batchItemFailures": [{"itemIdentifier": held["messageId"]}]}
    assert jobs.delays[-1][0] == held["receiptHandle"]
    assert ranges.delays == [] and ranges.range_batches == []


def test_range_messages_still_on_the_jobs_queue_are_processed_and_handed_back_there(env):
    """Sent before a deploy made the ranges queue: the jobs queue's worker still compresses them."""
    service, store, storage, jobs, ranges, jobs_worker, range_worker = env
    job_id, file_id, key = start(service, storage)
    records = fan_out(jobs_worker, ranges, key)  # the same bodies as an older worker sent to the jobs queue
    at = time.time()
    assert store.claim_range(job_id, file_id, 4, token="someone", at=at, lease_until=at + 600).won
    response = jobs_worker.handle_batch(records)  # one batch of the jobs queue
    last = records[-1]
    assert response == {"batchItemFailures": [{"itemIdentifier": last["messageId"]}]}
    assert jobs.delays[-1][0] == last["receiptHandle"]
    assert not [d for d in ranges.delays if d[0] == last["receiptHandle"]]
    store.ranges[(job_id, file_id, 4)] = store.ranges[(job_id, file_id, 4)].evolve(lease_until=0.0)  # its holder died
    assert jobs_worker.handle_batch([dict(last, receiptHandle="rh-again")]) == {"batchItemFailures": []}
    done = store.get_file(job_id, file_id)
    assert done.state is FileState.COMPLETED and decoded(storage.objects[done.result_key]) == DATA
