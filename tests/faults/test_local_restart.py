"""Fault: the local stack is stopped (cleanly, or its runner killed) and started again.

Jobs, results and queued work must come back from the state directory; the
previous run's logs must still be there. Real processes on 127.0.0.1.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from tenancy import Api

from chalicelib.codecs import decompress_stream
from chalicelib.domain import Algorithm
from infra.local import LocalStack, free_ports

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
JOB_DEADLINE = 60.0
FINAL = {"completed", "partially_failed", "failed", "cancelled"}
FILES = {
    "notes.txt": b"".join(b"line %d: the quick brown fox jumps over the lazy dog\n" % i for i in range(5000)),
    "random.bin": os.urandom(200_000),
}


def _create_and_upload(api: Api, files: dict[str, bytes], algorithm: str = "zstd") -> str:
    body = {"algorithm": algorithm, "files": [{"name": n, "size": len(d)} for n, d in files.items()]}
    created = api.post("/jobs", json=body)
    assert created.status_code == 201, created.text
    with requests.Session() as session:
        for entry in created.json()["files"]:
            upload = entry["upload"]
            put = session.request(
                upload["method"], upload["url"], data=files[entry["name"]], headers=upload["headers"], timeout=30
            )
            assert put.status_code == 200, f"upload of {entry['name']!r}: {put.status_code}"
    return created.json()["job_id"]


def _job(api: Api, job_id: str) -> dict:
    response = api.get(f"/jobs/{job_id}")
    assert response.status_code == 200, response.text
    return response.json()


def _wait_final(api: Api, job_id: str, deadline: float = JOB_DEADLINE) -> dict:
    ends = time.monotonic() + deadline
    while True:
        job = _job(api, job_id)
        if job["state"] in FINAL:
            return job
        assert time.monotonic() < ends, f"job {job_id} not final after {deadline}s: {job}"
        time.sleep(0.2)


def _results(job: dict) -> dict[str, bytes]:
    """Each file's compressed bytes, as its download URL serves them."""
    out = {}
    for entry in job["files"]:
        assert entry["state"] == "completed", entry
        response = requests.get(entry["download_url"], timeout=30)
        assert response.status_code == 200, entry["name"]
        out[entry["name"]] = response.content
    return out


def _decompressed(data: bytes, algorithm: str) -> bytes:
    out = io.BytesIO()
    decompress_stream(io.BytesIO(data), out, Algorithm(algorithm))
    return out.getvalue()


def _assert_results(job: dict, expected_compressed: dict[str, bytes] | None = None) -> dict[str, bytes]:
    assert job["state"] == "completed", job
    results = _results(job)
    assert set(results) == set(FILES)
    for name, original in FILES.items():
        assert _decompressed(results[name], job["algorithm"]) == original, name
        if expected_compressed is not None:
            assert results[name] == expected_compressed[name], f"{name}: not the same compressed bytes"
    return results


@pytest.fixture
def ports() -> tuple[int, int]:
    return tuple(free_ports(2))


def _stack(ports, state_dir: Path, **options) -> LocalStack:
    api_port, moto_port = ports
    return LocalStack(api_port=api_port, moto_port=moto_port, state_dir=state_dir, keep_state=True, **options)


def test_completed_job_and_its_results_survive_a_restart(tmp_path, ports):
    with _stack(ports, tmp_path) as first:
        job_id = _create_and_upload(Api.of(first), FILES)
        before = _assert_results(_wait_final(Api.of(first), job_id))
        first_log = (tmp_path / "emulator.log").read_text()
    assert "moto server listening" in first_log

    with _stack(ports, tmp_path) as second:
        assert second.restored and second.restored["objects"] >= len(FILES), second.restored
        job = _job(Api.of(second), job_id)
        _assert_results(job, expected_compressed=before)
        listed = Api.of(second).get("/jobs")
        assert listed.status_code == 200 and job_id in listed.text

    # Logs: the first run's are rotated, not overwritten.
    for name in ("emulator", "api", "bridge"):
        assert (tmp_path / f"{name}.log.1").stat().st_size > 0, name
        assert (tmp_path / f"{name}.log").stat().st_size > 0, name
    assert (tmp_path / "emulator.log.1").read_text().startswith(first_log)


def test_work_queued_at_stop_is_done_after_the_restart(tmp_path, ports):
    with _stack(ports, tmp_path) as first:
        bridge = next(p for p in first.processes if p.name == "bridge")
        bridge.stop(30)  # nothing consumes the queue now: uploads wait in it
        job_id = _create_and_upload(Api.of(first), FILES)
        sqs = first.client("sqs")
        url = first.resources.queue_url
        ends = time.monotonic() + 10
        while int(
            sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])["Attributes"][
                "ApproximateNumberOfMessages"
            ]
        ) < len(FILES):
            assert time.monotonic() < ends, "the uploads' notifications never reached the queue"
            time.sleep(0.1)
        assert _job(Api.of(first), job_id)["state"] not in FINAL

    with _stack(ports, tmp_path) as second:
        assert second.restored and second.restored["messages"] >= len(FILES), second.restored  # and s3:TestEvent
        _assert_results(_wait_final(Api.of(second), job_id))


def test_a_killed_runner_keeps_the_state(tmp_path, ports):
    """SIGKILL of ``python -m infra.local up``: the emulator is told (SIGTERM) and saves."""
    if sys.platform != "linux":
        pytest.skip("the stack's processes die with a killed runner on Linux only")
    api_port, moto_port = ports
    env = {
        **os.environ,
        "SQUEEZER_API_PORT": str(api_port),
        "SQUEEZER_MOTO_PORT": str(moto_port),
        "SQUEEZER_LOCAL_STATE_DIR": str(tmp_path),
    }
    log = open(tmp_path / "runner.log", "wb")  # noqa: SIM115 - the runner's stderr for its whole life
    runner = subprocess.Popen(
        [sys.executable, "-m", "infra.local", "up"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=log,
        start_new_session=True,
    )
    try:
        api = runner.stdout.readline().decode().strip()  # the API URL, once everything answers
        assert api.startswith("http://127.0.0.1:"), (tmp_path / "runner.log").read_text()
        # the runner writes that line to stderr just after the URL: wait for it, with a deadline
        ends = time.monotonic() + 10
        while "kept in" not in (tmp_path / "runner.log").read_text() and time.monotonic() < ends:
            time.sleep(0.05)
        assert "kept in" in (tmp_path / "runner.log").read_text()
        runner_api = Api.from_state(api, tmp_path)
        job_id = _create_and_upload(runner_api, FILES)
        before = _assert_results(_wait_final(runner_api, job_id))
    finally:
        runner.kill()
        runner.wait(10)
        log.close()

    with _stack(ports, tmp_path) as second:  # stops what the dead runner left, waiting for the save
        _assert_results(_job(Api.of(second), job_id), expected_compressed=before)


def test_fresh_start_forgets_the_saved_state(tmp_path, ports):
    with _stack(ports, tmp_path) as first:
        job_id = _create_and_upload(Api.of(first), {"a.txt": b"a" * 1000})
        _wait_final(Api.of(first), job_id)
    with _stack(ports, tmp_path, fresh=True) as second:
        assert second.restored is None
        assert Api.of(second).get(f"/jobs/{job_id}").status_code == 404
