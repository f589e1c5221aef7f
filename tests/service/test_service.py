import dataclasses

import pytest
from fakes import FakeWorkQueue, InMemoryJobStore, InMemoryStorage

from chalicelib.domain import FileError, FileState, JobState
from chalicelib.errors import JobConflict, JobNotFound, ValidationError
from chalicelib.service import JobService


@pytest.fixture
def store():
    return InMemoryJobStore()


@pytest.fixture
def storage():
    return InMemoryStorage()


@pytest.fixture
def service(store, storage, settings):
    return JobService(store, storage, settings)


BODY = {
    "files": [{"name": "logs/app.log", "size": 10}, {"name": "data.json", "size": 0, "sha256": "a" * 64}],
    "algorithm": "gzip",
    "level": 9,
}


def test_create_job_records_everything_in_one_batch_and_presigns(service, store):
    created = service.create_job(BODY, owner="alice")
    assert store.batch_writes == 1
    job, files = store.get_job_with_files(created.job.job_id)
    assert job.owner == "alice" and job.file_count == 2 and job.total_size == 10
    assert {f.state for f in files} == {FileState.PENDING}
    for record, upload in created.files:
        assert upload.method == "PUT"
        assert record.name not in upload.url  # keys never carry the user's file name
        assert upload.headers["Content-Length"] == str(record.size)
    assert "x-amz-checksum-sha256" in created.files[1][1].headers


def test_invalid_body_writes_nothing(service, store):
    with pytest.raises(ValidationError):
        service.create_job({"files": []}, owner="alice")
    assert store.jobs == {}


def test_the_limits_come_from_the_settings(store, storage, settings):
    # The rules themselves are tests/unit/test_validation.py's; this is that the
    # service hands them its settings (as the routes once checked with 1,001 files).
    small = JobService(store, storage, dataclasses.replace(settings, max_files_per_job=2, max_file_size=10))
    three = {"files": [{"name": f"f{i}", "size": 1} for i in range(3)]}
    for body, code in ((three, "invalid_file_count"), ({"files": [{"name": "a", "size": 11}]}, "invalid_size")):
        with pytest.raises(ValidationError) as info:
            small.create_job(body, owner="alice")
        assert info.value.code == code
    assert small.create_job({"files": [{"name": "a", "size": 10}, {"name": "b", "size": 0}]}, owner="alice")
    assert len(store.jobs) == 1


def test_status_of_unknown_or_foreign_job_is_not_found(service):
    created = service.create_job(BODY, owner="alice")
    with pytest.raises(JobNotFound):
        service.get_status("j_nope", owner="alice")
    with pytest.raises(JobNotFound):
        service.get_status(created.job.job_id, owner="mallory")


def test_status_gives_download_links_only_for_completed_files(service, store):
    created = service.create_job(BODY, owner="alice")
    job_id = created.job.job_id
    first = created.files[0][0]
    store.claim_file(job_id, first.file_id, token="t", at=1.0, lease_until=100.0)
    store.complete_file(
        job_id,
        first.file_id,
        token="t",
        at=2.0,
        compressed_size=4,
        crc32=1,
        result_key=f"results/{job_id}/{first.file_id}.gz",
        compress_seconds=0.1,
    )
    status = service.get_status(job_id, owner="alice")
    assert status.summary.state is JobState.PROCESSING
    assert list(status.download_urls) == [first.file_id]
    assert "app.log.gz" in status.download_urls[first.file_id]


def test_list_jobs_newest_first_and_only_own(service):
    ids = []
    for _i in range(3):
        ids.append(service.create_job(BODY, owner="alice").job.job_id)
    service.create_job(BODY, owner="bob")
    page = service.list_jobs(owner="alice", limit="2", cursor=None)
    assert len(page.jobs) == 2 and page.next_cursor
    rest = service.list_jobs(owner="alice", limit="2", cursor=page.next_cursor)
    assert {j.job_id for j in page.jobs + rest.jobs} == set(ids)
    with pytest.raises(ValidationError):
        service.list_jobs(owner="alice", limit="0", cursor=None)


