"""Fan-out on the fakes: planning, dispatch, ranges in any order, padding, duplicates, retries, cancel, checksums."""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import io
import json
import random
import time

import pytest
import pyzstd
import zstandard
from events import s3_notification, sqs_record
from fakes import FakeWorkQueue, InMemoryJobStore, InMemoryStorage

from chalicelib import fanout, frames, multipart
from chalicelib.codecs import decompress_stream
from chalicelib.domain import Algorithm, FileState, RangeState
from chalicelib.errors import AwsUnreachable, ValidationError
from chalicelib.events import RangeDelivery, RangeTask, parse_record, range_message
from chalicelib.keys import FileRef, ObjectKeys
from chalicelib.ports import ObjectStream
from chalicelib.service import JobService
from chalicelib.worker import Worker

MiB = 1024**2
GiB = 1024**3
BUCKET = "squeezer-test-files"


def sample(size: int, seed: int = 7) -> bytes:
    """Compressible but not trivial: lines of numbers (about 3:1 with zstd 3)."""
    rng = random.Random(seed)
    out = bytearray()
    while len(out) < size:
        out += b"%d,%x,user-%d,%s\n" % (len(out), rng.getrandbits(32), rng.randrange(1000), b"ok" * rng.randrange(8))
    return bytes(out[:size])


DATA = sample(3 * MiB + 12345)  # 4 ranges of 1 MiB, the last one short


@pytest.fixture
def fan_settings(settings):
    return dataclasses.replace(settings, fanout_threshold=2 * MiB, range_size=MiB, stop_margin_ms=0)


@pytest.fixture
def env(fan_settings):
    store, storage, queue = InMemoryJobStore(), InMemoryStorage(), FakeWorkQueue()
    service = JobService(store, storage, fan_settings, queue=queue)
    worker = Worker(store, storage, queue, fan_settings)
    return service, worker, store, storage, queue


def start(service, storage, data=DATA, algorithm="zstd", level=3):
    created = service.create_job(
        {"algorithm": algorithm, "level": level, "files": [{"name": "big.csv", "size": len(data)}]}, owner="public"
    )
    record = created.files[0][0]
    key = f"uploads/public/{created.job.job_id}/{record.file_id}"
    storage.objects[key] = data
    return created.job.job_id, record.file_id, key


def dispatch(worker, queue, key, size):
    """Deliver the S3 event; the range messages the worker sent, as SQS records."""
    assert worker.handle_batch([sqs_record(s3_notification(BUCKET, key, size))]) == {"batchItemFailures": []}
    return [sqs_record(body) for body in queue.range_bodies]


def number_of(record):
    return json.loads(record["body"])["range"]


def file_of(store, job_id, file_id):
    return store.get_file(job_id, file_id)


def decode(result: bytes, algorithm: Algorithm) -> bytes:
    plain = io.BytesIO()
    decompress_stream(io.BytesIO(result), plain, algorithm)
    return plain.getvalue()


# -- planning --------------------------------------------------------------------------------


def test_plan_cuts_ranges_of_the_configured_size_and_a_short_last_one():
    plan = fanout.plan_ranges(10 * MiB + 1, 4 * MiB, Algorithm.GZIP)
    assert (plan.range_size, plan.count) == (4 * MiB, 3)
    assert [r.length for r in plan.ranges("j", "f")] == [4 * MiB, 4 * MiB, 2 * MiB + 1]
    assert [r.offset for r in plan.ranges("j", "f")] == [0, 4 * MiB, 8 * MiB]
    assert sum(r.length for r in plan.ranges("j", "f")) == 10 * MiB + 1


