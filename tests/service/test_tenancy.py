"""Isolation and quotas in the service, on the fakes."""

import dataclasses
import threading

import pytest
from fakes import FakeWorkQueue, InMemoryJobStore, InMemoryStorage, InMemoryTenantStore

from chalicelib.domain import FileState
from chalicelib.errors import JobNotFound, QuotaExceeded, Unauthorized, ValidationError
from chalicelib.quotas import OPEN_JOBS_RETRY_SECONDS, Quotas
from chalicelib.service import JobService
from chalicelib.tenants import Limits, TenantAdmin

DAY_START = 1_764_806_400.0  # 2025-12-04 00:00:00 UTC


def body(size=10, files=1):
    return {"files": [{"name": f"f{i}.txt", "size": size} for i in range(files)], "algorithm": "gzip"}


@pytest.fixture
def world(settings):
    tenants, store, storage = InMemoryTenantStore(), InMemoryJobStore(), InMemoryStorage()
    clock = [DAY_START + 3600.0]
    admin = TenantAdmin(tenants, clock=lambda: clock[0])
    settings = dataclasses.replace(settings, max_open_jobs=2, max_bytes_per_day=100)
    quotas = Quotas(tenants, settings, clock=lambda: clock[0])
    service = JobService(store, storage, settings, queue=FakeWorkQueue(), quotas=quotas, clock=lambda: clock[0])
    alice = admin.create("alice").tenant.tenant_id
    bob = admin.create("bob").tenant.tenant_id
    return service, store, storage, tenants, admin, clock, alice, bob


def test_another_tenants_job_is_not_found_for_every_operation(world):
    service, store, storage, _, _, _, alice, bob = world
    created = service.create_job(body(), owner=alice)
    job_id = created.job.job_id
    for call in (service.get_status, service.get_summary, service.cancel_job, service.retry_failed):
        with pytest.raises(JobNotFound) as caught:
            call(job_id, owner=bob)
        assert "no job with id" in caught.value.message  # the same answer as for a job that does not exist
    assert service.list_jobs(owner=bob, limit=None, cursor=None).jobs == []
    assert [j.job_id for j in service.list_jobs(owner=alice, limit=None, cursor=None).jobs] == [job_id]
    assert store.jobs[job_id].cancelled_at is None  # bob's cancel changed nothing


def test_uploads_sit_under_the_tenants_prefix(world):
    service, _, storage, _, _, _, alice, _ = world
    created = service.create_job(body(), owner=alice)
    record, upload = created.files[0]
    assert f"uploads/{alice}/{created.job.job_id}/{record.file_id}" in upload.url


def test_open_jobs_limit_answers_429_until_a_job_finishes(world):
    service, store, _, tenants, _, _, alice, bob = world
    first = service.create_job(body(), owner=alice)
    service.create_job(body(), owner=alice)
    with pytest.raises(QuotaExceeded) as caught:
        service.create_job(body(), owner=alice)
    assert caught.value.status == 429 and caught.value.retry_after == OPEN_JOBS_RETRY_SECONDS
    assert "open-jobs limit" in caught.value.message and "2 at a time" in caught.value.message
    assert len(store.jobs) == 2  # nothing written for the refused job
    service.create_job(body(), owner=bob)  # another tenant's limit is its own
    # the first job finishes: it no longer counts
    for record in store.get_file_states(first.job.job_id):
        store.files[(first.job.job_id, record.file_id)] = record.evolve(state=FileState.COMPLETED)
    service.create_job(body(), owner=alice)
    assert first.job.job_id not in tenants.get_tenant(alice).open_jobs


def test_a_cancelled_job_frees_its_slot(world):
    service, *_, alice, _ = world
    first = service.create_job(body(), owner=alice)
    service.create_job(body(), owner=alice)
    service.cancel_job(first.job.job_id, owner=alice)
    service.create_job(body(), owner=alice)


