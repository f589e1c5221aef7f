"""Benchmark 9: fan-out, one object compressed by two bridge worker processes vs one, and a model of 1 TiB.

The same generated object (text logs, zstd 3, one compression thread per
invocation) is compressed on a fresh local stack twice: the bridge with two
worker processes, then with one. The stack runs with a fan-out threshold
and range size scaled to the object (``RANGES`` ranges) and one message per
invocation, as ranges are on AWS. The time is the file's own: from queued
(the upload seen) to finished, from its status.

From the measured per-range figures (range seconds of compression, of
everything around it) a model gives the wall time and cost of a 1 TiB
object with 1,000 concurrent Lambdas; its lines are INFO, the model is in
BENCHMARKS.md.
"""

from __future__ import annotations

import math
import os
import shutil
import time
from pathlib import Path
from typing import Any

import requests

from .corpus import ROOT
from .measure import Figure, MiB, say

FIGURES = ["fanout.two_vs_one", "fanout.range_mib_per_s", "fanout.model_1tib_minutes", "fanout.model_1tib_cost"]
RANGES = 16
STATE = ROOT / ".state" / "bench" / "fanout"
FINAL = {"completed", "failed", "partially_failed", "cancelled"}

# AWS prices (us-east-1, 2026): Lambda per GB-second and per request; S3 per 1,000 PUT-class and GET-class
# requests; SQS per million requests; DynamoDB on demand per million write and read request units.
LAMBDA_GB_SECOND = 0.0000166667
LAMBDA_REQUEST = 0.0000002
S3_PUT_PER_1000 = 0.005
S3_GET_PER_1000 = 0.0004
SQS_PER_MILLION = 0.40
DDB_WRITE_PER_MILLION = 0.625
WORKER_MEMORY_GB = 3538 / 1024  # the compress function's lambda_memory_size
S3_GET_MIB_S = 90.0  # an assumption: one Lambda's ranged GET from S3 in its region


def make_object(path: Path, size: int) -> None:
    line = b"2026-12-04T06:00:%02d.%06dZ host-%03d GET /api/v1/items/%d?page=%d 200 %d ms\n"
    with open(path, "wb") as out:
        written, i = 0, 0
        while written < size:
            block = b"".join(line % (i % 60, i % 999_983, i % 997, i, i % 101, i % 307) for i in range(i, i + 20_000))
            i += 20_000
            block = block[: size - written]
            out.write(block)
            written += len(block)


def compress_once(path: Path, workers: int) -> dict[str, Any]:
    from infra.local import BridgeOptions, LocalStack, free_ports

    size = path.stat().st_size
    range_size = math.ceil(size / RANGES / MiB) * MiB
    env = {
        "SQUEEZER_FANOUT_THRESHOLD": str(range_size),
        "SQUEEZER_RANGE_SIZE": str(range_size),
        "SQUEEZER_WORKER_BATCH_SIZE": "1",
        "SQUEEZER_COMPRESS_THREADS": "1",
    }
    api_port, moto_port = free_ports(2)
    state = STATE / f"stack-{workers}"
    shutil.rmtree(state, ignore_errors=True)
    with LocalStack(
        api_port=api_port,
        moto_port=moto_port,
        state_dir=state,
        env=env,
        bridge=BridgeOptions(concurrency=workers, range_concurrency=workers),
    ) as stack:
        headers = stack.auth_headers
        created = requests.post(
            f"{stack.api_url}/jobs",
            headers=headers,
            json={"algorithm": "zstd", "level": 3, "files": [{"name": path.name, "size": size}]},
            timeout=30,
        )
        created.raise_for_status()
        job = created.json()
        entry = job["files"][0]
        _upload(stack, job["job_id"], entry, path)
        ends = time.monotonic() + 3600
        while (status := requests.get(f"{stack.api_url}/jobs/{job['job_id']}", headers=headers, timeout=30).json())[
            "state"
        ] not in FINAL:
            if time.monotonic() > ends:
                raise RuntimeError(f"fan-out of {size / MiB:.0f} MiB not finished in an hour")
            time.sleep(0.5)
        done = status["files"][0]
        if done["state"] != "completed":
            raise RuntimeError(f"fan-out ended {done['state']}: {done['error']}")
        timings = done["timings"]
        return {
            "seconds": timings["finished_at"] - timings["queued_at"],
            "compress_seconds": timings["compress_seconds"],
            "ranges": RANGES,
            "range_size": range_size,
            "compressed": done["compressed_size"],
        }


