"""End to end on LocalStack without the HTTP layer: job -> presigned PUT -> S3 event -> worker -> download.

Then the uploads S3 must refuse (tampered, expired, too large, wrong type,
wrong content): each is rejected, stores nothing and moves no job forward.
"""

from __future__ import annotations

import datetime
import hashlib
import io
import os
import time
import urllib.parse

import pytest
import requests
from botocore.exceptions import ClientError
from events import receive_records

from chalicelib.codecs import decompress_stream
from chalicelib.domain import Algorithm, FileState
from chalicelib.keys import FileRef, ObjectKeys

pytestmark = pytest.mark.localstack
OWNER = "public"


def _create(stack, data: bytes, *, content_type: str = "application/octet-stream", algorithm: str = "zstd"):
    created = stack.service.create_job(
        {
            "files": [
                {
                    "name": "data/sample.bin",
                    "size": len(data),
                    "content_type": content_type,
                    "sha256": hashlib.sha256(data).hexdigest(),
                }
            ],
            "algorithm": algorithm,
        },
        owner=OWNER,
    )
    record, upload = created.files[0]
    return created.job.job_id, record, upload


def _stored(stack, key: str) -> bool:
    try:
        stack.s3.head_object(Bucket=stack.cfg.bucket, Key=key)
        return True
    except ClientError:
        return False


def _upload_events(stack, *, wait: int) -> list[dict]:
    records = receive_records(stack.sqs, stack.created.queue_url, wait=wait)
    events = []
    for record in records:
        if "s3:TestEvent" in record["body"]:  # S3 sends one when the notification is set
            stack.sqs.delete_message(QueueUrl=stack.created.queue_url, ReceiptHandle=record["receiptHandle"])
        else:
            events.append(record)
    return events


def _state(stack, job_id: str):
    status = stack.service.get_status(job_id, owner=OWNER)
    return status.files[0].state


def test_job_upload_event_worker_download(stack):
    data = (b"squeezer on localstack " * 20000) + os.urandom(2048)
    job_id, record, upload = _create(stack, data)
    assert upload.method == "PUT"
    response = requests.put(upload.url, data=data, headers=upload.headers, timeout=30)
    assert response.status_code == 200, response.text

    key = ObjectKeys().upload(FileRef(OWNER, job_id, record.file_id))
    deadline = time.monotonic() + 20
    events: list[dict] = []
    while not events and time.monotonic() < deadline:
        events = [e for e in _upload_events(stack, wait=2) if urllib.parse.quote(key) in e["body"] or key in e["body"]]
    assert len(events) == 1, "no ObjectCreated event for the upload reached the jobs queue"

    assert stack.worker.handle_batch(events) == {"batchItemFailures": []}
    for event in events:  # what Lambda does after a successful batch
        stack.sqs.delete_message(QueueUrl=stack.created.queue_url, ReceiptHandle=event["receiptHandle"])

    status = stack.service.get_status(job_id, owner=OWNER)
    done = status.files[0]
    assert done.state is FileState.COMPLETED, done
    assert 0 < done.compressed_size < len(data)
    assert not _stored(stack, key), "the upload is deleted once its result is safe"
    downloaded = requests.get(status.download_urls[record.file_id], timeout=30)
    assert downloaded.status_code == 200, downloaded.text
    plain = io.BytesIO()
    decompress_stream(io.BytesIO(downloaded.content), plain, Algorithm.ZSTD)
    assert plain.getvalue() == data


def _tampered(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    query = urllib.parse.parse_qs(parts.query)
    signature = query["X-Amz-Signature"][0]
    query["X-Amz-Signature"] = [signature[:-1] + ("0" if signature[-1] != "0" else "1")]
    return urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(query, doseq=True)))


def _reject_tampered(stack, data, upload):
    return requests.put(_tampered(upload.url), data=data, headers=upload.headers, timeout=30)


def _reject_larger(stack, data, upload):
    headers = {k: v for k, v in upload.headers.items() if k.lower() != "content-length"}
    return requests.put(upload.url, data=data + b"0123456789", headers=headers, timeout=30)


def _reject_content_type(stack, data, upload):
    return requests.put(upload.url, data=data, headers={**upload.headers, "Content-Type": "text/plain"}, timeout=30)


def _reject_other_bytes(stack, data, upload):
    other = bytes(b ^ 0xFF for b in data)  # same size, other content: the signed sha256 no longer matches
    return requests.put(upload.url, data=other, headers=upload.headers, timeout=30)


REJECTIONS = [
    pytest.param(_reject_tampered, 403, "SignatureDoesNotMatch", id="tampered-signature"),
    pytest.param(_reject_larger, 403, None, id="body-larger-than-declared"),
    pytest.param(_reject_content_type, 403, None, id="wrong-content-type"),
    pytest.param(_reject_other_bytes, 400, "BadDigest", id="wrong-sha256"),
]


@pytest.mark.parametrize(("send", "status", "code"), REJECTIONS)
def test_rejected_uploads_store_nothing_and_move_no_job(stack, send, status, code):
    data = os.urandom(4096)
    job_id, record, upload = _create(stack, data)
    response = send(stack, data, upload)
    assert response.status_code == status, response.text
    if code:
        assert f"<Code>{code}</Code>" in response.text
    _assert_untouched(stack, job_id, record)


def _wait_until_expired(url: str, deadline: float = 30.0) -> None:
    """Wait for the instant the URL's signature says it expires (X-Amz-Date + X-Amz-Expires), plus 1 s."""
    query = dict(urllib.parse.parse_qsl(urllib.parse.urlparse(url).query))
    signed = datetime.datetime.strptime(query["X-Amz-Date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=datetime.UTC)
    expires_at = signed.timestamp() + int(query["X-Amz-Expires"]) + 1
    assert expires_at - time.time() < deadline, "the URL expires too late for this test"
    while time.time() < expires_at:
        time.sleep(min(0.1, max(0.0, expires_at - time.time())))


def test_expired_url_is_rejected(stack):
    data = os.urandom(1024)
    job_id, record, _ = _create(stack, data)
    key = ObjectKeys().upload(FileRef(OWNER, job_id, record.file_id))
    storage_upload = stack.storage.presign_upload(  # the service's adapter, with a 1 s expiry
        key,
        size=len(data),
        content_type="application/octet-stream",
        sha256_hex=hashlib.sha256(data).hexdigest(),
        expires_in=1,
    )
    _wait_until_expired(storage_upload.url)
    response = requests.put(storage_upload.url, data=data, headers=storage_upload.headers, timeout=30)
    assert response.status_code == 403, response.text
    _assert_untouched(stack, job_id, record)


def _assert_untouched(stack, job_id, record):
    key = ObjectKeys().upload(FileRef(OWNER, job_id, record.file_id))
    assert not _stored(stack, key)
    assert _state(stack, job_id) is FileState.PENDING
    # no event for it either: nothing the worker could pick up
    events = _upload_events(stack, wait=0)
    assert not [e for e in events if record.file_id in e["body"]]
