"""S3Storage's side of clients' multipart uploads, on moto."""

import os
import urllib.parse

import boto3
import pytest

from chalicelib import multipart, wiring
from chalicelib.errors import UploadConflict
from chalicelib.storage import S3Storage

BUCKET = "squeezer-test-files"
MiB = 1024**2


@pytest.fixture
def storage(moto_aws):
    return S3Storage(wiring.get_clients().s3, BUCKET, part_size=8 * MiB)  # the service's client: SigV4


def test_start_sign_list_complete(storage):
    s3 = boto3.client("s3", region_name="us-east-1")
    key = "uploads/t/j/f"
    data = os.urandom(5 * MiB + 100)
    upload_id = storage.start_multipart(key, content_type="application/octet-stream")
    pieces = {1: data[: 5 * MiB], 2: data[5 * MiB :]}
    for number, piece in pieces.items():
        crc = multipart.encode(multipart.crc64nvme(piece))
        signed = storage.presign_part(
            key, upload_id=upload_id, number=number, size=len(piece), crc64nvme=crc, expires_in=60
        )
        query = urllib.parse.parse_qs(urllib.parse.urlparse(signed.url).query)
        assert "x-amz-checksum-crc64nvme" in query["X-Amz-SignedHeaders"][0]
        assert "content-length" in query["X-Amz-SignedHeaders"][0]
        assert signed.headers == {"Content-Length": str(len(piece)), "x-amz-checksum-crc64nvme": crc}
        s3.upload_part(Bucket=BUCKET, Key=key, UploadId=upload_id, PartNumber=number, Body=piece, ChecksumCRC64NVME=crc)
    parts = storage.list_parts(key, upload_id=upload_id)
    assert [(p.number, p.size) for p in parts] == [(1, 5 * MiB), (2, 100)]
    storage.complete_multipart(
        key, upload_id=upload_id, parts=parts, crc64nvme=multipart.encode(multipart.crc64nvme(data))
    )
    assert s3.get_object(Bucket=BUCKET, Key=key)["Body"].read() == data
    with pytest.raises(UploadConflict) as gone:
        storage.list_parts(key, upload_id=upload_id)
    assert gone.value.code == "upload_gone"


def test_abort_is_idempotent(storage):
    key = "uploads/t/j/g"
    upload_id = storage.start_multipart(key, content_type="text/plain")
    storage.abort_multipart(key, upload_id=upload_id)
    storage.abort_multipart(key, upload_id=upload_id)  # gone already: not an error
    with pytest.raises(UploadConflict):
        storage.list_parts(key, upload_id=upload_id)
