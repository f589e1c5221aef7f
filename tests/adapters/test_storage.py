import base64
import hashlib
import json
import os
import urllib.parse

import boto3
import pytest
import requests

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


def test_large_result_goes_multipart_with_bounded_buffer(storage, s3):
    writer = storage.open_writer("results/j/big.zst", content_type="application/zstd", metadata={"a": "1"})
    data = os.urandom(12 * MiB + 123)
    for start in range(0, len(data), 1 * MiB):
        writer.write(data[start : start + MiB])
        assert writer._filled < 5 * MiB  # never more than one part in memory
        # the part being filled is allocated once at its size, never over-allocated by growing
        assert writer._buffer.__alloc__() <= 5 * MiB + 1
    writer.close(tags={"original-crc32": "1"})
    body = s3.get_object(Bucket=BUCKET, Key="results/j/big.zst")["Body"].read()
    assert hashlib.sha256(body).digest() == hashlib.sha256(data).digest()
    assert s3.head_object(Bucket=BUCKET, Key="results/j/big.zst")["Metadata"] == {"a": "1"}
    assert s3.get_object_tagging(Bucket=BUCKET, Key="results/j/big.zst")["TagSet"][0]["Value"] == "1"


class _RecordingS3:
    """Enough of an S3 client for MultipartWriter; keeps what each part was sent with."""

    def __init__(self):
        self.parts = []
        self.objects = {}

    def create_multipart_upload(self, **_):
        return {"UploadId": "u"}

    def upload_part(self, *, Body, PartNumber, **kwargs):
        self.parts.append((PartNumber, bytes(Body), kwargs))
        return {"ETag": f'"{PartNumber}"'}

    def complete_multipart_upload(self, **_):
        return {}

    def put_object(self, *, Key, Body, **_):
        self.objects[Key] = Body
        return {}


def test_parts_are_cut_at_part_size_and_the_tail_to_its_length():
    from chalicelib.storage import MultipartWriter

    client = _RecordingS3()
    writer = MultipartWriter(client, BUCKET, "r.zst", part_size=5 * MiB, content_type="application/zstd", metadata={})
    data = os.urandom(11 * MiB + 7)
    for start in range(0, len(data), 300_000):  # writes that straddle the part boundaries
        writer.write(memoryview(data)[start : start + 300_000])
    assert writer.close() == len(data)
    assert [len(body) for _, body, _ in client.parts] == [5 * MiB, 5 * MiB, MiB + 7]
    assert b"".join(body for _, body, _ in client.parts) == data


def test_a_result_under_one_part_is_one_put_of_exactly_its_bytes():
    from chalicelib.storage import MultipartWriter

    client = _RecordingS3()
    writer = MultipartWriter(client, BUCKET, "s.zst", part_size=5 * MiB, content_type="application/zstd", metadata={})
    writer.write(b"abc")
    writer.write(b"de")
    assert writer._buffer.__alloc__() < MiB  # a small result does not cost a whole part
    assert writer.close() == 5
    assert client.objects == {"s.zst": b"abcde"} and client.parts == []


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


def _described_by_s3(key):
    """What S3 keeps beside the bytes: content type, user metadata, tags."""
    s3 = boto3.client("s3", region_name="us-east-1")
    head = s3.head_object(Bucket=BUCKET, Key=key)
    tags = s3.get_object_tagging(Bucket=BUCKET, Key=key)["TagSet"]
    return head["ContentType"], head["Metadata"], {t["Key"]: t["Value"] for t in tags}


@pytest.fixture(params=["s3", "memory"])
def any_storage(request):
    """(storage, described): ``described(key)`` reads content type, metadata and tags as that backend keeps them."""
    if request.param == "memory":
        from fakes import InMemoryStorage

        fake = InMemoryStorage()
        return fake, lambda key: (fake.content_types[key], fake.metadata[key], fake.tags[key])
    request.getfixturevalue("moto_aws")
    settings = request.getfixturevalue("settings")
    return S3Storage(AwsClients(settings).s3, BUCKET, part_size=5 * MiB), _described_by_s3


