"""``squeezer admin redrive-dead-letters``: straight to SQS (moto), not through the API."""

from __future__ import annotations

import json

import boto3
import pytest
from botocore.exceptions import ClientError, EndpointConnectionError
from click.testing import CliRunner

from client import admin
from client.cli import cli


def run(*args: str, expect: int):
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert result.exit_code == expect, result.output
    assert "Traceback" not in result.output
    return result


@pytest.fixture
def queues(monkeypatch):
    from moto import mock_aws

    with mock_aws():
        sqs = boto3.client("sqs", region_name="us-east-1")
        jobs = sqs.create_queue(QueueName="jobs-q")["QueueUrl"]
        dlq = sqs.create_queue(QueueName="jobs-dlq", Attributes={"VisibilityTimeout": "120"})["QueueUrl"]
        monkeypatch.setenv("SQUEEZER_QUEUE", "jobs-q")
        monkeypatch.setenv("SQUEEZER_DLQ", "jobs-dlq")
        yield sqs, jobs, dlq


def drain(sqs, url) -> list[dict]:
    found = []
    while messages := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, MessageAttributeNames=["All"]).get(
        "Messages", []
    ):
        for message in messages:
            found.append(message)
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    return found


def bodies(sqs, url) -> list[str]:
    return sorted(m["Body"] for m in drain(sqs, url))


def failing_sends(monkeypatch, fail) -> list[str]:
    """Make the command's SQS client raise ``fail(body)`` (when not None) on sending that body."""
    real, attempts = admin.sqs_client, []

    def client():
        sqs = real()
        send = sqs.send_message

        def send_message(**kwargs):
            attempts.append(kwargs["MessageBody"])
            error = fail(kwargs["MessageBody"])
            if error is not None:
                raise error
            return send(**kwargs)

        sqs.send_message = send_message
        return sqs

    monkeypatch.setattr(admin, "sqs_client", client)
    return attempts


def refused(code="InvalidParameterValue", message="nope"):
    return ClientError({"Error": {"Code": code, "Message": message}}, "SendMessage")


def test_redrive_moves_every_dead_letter_back_with_its_attributes(queues) -> None:
    sqs, jobs, dlq = queues
    for i in range(25):
        sqs.send_message(
            QueueUrl=dlq,
            MessageBody=json.dumps({"n": i}),
            MessageAttributes={"origin": {"DataType": "String", "StringValue": f"o{i}"}},
        )
    result = run("admin", "redrive-dead-letters", expect=0)
    assert "moved 25 message(s) from jobs-dlq to jobs-q" in result.stderr and result.stdout == ""
    moved = drain(sqs, jobs)
    assert sorted(json.loads(m["Body"])["n"] for m in moved) == list(range(25))
    assert all(m["MessageAttributes"]["origin"]["StringValue"] == f"o{json.loads(m['Body'])['n']}" for m in moved)
    assert drain(sqs, dlq) == []


def test_options_beat_the_environment_and_json_goes_to_stdout(queues, monkeypatch) -> None:
    sqs, jobs, dlq = queues
    monkeypatch.setenv("SQUEEZER_QUEUE", "not-this-one")
    monkeypatch.delenv("SQUEEZER_DLQ")
    sqs.send_message(QueueUrl=dlq, MessageBody="m")
    result = run("admin", "redrive-dead-letters", "--queue", "jobs-q", "--dlq", "jobs-dlq", "--json", expect=0)
    assert json.loads(result.stdout) == {
        "queue": "jobs-q",
        "dead_letter_queue": "jobs-dlq",
        "moved": 1,
        "not_moved": [],
        "not_deleted": 0,
    }
    assert bodies(sqs, jobs) == ["m"]


def test_redrive_stops_at_max(queues) -> None:
    sqs, jobs, dlq = queues
    for i in range(15):
        sqs.send_message(QueueUrl=dlq, MessageBody=str(i))
    result = run("admin", "redrive-dead-letters", "--max", "12", expect=0)
    assert "moved 12 message(s)" in result.stderr
    assert len(bodies(sqs, jobs)) == 12 and len(bodies(sqs, dlq)) == 3


def test_an_empty_dead_letter_queue_moves_nothing(queues) -> None:
    sqs, jobs, dlq = queues
    result = run("admin", "redrive-dead-letters", expect=0)
    assert "moved 0 message(s)" in result.stderr


