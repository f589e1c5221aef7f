"""Benchmark 5: ``squeezer upload`` vs ``aws s3 cp --recursive``, same folder, same emulator.

Both are run as the commands a user types (subprocesses, start-up included),
alternating round by round, against the moto server of the local stack.
``squeezer upload`` runs without ``--wait`` and with its defaults (sha256 of
every file first, ``--parallel 8``, one presigned PUT per file after one
``POST /jobs``). ``aws s3 cp`` runs with its defaults (8 MiB multipart
threshold and chunks, 10 concurrent requests) and fake credentials.

Squeezer's resume journals go to a state folder of the benchmark's own
(leftover journals of other runs in HOME would be read at each start).
The bucket's event notifications are switched off during this benchmark
(and restored after): otherwise Squeezer's uploads would start compression
in the bridge, on the same 2 cores, in the middle of the next round. What is
compared here is moving bytes, not the service.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from .corpus import ROOT
from .e2e_bench import delete_prefix, run_upload, stage_names
from .measure import Figure, MiB, alternate, median_ratio, say

FIGURES = [
    "upload.small",
    "upload.large",
    "upload.small_rates",
    "upload.large_rates",
    "upload.small_split",
    "upload.resume_resent",
]
PARALLEL = 8  # squeezer upload's default --parallel
AWS_VERSION_ARGS = ["--version"]


def aws_cli() -> str:
    """The ``aws`` script of this interpreter's environment (awscli from PyPI)."""
    import sys

    here = Path(sys.executable).parent / "aws"
    found = str(here) if here.exists() else shutil.which("aws")
    if not found:
        raise RuntimeError("awscli is not installed: pip install awscli==1.46.3")
    return found


def aws_version() -> str:
    try:
        out = subprocess.run([aws_cli(), "--version"], capture_output=True, text=True, timeout=30)
        return (out.stdout or out.stderr).strip()
    except (OSError, RuntimeError, subprocess.TimeoutExpired) as exc:
        return f"missing ({exc})"


def _aws_env(stack: Any) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update({k: v for k, v in stack.environment.items() if k.startswith("AWS_") and k != "AWS_ENDPOINT_URL"})
    return env


class _Notifications:
    """Switch the bucket's event notifications off inside the block."""

    def __init__(self, s3: Any, bucket: str) -> None:
        self._s3, self._bucket, self._saved = s3, bucket, None

    def __enter__(self) -> None:
        saved = self._s3.get_bucket_notification_configuration(Bucket=self._bucket)
        saved.pop("ResponseMetadata", None)
        self._saved = saved
        self._s3.put_bucket_notification_configuration(Bucket=self._bucket, NotificationConfiguration={})

    def __exit__(self, *exc: object) -> None:
        self._s3.put_bucket_notification_configuration(Bucket=self._bucket, NotificationConfiguration=self._saved)


def compare(stack: Any, folder: Path, rounds: int) -> dict[str, list[float]]:
    s3 = stack.client("s3")
    bucket = stage_names()["bucket"]
    aws, env = aws_cli(), _aws_env(stack)
    jobs: list[str] = []
    counter = iter(range(1_000_000))

    def squeezer() -> None:
        jobs.append(run_upload(stack.api_url, folder, "--new")["job_id"])

    def aws_cp() -> None:
        out = subprocess.run(
            [
                aws,
                "s3",
                "cp",
                str(folder),
                f"s3://{bucket}/bench-aws/{next(counter)}/",
                "--recursive",
                "--only-show-errors",
                "--endpoint-url",
                stack.endpoint_url,
            ],
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=900,
        )
        if out.returncode != 0:
            raise RuntimeError(f"aws s3 cp exited {out.returncode}: {out.stderr[-2000:]}")

    def clean() -> None:  # not timed: keeps the emulator's memory flat between rounds
        delete_prefix(s3, bucket, "bench-aws/")
        if jobs:  # nothing else uploads while notifications are off: every tenant's uploads go
            delete_prefix(s3, bucket, "uploads/")
            jobs.clear()

    # squeezer's resume journals go to a folder of this run's own: its start-up
    # reads every journal in the state folder, and leftovers of other runs in
    # the user's HOME (several MB here) would be timed (aws s3 cp keeps no state).
    state = Path(tempfile.mkdtemp(prefix="upload-state-", dir=stack.state_dir))
    saved = os.environ.get("SQUEEZER_STATE_DIR")
    os.environ["SQUEEZER_STATE_DIR"] = str(state)
    try:
        return alternate({"squeezer": (clean, squeezer), "aws": (clean, aws_cp)}, rounds)
    finally:
        if saved is None:
            os.environ.pop("SQUEEZER_STATE_DIR", None)
        else:
            os.environ["SQUEEZER_STATE_DIR"] = saved
        shutil.rmtree(state, ignore_errors=True)


