"""One contract, two implementations: DynamoDB (moto) and the in-memory fake."""

import dataclasses

import boto3
import pytest
from fakes import InMemoryJobStore

from chalicelib.domain import AddRefusal, Algorithm, Completion, FileError, FileRecord, FileState, Job, UploadMethod
from chalicelib.errors import ValidationError
from chalicelib.jobstore import DynamoJobStore


@pytest.fixture(params=["dynamodb", "memory"])
def store(request):
    if request.param == "memory":
        yield InMemoryJobStore()
        return
    request.getfixturevalue("moto_aws")
    table = boto3.resource("dynamodb", region_name="us-east-1").Table("squeezer-test-jobs")
    yield DynamoJobStore(table)


def make(store, n=3, owner="alice", created=100.0, job_id="j1"):
    job = Job(
        job_id=job_id,
        owner=owner,
        algorithm=Algorithm.BROTLI,
        level=5,
        file_count=n,
        total_size=n * 10,
        created_at=created,
    )
    files = [
        FileRecord(
            job_id=job_id,
            file_id=f"f{i}",
            name=f"dir/file{i}.txt",
            size=10,
            algorithm=Algorithm.BROTLI,
            level=5,
            sha256=None,
            created_at=created,
        )
        for i in range(n)
    ]
    store.create_job(job, files)
    return job, files


def test_create_and_read_back(store):
    job, files = make(store, n=60)  # more than one BatchWriteItem call
    got, got_files = store.get_job_with_files("j1")
    assert got == job
    assert len(got_files) == 60 and {f.state for f in got_files} == {FileState.PENDING}
    assert store.get_file("j1", "f3").name == "dir/file3.txt"
    assert store.get_job("nope") is None and store.get_file("j1", "nope") is None


def test_state_machine_is_conditional(store):
    make(store)
    assert store.mark_queued("j1", "f0", 1.0)
    assert not store.mark_queued("j1", "f0", 2.0)
    claim = store.claim_file("j1", "f0", token="A", at=10.0, lease_until=20.0)
    assert claim.won and claim.record.state is FileState.PROCESSING and claim.record.attempts == 1
    refused = store.claim_file("j1", "f0", token="B", at=15.0, lease_until=25.0)  # live lease
    assert not refused.won
    assert (refused.record.state, refused.record.lease_until) == (FileState.PROCESSING, 20.0)  # ALL_OLD
    assert refused.record.held_at(15.0) and not refused.record.held_at(21.0)
    assert not store.complete_file(
        "j1", "f0", token="B", at=16.0, compressed_size=1, crc32=1, result_key="k", compress_seconds=0.1
    )
    retaken = store.claim_file("j1", "f0", token="B", at=21.0, lease_until=30.0)  # expired lease
    assert retaken.won and retaken.record.attempts == 2
    assert not store.renew_claim("j1", "f0", token="A", lease_until=99.0)  # A lost it
    assert store.renew_claim("j1", "f0", token="B", lease_until=35.0)
    assert store.get_file("j1", "f0").lease_until == 35.0
    assert not store.release_file("j1", "f0", token="A", error=FileError("x", "y"), at=22.0)
    assert store.release_file("j1", "f0", token="B", error=FileError("slow", "later"), at=22.0)
    released = store.get_file("j1", "f0")
    assert released.state is FileState.QUEUED and released.error == FileError("slow", "later")
    store.claim_file("j1", "f0", token="C", at=23.0, lease_until=40.0)
    assert store.complete_file(
        "j1",
        "f0",
        token="C",
        at=24.0,
        compressed_size=4,
        crc32=7,
        result_key="results/j1/f0/C.br",
        compress_seconds=0.5,
    )
    done = store.get_file("j1", "f0")
    assert (done.state, done.compressed_size, done.error, done.attempts) == (FileState.COMPLETED, 4, None, 3)
    # a retried completion that had landed gets the same answer; another result does not
    assert store.complete_file(
        "j1",
        "f0",
        token="C",
        at=25.0,
        compressed_size=4,
        crc32=7,
        result_key="results/j1/f0/C.br",
        compress_seconds=0.5,
    )
    assert not store.complete_file(
        "j1",
        "f0",
        token="D",
        at=25.0,
        compressed_size=4,
        crc32=7,
        result_key="results/j1/f0/D.br",
        compress_seconds=0.5,
    )
    # final states are final
    final = store.claim_file("j1", "f0", token="D", at=1e12, lease_until=2e12)
    assert not final.won and final.record.state is FileState.COMPLETED
    assert not store.renew_claim("j1", "f0", token="C", lease_until=2e12)
    assert not store.fail_file("j1", "f0", error=FileError("x", "y"), at=25.0)
    assert not store.cancel_file("j1", "f0", 25.0)
    unknown = store.claim_file("j1", "nope", token="E", at=1.0, lease_until=2.0)
    assert not unknown.won and unknown.record is None


