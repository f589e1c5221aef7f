"""End to end on the local stack: HTTP API, presigned uploads, S3 -> SQS -> bridge -> worker.

Also the bridge's contract with SQS (partial batch failures, redrive to the
dead-letter queue), checked with stub handlers on dedicated queues.
"""

from __future__ import annotations

import io
import json
import os
import threading
import time
import uuid

import pytest
import requests
from tenancy import Api

from chalicelib.codecs import decompress_stream
from chalicelib.domain import Algorithm
from infra.local.bridge import Bridge, EventSource

pytestmark = pytest.mark.integration

FINAL_JOB_STATES = {"completed", "partially_failed", "failed", "cancelled"}
JOB_DEADLINE = 60.0


def _files() -> dict[str, bytes]:
    text = "".join(f"line {i}: the quick brown fox jumps over the lazy dog\n" for i in range(4000))
    return {
        "notes.txt": text.encode(),
        "random.bin": os.urandom(300_000),
        "empty.dat": b"",
        "deep/nested/dir/data.json": json.dumps({"k": list(range(2000))}).encode(),
        "données/résumé-日本語.txt": "é à ü 日本語 ✓\n".encode() * 500,
    }


def _create_job(api: Api, files: dict[str, bytes], algorithm: str, level: int | None = None) -> dict:
    body = {"algorithm": algorithm, "files": [{"name": name, "size": len(data)} for name, data in files.items()]}
    if level is not None:
        body["level"] = level
    response = api.post("/jobs", json=body)
    assert response.status_code == 201, response.text
    return response.json()


def _upload(created: dict, bodies: dict[str, bytes]) -> None:
    with requests.Session() as session:
        for entry in created["files"]:
            upload = entry["upload"]
            response = session.request(
                upload["method"], upload["url"], data=bodies[entry["name"]], headers=upload["headers"], timeout=30
            )
            assert response.status_code == 200, f"upload of {entry['name']!r}: {response.status_code}"


def _wait_final(api: Api, job_id: str) -> dict:
    deadline = time.monotonic() + JOB_DEADLINE
    while True:
        status = api.get(f"/jobs/{job_id}")
        assert status.status_code == 200, status.text
        job = status.json()
        if job["state"] in FINAL_JOB_STATES:
            return job
        assert time.monotonic() < deadline, f"job {job_id} not final after {JOB_DEADLINE}s: {job['counts']}"
        time.sleep(0.3)


def _download(url: str, algorithm: str) -> bytes:
    response = requests.get(url, timeout=30)
    assert response.status_code == 200
    out = io.BytesIO()
    decompress_stream(io.BytesIO(response.content), out, Algorithm(algorithm))
    return out.getvalue()


# -- the whole path, over HTTP ---------------------------------------------------


@pytest.mark.parametrize("algorithm", ["zstd", "brotli", "gzip"])
def test_files_round_trip(local_stack, algorithm):
    files = _files()
    created = _create_job(Api.of(local_stack), files, algorithm)
    _upload(created, files)

    job = _wait_final(Api.of(local_stack), created["job_id"])

    assert job["state"] == "completed", job
    assert job["totals"]["files"] == len(files)
    by_name = {f["name"]: f for f in job["files"]}
    assert set(by_name) == set(files)
    for name, original in files.items():
        entry = by_name[name]
        assert entry["state"] == "completed" and entry["error"] is None, entry
        assert entry["size"] == len(original)
        assert _download(entry["download_url"], algorithm) == original, name


def test_upload_of_another_size_fails_only_that_file(local_stack):
    files = {"ok-1.txt": b"a" * 5000, "liar.bin": os.urandom(1000), "ok-2.txt": b"b" * 7000}
    created = _create_job(Api.of(local_stack), files, "zstd")
    # moto does not enforce the signed Content-Length; S3 would refuse this PUT.
    _upload(created, {**files, "liar.bin": files["liar.bin"] + b"x" * 500})

    job = _wait_final(Api.of(local_stack), created["job_id"])

    assert job["state"] == "partially_failed", job
    by_name = {f["name"]: f for f in job["files"]}
    assert by_name["liar.bin"]["state"] == "failed"
    assert by_name["liar.bin"]["error"]["code"] == "size_mismatch"
    assert by_name["liar.bin"]["download_url"] is None
    for name in ("ok-1.txt", "ok-2.txt"):
        assert by_name[name]["state"] == "completed", by_name[name]
        assert _download(by_name[name]["download_url"], "zstd") == files[name]


# -- the bridge and SQS, with stub handlers ----------------------------------------------


class Recorder:
    """A handler stand-in: records every event, answers with ``decide(records)``."""

    def __init__(self, decide=lambda records: None) -> None:
        self.events: list[dict] = []
        self._decide = decide
        self._changed = threading.Condition()

    def __call__(self, event: dict, context) -> dict | None:
        assert context.get_remaining_time_in_millis() > 0
        with self._changed:
            self.events.append(event)
            self._changed.notify_all()
        return self._decide(event["Records"])

    def deliveries(self, body: str) -> list[dict]:
        return [r for e in self.events for r in e["Records"] if r["body"] == body]

    def wait_for(self, predicate, timeout: float = 20.0) -> None:
        with self._changed:
            assert self._changed.wait_for(lambda: predicate(self), timeout), f"timed out; saw {self.events}"


def _failures(*message_ids: str) -> dict:
    return {"batchItemFailures": [{"itemIdentifier": mid} for mid in message_ids]}


