"""The worker and dead-letter handlers through chalice's test client.

Uploads go to moto's S3, whose ObjectCreated notification lands in the jobs
queue (created from infra's definition); the test receives those messages,
shapes them as Lambda's SQS event and invokes the handlers.
"""

import io
import json
import os

import pytest
from events import receive_records, sqs_event, sqs_record
from tenancy import upload_key

from chalicelib import wiring
from chalicelib.codecs import decompress_stream
from chalicelib.domain import Algorithm
from chalicelib.errors import AwsUnreachable

BUCKET = "squeezer-test-files"


def create(client, files, algorithm="zstd", level=3):
    body = {"files": [{"name": n, "size": len(d)} for n, d in files.items()], "algorithm": algorithm, "level": level}
    job = json.loads(
        client.http.post("/jobs", headers={"Content-Type": "application/json"}, body=json.dumps(body)).body
    )
    return job, {f["name"]: upload_key(f) for f in job["files"]}


def upload_all(s3, files, keys):
    for name, data in files.items():
        s3.put_object(Bucket=BUCKET, Key=keys[name], Body=data)


def upload_records(sqs, queue_url):
    """The upload events in the queue; S3's one-off TestEvent is deleted."""
    records = []
    for record in receive_records(sqs, queue_url):
        if "s3:TestEvent" in record["body"]:
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=record["receiptHandle"])
        else:
            records.append(record)
    return records


def status(client, job_id):
    return json.loads(client.http.get(f"/jobs/{job_id}").body)


@pytest.mark.parametrize("algorithm", list(Algorithm))
def test_upload_event_to_completed_status_with_download(client, aws, tenant, algorithm):
    s3, sqs, created = aws
    files = {"a.log": b"line\n" * 30000, "bin/random.dat": os.urandom(70000), "empty": b""}
    job, keys = create(client, files, algorithm.value, 5)
    upload_all(s3, files, keys)
    records = upload_records(sqs, created.queue_url)
    assert len(records) == 3
    assert len({r["messageId"] for r in records}) == 3
    result = client.lambda_.invoke("compress", sqs_event(*records))
    assert result.payload == {"batchItemFailures": []}
    body = status(client, job["job_id"])
    assert body["state"] == "completed" and body["counts"]["completed"] == 3
    summary = json.loads(client.http.get(f"/jobs/{job['job_id']}/summary").body)
    assert summary["state"] == "completed" and summary["counts"]["completed"] == 3
    assert summary["counts"]["open"] == 0 and summary["totals"] == body["totals"]
    assert body["totals"]["bytes_in"] == sum(len(d) for d in files.values())
    for entry in body["files"]:
        assert entry["state"] == "completed" and entry["attempts"] == 1
        assert entry["download_name"] == entry["name"].rsplit("/", 1)[-1] + algorithm.extension
        assert entry["timings"]["finished_at"] >= entry["timings"]["started_at"]
        file_id = entry["file_id"]
        listed = s3.list_objects_v2(
            Bucket=BUCKET, Prefix=f"results/{tenant.tenant.tenant_id}/{job['job_id']}/{file_id}/"
        )["Contents"]
        assert len(listed) == 1 and listed[0]["Key"].endswith(algorithm.extension)  # one result per file
        obj = s3.get_object(Bucket=BUCKET, Key=listed[0]["Key"])
        assert obj["Metadata"]["algorithm"] == algorithm.value
        plain = io.BytesIO()
        decompress_stream(obj["Body"], plain, algorithm)
        assert plain.getvalue() == files[entry["name"]]
        assert entry["compressed_size"] == obj["ContentLength"]
    assert body["files"][0]["ratio"] < 0.1  # a.log


def test_duplicate_s3_events_count_once(client, aws):
    s3, sqs, created = aws
    files = {"a": b"abc" * 1000}
    job, keys = create(client, files)
    upload_all(s3, files, keys)
    records = upload_records(sqs, created.queue_url)
    copy = dict(records[0], messageId="another-delivery-of-the-same-event")
    assert client.lambda_.invoke("compress", sqs_event(records[0], copy)).payload == {"batchItemFailures": []}
    assert client.lambda_.invoke("compress", sqs_event(records[0])).payload == {"batchItemFailures": []}
    body = status(client, job["job_id"])
    assert body["totals"]["bytes_in"] == 3000 and body["files"][0]["attempts"] == 1


def test_one_poison_record_is_the_only_failure_of_its_batch(client, aws, monkeypatch):
    s3, sqs, created = aws
    files = {"ok1": b"1" * 1000, "poison": b"2" * 1000, "ok2": b"3" * 1000}
    job, keys = create(client, files)
    upload_all(s3, files, keys)
    records = upload_records(sqs, created.queue_url)
    storage = wiring.get_worker()._storage
    real_open = storage.open_read

    def failing_open(key, **kw):
        if key == keys["poison"]:
            raise AwsUnreachable("EndpointConnectionError: could not connect to http://s3.invalid")
        return real_open(key, **kw)

    monkeypatch.setattr(storage, "open_read", failing_open)
    payload = client.lambda_.invoke("compress", sqs_event(*records)).payload
    poison_id = next(r["messageId"] for r in records if keys["poison"].replace("/", "%2F") in r["body"])
    assert payload == {"batchItemFailures": [{"itemIdentifier": poison_id}]}
    by_name = {f["name"]: f for f in status(client, job["job_id"])["files"]}
    assert by_name["ok1"]["state"] == by_name["ok2"]["state"] == "completed"
    assert by_name["poison"]["state"] == "queued"
    assert by_name["poison"]["error"]["code"] == "connection_error"


