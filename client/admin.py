"""``squeezer admin``: operator commands that use AWS credentials directly, not the API.

    admin                       the Click group, registered on the root group in cli.py
    +-- redrive-dead-letters    move the dead-letter queue's messages back to the jobs queue
    +-- create-tenant, list-tenants, rotate-token, revoke-tenant, set-limits   (admin_tenants.py)

AWS clients come from :mod:`chalicelib.aws`, the one place boto3 clients are
made, so these commands use the same region (``AWS_REGION``, then
``AWS_DEFAULT_REGION``), endpoint (``AWS_ENDPOINT_URL``, for LocalStack or
the local stack's emulator) and retry settings as the service itself.

Exit codes: 0 done; 1 some messages could not be moved (they stay on the
dead-letter queue); 2 usage error; 3 AWS could not be reached or refused
the command (credentials, a missing queue, the jobs queue refusing every
message).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import click
from botocore.exceptions import BotoCoreError, ClientError

from chalicelib.aws import AwsClients
from chalicelib.settings import AwsLocation

from . import output
from .errors import EXIT_API, EXIT_FILES_FAILED, SqueezerCliError

SQS_BATCH = 10  # the most SQS hands out per receive
EMPTY_RECEIVES = 2  # this many empty receives in a row: the dead-letter queue is empty
RECEIVE_WAIT_SECONDS = 1


class AwsUnavailable(SqueezerCliError):
    """AWS could not be reached, or refused a call the command cannot do without."""

    exit_code = EXIT_API


class MessagesNotMoved(SqueezerCliError):
    """Some messages could not be sent to the jobs queue; they are still dead letters."""

    exit_code = EXIT_FILES_FAILED


def sqs_client() -> Any:
    """An SQS client with the service's region, endpoint and retries (from the environment)."""
    return AwsClients(AwsLocation.from_env()).sqs


@dataclass
class Redriven:
    """What one redrive did."""

    moved: int = 0
    # (message id, why) of each message whose send failed: it stays on the dead-letter queue.
    not_moved: list[tuple[str, str]] = field(default_factory=list)
    # Sent, but the dead-letter queue did not delete them: they are on both queues (the worker drops the
    # duplicate of a file that is final).
    not_deleted: int = 0


class RedriveStopped(Exception):
    """A call failed in a way that every following call would fail too."""

    def __init__(self, done: Redriven, reason: str) -> None:
        super().__init__(reason)
        self.done = done
        self.reason = reason


# This many refusals in a row, none accepted in between: the jobs queue refuses everything (permissions,
# a policy, a deleted queue), not one message.
REFUSALS_IN_A_ROW = 10


def redrive(
    sqs: Any, *, source_url: str, target_url: str, limit: int | None = None, wait_seconds: int = RECEIVE_WAIT_SECONDS
) -> Redriven:
    """Move messages from ``source_url`` to ``target_url`` until the source is empty or ``limit`` moved.

    A message is deleted from the source only after the target accepted it,
    so none is lost (one may arrive twice, which the worker handles). A
    message the target refuses stays on the source, kept hidden until the
    end of the run and not sent again if it shows up again; the others go
    on. If AWS cannot be reached, a call on the dead-letter queue fails or
    the target refuses ``REFUSALS_IN_A_ROW`` messages in a row, the run
    stops (``RedriveStopped``). Messages received but not moved are made
    visible again before returning, for the next run.
    """
    run = _Run(sqs, source_url, target_url)
    try:
        empty = 0
        while empty < EMPTY_RECEIVES and (limit is None or run.done.moved < limit):
            wanted = SQS_BATCH if limit is None else min(SQS_BATCH, limit - run.done.moved)
            try:
                messages = sqs.receive_message(
                    QueueUrl=source_url,
                    MaxNumberOfMessages=wanted,
                    WaitTimeSeconds=wait_seconds,
                    MessageAttributeNames=["All"],
                ).get("Messages", [])
            except (BotoCoreError, ClientError) as exc:
                raise RedriveStopped(run.done, f"could not receive from the dead-letter queue: {exc}") from None
            # Only refused messages left (back after the queue's visibility timeout): as good as empty.
            empty = empty + 1 if run.move(messages) == 0 else 0
    finally:
        run.release()
    return run.done


class _Run:
    """One redrive: what was moved, what was refused, what to release at the end."""

    def __init__(self, sqs: Any, source_url: str, target_url: str) -> None:
        self.sqs, self.source_url, self.target_url = sqs, source_url, target_url
        self.done = Redriven()
        self.held: list[dict[str, Any]] = []  # received and not moved: made visible again at the end
        self.refused: set[str] = set()
        self.refused_in_a_row = 0

    def move(self, messages: list[dict[str, Any]]) -> int:
        """Send each message to the target, delete the sent ones from the source; return how many were new."""
        fresh = [m for m in messages if m.get("MessageId") not in self.refused]
        self.held += [m for m in messages if m.get("MessageId") in self.refused]
        sent: list[dict[str, Any]] = []
        stop = None
        for index, message in enumerate(fresh):
            try:
                self.sqs.send_message(**_send_request(self.target_url, message))
            except ClientError as exc:  # about this message (its size, its attributes...): the others may still go
                self._refuse(message, str(exc))
                if self.refused_in_a_row >= REFUSALS_IN_A_ROW:
                    self.held += fresh[index + 1 :]
                    stop = f"the jobs queue refused {self.refused_in_a_row} messages in a row: {exc}"
                    break
                continue
            except BotoCoreError as exc:  # no connection, no credentials: nothing else will go either
                self.held += fresh[index:]
                stop = f"could not send to the jobs queue: {exc}"
                break
            self.refused_in_a_row = 0
            sent.append(message)
        if sent:
            self.done.moved += len(sent)
            try:
                answer = self.sqs.delete_message_batch(
                    QueueUrl=self.source_url,
                    Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(sent)],
                )
                self.done.not_deleted += len(answer.get("Failed", []))
            except (BotoCoreError, ClientError) as exc:
                self.done.not_deleted += len(sent)
                stop = stop or f"could not delete moved messages from the dead-letter queue: {exc}"
        if stop is not None:
            raise RedriveStopped(self.done, stop)
        return len(fresh)

    def _refuse(self, message: dict[str, Any], why: str) -> None:
        self.held.append(message)
        self.refused.add(message.get("MessageId", ""))
        self.done.not_moved.append((message.get("MessageId", "?"), why))
        self.refused_in_a_row += 1

    def release(self) -> None:
        """Make the messages not moved visible again at once (best effort: else they return by themselves)."""
        for start in range(0, len(self.held), SQS_BATCH):
            entries = [
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"], "VisibilityTimeout": 0}
                for i, m in enumerate(self.held[start : start + SQS_BATCH])
            ]
            try:
                self.sqs.change_message_visibility_batch(QueueUrl=self.source_url, Entries=entries)
            except (BotoCoreError, ClientError):
                return  # they come back after the queue's visibility timeout