def _read_all(storage, key):
    stream = storage.open_read(key)
    try:
        return stream.size, stream.read()
    finally:
        stream.close()


@pytest.mark.parametrize("size", [0, 3, 11 * MiB + 7])  # empty, one PUT, multipart (5 MiB parts)
def test_contract_a_written_result_reads_back_with_its_type_metadata_and_tags(any_storage, size):
    storage, described = any_storage
    data = os.urandom(size)
    writer = storage.open_writer("results/j/f/t.zst", content_type="application/zstd", metadata={"a": "1"})
    for start in range(0, len(data), MiB):
        assert writer.write(data[start : start + MiB]) == len(data[start : start + MiB])
    assert writer.close(tags={"original-crc32": "1"}) == size == writer.size
    assert _read_all(storage, "results/j/f/t.zst") == (size, data)
    assert storage.exists("results/j/f/t.zst")
    assert described("results/j/f/t.zst") == ("application/zstd", {"a": "1"}, {"original-crc32": "1"})


@pytest.mark.parametrize("size", [3, 11 * MiB + 7])
def test_contract_a_result_without_tags_has_none(any_storage, size):
    storage, described = any_storage
    writer = storage.open_writer("results/j/f/u.zst", content_type="application/gzip", metadata={})
    writer.write(b"x" * size)
    assert writer.close() == size
    assert described("results/j/f/u.zst") == ("application/gzip", {}, {})


@pytest.mark.parametrize("size", [3, 6 * MiB])  # before and after the first part went out
def test_contract_an_aborted_result_does_not_exist(any_storage, size):
    storage, _ = any_storage
    writer = storage.open_writer("results/j/f/gone.zst", content_type="application/zstd", metadata={})
    writer.write(os.urandom(size))
    writer.abort()
    assert storage.open_read("results/j/f/gone.zst") is None
    assert not storage.exists("results/j/f/gone.zst")


def test_contract_missing_objects(any_storage):
    storage, _ = any_storage
    assert storage.open_read("uploads/j/missing") is None
    assert not storage.exists("uploads/j/missing")
    storage.delete("uploads/j/missing")  # deleting what is not there is not an error


def test_contract_put_exists_delete(any_storage):
    storage, described = any_storage
    key = "dead-letters/2026/12/04/m.json"
    assert not storage.exists(key)
    storage.put_bytes(key, b"{}", content_type="application/json")
    assert storage.exists(key)
    assert _read_all(storage, key) == (2, b"{}")
    assert described(key) == ("application/json", {}, {})
    storage.delete(key)
    storage.delete(key)  # deleting what is gone is not an error
    assert not storage.exists(key)
    assert storage.open_read(key) is None


def test_contract_a_put_replaces_a_result_whole(any_storage):
    storage, described = any_storage
    writer = storage.open_writer("results/j/f/r.zst", content_type="application/zstd", metadata={"a": "1"})
    writer.write(b"old")
    writer.close(tags={"t": "1"})
    storage.put_bytes("results/j/f/r.zst", b"new!", content_type="application/json")
    assert _read_all(storage, "results/j/f/r.zst") == (4, b"new!")
    assert described("results/j/f/r.zst") == ("application/json", {}, {})


@pytest.mark.parametrize(
    ("sha256_hex", "checksum"),
    [
        (None, None),
        (hashlib.sha256(b"hello").hexdigest(), "LPJNul+wow4m6DsqxbninhsWHlwfp0JecwQzYpOLmCQ="),  # base64, as S3 wants
    ],
)
def test_contract_presigned_upload_names_method_and_headers(any_storage, sha256_hex, checksum):
    storage, _ = any_storage
    request = storage.presign_upload(
        "uploads/j/f", size=5, content_type="text/plain", sha256_hex=sha256_hex, expires_in=60
    )
    assert (request.method, request.expires_in) == ("PUT", 60)
    expected = {"Content-Length": "5", "Content-Type": "text/plain"}
    if checksum:
        expected["x-amz-checksum-sha256"] = checksum
    assert request.headers == expected
    assert "uploads/j/f" in request.url
    assert "results/j/f.zst" in storage.presign_download("results/j/f.zst", filename="a.txt.zst", expires_in=60)