def test_cancel_stops_open_files_keeps_completed_results_and_is_idempotent(service, store, storage):
    created = service.create_job(BODY, owner="alice")
    job_id = created.job.job_id
    done, open_file = (record for record, _ in created.files)
    store.claim_file(job_id, done.file_id, token="t", at=1.0, lease_until=1e12)
    result_key = f"results/{job_id}/{done.file_id}/t.gz"
    storage.objects[result_key] = b"zz"
    store.complete_file(
        job_id, done.file_id, token="t", at=2.0, compressed_size=2, crc32=1, result_key=result_key, compress_seconds=0.1
    )
    storage.objects[f"uploads/alice/{job_id}/{open_file.file_id}"] = b"data"
    storage.objects["uploads/alice/other/f"] = b"keep"
    status = service.cancel_job(job_id, owner="alice")
    assert status.summary.state is JobState.CANCELLED
    states = {f.file_id: f.state for f in status.files}
    assert states == {done.file_id: FileState.COMPLETED, open_file.file_id: FileState.CANCELLED}
    assert sorted(storage.objects) == sorted([result_key, "uploads/alice/other/f"])  # the result stays
    assert list(status.download_urls) == [done.file_id]
    again = service.cancel_job(job_id, owner="alice")  # the same answer, not an error
    assert (again.summary, again.job.cancelled_at) == (status.summary, status.job.cancelled_at)
    with pytest.raises(JobNotFound):
        service.cancel_job(job_id, owner="bob")


def test_cancel_of_a_finished_job_is_a_conflict(service, store):
    created = service.create_job(BODY, owner="alice")
    job_id = created.job.job_id
    for record, _ in created.files:
        store.fail_file(job_id, record.file_id, error=FileError("codec_error", "x"), at=2.0)
    with pytest.raises(JobConflict) as raised:
        service.cancel_job(job_id, owner="alice")
    assert raised.value.code == "job_finished"


def test_pending_files_settle_once_their_upload_url_expired(store, storage, settings):
    clock = [1000.0]
    queue = FakeWorkQueue()
    service = JobService(store, storage, settings, queue=queue, clock=lambda: clock[0])
    created = service.create_job(BODY, owner="alice")
    job_id = created.job.job_id
    first, second = (record for record, _ in created.files)
    store.mark_queued(job_id, first.file_id, 1001.0)
    assert service.get_status(job_id, owner="alice").summary.state is JobState.PROCESSING
    clock[0] += settings.upload_url_ttl + 1  # within the grace period: nothing is decided yet
    assert service.get_status(job_id, owner="alice").summary.state is JobState.PROCESSING
    assert store.get_file(job_id, second.file_id).state is FileState.PENDING
    clock[0] += settings.upload_grace_seconds
    status = service.get_status(job_id, owner="alice")
    expired = next(f for f in status.files if f.file_id == second.file_id)
    assert expired.state is FileState.FAILED and expired.error.code == "upload_expired"
    assert store.get_file(job_id, second.file_id).state is FileState.FAILED  # written once
    assert next(f for f in status.files if f.file_id == first.file_id).state is FileState.QUEUED
    _, summary = service.get_summary(job_id, owner="alice")
    assert summary == status.summary


def test_an_upload_that_arrived_is_never_shown_as_expired(store, storage, settings):
    """Its notification was lost (e.g. a batch that failed as a whole): it is queued again."""
    clock = [1000.0]
    queue = FakeWorkQueue()
    service = JobService(store, storage, settings, queue=queue, clock=lambda: clock[0])
    created = service.create_job(BODY, owner="alice")
    job_id = created.job.job_id
    arrived = created.files[0][0]
    key = f"uploads/alice/{job_id}/{arrived.file_id}"
    storage.objects[key] = b"data"
    clock[0] += settings.upload_url_ttl + settings.upload_grace_seconds + 1
    _, summary = service.get_summary(job_id, owner="alice")
    assert summary.counts["queued"] == 1 and summary.counts["failed"] == 1
    assert store.get_file(job_id, arrived.file_id).state is FileState.QUEUED
    assert queue.sent == [(settings.bucket, key)]
    service.get_status(job_id, owner="alice")
    assert len(queue.sent) == 1  # decided once