def _send_request(target_url: str, message: dict[str, Any]) -> dict[str, Any]:
    request: dict[str, Any] = {"QueueUrl": target_url, "MessageBody": message["Body"]}
    if message.get("MessageAttributes"):
        request["MessageAttributes"] = _attributes(message["MessageAttributes"])
    return request


def _attributes(received: dict[str, Any]) -> dict[str, Any]:
    # A received attribute may carry empty list fields that SendMessage does not take back.
    keep = ("DataType", "StringValue", "BinaryValue")
    return {name: {k: v for k, v in value.items() if k in keep} for name, value in received.items()}


@click.group()
def admin() -> None:
    """Operator commands: AWS credentials and queues directly, not the API."""


@admin.command(name="redrive-dead-letters")
@click.option(
    "--queue",
    envvar="SQUEEZER_QUEUE",
    required=True,
    metavar="NAME",
    help="The jobs queue to move the messages back to (env: SQUEEZER_QUEUE).",
)
@click.option(
    "--dlq",
    envvar="SQUEEZER_DLQ",
    required=True,
    metavar="NAME",
    help="The dead-letter queue to empty (env: SQUEEZER_DLQ).",
)
@click.option(
    "--max",
    "limit",
    type=click.IntRange(min=1),
    default=None,
    metavar="N",
    help="Move at most N messages (default: until the dead-letter queue is empty).",
)
@click.option("--json", "as_json", is_flag=True, help="Write machine-readable JSON to stdout.")
def redrive_dead_letters(queue: str, dlq: str, limit: int | None, as_json: bool) -> None:
    """Move messages from the dead-letter queue back to the jobs queue, so the worker tries them again.

    A message leaves the dead-letter queue only after the jobs queue has it:
    none is lost, and one may be delivered twice, which the worker handles.
    Stops when the dead-letter queue is empty or after --max messages.

    \b
    Examples:
      squeezer admin redrive-dead-letters
      squeezer admin redrive-dead-letters --max 10 --json
    """
    if queue == dlq:
        raise click.BadParameter("the dead-letter queue cannot be the jobs queue", param_hint="'--dlq'")
    sqs = sqs_client()
    try:
        queue_url = sqs.get_queue_url(QueueName=queue)["QueueUrl"]
        dlq_url = sqs.get_queue_url(QueueName=dlq)["QueueUrl"]
    except (BotoCoreError, ClientError) as exc:
        raise AwsUnavailable(
            f"could not look up the queues {queue!r} and {dlq!r}: {exc} "
            "(check --queue/--dlq, AWS credentials, AWS_REGION and AWS_ENDPOINT_URL)"
        ) from None
    try:
        done = redrive(sqs, source_url=dlq_url, target_url=queue_url, limit=limit)
    except RedriveStopped as stopped:
        raise AwsUnavailable(
            f"stopped after moving {stopped.done.moved} message(s) from {dlq} to {queue}: "
            f"{stopped.reason}{_left(stopped.done)}"
        ) from None
    if as_json:
        output.emit_json(
            {
                "queue": queue,
                "dead_letter_queue": dlq,
                "moved": done.moved,
                "not_moved": [{"message_id": i, "error": why} for i, why in done.not_moved],
                "not_deleted": done.not_deleted,
            }
        )
    click.echo(f"moved {done.moved} message(s) from {dlq} to {queue}", err=True)
    if done.not_deleted:
        click.echo(
            f"{done.not_deleted} moved message(s) could not be deleted from {dlq}: "
            "they are on both queues (the worker processes a file once)",
            err=True,
        )
    if done.not_moved:
        lines = [f"{len(done.not_moved)} message(s) could not be moved and stay on {dlq}:"]
        lines += [f"  {message_id}: {output.printable(why)}" for message_id, why in done.not_moved]
        raise MessagesNotMoved("\n".join(lines))


def _left(done: Redriven) -> str:
    notes = []
    if done.not_moved:
        notes.append(f"{len(done.not_moved)} refused message(s) stay on the dead-letter queue")
    if done.not_deleted:
        notes.append(f"{done.not_deleted} moved message(s) are also still on the dead-letter queue")
    return "; " + "; ".join(notes) if notes else ""


# The tenant commands register themselves on the group.
from . import admin_tenants  # noqa: E402, F401
