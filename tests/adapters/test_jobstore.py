"""One contract, two implementations: DynamoDB (moto) and the in-memory fake."""
import boto3
import pytest

from chalicelib.codecs import Algorithm
from chalicelib.domain import FileError, FileRecord, FileState, Job
from chalicelib.errors import ValidationError
from chalicelib.jobstore import DynamoJobStore
from fakes import InMemoryJobStore


@pytest.fixture(params=["dynamodb", "memory"])
def store(request):
    if request.param == "memory":
        yield InMemoryJobStore()
        return
    request.getfixturevalue("moto_aws")
    table = boto3.resource("dynamodb", region_name="us-east-1").Table("squeezer-test-jobs")
    yield DynamoJobStore(table)


def make(store, n=3, owner="alice", created=100.0, job_id="j1"):
    job = Job(job_id=job_id, owner=owner, algorithm=Algorithm.BROTLI, level=5, file_count=n,
              total_size=n * 10, created_at=created)
    files = [FileRecord(job_id=job_id, file_id=f"f{i}", name=f"dir/file{i}.txt", size=10,
                        algorithm=Algorithm.BROTLI, level=5, sha256=None, created_at=created)
             for i in range(n)]
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
    claimed = store.claim_file("j1", "f0", token="A", at=10.0, lease_until=20.0)
    assert claimed.state is FileState.PROCESSING and claimed.attempts == 1
    assert store.claim_file("j1", "f0", token="B", at=15.0, lease_until=25.0) is None  # live lease
    assert not store.complete_file("j1", "f0", token="B", at=16.0, compressed_size=1, crc32=1,
                                   result_key="k", compress_seconds=0.1)
    retaken = store.claim_file("j1", "f0", token="B", at=21.0, lease_until=30.0)  # expired lease
    assert retaken.attempts == 2
    assert not store.release_file("j1", "f0", token="A", error=FileError("x", "y"), at=22.0)
    assert store.release_file("j1", "f0", token="B", error=FileError("slow", "later"), at=22.0)
    released = store.get_file("j1", "f0")
    assert released.state is FileState.QUEUED and released.error == FileError("slow", "later")
    store.claim_file("j1", "f0", token="C", at=23.0, lease_until=40.0)
    assert store.complete_file("j1", "f0", token="C", at=24.0, compressed_size=4, crc32=7,
                               result_key="results/j1/f0.br", compress_seconds=0.5)
    done = store.get_file("j1", "f0")
    assert (done.state, done.compressed_size, done.error, done.attempts) == (FileState.COMPLETED, 4, None, 3)
    # final states are final
    assert store.claim_file("j1", "f0", token="D", at=1e12, lease_until=2e12) is None
    assert not store.fail_file("j1", "f0", error=FileError("x", "y"), at=25.0)
    assert not store.cancel_file("j1", "f0", 25.0)


def test_fail_with_a_token_needs_the_lease(store):
    make(store)
    store.claim_file("j1", "f1", token="A", at=1.0, lease_until=100.0)
    assert not store.fail_file("j1", "f1", error=FileError("e", "m"), at=2.0, token="B")
    assert store.fail_file("j1", "f1", error=FileError("e", "m"), at=2.0, token="A")
    assert store.get_file("j1", "f1").state is FileState.FAILED
    assert store.fail_file("j1", "f2", error=FileError("e", "m"), at=2.0)  # no token: any open file


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
    store.complete_file("j1", "f0", token="A", at=3.0, compressed_size=4, crc32=1, result_key="k",
                        compress_seconds=0.1)
    states = {f.file_id: f for f in store.get_file_states("j1")}
    assert set(states) == {"f0", "f1", "f2"}
    assert (states["f0"].state, states["f0"].size, states["f0"].compressed_size) == (FileState.COMPLETED, 10, 4)
    assert states["f1"].state is FileState.PENDING


def test_the_same_token_may_take_back_its_own_claim(store):
    make(store)
    store.claim_file("j1", "f0", token="message-1", at=1.0, lease_until=100.0)
    assert store.claim_file("j1", "f0", token="message-2", at=2.0, lease_until=100.0) is None
    again = store.claim_file("j1", "f0", token="message-1", at=3.0, lease_until=100.0)
    assert again is not None and again.attempts == 2
