"""The one emulator launcher (infra.local.start_emulator), as the benchmarks use it: running_emulator()."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from infra.local import PortInUse, emulator_client, free_port, process_group_members, running_emulator
from infra.local.config import FAKE_AWS
from infra.resources import create_resources, stage_config

pytestmark = pytest.mark.integration  # starts a moto server on 127.0.0.1


def test_running_emulator_serves_the_stage_resources_then_leaves_nothing_behind(monkeypatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIA-not-the-fake-one")  # the caller's AWS_* never reach it
    port = free_port()

    with running_emulator(port) as endpoint:
        assert endpoint == f"http://127.0.0.1:{port}"
        stage = stage_config("test")
        clients = {name: emulator_client(name, endpoint) for name in ("s3", "sqs", "dynamodb")}
        create_resources(stage, region=FAKE_AWS["AWS_REGION"], enforce_tls=False, **clients)
        assert [b["Name"] for b in clients["s3"].list_buckets()["Buckets"]] == [stage.bucket]
        (pid,) = _listening_pids(port)
        environ = dict(v.split(b"=", 1) for v in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0") if v)
        assert environ[b"AWS_ACCESS_KEY_ID"] == FAKE_AWS["AWS_ACCESS_KEY_ID"].encode()

    assert process_group_members(pid) == []  # the emulator leads its own process group
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", port)) != 0


def test_a_port_someone_else_listens_on_is_refused_not_mistaken_for_the_emulator() -> None:
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = other.getsockname()[1]

        with pytest.raises(PortInUse, match=f"port {port} .* in use"), running_emulator(port):
            pytest.fail("started on a port that was taken")


def _listening_pids(port: int) -> list[int]:
    import psutil

    return [c.pid for c in psutil.net_connections("tcp") if c.laddr and c.laddr.port == port and c.status == "LISTEN"]