def test_summary_hides_other_owners_jobs(service, store):
    created = service.create_job(BODY, owner="alice")
    job, summary = service.get_summary(created.job.job_id, owner="alice")
    assert summary.state is JobState.PENDING and summary.counts["pending"] == 2
    with pytest.raises(JobNotFound):
        service.get_summary(created.job.job_id, owner="bob")


# -- a job open for more files ---------------------------------------------------------------------
def _complete_all(store, job_id):
    for (j, file_id), record in list(store.files.items()):
        if j == job_id:
            store.files[(j, file_id)] = record.evolve(state=FileState.COMPLETED, finished_at=5.0)


def test_a_job_open_for_more_files_is_uploading_until_its_last_batch(service, store):
    created = service.create_job({**BODY, "more_files": True}, owner="alice")
    job_id = created.job.job_id
    _complete_all(store, job_id)
    status = service.get_status(job_id, owner="alice")
    assert status.summary.state is JobState.UPLOADING and status.summary.finished_at is None
    added = service.add_files(
        job_id, {"files": [{"name": "b/1", "size": 3, "mode": 0o640, "mtime": 12.5}], "more_files": True}, owner="alice"
    )
    assert added.job.file_count == 3 and added.job.total_size == 13 and added.job.more_files
    assert [r.name for r, _ in added.files] == ["b/1"] and added.files[0][1].method == "PUT"
    record = store.get_file(job_id, added.files[0][0].file_id)
    assert (record.mode, record.mtime, record.algorithm, record.level) == (0o640, 12.5, created.job.algorithm, 9)
    closed = service.add_files(job_id, {"files": [{"name": "b/2", "size": 1}]}, owner="alice")
    assert closed.job.more_files is False and closed.job.file_count == 4
    _complete_all(store, job_id)
    assert service.get_status(job_id, owner="alice").summary.state is JobState.COMPLETED
    with pytest.raises(JobConflict) as caught:
        service.add_files(job_id, {"files": [{"name": "b/3", "size": 1}]}, owner="alice")
    assert caught.value.code == "job_closed"


def test_adding_refuses_duplicates_too_many_and_closed_jobs(service, store, settings):
    created = service.create_job({**BODY, "more_files": True}, owner="alice")
    job_id = created.job.job_id
    with pytest.raises(ValidationError) as caught:
        service.add_files(job_id, {"files": [{"name": "data.json", "size": 1}], "more_files": True}, owner="alice")
    assert caught.value.code == "duplicate_name" and "'data.json'" in caught.value.message
    with pytest.raises(ValidationError) as caught:
        service.add_files(job_id, {"files": [{"name": "x", "size": 1}, {"name": "x", "size": 1}]}, owner="alice")
    assert caught.value.code == "duplicate_name"
    small = JobService(store, InMemoryStorage(), dataclasses.replace(settings, max_files_per_job=3))
    small.add_files(job_id, {"files": [{"name": "c", "size": 1}], "more_files": True}, owner="alice")
    with pytest.raises(ValidationError) as caught:
        small.add_files(job_id, {"files": [{"name": "d", "size": 1}], "more_files": True}, owner="alice")
    assert caught.value.code == "invalid_file_count" and "limit of 3 files" in caught.value.message
    per_request = JobService(store, InMemoryStorage(), dataclasses.replace(settings, max_files_per_request=2))
    three = {"files": [{"name": f"e{i}", "size": 1} for i in range(3)]}
    with pytest.raises(ValidationError) as caught:
        per_request.add_files(job_id, three, owner="alice")
    assert caught.value.code == "invalid_file_count"
    with pytest.raises(ValidationError):
        per_request.create_job(three, owner="alice")
    shut = service.create_job(BODY, owner="alice")
    with pytest.raises(JobConflict) as caught:
        service.add_files(shut.job.job_id, {"files": []}, owner="alice")
    assert caught.value.code == "job_closed"
    with pytest.raises(JobNotFound):
        service.add_files(job_id, {"files": []}, owner="bob")