def test_bytes_per_day_answers_429_until_midnight_utc_and_a_job_too_big_for_a_day_is_400(world):
    service, _, _, _, admin, clock, alice, _ = world
    service.create_job(body(size=60), owner=alice)
    with pytest.raises(QuotaExceeded) as caught:
        service.create_job(body(size=41), owner=alice)
    assert caught.value.retry_after == 86400 - 3600  # seconds to 00:00 UTC
    assert "60 bytes of this tenant's 100 bytes a day" in caught.value.message
    service.create_job(body(size=40), owner=alice)  # exactly the rest fits... (a second open job)
    with pytest.raises(ValidationError) as too_big:
        service.create_job(body(size=101), owner=alice)
    assert too_big.value.code == "exceeds_quota"
    clock[0] += 86400  # the next day: a fresh allowance (and the open jobs expire their uploads)
    admin.set_limits("alice", Limits(max_open_jobs=10))
    service.create_job(body(size=100), owner=alice)


def test_a_tenants_own_limits_beat_the_defaults(world):
    service, _, _, _, admin, _, alice, _ = world
    admin.set_limits("alice", Limits(max_open_jobs=3, max_bytes_per_day=1000))
    for _ in range(3):
        service.create_job(body(size=300), owner=alice)
    with pytest.raises(QuotaExceeded):
        service.create_job(body(size=1), owner=alice)


def test_a_job_that_cannot_be_written_gives_back_its_reservation(world, monkeypatch):
    service, store, _, tenants, _, _, alice, _ = world

    def broken(job, files):
        raise RuntimeError("table unavailable")

    monkeypatch.setattr(store, "create_job", broken)
    with pytest.raises(RuntimeError):
        service.create_job(body(size=100), owner=alice)
    monkeypatch.undo()
    assert tenants.get_tenant(alice).open_jobs == frozenset()
    service.create_job(body(size=100), owner=alice)  # the whole day's bytes are still there


def test_concurrent_creates_never_pass_the_open_jobs_limit(world):
    service, store, *_, alice, _ = world
    outcomes = []

    def create():
        try:
            service.create_job(body(), owner=alice)
            outcomes.append("created")
        except QuotaExceeded:
            outcomes.append("refused")

    threads = [threading.Thread(target=create) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["created"] * 2 + ["refused"] * 8
    assert len(store.jobs) == 2


def test_a_revoked_tenant_cannot_create_even_with_a_cached_authorization(world):
    service, _, _, _, admin, _, alice, _ = world
    admin.revoke("alice")
    with pytest.raises(Unauthorized):
        service.create_job(body(), owner=alice)


def test_each_batch_reserves_its_bytes_and_an_open_job_counts_as_open(world):
    service, store, _, tenants, _, _, alice, bob = world
    opened = service.create_job({**body(size=30), "more_files": True}, owner=alice)
    job_id = opened.job.job_id
    for record in store.get_file_states(job_id):  # every file so far is done: the job is still open
        store.files[(job_id, record.file_id)] = record.evolve(state=FileState.COMPLETED)
    service.create_job(body(size=10), owner=alice)
    with pytest.raises(QuotaExceeded) as caught:
        service.create_job(body(size=10), owner=alice)
    assert "open-jobs limit" in caught.value.message
    more = {"files": [{"name": "g.txt", "size": 50}], "more_files": True}
    service.add_files(job_id, more, owner=alice)  # 30 + 10 + 50 of 100 today
    with pytest.raises(QuotaExceeded) as caught:
        service.add_files(job_id, {"files": [{"name": "h.txt", "size": 20}]}, owner=alice)
    assert caught.value.status == 429 and "this batch adds 20 bytes" in caught.value.message
    assert store.jobs[job_id].file_count == 2  # nothing written for the refused batch
    with pytest.raises(ValidationError) as too_big:
        service.add_files(job_id, {"files": [{"name": "h.txt", "size": 101}]}, owner=alice)
    assert too_big.value.code == "exceeds_quota"
    with pytest.raises(JobNotFound):
        service.add_files(job_id, {"files": []}, owner=bob)
    service.add_files(job_id, {"files": []}, owner=alice)  # closes it
    for record in store.get_file_states(job_id):  # and it finishes: its slot frees
        store.files[(job_id, record.file_id)] = record.evolve(state=FileState.COMPLETED)
    service.create_job(body(size=1), owner=alice)
    assert job_id not in tenants.get_tenant(alice).open_jobs
