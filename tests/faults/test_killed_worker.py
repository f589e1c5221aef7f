"""Fault: the worker process is killed (SIGKILL) half-way through a file, then a new one runs.

A moto server on loopback holds the bucket, queue and table; each worker is
a separate process that receives from the queue and runs the real
``compress`` handler path. The killed worker's message comes back once its
claim has expired (the heartbeat kept both in step), the next worker takes
the file over, and the file is completed exactly once.
"""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import boto3
import pytest
from moto.server import ThreadedMotoServer

from chalicelib.codecs import decompress_stream
from chalicelib.domain import Algorithm
from infra.resources import create_resources, stage_config

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
TEST_STAGE = stage_config("test")
LEASE, HEARTBEAT = 3, 0.3

# One worker process: receive one message, run the compress handler's path on it.
WORKER = textwrap.dedent("""
    import time
    import boto3
    from chalicelib import wiring
    from events import receive_records
    sqs = boto3.client("sqs", region_name="us-east-1")
    deadline = time.monotonic() + 30
    records = []
    while not records and time.monotonic() < deadline:
        records = [r for r in receive_records(sqs, {queue!r}, wait=1) if "s3:TestEvent" not in r["body"]]
    print("received", len(records), flush=True)
    result = wiring.get_worker().handle_batch(records)
    for record in records:
        if record["messageId"] not in {{f["itemIdentifier"] for f in result["batchItemFailures"]}}:
            sqs.delete_message(QueueUrl={queue!r}, ReceiptHandle=record["receiptHandle"])
    print("result", result, flush=True)
""")


@pytest.fixture
def emulator():
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    session = boto3.session.Session(region_name="us-east-1")
    clients = {name: session.client(name, endpoint_url=endpoint) for name in ("s3", "sqs", "dynamodb")}
    created = create_resources(TEST_STAGE, region="us-east-1", enforce_tls=False, **clients)
    yield endpoint, clients, created
    server.stop()


def start_worker(endpoint: str, queue_url: str) -> subprocess.Popen:
    # The repository and tests/ come first on the child's path, whatever the caller's PYTHONPATH holds.
    inherited = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests"), *inherited]),
        "AWS_ENDPOINT_URL": endpoint,
        "SQUEEZER_LEASE_SECONDS": str(LEASE),
        "SQUEEZER_HEARTBEAT_SECONDS": str(HEARTBEAT),
        "SQUEEZER_COMPRESS_THREADS": "1",
    }
    code = WORKER.format(queue=queue_url)
    return subprocess.Popen(
        [sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def wait_for(condition, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def test_a_worker_killed_mid_file_is_taken_over_and_the_file_completes_once(emulator):
    endpoint, clients, created = emulator
    from chalicelib.jobstore import DynamoJobStore
    from chalicelib.service import JobService
    from chalicelib.settings import Settings
    from chalicelib.storage import S3Storage

    settings = Settings.from_env({**TEST_STAGE.environment, "AWS_ENDPOINT_URL": endpoint})
    table = boto3.resource("dynamodb", region_name="us-east-1", endpoint_url=endpoint).Table(TEST_STAGE.table)
    store = DynamoJobStore(table)
    service = JobService(store, S3Storage(clients["s3"], TEST_STAGE.bucket, part_size=settings.part_size), settings)
    # brotli 11 on a few MiB of varied text: several seconds of compression
    data = b"".join(b"%d,%x,event-%d,user-%d\n" % (i, i * 7919, i % 97, i % 1013) for i in range(120_000))
    job = service.create_job(
        {"files": [{"name": "big.csv", "size": len(data)}], "algorithm": "brotli", "level": 11}, owner="public"
    )
    job_id, record = job.job.job_id, job.files[0][0]
    clients["s3"].put_object(Bucket=TEST_STAGE.bucket, Key=f"uploads/public/{job_id}/{record.file_id}", Body=data)

    first = start_worker(endpoint, created.queue_url)
    try:
        wait_for(lambda: store.get_file(job_id, record.file_id).state.value == "processing", 30, "the claim")
        held = store.get_file(job_id, record.file_id)
        time.sleep(HEARTBEAT * 3)  # a few beats: the claim is being renewed
        assert store.get_file(job_id, record.file_id).lease_until > held.lease_until
        os.kill(first.pid, signal.SIGKILL)
        first.wait(10)
    finally:
        if first.poll() is None:
            first.kill()
    killed_at = time.monotonic()
    second = start_worker(endpoint, created.queue_url)
    try:
        output, _ = second.communicate(timeout=120)
    finally:
        if second.poll() is None:
            second.kill()
    assert second.returncode == 0, output
    assert "'batchItemFailures': []" in output, output
    # the message came back only once the dead worker's claim could be taken over
    assert time.monotonic() - killed_at >= LEASE - 1

    done = store.get_file(job_id, record.file_id)
    assert done.state.value == "completed" and done.attempts == 2
    listed = clients["s3"].list_objects_v2(Bucket=TEST_STAGE.bucket, Prefix=f"results/public/{job_id}/")
    assert [o["Key"] for o in listed.get("Contents", [])] == [done.result_key]  # one result, the recorded one
    body = clients["s3"].get_object(Bucket=TEST_STAGE.bucket, Key=done.result_key)["Body"]
    plain = io.BytesIO()
    decompress_stream(body, plain, Algorithm.BROTLI)
    assert plain.getvalue() == data
