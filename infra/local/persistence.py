"""What the local stack keeps between runs: the emulator's data, saved to disk.

moto keeps everything in memory. The emulator saves a snapshot of the data
(not of the resources' definitions) into ``<state dir>/emulator-state/``:

    snapshot.json    DynamoDB items, SQS messages (visible or not), S3 objects'
                     keys and headers, each object naming its body in blobs/
    blobs/<sha256>   object bodies, written once (content-addressed)

It saves on a clean stop (SIGTERM/SIGINT: Ctrl-C on ``make up``, and the
SIGTERM Linux sends the emulator when the runner is killed) and every few
seconds while running, so a SIGKILL of the emulator loses at most that much.
``snapshot.json`` is replaced atomically; blobs it no longer names are
deleted afterwards, so a save cut short leaves the previous one whole.

At start the runner first creates the resources (``create_resources``, on an
empty emulator, so its idempotence is never tested against old state), then
:func:`restore` puts the data back into the tables, buckets and queues that
exist: S3 notifications are switched off while objects are put back (the
messages they caused were saved with the queue), and every saved message is
sent again, visible at once (messages that were in flight or delayed come
back right away, with a fresh receive count). Data of resources that no
longer exist is skipped with a warning.

Save order is SQS, then DynamoDB, then S3, so a save taken while work goes
on errs towards work done twice (the worker is idempotent), never a file
left ``processing`` without a message. Not kept: multipart uploads in
progress, presigned URLs' validity beyond their expiry, receive counts.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

log = logging.getLogger("infra.local.persistence")

STATE_FOLDER = "emulator-state"
SNAPSHOT_FILE = "snapshot.json"
BLOBS = "blobs"
FORMAT = 1
SNAPSHOT_SECONDS = 10.0  # a SIGKILL of the emulator loses at most this much
_CHUNK = 1 << 20
_OBJECT_HEADERS = ("ContentType", "ContentEncoding", "ContentDisposition", "ContentLanguage", "CacheControl")


def state_path(state_dir: Path) -> Path:
    return Path(state_dir) / STATE_FOLDER


# -- DynamoDB items as JSON (binary values base64) --------------------------------


def _encode(value: Any) -> Any:
    if isinstance(value, (bytes, bytearray)):
        return {"__b64__": base64.b64encode(bytes(value)).decode()}
    if isinstance(value, dict):
        return {k: _encode(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [_encode(v) for v in value]
    return value


def _decode(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {"__b64__"}:
            return base64.b64decode(value["__b64__"])
        return {k: _decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_decode(v) for v in value]
    return value


# -- saving (runs in the emulator's process) -----------------------------------------


class Saver:
    """Saves the emulator's data; remembers objects already saved between saves."""

    def __init__(self, folder: Path, *, s3: Any, dynamodb: Any, account_id: str, region: str) -> None:
        self.folder = Path(folder)
        self._s3 = s3
        self._dynamodb = dynamodb
        self._account_id = account_id
        self._region = region
        self._last: str | None = None
        self._known: dict[tuple[str, str], dict] = {}  # (bucket, key) -> saved entry
        self._load_known()

    def _load_known(self) -> None:
        try:
            saved = json.loads((self.folder / SNAPSHOT_FILE).read_text())
        except (OSError, ValueError):
            return
        for entry in saved.get("s3", []):
            if (self.folder / BLOBS / entry["blob"]).exists():
                self._known[(entry["bucket"], entry["key"])] = entry

    def save(self) -> bool:
        """Take a snapshot; returns whether anything changed since the last one."""
        snapshot = {
            "format": FORMAT,
            "sqs": self._sqs_messages(),
            "dynamodb": self._dynamodb_items(),
            "s3": self._s3_objects(),
        }
        text = json.dumps(snapshot, sort_keys=True)
        if text == self._last:
            return False
        self.folder.mkdir(parents=True, exist_ok=True)
        _write_atomically(self.folder / SNAPSHOT_FILE, text)
        self._last = text
        self._collect_garbage({entry["blob"] for entry in snapshot["s3"]})
        return True

    def _sqs_messages(self) -> dict[str, list[dict]]:
        # moto's own objects: ReceiveMessage cannot see messages in flight.
        from moto.sqs.models import sqs_backends

        saved: dict[str, list[dict]] = {}
        for name, queue in list(sqs_backends[self._account_id][self._region].queues.items()):
            with queue._messages_lock:  # noqa: SLF001 - moto has no public way to list every message
                messages = list(queue._messages)  # noqa: SLF001
            saved[name] = [
                {
                    "body": m.body,
                    "attributes": m.message_attributes,
                    "group_id": m.group_id,
                    "deduplication_id": m.deduplication_id,
                }
                for m in sorted(messages, key=lambda m: m.sent_timestamp or 0)
            ]
        return saved

    def _dynamodb_items(self) -> dict[str, list[dict]]:
        saved = {}
        for page in self._dynamodb.get_paginator("list_tables").paginate():
            for table in page.get("TableNames", []):
                items = []
                for scanned in self._dynamodb.get_paginator("scan").paginate(TableName=table):
                    items.extend(_encode(item) for item in scanned.get("Items", []))
                saved[table] = items
        return saved

    def _s3_objects(self) -> list[dict]:
        entries = []
        for bucket in self._s3.list_buckets().get("Buckets", []):
            name = bucket["Name"]
            for page in self._s3.get_paginator("list_objects_v2").paginate(Bucket=name):
                for listed in page.get("Contents", []):
                    known = self._known.get((name, listed["Key"]))
                    if known and known["etag"] == listed["ETag"] and known["size"] == listed["Size"]:
                        entries.append(known)
                        continue
                    entry = self._save_object(name, listed["Key"])
                    if entry is not None:
                        self._known[(name, listed["Key"])] = entry
                        entries.append(entry)
        return entries

    def _save_object(self, bucket: str, key: str) -> dict | None:
        try:
            response = self._s3.get_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
        except self._s3.exceptions.NoSuchKey:
            return None  # deleted since the listing
        blobs = self.folder / BLOBS
        blobs.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256()
        with tempfile.NamedTemporaryFile(dir=blobs, prefix=".part-", delete=False) as out:
            for chunk in response["Body"].iter_chunks(_CHUNK):
                digest.update(chunk)
                out.write(chunk)
        blob = digest.hexdigest()
        os.replace(out.name, blobs / blob)
        tags = self._s3.get_object_tagging(Bucket=bucket, Key=key).get("TagSet", [])
        return {
            "bucket": bucket,
            "key": key,
            "blob": blob,
            "etag": response["ETag"],
            "size": response["ContentLength"],
            "metadata": response.get("Metadata", {}),
            "headers": {h: response[h] for h in _OBJECT_HEADERS if response.get(h)},
            "checksum_sha256": response.get("ChecksumSHA256"),
            "tags": {t["Key"]: t["Value"] for t in tags},
        }

    def _collect_garbage(self, kept: set[str]) -> None:
        for path in (self.folder / BLOBS).glob("*"):
            if path.name not in kept:
                path.unlink(missing_ok=True)
        # A key deleted and written again with the same ETag must not name a deleted blob.
        self._known = {where: entry for where, entry in self._known.items() if entry["blob"] in kept}