def test_plan_grows_the_range_size_to_fit_the_part_limit_and_refuses_beyond_1_gib():
    # zstd keeps one part for its seek table: 9,999 ranges; gzip has all 10,000
    size = 9_999 * 256 * MiB + 1
    zstd = fanout.plan_ranges(size, 256 * MiB, Algorithm.ZSTD)
    assert zstd.count <= 9_999 and zstd.range_size == 257 * MiB
    gzip_plan = fanout.plan_ranges(10_000 * 256 * MiB, 256 * MiB, Algorithm.GZIP)
    assert (gzip_plan.count, gzip_plan.range_size) == (10_000, 256 * MiB)
    largest = fanout.plan_ranges(9_999 * GiB, 256 * MiB, Algorithm.ZSTD)
    assert (largest.count, largest.range_size) == (9_999, GiB)
    with pytest.raises(fanout.FanoutRefused, match="9,999 ranges of at most 1 GiB"):
        fanout.plan_ranges(9_999 * GiB + 1, 256 * MiB, Algorithm.ZSTD)


def test_what_fans_out(settings):
    settings = dataclasses.replace(settings, worker_timeout_seconds=900, stop_margin_ms=30_000)
    assert fanout.plan_file(GiB, Algorithm.ZSTD, 3, settings) is None  # at the threshold: one invocation
    plan = fanout.plan_file(GiB + 1, Algorithm.ZSTD, 3, settings)
    assert plan is not None and plan.range_size == 256 * MiB and plan.count == 5
    assert fanout.plan_file(50 * GiB, Algorithm.BROTLI, 1, settings) is None  # brotli never
    # zstd 19 (0.33 MiB/s, 435 s budget): 256 MiB would not fit, its ranges are the largest that do
    slow = fanout.plan_file(2 * GiB, Algorithm.ZSTD, 19, settings)
    assert slow is not None and slow.range_size == 143 * MiB
    assert fanout.range_fits(slow, Algorithm.ZSTD, 19, settings) is None
    # below the threshold but too slow for one invocation: fanned out too
    assert fanout.plan_file(500 * MiB, Algorithm.ZSTD, 19, settings) is not None


def test_post_jobs_checks_fanned_out_files_per_range_and_brotli_whole(settings):
    settings = dataclasses.replace(settings, worker_timeout_seconds=900, stop_margin_ms=30_000)
    service = JobService(InMemoryJobStore(), InMemoryStorage(), settings)

    def post(size, algorithm, level):
        body = {"algorithm": algorithm, "level": level, "files": [{"name": "huge.bin", "size": size}]}
        return service.create_job(body, owner="public")

    assert post(200 * GiB, "zstd", 3).files  # 40 GiB and more: accepted, in ranges
    assert post(200 * GiB, "gzip", 6).files
    with pytest.raises(ValidationError) as brotli:
        post(200 * GiB, "brotli", 5)
    assert brotli.value.code == "exceeds_time_budget"
    assert "cannot be split across workers" in brotli.value.message
    assert "zstd level" in brotli.value.message and "gzip level" in brotli.value.message
    with pytest.raises(ValidationError) as too_big:
        post(9_999 * GiB + 1, "zstd", 3)
    assert too_big.value.code == "exceeds_fanout_limit" and "huge.bin" in too_big.value.message
    # ranges grown for the 10,000-part limit no longer fit at a slow level: refused per range, with
    # the levels that fit (never brotli, which cannot be split)
    with pytest.raises(ValidationError) as slow:
        post(5_000 * GiB, "zstd", 19)
    assert slow.value.code == "exceeds_time_budget"
    assert "9,981 ranges of 513 MiB" in slow.value.message and "zstd level 16 or lower" in slow.value.message
    assert "brotli" not in slow.value.message


# -- frames --------------------------------------------------------------------------------


@pytest.mark.parametrize("needed", [1, 7, 8, 21, 22, 1000, 3 * MiB + 5])
def test_padding_has_the_size_asked_and_decodes_to_nothing(needed):
    for algorithm in (Algorithm.ZSTD, Algorithm.GZIP):
        pad = io.BytesIO()
        written = frames.write_padding(pad, algorithm, needed)
        assert written == len(pad.getvalue()) == frames.padding_size(algorithm, needed) >= needed
        member = zstandard.ZstdCompressor().compress(b"x") if algorithm is Algorithm.ZSTD else gzip.compress(b"x")
        assert decode(member + pad.getvalue() + member, algorithm) == b"xx"


