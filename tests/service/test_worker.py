import dataclasses
import hashlib
import io
import logging
import os

import pytest
from events import s3_notification, sqs_record
from fakes import FakeWorkQueue, InMemoryJobStore, InMemoryStorage

from chalicelib.codecs import decompress_stream
from chalicelib.domain import Algorithm, FileState
from chalicelib.errors import AwsError, AwsUnreachable
from chalicelib.service import JobService
from chalicelib.worker import Worker, backoff_seconds

BUCKET = "squeezer-test-files"


@pytest.fixture
def env(settings):
    store, storage, queue = InMemoryJobStore(), InMemoryStorage(), FakeWorkQueue()
    service = JobService(store, storage, settings)
    worker = Worker(store, storage, queue, settings)
    return service, worker, store, storage, queue


def make_job(service, storage, files, algorithm="zstd", level=3, sha=False):
    body = {
        "algorithm": algorithm,
        "level": level,
        "files": [
            {"name": n, "size": len(d), **({"sha256": hashlib.sha256(d).hexdigest()} if sha else {})}
            for n, d in files.items()
        ],
    }
    created = service.create_job(body, owner="public")
    keys = {}
    for record, _ in created.files:
        key = f"uploads/public/{created.job.job_id}/{record.file_id}"
        storage.objects[key] = files[record.name]
        keys[record.name] = key
    return created.job.job_id, keys


def state(service, job_id):
    status = service.get_status(job_id, owner="public")
    # GET /jobs/{id}/summary reads less but always agrees with the full status.
    _, summary = service.get_summary(job_id, owner="public")
    assert summary == status.summary
    return {f.name: f for f in status.files}


def record_for(key, size, **kw):
    return sqs_record(s3_notification(BUCKET, key, size), **kw)


@pytest.mark.parametrize("algorithm", list(Algorithm))
def test_success_writes_a_verified_result_and_removes_the_upload(env, algorithm):
    service, worker, store, storage, _ = env
    data = os.urandom(1000) + b"text " * 50000
    job_id, keys = make_job(service, storage, {"a.txt": data}, algorithm.value, sha=True)
    response = worker.handle_batch([record_for(keys["a.txt"], len(data))])
    assert response == {"batchItemFailures": []}
    record = state(service, job_id)["a.txt"]
    assert record.state is FileState.COMPLETED and record.attempts == 1
    result = storage.objects[record.result_key]
    assert record.compressed_size == len(result) < len(data)
    plain = io.BytesIO()
    decompress_stream(io.BytesIO(result), plain, algorithm)
    assert plain.getvalue() == data
    assert storage.metadata[record.result_key]["original-size"] == str(len(data))
    assert storage.metadata[record.result_key]["original-sha256"] == hashlib.sha256(data).hexdigest()
    assert "original-crc32" in storage.tags[record.result_key]
    assert keys["a.txt"] not in storage.objects


def test_a_large_file_is_compressed_with_the_settings_threads_and_job_size(settings, monkeypatch):
    import chalicelib.worker as worker_module

    seen = []
    real = worker_module.compress_stream

    def spy(*args, **kwargs):
        seen.append((kwargs["threads"], kwargs["job_size"]))
        return real(*args, **kwargs)

    monkeypatch.setattr(worker_module, "compress_stream", spy)
    tuned = dataclasses.replace(settings, compress_threads=2, threads_min_size=1 << 20, zstd_job_size=512 * 1024)
    store, storage = InMemoryJobStore(), InMemoryStorage()
    service, worker = JobService(store, storage, tuned), Worker(store, storage, FakeWorkQueue(), tuned)
    data = b"log line " * 300_000  # 2.6 MiB: above threads_min_size, several 512 KiB jobs
    job_id, keys = make_job(service, storage, {"big.log": data, "small.log": b"tiny"})
    for name, payload in (("big.log", data), ("small.log", b"tiny")):
        assert worker.handle_batch([record_for(keys[name], len(payload))]) == {"batchItemFailures": []}
    assert seen == [(2, 512 * 1024), (0, 512 * 1024)]  # threads only from threads_min_size up
    record = state(service, job_id)["big.log"]
    plain = io.BytesIO()
    decompress_stream(io.BytesIO(storage.objects[record.result_key]), plain, Algorithm.ZSTD)
    assert record.state is FileState.COMPLETED and plain.getvalue() == data


def test_duplicate_delivery_does_not_compress_twice(env):
    service, worker, store, storage, _ = env
    job_id, keys = make_job(service, storage, {"a": b"x" * 5000})
    first = record_for(keys["a"], 5000)
    assert worker.handle_batch([first, record_for(keys["a"], 5000)]) == {"batchItemFailures": []}
    worker.handle_batch([first])  # the same message again, later
    record = state(service, job_id)["a"]
    assert record.state is FileState.COMPLETED and record.attempts == 1