def _write_atomically(path: Path, text: str) -> None:
    with tempfile.NamedTemporaryFile("w", dir=path.parent, prefix=f".{path.name}-", delete=False) as out:
        out.write(text)
        out.flush()
        os.fsync(out.fileno())
    os.replace(out.name, path)


# -- restoring (runs in the runner, after create_resources) -----------------------------


def restore(folder: Path, *, s3: Any, sqs: Any, dynamodb: Any) -> dict[str, int] | None:
    """Put a saved snapshot back into the emulator; None if there is none.

    Only into resources that exist; returns how many items, objects and
    messages were restored.
    """
    try:
        snapshot = json.loads((Path(folder) / SNAPSHOT_FILE).read_text())
    except FileNotFoundError:
        return None
    if snapshot.get("format") != FORMAT:
        log.warning("ignoring %s: format %s, expected %s", folder / SNAPSHOT_FILE, snapshot.get("format"), FORMAT)
        return None
    return {
        "items": _restore_items(dynamodb, snapshot["dynamodb"]),
        "objects": _restore_objects(s3, Path(folder) / BLOBS, snapshot["s3"]),
        "messages": _restore_messages(sqs, snapshot["sqs"]),
    }


def _restore_items(dynamodb: Any, tables: dict[str, list[dict]]) -> int:
    existing = set(dynamodb.list_tables().get("TableNames", []))
    count = 0
    for table, items in tables.items():
        if table not in existing:
            log.warning("saved items of table %s skipped: the table is no longer created", table)
            continue
        for start in range(0, len(items), 25):
            pending = {table: [{"PutRequest": {"Item": _decode(i)}} for i in items[start : start + 25]]}
            while pending:
                pending = dynamodb.batch_write_item(RequestItems=pending).get("UnprocessedItems") or None
        count += len(items)
    return count


