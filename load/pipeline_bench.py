"""Item 2: the whole worker path against the codec alone, on the same object.

Issue 14's target: the worker's wall time at most 1.3x the codec alone, on a
200 MiB object (full mode), zstd 3, the thread count the function picks for
it (``Settings.zstd_threads``: the vCPUs, 2 on the 3538 MB function).
Variants, alternated round by round on one object (same input, same level,
same threads):

* ``codec``   compress_stream(file -> null sink)
* ``+crc32``  the source wrapped in HashingReader
* ``+verify`` the sink wrapped in VerifyingSink, decoding on its own thread as in the worker
* ``+GET``    the source is the S3 GET body from the emulator (S3Storage)
* ``worker``  Worker.handle_batch on an SQS record for a fresh upload: DynamoDB
              reads and conditional writes, GET, compress, verify,
              multipart/put of the result, delete of the upload.

In the ``worker`` variant every adapter call is also timed through a proxy,
which gives the split of where its time went (calls made on the read-ahead
and part-upload threads are shown apart: they overlap the main thread's). Each variant's CPU is this
process's (all threads) and, apart, the moto server's: on AWS the S3 and
DynamoDB side costs the function nothing, here it shares the same cores.
"""

from __future__ import annotations

import collections
import json
import os
import statistics
import threading
import time
import uuid
from pathlib import Path

from chalicelib.aws import AwsClients
from chalicelib.codecs import HashingReader, VerifyingSink, compress_stream
from chalicelib.domain import Algorithm, FileState
from chalicelib.jobstore import DynamoJobStore
from chalicelib.keys import FileRef, ObjectKeys
from chalicelib.queue import SqsWorkQueue
from chalicelib.service import JobService
from chalicelib.storage import S3Storage
from chalicelib.worker import Worker
from infra.local import running_emulator

from . import emulator
from .measure import Figure, MiB, NullSink, alternate, median_ratio, say

ALGORITHM, LEVEL = Algorithm.ZSTD, 3
TARGET = 1.30  # issue 14: worker wall time at most 1.3x the codec alone
BACKGROUND = " [background thread, overlaps the rest]"
FIGURES = [
    "pipeline.worker_vs_codec",
    "pipeline.worker_cpu_vs_codec",
    "pipeline.emulator_cpu",
    "pipeline.crc32_vs_codec",
    "pipeline.verify_vs_codec",
    "pipeline.get_vs_codec",
    "pipeline.split",
]


class Timings:
    def __init__(self) -> None:
        self.current: collections.Counter = collections.Counter()

    def wrap(self, obj, labels: dict[str, str], default: str):
        return _Proxy(obj, self, labels, default)


class _Proxy:
    """Times every method call of ``obj`` under a label; wraps what some return."""

    def __init__(self, obj, timings: Timings, labels: dict[str, str], default: str) -> None:
        self._obj, self._timings, self._labels, self._default = obj, timings, labels, default

    def __getattr__(self, name):
        attr = getattr(self._obj, name)
        if not callable(attr):
            return attr
        label = self._labels.get(name, self._default)
        timings = self._timings

        def call(*args, **kwargs):
            began = time.perf_counter()
            try:
                result = attr(*args, **kwargs)
            finally:
                # calls on the read-ahead and part-upload threads overlap the main thread's: kept apart
                where = "" if threading.current_thread() is threading.main_thread() else BACKGROUND
                timings.current[label + where] += time.perf_counter() - began
            if name == "open_read":
                return _Proxy(result, timings, {}, "S3 GET (body reads)")
            if name == "open_writer":
                return _Proxy(result, timings, {"abort": "S3 upload"}, "S3 result upload (parts, put, tagging)")
            return result

        return call


def run(path: Path, rounds: int) -> list[Figure]:
    emulator.use_fake_credentials()
    say("[2] starting the moto server")
    with running_emulator() as endpoint:
        return _run(endpoint, path, rounds)


def _children_cpu() -> float:
    """CPU seconds of this process's children (the moto server), live ones included."""
    import psutil

    total = 0.0
    for child in psutil.Process(os.getpid()).children(recursive=True):
        try:
            times = child.cpu_times()
        except psutil.Error:
            continue
        total += times.user + times.system
    return total


class _EmulatorCpu:
    """Wraps a variant: the moto server's CPU seconds during each run, per variant."""

    def __init__(self) -> None:
        self.seconds: dict[str, list[float]] = {}

    def wrap(self, name: str, variant):
        prepare, run_once = variant if isinstance(variant, tuple) else (None, variant)

        def measured():
            began = _children_cpu()
            try:
                run_once()
            finally:
                self.seconds.setdefault(name, []).append(_children_cpu() - began)

        return (prepare, measured) if prepare is not None else measured