def test_a_message_the_jobs_queue_refuses_stays_a_dead_letter_and_the_others_move(queues, monkeypatch) -> None:
    sqs, jobs, dlq = queues
    for i in range(5):
        sqs.send_message(QueueUrl=dlq, MessageBody=f"m{i}")
    attempts = failing_sends(monkeypatch, lambda body: refused(message="too big") if body == "m2" else None)
    result = run("admin", "redrive-dead-letters", expect=1)
    assert attempts.count("m2") == 1  # refused once, not tried again in the same run
    assert "moved 4 message(s) from jobs-dlq to jobs-q" in result.stderr
    assert "1 message(s) could not be moved and stay on jobs-dlq:" in result.stderr
    assert "InvalidParameterValue" in result.stderr and "too big" in result.stderr
    assert bodies(sqs, jobs) == ["m0", "m1", "m3", "m4"]
    assert bodies(sqs, dlq) == ["m2"]  # visible again at once, for the next run


def test_no_connection_to_the_jobs_queue_stops_and_loses_nothing(queues, monkeypatch) -> None:
    sqs, jobs, dlq = queues
    for i in range(3):
        sqs.send_message(QueueUrl=dlq, MessageBody=f"m{i}")
    sent = []

    def fail(body):
        sent.append(body)
        return EndpointConnectionError(endpoint_url="http://127.0.0.1:9") if len(sent) == 2 else None

    failing_sends(monkeypatch, fail)
    result = run("admin", "redrive-dead-letters", expect=3)
    assert (
        "stopped after moving 1 message(s) from jobs-dlq to jobs-q: could not send to the jobs queue" in result.stderr
    )
    assert bodies(sqs, jobs) == [sent[0]]
    assert bodies(sqs, dlq) == sorted(set(["m0", "m1", "m2"]) - {sent[0]})


def test_a_jobs_queue_that_refuses_everything_stops_the_run(queues, monkeypatch) -> None:
    sqs, jobs, dlq = queues
    for i in range(25):
        sqs.send_message(QueueUrl=dlq, MessageBody=f"m{i:02}")
    attempts = failing_sends(monkeypatch, lambda body: refused("AccessDenied", "not allowed"))
    result = run("admin", "redrive-dead-letters", expect=3)
    assert len(attempts) == admin.REFUSALS_IN_A_ROW
    assert "the jobs queue refused 10 messages in a row" in result.stderr and "AccessDenied" in result.stderr
    assert bodies(sqs, jobs) == [] and len(bodies(sqs, dlq)) == 25


def test_a_missing_queue_is_an_aws_error(queues) -> None:
    result = run("admin", "redrive-dead-letters", "--dlq", "no-such-dlq", expect=3)
    assert "could not look up the queues 'jobs-q' and 'no-such-dlq'" in result.stderr


def test_queue_names_are_required(monkeypatch) -> None:
    monkeypatch.delenv("SQUEEZER_QUEUE", raising=False)
    monkeypatch.delenv("SQUEEZER_DLQ", raising=False)
    result = run("admin", "redrive-dead-letters", expect=2)
    assert "Missing option '--queue'" in result.stderr


def test_the_dead_letter_queue_cannot_be_the_jobs_queue() -> None:
    result = run("admin", "redrive-dead-letters", "--queue", "q", "--dlq", "q", expect=2)
    assert "the dead-letter queue cannot be the jobs queue" in result.stderr


def test_aws_region_is_honoured(monkeypatch) -> None:
    from moto import mock_aws

    monkeypatch.delenv("AWS_DEFAULT_REGION")
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    with mock_aws():
        sqs = boto3.client("sqs", region_name="eu-west-1")
        sqs.create_queue(QueueName="eu-jobs")
        dlq = sqs.create_queue(QueueName="eu-dlq")["QueueUrl"]
        sqs.send_message(QueueUrl=dlq, MessageBody="from europe")
        result = run("admin", "redrive-dead-letters", "--queue", "eu-jobs", "--dlq", "eu-dlq", expect=0)
    assert "moved 1 message(s)" in result.stderr


def test_the_client_uses_aws_endpoint_url(monkeypatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:4566")
    monkeypatch.setenv("AWS_REGION", "eu-central-1")
    sqs = admin.sqs_client()
    assert sqs.meta.endpoint_url == "http://127.0.0.1:4566" and sqs.meta.region_name == "eu-central-1"
