"""LocalStack(env=..., visibility_timeout=...): what fault tests tune on the live stack."""

from __future__ import annotations

from pathlib import Path

import pytest
import requests

from infra.local import LocalStack, free_ports
from infra.resources import stage_config

pytestmark = pytest.mark.integration

OVERRIDES = {
    "SQUEEZER_HEARTBEAT_SECONDS": "0.5",
    "SQUEEZER_LEASE_SECONDS": "3",
    "SQUEEZER_UPLOAD_URL_TTL": "77",  # declared by .chalice/config.json: the stage's value loses
}


def _environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(item.decode().split("=", 1) for item in raw if b"=" in item)


def _visibility(stack: LocalStack, url: str) -> str:
    attributes = stack.client("sqs").get_queue_attributes(QueueUrl=url, AttributeNames=["VisibilityTimeout"])
    return attributes["Attributes"]["VisibilityTimeout"]


def test_default_visibility_is_derived_from_the_worker_timeout(local_stack):
    expected = stage_config(local_stack.config.stage).visibility_timeout
    assert _visibility(local_stack, local_stack.resources.queue_url) == str(expected)


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="reads /proc/<pid>/environ")
def test_overrides_reach_the_queue_and_every_process(tmp_path):
    api_port, moto_port = free_ports(2)
    with LocalStack(
        api_port=api_port, moto_port=moto_port, state_dir=tmp_path, env=OVERRIDES, visibility_timeout=4
    ) as stack:
        assert _visibility(stack, stack.resources.queue_url) == "4"
        assert _visibility(stack, stack.resources.dead_letter_queue_url) == "120"  # the DLQ keeps its own

        for process in stack.processes:
            environ = _environ(process.pid)
            for name, value in OVERRIDES.items():
                assert environ.get(name) == value, f"{process.name}: {name}={environ.get(name)!r}"

        # chalice local copies the stage's variables over its environment when it loads the app;
        # the override must win inside the API too: the upload URL's lifetime shows it.
        created = requests.post(
            f"{stack.api_url}/jobs",
            timeout=10,
            headers=stack.auth_headers,
            json={"algorithm": "zstd", "files": [{"name": "a", "size": 1}]},
        )
        assert created.status_code == 201, created.text
        assert created.json()["files"][0]["upload"]["expires_in"] == 77
