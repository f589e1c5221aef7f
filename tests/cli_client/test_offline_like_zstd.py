"""squeezer compress / decompress used like zstd: several files, -r, pipes, -T, --rm, -f, mode and mtime."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import zstandard
from click.testing import CliRunner

from client.cli import cli

TEXT = b"squeezer " * 5000
ALGORITHMS = [("zstd", ".zst"), ("brotli", ".br"), ("gzip", ".gz")]


def run(*args: str, expect: int = 0, stdin: bytes | None = None):
    result = CliRunner().invoke(cli, list(args), input=stdin, catch_exceptions=False)
    assert result.exit_code == expect, result.output
    return result


def tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    root = tmp_path / "tree"
    (root / "a" / "b").mkdir(parents=True)
    (root / "top.txt").write_bytes(TEXT)
    (root / "a" / "mid.log").write_bytes(TEXT * 2)
    (root / "a" / "b" / "deep.json").write_bytes(b'{"k": 1}\n' * 3000)
    (root / "a" / "b" / "empty").write_bytes(b"")
    return root


def test_several_files_at_once_with_a_summary(tmp_path: Path) -> None:
    names = [tmp_path / f"f{i}.txt" for i in range(3)]
    for n in names:
        n.write_bytes(TEXT)

    result = run("compress", *map(str, names))

    for n in names:
        assert zstandard.ZstdDecompressor().decompressobj().decompress(n.with_suffix(".txt.zst").read_bytes()) == TEXT
        assert n.read_bytes() == TEXT  # kept by default
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("3 files, 131.8 KiB → ") and last.endswith("% saved)"), result.stderr


def test_recursive_round_trip_of_a_folder_tree(folder: Path, tmp_path: Path) -> None:
    before = tree(folder)
    (folder / "link").symlink_to(folder / "top.txt")

    done = run("compress", "-r", "--rm", "-a", "gzip", str(folder))

    assert sorted(tree(folder)) == sorted(name + ".gz" for name in before)
    assert "4 files" in done.stderr and "1 skipped" in done.stderr  # the symlink is not followed
    run("decompress", "-r", "--rm", str(folder))
    assert tree(folder) == {**before, "link": TEXT}  # the link points at top.txt again


def test_recursive_compress_skips_files_that_already_have_the_suffix(folder: Path) -> None:
    run("compress", "-r", str(folder))
    again = run("compress", "-r", "-v", str(folder), expect=1)  # the originals' outputs exist: refused
    assert "already has the .zst suffix" in again.output
    assert again.stderr.strip().splitlines()[-1] == "0 files, 0 B → 0 B; 4 failed, 4 skipped"
    assert not list(folder.rglob("*.zst.zst"))


def test_a_named_file_with_the_suffix_is_skipped_with_a_reason(tmp_path: Path) -> None:
    done = tmp_path / "done.zst"
    done.write_bytes(b"x")
    result = run("compress", str(done))
    assert f"skipped {done}: already has the .zst suffix" in result.stderr
    assert result.stderr.strip().splitlines()[-1] == "0 files, 0 B → 0 B; 1 skipped"
    run("compress", str(done), "-o", str(tmp_path / "again.zst"))  # an explicit output: done as asked
    assert (tmp_path / "again.zst").exists()


def test_a_folder_is_not_walked_without_recursive(folder: Path) -> None:
    result = run("compress", str(folder), expect=1)
    assert "pass -r/--recursive" in result.output


@pytest.mark.parametrize("algorithm, extension", ALGORITHMS)
def test_stdin_to_stdout_round_trip_is_byte_exact(algorithm: str, extension: str) -> None:
    data = os.urandom(3000) + TEXT
    packed = run("compress", "-a", algorithm, "-", stdin=data).stdout_bytes
    assert packed and packed != data

    plain = run("decompress", "-a", algorithm, "-", stdin=packed).stdout_bytes

    assert plain == data


@pytest.mark.parametrize("algorithm", ["zstd", "gzip"])
def test_no_argument_reads_stdin_and_the_format_is_found_by_magic(algorithm: str) -> None:
    packed = run("compress", "-a", algorithm, stdin=TEXT).stdout_bytes
    assert run("decompress", stdin=packed).stdout_bytes == TEXT


def test_a_brotli_pipe_without_algorithm_says_to_name_it() -> None:
    packed = run("compress", "-a", "brotli", "-", stdin=TEXT).stdout_bytes
    result = run("decompress", "-", stdin=packed, expect=1)
    assert "cannot tell the format" in result.output and "-a/--algorithm" in result.output


def test_stdout_flag_writes_several_files_one_after_the_other(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    a.write_bytes(b"first " * 100)
    b.write_bytes(b"second " * 100)

    packed = run("compress", "-c", str(a), str(b)).stdout_bytes

    assert run("decompress", "-", stdin=packed).stdout_bytes == a.read_bytes() + b.read_bytes()
    assert not (tmp_path / "a.zst").exists()


def test_output_to_a_file_from_stdin_and_back(tmp_path: Path) -> None:
    out = tmp_path / "piped.br"
    run("compress", "-a", "brotli", "-", "-o", str(out), stdin=TEXT)
    run("decompress", str(out))
    assert (tmp_path / "piped").read_bytes() == TEXT


@pytest.mark.parametrize("threads", ["0", "3"])
def test_threads_give_a_standard_zstd_stream(tmp_path: Path, threads: str) -> None:
    big = tmp_path / "big"
    big.write_bytes(os.urandom(1 << 16) * 40)  # 2.5 MiB: several zstd jobs

    run("compress", "-T", threads, str(big))

    assert zstandard.ZstdDecompressor().decompressobj().decompress((tmp_path / "big.zst").read_bytes()) == (
        big.read_bytes()
    )


def test_threads_for_brotli_are_ignored_with_a_note(tmp_path: Path) -> None:
    f = tmp_path / "f"
    f.write_bytes(TEXT)
    result = run("compress", "-a", "brotli", "-T", "4", str(f))
    assert "applies to zstd only" in result.stderr


@pytest.mark.parametrize("algorithm", [a for a, _ in ALGORITHMS])
def test_mode_and_mtime_are_kept_both_ways(tmp_path: Path, algorithm: str) -> None:
    script = tmp_path / "run.sh"
    script.write_bytes(b"#!/bin/sh\necho hello\n" * 50)
    script.chmod(0o755)
    mtime_ns = 1_600_000_000_123_456_789
    os.utime(script, ns=(mtime_ns, mtime_ns))

    run("compress", "-a", algorithm, "--rm", str(script))
    packed = next(tmp_path.iterdir())
    assert stat.S_IMODE(packed.stat().st_mode) == 0o755
    assert packed.stat().st_mtime_ns == mtime_ns

    run("decompress", str(packed))
    assert stat.S_IMODE(script.stat().st_mode) == 0o755
    assert script.stat().st_mtime_ns == mtime_ns
    assert script.read_bytes() == b"#!/bin/sh\necho hello\n" * 50


def test_rm_removes_the_source_only_after_success(tmp_path: Path) -> None:
    ok, blocked = tmp_path / "ok.txt", tmp_path / "blocked.txt"
    ok.write_bytes(TEXT)
    blocked.write_bytes(TEXT)
    (tmp_path / "blocked.txt.zst").write_bytes(b"precious")

    result = run("compress", "--rm", str(ok), str(blocked), expect=1)

    assert not ok.exists() and (tmp_path / "ok.txt.zst").exists()
    assert blocked.read_bytes() == TEXT  # its output was refused: the source stays
    assert (tmp_path / "blocked.txt.zst").read_bytes() == b"precious"
    assert "1 file, " in result.stderr.strip().splitlines()[-1]


def test_rm_keeps_a_corrupt_compressed_file(tmp_path: Path) -> None:
    f = tmp_path / "f.txt"
    f.write_bytes(TEXT)
    run("compress", "-a", "gzip", str(f))
    packed = tmp_path / "f.txt.gz"
    packed.write_bytes(packed.read_bytes()[:-20])
    f.unlink()

    run("decompress", "--rm", str(packed), expect=1)

    assert packed.exists() and not f.exists()


def test_existing_outputs_are_refused_without_force_and_the_rest_goes_on(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    a.write_bytes(TEXT)
    b.write_bytes(TEXT)
    (tmp_path / "a.zst").write_bytes(b"precious")

    result = run("compress", str(a), str(b), expect=1)

    lines = result.stderr.strip().splitlines()
    assert lines[0] == f"Error: {tmp_path / 'a.zst'} already exists: use -f/--force to overwrite it"
    assert lines[-1].startswith("1 file, ") and lines[-1].endswith("; 1 failed")
    assert (tmp_path / "a.zst").read_bytes() == b"precious"
    assert (tmp_path / "b.zst").exists()

    run("compress", "-f", str(a), str(b))
    assert (tmp_path / "a.zst").read_bytes() != b"precious"


def test_failures_are_listed_one_line_each_with_exit_1(tmp_path: Path) -> None:
    good = tmp_path / "good.txt"
    good.write_bytes(TEXT)
    result = run("compress", str(good), str(tmp_path / "nope1"), str(tmp_path / "nope2"), expect=1)
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 2 and all("no such file" in line for line in errors)
    assert result.stderr.strip().splitlines()[-1].endswith("; 2 failed")


def test_json_report_lists_failures_and_still_exits_1(tmp_path: Path) -> None:
    good = tmp_path / "good.txt"
    good.write_bytes(TEXT)
    result = run("compress", "--json", str(good), str(tmp_path / "nope"), expect=1)
    report = json.loads(result.stdout)
    assert report["totals"] == {
        "files": 1,
        "failed": 1,
        "skipped": 0,
        "bytes_in": len(TEXT),
        "bytes_out": report["files"][0]["bytes_out"],
    }
    assert "no such file" in report["failed"][0]["error"]


@pytest.mark.parametrize(
    "args, message",
    [
        (["-o", "x.zst", "a", "b"], "-o/--output takes one input"),
        (["-c", "--rm", "a"], "--rm removes inputs only"),
        (["-c", "--json", "a"], "--json writes to stdout"),
        (["-c", "-o", "x", "a"], "cannot be used together"),
        (["-a", "brotli", "-c", "a", "b"], "brotli streams cannot be joined"),
        (["-", "-"], "can be given once"),
        (["-T", "-1", "a"], "-T"),
    ],
)
def test_usage_errors_exit_2(tmp_path: Path, monkeypatch, args: list[str], message: str) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a").write_bytes(TEXT)
    (tmp_path / "b").write_bytes(TEXT)
    result = run("compress", *args, expect=2)
    assert message in result.output


@pytest.mark.parametrize("command", ["compress", "decompress"])
def test_help_has_examples(command: str) -> None:
    assert "Examples:\n    squeezer " + command in run(command, "--help").output


def test_the_offline_commands_module_does_not_load_the_codecs() -> None:
    # squeezer --help imports client.offline_cli: zstandard, brotli and zlib-ng load only when a command runs.
    code = "import sys, client.offline_cli; print(sorted(m for m in ('client.offline', 'zstandard', 'brotli') if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]", done.stdout
