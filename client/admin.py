"""``squeezer admin``: operator commands that use AWS credentials directly, not the API.

They read the usual AWS environment (credentials, ``AWS_REGION``, and
``AWS_ENDPOINT_URL`` for LocalStack or the local stack's emulator).
"""
from __future__ import annotations

from typing import Any

import click

from . import output
from .errors import SqueezerCliError

SQS_BATCH = 10


class AdminError(SqueezerCliError):
    """An AWS call of an admin command failed."""


def _sqs() -> Any:
    import boto3  # only the admin commands need it

    return boto3.client("sqs")


@click.group()
def admin() -> None:
    """Operator commands (AWS credentials, not the API)."""


@admin.command(name="redrive-dead-letters")
@click.option("--queue", envvar="SQUEEZER_QUEUE", required=True, metavar="NAME",
              help="The jobs queue to move messages back to (env: SQUEEZER_QUEUE).")
@click.option("--dlq", envvar="SQUEEZER_DLQ", required=True, metavar="NAME",
              help="The dead-letter queue to empty (env: SQUEEZER_DLQ).")
@click.option("--max", "limit", type=click.IntRange(min=1), default=None, metavar="N",
              help="Move at most N messages (default: until the dead-letter queue is empty).")
@click.option("--json", "as_json", is_flag=True, help="Write machine-readable JSON to stdout.")
def redrive_dead_letters(queue: str, dlq: str, limit: int | None, as_json: bool) -> None:
    """Move messages from the dead-letter queue back to the jobs queue, so the worker tries them again.

    A message is deleted from the dead-letter queue only after the jobs queue
    has it, so none is lost (one may be delivered twice, which the worker
    handles).
    """
    from botocore.exceptions import BotoCoreError, ClientError

    sqs = _sqs()
    moved = 0
    try:
        queue_url = sqs.get_queue_url(QueueName=queue)["QueueUrl"]
        dlq_url = sqs.get_queue_url(QueueName=dlq)["QueueUrl"]
        empty_polls = 0
        while empty_polls < 2 and (limit is None or moved < limit):
            wanted = SQS_BATCH if limit is None else min(SQS_BATCH, limit - moved)
            messages = sqs.receive_message(QueueUrl=dlq_url, MaxNumberOfMessages=wanted, WaitTimeSeconds=1,
                                           MessageAttributeNames=["All"]).get("Messages", [])
            if not messages:
                empty_polls += 1
                continue
            empty_polls = 0
            for message in messages:
                send: dict[str, Any] = {"QueueUrl": queue_url, "MessageBody": message["Body"]}
                if message.get("MessageAttributes"):
                    send["MessageAttributes"] = message["MessageAttributes"]
                sqs.send_message(**send)
                sqs.delete_message(QueueUrl=dlq_url, ReceiptHandle=message["ReceiptHandle"])
                moved += 1
    except (BotoCoreError, ClientError) as exc:
        raise AdminError(f"redrive stopped after {moved} message(s): {exc}") from None
    if as_json:
        output.emit_json({"moved": moved, "queue": queue, "dead_letter_queue": dlq})
    else:
        click.echo(f"moved {moved} message(s) from {dlq} to {queue}", err=True)
