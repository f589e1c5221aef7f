from chalicelib.domain import Algorithm, FileRecord, FileState, Job, JobState, new_job_id, summarize


def job(**kw):
    return Job(job_id="j", owner="o", algorithm=Algorithm.ZSTD, level=3, file_count=2, total_size=30, **kw)


def file(name, state, size=10, out=None, finished=None):
    return FileRecord(
        job_id="j",
        file_id=name,
        name=name,
        size=size,
        algorithm=Algorithm.ZSTD,
        level=3,
        state=state,
        compressed_size=out,
        finished_at=finished,
    )


def test_job_ids_are_unguessable_and_unique():
    ids = {new_job_id() for _ in range(1000)}
    assert len(ids) == 1000 and all(len(i) == 34 for i in ids)


def test_states_and_totals():
    P, Q, R, C, F = FileState.PENDING, FileState.QUEUED, FileState.PROCESSING, FileState.COMPLETED, FileState.FAILED
    assert summarize(job(), [file("a", P), file("b", P)]).state is JobState.PENDING
    assert summarize(job(), [file("a", Q), file("b", P)]).state is JobState.PROCESSING
    assert summarize(job(), [file("a", C, 10, 5, 3.0), file("b", R)]).state is JobState.PROCESSING
    done = summarize(job(), [file("a", C, 10, 5, 3.0), file("b", C, 20, 5, 4.0)])
    assert (done.state, done.bytes_in, done.bytes_out, done.ratio, done.finished_at) == (
        JobState.COMPLETED,
        30,
        10,
        0.3333,
        4.0,
    )
    mixed = summarize(job(), [file("a", C, 10, 5, 3.0), file("b", F, finished=5.0)])
    assert mixed.state is JobState.PARTIALLY_FAILED and mixed.counts["failed"] == 1 and mixed.bytes_in == 10
    assert summarize(job(), [file("a", F), file("b", F)]).state is JobState.FAILED
    assert summarize(job(cancelled_at=1.0), [file("a", C, 10, 5)]).state is JobState.CANCELLED


def test_ratio_of_empty_file_is_none():
    assert file("a", FileState.COMPLETED, 0, 9).ratio is None
    assert file("a", FileState.COMPLETED, 100, 25).ratio == 0.25


def test_final_states_and_live_claims():
    assert {s for s in FileState if s.is_final} == {FileState.COMPLETED, FileState.FAILED, FileState.CANCELLED}
    held = file("a", FileState.PROCESSING).evolve(lease_until=100.0)
    assert held.held_at(99.0) and held.held_at(100.0) and not held.held_at(100.5)
    assert not file("a", FileState.QUEUED).evolve(lease_until=100.0).held_at(50.0)  # only processing is held
    assert not file("a", FileState.PROCESSING).held_at(1.0)  # no lease recorded: takeable