@pytest.mark.parametrize(
    ("sha256_hex", "checksum"),
    [(None, None), (hashlib.sha256(b"hello").hexdigest(), "LPJNul+wow4m6DsqxbninhsWHlwfp0JecwQzYpOLmCQ=")],
)
def test_contract_presigned_post_form_names_its_fields_in_order(any_storage, sha256_hex, checksum):
    storage, _ = any_storage
    form = storage.presign_post("uploads/j/f", size=5, content_type="text/plain", sha256_hex=sha256_hex, expires_in=60)
    assert (form.method, form.expires_in) == ("POST", 60)
    names = list(form.fields)
    expected_first = ["Content-Type", "x-amz-checksum-sha256", "key"] if checksum else ["Content-Type", "key"]
    assert names[: len(expected_first)] == expected_first
    assert names[-2:] == ["policy", "x-amz-signature"]
    assert (form.fields["key"], form.fields["Content-Type"], form.fields.get("x-amz-checksum-sha256")) == (
        "uploads/j/f",
        "text/plain",
        checksum,
    )
    assert "file" not in form.fields  # the file is the form's last field, added by the sender


# -- presigned POST forms (a browser's upload) ------------------------------------------------


def _policy(fields):
    return json.loads(base64.b64decode(fields["policy"]))


def test_presigned_post_policy_binds_key_type_exact_size_and_checksum(storage):
    digest = hashlib.sha256(b"hello").hexdigest()
    form = storage.presign_post("uploads/t/j/f", size=5, content_type="text/plain", sha256_hex=digest, expires_in=60)
    checksum = "LPJNul+wow4m6DsqxbninhsWHlwfp0JecwQzYpOLmCQ="
    assert (form.method, form.expires_in) == ("POST", 60)
    assert form.url.endswith(f"/{BUCKET}")  # path style: the bucket's URL, the key is a field
    assert form.fields["key"] == "uploads/t/j/f"
    assert form.fields["Content-Type"] == "text/plain"
    assert form.fields["x-amz-checksum-sha256"] == checksum
    conditions = _policy(form.fields)["conditions"]
    assert {"key": "uploads/t/j/f"} in conditions  # exactly this key, no starts-with
    assert {"bucket": BUCKET} in conditions
    assert {"Content-Type": "text/plain"} in conditions
    assert ["content-length-range", 5, 5] in conditions
    assert {"x-amz-checksum-sha256": checksum} in conditions
    assert not any(isinstance(c, list) and c[0] == "starts-with" for c in conditions)
    # every field but the signature's own is bound by the policy (S3 refuses unbound fields)
    bound = {name.lower() for c in conditions if isinstance(c, dict) for name in c}
    assert {name.lower() for name in form.fields} - {"policy", "x-amz-signature"} <= bound


def test_presigned_post_without_checksum_has_no_checksum_field(storage):
    form = storage.presign_post("uploads/t/j/f", size=0, content_type="application/x", sha256_hex=None, expires_in=9)
    assert "x-amz-checksum-sha256" not in form.fields
    assert ["content-length-range", 0, 0] in _policy(form.fields)["conditions"]


def test_a_form_post_lands_at_the_key_with_its_content_type(storage, s3):
    data = os.urandom(3000)
    form = storage.presign_post(
        "uploads/t/j/posted", size=len(data), content_type="text/csv", sha256_hex=None, expires_in=60
    )
    # fields first, in order, then the file (requests puts files after data)
    response = requests.post(form.url, data=form.fields, files={"file": ("any-name.csv", data)}, timeout=30)
    assert response.status_code == 204, response.text
    head = s3.head_object(Bucket=BUCKET, Key="uploads/t/j/posted")
    assert (head["ContentLength"], head["ContentType"]) == (len(data), "text/csv")
    assert s3.get_object(Bucket=BUCKET, Key="uploads/t/j/posted")["Body"].read() == data
