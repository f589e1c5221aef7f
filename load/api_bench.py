"""Benchmark 7: the API under load, with Locust against ``chalice local``.

Locust runs as a subprocess (``--headless --csv``, bounded users and time;
gevent's monkey-patching stays out of this process) with load/locustfile.py:
each user mixes ``POST /jobs`` with 100 files (1 in 5) and ``GET /jobs/{id}``
of its own jobs (4 in 5). Figures come from Locust's ``*_stats.csv``.
Locust itself shares the 2 cores with the API and the emulator.
"""

from __future__ import annotations

import csv
import random
import shutil
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

from .corpus import ROOT, STATE
from .job_body import FILES_PER_JOB, job_body
from .measure import Figure, say

FIGURES = ["api.post_jobs", "api.get_job", "api.errors"]
LOCUSTFILE = Path(__file__).with_name("locustfile.py")
NAMES = {"POST /jobs (100 files)": "api.post_jobs", "GET /jobs/{id}": "api.get_job"}


def locust_cmd() -> list[str]:
    here = Path(sys.executable).parent / "locust"
    found = str(here) if here.exists() else shutil.which("locust")
    if not found:
        raise RuntimeError("locust is not installed: pip install locust==2.47.0")
    return [found]


def locust_version() -> str:
    try:
        out = subprocess.run([*locust_cmd(), "--version"], capture_output=True, text=True, timeout=60)
        return (out.stdout or out.stderr).strip().split(" from ")[0]
    except (OSError, RuntimeError, subprocess.TimeoutExpired) as exc:
        return f"missing ({exc})"


def service_seconds(api_url: str, headers: dict[str, str], rounds: int = 15) -> Figure:
    """What one request costs the API on an idle stack: one client, one request at a time, median.

    The cost model bills the API's Lambda for these (on AWS each request has
    its own function instance, so benchmark 7's latencies under load, mostly
    queueing in one ``chalice local``, are not what a request costs).
    Includes the local HTTP hop (about a millisecond).
    """
    import time

    import requests

    rng = random.Random(7)
    post, get = [], []
    with requests.Session() as http:
        http.headers.update(headers)
        for _ in range(rounds):
            began = time.perf_counter()
            response = http.post(f"{api_url}/jobs", json=job_body(rng), timeout=60)
            post.append(time.perf_counter() - began)
            if response.status_code != 201:
                raise RuntimeError(f"POST /jobs answered {response.status_code}: {response.text[:200]}")
            job_id = response.json()["job_id"]
            began = time.perf_counter()
            response = http.get(f"{api_url}/jobs/{job_id}", timeout=60)
            get.append(time.perf_counter() - began)
            if response.status_code != 200 or len(response.json()["files"]) != FILES_PER_JOB:
                raise RuntimeError(f"GET /jobs/{job_id} answered {response.status_code}")
            http.delete(f"{api_url}/jobs/{job_id}", timeout=60)
    seconds = {"post_100": statistics.median(post), "get": statistics.median(get)}
    return Figure(
        "api.service_seconds",
        f"one request at a time on the idle stack: POST /jobs ({FILES_PER_JOB} files) and GET /jobs/{{id}}, "
        f"median of {rounds} (the cost model's API seconds)",
        seconds["post_100"] * 1000,
        "ms",
        detail=f"POST {seconds['post_100'] * 1000:.0f} ms, GET {seconds['get'] * 1000:.0f} ms "
        f"(min {min(post) * 1000:.0f} / {min(get) * 1000:.0f} ms)",
        extra=seconds,
    )


def parse_stats(path: Path) -> dict[str, dict[str, float]]:
    """Rows of Locust's ``<prefix>_stats.csv`` by request name (``Aggregated`` included)."""
    rows = {}
    with open(path, newline="") as handle:
        for row in csv.DictReader(handle):

            def num(key: str, row: dict[str, str] = row) -> float:
                value = row.get(key, "")
                return float(value) if value not in ("", "N/A") else float("nan")

            rows[row["Name"]] = {
                "requests": num("Request Count"),
                "failures": num("Failure Count"),
                "rps": num("Requests/s"),
                "p50": num("50%"),
                "p99": num("99%"),
                "mean": num("Average Response Time"),
                "max": num("Max Response Time"),
            }
    return rows


def run(stack: Any, users: int, seconds: int) -> list[Figure]:
    out_dir = STATE / "locust"
    shutil.rmtree(out_dir, ignore_errors=True)
    out_dir.mkdir(parents=True)
    prefix = out_dir / "api"
    argv = [
        *locust_cmd(),
        "-f",
        str(LOCUSTFILE),
        "--headless",
        "--host",
        stack.api_url,
        "-u",
        str(users),
        "-r",
        str(users),
        "--run-time",
        f"{seconds}s",
        "--stop-timeout",
        "10",
        "--csv",
        str(prefix),
        "--only-summary",
        "--loglevel",
        "WARNING",
    ]
    say(f"api: locust, {users} users, {seconds}s")
    out = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=seconds + 120)
    # Locust exits 1 when any request failed: that is a figure here, not a crash.
    stats_file = Path(f"{prefix}_stats.csv")
    if not stats_file.exists():
        raise RuntimeError(f"locust exited {out.returncode} without stats: {out.stderr[-2000:]}")
    stats = parse_stats(stats_file)
    figures = []
    for name, figure in NAMES.items():
        row = stats.get(name, {"requests": 0, "failures": 0, "rps": 0.0, "p50": float("nan"), "p99": float("nan")})
        figures.append(
            Figure(
                figure,
                f"{name}: requests/s ({users} users, {seconds}s; p50 {row['p50']:.0f} ms, p99 {row['p99']:.0f} ms)",
                row["rps"],
                "req/s",
                detail=f"{row['requests']:.0f} requests, {row['failures']:.0f} failed, mean {row.get('mean', 0):.0f} ms, "
                f"max {row.get('max', 0):.0f} ms",
                extra=row,
            )
        )
    total = stats.get("Aggregated", {})
    failures_csv = Path(f"{prefix}_failures.csv")
    failure_lines = failures_csv.read_text().strip().splitlines()[1:6] if failures_csv.exists() else []
    figures.append(
        Figure(
            "api.errors",
            f"failed requests of {total.get('requests', 0):.0f} (locust exit {out.returncode})",
            total.get("failures", float("nan")),
            "errors",
            0.0,
            higher_is_better=False,
            detail="; ".join(failure_lines) or "none",
        )
    )
    return figures
