"""Multipart part URLs on LocalStack, which checks signatures and checksums (moto checks neither)."""

from __future__ import annotations

import os
import uuid

import pytest
import requests

from chalicelib import multipart
from chalicelib.errors import UploadConflict

MiB = 1024**2


def _crc(data: bytes) -> str:
    return multipart.encode(multipart.crc64nvme(data))


def test_a_part_whose_bytes_differ_from_its_signed_crc64nvme_is_refused(stack):
    key = f"uploads/t_ls/j_{uuid.uuid4().hex}/f_1"
    upload_id = stack.storage.start_multipart(key, content_type="application/octet-stream")
    first, last = os.urandom(5 * MiB), os.urandom(1000)
    signed = stack.storage.presign_part(
        key, upload_id=upload_id, number=1, size=len(first), crc64nvme=_crc(first), expires_in=300
    )
    tampered = bytes([first[0] ^ 1]) + first[1:]  # same size, other bytes
    refused = requests.put(signed.url, data=tampered, headers=signed.headers, timeout=60)
    assert refused.status_code == 400, refused.text
    assert not stack.storage.list_parts(key, upload_id=upload_id)  # nothing kept
    assert requests.put(signed.url, data=first, headers=signed.headers, timeout=60).status_code == 200
    signed_last = stack.storage.presign_part(
        key, upload_id=upload_id, number=2, size=len(last), crc64nvme=_crc(last), expires_in=300
    )
    assert requests.put(signed_last.url, data=last, headers=signed_last.headers, timeout=60).status_code == 200
    parts = stack.storage.list_parts(key, upload_id=upload_id)
    assert [(p.number, p.size) for p in parts] == [(1, 5 * MiB), (2, 1000)]
    with pytest.raises(UploadConflict):  # the whole file's value must be the parts' combined value
        stack.storage.complete_multipart(key, upload_id=upload_id, parts=parts, crc64nvme=_crc(b"other"))
    whole = multipart.combine_parts([(multipart.crc64nvme(first), len(first)), (multipart.crc64nvme(last), len(last))])
    stack.storage.complete_multipart(key, upload_id=upload_id, parts=parts, crc64nvme=multipart.encode(whole))
    assert stack.s3.get_object(Bucket=stack.cfg.bucket, Key=key)["Body"].read() == first + last


def test_a_part_url_refuses_another_length(stack):
    key = f"uploads/t_ls/j_{uuid.uuid4().hex}/f_1"
    upload_id = stack.storage.start_multipart(key, content_type="application/octet-stream")
    data = os.urandom(5 * MiB)
    signed = stack.storage.presign_part(
        key, upload_id=upload_id, number=1, size=len(data), crc64nvme=_crc(data), expires_in=300
    )
    headers = {k: v for k, v in signed.headers.items() if k.lower() != "content-length"}
    longer = requests.put(signed.url, data=data + b"x", headers=headers, timeout=60)
    assert longer.status_code in (400, 403), longer.text
    stack.storage.abort_multipart(key, upload_id=upload_id)
