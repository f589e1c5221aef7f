"""What ``squeezer`` imports to start: --help and the offline commands load no AWS, HTTP or codec library
they do not use (issue 14: ``squeezer --help`` under 0.1 s of CPU; boto3 alone costs ~100 ms)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

HEAVY = ("boto3", "botocore", "requests", "urllib3", "zstandard", "brotli", "zlib_ng", "tqdm")
CODECS = ("zstandard", "brotli", "zlib_ng")

PROBE = """
import json, sys
from client.cli import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
heavy = sorted({m.split(".")[0] for m in sys.modules} & set(json.loads(%r)))
print("LOADED=" + json.dumps(heavy), file=sys.stderr)
"""


def loaded_by(*args: str, cwd: Path | None = None) -> list[str]:
    """The heavy top-level packages imported by ``squeezer ARGS`` in a fresh interpreter."""
    result = subprocess.run(
        [sys.executable, "-c", PROBE % json.dumps(HEAVY), *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
    )
    line = [x for x in result.stderr.splitlines() if x.startswith("LOADED=")]
    assert line, result.stdout + result.stderr
    loaded: list[str] = json.loads(line[-1].removeprefix("LOADED="))
    return loaded


@pytest.mark.parametrize("args", [("--help",), ("--version",), ("compress", "--help"), ("upload", "--help")])
def test_help_imports_no_aws_http_or_codec_library(args: tuple[str, ...]) -> None:
    assert loaded_by(*args) == []


def test_root_help_lists_admin_without_importing_it() -> None:
    probe = (
        "import sys\nfrom client.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "print('ADMIN=' + str('client.admin' in sys.modules), file=sys.stderr)"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert "ADMIN=False" in result.stderr, result.stderr
    assert "admin " in result.stdout and "Operator commands" in result.stdout, result.stdout


def test_compress_loads_the_codecs_but_no_aws_or_http(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_bytes(b"hello " * 1000)
    loaded = loaded_by("compress", "-q", str(tmp_path / "a.txt"))
    assert (tmp_path / "a.txt.zst").exists()
    assert not set(loaded) - set(CODECS), loaded


def test_the_lazy_admin_group_is_client_admin() -> None:
    from client.admin import admin
    from client.cli import cli

    lazy = cli.commands["admin"]
    assert lazy.help == admin.help  # the root --help shows client.admin's own words
    result = CliRunner().invoke(cli, ["admin", "--help"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    for name in admin.commands:
        assert name in result.output
    assert "create-tenant" in result.output and "redrive-dead-letters" in result.output


def test_compress_does_not_read_the_config_module(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_bytes(b"hello " * 1000)
    probe = (
        "import sys\nfrom client.cli import main\ntry:\n"
        f"    main(['compress', '-q', {str(tmp_path / 'a.txt')!r}])\nexcept SystemExit:\n    pass\n"
        "print('CONFIG=' + str('client.config' in sys.modules), file=sys.stderr)"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert "CONFIG=False" in result.stderr, result.stderr
    assert (tmp_path / "a.txt.zst").exists()
