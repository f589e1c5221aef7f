"""Fan-out on the real local stack: each range in an invocation of its own, the result decoded by Debian's tools.

The stack runs with a 16 MiB threshold and 8 MiB ranges, so a file of a few
tens of MiB is cut into ranges; every part is padded to S3's 5 MiB minimum
where needed (the emulator refuses smaller parts at completion, as S3 does).
The jobs queue keeps its deployed batch size (10): the range messages go to
the ranges queue, whose function (``compress_range``) takes one message per
invocation, so a file's ranges never run one after another in one batch.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import requests

from infra.local import LocalStack, free_ports

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not (shutil.which("zstd") and shutil.which("gzip")), reason="needs Debian's zstd and gzip"),
]

MiB = 1024**2
SIZE = 40 * MiB + 12345  # 6 ranges of 8 MiB, the last one short; one PUT (under the 64 MiB multipart threshold)
# The jobs queue's batches stay at 10, as deployed: before the ranges queue, the six range
# messages (sent in one SendMessageBatch to the jobs queue) mostly landed in one invocation.
ENV = {
    "SQUEEZER_FANOUT_THRESHOLD": str(16 * MiB),
    "SQUEEZER_RANGE_SIZE": str(8 * MiB),
}
FINAL = {"completed", "failed", "partially_failed", "cancelled"}


def _data(size: int) -> bytes:
    # hex of random bytes: compresses about 2:1, never to nothing, and is quick to make
    return os.urandom(size // 2 + 1).hex().encode()[:size]


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    api_port, moto_port = free_ports(2)
    state_dir = tmp_path_factory.mktemp("fanout-stack")
    with LocalStack(api_port=api_port, moto_port=moto_port, state_dir=state_dir, env=ENV) as running:
        yield running, state_dir


def _compress(stack: LocalStack, data: bytes, algorithm: str) -> dict:
    created = requests.post(
        f"{stack.api_url}/jobs",
        headers=stack.auth_headers,
        timeout=10,
        json={"algorithm": algorithm, "files": [{"name": "big.txt", "size": len(data)}]},
    )
    assert created.status_code == 201, created.text
    upload = created.json()["files"][0]["upload"]
    put = requests.request(upload["method"], upload["url"], data=data, headers=upload["headers"], timeout=60)
    assert put.status_code == 200, put.text
    job_id = created.json()["job_id"]
    deadline = time.monotonic() + 60
    while True:
        job = requests.get(f"{stack.api_url}/jobs/{job_id}", headers=stack.auth_headers, timeout=10).json()
        if job["state"] in FINAL:
            break
        assert time.monotonic() < deadline, job
        time.sleep(0.25)
    (entry,) = job["files"]
    assert job["state"] == "completed", entry
    return entry


@pytest.mark.parametrize(("algorithm", "tool"), [("zstd", "zstd"), ("gzip", "gzip")])
def test_a_fanned_out_result_decodes_with_debians_tools(stack, tmp_path, algorithm, tool):
    running, state_dir = stack
    data = _data(SIZE)
    entry = _compress(running, data, algorithm)
    result = requests.get(entry["download_url"], timeout=60)
    assert result.status_code == 200 and len(result.content) == entry["compressed_size"]
    packed = tmp_path / f"big.txt.{'zst' if algorithm == 'zstd' else 'gz'}"
    packed.write_bytes(result.content)
    decoded = subprocess.run([tool, "-d", "-c", str(packed)], capture_output=True, check=True, timeout=60).stdout
    assert hashlib.sha256(decoded).hexdigest() == hashlib.sha256(data).hexdigest()
    # Six ranges were done, each by compress_range in an invocation of its own (the bridge, as
    # Lambda's runtime, tags every log line of an invocation with its request id): never several
    # in one batch, one after another. Not a matter of timing: the ranges queue's batch size is 1.
    job_id = entry["download_url"].split("/results/", 1)[1].split("/")[1]
    done = _ranges_done(state_dir / "bridge.log", job_id)
    assert sorted(done) == [1, 2, 3, 4, 5, 6]
    assert {function for function, _, _ in done.values()} == {"compress_range"}, done
    invocations = {request_id for _, request_id, _ in done.values()}
    assert len(invocations) == 6, f"ranges shared invocations: {done}"
    # which worker processes ran them depends on timing (2 pollers): shown, not asserted
    print(f"ranges -> (function, invocation, pid): {done}")  # noqa: T201


def _ranges_done(log: Path, job_id: str) -> dict[int, tuple[str, str, str]]:
    """Range number -> (function, invocation's request id, pid) that recorded it done, from the bridge's log."""
    pattern = re.compile(r"\[(\S+) (\S+)\] .*\brange (\d+) of " + re.escape(job_id) + r"/\S+ done \(pid (\d+)\)")
    done: dict[int, tuple[str, str, str]] = {}
    for line in log.read_text(errors="replace").splitlines():
        match = pattern.search(line)
        if match:
            done[int(match.group(3))] = (match.group(1), match.group(2), match.group(4))
    return done
