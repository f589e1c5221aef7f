"""Multipart uploads through the service, on the fakes: plan, parts, completion, the worker's check, abort."""

import dataclasses
import os

import pytest
from events import s3_notification, sqs_record
from fakes import FakeWorkQueue, InMemoryJobStore, InMemoryStorage

from chalicelib import multipart
from chalicelib.domain import FileState
from chalicelib.errors import JobConflict, JobNotFound, UploadConflict, ValidationError
from chalicelib.service import JobService
from chalicelib.uploads import Uploads
from chalicelib.worker import Worker

MiB = 1024**2
BUCKET = "squeezer-test-files"


@pytest.fixture
def env(settings):
    settings = dataclasses.replace(settings, multipart_threshold=8 * MiB)
    store, storage, queue = InMemoryJobStore(), InMemoryStorage(), FakeWorkQueue()
    service = JobService(store, storage, settings, queue=queue)
    uploads = Uploads(store, storage, settings)
    worker = Worker(store, storage, queue, settings)
    return settings, store, storage, service, uploads, worker


def create(service, files, owner="alice"):
    body = {"files": [{"name": n, "size": len(d)} for n, d in files.items()], "algorithm": "zstd", "level": 1}
    created = service.create_job(body, owner=owner)
    return created.job.job_id, {record.name: (record, upload) for record, upload in created.files}


def send_parts(storage, uploads, job_id, record, data, numbers=None):
    plan = multipart.plan(len(data))
    numbers = numbers or range(1, plan.count + 1)
    body = {"parts": []}
    chunks = {}
    for n in numbers:
        chunk = data[plan.part_offset(n) : plan.part_offset(n) + plan.part_length(n)]
        chunks[n] = chunk
        body["parts"].append({"part_number": n, "crc64nvme": multipart.encode(multipart.crc64nvme(chunk))})
    signed = uploads.sign_parts(job_id, record.file_id, body, owner="alice")
    for part in signed:
        assert part.request.headers["Content-Length"] == str(len(chunks[part.number]))
        storage.put_part(
            record.upload_id, part.number, chunks[part.number], part.request.headers["x-amz-checksum-crc64nvme"]
        )
    return multipart.encode(multipart.crc64nvme(data))


def test_a_file_above_the_threshold_gets_a_multipart_upload_and_a_small_one_a_put(env):
    _, _, storage, service, _, _ = env
    big, small = os.urandom(8 * MiB + 1), b"small"
    _, files = create(service, {"big.bin": big, "small.txt": small})
    record, upload = files["big.bin"]
    assert upload is None and record.upload_id in storage.uploads
    assert (record.part_size, record.part_count) == (8 * MiB, 2)  # 1 byte over one part
    assert record.sha256 is None
    record, upload = files["small.txt"]
    assert upload.method == "PUT" and record.upload_id is None


def test_parts_complete_and_the_worker_checks_the_whole_crc64nvme(env):
    _, store, storage, service, uploads, worker = env
    data = os.urandom(20 * MiB)
    job_id, files = create(service, {"big.bin": data})
    record, _ = files["big.bin"]
    crc = send_parts(storage, uploads, job_id, record, data, numbers=[1, 3])
    listed = uploads.list_parts(job_id, record.file_id, owner="alice")
    assert [p.number for p in listed.parts] == [1, 3]
    with pytest.raises(UploadConflict) as missing:
        uploads.complete(job_id, record.file_id, {"crc64nvme": crc}, owner="alice")
    assert missing.value.code == "parts_missing" and "2" in missing.value.message
    send_parts(storage, uploads, job_id, record, data, numbers=[2])
    wrong = multipart.encode(multipart.crc64nvme(b"something else"))
    with pytest.raises(UploadConflict) as refused:
        uploads.complete(job_id, record.file_id, {"crc64nvme": wrong}, owner="alice")
    assert refused.value.code == "checksum_mismatch"
    done = uploads.complete(job_id, record.file_id, {"crc64nvme": crc}, owner="alice")
    assert done.crc64nvme == crc
    key = f"uploads/alice/{job_id}/{record.file_id}"
    assert storage.objects[key] == data
    assert worker.handle_batch([sqs_record(s3_notification(BUCKET, key, len(data)))]) == {"batchItemFailures": []}
    final = store.get_file(job_id, record.file_id)
    assert final.state is FileState.COMPLETED
    assert storage.metadata[final.result_key]["original-crc64nvme"] == crc
    status = service.get_status(job_id, owner="alice")
    assert status.files[0].crc64nvme == crc