def test_fail_with_a_token_needs_the_lease(store):
    make(store)
    store.claim_file("j1", "f1", token="A", at=1.0, lease_until=100.0)
    assert not store.fail_file("j1", "f1", error=FileError("e", "m"), at=2.0, token="B")
    assert not store.fail_file("j1", "f1", error=FileError("e", "m"), at=2.0)  # no token: not while held
    assert store.fail_file("j1", "f1", error=FileError("e", "m"), at=2.0, token="A")
    assert store.get_file("j1", "f1").state is FileState.FAILED
    assert store.fail_file("j1", "f2", error=FileError("e", "m"), at=2.0)  # no token: an open file
    store.claim_file("j1", "f0", token="A", at=1.0, lease_until=10.0)
    assert store.fail_file("j1", "f0", error=FileError("e", "m"), at=11.0)  # ...or an expired claim


def test_requeue_only_retryable_failures(store):
    make(store)
    store.fail_file("j1", "f0", error=FileError("retries_exhausted", "m"), at=2.0)
    store.fail_file("j1", "f1", error=FileError("checksum_mismatch", "m"), at=2.0)
    codes = {"retries_exhausted", "aws_error"}
    assert store.requeue_file("j1", "f0", error_codes=codes, at=3.0)
    assert not store.requeue_file("j1", "f0", error_codes=codes, at=3.0)  # queued now
    assert not store.requeue_file("j1", "f1", error_codes=codes, at=3.0)
    assert not store.requeue_file("j1", "f2", error_codes=codes, at=3.0)  # pending
    requeued = store.get_file("j1", "f0")
    assert (requeued.state, requeued.finished_at) == (FileState.QUEUED, None)
    assert store.claim_file("j1", "f0", token="A", at=4.0, lease_until=9.0).won


def test_cancel_job_once(store):
    make(store)
    assert store.cancel_job("j1", 5.0)
    assert not store.cancel_job("j1", 6.0)
    assert store.get_job("j1").cancelled_at == 5.0
    assert store.cancel_file("j1", "f0", 5.0)
    assert store.get_file("j1", "f0").state is FileState.CANCELLED


def test_list_jobs_pages_newest_first_per_owner(store):
    for i in range(5):
        make(store, n=1, created=100.0 + i, job_id=f"j{i}")
    make(store, n=1, owner="bob", created=200.0, job_id="jb")
    seen, cursor = [], None
    while True:
        jobs, cursor = store.list_jobs("alice", limit=2, cursor=cursor)
        seen += [j.job_id for j in jobs]
        if not cursor:
            break
    assert seen == ["j4", "j3", "j2", "j1", "j0"]


def test_dynamo_cursor_is_checked(moto_aws):
    table = boto3.resource("dynamodb", region_name="us-east-1").Table("squeezer-test-jobs")
    store = DynamoJobStore(table)
    for i in range(3):
        make(store, n=1, created=100.0 + i, job_id=f"j{i}")
    _, cursor = store.list_jobs("alice", limit=1, cursor=None)
    for bad in ("garbage!", cursor + "x"):
        with pytest.raises(ValidationError):
            store.list_jobs("alice", limit=1, cursor=bad)
    with pytest.raises(ValidationError):  # another owner's cursor
        store.list_jobs("bob", limit=1, cursor=cursor)


