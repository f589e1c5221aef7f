"""`make demo` end to end: the stack, the client, verification and the table; a running stack reused; no leftovers."""

import socket

import pytest
import requests

from infra.local import demo
from infra.local.stack import LocalStack, free_ports

pytestmark = pytest.mark.integration


@pytest.fixture
def demo_env(tmp_path, monkeypatch):
    api_port, moto_port = free_ports(2)
    monkeypatch.setenv("SQUEEZER_API_PORT", str(api_port))
    monkeypatch.setenv("SQUEEZER_MOTO_PORT", str(moto_port))
    monkeypatch.setenv("SQUEEZER_LOCAL_STATE_DIR", str(tmp_path / "up"))  # where `make up` would record itself
    monkeypatch.setattr(demo, "DEMO_DIR", tmp_path / "demo")
    return api_port, moto_port, demo.make_sample(tmp_path / "sample")


def test_demo_compresses_verifies_prints_a_table_and_cleans_up(demo_env, tmp_path, capsys):
    api_port, _, sample = demo_env
    with socket.socket() as squatter:  # something else holds the API port: the demo uses free ports
        squatter.bind(("127.0.0.1", api_port))
        squatter.listen()
        assert demo.run_demo(sample, "gzip", 6) == 0
    captured = capsys.readouterr()
    out = captured.out
    assert "5/5 files verified byte-exact after decompression" in out
    for name in ("sample/empty.txt", "sample/données/résumé été.txt", "sample/data/random.bin"):
        assert name in out
    assert "FAILED" not in out
    assert f"port {api_port} is taken by something else" in captured.err
    assert not list((tmp_path / "demo").glob("out-*"))  # the downloaded results are removed


def test_demo_reuses_the_stack_make_up_runs(demo_env, tmp_path, capsys):
    api_port, moto_port, sample = demo_env
    with LocalStack(api_port=api_port, moto_port=moto_port, state_dir=tmp_path / "up") as stack:
        assert demo.run_demo(sample, "zstd", None, keep=True) == 0
        jobs = requests.get(stack.api_url + "/jobs", headers=stack.auth_headers, timeout=10).json()["jobs"]
    captured = capsys.readouterr()
    assert f"using the local stack already running at {stack.api_url}" in captured.err
    assert "starting the local stack" not in captured.err
    assert "5/5 files verified" in captured.out
    assert jobs  # the job went to the running stack
    [kept] = (tmp_path / "demo").glob("out-*")  # keep=True keeps the results
    assert f"results kept in {kept}" in captured.out