def _restore_objects(s3: Any, blobs: Path, entries: Iterable[dict]) -> int:
    existing = {b["Name"] for b in s3.list_buckets().get("Buckets", [])}
    by_bucket: dict[str, list[dict]] = {}
    for entry in entries:
        by_bucket.setdefault(entry["bucket"], []).append(entry)
    count = 0
    for bucket, objects in by_bucket.items():
        if bucket not in existing:
            log.warning("saved objects of bucket %s skipped: the bucket is no longer created", bucket)
            continue
        # Their notifications were sent before the save; the messages come back with their queue.
        notifications = s3.get_bucket_notification_configuration(Bucket=bucket)
        notifications.pop("ResponseMetadata", None)
        s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration={})
        try:
            for entry in objects:
                params: dict[str, Any] = {
                    "Bucket": bucket,
                    "Key": entry["key"],
                    "Metadata": entry["metadata"],
                    **entry["headers"],
                }
                if entry.get("checksum_sha256"):
                    params["ChecksumSHA256"] = entry["checksum_sha256"]
                if entry.get("tags"):
                    params["Tagging"] = "&".join(f"{_quote(k)}={_quote(v)}" for k, v in entry["tags"].items())
                with open(blobs / entry["blob"], "rb") as body:
                    s3.put_object(Body=body, **params)
                count += 1
        finally:
            s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration=notifications)
    return count


def _quote(text: str) -> str:
    import urllib.parse

    return urllib.parse.quote(text, safe="")


def _restore_messages(sqs: Any, queues: dict[str, list[dict]]) -> int:
    count = 0
    for name, messages in queues.items():
        if not messages:
            continue
        try:
            url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
        except sqs.exceptions.QueueDoesNotExist:
            log.warning("%d saved message(s) of queue %s skipped: the queue is no longer created", len(messages), name)
            continue
        for start in range(0, len(messages), 10):
            entries = []
            for n, message in enumerate(messages[start : start + 10]):
                entry: dict[str, Any] = {"Id": str(n), "MessageBody": message["body"]}
                if message.get("attributes"):
                    entry["MessageAttributes"] = _message_attributes(message["attributes"])
                if message.get("group_id"):
                    entry["MessageGroupId"] = message["group_id"]
                if message.get("deduplication_id"):
                    entry["MessageDeduplicationId"] = message["deduplication_id"]
                entries.append(entry)
            failed = sqs.send_message_batch(QueueUrl=url, Entries=entries).get("Failed", [])
            if failed:
                raise RuntimeError(f"could not restore {len(failed)} message(s) of {name}: {failed[0]}")
            count += len(entries)
    return count


def _message_attributes(saved: dict[str, dict]) -> dict[str, dict]:
    """moto keeps message attributes as they came in (binary values base64)."""
    attributes = {}
    for name, value in saved.items():
        attribute = {"DataType": value["DataType"]}
        if value.get("StringValue") is not None:
            attribute["StringValue"] = value["StringValue"]
        if value.get("BinaryValue") is not None:
            binary = value["BinaryValue"]
            attribute["BinaryValue"] = base64.b64decode(binary) if isinstance(binary, str) else binary
        attributes[name] = attribute
    return attributes


def discard(state_dir: Path) -> bool:
    """Forget the saved data (``up --fresh``); returns whether there was any."""
    import shutil

    folder = state_path(state_dir)
    existed = folder.exists()
    shutil.rmtree(folder, ignore_errors=True)
    return existed
