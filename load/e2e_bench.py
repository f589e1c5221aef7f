"""Benchmark 6: end to end on the local stack, and the AWS cost model.

A job goes through everything a user's job goes through: ``squeezer upload``
(a subprocess: discovery, sha256, ``POST /jobs``, presigned PUTs to the
emulator), S3 event -> SQS -> the bridge -> ``app.compress`` in the bridge's
process pool -> results in the emulator. The clock starts when the upload
command is launched and stops at the last ``finished_at`` the API reports
(server timestamps, same machine clock), so the status polling interval does
not pad the figure. Per-file latency is the API's ``total_seconds``
(``created_at`` at ``POST /jobs`` -> ``finished_at``): for a big job it
includes the time a file waited for its turn to be uploaded.

Also here: the one stack benchmarks 5-7 share (:func:`bench_stack`) and the
seeded data sets they upload (:func:`small_files`, :func:`large_files`).
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from . import api_bench
from .corpus import ROOT, STATE, generate
from .measure import Figure, MiB, say

FIGURES = [
    "e2e.small_files_per_s",
    "e2e.worker_requests_per_small_file",
    "e2e.small_latency",
    "e2e.large_mib_per_s",
    "e2e.large_latency",
    "e2e.bridge",
    "api.service_seconds",
    "cost.per_1000_small",
    "cost.per_gb",
]
DATASETS = STATE / "datasets"
FINAL = {"completed", "failed", "cancelled"}


# -- the stack the benchmarks share ------------------------------------------------


@contextlib.contextmanager
def bench_stack() -> Iterator[Any]:
    """The local stack on free ports, state in ``.state/bench/stack`` (logs kept for reading).

    Bridge as users get it (the app's batch size 10, concurrency 5, process
    executor); benchmark 5 switches the bucket's notifications off while it
    runs, so uploads start no compression there.
    """
    from infra.local import LocalStack, free_ports

    api_port, moto_port = free_ports(2)
    state = STATE / "stack"
    shutil.rmtree(state, ignore_errors=True)
    began = time.perf_counter()
    with LocalStack(api_port=api_port, moto_port=moto_port, state_dir=state) as stack:
        say(f"local stack up in {time.perf_counter() - began:.1f}s: API {stack.api_url}, emulator {stack.endpoint_url}")
        # The benchmarks run as the stack's dev tenant: the client processes
        # and Locust they start find its token in their environment.
        saved = {name: os.environ.get(name) for name in stack.client_environment}
        os.environ.update(stack.client_environment)
        try:
            yield stack
        finally:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value


def auth_headers() -> dict[str, str]:
    """The dev tenant's Authorization header, for the benchmarks' own HTTP calls."""
    return {"Authorization": f"Bearer {os.environ['SQUEEZER_TOKEN']}"}


def stage_names() -> dict[str, str]:
    from infra.local.config import stage_environment

    env = stage_environment()
    return {"bucket": env["SQUEEZER_BUCKET"], "table": env["SQUEEZER_TABLE"]}


def bridge_settings(stack: Any) -> str:
    """What the bridge really ran with, from its own start-up log line."""
    log = stack.state_dir / "bridge.log"
    try:
        found = re.search(r"compress<-\S+ (batch=\d+ window=\S+ concurrency=\d+)", log.read_text(errors="replace"))
    except OSError:
        found = None
    return found.group(1) if found else "unknown (see bridge.log)"


def squeezer_cmd(api_url: str, *args: str) -> list[str]:
    return [sys.executable, "-m", "client", "--api-url", api_url, *args]


def run_upload(api_url: str, folder: Path, *extra: str) -> dict:
    """``squeezer upload FOLDER --json`` (no wait); its JSON summary."""
    out = subprocess.run(
        squeezer_cmd(api_url, "upload", str(folder), "--json", *extra),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    if out.returncode != 0:
        raise RuntimeError(f"squeezer upload exited {out.returncode}: {out.stderr[-2000:]}")
    summary = json.loads(out.stdout)
    bad = [f["name"] for f in summary["files"] if not f["uploaded"]]
    if bad:
        raise RuntimeError(f"{len(bad)} upload(s) failed, first {bad[0]}")
    return summary


def delete_prefix(s3: Any, bucket: str, prefix: str) -> None:
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
        if keys:
            s3.delete_objects(Bucket=bucket, Delete={"Objects": keys, "Quiet": True})


# -- data sets ---------------------------------------------------------------------


def _ready(folder: Path, count: int) -> bool:
    return folder.is_dir() and len(list(folder.iterdir())) == count


def small_files(count: int, low: int, high: int, tag: str) -> Path:
    """``count`` files of ``low``-``high`` bytes: slices of the seeded logs and JSON lines, alternating."""
    folder = DATASETS / f"small-{tag}-{count}x{low}-{high}"
    if _ready(folder, count):
        return folder
    say(f"writing {folder.relative_to(ROOT)}")
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    rng = random.Random(f"small:{tag}:{count}")
    pools = {"log": generate("logs", 2 * MiB), "json": generate("jsonl", 2 * MiB)}
    for i in range(count):
        kind = "log" if i % 2 == 0 else "json"
        size = rng.randint(low, high)
        start = rng.randrange(len(pools[kind]) - size)
        (folder / f"f{i:05d}.{kind}").write_bytes(pools[kind][start : start + size])
    return folder


def large_files(count: int, size: int, sources: list[Path] | None, tag: str) -> Path:
    """``count`` files of ``size`` bytes: hard links to corpus files (``sources``, in turn) or seeded random bytes."""
    folder = DATASETS / f"large-{tag}-{count}x{size // MiB}MiB"
    if _ready(folder, count) and all(p.stat().st_size == size for p in folder.iterdir()):
        return folder
    say(f"writing {folder.relative_to(ROOT)}")
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    for i in range(count):
        target = folder / f"big{i:02d}.{'log' if sources is None else sources[i % len(sources)].suffix.lstrip('.')}"
        if sources:
            source = sources[i % len(sources)]
            try:
                os.link(source, target)
            except OSError:
                shutil.copyfile(source, target)
        else:
            rng = random.Random(f"large:{tag}:{i}")
            with open(target, "wb") as out:
                left = size
                while left:
                    n = min(16 * MiB, left)
                    out.write(rng.randbytes(n))
                    left -= n
    return folder


# -- one end-to-end job --------------------------------------------------------------


@dataclass
class JobRun:
    files: int
    bytes_in: int
    seconds: float  # upload command launched -> last finished_at
    upload_seconds: float  # upload launched -> first file started by a worker
    latencies: list[float]  # created -> finished, per file
    worker_seconds: list[float]  # started -> finished, per file (one claim to its completion)
    polls: int
    failed: int
    status_bytes: int  # size of the last GET /jobs/{id} answer
    status_seconds: float  # how long that GET took (the stack idle)


def run_job(api_url: str, folder: Path, timeout: float) -> JobRun:
    """``squeezer upload FOLDER --wait --json`` as a user runs it, then one GET for the timings.

    The CLI's own polling (0.5 s growing to 5 s) is part of the load: a
    status of a 1,000-file job is a Query of 1,001 items plus a presigned
    URL per completed file. The end is the last ``finished_at``, so the
    poll interval does not pad the figure.
    """
    began = time.time()
    summary = run_upload(api_url, folder, "--wait")
    job_id = summary["job_id"]
    fetched = time.perf_counter()
    response = requests.get(f"{api_url}/jobs/{job_id}", headers=auth_headers(), timeout=timeout)
    status_seconds = time.perf_counter() - fetched
    response.raise_for_status()
    files = response.json()["files"]
    done = [f for f in files if f["state"] == "completed"]
    end = max(f["timings"]["finished_at"] for f in files)
    return JobRun(
        files=len(files),
        bytes_in=sum(f["size"] for f in files),
        seconds=end - began,
        upload_seconds=min(f["timings"]["started_at"] for f in done) - began,
        latencies=[f["timings"]["total_seconds"] for f in done],
        worker_seconds=[f["timings"]["finished_at"] - f["timings"]["started_at"] for f in done],
        polls=cli_polls(end - began),
        failed=len(files) - len(done),
        status_bytes=len(response.content),
        status_seconds=status_seconds,
    )


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = (len(ordered) - 1) * q / 100
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def _latency_text(values: list[float]) -> str:
    return (
        f"created->finished p50 {percentile(values, 50):.2f}s, p95 {percentile(values, 95):.2f}s, "
        f"p99 {percentile(values, 99):.2f}s, max {max(values):.2f}s"
    )


def item_sizes(stack: Any, table: str) -> dict[str, float]:
    """Mean DynamoDB item size (bytes, DynamoDB's rule: name + value lengths) of file records."""
    from boto3.dynamodb.types import TypeDeserializer

    deser = TypeDeserializer()
    sizes = []
    scan = stack.client("dynamodb").scan(TableName=table, Limit=400)
    for raw in scan.get("Items", []):
        item = {k: deser.deserialize(v) for k, v in raw.items()}
        if str(item.get("sk", "")).startswith("FILE"):
            sizes.append(sum(len(k) + len(str(v).encode()) for k, v in item.items()))
    return {"file_item": statistics.mean(sizes) if sizes else 0.0}


def run(stack: Any, small: Path, large: Path, timeout: float) -> tuple[list[Figure], dict]:
    """Figures of benchmark 6 and the measurements the cost model needs."""
    bridge = bridge_settings(stack)
    say(f"e2e: {small.name}")
    s = run_job(stack.api_url, small, timeout)
    say(f"e2e: {large.name}")
    g = run_job(stack.api_url, large, timeout)
    names = stage_names()
    sizes = item_sizes(stack, names["table"])
    figures = [
        Figure(
            "e2e.small_files_per_s",
            f"{s.files} small files, upload launched -> last completed",
            s.files / s.seconds,
            "files/s",
            20.0,  # issue 14's target
            detail=f"{s.seconds:.1f}s in all, first file started {s.upload_seconds:.1f}s after launch; "
            f"{s.failed} failed; {s.bytes_in / MiB:.1f} MiB; one GET /jobs/{{id}} of this job "
            f"{s.status_seconds:.2f}s ({s.status_bytes / 1024:.0f} KiB) on the idle stack",
            extra={"latencies": s.latencies},
        ),
        Figure(
            "e2e.small_latency",
            f"p99 per-file latency, {s.files} small files",
            percentile(s.latencies, 99),
            "s",
            detail=_latency_text(s.latencies) + f"; worker started->finished p50 "
            f"{percentile(s.worker_seconds, 50) * 1000:.0f} ms",
        ),
        Figure(
            "e2e.large_mib_per_s",
            f"{g.files} large files, upload launched -> last completed",
            g.bytes_in / MiB / g.seconds,
            "MiB/s",
            detail=f"{g.bytes_in / MiB:.0f} MiB in {g.seconds:.1f}s, first file started "
            f"{g.upload_seconds:.1f}s after launch; {g.failed} failed",
            extra={"latencies": g.latencies},
        ),
        Figure(
            "e2e.large_latency",
            f"p99 per-file latency, {g.files} large files",
            percentile(g.latencies, 99),
            "s",
            detail=_latency_text(g.latencies) + f"; worker started->finished p50 "
            f"{percentile(g.worker_seconds, 50):.1f}s",
        ),
        Figure(
            "e2e.bridge",
            f"bridge workers ({bridge}, process executor)",
            float(re.search(r"concurrency=(\d+)", bridge).group(1)) if "concurrency=" in bridge else 0.0,
            "workers",
        ),
    ]
    requests_figure = worker_requests(stack.endpoint_url, small)
    service = api_bench.service_seconds(stack.api_url, auth_headers())
    figures += [requests_figure, service]
    measured = {
        "small": s.__dict__,
        "large": g.__dict__,
        "bridge": bridge,
        **sizes,
        # one invocation runs a batch's small files side by side: billed per batch, not per file
        "small_worker_s_per_file": requests_figure.extra["invocation_seconds"] / requests_figure.extra["batch"],
        "api_seconds": service.extra,
        "large_worker_s_per_gib": statistics.median(g.worker_seconds) / (g.bytes_in / g.files / (1024 * MiB)),
        "small_mean_size": s.bytes_in / s.files,
    }
    return figures, measured


def worker_requests(endpoint: str, folder: Path, batch: int = 10, rounds: int = 3) -> Figure:
    """AWS requests the worker makes per small file, and what one invocation of a batch takes.

    In this process, against the stack's emulator but in the tests' stage
    (its own bucket, table and queues, which no bridge polls): ``rounds``
    times, a job of ``batch`` files of ``folder``, uploaded, then one timed
    ``Worker.handle_batch`` with the records S3 would have sent (one Lambda
    invocation's work). Every request its clients send is counted
    (``before-call`` hooks), by operation. The target (issue 14): at most 4
    per file. The median invocation time over ``batch`` is the worker's
    billed seconds per small file in the cost model (the files of a batch
    run side by side, so a file's own started -> finished time overstates
    it).
    """
    import collections
    import threading
    import time

    import boto3

    from chalicelib.aws import AwsClients
    from chalicelib.jobstore import DynamoJobStore
    from chalicelib.keys import FileRef, ObjectKeys
    from chalicelib.queue import SqsWorkQueue
    from chalicelib.service import JobService
    from chalicelib.storage import S3Storage
    from chalicelib.worker import Worker
    from infra.local.config import FAKE_AWS, REGION

    from . import emulator

    emulator.create(endpoint)
    settings = emulator.settings_for(endpoint)
    session = boto3.session.Session(  # the stack's fake credentials, never AWS
        aws_access_key_id=FAKE_AWS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=FAKE_AWS["AWS_SECRET_ACCESS_KEY"],
        region_name=REGION,
    )
    clients = AwsClients(settings, session=session)
    store = DynamoJobStore(clients.dynamodb.Table(settings.table), ttl_days=settings.record_ttl_days)
    storage = S3Storage(clients.s3, settings.bucket, part_size=settings.part_size)
    service = JobService(store, storage, settings)
    worker = Worker(store, storage, SqsWorkQueue(clients.sqs, settings.queue_name), settings)
    every = sorted(p for p in folder.iterdir() if p.is_file())
    keys = ObjectKeys(settings.uploads_prefix, settings.results_prefix)
    calls: collections.Counter[str] = collections.Counter()
    lock = threading.Lock()

    def count(event_name: str, **_: object) -> None:
        with lock:
            calls[event_name.split(".", 1)[1]] += 1  # before-call.<service>.<operation>

    def one_batch(paths: list[Path]) -> tuple[float, int]:
        job = service.create_job(
            {"files": [{"name": p.name, "size": p.stat().st_size} for p in paths], "algorithm": "zstd"},
            owner="bench",
        )
        records = []
        for (record, _), path in zip(job.files, paths, strict=True):
            key = keys.upload(FileRef("bench", record.job_id, record.file_id))
            clients.s3.put_object(Bucket=settings.bucket, Key=key, Body=path.read_bytes())
            body = {
                "Records": [{"eventName": "ObjectCreated:Put", "s3": {"object": {"key": key, "size": record.size}}}]
            }
            records.append(
                {
                    "messageId": key,
                    "receiptHandle": "",
                    "body": json.dumps(body),
                    "attributes": {"ApproximateReceiveCount": "1"},
                }
            )
        hooked = (clients.s3, clients.sqs, clients.dynamodb.meta.client)
        for client in hooked:
            client.meta.events.register("before-call", count)
        began = time.perf_counter()
        try:
            failures = worker.handle_batch(records)["batchItemFailures"]
        finally:
            seconds = time.perf_counter() - began
            for client in hooked:
                client.meta.events.unregister("before-call", count)
        return seconds, len(failures)

    runs = [one_batch(every[n * batch : (n + 1) * batch] or every[:batch]) for n in range(rounds)]
    files = batch * rounds
    per_file = sum(calls.values()) / files
    invocation = statistics.median(seconds for seconds, _ in runs)
    return Figure(
        "e2e.worker_requests_per_small_file",
        f"AWS requests the worker sends per small file ({rounds} batches of {batch}, botocore's count)",
        per_file,
        "requests",
        4.0,
        higher_is_better=False,
        detail=", ".join(f"{op} {n / rounds:g}" for op, n in sorted(calls.items()))
        + f" per batch of {batch}; {sum(failed for _, failed in runs)} failed; one invocation (handle_batch) "
        f"{invocation * 1000:.0f} ms, median of {rounds} = {invocation / batch * 1000:.1f} ms per file"
        + " (before issue 14: UpdateItem 3, GetObject 1, PutObject 1, DeleteObject 1 per file = 6)",
        extra={"invocation_seconds": invocation, "batch": batch},
    )


# -- the cost model ----------------------------------------------------------------------

# us-east-1 list prices, read 2026-11-25 from the brief (DynamoDB: the on-demand
# prices after AWS's November 2024 cut).
PRICES = {
    "lambda_gb_s": 0.0000166667,
    "lambda_request": 0.20 / 1e6,
    "s3_gb_month": 0.023,
    "s3_put": 0.005 / 1000,
    "s3_get": 0.0004 / 1000,
    "sqs_request": 0.40 / 1e6,
    "ddb_write": 0.625 / 1e6,
    "ddb_read": 0.125 / 1e6,
    "apigw_request": 3.50 / 1e6,  # REST API; assumed in infra/DEPLOY.md, not in the brief
}
WORKER_MB = 3538  # .chalice/config.json, lambda_functions.compress
API_MB = 512  # the app's default lambda_memory_size


def cli_polls(seconds: float) -> int:
    """GET /jobs/{id} calls ``squeezer upload --wait`` makes over a job of ``seconds`` (client/jobs.py Poll)."""
    polls, waited, interval = 1, 0.0, 0.5
    while waited < seconds:
        waited += interval
        interval = min(5.0, interval * 1.5)
        polls += 1
    return polls


def cost_model(
    measured: dict,
    part_size: int = 8 * MiB,
    result_days: int = 30,
    polls_per_job: int | None = None,
) -> tuple[list[Figure], dict]:
    """Dollars per 1,000 small files and per GiB of large files, line by line.

    Times are measured: the worker's seconds per small file (one batch's
    invocation / its files), per GiB of large files, and the API's seconds
    per request on the idle stack (``measured["api_seconds"]``,
    ``api_bench.service_seconds``).

    Counts (per file, from chalicelib/worker.py, jobstore.py, storage.py):
    DynamoDB writes: 1 batch put at POST /jobs + claim_file (1 WRU) + the
    completion in the batch's transaction (2 WRU: transactions cost double)
    = 4 WRU while the item is under 1 KB (large files: a plain completion,
    3); reads: the
    status polls only (the worker claims without reading first): a
    consistent Query of the whole job (1 RRU per 4 KB of items) per poll.
    S3: PUT upload, GET (size and ETag come with it: no HEAD), result PUT
    (small) or create + parts + complete + tagging (large), the upload's
    delete (free; one DeleteObjects per batch), GET download. SQS: the S3
    notification (SendMessage), and Lambda's ReceiveMessage and
    DeleteMessageBatch per batch of 10. Lambda: one worker invocation per
    batch of 10 messages, each billed for its duration at 3538 MB.
    """
    p = PRICES
    api = measured["api_seconds"]
    gb_worker, gb_api = WORKER_MB / 1024, API_MB / 1024
    item_kb = max(measured.get("file_item", 600.0), 1.0) / 1024
    wru_per_write = max(1, -(-item_kb // 1))  # ceil to 1 KB units

    def lines_for(
        files: int, mean_size: float, worker_s: float, ratio: float, polls: int, writes: int
    ) -> dict[str, float]:
        batches = -(-files // 10)
        results_gb = files * mean_size * ratio / 1e9
        parts = max(1, -(-int(mean_size * ratio) // part_size))
        result_puts = 1 if parts == 1 else parts + 3  # create, parts, complete, tagging
        status_rru = max(1, -(-(files * item_kb) // 4))  # one consistent Query of the job, 4 KB units
        jobs = max(1, -(-files // 1000))
        out = {
            "Lambda worker GB-s": files * worker_s * gb_worker * p["lambda_gb_s"],
            "Lambda worker requests": batches * p["lambda_request"],
            "Lambda API GB-s": (
                jobs * api["post_100"] * max(1, files / jobs / 100) + polls * api["get"] * max(1, files / jobs / 100)
            )
            * gb_api
            * p["lambda_gb_s"],
            "API Gateway + API Lambda requests": (jobs + polls) * (p["apigw_request"] + p["lambda_request"]),
            "S3 PUT-class (upload, result)": files * (1 + result_puts) * p["s3_put"],
            "S3 GET-class (worker GET, download GET)": files * 2 * p["s3_get"],
            "S3 storage, results for 30 days": results_gb * p["s3_gb_month"] * result_days / 30,
            "SQS (notification, receive+delete per batch)": (files + 2 * batches) * p["sqs_request"],
            f"DynamoDB writes ({writes} WRU per file)": files * writes * wru_per_write * p["ddb_write"],
            "DynamoDB reads (status polls)": polls * status_rru * p["ddb_read"],
        }
        return out

    small, large = measured["small"], measured["large"]
    polls = polls_per_job if polls_per_job is not None else cli_polls(small["seconds"])
    per_1000 = lines_for(1000, measured["small_mean_size"], measured["small_worker_s_per_file"], 0.35, polls, 4)
    gib_files = 1024 * MiB / (large["bytes_in"] / large["files"])
    per_gib = lines_for(
        max(1, round(gib_files)),
        large["bytes_in"] / large["files"],
        measured["large_worker_s_per_gib"] / gib_files,
        0.35,
        polls,
        3,
    )
    figures = [
        Figure(
            "cost.per_1000_small",
            f"USD per million small files (mean {measured['small_mean_size'] / 1024:.1f} KiB; "
            f"per 1,000: ${sum(per_1000.values()):.5f})",
            sum(per_1000.values()) * 1000,
            "USD/M files",
            detail="per 1,000 files: " + "; ".join(f"{k} ${v:.6f}" for k, v in per_1000.items()),
        ),
        Figure(
            "cost.per_gb",
            f"USD per TiB compressed ({large['bytes_in'] // large['files'] // MiB} MiB files; "
            f"per GiB: ${sum(per_gib.values()):.5f})",
            sum(per_gib.values()) * 1024,
            "USD/TiB",
            detail="per GiB: " + "; ".join(f"{k} ${v:.6f}" for k, v in per_gib.items()),
        ),
    ]
    return figures, {
        "per_1000_small": per_1000,
        "per_gib": per_gib,
        "prices": PRICES,
        "polls": polls,
        "worker_s_per_small_file": measured["small_worker_s_per_file"],
        "worker_s_per_gib": measured["large_worker_s_per_gib"],
        "api_seconds": api,
        "file_item_bytes": measured.get("file_item"),
    }
