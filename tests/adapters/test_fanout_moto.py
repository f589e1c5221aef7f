"""Fan-out through the real adapters on moto: DynamoDB ranges and transactions, ranged GETs, UploadPart, SQS batches.

Range messages go to the ranges queue (created by infra's definition), and
its worker changes visibilities there.

moto refuses parts under 5 MiB at completion (EntityTooSmall), as S3 does,
so these tests also prove that small ranges are padded.
"""

from __future__ import annotations

import dataclasses
import gzip
import io
import json
import random
import time

import boto3
import pytest
import pyzstd
from events import receive_records, s3_notification, sqs_record

from chalicelib import wiring
from chalicelib.codecs import decompress_stream
from chalicelib.domain import Algorithm, FileState, RangeState
from chalicelib.jobstore import DynamoJobStore
from chalicelib.queue import SqsWorkQueue
from chalicelib.service import JobService
from chalicelib.storage import S3Storage
from chalicelib.worker import Worker

MiB = 1024**2


def sample(size: int) -> bytes:
    rng = random.Random(11)
    out = bytearray()
    while len(out) < size:
        out += b"%d;%08x;item-%d\n" % (len(out), rng.getrandbits(32), rng.randrange(500))
    return bytes(out[:size])


DATA = sample(3 * MiB + 777)


@pytest.fixture
def stack(moto_aws, settings):
    settings = dataclasses.replace(settings, fanout_threshold=2 * MiB, range_size=MiB, stop_margin_ms=0)
    s3 = boto3.client("s3", region_name="us-east-1")
    sqs = boto3.client("sqs", region_name="us-east-1")
    store = DynamoJobStore(boto3.resource("dynamodb", region_name="us-east-1").Table(settings.table))
    storage = S3Storage(s3, settings.bucket, part_size=settings.part_size)
    queue = SqsWorkQueue(sqs, settings.queue_name)
    receive_records(sqs, moto_aws.queue_url)  # S3's TestEvent
    service = JobService(store, storage, settings, queue=queue)
    worker = Worker(store, storage, queue, settings, ranges_queue=SqsWorkQueue(sqs, settings.ranges_queue_name))
    return service, worker, store, storage, s3, sqs, moto_aws.ranges_queue_url, settings


def start(service, s3, settings, algorithm):
    created = service.create_job(
        {"algorithm": algorithm, "files": [{"name": "big.log", "size": len(DATA)}]}, owner="public"
    )
    record = created.files[0][0]
    key = f"uploads/public/{created.job.job_id}/{record.file_id}"
    s3.put_object(Bucket=settings.bucket, Key=key, Body=DATA)
    return created.job.job_id, record.file_id, key


def range_records(sqs, queue_url, count):
    records = receive_records(sqs, queue_url, until=lambda got: len(got) >= count)
    return [r for r in records if '"squeezer"' in r["body"]]


@pytest.mark.parametrize("algorithm", [Algorithm.ZSTD, Algorithm.GZIP])
def test_a_file_fans_out_and_completes_through_the_real_adapters(stack, algorithm):
    service, worker, store, storage, s3, sqs, queue_url, settings = stack
    job_id, file_id, key = start(service, s3, settings, algorithm.value)
    event = sqs_record(s3_notification(settings.bucket, key, len(DATA)))
    assert worker.handle_batch([event]) == {"batchItemFailures": []}
    records = range_records(sqs, queue_url, 4)
    assert sorted(json.loads(r["body"])["range"] for r in records) == [1, 2, 3, 4]
    jobs_url = sqs.get_queue_url(QueueName=settings.queue_name)["QueueUrl"]
    assert range_records(sqs, jobs_url, 0) == []  # none on the jobs queue (only S3's notification of the upload)
    assert store.get_file(job_id, file_id).fanned_out
    # the job's reads never see the range items (a partition of their own)
    assert [f.file_id for f in store.get_job_with_files(job_id)[1]] == [file_id]
    for record in reversed(records):
        assert worker.handle_batch([record]) == {"batchItemFailures": []}
    worker.handle_batch([records[0]])  # a duplicate after completion: dropped
    record = store.get_file(job_id, file_id)
    assert record.state is FileState.COMPLETED, record.error
    result = s3.get_object(Bucket=settings.bucket, Key=record.result_key)["Body"].read()
    assert len(result) == record.compressed_size
    plain = io.BytesIO()
    decompress_stream(io.BytesIO(result), plain, algorithm)
    assert plain.getvalue() == DATA
    if algorithm is Algorithm.ZSTD:
        with pyzstd.SeekableZstdFile(io.BytesIO(result), "r") as seekable:
            seekable.seek(MiB + 5)
            assert seekable.read(100) == DATA[MiB + 5 : MiB + 105]
    else:
        assert gzip.decompress(result) == DATA
    tags = s3.get_object_tagging(Bucket=settings.bucket, Key=record.result_key)["TagSet"]
    assert {"Key": "original-crc32", "Value": f"{record.crc32:08x}"} in tags
    assert "Contents" not in s3.list_objects_v2(Bucket=settings.bucket, Prefix="uploads/")


