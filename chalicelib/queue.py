"""SQS adapter: the worker's backoff between retries."""
from __future__ import annotations

from typing import Any


class SqsRetryQueue:
    """Changes the visibility of messages received from one queue."""

    def __init__(self, client: Any, queue_name: str) -> None:
        self._sqs = client
        self._queue_name = queue_name
        self._url: str | None = None

    @property
    def url(self) -> str:
        if self._url is None:  # one lookup per container, only when a retry happens
            self._url = self._sqs.get_queue_url(QueueName=self._queue_name)["QueueUrl"]
        return self._url

    def delay(self, receipt_handle: str, seconds: int) -> None:
        self._sqs.change_message_visibility(
            QueueUrl=self.url, ReceiptHandle=receipt_handle, VisibilityTimeout=seconds
        )