def test_seek_table_round_trip():
    table = frames.seek_table([(5 * MiB, MiB), (123, 45)])
    assert table[:4] == (0x184D2A5E).to_bytes(4, "little") and table[-4:] == (0x8F92EAB1).to_bytes(4, "little")
    assert frames.read_seek_table(b"junk" + table) == [(5 * MiB, MiB), (123, 45)]


# -- dispatch ------------------------------------------------------------------------------


def test_dispatch_sends_one_message_per_range_and_lets_go_of_the_file(env):
    service, worker, store, storage, queue = env
    job_id, file_id, key = start(service, storage)
    records = dispatch(worker, queue, key, len(DATA))
    assert sorted(number_of(r) for r in records) == [1, 2, 3, 4]
    assert len(queue.range_batches) == 1  # SendMessageBatch(es): one call for four
    record = file_of(store, job_id, file_id)
    assert record.state is FileState.PROCESSING and record.fanned_out and record.lease_until is None
    assert (record.range_count, record.range_size, record.ranges_done) == (4, MiB, 0)
    assert [r.state for r in store.list_ranges(job_id, file_id)] == [RangeState.PENDING] * 4
    # a duplicate S3 event neither dispatches again nor comes back
    again = sqs_record(s3_notification(BUCKET, key, len(DATA)), receive_count=2)
    assert worker.handle_batch([again]) == {"batchItemFailures": []}
    assert len(queue.range_bodies) == 4
    # nor does its dead letter fail the file: the ranges carry it
    assert worker.handle_dead_letters([again]) == {"batchItemFailures": []}
    assert file_of(store, job_id, file_id).state is FileState.PROCESSING


def test_a_file_below_the_threshold_is_compressed_whole(env):
    service, worker, store, storage, queue = env
    data = sample(2 * MiB)
    job_id, file_id, key = start(service, storage, data)
    assert dispatch(worker, queue, key, len(data)) == []
    record = file_of(store, job_id, file_id)
    assert record.state is FileState.COMPLETED and not record.fanned_out
    assert decode(storage.objects[record.result_key], Algorithm.ZSTD) == data


# -- ranges -------------------------------------------------------------------------------


@pytest.mark.parametrize("algorithm", [Algorithm.ZSTD, Algorithm.GZIP])
def test_ranges_out_of_order_the_last_one_completes_and_the_result_decodes(env, algorithm):
    service, worker, store, storage, queue = env
    job_id, file_id, key = start(service, storage, algorithm=algorithm.value)
    records = dispatch(worker, queue, key, len(DATA))
    by_number = {number_of(r): r for r in records}
    for number in (3, 1, 4):
        assert worker.handle_batch([by_number[number]]) == {"batchItemFailures": []}
        assert file_of(store, job_id, file_id).state is FileState.PROCESSING
    assert file_of(store, job_id, file_id).ranges_done == 3
    assert worker.handle_batch([by_number[2]]) == {"batchItemFailures": []}  # the last to finish
    record = file_of(store, job_id, file_id)
    assert record.state is FileState.COMPLETED, record.error
    result = storage.objects[record.result_key]
    assert record.compressed_size == len(result) and record.crc32 == multipart_crc32(DATA)
    assert decode(result, algorithm) == DATA
    assert key not in storage.objects  # the upload is removed once the result is safe
    assert storage.tags[record.result_key]["original-crc32"] == f"{record.crc32:08x}"
    assert storage.metadata[record.result_key]["original-size"] == str(len(DATA))
    # every range read only its own bytes
    assert sorted(o for k, o, _ in storage.range_reads if k == key) == [0, MiB, 2 * MiB, 3 * MiB]
    ranges = store.list_ranges(job_id, file_id)
    if algorithm is Algorithm.ZSTD:
        # tiny ranges were padded to S3's 5 MiB part minimum, all four (the seek table is the last part)
        assert all(r.part_size >= multipart.MIN_PART_SIZE for r in ranges)
        assert frames.read_seek_table(result[-200:]) == [(r.part_size, r.length) for r in ranges]
        # python-zstandard across frames, and random access to a middle frame with a seekable reader
        reader = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(result), read_across_frames=True)
        assert reader.read() == DATA
        # (opening it checks the table: the frames' compressed sizes must add up to the file before it)
        with pyzstd.SeekableZstdFile(io.BytesIO(result), "r") as seekable:
            seekable.seek(2 * MiB - 10)
            assert seekable.read(20) == DATA[2 * MiB - 10 : 2 * MiB + 10]
    else:
        assert all(r.part_size >= multipart.MIN_PART_SIZE for r in ranges[:-1])
        assert ranges[-1].part_size < MiB  # the last part is not padded
        assert gzip.decompress(result) == DATA


