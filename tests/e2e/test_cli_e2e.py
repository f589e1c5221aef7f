"""The ``squeezer`` client against the real local stack (CliRunner, real HTTP)."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from chalicelib.codecs import decompress_stream
from chalicelib.domain import Algorithm
from client.cli import cli

pytestmark = pytest.mark.integration


def _tree(root: Path) -> dict[str, bytes]:
    files = {
        "notes.txt": "".join(f"line {i}: the quick brown fox\n" for i in range(4000)).encode(),
        "random.bin": os.urandom(200_000),
        "empty.dat": b"",
        "deep/nested/data.json": json.dumps({"k": list(range(2000))}).encode(),
        "données/résumé-日本語.txt": "é à ü 日本語 ✓\n".encode() * 500,
    }
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    return files


def _run(*args: str, expect: int):
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert result.exit_code == expect, result.output
    return result


@pytest.mark.parametrize("algorithm", ["zstd", "brotli", "gzip"])
def test_upload_wait_download_is_byte_exact(local_stack, tmp_path: Path, algorithm: str) -> None:
    files = _tree(tmp_path / "src")
    out = tmp_path / "out"

    result = _run(
        "--api-url",
        local_stack.api_url,
        "--token",
        local_stack.token,
        "upload",
        str(tmp_path / "src"),
        "-a",
        algorithm,
        "--download",
        str(out),
        expect=0,
    )

    job_id = result.stdout.strip()
    assert job_id.startswith("j_"), result.output
    for name, data in files.items():
        restored = io.BytesIO()
        with open(out / "src" / (name + Algorithm(algorithm).extension), "rb") as packed:
            decompress_stream(packed, restored, Algorithm(algorithm))
        assert restored.getvalue() == data, name
    status = json.loads(
        _run(
            "--api-url", local_stack.api_url, "--token", local_stack.token, "status", job_id, "--json", expect=0
        ).stdout
    )
    assert status["state"] == "completed"


def test_a_file_failing_on_the_worker_exits_1_and_is_listed(local_stack, tmp_path: Path, monkeypatch) -> None:
    """The file changes (same size) after its sha256 was sent: the worker's check fails it.

    On S3 the PUT itself would be refused on the checksum; moto accepts it, so
    here the worker's own sha256 check fails the file. Listed, exit code 1.
    """
    files = _tree(tmp_path / "src")
    victim = tmp_path / "src" / "notes.txt"
    from client import uploader

    original = uploader.Uploader.upload

    def tamper(self, local, upload, **kwargs):
        if local.path == victim:
            victim.write_bytes(b"X" * len(files["notes.txt"]))
        return original(self, local, upload, **kwargs)

    monkeypatch.setattr(uploader.Uploader, "upload", tamper)

    result = _run(
        "--api-url",
        local_stack.api_url,
        "--token",
        local_stack.token,
        "upload",
        str(tmp_path / "src"),
        "--wait",
        expect=1,
    )

    assert "1 of 5 file(s) failed:" in result.stderr
    assert "src/notes.txt: " in result.stderr
    # moto stores the PUT without checking its signed sha256, so the worker is the
    # defence that acts here (S3's own refusal is tested against LocalStack:
    # tests/localstack/test_flow.py, wrong sha256)
    assert "checksum_mismatch" in result.stderr, result.stderr
    assert "http_400" not in result.stderr, result.stderr


def test_a_second_download_into_the_same_folder_skips_everything(local_stack, tmp_path: Path) -> None:
    """The server's result_crc64nvme proves a local result identical; mode and mtime come back with it."""
    _tree(tmp_path / "src")
    (tmp_path / "src" / "notes.txt").chmod(0o750)
    os.utime(tmp_path / "src" / "notes.txt", (1_600_000_000, 1_600_000_000))
    out = tmp_path / "out"
    auth = ("--api-url", local_stack.api_url, "--token", local_stack.token)

    first = _run(*auth, "upload", str(tmp_path / "src"), "--download", str(out), expect=0)
    job_id = first.stdout.strip()
    assert "5 files, " in first.stderr and "; 5 downloaded" in first.stderr, first.stderr
    status = json.loads(_run(*auth, "status", job_id, "--json", expect=0).stdout)
    assert all(f["result_crc64nvme"] for f in status["files"]), status

    again = _run(*auth, "download", job_id, "-o", str(out), expect=0)

    assert again.stdout == ""
    assert "all 5 already up to date" in again.stderr, again.stderr
    notes = out / "src" / "notes.txt.zst"
    assert (notes.stat().st_mode & 0o777, notes.stat().st_mtime) == (0o750, 1_600_000_000.0)
