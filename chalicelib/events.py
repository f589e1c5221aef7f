"""SQS records in, deliveries out: the worker's parsing of Lambda's SQS events.

Every record is parsed on its own and defensively: whatever its body holds,
parsing never raises. A record that cannot be understood becomes a
``Malformed`` (reported as its own batch failure, so it reaches the
dead-letter queue and costs its neighbours nothing); a well-formed S3
notification becomes a ``Delivery`` with the uploads of ours it names.
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


Parsed = Delivery | Malformed


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
        uploads = tuple(_uploads(body, keys))
    except _Bad as exc:
        return Malformed(message_id, receipt_handle, receive_count, str(exc), raw)
    return Delivery(message_id, receipt_handle, receive_count, uploads)


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
        yield Upload(ref=ref, key=key)