def _upload(stack: Any, job_id: str, entry: dict[str, Any], path: Path) -> None:
    """The object's bytes, through the same routes as the client (one PUT or its parts)."""
    from chalicelib import multipart

    with requests.Session() as session:
        if entry["upload"]:
            with open(path, "rb") as body:
                session.put(entry["upload"]["url"], data=body, headers=entry["upload"]["headers"], timeout=600)
            return
        plan = multipart.plan(path.stat().st_size)
        values = []
        base = f"{stack.api_url}/jobs/{job_id}/files/{entry['file_id']}"
        with open(path, "rb") as source:
            for number in range(1, plan.count + 1):
                data = source.read(plan.part_length(number))
                crc = multipart.crc64nvme(data)
                values.append((crc, len(data)))
                signed = session.post(
                    f"{base}/parts",
                    headers=stack.auth_headers,
                    json={"parts": [{"part_number": number, "crc64nvme": multipart.encode(crc)}]},
                    timeout=30,
                ).json()["parts"][0]
                session.put(signed["url"], data=data, headers=signed["headers"], timeout=600).raise_for_status()
        whole = multipart.encode(multipart.combine_parts(values))
        session.post(f"{base}/complete", headers=stack.auth_headers, json={"crc64nvme": whole}, timeout=300)


def model(range_seconds: float, overhead_seconds: float, range_size: int) -> tuple[float, float, str]:
    """Wall minutes and dollars for 1 TiB at 256 MiB ranges and 1,000 concurrent Lambdas."""
    size = 1024**4
    ranges = math.ceil(size / (256 * MiB))
    scale = (256 * MiB) / range_size  # the measured compression, scaled to a 256 MiB range
    # + the measured per-range requests (claim, records, part upload of a small output), + reading 256 MiB
    # from S3 inside the region at an assumed S3_GET_MIB_S per invocation
    per_range = range_seconds * scale + overhead_seconds + 256 / S3_GET_MIB_S
    waves = math.ceil(ranges / 1000)
    dispatch = ranges / 10 * 0.02  # SendMessageBatch of 10, ~20 ms each, from the dispatching invocation
    minutes = (dispatch + waves * per_range + 5) / 60  # + completion
    lambda_cost = ranges * per_range * WORKER_MEMORY_GB * LAMBDA_GB_SECOND + ranges * LAMBDA_REQUEST
    s3_cost = ranges * (S3_PUT_PER_1000 + S3_GET_PER_1000) / 1000  # one ranged GET, one UploadPart
    sqs_cost = ranges * 3 / 1e6 * SQS_PER_MILLION  # send, receive, delete
    ddb_cost = ranges * 5 / 1e6 * DDB_WRITE_PER_MILLION  # claim, renewals, done, count
    dollars = lambda_cost + s3_cost + sqs_cost + ddb_cost
    detail = (
        f"{ranges} ranges of 256 MiB, {waves} waves of 1,000, {per_range:.1f} s per range (compression measured "
        f"and scaled, requests measured, S3 read at an assumed {S3_GET_MIB_S:.0f} MiB/s): "
        f"Lambda ${lambda_cost:.2f}, S3 ${s3_cost:.3f}, SQS ${sqs_cost:.4f}, DynamoDB ${ddb_cost:.4f}"
    )
    return minutes, dollars, detail


def run(size: int) -> list[Figure]:
    shutil.rmtree(STATE, ignore_errors=True)
    STATE.mkdir(parents=True)
    path = STATE / "object.log"
    say(f"fanout: writing {size / MiB:.0f} MiB of logs")
    make_object(path, size)
    results = {}
    for workers in (2, 1):
        say(f"fanout: {size / MiB:.0f} MiB in {RANGES} ranges, bridge with {workers} worker process(es)")
        results[workers] = compress_once(path, workers)
    two, one = results[2], results[1]
    per_range = one["compress_seconds"] / one["ranges"]
    overhead = max(0.0, one["seconds"] / one["ranges"] - per_range)
    minutes, dollars, detail = model(per_range, overhead, one["range_size"])
    os.unlink(path)
    return [
        Figure(
            "fanout.two_vs_one",
            f"{size / MiB:.0f} MiB zstd-3 in {RANGES} ranges: one worker process's time / two's",
            one["seconds"] / two["seconds"],
            "x",
            1.6,
            detail=f"two processes {two['seconds']:.1f}s, one {one['seconds']:.1f}s (queued to finished); "
            f"result {one['compressed'] / MiB:.1f} MiB (ranges padded to S3's 5 MiB part minimum)",
        ),
        Figure(
            "fanout.range_mib_per_s",
            f"one range ({one['range_size'] / MiB:.0f} MiB) compressed, one thread (MiB/s)",
            one["range_size"] / MiB / per_range,
            "MiB/s",
            detail=f"{per_range:.2f}s compressing per range, {overhead:.2f}s around it (GET, part upload, records)",
        ),
        Figure("fanout.model_1tib_minutes", "model: 1 TiB, 1,000 concurrent Lambdas (minutes)", minutes, "min"),
        Figure("fanout.model_1tib_cost", "model: 1 TiB, cost per object (USD)", dollars, "USD", detail=detail),
    ]
