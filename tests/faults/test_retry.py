"""Retry: files that failed for reasons other than the file itself go round again."""

from __future__ import annotations

import hashlib
import json
import urllib.parse

import boto3
from events import receive_records, sqs_event
from tenancy import TEST_TABLE, TenantClient, create_tenant, upload_key

import app as squeezer_app

BUCKET = "squeezer-test-files"
HEADERS = {"Content-Type": "application/json"}


def upload_records(sqs, queue_url):
    return [r for r in receive_records(sqs, queue_url) if "s3:TestEvent" not in r["body"]]


def test_retry_requeues_what_a_retry_can_fix_and_it_completes(moto_aws):
    s3 = boto3.client("s3", region_name="us-east-1")
    sqs = boto3.client("sqs", region_name="us-east-1")
    good, bad = b"exhausted but fine\n" * 500, b"declared with another checksum"
    body = {
        "files": [
            {"name": "flaky.log", "size": len(good)},
            {"name": "corrupt.bin", "size": len(bad), "sha256": hashlib.sha256(b"other").hexdigest()},
            {"name": "gone.txt", "size": 4},
        ]
    }
    with TenantClient(squeezer_app.app, create_tenant(TEST_TABLE, "alice"), stage_name="test") as client:
        job = json.loads(client.http.post("/jobs", headers=HEADERS, body=json.dumps(body)).body)
        job_id = job["job_id"]
        keys = {f["name"]: upload_key(f) for f in job["files"]}
        s3.put_object(Bucket=BUCKET, Key=keys["flaky.log"], Body=good)
        s3.put_object(Bucket=BUCKET, Key=keys["gone.txt"], Body=b"gone")
        records = {
            urllib.parse.unquote_plus(json.loads(r["body"])["Records"][0]["s3"]["object"]["key"]): r
            for r in upload_records(sqs, moto_aws.queue_url)
        }
        # flaky.log and gone.txt ran out of retries (say S3 was down); gone.txt's upload then vanished
        assert client.lambda_.invoke(
            "dead_letters", sqs_event(records[keys["flaky.log"]], records[keys["gone.txt"]])
        ).payload == {"batchItemFailures": []}
        s3.delete_object(Bucket=BUCKET, Key=keys["gone.txt"])
        # corrupt.bin fails for good: its bytes are not the ones declared
        s3.put_object(Bucket=BUCKET, Key=keys["corrupt.bin"], Body=bad)
        records = upload_records(sqs, moto_aws.queue_url)
        assert client.lambda_.invoke("compress", sqs_event(*records)).payload == {"batchItemFailures": []}
        before = {f["name"]: f for f in json.loads(client.http.get(f"/jobs/{job_id}").body)["files"]}
        assert {n: (f["state"], f["error"]["code"]) for n, f in before.items()} == {
            "flaky.log": ("failed", "retries_exhausted"),
            "corrupt.bin": ("failed", "checksum_mismatch"),
            "gone.txt": ("failed", "retries_exhausted"),
        }

        response = client.http.post(f"/jobs/{job_id}/retry", headers=HEADERS, body="{}")
        assert response.status_code == 200
        outcome = json.loads(response.body)
        assert [r["name"] for r in outcome["retried"]] == ["flaky.log"]
        reasons = {s["name"]: s["reason"] for s in outcome["skipped"]}
        assert set(reasons) == {"corrupt.bin", "gone.txt"}
        assert "checksum_mismatch" in reasons["corrupt.bin"] and "gone" in reasons["gone.txt"]
        # the retry is an ordinary message on the jobs queue
        records = upload_records(sqs, moto_aws.queue_url)
        assert len(records) == 1
        assert client.lambda_.invoke("compress", sqs_event(*records)).payload == {"batchItemFailures": []}
        after = {f["name"]: f for f in json.loads(client.http.get(f"/jobs/{job_id}").body)["files"]}
        assert after["flaky.log"]["state"] == "completed" and after["flaky.log"]["error"] is None
        assert after["corrupt.bin"]["state"] == "failed"
        # nothing left to retry: an empty answer, not an error
        again = json.loads(client.http.post(f"/jobs/{job_id}/retry", headers=HEADERS, body="{}").body)
        assert again["retried"] == []


def test_retry_answers_404_and_409_in_the_error_shape(moto_aws):
    with TenantClient(squeezer_app.app, create_tenant(TEST_TABLE, "alice"), stage_name="test") as client:
        missing = client.http.post("/jobs/j_nope/retry", headers=HEADERS, body="{}")
        assert missing.status_code == 404
        assert json.loads(missing.body)["error"]["code"] == "job_not_found"
        job = json.loads(
            client.http.post("/jobs", headers=HEADERS, body=json.dumps({"files": [{"name": "a", "size": 1}]})).body
        )
        client.http.delete(f"/jobs/{job['job_id']}")
        cancelled = client.http.post(f"/jobs/{job['job_id']}/retry", headers=HEADERS, body="{}")
        assert cancelled.status_code == 409
        assert json.loads(cancelled.body)["error"]["code"] == "job_cancelled"