def test_transient_failure_then_success(client, aws, monkeypatch):
    s3, sqs, created = aws
    files = {"a": b"x" * 5000}
    job, keys = create(client, files)
    upload_all(s3, files, keys)
    records = upload_records(sqs, created.queue_url)
    storage = wiring.get_worker()._storage
    real_open, calls = storage.open_read, []

    def flaky_open(key, **kw):
        calls.append(key)
        if len(calls) == 1:
            raise AwsUnreachable("EndpointConnectionError: could not connect to http://s3.invalid")
        return real_open(key, **kw)

    monkeypatch.setattr(storage, "open_read", flaky_open)
    assert client.lambda_.invoke("compress", sqs_event(*records)).payload["batchItemFailures"]
    assert status(client, job["job_id"])["files"][0]["state"] == "queued"
    retry = dict(records[0], attributes={**records[0]["attributes"], "ApproximateReceiveCount": "2"})
    assert client.lambda_.invoke("compress", sqs_event(retry)).payload == {"batchItemFailures": []}
    entry = status(client, job["job_id"])["files"][0]
    assert (entry["state"], entry["attempts"], entry["error"]) == ("completed", 2, None)


def test_repeated_failure_goes_to_the_dead_letter_handler_and_shows_on_status(client, aws, monkeypatch):
    s3, sqs, created = aws
    files = {"doomed": b"d" * 100, "fine": b"f" * 100}
    job, keys = create(client, files)
    upload_all(s3, files, keys)
    records = {r["body"]: r for r in upload_records(sqs, created.queue_url)}
    doomed = next(r for b, r in records.items() if keys["doomed"].replace("/", "%2F") in b)
    storage = wiring.get_worker()._storage
    real_open = storage.open_read
    monkeypatch.setattr(
        storage,
        "open_read",
        lambda key, **kw: (
            (_ for _ in ()).throw(AwsUnreachable("EndpointConnectionError: could not connect to http://s3.invalid"))
            if key == keys["doomed"]
            else real_open(key, **kw)
        ),
    )
    client.lambda_.invoke("compress", sqs_event(*records.values()))
    for count in (2, 3):  # the queue's maxReceiveCount in the test stage is 3
        again = dict(doomed, attributes={**doomed["attributes"], "ApproximateReceiveCount": str(count)})
        assert client.lambda_.invoke("compress", sqs_event(again)).payload["batchItemFailures"]
    assert status(client, job["job_id"])["state"] == "processing"
    # SQS moves it to the dead-letter queue; its handler records the failure.
    result = client.lambda_.invoke("dead_letters", sqs_event(sqs_record(doomed["body"])))
    assert result.payload == {"batchItemFailures": []}
    body = status(client, job["job_id"])
    assert body["state"] == "partially_failed"
    summary = json.loads(client.http.get(f"/jobs/{job['job_id']}/summary").body)
    assert (summary["state"], summary["counts"]["failed"], summary["counts"]["completed"]) == ("partially_failed", 1, 1)
    entry = next(f for f in body["files"] if f["name"] == "doomed")
    assert entry["state"] == "failed" and entry["attempts"] == 3
    assert entry["error"]["code"] == "retries_exhausted"
    assert "connection_error" in entry["error"]["message"]


def test_size_differs_from_declared_fails_the_file_at_once(client, aws):
    s3, sqs, created = aws
    job, keys = create(client, {"a": b"12345"})
    s3.put_object(Bucket=BUCKET, Key=keys["a"], Body=b"123456789")  # moto does not enforce the signed length
    records = upload_records(sqs, created.queue_url)
    assert client.lambda_.invoke("compress", sqs_event(*records)).payload == {"batchItemFailures": []}
    entry = status(client, job["job_id"])["files"][0]
    assert (entry["state"], entry["error"]["code"]) == ("failed", "size_mismatch")
    assert "5 bytes" in entry["error"]["message"] and "9 bytes" in entry["error"]["message"]


def test_retry_delay_is_set_on_the_real_queue(client, aws, monkeypatch):
    s3, sqs, created = aws
    job, keys = create(client, {"a": b"abc"})
    upload_all(s3, {"a": b"abc"}, keys)
    records = upload_records(sqs, created.queue_url)
    storage = wiring.get_worker()._storage
    monkeypatch.setattr(
        storage,
        "open_read",
        lambda key, **kw: (_ for _ in ()).throw(
            AwsUnreachable("EndpointConnectionError: could not connect to http://s3.invalid")
        ),
    )
    assert client.lambda_.invoke("compress", sqs_event(*records)).payload["batchItemFailures"]
    # The message is in flight with the backoff as its visibility timeout: not receivable now.
    assert receive_records(sqs, created.queue_url) == []
    attrs = sqs.get_queue_attributes(
        QueueUrl=created.queue_url, AttributeNames=["ApproximateNumberOfMessagesNotVisible"]
    )
    assert attrs["Attributes"]["ApproximateNumberOfMessagesNotVisible"] == "1"
