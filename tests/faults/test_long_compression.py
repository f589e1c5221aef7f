"""Fault: a compression that runs much longer than the queue's visibility timeout, on the live local stack.

Before, the message reappeared when its visibility timed out, a second
delivery started compressing the same file, and whichever finished second
deleted the other's result. With the heartbeat, the message stays hidden and
the claim alive for as long as the first delivery works.
"""

from __future__ import annotations

import io
import time

import pytest
import requests

from chalicelib.codecs import decompress_stream
from chalicelib.domain import Algorithm
from infra.local import LocalStack, free_ports

pytestmark = pytest.mark.integration

VISIBILITY = 3  # seconds: the queue's own visibility timeout
# a few MiB of varied CSV at brotli 11: several times the visibility timeout
DATA = b"".join(b"%d,%x,event-%d,user-%d,%d\n" % (i, i * 7919, i % 97, i % 1013, i * i % 65521) for i in range(200_000))


def test_a_compression_longer_than_the_visibility_timeout_runs_once(tmp_path):
    api_port, moto_port = free_ports(2)
    stack = LocalStack(
        api_port=api_port,
        moto_port=moto_port,
        state_dir=tmp_path,
        # a claim outlives many beats even when a loaded machine delays one (brotli 11
        # spends a second or more per 1 MiB chunk)
        env={"SQUEEZER_HEARTBEAT_SECONDS": "0.5", "SQUEEZER_LEASE_SECONDS": "8", "SQUEEZER_COMPRESS_THREADS": "1"},
        visibility_timeout=VISIBILITY,
    )
    with stack:
        created = requests.post(
            f"{stack.api_url}/jobs",
            headers=stack.auth_headers,
            timeout=10,
            json={"algorithm": "brotli", "level": 11, "files": [{"name": "events.csv", "size": len(DATA)}]},
        )
        assert created.status_code == 201, created.text
        upload = created.json()["files"][0]["upload"]
        put = requests.request(upload["method"], upload["url"], data=DATA, headers=upload["headers"], timeout=30)
        assert put.status_code == 200
        job_id = created.json()["job_id"]
        started = time.monotonic()
        deadline = started + 180
        while True:
            job = requests.get(f"{stack.api_url}/jobs/{job_id}", headers=stack.auth_headers, timeout=10).json()
            if job["state"] in ("completed", "failed", "partially_failed"):
                break
            assert time.monotonic() < deadline, job
            time.sleep(0.25)
        took = time.monotonic() - started
        (entry,) = job["files"]
        assert job["state"] == "completed", entry
        assert took > 2 * VISIBILITY, f"the compression took only {took:.1f} s: the test proves nothing"
        assert entry["attempts"] == 1  # no second delivery ever claimed it
        result = requests.get(entry["download_url"], timeout=30)
        assert result.status_code == 200
        plain = io.BytesIO()
        decompress_stream(io.BytesIO(result.content), plain, Algorithm.BROTLI)
        assert plain.getvalue() == DATA
        # A redelivery may still arrive before the first beat when a loaded machine takes
        # longer than the 3 s visibility to start the handler (on AWS the queue's visibility
        # is 6x the timeout); it must find the live claim and wait, never compress or take over.
        log = (tmp_path / "bridge.log").read_text()
        assert "claim lost" not in log and "claim_lost" not in log
