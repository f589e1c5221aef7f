"""`make demo` end to end: the stack, the client, verification and the table."""

import pytest

from infra.local import demo
from infra.local.stack import free_ports

pytestmark = pytest.mark.integration


def test_demo_compresses_verifies_and_prints_a_table(tmp_path, monkeypatch, capsys):
    api_port, moto_port = free_ports(2)
    monkeypatch.setenv("SQUEEZER_API_PORT", str(api_port))
    monkeypatch.setenv("SQUEEZER_MOTO_PORT", str(moto_port))
    monkeypatch.setattr(demo, "DEMO_DIR", tmp_path / "demo")
    sample = demo.make_sample(tmp_path / "sample")
    assert demo.run_demo(sample, "gzip", 6) == 0
    out = capsys.readouterr().out
    assert "5/5 files verified byte-exact after decompression" in out
    for name in ("sample/empty.txt", "sample/données/résumé été.txt", "sample/data/random.bin"):
        assert name in out
    assert "FAILED" not in out
