import hashlib
import os
import urllib.parse

import boto3
import pytest

from chalicelib.aws import AwsClients
from chalicelib.storage import S3Storage, content_disposition

BUCKET = "squeezer-test-files"
MiB = 1024 * 1024


@pytest.fixture
def s3(moto_aws):
    return boto3.client("s3", region_name="us-east-1")


@pytest.fixture
def storage(moto_aws, settings):
    # The service's own client factory: SigV4 presigning, path-style addressing.
    return S3Storage(AwsClients(settings).s3, BUCKET, part_size=5 * MiB)


def test_small_result_is_one_put_with_metadata_and_tags(storage, s3):
    writer = storage.open_writer("results/j/f.zst", content_type="application/zstd", metadata={"original-size": "3"})
    writer.write(b"abc")
    assert writer.close(tags={"original-crc32": "0000abcd"}) == 3
    head = s3.head_object(Bucket=BUCKET, Key="results/j/f.zst")
    assert head["Metadata"] == {"original-size": "3"} and head["ContentType"] == "application/zstd"
    tags = s3.get_object_tagging(Bucket=BUCKET, Key="results/j/f.zst")["TagSet"]
    assert tags == [{"Key": "original-crc32", "Value": "0000abcd"}]


def test_large_result_goes_multipart_with_bounded_buffer(storage, s3):
    writer = storage.open_writer("results/j/big.zst", content_type="application/zstd", metadata={"a": "1"})
    data = os.urandom(12 * MiB + 123)
    for start in range(0, len(data), 1 * MiB):
        writer.write(data[start : start + MiB])
        assert len(writer._buffer) < 5 * MiB  # never more than one part in memory
    writer.close(tags={"original-crc32": "1"})
    body = s3.get_object(Bucket=BUCKET, Key="results/j/big.zst")["Body"].read()
    assert hashlib.sha256(body).digest() == hashlib.sha256(data).digest()
    assert s3.head_object(Bucket=BUCKET, Key="results/j/big.zst")["Metadata"] == {"a": "1"}
    assert s3.get_object_tagging(Bucket=BUCKET, Key="results/j/big.zst")["TagSet"][0]["Value"] == "1"


def test_abort_leaves_no_object_and_no_upload(storage, s3):
    writer = storage.open_writer("results/j/gone.zst", content_type="application/zstd", metadata={})
    writer.write(os.urandom(6 * MiB))
    writer.abort()
    assert s3.list_multipart_uploads(Bucket=BUCKET).get("Uploads", []) == []
    assert storage.open_read("results/j/gone.zst") is None


def test_read_and_delete_prefix(storage, s3):
    for i in range(3):
        s3.put_object(Bucket=BUCKET, Key=f"uploads/j1/f{i}", Body=b"x" * i)
    s3.put_object(Bucket=BUCKET, Key="uploads/j2/f0", Body=b"keep")
    etag = s3.head_object(Bucket=BUCKET, Key="uploads/j1/f2")["ETag"]
    stream = storage.open_read("uploads/j1/f2")
    assert (stream.size, stream.etag, stream.read()) == (2, etag, b"xx")
    assert storage.open_read("uploads/j1/missing") is None
    assert storage.delete_prefix("uploads/j1/") == 3
    assert storage.open_read("uploads/j1/f0") is None and storage.open_read("uploads/j2/f0").size == 4


def test_presigned_upload_signs_size_type_and_checksum(storage):
    digest = hashlib.sha256(b"hello").hexdigest()
    request = storage.presign_upload("uploads/j/f", size=5, content_type="text/plain", sha256_hex=digest, expires_in=60)
    query = dict(urllib.parse.parse_qsl(urllib.parse.urlparse(request.url).query))
    assert query["X-Amz-SignedHeaders"] == "content-length;content-type;host;x-amz-checksum-sha256"
    assert query["X-Amz-Expires"] == "60"
    assert request.headers == {
        "Content-Length": "5",
        "Content-Type": "text/plain",
        "x-amz-checksum-sha256": "LPJNul+wow4m6DsqxbninhsWHlwfp0JecwQzYpOLmCQ=",
    }


def test_download_url_names_the_file():
    assert content_disposition("été report.txt.zst") == (
        "attachment; filename=\"?t? report.txt.zst\"; filename*=UTF-8''%C3%A9t%C3%A9%20report.txt.zst"
    )
