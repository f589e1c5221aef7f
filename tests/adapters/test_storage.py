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


def test_read_reports_the_size_and_missing_objects(storage, s3):
    s3.put_object(Bucket=BUCKET, Key="uploads/j1/f2", Body=b"xx")
    stream = storage.open_read("uploads/j1/f2")
    assert (stream.size, stream.read()) == (2, b"xx")
    stream.close()
    assert storage.open_read("uploads/j1/missing") is None


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


# -- one contract, two implementations: S3 (moto) and the in-memory fake ---------------------


@pytest.fixture(params=["s3", "memory"])
def any_storage(request):
    if request.param == "memory":
        from fakes import InMemoryStorage

        return InMemoryStorage()
    request.getfixturevalue("moto_aws")
    settings = request.getfixturevalue("settings")
    return S3Storage(AwsClients(settings).s3, BUCKET, part_size=5 * MiB)


def _read_all(storage, key):
    stream = storage.open_read(key)
    try:
        return stream.size, stream.read()
    finally:
        stream.close()


@pytest.mark.parametrize("size", [0, 3, 11 * MiB + 7])  # empty, one PUT, multipart
def test_contract_a_written_result_reads_back(any_storage, size):
    data = os.urandom(size)
    writer = any_storage.open_writer("results/j/f/t.zst", content_type="application/zstd", metadata={"a": "1"})
    for start in range(0, len(data), MiB):
        writer.write(data[start : start + MiB])
    assert writer.close(tags={"original-crc32": "1"}) == size == writer.size
    assert _read_all(any_storage, "results/j/f/t.zst") == (size, data)
    assert any_storage.exists("results/j/f/t.zst")


def test_contract_an_aborted_result_does_not_exist(any_storage):
    writer = any_storage.open_writer("results/j/f/gone.zst", content_type="application/zstd", metadata={})
    writer.write(os.urandom(6 * MiB))
    writer.abort()
    assert any_storage.open_read("results/j/f/gone.zst") is None
    assert not any_storage.exists("results/j/f/gone.zst")


def test_contract_put_exists_delete(any_storage):
    assert not any_storage.exists("dead-letters/2026/12/04/m.json")
    any_storage.put_bytes("dead-letters/2026/12/04/m.json", b"{}", content_type="application/json")
    assert any_storage.exists("dead-letters/2026/12/04/m.json")
    assert _read_all(any_storage, "dead-letters/2026/12/04/m.json") == (2, b"{}")
    any_storage.delete("dead-letters/2026/12/04/m.json")
    any_storage.delete("dead-letters/2026/12/04/m.json")  # deleting what is gone is not an error
    assert not any_storage.exists("dead-letters/2026/12/04/m.json")
    assert any_storage.open_read("dead-letters/2026/12/04/m.json") is None


def test_contract_presigned_upload_names_method_and_headers(any_storage):
    request = any_storage.presign_upload(
        "uploads/j/f", size=5, content_type="text/plain", sha256_hex=None, expires_in=60
    )
    assert (request.method, request.expires_in) == ("PUT", 60)
    assert request.headers == {"Content-Length": "5", "Content-Type": "text/plain"}
    assert "uploads/j/f" in request.url
    assert "results/j/f.zst" in any_storage.presign_download("results/j/f.zst", filename="a.txt.zst", expires_in=60)
