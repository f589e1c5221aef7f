"""Fault: malformed messages mixed with good ones, through both SQS handlers.

Before, one record of a wrong shape made ``handle_batch`` raise, so no
message of its batch was deleted and good uploads were never processed; the
dead-letter handler raised on it for the queue's whole retention.
"""

from __future__ import annotations

import json

import pytest
from events import receive_records, sqs_event, sqs_record
from tenancy import TEST_TABLE, TenantClient, create_tenant, upload_key

import app as squeezer_app

BUCKET = "squeezer-test-files"

POISON = {
    "records_not_a_list": {"Records": "abc"},
    "record_not_an_object": {"Records": [1]},
    "s3_is_a_string": {"Records": [{"eventName": "ObjectCreated:Put", "s3": "s3"}]},
    "key_is_a_number": {"Records": [{"eventName": "ObjectCreated:Put", "s3": {"object": {"key": 7}}}]},
    "no_records": {"hello": "world"},
    "body_is_a_list": [1, 2, 3],
    "event_name_not_a_string": {"Records": [{"eventName": None}]},
    "not_json": "this is not json {",
    "deeply_nested": "[" * 100_000 + "]" * 100_000,
}


def poison_record(name: str) -> dict:
    body = POISON[name]
    record = sqs_record(body if isinstance(body, str) else json.dumps(body), message_id=f"poison-{name}")
    return record


@pytest.fixture
def client(moto_aws):
    with TenantClient(squeezer_app.app, create_tenant(TEST_TABLE, "alice"), stage_name="test") as chalice_client:
        yield chalice_client


def good_uploads(client, s3, sqs, queue_url, count):
    body = {"files": [{"name": f"good-{i}.txt", "size": 600} for i in range(count)], "algorithm": "gzip"}
    job = json.loads(
        client.http.post("/jobs", headers={"Content-Type": "application/json"}, body=json.dumps(body)).body
    )
    for entry in job["files"]:
        s3.put_object(Bucket=BUCKET, Key=upload_key(entry), Body=b"good " * 120)
    records = [r for r in receive_records(sqs, queue_url) if "s3:TestEvent" not in r["body"]]
    assert len(records) == count
    return job["job_id"], records


def test_poison_shapes_mixed_with_good_records_cost_the_good_ones_nothing(client, moto_aws):
    import boto3

    s3, sqs = boto3.client("s3", region_name="us-east-1"), boto3.client("sqs", region_name="us-east-1")
    job_id, good = good_uploads(client, s3, sqs, moto_aws.queue_url, 8)
    poison = [poison_record(name) for name in POISON]
    mixed = [record for pair in zip(good, poison, strict=False) for record in pair] + poison[len(good) :]
    # Lambda hands at most 10 records per batch: 17 records in two batches
    failures = []
    for start in range(0, len(mixed), 10):
        response = client.lambda_.invoke("compress", sqs_event(*mixed[start : start + 10])).payload
        failures += [item["itemIdentifier"] for item in response["batchItemFailures"]]
    assert sorted(failures) == sorted(r["messageId"] for r in poison)  # each poison its own failure
    status = json.loads(client.http.get(f"/jobs/{job_id}").body)
    assert status["state"] == "completed" and status["counts"]["completed"] == 8


def test_the_dead_letter_handler_keeps_poison_for_an_operator_and_never_raises(client, moto_aws):
    import boto3

    s3, sqs = boto3.client("s3", region_name="us-east-1"), boto3.client("sqs", region_name="us-east-1")
    job_id, good = good_uploads(client, s3, sqs, moto_aws.queue_url, 2)
    poison = [poison_record(name) for name in POISON]
    response = client.lambda_.invoke("dead_letters", sqs_event(*poison[:5], good[0], *poison[5:])).payload
    assert response == {"batchItemFailures": []}  # all let go: nothing loops in the dead-letter queue
    kept = s3.list_objects_v2(Bucket=BUCKET, Prefix="dead-letters/")["Contents"]
    assert len(kept) == len(POISON)
    by_id = {}
    for item in kept:
        letter = json.loads(s3.get_object(Bucket=BUCKET, Key=item["Key"])["Body"].read())
        by_id[letter["record"]["messageId"]] = letter
    assert set(by_id) == {r["messageId"] for r in poison}
    assert by_id["poison-not_json"]["record"]["body"] == POISON["not_json"]  # the raw body, for an operator
    assert by_id["poison-records_not_a_list"]["reason"] == "Records is not a list"
    # the good dead letter failed its file with the reason
    files = {f["name"]: f for f in json.loads(client.http.get(f"/jobs/{job_id}").body)["files"]}
    assert files["good-0.txt"]["state"] == "failed"
    assert files["good-0.txt"]["error"]["code"] == "retries_exhausted"
    assert files["good-1.txt"]["state"] == "pending"  # untouched


def test_a_record_whose_envelope_is_broken_is_reported_alone(client, moto_aws):
    """Attributes and ids of the wrong type (a broken event source) do not raise either."""
    import boto3

    s3, sqs = boto3.client("s3", region_name="us-east-1"), boto3.client("sqs", region_name="us-east-1")
    job_id, good = good_uploads(client, s3, sqs, moto_aws.queue_url, 1)
    odd_count = dict(good[0], attributes={"ApproximateReceiveCount": "x"})
    broken = {"messageId": "broken", "receiptHandle": "rh", "body": None, "attributes": "nope"}
    response = client.lambda_.invoke("compress", sqs_event(odd_count, broken)).payload
    assert response == {"batchItemFailures": [{"itemIdentifier": "broken"}]}
    status = json.loads(client.http.get(f"/jobs/{job_id}").body)
    assert status["state"] == "completed"
