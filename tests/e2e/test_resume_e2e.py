"""An upload killed with SIGKILL mid-multipart on the real local stack, resumed by running the same command again."""

from __future__ import annotations

import hashlib
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import requests

from chalicelib.codecs import decompress_stream
from chalicelib.domain import Algorithm

ROOT = Path(__file__).resolve().parents[2]
MiB = 1024**2


def _journal(state: Path, process: subprocess.Popen, timeout: float = 60) -> dict:
    ends = time.monotonic() + timeout
    while time.monotonic() < ends:
        for path in (state / "uploads").glob("*.json"):
            try:
                journal = json.loads(path.read_text())
            except ValueError:
                continue
            if journal.get("job_id") and journal.get("files"):
                return journal
        assert process.poll() is None, "the upload ended before its journal was written"
        time.sleep(0.02)
    raise AssertionError("no journal appeared")


def test_kill_9_mid_upload_then_the_same_command_resumes(local_stack, tmp_path):
    source = tmp_path / "src"
    source.mkdir()
    big = source / "dump.log"
    with open(big, "wb") as out:
        for i in range(200):  # 200 MiB of text: 25 parts of 8 MiB
            out.write((b"%06d row,of,a,database,dump\n" % i) * (MiB // 28) + b"\n" * (MiB % 28))
    env = {
        **os.environ,
        **local_stack.client_environment,
        "SQUEEZER_STATE_DIR": str(tmp_path / "state"),
    }
    command = [sys.executable, "-m", "client", "upload", str(source), "--parallel", "2"]
    first = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        journal = _journal(tmp_path / "state", first)
        job_id, file_id = journal["job_id"], journal["files"][0]["file_id"]
        parts_url = f"{local_stack.api_url}/jobs/{job_id}/files/{file_id}/parts"
        ends = time.monotonic() + 60
        while len(requests.get(parts_url, headers=local_stack.auth_headers, timeout=10).json()["parts"]) < 4:
            assert first.poll() is None, "the upload finished before it could be killed"
            assert time.monotonic() < ends
            time.sleep(0.02)
        first.send_signal(signal.SIGKILL)
    finally:
        first.wait(10)
    held = len(requests.get(parts_url, headers=local_stack.auth_headers, timeout=10).json()["parts"])
    assert 4 <= held < 25, held

    out = tmp_path / "out"
    again = subprocess.run(
        [*command, "--wait", "--download", str(out)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert again.returncode == 0, again.stderr
    assert f"resuming job {job_id}" in again.stderr
    assert again.stdout.strip() == job_id  # the same job, not a new one
    plain = io.BytesIO()
    with open(out / "src" / "dump.log.zst", "rb") as result:
        decompress_stream(result, plain, Algorithm.ZSTD)
    assert hashlib.sha256(plain.getvalue()).digest() == hashlib.sha256(big.read_bytes()).digest()
    assert not list((tmp_path / "state" / "uploads").glob("*.json"))  # the journal goes once all is sent


def test_a_file_changed_since_the_interruption_is_refused(local_stack, tmp_path):
    source = tmp_path / "src"
    source.mkdir()
    big = source / "a.bin"
    big.write_bytes(os.urandom(70 * MiB))
    env = {**os.environ, **local_stack.client_environment, "SQUEEZER_STATE_DIR": str(tmp_path / "state")}
    command = [sys.executable, "-m", "client", "upload", str(source), "--parallel", "1"]
    first = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        _journal(tmp_path / "state", first)
        first.send_signal(signal.SIGKILL)
    finally:
        first.wait(10)
    with open(big, "ab") as f:
        f.write(b"appended")
    again = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert again.returncode == 1, again.stderr
    assert "a.bin" in again.stderr and "changed" in again.stderr
