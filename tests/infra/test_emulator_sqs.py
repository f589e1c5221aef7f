"""The emulator's SQS patch (infra.local.moto_patches._cheap_sqs_clock): moto's answers, less of its CPU."""

from __future__ import annotations

import time

import boto3
import pytest
from moto import mock_aws
from moto.sqs import models as sqs_models

from infra.local import moto_patches


@pytest.fixture
def patched_sqs(monkeypatch):
    """The patch applied in this process, and moto's own code put back after the test."""
    for cls, name in (
        (sqs_models.Message, "visible"),
        (sqs_models.Message, "delayed"),
        (sqs_models.SQSBackend, "is_message_valid_based_on_retention_period"),
    ):
        monkeypatch.setattr(cls, name, cls.__dict__[name])
    moto_patches._cheap_sqs_clock()


def test_visibility_delay_and_retention_answer_as_moto_does(patched_sqs):
    with mock_aws():
        sqs = boto3.client("sqs", region_name="us-east-1")
        url = sqs.create_queue(QueueName="q", Attributes={"MessageRetentionPeriod": "60"})["QueueUrl"]
        for n in range(30):
            sqs.send_message(QueueUrl=url, MessageBody=str(n))
        sqs.send_message(QueueUrl=url, MessageBody="later", DelaySeconds=1)
        received = []
        while batch := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=30).get(
            "Messages", []
        ):
            received += [m["Body"] for m in batch]
        assert sorted(received, key=int) == [str(n) for n in range(30)]  # every one once, the delayed one not yet
        counts = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        assert (counts["ApproximateNumberOfMessagesNotVisible"], counts["ApproximateNumberOfMessagesDelayed"]) == (
            "30",
            "1",
        )
        time.sleep(1.1)
        assert [m["Body"] for m in sqs.receive_message(QueueUrl=url)["Messages"]] == ["later"]
        backend = sqs_models.sqs_backends["123456789012"]["us-east-1"]
        queue = backend.get_queue("q")
        old = queue._messages[0]
        old.sent_timestamp -= 61_000  # past the queue's retention period
        assert not backend.is_message_valid_based_on_retention_period("q", old)
        assert backend.is_message_valid_based_on_retention_period("q", queue._messages[1])