def multipart_crc32(data: bytes) -> int:
    import zlib

    return zlib.crc32(data)


def test_a_duplicate_range_delivery_does_not_count_twice_or_upload_again(env):
    service, worker, store, storage, queue = env
    job_id, file_id, key = start(service, storage)
    records = dispatch(worker, queue, key, len(DATA))
    first = records[0]
    assert worker.handle_batch([first]) == {"batchItemFailures": []}
    uploads = len(storage.part_uploads)
    # the same message again (SQS at-least-once), and a second copy at once
    assert worker.handle_batch([first, dict(first, receiptHandle="other")]) == {"batchItemFailures": []}
    record = file_of(store, job_id, file_id)
    assert record.ranges_done == 1 and len(storage.part_uploads) == uploads
    for other in records[1:]:
        worker.handle_batch([other])
    assert worker.handle_batch([first]) == {"batchItemFailures": []}  # after completion: dropped
    record = file_of(store, job_id, file_id)
    assert record.state is FileState.COMPLETED and record.ranges_done == 4
    assert decode(storage.objects[record.result_key], Algorithm.ZSTD) == DATA


def test_a_live_range_claim_is_never_taken_over_an_expired_one_is(env):
    service, worker, store, storage, queue = env
    job_id, file_id, key = start(service, storage)
    records = dispatch(worker, queue, key, len(DATA))
    at = time.time()
    assert store.claim_range(job_id, file_id, 1, token="someone", at=at, lease_until=at + 600).won
    response = worker.handle_batch([records[0]])
    assert response == {"batchItemFailures": [{"itemIdentifier": records[0]["messageId"]}]}
    assert 600 <= queue.delays[-1][1] <= 602  # back once the holder's claim could have expired
    store.ranges[(job_id, file_id, 1)] = store.ranges[(job_id, file_id, 1)].evolve(lease_until=0.0)  # it died
    assert worker.handle_batch([records[0]]) == {"batchItemFailures": []}
    assert store.list_ranges(job_id, file_id)[0].state is RangeState.DONE
    assert store.list_ranges(job_id, file_id)[0].attempts == 2


def test_a_range_failing_transiently_is_retried_alone(env):
    service, worker, store, storage, queue = env
    job_id, file_id, key = start(service, storage, algorithm="gzip")
    records = dispatch(worker, queue, key, len(DATA))
    storage.read_faults[key] = [AwsUnreachable("EndpointConnectionError: could not connect")]
    response = worker.handle_batch(records)  # the first range read meets the fault
    assert response == {"batchItemFailures": [{"itemIdentifier": records[0]["messageId"]}]}
    assert queue.delays[-1][0] == records[0]["receiptHandle"]  # backoff on that message only
    ranges = store.list_ranges(job_id, file_id)
    assert ranges[0].state is RangeState.PENDING and ranges[0].error.code == "connection_error"
    assert [r.state for r in ranges[1:]] == [RangeState.DONE] * 3
    assert file_of(store, job_id, file_id).state is FileState.PROCESSING
    retry = dict(records[0], attributes={"ApproximateReceiveCount": "2"})
    assert worker.handle_batch([retry]) == {"batchItemFailures": []}
    record = file_of(store, job_id, file_id)
    assert record.state is FileState.COMPLETED and gzip.decompress(storage.objects[record.result_key]) == DATA