def test_range_claims_counts_and_renewals_on_dynamodb(stack):
    service, worker, store, storage, s3, sqs, queue_url, settings = stack
    job_id, file_id, key = start(service, s3, settings, "zstd")
    worker.handle_batch([sqs_record(s3_notification(settings.bucket, key, len(DATA)))])
    upload_id = store.get_file(job_id, file_id).fanout_upload_id
    claim = store.claim_range(job_id, file_id, 2, token="a", at=100.0, lease_until=10**12)
    assert claim.won and claim.range.state is RangeState.PROCESSING and claim.range.attempts == 1
    taken = store.claim_range(job_id, file_id, 2, token="b", at=200.0, lease_until=10**12)
    assert not taken.won and taken.range.number == 2  # a live claim is never taken over
    assert store.renew_range(job_id, file_id, 2, token="a", lease_until=10**12 + 1)
    assert not store.renew_range(job_id, file_id, 2, token="b", lease_until=10**12 + 1)
    assert store.complete_range(
        job_id, file_id, 2, token="a", etag='"e"', part_size=5, crc32=1, crc64nvme="AAAAAAAAAAA=", compress_seconds=1
    )
    assert store.complete_range(  # a retried write that landed: the same answer
        job_id, file_id, 2, token="a", etag='"e"', part_size=5, crc32=1, crc64nvme="AAAAAAAAAAA=", compress_seconds=1
    )
    assert store.count_range(job_id, file_id, 2, upload_id=upload_id).ranges_done == 1
    assert store.count_range(job_id, file_id, 2, upload_id=upload_id).ranges_done == 1  # once
    assert store.count_range(job_id, file_id, 2, upload_id="another") is None
    assert not store.complete_fanout(
        job_id, file_id, upload_id=upload_id, at=1.0, compressed_size=1, crc32=1, result_key="k", compress_seconds=1
    )  # not every range is counted
    assert store.claim_range(job_id, file_id, 3, token="c", at=100.0, lease_until=10**12).won
    service.cancel_job(job_id, owner="public")
    assert not store.renew_range(job_id, file_id, 3, token="c", lease_until=10**12 + 1)  # the file is cancelled
    assert store.claim_range(job_id, file_id, 9, token="d", at=1.0, lease_until=2.0).range is None


def test_wiring_sends_ranges_to_the_ranges_queue_whose_worker_hands_them_back_there(moto_aws, monkeypatch):
    """The app's wiring: compress sends the range messages to the ranges queue; compress_range's
    hand-back changes the visibility of the message it received there (a receipt handle is valid on
    its own queue only)."""
    monkeypatch.setenv("SQUEEZER_FANOUT_THRESHOLD", str(2 * MiB))
    monkeypatch.setenv("SQUEEZER_RANGE_SIZE", str(MiB))
    monkeypatch.setenv("SQUEEZER_STOP_MARGIN_MS", "0")
    wiring.reset()
    settings = wiring.get_settings()
    assert settings.ranges_queue_name == f"{settings.queue_name}-ranges"
    s3, sqs = boto3.client("s3", region_name="us-east-1"), boto3.client("sqs", region_name="us-east-1")
    receive_records(sqs, moto_aws.queue_url)  # S3's TestEvent
    store = DynamoJobStore(boto3.resource("dynamodb", region_name="us-east-1").Table(settings.table))
    service = JobService(store, S3Storage(s3, settings.bucket, part_size=settings.part_size), settings)
    job_id, file_id, key = start(service, s3, settings, "zstd")
    event = sqs_record(s3_notification(settings.bucket, key, len(DATA)))
    assert wiring.get_worker().handle_batch([event]) == {"batchItemFailures": []}
    assert range_records(sqs, moto_aws.queue_url, 0) == []
    records = sorted(range_records(sqs, moto_aws.ranges_queue_url, 4), key=lambda r: json.loads(r["body"])["range"])
    assert [json.loads(r["body"])["range"] for r in records] == [1, 2, 3, 4]
    # range 1 is held by another delivery for half a second more: its message comes back in 2 s,
    # on the ranges queue (its visibility timeout, 6x the worker's timeout, would keep it away minutes)
    at = time.time()
    assert store.claim_range(job_id, file_id, 1, token="someone", at=at, lease_until=at + 0.5).won
    ranges_worker = wiring.get_range_worker()
    response = ranges_worker.handle_batch([records[0]])
    assert response == {"batchItemFailures": [{"itemIdentifier": records[0]["messageId"]}]}
    back = receive_records(sqs, moto_aws.ranges_queue_url, until=lambda got: len(got) >= 1, deadline=8)
    assert [r["messageId"] for r in back] == [records[0]["messageId"]]
    for record in [*back, *records[1:]]:
        assert ranges_worker.handle_batch([record]) == {"batchItemFailures": []}
    assert store.get_file(job_id, file_id).state is FileState.COMPLETED