def test_file_states_are_a_projection_of_the_files(store):
    make(store, n=3)
    store.claim_file("j1", "f0", token="A", at=2.0, lease_until=100.0)
    store.complete_file("j1", "f0", token="A", at=3.0, compressed_size=4, crc32=1, result_key="k", compress_seconds=0.1)
    states = {f.file_id: f for f in store.get_file_states("j1")}
    assert set(states) == {"f0", "f1", "f2"}
    assert (states["f0"].state, states["f0"].size, states["f0"].compressed_size) == (FileState.COMPLETED, 10, 4)
    assert states["f1"].state is FileState.PENDING


def test_a_live_claim_is_never_taken_over_even_by_the_same_message(store):
    """A claim belongs to one delivery: nothing, not even a token it used before, takes it while live."""
    make(store)
    store.claim_file("j1", "f0", token="delivery-1", at=1.0, lease_until=100.0)
    assert not store.claim_file("j1", "f0", token="delivery-1", at=3.0, lease_until=100.0).won
    assert not store.claim_file("j1", "f0", token="delivery-2", at=99.0, lease_until=200.0).won


def test_the_summary_read_keeps_what_decides_a_file_s_upload_window(store):
    """A summary poll settles pending files: it must see a multipart upload's id, or a 3-day upload
    would be failed as upload_expired after the single PUT's hour."""
    job, files = make(store, n=2)
    store.create_job(job, [files[0].evolve(upload_id="up-1", part_size=8 * 2**20, part_count=3), files[1]])
    states = {f.file_id: f for f in store.get_file_states(job.job_id)}
    assert states["f0"].multipart and not states["f1"].multipart


def test_a_file_remembers_that_its_upload_is_a_post_form(store):
    job, files = make(store, n=2, job_id="jp")
    store.create_job(
        dataclasses.replace(job, job_id="jq"),
        [
            dataclasses.replace(files[0], job_id="jq", upload_method=UploadMethod.POST),
            dataclasses.replace(files[1], job_id="jq"),
        ],
    )
    assert store.get_file("jq", "f0").upload_method is UploadMethod.POST
    assert store.get_file("jq", "f1").upload_method is UploadMethod.PUT
    assert store.get_file("jp", "f0").upload_method is UploadMethod.PUT


# -- a job open for more files (POST /jobs/{id}/files) ------------------------------------------
def _open_job(store, n=2, job_id="jopen"):
    from chalicelib.domain import file_id_for

    job = Job(
        job_id=job_id,
        owner="alice",
        algorithm=Algorithm.ZSTD,
        level=3,
        file_count=n,
        total_size=n,
        created_at=100.0,
        more_files=True,
    )
    store.create_job(job, [_named(job_id, f"first/{i}", file_id_for) for i in range(n)])
    return job


def _named(job_id, name, file_id_for, *, mode=None, mtime=None):
    return FileRecord(
        job_id=job_id,
        file_id=file_id_for(job_id, name),
        name=name,
        size=1,
        algorithm=Algorithm.ZSTD,
        level=3,
        mode=mode,
        mtime=mtime,
        created_at=100.0,
    )


def test_add_files_grows_the_job_and_closes_it(store):
    from chalicelib.domain import file_id_for

    job = _open_job(store)
    assert store.get_job(job.job_id).more_files is True
    batch = [_named(job.job_id, f"more/{i}", file_id_for, mode=0o755, mtime=1700000000.25) for i in range(150)]
    assert store.add_files(job, batch, max_files=1000, close=False).refused is None  # 2 transactions
    after = store.get_job(job.job_id)
    assert (after.file_count, after.total_size, after.more_files) == (152, 152, True)
    last = [_named(job.job_id, "last", file_id_for)]
    assert store.add_files(job, last, max_files=1000, close=True).refused is None
    after, files = store.get_job_with_files(job.job_id)
    assert (after.file_count, after.more_files, len(files)) == (153, False, 153)
    added = next(f for f in files if f.name == "more/7")
    assert (added.mode, added.mtime) == (0o755, 1700000000.25)
    # closed: nothing more is taken
    refused = store.add_files(job, [_named(job.job_id, "late", file_id_for)], max_files=1000, close=True)
    assert refused.refused is AddRefusal.CLOSED
    assert store.get_job(job.job_id).file_count == 153


