"""SQS adapter: the jobs queue as the worker and the API use it."""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Sequence
from typing import Any

from .aws import aws_errors
from .errors import AwsError

SQS_MAX_BATCH = 10


class SqsWorkQueue:
    """One queue: change the visibility of received messages, send work to it."""

    def __init__(self, client: Any, queue_name: str) -> None:
        self._sqs = client
        self._queue_name = queue_name
        self._url: str | None = None

    @property
    def url(self) -> str:
        if self._url is None:  # one lookup per container, only when it is needed
            with aws_errors(f"looking up queue {self._queue_name}"):
                self._url = str(self._sqs.get_queue_url(QueueName=self._queue_name)["QueueUrl"])
        return self._url

    def delay(self, receipt_handle: str, seconds: int) -> None:
        """Make a received message visible again after ``seconds`` (also: keep it hidden that long)."""
        with aws_errors("changing a message's visibility"):
            self._sqs.change_message_visibility(
                QueueUrl=self.url, ReceiptHandle=receipt_handle, VisibilityTimeout=seconds
            )

    def send_upload(self, bucket: str, key: str) -> None:
        """Queue an uploaded object again, shaped as S3's own ObjectCreated notification."""
        with aws_errors("queueing an upload"):
            self._sqs.send_message(QueueUrl=self.url, MessageBody=json.dumps(upload_notification(bucket, key)))

    def send_ranges(self, bodies: Sequence[str]) -> None:
        """Send range messages with SendMessageBatch, ten per request; AwsError if SQS refuses any.

        A batch is partly accepted at most: refused entries are named in the
        error, and the caller sends the file's messages again (a range's
        claim makes a duplicate harmless).
        """
        for start in range(0, len(bodies), SQS_MAX_BATCH):
            entries = [
                {"Id": str(index), "MessageBody": body}
                for index, body in enumerate(bodies[start : start + SQS_MAX_BATCH], start)
            ]
            with aws_errors("queueing range messages"):
                response = self._sqs.send_message_batch(QueueUrl=self.url, Entries=entries)
            failed = response.get("Failed") or []
            if failed:
                codes = ", ".join(sorted({str(f.get("Code", "?")) for f in failed}))
                raise AwsError(
                    f"SQS refused {len(failed)} of {len(entries)} range message(s): {codes}", aws_code="BatchFailed"
                )


def upload_notification(bucket: str, key: str) -> dict[str, Any]:
    """The smallest S3 event notification the worker's parser accepts."""
    return {
        "Records": [
            {
                "eventSource": "squeezer:retry",
                "eventName": "ObjectCreated:Retry",
                "s3": {"bucket": {"name": bucket}, "object": {"key": urllib.parse.quote_plus(key, safe="/")}},
            }
        ]
    }