def test_live_lease_blocks_a_concurrent_duplicate_but_an_expired_one_does_not(env):
    service, worker, store, storage, queue = env
    job_id, keys = make_job(service, storage, {"a": b"x" * 100})
    file_id = keys["a"].rsplit("/", 1)[1]
    at = worker._clock()
    assert store.claim_file(job_id, file_id, token="someone-else", at=at, lease_until=at + 600).won
    duplicate = record_for(keys["a"], 100)
    response = worker.handle_batch([duplicate])
    # left to the holder; the message comes back once the claim could have expired
    assert response == {"batchItemFailures": [{"itemIdentifier": duplicate["messageId"]}]}
    assert queue.delays[-1][0] == duplicate["receiptHandle"] and 600 <= queue.delays[-1][1] <= 602
    assert state(service, job_id)["a"].state is FileState.PROCESSING
    store.files[(job_id, file_id)] = store.files[(job_id, file_id)].evolve(lease_until=0.0)  # the holder died
    assert worker.handle_batch([record_for(keys["a"], 100, receive_count=2)]) == {"batchItemFailures": []}
    assert state(service, job_id)["a"].state is FileState.COMPLETED


def test_a_final_file_never_moves_back(env):
    service, worker, store, storage, _ = env
    job_id, keys = make_job(service, storage, {"a": b"abc"})
    worker.handle_batch([record_for(keys["a"], 3)])
    file_id = keys["a"].rsplit("/", 1)[1]
    assert not store.mark_queued(job_id, file_id, 1.0)
    assert not store.claim_file(job_id, file_id, token="t", at=1e12, lease_until=2e12).won
    assert not store.fail_file(job_id, file_id, error=None, at=1.0)


def test_poison_record_is_the_only_one_reported(env):
    service, worker, store, storage, queue = env
    job_id, keys = make_job(service, storage, {"good1": b"1" * 100, "bad": b"2" * 100, "good2": b"3" * 100})
    storage.read_faults[keys["bad"]] = [AwsUnreachable("EndpointConnectionError: could not connect to http://s3")]
    records = [record_for(keys[n], 100) for n in ("good1", "bad", "good2")]
    response = worker.handle_batch(records)
    assert response == {"batchItemFailures": [{"itemIdentifier": records[1]["messageId"]}]}
    files = state(service, job_id)
    assert files["good1"].state is files["good2"].state is FileState.COMPLETED
    assert files["bad"].state is FileState.QUEUED
    assert files["bad"].error.code == "connection_error"
    assert queue.delays and queue.delays[0][0] == records[1]["receiptHandle"]


def test_transient_failure_then_success(env):
    service, worker, store, storage, queue = env
    job_id, keys = make_job(service, storage, {"a": b"hello" * 1000})
    throttled = AwsError("reading: AWS said SlowDown", aws_code="SlowDown")
    storage.read_faults[keys["a"]] = [throttled]
    first = record_for(keys["a"], 5000)
    assert worker.handle_batch([first])["batchItemFailures"]
    assert state(service, job_id)["a"].state is FileState.QUEUED
    retry = dict(first, attributes={"ApproximateReceiveCount": "2"})
    assert worker.handle_batch([retry]) == {"batchItemFailures": []}
    record = state(service, job_id)["a"]
    assert record.state is FileState.COMPLETED and record.attempts == 2 and record.error is None


def test_repeated_failure_then_dead_letter_marks_failed_with_the_error(env):
    service, worker, store, storage, queue = env
    job_id, keys = make_job(service, storage, {"a": b"data" * 100})
    storage.read_faults[keys["a"]] = [
        AwsUnreachable("EndpointConnectionError: could not connect to http://s3") for _ in range(3)
    ]
    message = record_for(keys["a"], 400)
    for count in (1, 2, 3):
        redelivered = dict(message, attributes={"ApproximateReceiveCount": str(count)})
        assert worker.handle_batch([redelivered])["batchItemFailures"]
    assert [seconds for _, seconds in queue.delays] == sorted(seconds for _, seconds in queue.delays)
    assert worker.handle_dead_letters([dict(message, attributes={"ApproximateReceiveCount": "1"})]) == {
        "batchItemFailures": []
    }
    record = state(service, job_id)["a"]
    assert record.state is FileState.FAILED
    assert record.error.code == "retries_exhausted"
    assert "connection_error" in record.error.message and "3 attempt" in record.error.message


@pytest.mark.parametrize(
    ("mutate", "code"),
    [
        (lambda data: data + b"!", "size_mismatch"),
        (lambda data: data[::-1], "checksum_mismatch"),
        (None, "object_missing"),
    ],
)
def test_permanent_errors_fail_at_once_without_retries(env, mutate, code):
    service, worker, store, storage, queue = env
    data = b"0123456789" * 100
    job_id, keys = make_job(service, storage, {"a": data}, sha=True)
    if mutate is None:
        del storage.objects[keys["a"]]
    else:
        storage.objects[keys["a"]] = mutate(data)
    assert worker.handle_batch([record_for(keys["a"], len(data))]) == {"batchItemFailures": []}
    record = state(service, job_id)["a"]
    assert (record.state, record.error.code, record.attempts) == (FileState.FAILED, code, 1)
    assert queue.delays == []
    assert not any(k.startswith("results/") for k in storage.objects)