def test_cancel_works_on_an_open_job_whose_files_are_all_done(service, store):
    created = service.create_job({**BODY, "more_files": True}, owner="alice")
    job_id = created.job.job_id
    _complete_all(store, job_id)
    assert service.cancel_job(job_id, owner="alice").summary.state is JobState.CANCELLED
    with pytest.raises(JobConflict) as caught:
        service.add_files(job_id, {"files": [{"name": "late", "size": 1}]}, owner="alice")
    assert caught.value.code == "job_cancelled"


# -- GET /jobs/{id} a page at a time: a job of 100,000 files must still fit Lambda's 6 MB answer ----


def _complete_every(store, job_id, records):
    for record in records:
        store.claim_file(job_id, record.file_id, token="t", at=1.0, lease_until=100.0)
        store.complete_file(
            job_id,
            record.file_id,
            token="t",
            at=2.0,
            compressed_size=1,
            crc32=1,
            result_key=f"results/{job_id}/{record.file_id}.gz",
            compress_seconds=0.1,
        )


def test_status_pages_through_every_file_in_name_order_and_signs_only_the_page(store, storage, settings):
    service = JobService(store, storage, dataclasses.replace(settings, max_status_page=2))
    names = ["e.log", "a.log", "d/x.log", "b.log", "c.log"]
    created = service.create_job({"files": [{"name": n, "size": 3} for n in names]}, owner="alice")
    job_id = created.job.job_id
    _complete_every(store, job_id, [record for record, _ in created.files])
    seen, cursor, pages = [], None, 0
    while True:
        status = service.get_status(job_id, owner="alice", cursor=cursor)
        pages += 1
        assert len(status.files) <= 2
        assert status.file_count == 5 and status.summary.state is JobState.COMPLETED  # totals cover every file
        assert set(status.download_urls) == {f.file_id for f in status.files}  # signed: this page only
        seen += [f.name for f in status.files]
        cursor = status.next_cursor
        if cursor is None:
            break
    assert pages == 3 and seen == sorted(names)
    one = service.get_status(job_id, owner="alice", limit="1")
    assert [f.name for f in one.files] == ["a.log"] and one.next_cursor
    assert [f.name for f in service.get_status(job_id, owner="alice", limit="2", cursor=one.next_cursor).files] == [
        "b.log",
        "c.log",
    ]


def test_a_job_that_fits_one_page_has_no_next_cursor(service):
    created = service.create_job(BODY, owner="alice")
    status = service.get_status(created.job.job_id, owner="alice")
    assert len(status.files) == 2 and status.file_count == 2 and status.next_cursor is None


@pytest.mark.parametrize(
    ("limit", "cursor", "code"),
    [
        ("0", None, "invalid_limit"),
        ("3", None, "invalid_limit"),  # above max_status_page
        ("x", None, "invalid_limit"),
        (None, "not a cursor", "invalid_cursor"),
        (None, "ZmlsZTpmX25vdGhlcmU", "invalid_cursor"),  # 'file:f_nothere': no such file in this job
        (None, "am9iOnh5eg", "invalid_cursor"),  # 'job:xyz': another listing's kind of cursor
    ],
)
def test_a_bad_page_request_is_a_clear_400(store, storage, settings, limit, cursor, code):
    service = JobService(store, storage, dataclasses.replace(settings, max_status_page=2))
    created = service.create_job(BODY, owner="alice")
    with pytest.raises(ValidationError) as info:
        service.get_status(created.job.job_id, owner="alice", limit=limit, cursor=cursor)
    assert info.value.code == code
