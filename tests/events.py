"""Builders for Lambda-shaped SQS events carrying S3 notifications."""

from __future__ import annotations

import json
import time
import urllib.parse
import uuid
from collections.abc import Callable


def s3_notification(bucket: str, key: str, size: int, *, event_name: str = "ObjectCreated:Put") -> dict:
    return {
        "Records": [
            {
                "eventVersion": "2.1",
                "eventSource": "aws:s3",
                "eventName": event_name,
                "s3": {
                    "bucket": {"name": bucket, "arn": f"arn:aws:s3:::{bucket}"},
                    "object": {"key": urllib.parse.quote_plus(key, safe="/"), "size": size},
                },
            }
        ]
    }


def sqs_record(body: dict | str, *, receive_count: int = 1, message_id: str | None = None) -> dict:
    return {
        "messageId": message_id or str(uuid.uuid4()),
        "receiptHandle": "rh-" + uuid.uuid4().hex,
        "body": body if isinstance(body, str) else json.dumps(body),
        "attributes": {"ApproximateReceiveCount": str(receive_count)},
        "messageAttributes": {},
        "md5OfBody": "",
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-1:000000000000:squeezer-test-jobs",
        "awsRegion": "us-east-1",
    }


def sqs_event(*records: dict) -> dict:
    return {"Records": list(records)}


def receive_records(
    sqs, queue_url: str, *, wait: int = 0, until: Callable[[list[dict]], bool] | None = None, deadline: float = 10.0
) -> list[dict]:
    """Receive every visible message and shape it as Lambda's SQS event records.

    ``until``: long-poll (for at most ``deadline`` seconds) until the records
    received satisfy it, then take whatever else is visible without waiting,
    instead of ending on a long poll of an empty queue.
    """
    records: list[dict] = []
    give_up = time.monotonic() + deadline
    while True:
        waiting = until is not None and not until(records) and time.monotonic() < give_up
        response = sqs.receive_message(
            QueueUrl=queue_url,
            MaxNumberOfMessages=10,
            WaitTimeSeconds=1 if waiting else (0 if until is not None else wait),
            AttributeNames=["All"],
        )
        messages = response.get("Messages", [])
        if not messages and not waiting:
            return records
        for message in messages:
            records.append(
                {
                    "messageId": message["MessageId"],
                    "receiptHandle": message["ReceiptHandle"],
                    "body": message["Body"],
                    "attributes": message["Attributes"],
                    "messageAttributes": {},
                    "md5OfBody": message["MD5OfBody"],
                    "eventSource": "aws:sqs",
                    "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:queue",
                    "awsRegion": "us-east-1",
                }
            )
