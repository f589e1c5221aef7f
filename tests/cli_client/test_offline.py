"""squeezer compress / decompress: the service's codecs on local files, through the CLI."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from client.cli import cli

DATA = ("Squeezer squeezes files. Ünïcödé too. " * 2000).encode() + os.urandom(4096)


def run(*args: str, expect: int = 0):
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert result.exit_code == expect, result.output
    return result


@pytest.fixture
def plain(tmp_path: Path) -> Path:
    path = tmp_path / "notes.txt"
    path.write_bytes(DATA)
    return path


@pytest.mark.parametrize("algorithm, extension", [("zstd", ".zst"), ("brotli", ".br"), ("gzip", ".gz")])
def test_round_trip_for_each_algorithm(plain: Path, algorithm: str, extension: str) -> None:
    run("compress", str(plain), "-a", algorithm)
    packed = plain.with_name(plain.name + extension)
    assert packed.stat().st_size < len(DATA)
    plain.unlink()

    result = run("decompress", str(packed))

    assert plain.read_bytes() == DATA
    assert str(plain) in result.output


@pytest.mark.parametrize("algorithm", ["zstd", "gzip"])
def test_decompress_detects_the_format_by_magic_bytes(plain: Path, tmp_path: Path, algorithm: str) -> None:
    packed = tmp_path / "mystery.bin"
    run("compress", str(plain), "-a", algorithm, "-o", str(packed))
    out = tmp_path / "restored"

    run("decompress", str(packed), "-o", str(out))

    assert out.read_bytes() == DATA


def test_the_extension_decides_before_the_magic_bytes(plain: Path, tmp_path: Path) -> None:
    packed = tmp_path / "data.br"  # brotli has no magic bytes: only the name can tell
    run("compress", str(plain), "-a", "brotli", "-l", "4", "-o", str(packed))
    run("decompress", str(packed))
    assert (tmp_path / "data").read_bytes() == DATA


def test_decompress_without_a_known_extension_or_magic_is_a_clear_error(tmp_path: Path) -> None:
    odd = tmp_path / "odd.bin"
    odd.write_bytes(b"not compressed at all")
    result = run("decompress", str(odd), expect=1)
    assert "cannot tell the format" in result.output
    assert "Traceback" not in result.output


def test_corrupt_data_is_a_clear_error_and_leaves_no_output(plain: Path, tmp_path: Path) -> None:
    run("compress", str(plain), "-a", "gzip")
    packed = tmp_path / "notes.txt.gz"
    packed.write_bytes(packed.read_bytes()[:-100])  # truncated
    plain.unlink()

    result = run("decompress", str(packed), expect=1)

    assert "truncated gzip data" in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt.gz"]


def test_refuses_to_overwrite_unless_forced(plain: Path) -> None:
    target = plain.with_name("notes.txt.zst")
    target.write_bytes(b"precious")

    result = run("compress", str(plain), expect=1)
    assert "already exists" in result.output and "--force" in result.output
    assert target.read_bytes() == b"precious"

    run("compress", str(plain), "--force")
    assert target.read_bytes() != b"precious"


def test_decompress_refuses_to_overwrite_too(plain: Path) -> None:
    run("compress", str(plain))
    result = run("decompress", str(plain) + ".zst", expect=1)
    assert "already exists" in result.output
    assert plain.read_bytes() == DATA


@pytest.mark.parametrize("algorithm, level", [("zstd", "23"), ("brotli", "12"), ("gzip", "0"), ("zstd", "x")])
def test_a_bad_level_is_a_usage_error(plain: Path, algorithm: str, level: str) -> None:
    result = run("compress", str(plain), "-a", algorithm, "-l", level, expect=2)
    assert "--level" in result.output


def test_a_missing_input_is_one_failure_line(tmp_path: Path) -> None:
    result = run("compress", str(tmp_path / "missing.txt"), expect=1)
    assert "missing.txt: no such file" in result.output


def test_a_folder_without_recursive_is_a_failure_that_says_how(tmp_path: Path) -> None:
    result = run("decompress", str(tmp_path), expect=1)
    assert "is a folder: pass -r/--recursive" in result.output


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_an_unreadable_input_is_one_clear_line(plain: Path) -> None:
    plain.chmod(0)
    try:
        result = run("compress", str(plain), expect=1)
    finally:
        plain.chmod(0o644)
    assert result.output.strip().startswith("Error: cannot read")
    assert "Traceback" not in result.output


@pytest.mark.skipif(not Path("/proc/self/mem").exists(), reason="Linux: reading /proc/self/mem at 0 fails with EIO")
def test_an_input_that_fails_while_reading_is_one_clear_line(tmp_path: Path) -> None:
    result = run("compress", "/proc/self/mem", "-o", str(tmp_path / "out.zst"), expect=1)
    assert result.output.strip().startswith("Error: cannot read /proc/self/mem")
    assert not list(tmp_path.iterdir())  # no partial output


def test_json_output(plain: Path) -> None:
    import json

    result = run("compress", str(plain), "-a", "gzip", "--json")
    report = json.loads(result.stdout)
    [entry] = report["files"]
    assert entry["algorithm"] == "gzip"
    assert entry["bytes_in"] == len(DATA)
    assert entry["output"].endswith("notes.txt.gz")
    assert report["totals"]["files"] == 1 and report["failed"] == []


# -- --rm: the output must decode back to the input (checked on a thread beside the compression) ----


@pytest.mark.parametrize("algorithm", ["zstd", "brotli", "gzip"])
def test_rm_removes_the_input_once_the_output_decodes_back(plain: Path, algorithm: str) -> None:
    run("compress", "-q", "--rm", "-a", algorithm, str(plain))
    assert not plain.exists()
    run("decompress", "-q", str(next(plain.parent.glob("notes.txt.*"))))
    assert plain.read_bytes() == DATA


def test_rm_keeps_the_input_when_the_output_decodes_to_other_bytes(plain: Path, monkeypatch) -> None:
    import client.offline as offline

    real = offline.compress_stream

    def lossy(source, sink, *args, **kwargs):
        source.read(1)  # one byte lost on the way: the output is valid zstd, of the wrong bytes
        return real(source, sink, *args, **kwargs)

    monkeypatch.setattr(offline, "compress_stream", lossy)
    result = run("compress", "--rm", str(plain), expect=1)
    assert "does not decode back to the same bytes" in result.output
    assert plain.read_bytes() == DATA
    assert not (plain.parent / "notes.txt.zst").exists()  # checked before the rename


def test_rm_keeps_the_input_and_no_output_when_the_output_is_not_zstd(plain: Path, monkeypatch) -> None:
    import client.offline as offline

    def garbage(source, sink, *args, **kwargs):
        while source.read(1 << 16):
            sink.write(b"not zstd at all " * 4096)
        return offline.StreamStats(len(DATA), 0)

    monkeypatch.setattr(offline, "compress_stream", garbage)
    result = run("compress", "--rm", str(plain), expect=1)
    assert "does not decode back" in result.output and "was kept" in result.output
    assert plain.read_bytes() == DATA
    assert not (plain.parent / "notes.txt.zst").exists()