def split(stack: Any, folder: Path, squeezer_seconds: float) -> Figure:
    """Where ``squeezer upload`` of many small files spends its time: start-up, POST /jobs, the PUTs."""
    import sys

    import requests

    began = time.perf_counter()
    subprocess.run([sys.executable, "-m", "client", "--version"], cwd=ROOT, capture_output=True, check=True)
    startup = time.perf_counter() - began
    specs = [
        {"name": f"{folder.name}/{p.name}", "size": p.stat().st_size, "content_type": "text/plain"}
        for p in sorted(folder.iterdir())
    ]
    began = time.perf_counter()
    response = requests.post(
        f"{stack.api_url}/jobs", json={"files": specs, "algorithm": "zstd"}, headers=stack.auth_headers, timeout=300
    )
    post = time.perf_counter() - began
    response.raise_for_status()
    body = len(response.content)
    rest = max(0.0, squeezer_seconds - startup - post)
    return Figure(
        "upload.small_split",
        f"squeezer upload of {len(specs)} small files: POST /jobs alone (s)",
        post,
        "s",
        detail=f"CLI start-up {startup:.2f}s, POST /jobs {post:.2f}s ({body / 1024:.0f} KiB answer), "
        f"sha256 + {len(specs)} PUTs at --parallel 8 ~{rest:.2f}s (median round {squeezer_seconds:.2f}s)",
    )