def test_the_combined_crc64nvme_must_match_the_uploads(env):
    service, worker, store, storage, queue = env
    job_id, file_id, key = start(service, storage)
    records = dispatch(worker, queue, key, len(DATA))
    upload_id = file_of(store, job_id, file_id).fanout_upload_id
    wrong = multipart.encode(multipart.crc64nvme(DATA[::-1]))
    store.files[(job_id, file_id)] = file_of(store, job_id, file_id).evolve(crc64nvme=wrong)
    assert worker.handle_batch(records) == {"batchItemFailures": []}
    record = file_of(store, job_id, file_id)
    assert record.state is FileState.FAILED and record.error.code == "checksum_mismatch"
    assert upload_id in storage.aborted_uploads and upload_id not in storage.uploads
    assert not any(k.startswith("results/") for k in storage.objects)


def test_the_right_crc64nvme_passes(env):
    service, worker, store, storage, queue = env
    job_id, file_id, key = start(service, storage)
    records = dispatch(worker, queue, key, len(DATA))
    right = multipart.encode(multipart.crc64nvme(DATA))
    store.files[(job_id, file_id)] = file_of(store, job_id, file_id).evolve(crc64nvme=right)
    assert worker.handle_batch(records) == {"batchItemFailures": []}
    assert file_of(store, job_id, file_id).state is FileState.COMPLETED


def test_a_cancel_stops_running_ranges_and_aborts_the_result_upload(fan_settings):
    settings = dataclasses.replace(fan_settings, heartbeat_seconds=0.05, lease_seconds=5)
    store, queue = InMemoryJobStore(), FakeWorkQueue()
    storage = SlowStorage()
    service = JobService(store, storage, settings)
    worker = Worker(store, storage, queue, settings)
    job_id, file_id, key = start(service, storage)
    records = dispatch(worker, queue, key, len(DATA))
    upload_id = file_of(store, job_id, file_id).fanout_upload_id
    assert worker.handle_batch([records[0]]) == {"batchItemFailures": []}  # one range done before the cancel
    storage.on_read = lambda: service.cancel_job(job_id, owner="public")  # cancelled while range 2 reads
    started = time.monotonic()
    assert worker.handle_batch([records[1]]) == {"batchItemFailures": []}
    assert time.monotonic() - started < 3  # stopped at a heartbeat, not at the end of the range
    assert file_of(store, job_id, file_id).state is FileState.CANCELLED
    assert storage.aborted_uploads == [upload_id] and upload_id not in storage.uploads
    assert [n for u, n in storage.part_uploads if u == upload_id] == [1]  # range 2 never uploaded
    # the remaining messages find the file cancelled and stop at once
    storage.on_read = None
    assert worker.handle_batch(records[2:]) == {"batchItemFailures": []}
    assert storage.aborted_uploads == [upload_id] and len(storage.part_uploads) == 1
    assert not any(k.startswith("results/") for k in storage.objects)


class SlowStorage(InMemoryStorage):
    """Ranged reads of 64 KiB per 20 ms; ``on_read`` runs once, at the first read."""

    on_read = None

    def open_read_range(self, key, *, offset, length):
        stream = super().open_read_range(key, offset=offset, length=length)
        storage = self

        class Slow:
            def read(self, size=-1):
                if storage.on_read is not None:
                    hook, storage.on_read = storage.on_read, None
                    hook()
                time.sleep(0.02)
                return stream.body.read(min(size, 64 * 1024) if size > 0 else 64 * 1024)

            def close(self):
                pass

        return ObjectStream(body=Slow(), size=stream.size)