def test_add_files_refuses_names_the_job_holds(store):
    from chalicelib.domain import file_id_for

    job = _open_job(store)
    batch = [_named(job.job_id, "new", file_id_for), _named(job.job_id, "first/1", file_id_for)]
    outcome = store.add_files(job, batch, max_files=1000, close=False)
    assert (outcome.refused, outcome.names) == (AddRefusal.DUPLICATE, ("first/1",))
    assert (
        store.get_job(job.job_id).file_count == 2 and store.get_file(job.job_id, file_id_for(job.job_id, "new")) is None
    )


def test_add_files_keeps_the_limit_and_cancel_closes(store):
    from chalicelib.domain import file_id_for

    job = _open_job(store)
    batch = [_named(job.job_id, f"x{i}", file_id_for) for i in range(3)]
    assert store.add_files(job, batch, max_files=4, close=False).refused is AddRefusal.FULL
    assert store.get_job(job.job_id).file_count == 2
    assert store.add_files(job, batch[:2], max_files=4, close=False).refused is None
    store.cancel_job(job.job_id, 200.0)
    assert store.add_files(job, batch[2:], max_files=10, close=False).refused is AddRefusal.CLOSED
    shut = make(store, n=1, job_id="jshut")[0]  # created without more_files
    assert store.add_files(shut, [_named("jshut", "y", file_id_for)], max_files=10, close=True).refused is (
        AddRefusal.CLOSED
    )


def test_completed_file_keeps_the_result_checksum(store):
    make(store, n=1)
    assert store.claim_file("j1", "f0", token="t", at=101.0, lease_until=200.0).won
    assert store.complete_file(
        "j1",
        "f0",
        token="t",
        at=102.0,
        compressed_size=5,
        crc32=1,
        result_key="r",
        compress_seconds=0.1,
        result_crc64nvme="AAAAAAAAAAE=",
    )
    assert store.get_file("j1", "f0").result_crc64nvme == "AAAAAAAAAAE="


# -- a batch's results recorded together (issue 14) -----------------------------------------


def _completion(file_id, token, key=None):
    return Completion("j1", file_id, token, 5.0, 4, 7, key or f"results/{file_id}-{token}", 0.01, "AAAAAAAAAAA=")


def _claim_all(store, n):
    for i in range(n):
        assert store.claim_file("j1", f"f{i}", token=f"t{i}", at=1.0, lease_until=100.0).won


def test_complete_files_records_every_result(store):
    make(store, n=3)
    _claim_all(store, 3)
    assert store.complete_files([_completion(f"f{i}", f"t{i}") for i in range(3)]) == [True, True, True]
    for i in range(3):
        got = store.get_file("j1", f"f{i}")
        assert got.state is FileState.COMPLETED
        assert (got.result_key, got.compressed_size, got.crc32) == (f"results/f{i}-t{i}", 4, 7)
        assert got.result_crc64nvme == "AAAAAAAAAAA=" and got.finished_at == 5.0
        assert got.lease_until is None
    # A retried write whose first try landed: the same answers, nothing changes.
    assert store.complete_files([_completion(f"f{i}", f"t{i}") for i in range(3)]) == [True, True, True]


def test_complete_files_answers_for_each_file_when_one_lost_its_claim(store):
    make(store, n=3)
    _claim_all(store, 3)
    assert store.cancel_file("j1", "f1", at=2.0)
    answers = store.complete_files([_completion(f"f{i}", f"t{i}") for i in range(3)])
    assert answers == [True, False, True]
    assert store.get_file("j1", "f1").state is FileState.CANCELLED  # never completed after a cancel
    assert {store.get_file("j1", f).state for f in ("f0", "f2")} == {FileState.COMPLETED}
    # Another delivery's result for a completed file is not ours: False, and the record keeps the first.
    assert store.complete_files([_completion("f0", "t0", key="results/other"), _completion("f2", "zz")]) == [
        False,
        False,
    ]
    assert store.get_file("j1", "f0").result_key == "results/f0-t0"