def resume(stack: Any, folder: Path) -> Figure:
    """An upload of ``folder`` (one multipart file) killed (SIGKILL) at about half, then resumed.

    Which parts storage held at the kill comes from the API (GET .../parts);
    how many parts the resumed run sent, from the emulator's access log (one
    PUT line per part of that key; the log drops query strings, so part
    numbers are not in it). Bytes sent again = parts sent beyond the missing
    ones (parts storage already held), plus the parts that were in flight at
    the kill (missing below the highest held part: started, not finished).
    The target is the issue's: at most one part per upload thread.
    """
    import json
    import signal
    import sys
    import tempfile

    from chalicelib import multipart

    (big,) = sorted(folder.iterdir())
    plan = multipart.plan(big.stat().st_size)
    log = stack.state_dir / "emulator.log"
    state = Path(tempfile.mkdtemp(prefix="resume-", dir=stack.state_dir))
    env = {**os.environ, "SQUEEZER_STATE_DIR": str(state)}
    command = [sys.executable, "-m", "client", "--api-url", stack.api_url, "upload", str(folder), "--json"]
    first = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        job_id, file_id = _journal_ids(state, first)
        held = _wait_for_parts(stack, job_id, file_id, plan.count // 2, first)
        first.send_signal(signal.SIGKILL)
        first.wait(30)
    finally:
        if first.poll() is None:
            first.kill()
    time.sleep(0.5)  # requests the server was still reading end
    held = {p["part_number"] for p in _parts(stack, job_id, file_id)}
    offset = log.stat().st_size
    began = time.perf_counter()
    again = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    seconds = time.perf_counter() - began
    if again.returncode != 0:
        raise RuntimeError(f"the resumed upload exited {again.returncode}: {again.stderr[-2000:]}")
    if json.loads(again.stdout)["job_id"] != job_id:
        raise RuntimeError("the second run did not resume the interrupted job")
    with open(log, "rb") as f:
        f.seek(offset)
        sent = _part_puts(f.read().decode(errors="replace"), upload_key_fragment=f"/{job_id}/{file_id}?")
    missing = plan.count - len(held)
    resent_held = max(0, sent - missing)
    in_flight = [n for n in range(1, max(held, default=0)) if n not in held]
    resent_bytes = (resent_held + len(in_flight)) * plan.part_size
    shutil.rmtree(state, ignore_errors=True)
    return Figure(
        "upload.resume_resent",
        f"bytes sent again after a kill -9 at about half ({plan.count} parts of {plan.part_size / MiB:.0f} MiB, "
        f"--parallel {PARALLEL}; MiB)",
        resent_bytes / MiB,
        "MiB",
        PARALLEL * plan.part_size / MiB,
        higher_is_better=False,
        detail=f"held at the kill {len(held)} parts; the resume sent {sent} (of {missing} missing), "
        f"{resent_held} held already, {len(in_flight)} in flight at the kill; resume took {seconds:.1f}s",
    )


def _journal_ids(state: Path, process: subprocess.Popen[bytes], timeout: float = 120) -> tuple[str, str]:
    import json

    ends = time.monotonic() + timeout
    while time.monotonic() < ends:
        for path in (state / "uploads").glob("*.json"):
            try:
                journal = json.loads(path.read_text())
            except (OSError, ValueError):
                continue
            files = journal.get("files") or []
            if journal.get("job_id") and files and files[0].get("file_id"):
                return str(journal["job_id"]), str(files[0]["file_id"])
        if process.poll() is not None:
            raise RuntimeError(f"squeezer upload exited {process.returncode} before its journal was written")
        time.sleep(0.05)
    raise RuntimeError("no upload journal appeared")


def _parts(stack: Any, job_id: str, file_id: str) -> list[dict[str, Any]]:
    import requests

    answer = requests.get(
        f"{stack.api_url}/jobs/{job_id}/files/{file_id}/parts", headers=stack.auth_headers, timeout=30
    )
    answer.raise_for_status()
    parts: list[dict[str, Any]] = answer.json()["parts"]
    return parts


def _wait_for_parts(
    stack: Any, job_id: str, file_id: str, count: int, process: subprocess.Popen[bytes], timeout: float = 300
) -> set[int]:
    ends = time.monotonic() + timeout
    while time.monotonic() < ends:
        held = {p["part_number"] for p in _parts(stack, job_id, file_id)}
        if len(held) >= count:
            return held
        if process.poll() is not None:
            raise RuntimeError("the upload finished before it could be interrupted")
        time.sleep(0.05)
    raise RuntimeError(f"fewer than {count} parts arrived in {timeout}s")


def _part_puts(log_text: str, *, upload_key_fragment: str) -> int:
    """How many PUTs of one key (its parts) a moto server access log shows answered 200."""
    return sum(
        1 for line in log_text.splitlines() if '"PUT ' in line and upload_key_fragment in line and '" 200 ' in line
    )


def run(stack: Any, small: Path, large: Path, rounds: int, resume_folder: Path | None = None) -> list[Figure]:
    bucket = stage_names()["bucket"]
    figures = []
    with _Notifications(stack.client("s3"), bucket):
        for label, folder, target in (("small", small, 1.5), ("large", large, 1.0)):
            files = sorted(folder.iterdir())
            total = sum(f.stat().st_size for f in files)
            say(f"upload: {label}, {len(files)} files, {total / MiB:.0f} MiB, {rounds} rounds")
            times = compare(stack, folder, rounds)
            ratio = median_ratio(times["aws"], times["squeezer"])
            sq, aw = sorted(times["squeezer"]), sorted(times["aws"])
            med_sq, med_aw = sq[len(sq) // 2], aw[len(aw) // 2]
            size_text = (
                f"{len(files)} x {total / len(files) / 1024:.0f} KiB"
                if total / len(files) < MiB
                else f"{len(files)} x {total / len(files) / MiB:.0f} MiB"
            )
            figures.append(
                Figure(
                    f"upload.{label}",
                    f"aws s3 cp time / squeezer upload time, {size_text}",
                    ratio,
                    "x",
                    target,
                    detail=f"per round squeezer {', '.join(f'{t:.2f}' for t in times['squeezer'])} s; "
                    f"aws {', '.join(f'{t:.2f}' for t in times['aws'])} s",
                    extra={"times": times, "files": len(files), "bytes": total},
                )
            )
            if label == "small":
                rates = f"squeezer {len(files) / med_sq:.0f} files/s, aws {len(files) / med_aw:.0f} files/s"
                value = len(files) / med_sq
                unit = "files/s"
            else:
                rates = f"squeezer {total / MiB / med_sq:.0f} MiB/s, aws {total / MiB / med_aw:.0f} MiB/s"
                value = total / MiB / med_sq
                unit = "MiB/s"
            figures.append(Figure(f"upload.{label}_rates", f"squeezer upload, median round ({rates})", value, unit))
            if label == "small":
                figures.append(split(stack, folder, med_sq))
        if resume_folder is not None:
            say(f"upload: resume after kill -9, {sum(f.stat().st_size for f in resume_folder.iterdir()) / MiB:.0f} MiB")
            figures.append(resume(stack, resume_folder))
    return figures