def test_the_worker_fails_an_object_whose_crc64nvme_is_not_the_completed_one(env):
    _, store, storage, service, uploads, worker = env
    data = os.urandom(9 * MiB)
    job_id, files = create(service, {"big.bin": data})
    record, _ = files["big.bin"]
    crc = send_parts(storage, uploads, job_id, record, data)
    uploads.complete(job_id, record.file_id, {"crc64nvme": crc}, owner="alice")
    key = f"uploads/alice/{job_id}/{record.file_id}"
    storage.objects[key] = bytes([data[0] ^ 1]) + data[1:]  # changed after S3 checked it
    worker.handle_batch([sqs_record(s3_notification(BUCKET, key, len(data)))])
    final = store.get_file(job_id, record.file_id)
    assert (final.state, final.error.code) == (FileState.FAILED, "checksum_mismatch")


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({}, "invalid_parts"),
        ({"parts": []}, "invalid_parts"),
        ({"parts": [{"part_number": 0, "crc64nvme": "AAAAAAAAAAA="}]}, "invalid_part_number"),
        ({"parts": [{"part_number": 4, "crc64nvme": "AAAAAAAAAAA="}]}, "invalid_part_number"),
        ({"parts": [{"part_number": True, "crc64nvme": "AAAAAAAAAAA="}]}, "invalid_part_number"),
        ({"parts": [{"part_number": 1, "crc64nvme": "AAAAAAAAAAA="}] * 2}, "invalid_part_number"),
        ({"parts": [{"part_number": 1, "crc64nvme": "not base64"}]}, "invalid_checksum"),
        ({"parts": [{"part_number": 1, "crc64nvme": "AAAA"}]}, "invalid_checksum"),
        ({"parts": [{"part_number": 1}]}, "invalid_checksum"),
        ({"parts": [{"part_number": n, "crc64nvme": "AAAAAAAAAAA="} for n in range(1, 102)]}, "invalid_parts"),
        ("nope", "invalid_body"),
    ],
)
def test_bad_part_requests_are_400s(env, body, code):
    _, _, _, service, uploads, _ = env
    job_id, files = create(service, {"big.bin": b"x" * (17 * MiB)})  # 3 parts
    with pytest.raises(ValidationError) as caught:
        uploads.sign_parts(job_id, files["big.bin"][0].file_id, body, owner="alice")
    assert caught.value.code == code


def test_other_tenants_and_other_files_are_not_found_and_states_are_checked(env):
    _, store, _, service, uploads, _ = env
    job_id, files = create(service, {"big.bin": b"x" * (9 * MiB), "small.txt": b"abc"})
    big, small = files["big.bin"][0], files["small.txt"][0]
    with pytest.raises(JobNotFound):
        uploads.list_parts(job_id, big.file_id, owner="mallory")
    with pytest.raises(JobNotFound) as no_file:
        uploads.list_parts(job_id, "f_nope", owner="alice")
    assert no_file.value.code == "file_not_found"
    with pytest.raises(JobConflict) as not_multipart:
        uploads.sign_parts(job_id, small.file_id, {"parts": []}, owner="alice")
    assert not_multipart.value.code == "not_multipart"
    record, fresh = uploads.renew_upload(job_id, small.file_id, owner="alice")
    assert fresh.method == "PUT" and fresh.headers["Content-Length"] == "3"
    with pytest.raises(JobConflict):
        uploads.renew_upload(job_id, big.file_id, owner="alice")
    store.mark_queued(job_id, small.file_id, 1.0)
    with pytest.raises(JobConflict) as not_pending:
        uploads.renew_upload(job_id, small.file_id, owner="alice")
    assert not_pending.value.code == "not_pending"


def test_abort_fails_the_file_and_the_upload_is_gone(env):
    _, store, storage, service, uploads, _ = env
    job_id, files = create(service, {"big.bin": b"x" * (9 * MiB)})
    record = files["big.bin"][0]
    aborted = uploads.abort(job_id, record.file_id, owner="alice")
    assert (aborted.state, aborted.error.code) == (FileState.FAILED, "upload_aborted")
    assert record.upload_id in storage.aborted_uploads
    with pytest.raises(UploadConflict) as over:
        uploads.complete(job_id, record.file_id, {"crc64nvme": "AAAAAAAAAAA="}, owner="alice")
    assert over.value.code == "upload_finished"


def test_a_multipart_upload_waits_days_not_the_put_url_s_hour(env):
    settings, store, storage, _, _, _ = env
    clock = [1000.0]
    service = JobService(store, storage, settings, clock=lambda: clock[0])
    job_id, files = create(service, {"big.bin": b"x" * (9 * MiB), "small.txt": b"abc"})
    clock[0] += settings.upload_url_ttl + settings.upload_grace_seconds + 60
    _, summary = service.get_summary(job_id, owner="alice")
    assert summary.counts["pending"] == 1 and summary.counts["failed"] == 1  # only the small file expired
    clock[0] += settings.multipart_upload_days * 86400
    status = service.get_status(job_id, owner="alice")
    big = next(f for f in status.files if f.name == "big.bin")
    assert big.error.code == "upload_expired" and "3 days" in big.error.message


def test_a_repeated_completion_answers_with_the_file_as_it_is(env):
    _, store, storage, service, uploads, _ = env
    data = os.urandom(9 * MiB)
    job_id, files = create(service, {"big.bin": data})
    record = files["big.bin"][0]
    crc = send_parts(storage, uploads, job_id, record, data)
    first = uploads.complete(job_id, record.file_id, {"crc64nvme": crc}, owner="alice")
    again = uploads.complete(job_id, record.file_id, {"crc64nvme": crc}, owner="alice")  # the answer was lost
    assert again == first and again.crc64nvme == crc
    store.mark_queued(job_id, record.file_id, 1.0)
    assert uploads.complete(job_id, record.file_id, {"crc64nvme": crc}, owner="alice").state is FileState.QUEUED
    other = multipart.encode(multipart.crc64nvme(b"other"))
    with pytest.raises(UploadConflict):  # another value is not a repeat
        uploads.complete(job_id, record.file_id, {"crc64nvme": other}, owner="alice")