def _run(endpoint: str, path: Path, rounds: int) -> list[Figure]:
    emulator.create(endpoint)
    settings = emulator.settings_for(endpoint)
    clients = AwsClients(settings)
    s3 = clients.s3
    store = DynamoJobStore(clients.dynamodb.Table(settings.table), ttl_days=settings.record_ttl_days)
    storage = S3Storage(s3, settings.bucket, part_size=settings.part_size)
    service = JobService(store, storage, settings)
    timings = Timings()
    worker = Worker(
        timings.wrap(store, {}, "DynamoDB"),
        timings.wrap(
            storage,
            {
                "head": "S3 HEAD",
                "delete": "S3 delete upload",
                "open_read": "S3 GET (request)",
                "open_writer": "S3 result upload (parts, put, tagging)",
            },
            "S3 other",
        ),
        SqsWorkQueue(clients.sqs, settings.queue_name),
        settings,
    )
    keys = ObjectKeys(settings.uploads_prefix, settings.results_prefix)
    size = path.stat().st_size
    threads = settings.zstd_threads(size)  # what the worker picks for this object: like with like
    master = f"bench/master-{uuid.uuid4().hex}"
    say(f"[2] uploading {size / MiB:.0f} MiB to the emulator")
    with open(path, "rb") as source:
        emulator.upload_stream(s3, settings.bucket, master, source, size)

    def codec(wrap_source=False, verify=False, from_s3=False):
        def run_once():
            source = storage.open_read(master) if from_s3 else open(path, "rb")  # noqa: SIM115 - closed below
            verifier = VerifyingSink(NullSink(), ALGORITHM, background=True) if verify else None
            try:
                reader = HashingReader(source) if wrap_source else source
                sink = verifier or NullSink()
                compress_stream(reader, sink, ALGORITHM, LEVEL, threads=threads, job_size=settings.zstd_job_size)
                if verifier is not None:
                    verifier.finish()
            finally:
                if verifier is not None:
                    verifier.close()
                source.close()

        return run_once

    pending: dict = {}

    def prepare_worker():
        job = service.create_job(
            {"files": [{"name": path.name, "size": size}], "algorithm": ALGORITHM.value, "level": LEVEL}, owner="bench"
        )
        record = job.files[0][0]
        key = keys.upload(FileRef(job.job.owner, record.job_id, record.file_id))
        s3.copy_object(Bucket=settings.bucket, Key=key, CopySource={"Bucket": settings.bucket, "Key": master})
        pending.update(record=record, key=key)
        timings.current = collections.Counter()

    splits: list[dict] = []

    def run_worker():
        body = {
            "Records": [
                {
                    "eventName": "ObjectCreated:Put",
                    "s3": {"bucket": {"name": settings.bucket}, "object": {"key": pending["key"], "size": size}},
                }
            ]
        }
        record = {
            "messageId": uuid.uuid4().hex,
            "receiptHandle": "bench",
            "body": json.dumps(body),
            "attributes": {"ApproximateReceiveCount": "1"},
        }
        began = time.perf_counter()
        response = worker.handle_batch([record])
        total = time.perf_counter() - began
        if response["batchItemFailures"]:
            raise RuntimeError(f"the worker failed: {response}")
        done = store.get_file(pending["record"].job_id, pending["record"].file_id)
        if done.state is not FileState.COMPLETED:
            raise RuntimeError(f"file ended {done.state}: {done.error}")
        split = dict(timings.current)
        split["codec + crc32 + verify (rest)"] = total - sum(v for k, v in split.items() if not k.endswith(BACKGROUND))
        split["_total"] = total
        splits.append(split)

    say(f"[2] {rounds} rounds of 5 variants on {size / MiB:.0f} MiB, zstd-{LEVEL}, threads={threads}")
    cpu: dict[str, list[float]] = {}
    moto = _EmulatorCpu()
    variants = {
        "codec": codec(),
        "+crc32": codec(wrap_source=True),
        "+verify": codec(wrap_source=True, verify=True),
        "+GET": codec(wrap_source=True, verify=True, from_s3=True),
        "worker": (prepare_worker, run_worker),
    }
    times = alternate({name: moto.wrap(name, v) for name, v in variants.items()}, rounds, cpu=cpu)
    med = lambda xs: statistics.median(xs)  # noqa: E731
    base = med(times["codec"])
    speeds = ", ".join(f"{k} {med(v):.3f}s" for k, v in times.items())
    cpus = ", ".join(f"{k} {med(v):.3f}s" for k, v in cpu.items())
    moto_cpus = ", ".join(f"{k} {med(v):.3f}s" for k, v in moto.seconds.items())
    labels = sorted({k for s in splits for k in s if k != "_total"})
    split_text = "; ".join(
        f"{label} {med([s.get(label, 0.0) for s in splits]):.3f}s "
        f"({100 * med([s.get(label, 0.0) / s['_total'] for s in splits]):.0f}%)"
        for label in labels
    )
    return [
        Figure(
            "pipeline.worker_vs_codec",
            f"worker handle_batch time / codec alone ({size / MiB:.0f} MiB, zstd-{LEVEL}, threads={threads})",
            median_ratio(times["worker"], times["codec"]),
            target=TARGET,
            higher_is_better=False,
            detail=f"median walls: {speeds}",
            extra={"times": times, "cpu": cpu, "emulator_cpu": moto.seconds},
        ),
        Figure(
            "pipeline.worker_cpu_vs_codec",
            "worker process CPU seconds / codec CPU seconds, same rounds (emulator excluded; "
            "the extra is the verification decode, crc32, boto3/HTTP)",
            median_ratio(cpu["worker"], cpu["codec"]),
            detail=f"median CPU: {cpus}",
        ),
        Figure(
            "pipeline.emulator_cpu",
            "moto server CPU seconds per worker run (same 2 cores here; none of the function's on AWS)",
            med(moto.seconds["worker"]),
            unit="s",
            detail=f"median per variant: {moto_cpus}",
        ),
        Figure(
            "pipeline.crc32_vs_codec", "codec + HashingReader / codec", median_ratio(times["+crc32"], times["codec"])
        ),
        Figure(
            "pipeline.verify_vs_codec",
            "codec + HashingReader + VerifyingSink / codec",
            median_ratio(times["+verify"], times["codec"]),
        ),
        Figure(
            "pipeline.get_vs_codec",
            "same, source = S3 GET from the emulator / codec",
            median_ratio(times["+GET"], times["codec"]),
        ),
        Figure(
            "pipeline.split",
            f"where the worker's time went (median of {rounds}; codec alone {base:.3f}s)",
            med([s["_total"] for s in splits]),
            unit="s",
            detail=split_text,
            extra={"splits": splits},
        ),
    ]