def test_a_range_out_of_retries_fails_the_file_and_aborts_the_upload(env):
    service, worker, store, storage, queue = env
    job_id, file_id, key = start(service, storage)
    records = dispatch(worker, queue, key, len(DATA))
    upload_id = file_of(store, job_id, file_id).fanout_upload_id
    assert worker.handle_dead_letters([dict(records[2], attributes={"ApproximateReceiveCount": "5"})]) == {
        "batchItemFailures": []
    }
    record = file_of(store, job_id, file_id)
    assert record.state is FileState.FAILED and record.error.code == "retries_exhausted"
    assert "range 3 of 4" in record.error.message
    assert upload_id in storage.aborted_uploads
    # the other ranges stop at once
    assert worker.handle_batch(records) == {"batchItemFailures": []}
    assert storage.part_uploads == []


def test_a_retried_fanned_out_file_starts_a_new_fan_out(env):
    service, worker, store, storage, queue = env
    job_id, file_id, key = start(service, storage)
    records = dispatch(worker, queue, key, len(DATA))
    worker.handle_batch(records[:1])
    worker.handle_dead_letters([records[1]])  # failed: retries_exhausted
    assert service.retry_failed(job_id, owner="public").retried
    record = file_of(store, job_id, file_id)
    assert record.state is FileState.QUEUED and record.fanout_upload_id is None and record.ranges_done == 0
    queue.range_batches.clear()
    new = dispatch(worker, queue, key, len(DATA))
    assert len(new) == 4
    assert worker.handle_batch(new + records[:1]) == {"batchItemFailures": []}  # an old message is harmless
    record = file_of(store, job_id, file_id)
    assert record.state is FileState.COMPLETED and decode(storage.objects[record.result_key], Algorithm.ZSTD) == DATA


# -- range messages --------------------------------------------------------------------------


def test_range_messages_round_trip_and_a_malformed_one_is_its_own_failure(env):
    _, worker, *_ = env
    keys = ObjectKeys()
    task = RangeTask(FileRef("public", "j_1", "f_1"), 7)
    parsed = parse_record(sqs_record(range_message(task)), keys)
    assert isinstance(parsed, RangeDelivery) and parsed.task == task
    bad = [
        sqs_record({"squeezer": "range", "owner": "public", "job_id": "j_1", "file_id": "f_1", "range": 0}),
        sqs_record({"squeezer": "range", "owner": "public", "job_id": "j/1", "file_id": "f_1", "range": 1}),
        sqs_record({"squeezer": "range", "owner": "public", "job_id": "j_1", "file_id": "f_1", "range": True}),
        sqs_record({"squeezer": "other"}),
    ]
    unknown = sqs_record(range_message(RangeTask(FileRef("public", "j_none", "f_none"), 1)))
    response = worker.handle_batch([*bad, unknown])
    assert response == {"batchItemFailures": [{"itemIdentifier": r["messageId"]} for r in bad]}


def test_the_seekable_result_has_the_same_bytes_as_plain_zstd_tools_expect(env):
    """Each frame is a whole zstd frame: decoding frame by frame from the seek table's offsets gives the ranges."""
    service, worker, store, storage, queue = env
    job_id, file_id, key = start(service, storage)
    worker.handle_batch(dispatch(worker, queue, key, len(DATA)))
    result = storage.objects[file_of(store, job_id, file_id).result_key]
    offset, pieces = 0, []
    for compressed, decompressed in frames.read_seek_table(result[-200:]):
        piece = zstandard.ZstdDecompressor().decompressobj().decompress(result[offset : offset + compressed])
        assert len(piece) == decompressed
        pieces.append(piece)
        offset += compressed
    assert b"".join(pieces) == DATA
    assert hashlib.sha256(b"".join(pieces)).digest() == hashlib.sha256(DATA).digest()
