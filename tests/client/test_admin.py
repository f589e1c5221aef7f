"""``squeezer retry`` (through the API) and ``squeezer admin redrive-dead-letters`` (straight to SQS)."""
from __future__ import annotations

import json

import boto3
import pytest
from click.testing import CliRunner

from client.cli import cli

from .conftest import Reply, Seen

OUTCOME = {"job_id": "j_1", "retried": [{"file_id": "f_1", "name": "a.log"}],
           "skipped": [{"file_id": "f_2", "name": "b.bin", "reason": "checksum_mismatch is not fixed by a retry"}]}


def run(*args: str, expect: int, env: dict | None = None):
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False, env=env)
    assert result.exit_code == expect, result.output
    return result


def test_retry_posts_to_the_retry_route_and_says_what_was_skipped(serve) -> None:
    server = serve(lambda seen: Reply.json(200, OUTCOME))
    result = run("--api-url", server.url, "retry", "j_1", expect=0)
    assert (server.seen[0].method, server.seen[0].path) == ("POST", "/jobs/j_1/retry")
    assert json.loads(server.seen[0].body) == {}
    assert "1 file(s) queued again" in result.output
    assert "not retried b.bin: checksum_mismatch is not fixed by a retry" in result.output


def test_retry_json_goes_to_stdout(serve) -> None:
    server = serve(lambda seen: Reply.json(200, OUTCOME))
    result = CliRunner().invoke(cli, ["--api-url", server.url, "retry", "j_1", "--json"],
                                                catch_exceptions=False)
    assert result.exit_code == 0 and json.loads(result.stdout) == OUTCOME


def test_retry_of_a_cancelled_job_is_an_api_error(serve) -> None:
    server = serve(lambda seen: Reply.json(409, {"error": {"code": "job_cancelled", "message": "job j_1 is cancelled"}}))
    result = run("--api-url", server.url, "retry", "j_1", expect=3)
    assert "409 job_cancelled" in result.output and "Traceback" not in result.output


@pytest.fixture
def queues(monkeypatch):
    from moto import mock_aws

    with mock_aws():
        sqs = boto3.client("sqs", region_name="us-east-1")
        jobs = sqs.create_queue(QueueName="jobs-q")["QueueUrl"]
        dlq = sqs.create_queue(QueueName="jobs-dlq")["QueueUrl"]
        monkeypatch.setenv("SQUEEZER_QUEUE", "jobs-q")
        monkeypatch.setenv("SQUEEZER_DLQ", "jobs-dlq")
        yield sqs, jobs, dlq


def drain(sqs, url):
    bodies = []
    while messages := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
        for message in messages:
            bodies.append(message["Body"])
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    return bodies


def test_redrive_moves_every_dead_letter_back(queues) -> None:
    sqs, jobs, dlq = queues
    for i in range(25):
        sqs.send_message(QueueUrl=dlq, MessageBody=json.dumps({"n": i}))
    result = run("admin", "redrive-dead-letters", expect=0)
    assert "moved 25 message(s) from jobs-dlq to jobs-q" in result.output
    assert sorted(json.loads(b)["n"] for b in drain(sqs, jobs)) == list(range(25))
    assert drain(sqs, dlq) == []


def test_redrive_stops_at_max(queues) -> None:
    sqs, jobs, dlq = queues
    for i in range(5):
        sqs.send_message(QueueUrl=dlq, MessageBody=str(i))
    run("admin", "redrive-dead-letters", "--max", "3", expect=0)
    assert len(drain(sqs, jobs)) == 3


def test_a_failed_send_keeps_the_message_on_the_dead_letter_queue(queues, monkeypatch) -> None:
    sqs, jobs, dlq = queues
    for i in range(3):
        sqs.send_message(QueueUrl=dlq, MessageBody=f"m{i}")
    from botocore.exceptions import ClientError

    from client import admin

    real = admin._sqs

    def failing_client():
        client = real()
        original, calls = client.send_message, []

        def send_message(**kwargs):
            calls.append(kwargs)
            if len(calls) == 2:
                raise ClientError({"Error": {"Code": "InternalError", "Message": "boom"}}, "SendMessage")
            return original(**kwargs)

        client.send_message = send_message
        return client

    monkeypatch.setattr(admin, "_sqs", failing_client)
    result = run("admin", "redrive-dead-letters", expect=1)
    assert "redrive stopped after 1 message(s)" in result.output and "Traceback" not in result.output
    assert len(drain(sqs, jobs)) == 1
    # the one whose send failed, and the one not reached, are still dead letters (in flight for now)
    counts = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["All"])["Attributes"]
    assert int(counts["ApproximateNumberOfMessages"]) + int(counts["ApproximateNumberOfMessagesNotVisible"]) == 2
