#!/usr/bin/env python3
"""Smoke test of a running LocalStack (start it with infra/localstack/start.sh).

Run with any Python that has boto3 and requests, e.g.
    /work/main/.venv/bin/python infra/localstack/smoke.py
Endpoint: $LOCALSTACK_ENDPOINT (default http://127.0.0.1:4566).

Checks S3 + SQS + DynamoDB basics, then measures what LocalStack enforces on
boto3 presigned PUT URLs (signed headers, tampering, expiry, size, checksum)
and whether an S3 ObjectCreated notification reaches SQS. Prints a table of
outcomes. Exit status 1 if a case with a firm expectation (the ones real S3
also enforces) does not behave as expected; the exploratory cases only report.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import sys
import time
import urllib.parse
import uuid

import boto3
import requests
from botocore.config import Config
from botocore.exceptions import ClientError

ENDPOINT = os.environ.get("LOCALSTACK_ENDPOINT", "http://127.0.0.1:4566")
REGION = "us-east-1"
SUFFIX = uuid.uuid4().hex[:8]
BUCKET = f"squeezer-smoke-{SUFFIX}"
QUEUE = f"squeezer-smoke-{SUFFIX}"
TABLE = f"squeezer-smoke-{SUFFIX}"
CONTENT_TYPE = "application/octet-stream"

session = boto3.session.Session(aws_access_key_id="test", aws_secret_access_key="test", region_name=REGION)
cfg = Config(signature_version="s3v4", s3={"addressing_style": "path"}, retries={"max_attempts": 2})
s3 = session.client("s3", endpoint_url=ENDPOINT, config=cfg)
sqs = session.client("sqs", endpoint_url=ENDPOINT)
ddb = session.client("dynamodb", endpoint_url=ENDPOINT)

rows: list[tuple[str, str, str, str, str]] = []  # case, expected, got, stored, verdict
failures: list[str] = []


def b64sha256(data: bytes) -> str:
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


def error_code(resp: requests.Response) -> str:
    text = resp.text or ""
    start, end = text.find("<Code>"), text.find("</Code>")
    return text[start + 6 : end] if start >= 0 and end > start else ""


def stored(key: str) -> bool:
    try:
        s3.head_object(Bucket=BUCKET, Key=key)
        return True
    except ClientError:
        return False


def presign(key: str, body: bytes, expires: int = 300, **extra) -> str:
    params = {
        "Bucket": BUCKET,
        "Key": key,
        "ContentType": CONTENT_TYPE,
        "ContentLength": len(body),
        "ChecksumSHA256": b64sha256(body),
    }
    params.update(extra)
    params = {k: v for k, v in params.items() if v is not None}
    return s3.generate_presigned_url("put_object", Params=params, ExpiresIn=expires)


def signed_headers(url: str) -> str:
    q = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)
    return q.get("X-Amz-SignedHeaders", ["?"])[0]


def put(url: str, body: bytes, headers: dict[str, str]) -> requests.Response:
    return requests.put(url, data=body, headers=headers, timeout=30)


def record(case: str, expected: str | None, resp: requests.Response, key: str) -> None:
    got = f"{resp.status_code} {error_code(resp)}".strip()
    is_stored = stored(key)
    if expected is None:
        verdict = "(info)"
    else:
        ok = got.split()[0] == expected.split()[0] and (len(expected.split()) == 1 or expected == got)
        # a rejected upload must not leave an object behind
        ok = ok and (is_stored == expected.startswith("200"))
        verdict = "ok" if ok else "UNEXPECTED"
        if not ok:
            failures.append(f"{case}: expected {expected}, got {got}, stored={is_stored}")
    rows.append((case, expected or "-", got, "yes" if is_stored else "no", verdict))


def step(msg: str) -> None:
    print(f"* {msg}", flush=True)


def main() -> int:
    t0 = time.monotonic()
    step(
        f"endpoint {ENDPOINT}, health: {requests.get(ENDPOINT + '/_localstack/health', timeout=5).json().get('services', {}).get('s3')}"
    )

    # --- basics ---------------------------------------------------------
    s3.create_bucket(Bucket=BUCKET)
    step(f"bucket {BUCKET} created")
    queue_url = sqs.create_queue(QueueName=QUEUE)["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    step(f"queue created: {queue_url}")
    sqs.send_message(QueueUrl=queue_url, MessageBody="ping")
    msgs = sqs.receive_message(QueueUrl=queue_url, WaitTimeSeconds=2).get("Messages", [])
    assert msgs and msgs[0]["Body"] == "ping", msgs
    sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=msgs[0]["ReceiptHandle"])
    step("sqs send/receive ok")

    t = time.monotonic()
    ddb.create_table(
        TableName=TABLE,
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST",
    )
    ddb.get_waiter("table_exists").wait(TableName=TABLE, WaiterConfig={"Delay": 1, "MaxAttempts": 30})
    ddb.put_item(TableName=TABLE, Item={"pk": {"S": "job-1"}, "status": {"S": "PENDING"}})
    item = ddb.get_item(TableName=TABLE, Key={"pk": {"S": "job-1"}}, ConsistentRead=True)["Item"]
    assert item["status"]["S"] == "PENDING", item
    mode = ddb.describe_table(TableName=TABLE)["Table"].get("BillingModeSummary", {}).get("BillingMode")
    step(f"dynamodb table {TABLE} ({mode}) create+put+get ok in {time.monotonic() - t:.1f} s")

    # --- S3 -> SQS notification on prefix uploads/ --------------------------
    sqs.set_queue_attributes(
        QueueUrl=queue_url,
        Attributes={
            "Policy": json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Effect": "Allow",
                            "Principal": {"Service": "s3.amazonaws.com"},
                            "Action": "sqs:SendMessage",
                            "Resource": queue_arn,
                            "Condition": {"ArnLike": {"aws:SourceArn": f"arn:aws:s3:::{BUCKET}"}},
                        }
                    ],
                }
            )
        },
    )
    s3.put_bucket_notification_configuration(
        Bucket=BUCKET,
        NotificationConfiguration={
            "QueueConfigurations": [
                {
                    "QueueArn": queue_arn,
                    "Events": ["s3:ObjectCreated:*"],
                    "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": "uploads/"}]}},
                }
            ]
        },
    )
    step("bucket notification (ObjectCreated:*, prefix uploads/) -> queue configured")

    # --- presigned URL: which headers get signed ------------------------------
    body = os.urandom(1024)
    sha = b64sha256(body)
    variants = [
        ("Bucket, Key", {}),
        ("+ ContentType", {"ContentType": CONTENT_TYPE}),
        ("+ ContentLength", {"ContentLength": len(body)}),
        ("+ ChecksumSHA256", {"ChecksumSHA256": sha}),
        (
            "+ ContentType, ContentLength, ChecksumSHA256",
            {"ContentType": CONTENT_TYPE, "ContentLength": len(body), "ChecksumSHA256": sha},
        ),
    ]
    signed_rows = []
    for label, extra in variants:
        url = s3.generate_presigned_url(
            "put_object", Params={"Bucket": BUCKET, "Key": "uploads/x", **extra}, ExpiresIn=60
        )
        q = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)
        other = sorted(
            k
            for k in q
            if k
            not in {
                "X-Amz-Algorithm",
                "X-Amz-Credential",
                "X-Amz-Date",
                "X-Amz-Expires",
                "X-Amz-SignedHeaders",
                "X-Amz-Signature",
            }
        )
        signed_rows.append((label, signed_headers(url), ",".join(other) or "-"))

    # --- presigned PUT outcomes -------------------------------------------------
    good_headers = {"Content-Type": CONTENT_TYPE, "x-amz-checksum-sha256": sha}

    key = "uploads/correct.bin"
    r = put(presign(key, body), body, good_headers)
    record("correct PUT (Content-Type + x-amz-checksum-sha256 headers sent)", "200", r, key)
    if r.status_code == 200:
        head = s3.head_object(Bucket=BUCKET, Key=key, ChecksumMode="ENABLED")
        got_body = s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()
        assert got_body == body, "stored body differs"
        step(f"correct upload stored: ContentType={head['ContentType']} ChecksumSHA256={head.get('ChecksumSHA256')}")

    key = "uploads/tampered-sig.bin"
    url = presign(key, body)
    sig = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)["X-Amz-Signature"][0]
    bad_sig = sig[:-1] + ("0" if sig[-1] != "0" else "1")
    record(
        "signature: last hex char changed",
        "403 SignatureDoesNotMatch",
        put(url.replace(sig, bad_sig), body, good_headers),
        key,
    )

    key = "uploads/tampered-key.bin"
    url = presign(key, body)
    other_key = "uploads/tampered-kez.bin"
    record(
        "key in path changed (…key → …kez)",
        "403 SignatureDoesNotMatch",
        put(url.replace("tampered-key", "tampered-kez"), body, good_headers),
        other_key,
    )

    key = "uploads/tampered-expires.bin"
    url = presign(key, body, expires=60)
    record(
        "X-Amz-Expires changed 60 → 6000",
        "403 SignatureDoesNotMatch",
        put(url.replace("X-Amz-Expires=60", "X-Amz-Expires=6000"), body, good_headers),
        key,
    )

    key = "uploads/expired.bin"
    url = presign(key, body, expires=1)
    time.sleep(2.2)
    record("expired (ExpiresIn=1, PUT after 2.2 s)", "403 AccessDenied", put(url, body, good_headers), key)

    key = "uploads/wrong-ctype.bin"
    record(
        "wrong Content-Type (text/plain)",
        "403 SignatureDoesNotMatch",
        put(presign(key, body), body, {**good_headers, "Content-Type": "text/plain"}),
        key,
    )

    key = "uploads/no-ctype.bin"
    record(
        "Content-Type header omitted",
        "403 SignatureDoesNotMatch",
        put(presign(key, body), body, {"x-amz-checksum-sha256": sha}),
        key,
    )

    key = "uploads/bigger.bin"
    bigger = body + b"extra-bytes"
    record(
        f"body larger than ContentLength ({len(bigger)} > {len(body)}), checksum header of declared body",
        "403",
        put(presign(key, body), bigger, good_headers),
        key,
    )

    key = "uploads/bigger-own-sha.bin"
    record(
        "body larger than ContentLength, checksum header of the sent body",
        "403",
        put(presign(key, body), bigger, {**good_headers, "x-amz-checksum-sha256": b64sha256(bigger)}),
        key,
    )

    key = "uploads/smaller.bin"
    smaller = body[:-10]
    record(
        f"body smaller than ContentLength ({len(smaller)} < {len(body)})",
        "403",
        put(presign(key, body), smaller, good_headers),
        key,
    )

    key = "uploads/wrong-sha.bin"
    evil = os.urandom(len(body))
    record(
        "right size, other bytes, x-amz-checksum-sha256 = signed (declared) value",
        "400 BadDigest",
        put(presign(key, body), evil, good_headers),
        key,
    )

    key = "uploads/wrong-sha-header.bin"
    record(
        "right size, other bytes, x-amz-checksum-sha256 = sha of sent bytes",
        "403 SignatureDoesNotMatch",
        put(presign(key, body), evil, {**good_headers, "x-amz-checksum-sha256": b64sha256(evil)}),
        key,
    )

    key = "uploads/no-sha-header.bin"
    record(
        "x-amz-checksum-sha256 header omitted (body correct)",
        "403",
        put(presign(key, body), body, {"Content-Type": CONTENT_TYPE}),
        key,
    )

    # exploratory: a URL without ContentLength/ChecksumSHA256 (only host;content-type signed)
    key = "uploads/loose-other-body.bin"
    url = s3.generate_presigned_url(
        "put_object", Params={"Bucket": BUCKET, "Key": key, "ContentType": CONTENT_TYPE}, ExpiresIn=300
    )
    record(
        "URL without ContentLength/ChecksumSHA256: any body (5 KB)",
        None,
        put(url, os.urandom(5000), {"Content-Type": CONTENT_TYPE}),
        key,
    )

    key = "uploads/loose-bad-sha.bin"
    url = s3.generate_presigned_url(
        "put_object", Params={"Bucket": BUCKET, "Key": key, "ContentType": CONTENT_TYPE}, ExpiresIn=300
    )
    record(
        "URL without ChecksumSHA256, extra (unsigned) x-amz-checksum-sha256 header",
        None,
        put(url, body, {"Content-Type": CONTENT_TYPE, "x-amz-checksum-sha256": b64sha256(b"other")}),
        key,
    )

    # --- notification: plain put_object outside and inside the prefix -----------
    s3.put_object(Bucket=BUCKET, Key="other/not-notified.txt", Body=b"x")
    s3.put_object(Bucket=BUCKET, Key="uploads/direct.txt", Body=b"y")
    expected_keys = {
        "uploads/correct.bin",
        "uploads/direct.txt",
    } | {
        # exploratory cases that stored an object also produce an event
        k
        for k in (
            "uploads/loose-other-body.bin",
            "uploads/loose-bad-sha.bin",
            "uploads/bigger.bin",
            "uploads/bigger-own-sha.bin",
            "uploads/smaller.bin",
            "uploads/wrong-sha.bin",
        )
        if stored(k)
    }
    events: list[tuple[str, str]] = []
    others: list[str] = []
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        got = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", [])
        for m in got:
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=m["ReceiptHandle"])
            doc = json.loads(m["Body"])
            if "Records" in doc:
                for rec in doc["Records"]:
                    events.append((rec["eventName"], urllib.parse.unquote_plus(rec["s3"]["object"]["key"])))
            else:
                others.append(doc.get("Event", m["Body"][:60]))
        if {k for _, k in events} >= expected_keys and not got:
            break
    event_keys = {k for _, k in events}
    notif_ok = event_keys == expected_keys
    if not notif_ok:
        failures.append(f"notification: expected events for {sorted(expected_keys)}, got {sorted(event_keys)}")

    # --- report ---------------------------------------------------------------
    print()
    print("X-Amz-SignedHeaders in boto3 presigned put_object URLs:")
    w = max(len(r[0]) for r in signed_rows)
    print(f"  {'Params':<{w}}  {'X-Amz-SignedHeaders':<52}  other query params")
    for label, sh, other in signed_rows:
        print(f"  {label:<{w}}  {sh:<52}  {other}")
    print()
    print("Presigned PUT outcomes (URL made with ContentType, ContentLength, ChecksumSHA256 unless noted):")
    w = max(len(r[0]) for r in rows)
    print(f"  {'case':<{w}}  {'expected':<26}  {'LocalStack':<26}  stored  verdict")
    for case, exp, got, st, verdict in rows:
        print(f"  {case:<{w}}  {exp:<26}  {got:<26}  {st:<6}  {verdict}")
    print()
    print("S3 -> SQS notification (ObjectCreated:*, prefix uploads/):")
    for name, k in sorted(events, key=lambda e: e[1]):
        print(f"  {name:<28} {k}")
    if others:
        print(f"  non-record messages: {others}")
    print(
        f"  other/not-notified.txt filtered out: {'other/not-notified.txt' not in event_keys}; "
        f"rejected uploads produced no event: {not (event_keys - expected_keys)}; verdict: {'ok' if notif_ok else 'UNEXPECTED'}"
    )

    # --- cleanup ----------------------------------------------------------------
    try:
        for obj in s3.list_objects_v2(Bucket=BUCKET).get("Contents", []):
            s3.delete_object(Bucket=BUCKET, Key=obj["Key"])
        s3.delete_bucket(Bucket=BUCKET)
        sqs.delete_queue(QueueUrl=queue_url)
        ddb.delete_table(TableName=TABLE)
    except ClientError as e:  # pragma: no cover - cleanup is best effort
        print(f"cleanup: {e}")

    print()
    print(f"smoke test finished in {time.monotonic() - t0:.1f} s")
    if failures:
        print("FAILED:")
        for f in failures:
            print(f"  - {f}")
        return 1
    print("all firm expectations met")
    return 0


if __name__ == "__main__":
    sys.exit(main())
