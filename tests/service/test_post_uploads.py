"""Presigned POST forms (``"upload_method": "post"``) through the service, on the fakes.

With PUT nothing changes: files above multipart_threshold are uploaded in
parts. With POST a file up to max_post_size (S3's 5 GiB for one POST) gets a
form and is not multipart; a larger one gets the multipart plan. A renewed
upload is of the kind the job asked for, and the uploaded object (S3's
``ObjectCreated:Post`` notification) is compressed like a PUT upload.
"""

import dataclasses

import pytest
from events import s3_notification, sqs_record
from fakes import FakeWorkQueue, InMemoryJobStore, InMemoryStorage

from chalicelib.domain import FileState, UploadMethod
from chalicelib.errors import ValidationError
from chalicelib.ports import PresignedPost, PresignedRequest
from chalicelib.service import JobService
from chalicelib.uploads import Uploads
from chalicelib.worker import Worker

MiB = 1024**2
BUCKET = "squeezer-test-files"
THRESHOLD, MAX_POST = 8 * MiB, 20 * MiB


@pytest.fixture
def env(settings):
    settings = dataclasses.replace(settings, multipart_threshold=THRESHOLD, max_post_size=MAX_POST)
    store, storage, queue = InMemoryJobStore(), InMemoryStorage(), FakeWorkQueue()
    return (
        store,
        storage,
        JobService(store, storage, settings, queue=queue),
        Uploads(store, storage, settings),
        Worker(store, storage, queue, settings),
    )


SIZES = {
    "small": 3,
    "at-threshold": THRESHOLD,
    "above-threshold": THRESHOLD + 1,
    "at-max": MAX_POST,
    "above": MAX_POST + 1,
}


def create(service, method, sizes=SIZES, **extra):
    body = {"files": [{"name": n, "size": s, **extra} for n, s in sizes.items()], "algorithm": "zstd", "level": 1}
    if method is not None:
        body["upload_method"] = method
    created = service.create_job(body, owner="alice")
    return created.job.job_id, {record.name: (record, upload) for record, upload in created.files}


@pytest.mark.parametrize("method", [None, "put"])
def test_put_is_the_default_and_unchanged_multipart_above_the_threshold(env, method):
    _, _, service, _, _ = env
    _, files = create(service, method)
    kinds = {name: type(upload).__name__ if upload else "multipart" for name, (_, upload) in files.items()}
    assert kinds == {
        "small": "PresignedRequest",
        "at-threshold": "PresignedRequest",
        "above-threshold": "multipart",
        "at-max": "multipart",
        "above": "multipart",
    }
    assert {record.upload_method for record, _ in files.values()} == {UploadMethod.PUT}


def test_post_gives_forms_up_to_max_post_size_and_multipart_above(env):
    store, _, service, _, _ = env
    job_id, files = create(service, "post")
    for name in ("small", "at-threshold", "above-threshold", "at-max"):
        record, upload = files[name]
        assert isinstance(upload, PresignedPost), name
        assert record.upload_id is None and not record.multipart
        assert upload.fields["key"] == f"uploads/alice/{job_id}/{record.file_id}"
        assert f"size={record.size}" in upload.fields["policy"]  # the fake's stand-in for content-length-range
        assert store.get_file(job_id, record.file_id).upload_method is UploadMethod.POST
    record, upload = files["above"]
    assert upload is None and record.multipart and record.part_count is not None
    assert record.upload_method is UploadMethod.PUT  # parts are PUT URLs, whatever the job asked


def test_a_post_form_binds_the_declared_type_and_sha256(env):
    _, _, service, _, _ = env
    _, files = create(service, "post", {"a.txt": 5}, content_type="text/plain", sha256="ab" * 32)
    _, form = files["a.txt"]
    assert form.fields["Content-Type"] == "text/plain"
    assert form.fields["x-amz-checksum-sha256"]  # base64 of the digest (the adapter test checks the value)


def test_an_unknown_upload_method_is_refused(env):
    _, _, service, _, _ = env
    for bad in ("form", "POST", 1, None):
        with pytest.raises(ValidationError) as refused:
            service.create_job({"files": [{"name": "a", "size": 1}], "upload_method": bad}, owner="alice")
        assert refused.value.code == "invalid_upload_method"


@pytest.mark.parametrize(("method", "kind"), [("post", PresignedPost), ("put", PresignedRequest)])
def test_a_renewed_upload_is_of_the_kind_the_job_asked_for(env, method, kind):
    _, _, service, uploads, _ = env
    job_id, files = create(service, method, {"a.bin": 10})
    record, _ = files["a.bin"]
    _, fresh = uploads.renew_upload(job_id, record.file_id, owner="alice")
    assert isinstance(fresh, kind)


def test_an_object_posted_by_a_form_is_compressed_like_a_put(env):
    store, storage, service, _, worker = env
    data = b"posted from a browser\n" * 100
    job_id, files = create(service, "post", {"page.txt": len(data)})
    record, form = files["page.txt"]
    key = form.fields["key"]
    storage.put_bytes(key, data, content_type="text/plain")  # what S3 does with the form
    event = s3_notification(BUCKET, key, len(data), event_name="ObjectCreated:Post")
    assert worker.handle_batch([sqs_record(event)]) == {"batchItemFailures": []}
    assert store.get_file(job_id, record.file_id).state is FileState.COMPLETED