def test_complete_files_is_one_request_on_dynamodb(moto_aws):
    table = boto3.resource("dynamodb", region_name="us-east-1").Table("squeezer-test-jobs")
    store = DynamoJobStore(table)
    make(store, n=120)  # more than one transaction's 100
    for i in range(120):
        assert store.claim_file("j1", f"f{i}", token=f"t{i}", at=1.0, lease_until=100.0).won
    calls = []
    table.meta.client.meta.events.register("before-call", lambda event_name, **_: calls.append(event_name))
    assert store.complete_files([_completion(f"f{i}", f"t{i}") for i in range(120)]) == [True] * 120
    assert calls == ["before-call.dynamodb.TransactWriteItems"] * 2


class _Throttling:
    """The table's client, leaving the last ``left`` items of each of the first ``times`` BatchWriteItem calls unprocessed."""

    def __init__(self, client, *, left: int, times: int) -> None:
        self._client, self._left, self._times = client, left, times
        self.calls: list[int] = []

    def batch_write_item(self, RequestItems):  # noqa: N803 - boto3's keyword
        ((table, requests),) = RequestItems.items()
        self.calls.append(len(requests))
        if len(self.calls) <= self._times and len(requests) >= self._left:
            done, unprocessed = requests[: -self._left], requests[-self._left :]
            if done:
                self._client.batch_write_item(RequestItems={table: done})
            return {"UnprocessedItems": {table: unprocessed}}
        return self._client.batch_write_item(RequestItems=RequestItems)

    def __getattr__(self, name):
        return getattr(self._client, name)


def _throttled_store(monkeypatch, *, left: int, times: int):
    import chalicelib.jobstore as jobstore

    table = boto3.resource("dynamodb", region_name="us-east-1").Table("squeezer-test-jobs")
    throttling = _Throttling(table.meta.client, left=left, times=times)
    monkeypatch.setattr(table.meta, "client", throttling)
    monkeypatch.setattr(jobstore, "CREATE_WRITERS", 1)  # calls in a known order
    monkeypatch.setattr(jobstore.time, "sleep", lambda seconds: None)
    return DynamoJobStore(table), throttling


def test_create_job_sends_unprocessed_items_again(moto_aws, monkeypatch):
    store, throttling = _throttled_store(monkeypatch, left=5, times=3)

    job, files = make(store, n=60)

    got, got_files = store.get_job_with_files("j1")
    assert got == job and sorted(f.file_id for f in got_files) == sorted(f.file_id for f in files)
    assert throttling.calls[:2] == [25, 5]  # the first batch's 5 unprocessed items, sent again


def test_create_job_gives_up_clearly_when_items_stay_unprocessed(moto_aws, monkeypatch):
    from chalicelib import jobstore
    from chalicelib.errors import AwsError

    store, throttling = _throttled_store(monkeypatch, left=1, times=10_000)

    with pytest.raises(AwsError, match="left 1 item\\(s\\) unprocessed after 8 tries"):
        make(store, n=25)  # one BatchWriteItem
    assert throttling.calls == [25] + [1] * (jobstore.BATCH_WRITE_TRIES - 1)
    assert store.get_job("j1") is None  # the job's own item goes last: no job with files missing


def test_create_job_writes_a_thousand_files_in_parallel_batches(moto_aws):
    table = boto3.resource("dynamodb", region_name="us-east-1").Table("squeezer-test-jobs")
    store = DynamoJobStore(table)

    make(store, n=1000)

    got, got_files = store.get_job_with_files("j1")
    assert got is not None and got.file_count == 1000
    assert sorted(f.file_id for f in got_files) == sorted(f"f{i}" for i in range(1000))