def _queue(sqs, name: str, **attributes: str) -> tuple[str, str]:
    url = sqs.create_queue(QueueName=name, Attributes={k: str(v) for k, v in attributes.items()})["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return url, arn


def _depth(sqs, url: str) -> int:
    attrs = sqs.get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    )["Attributes"]
    return int(attrs["ApproximateNumberOfMessages"]) + int(attrs["ApproximateNumberOfMessagesNotVisible"])


def _source(name: str, handler, url: str, arn: str) -> EventSource:
    return EventSource(
        function_name=name,
        handler=handler,
        queue_url=url,
        queue_arn=arn,
        timeout_seconds=30,
        batch_size=10,
        window_seconds=0.5,
        concurrency=1,
    )


def test_bridge_deletes_all_but_the_reported_failures(local_stack):
    sqs = local_stack.client("sqs")
    url, arn = _queue(sqs, f"e2e-partial-{uuid.uuid4().hex[:8]}", VisibilityTimeout=2)
    for body in ("a", "b", "c"):
        sqs.send_message(QueueUrl=url, MessageBody=body)

    def fail_b_once(records):
        return _failures(
            *(r["messageId"] for r in records if r["body"] == "b" and r["attributes"]["ApproximateReceiveCount"] == "1")
        )

    handler = Recorder(fail_b_once)
    with Bridge(sqs, [_source("stub", handler, url, arn)], executor="thread", poll_seconds=1):
        handler.wait_for(lambda h: len(h.deliveries("b")) == 2)
        first = handler.events[0]["Records"]
        assert sorted(r["body"] for r in first) == ["a", "b", "c"]
        assert all(r["eventSourceARN"] == arn and r["eventSource"] == "aws:sqs" for r in first)
        assert len(handler.deliveries("a")) == len(handler.deliveries("c")) == 1  # deleted after the first call
        again = handler.deliveries("b")[1]
        assert again["messageId"] == handler.deliveries("b")[0]["messageId"]
        assert again["attributes"]["ApproximateReceiveCount"] == "2"
        deadline = time.monotonic() + 10
        while _depth(sqs, url) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _depth(sqs, url) == 0


def test_bridge_keeps_the_whole_batch_when_the_handler_raises(local_stack):
    sqs = local_stack.client("sqs")
    url, arn = _queue(sqs, f"e2e-raise-{uuid.uuid4().hex[:8]}", VisibilityTimeout=1)
    for body in ("x", "y"):
        sqs.send_message(QueueUrl=url, MessageBody=body)
    calls = []

    def raise_first_time(records):
        calls.append(len(records))
        if len(calls) == 1:
            raise RuntimeError("boom (expected by the test)")

    handler = Recorder(raise_first_time)
    with Bridge(sqs, [_source("stub", handler, url, arn)], executor="thread", poll_seconds=1):
        handler.wait_for(lambda h: len(h.deliveries("x")) >= 2 and len(h.deliveries("y")) >= 2)
    assert _depth(sqs, url) == 0


def test_message_that_always_fails_reaches_the_dead_letter_handler(local_stack):
    sqs = local_stack.client("sqs")
    name = f"e2e-redrive-{uuid.uuid4().hex[:8]}"
    dlq_url, dlq_arn = _queue(sqs, f"{name}-dlq", VisibilityTimeout=5)
    max_receive = 2  # the local stage uses SQUEEZER_MAX_RECEIVE_COUNT (5); 2 keeps this test short
    url, arn = _queue(
        sqs,
        name,
        VisibilityTimeout=1,
        RedrivePolicy=json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": max_receive}),
    )
    sqs.send_message(QueueUrl=url, MessageBody="poison")

    worker = Recorder(lambda records: _failures(*(r["messageId"] for r in records)))
    dead_letters = Recorder()
    sources = [_source("compress", worker, url, arn), _source("dead_letters", dead_letters, dlq_url, dlq_arn)]
    with Bridge(sqs, sources, executor="thread", poll_seconds=1):
        dead_letters.wait_for(lambda h: h.deliveries("poison"))
        deadline = time.monotonic() + 10
        while _depth(sqs, dlq_url) and time.monotonic() < deadline:
            time.sleep(0.2)

    assert len(worker.deliveries("poison")) == max_receive
    [record] = dead_letters.deliveries("poison")
    assert record["eventSourceARN"] == dlq_arn
    assert _depth(sqs, url) == 0 and _depth(sqs, dlq_url) == 0  # handled dead letters are deleted


def test_errors_over_real_http_come_in_the_error_shape(local_stack):
    """chalice local answers as the deployed API does: unknown route, wrong method, wrong type, too deep."""
    api = Api.of(local_stack)
    cases = [
        (api.get("/nope"), 404, "not_found"),
        (api.request("PUT", "/jobs", json={}), 405, "method_not_allowed"),
        (requests.get(f"{api.url}/jobs", timeout=10), 401, "missing_token"),
        (requests.get(f"{api.url}/jobs", headers={"Authorization": "Bearer sqz_x"}, timeout=10), 401, "invalid_token"),
        (
            api.post("/jobs", data="<a/>", headers={"Content-Type": "application/xml"}),
            415,
            "unsupported_media_type",
        ),
        (
            api.post("/jobs", data="[" * 5000 + "]" * 5000, headers={"Content-Type": "application/json"}),
            400,
            "json_too_deep",
        ),
    ]
    for response, status, code in cases:
        assert response.status_code == status, response.text
        assert response.json()["error"]["code"] == code
