"""Fault: cancels of partly completed jobs, concurrent cancels, a cancel mid-compression.

Before, a cancel deleted every result of the job while the status still
listed completed files with download URLs that answered 403, concurrent
cancels answered a mix of 200 and 409, and a cancelled file was compressed
to the end before being thrown away.
"""

from __future__ import annotations

import concurrent.futures as cf
import dataclasses
import io
import json
import threading
import time

import boto3
import requests
from events import receive_records, s3_notification, sqs_event, sqs_record
from fakes import FakeWorkQueue, InMemoryJobStore, InMemoryStorage
from tenancy import TEST_TABLE, TenantClient, create_tenant, upload_key

import app as squeezer_app
from chalicelib.codecs import decompress_stream
from chalicelib.domain import Algorithm, FileState
from chalicelib.ports import ObjectStream
from chalicelib.service import JobService
from chalicelib.worker import Worker

BUCKET = "squeezer-test-files"


def post_job(client, files):
    body = {"files": [{"name": n, "size": len(d)} for n, d in files.items()], "algorithm": "zstd"}
    job = json.loads(
        client.http.post("/jobs", headers={"Content-Type": "application/json"}, body=json.dumps(body)).body
    )
    return job["job_id"], {f["name"]: upload_key(f) for f in job["files"]}


def unsigned(status):
    """A status with each download URL cut to its path (signatures depend on the second of signing)."""
    return {
        **status,
        "files": [{**f, "download_url": (f["download_url"] or "").split("?")[0]} for f in status["files"]],
    }


def test_cancel_of_a_partly_completed_job_keeps_its_results_downloadable(moto_aws):
    s3 = boto3.client("s3", region_name="us-east-1")
    sqs = boto3.client("sqs", region_name="us-east-1")
    done_data = b"finished before the cancel\n" * 2000
    with TenantClient(squeezer_app.app, create_tenant(TEST_TABLE, "alice"), stage_name="test") as client:
        job_id, keys = post_job(client, {"done.txt": done_data, "late.txt": b"never compressed"})
        s3.put_object(Bucket=BUCKET, Key=keys["done.txt"], Body=done_data)
        records = [r for r in receive_records(sqs, moto_aws.queue_url) if "s3:TestEvent" not in r["body"]]
        assert client.lambda_.invoke("compress", sqs_event(*records)).payload == {"batchItemFailures": []}
        answers = [client.http.delete(f"/jobs/{job_id}") for _ in range(2)]
        assert [a.status_code for a in answers] == [200, 200]
        # the same answer each time (download URLs are signed afresh: compared without their signature)
        assert unsigned(json.loads(answers[0].body)) == unsigned(json.loads(answers[1].body))
        status = json.loads(client.http.get(f"/jobs/{job_id}").body)
    files = {f["name"]: f for f in status["files"]}
    assert status["state"] == "cancelled"
    assert files["late.txt"]["state"] == "cancelled" and files["late.txt"]["download_url"] is None
    assert files["done.txt"]["state"] == "completed"
    response = requests.get(files["done.txt"]["download_url"], timeout=10)
    assert response.status_code == 200
    plain = io.BytesIO()
    decompress_stream(io.BytesIO(response.content), plain, Algorithm.ZSTD)
    assert plain.getvalue() == done_data


def test_concurrent_cancels_all_answer_the_same(settings):
    # The in-memory store: moto's DynamoDB is not safe for concurrent writes to
    # one item from threads (it deep-copies items while another thread changes
    # them); the store contract tests hold the two to the same conditions.
    store = InMemoryJobStore()
    service = JobService(store, InMemoryStorage(), settings)
    created = service.create_job({"files": [{"name": f"f{i}", "size": 1} for i in range(20)]}, owner="public")
    job_id = created.job.job_id
    barrier = threading.Barrier(8)

    def cancel():
        barrier.wait(5)
        return service.cancel_job(job_id, owner="public")

    with cf.ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: cancel(), range(8)))
    assert {a.job.cancelled_at for a in answers} == {answers[0].job.cancelled_at}
    for a in answers:
        assert a.summary == answers[0].summary, (a.summary, answers[0].summary)
    assert answers[0].summary.counts["cancelled"] == 20


class _SlowBody:
    """An upload that arrives slowly: a long compression."""

    def __init__(self, data: bytes, delay: float) -> None:
        self._data, self._delay, self._pos = data, delay, 0

    def read(self, size=-1):
        time.sleep(self._delay)
        chunk = self._data[self._pos : self._pos + (size if size > 0 else len(self._data))]
        self._pos += len(chunk)
        return chunk

    def close(self):
        pass


class SlowStorage(InMemoryStorage):
    def __init__(self) -> None:
        super().__init__()
        self.started = threading.Event()

    def open_read(self, key):
        stream = super().open_read(key)
        self.started.set()
        return ObjectStream(body=_SlowBody(stream.body.read(), 0.05), size=stream.size) if stream else None


def test_a_cancel_stops_a_running_compression_within_a_heartbeat(settings):
    settings = dataclasses.replace(settings, heartbeat_seconds=0.2, lease_seconds=5)
    store, storage, queue = InMemoryJobStore(), SlowStorage(), FakeWorkQueue()
    service = JobService(store, storage, settings)
    data = bytes(range(256)) * 4096 * 64  # 64 MiB at 1 MiB per 50 ms: about 3.2 s to read
    created = service.create_job({"files": [{"name": "big.bin", "size": len(data)}]}, owner="public")
    job_id, record = created.job.job_id, created.files[0][0]
    key = f"uploads/public/{job_id}/{record.file_id}"
    storage.objects[key] = data
    worker = Worker(store, storage, queue, settings)
    message = sqs_record(s3_notification(BUCKET, key, len(data)))
    result: dict = {}
    thread = threading.Thread(target=lambda: result.update(worker.handle_batch([message])))
    thread.start()
    assert storage.started.wait(10)
    time.sleep(0.5)  # compressing, and the heartbeat has renewed the claim
    cancelled_at = time.monotonic()
    service.cancel_job(job_id, owner="public")
    thread.join(10)
    noticed = time.monotonic() - cancelled_at
    assert not thread.is_alive()
    assert noticed < 1.5, f"the worker took {noticed:.2f} s to notice the cancel"  # heartbeat 0.2 s
    assert result == {"batchItemFailures": []}  # nothing left to do for this message
    assert store.get_file(job_id, record.file_id).state is FileState.CANCELLED
    assert not any(k.startswith("results/") for k in storage.objects)  # its partial result is gone
    assert storage.aborted and queue.delays  # the writer was aborted; the visibility was extended