def test_cancelled_job_ignores_late_uploads_and_drops_them(env):
    service, worker, store, storage, _ = env
    job_id, keys = make_job(service, storage, {"a": b"abc"})
    service.cancel_job(job_id, owner="public")
    storage.objects[keys["a"]] = b"abc"  # uploaded after the cancel
    assert worker.handle_batch([record_for(keys["a"], 3)]) == {"batchItemFailures": []}
    assert keys["a"] not in storage.objects
    assert state(service, job_id)["a"].state is FileState.CANCELLED


def test_foreign_keys_and_test_events_are_acknowledged_garbage_is_reported(env):
    _, worker, *_ = env
    garbage = sqs_record("not json")
    records = [
        sqs_record({"Service": "Amazon S3", "Event": "s3:TestEvent"}),
        sqs_record(s3_notification(BUCKET, "elsewhere/file", 3)),
        sqs_record(s3_notification(BUCKET, "uploads/public/j_unknown/f_unknown", 3)),
        garbage,
    ]
    assert worker.handle_batch(records) == {"batchItemFailures": [{"itemIdentifier": garbage["messageId"]}]}


def test_records_are_handed_back_when_time_runs_out(env, settings, caplog):
    service, _, store, storage, queue = env
    settings = dataclasses.replace(settings, stop_margin_ms=30_000)
    worker = Worker(store, storage, queue, settings)
    job_id, keys = make_job(service, storage, {"a": b"abc"})
    record = record_for(keys["a"], 3)
    with caplog.at_level(logging.WARNING, logger="squeezer.worker"):
        response = worker.handle_batch([record], remaining_ms=lambda: settings.stop_margin_ms - 1)
    assert response == {"batchItemFailures": [{"itemIdentifier": record["messageId"]}]}
    assert state(service, job_id)["a"].state is FileState.QUEUED
    assert queue.delays == [(record["receiptHandle"], 0)]  # visible again at once
    # the hand-back is logged with the message ids and the time left
    assert record["messageId"] in caplog.text and "29999 ms left" in caplog.text


def test_backoff_grows_and_is_capped():
    delays = [backoff_seconds(n, 5, 300) for n in range(1, 12)]
    assert delays[0] < 11 and delays[3] >= 40 and max(delays) <= 305


def test_a_result_that_could_not_be_recorded_is_kept_and_the_file_is_retaken_after_its_claim_expires(env):
    service, worker, store, storage, queue = env
    job_id, keys = make_job(service, storage, {"a": b"abc" * 100})
    file_id = keys["a"].rsplit("/", 1)[1]
    message = record_for(keys["a"], 300)
    real_complete = store.complete_file
    store.complete_file = lambda *a, **k: (_ for _ in ()).throw(ConnectionError("DynamoDB went away"))
    assert worker.handle_batch([message])["batchItemFailures"]  # the result could not be recorded
    first = [k for k in storage.objects if k.startswith("results/")]
    assert len(first) == 1  # kept: the write may have landed
    assert state(service, job_id)["a"].state is FileState.PROCESSING  # its claim is still live
    store.complete_file = real_complete
    again = dict(message, attributes={"ApproximateReceiveCount": "2"})  # not even the same message...
    assert worker.handle_batch([again])["batchItemFailures"]
    assert state(service, job_id)["a"].state is FileState.PROCESSING
    store.files[(job_id, file_id)] = store.files[(job_id, file_id)].evolve(lease_until=0.0)  # ...until it expires
    assert worker.handle_batch([dict(message, attributes={"ApproximateReceiveCount": "3"})]) == {
        "batchItemFailures": []
    }
    record = state(service, job_id)["a"]
    assert record.state is FileState.COMPLETED and record.attempts == 2
    assert record.result_key not in first and storage.objects[record.result_key]


def test_result_carries_mode_mtime_and_its_crc64nvme(env):
    from chalicelib import multipart

    service, worker, store, storage, _ = env
    data = b"script " * 3000
    body = {"files": [{"name": "run.sh", "size": len(data), "mode": 0o755, "mtime": 1700000000.5}]}
    created = service.create_job(body, owner="public")
    record, _ = created.files[0]
    key = f"uploads/public/{created.job.job_id}/{record.file_id}"
    storage.objects[key] = data
    assert worker.handle_batch([record_for(key, len(data))]) == {"batchItemFailures": []}
    done = state(service, created.job.job_id)["run.sh"]
    result = storage.objects[done.result_key]
    assert done.result_crc64nvme == multipart.encode(multipart.crc64nvme(result))
    assert (done.mode, done.mtime) == (0o755, 1700000000.5)
    meta = storage.metadata[done.result_key]
    assert (meta["original-mode"], meta["original-mtime"]) == ("755", "1700000000.5")
