"""SQS records in, deliveries out: the worker's parsing of Lambda's SQS events.

Every record is parsed on its own and defensively: whatever its body holds,
parsing never raises. A record that cannot be understood becomes a
``Malformed`` (reported as its own batch failure, so it reaches the
dead-letter queue and costs its neighbours nothing); a well-formed S3
notification becomes a ``Delivery`` with the uploads of ours it names; a
range message (the worker's own, see chalicelib/fanout.py) becomes a
``RangeDelivery``. ``range_message`` builds the body that parses back.
"""

from __future__ import annotations

import json
import logging
import urllib.parse
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from .keys import FileRef, ObjectKeys

log = logging.getLogger("squeezer.events")


@dataclass(frozen=True)
class Upload:
    """One S3 ObjectCreated record that belongs to a file of ours."""

    ref: FileRef
    key: str
    # The object's size as the notification states it (S3 sends it; a retry's
    # message does not): the worker runs small files concurrently.
    size: int | None = None


@dataclass(frozen=True)
class Delivery:
    """One received SQS message holding an S3 event notification."""

    message_id: str
    receipt_handle: str
    receive_count: int
    uploads: tuple[Upload, ...]


@dataclass(frozen=True)
class Malformed:
    """A received message that is not an S3 event notification we can read."""

    message_id: str
    receipt_handle: str
    receive_count: int
    reason: str
    raw: dict[str, Any]


@dataclass(frozen=True)
class RangeTask:
    """Compress range ``number`` of a fanned-out file."""

    ref: FileRef
    number: int


@dataclass(frozen=True)
class RangeDelivery:
    """One received SQS message holding a range message."""

    message_id: str
    receipt_handle: str
    receive_count: int
    task: RangeTask


Parsed = Delivery | RangeDelivery | Malformed

RANGE_KIND = "range"
MAX_RANGE_NUMBER = 10_000  # S3's parts per upload
_MAX_ID = 200


def range_message(task: RangeTask) -> str:
    """The body of a range message (parsed back by parse_record)."""
    ref = task.ref
    return json.dumps(
        {
            "squeezer": RANGE_KIND,
            "owner": ref.owner,
            "job_id": ref.job_id,
            "file_id": ref.file_id,
            "range": task.number,
        },
        separators=(",", ":"),
    )


class _Bad(ValueError):
    pass


def parse_records(records: Iterable[Any], keys: ObjectKeys) -> list[Parsed]:
    """Each record as a Delivery or a Malformed; never raises."""
    return [parse_record(raw, keys) for raw in records]


def parse_record(raw: Any, keys: ObjectKeys) -> Parsed:
    if not isinstance(raw, dict):
        raw = {"body": repr(raw)}
    message_id = _text(raw.get("messageId"))
    receipt_handle = _text(raw.get("receiptHandle"))
    receive_count = _receive_count(raw.get("attributes"))
    try:
        body = _body(raw.get("body"))
        if isinstance(body, dict) and "squeezer" in body:
            return RangeDelivery(message_id, receipt_handle, receive_count, _range_task(body))
        uploads = tuple(_uploads(body, keys))
    except _Bad as exc:
        return Malformed(message_id, receipt_handle, receive_count, str(exc), raw)
    return Delivery(message_id, receipt_handle, receive_count, uploads)


def _range_task(body: dict[str, Any]) -> RangeTask:
    if body.get("squeezer") != RANGE_KIND:
        raise _Bad(f"unknown squeezer message kind {str(body.get('squeezer'))[:40]!r}")
    ids = []
    for name in ("owner", "job_id", "file_id"):
        value = body.get(name)
        if not isinstance(value, str) or not value or len(value) > _MAX_ID or "/" in value:
            raise _Bad(f"range message: {name} is missing or not an id")
        ids.append(value)
    number = body.get("range")
    if isinstance(number, bool) or not isinstance(number, int) or not 1 <= number <= MAX_RANGE_NUMBER:
        raise _Bad(f"range message: range is not a number from 1 to {MAX_RANGE_NUMBER}")
    return RangeTask(FileRef(owner=ids[0], job_id=ids[1], file_id=ids[2]), number)


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _receive_count(attributes: Any) -> int:
    """SQS's ApproximateReceiveCount; 1 when missing or not a number (it only scales backoff)."""
    raw = attributes.get("ApproximateReceiveCount") if isinstance(attributes, dict) else None
    try:
        return max(1, int(str(raw)))
    except (TypeError, ValueError):
        return 1


def _body(raw: Any) -> Any:
    if not isinstance(raw, str):
        raise _Bad("the message body is not a string")
    try:
        return json.loads(raw)
    except ValueError:
        raise _Bad("the message body is not JSON") from None
    except RecursionError:
        raise _Bad("the message body is nested too deeply") from None


def _uploads(body: Any, keys: ObjectKeys) -> Iterable[Upload]:
    if not isinstance(body, dict):
        raise _Bad("the message body is not a JSON object")
    if "Records" not in body:
        if body.get("Event") == "s3:TestEvent":
            return  # S3 sends one when the notification is configured
        raise _Bad("the message body has no Records")
    records = body["Records"]
    if not isinstance(records, list):
        raise _Bad("Records is not a list")
    for index, record in enumerate(records):
        if not isinstance(record, dict):
            raise _Bad(f"Records[{index}] is not an object")
        event_name = record.get("eventName")
        if not isinstance(event_name, str):
            raise _Bad(f"Records[{index}].eventName is not a string")
        if not event_name.startswith("ObjectCreated"):
            continue
        s3 = record.get("s3")
        obj = s3.get("object") if isinstance(s3, dict) else None
        key = obj.get("key") if isinstance(obj, dict) else None
        if not isinstance(key, str):
            raise _Bad(f"Records[{index}].s3.object.key is missing or not a string")
        key = urllib.parse.unquote_plus(key)
        ref = keys.parse_upload(key)
        if ref is None:
            log.warning("object %r is not an upload of ours; ignored", key)
            continue
        size = obj.get("size") if isinstance(obj, dict) else None
        known = isinstance(size, int) and not isinstance(size, bool) and size >= 0
        yield Upload(ref=ref, key=key, size=size if known else None)
