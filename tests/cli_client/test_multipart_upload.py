"""``squeezer upload`` of files the API wants in parts, against a fake API with tiny parts."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner

import client.uploader as uploader_module
from chalicelib import multipart
from client import journal
from client.cli import cli

from .conftest import Reply
from .fake_multipart import MultipartFakeApi, bad_digest, expired, serve_multipart

THRESHOLD, PART = 1000, 256


@pytest.fixture(autouse=True)
def quick(monkeypatch):
    import client.jobs as jobs
    import client.transfer as transfer

    monkeypatch.setattr(jobs, "DEFAULT_POLL", jobs.Poll(first=0.01, cap=0.02))
    # No real sleeping between retries.
    monkeypatch.setattr(transfer.RetryPolicy, "__init__", _fast_policy_init(transfer.RetryPolicy.__init__))


def _fast_policy_init(original):
    def init(self, *args, **kwargs):
        original(self, *args, **kwargs)
        object.__setattr__(self, "sleep", lambda seconds: None)

    return init


@pytest.fixture
def api(serve) -> MultipartFakeApi:
    return serve_multipart(serve, threshold=THRESHOLD, part_size=PART)


def run(*args: str, expect: int = 0):
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert result.exit_code == expect, result.output
    return result


def data_of(size: int, seed: int = 7) -> bytes:
    return bytes((i * seed + i // 251) % 256 for i in range(size))


def journal_files() -> list[Path]:
    folder = journal.journal_dir()
    return sorted(folder.glob("*.json")) if folder.exists() else []


@pytest.mark.parametrize(
    "size, lengths",
    [
        (THRESHOLD + 1, [256, 256, 256, 233]),  # one byte over the threshold
        (1025, [256, 256, 256, 256, 1]),  # a last part of one byte
        (1280, [256] * 5),  # an exact multiple
    ],
)
def test_parts_follow_the_servers_plan_and_complete_with_the_whole_files_crc(
    api, tmp_path: Path, size: int, lengths: list[int]
) -> None:
    data = data_of(size)
    (tmp_path / "big.bin").write_bytes(data)

    run("--api-url", api.url, "upload", str(tmp_path / "big.bin"), "--parallel", "3")

    upload = next(iter(api.uploads.values()))
    assert [len(upload.parts[n][0]) for n in sorted(upload.parts)] == lengths
    assert sorted(n for _, n, _ in api.part_puts) == list(range(1, len(lengths) + 1))  # each part sent once
    assert upload.completed_with == multipart.encode(multipart.crc64nvme(data))
    assert api.bodies[upload.file_id] == data
    assert journal_files() == []  # finished: no journal left


def test_a_file_at_the_threshold_is_one_put_with_its_sha256(api, tmp_path: Path) -> None:
    (tmp_path / "edge.bin").write_bytes(data_of(THRESHOLD))
    (tmp_path / "big.bin").write_bytes(data_of(THRESHOLD * 3))

    run("--api-url", api.url, "upload", str(tmp_path), "--wait")

    files = {f["name"]: f for f in api.jobs["j_1"]["files"]}
    assert files[f"{tmp_path.name}/edge.bin"]["sha256"] is not None
    assert api.single_puts == [files[f"{tmp_path.name}/edge.bin"]["file_id"]]
    assert len(api.uploads) == 1


def test_no_sha256_pass_over_a_file_above_the_client_threshold(api, tmp_path: Path, monkeypatch) -> None:
    """The client skips the sha256 read for files it expects in parts (64 MiB by default; here 1000 bytes)."""
    monkeypatch.setattr(uploader_module, "CHECKSUM_UP_TO", THRESHOLD)
    reads: list[str] = []
    real_open = open

    def counting_open(path, mode="r", *args, **kwargs):
        if "b" in mode:
            reads.append(Path(path).name)
        return real_open(path, mode, *args, **kwargs)

    (tmp_path / "big.bin").write_bytes(data_of(3000))
    monkeypatch.setattr("builtins.open", counting_open)

    run("--api-url", api.url, "upload", str(tmp_path / "big.bin"))

    assert api.jobs["j_1"]["files"][0]["sha256"] is None
    # Read once per part to send it, never a whole pass for a checksum first.
    assert reads.count("big.bin") == 12


def test_part_crcs_combine_without_reading_a_part_twice(api, tmp_path: Path, monkeypatch) -> None:
    data = data_of(5000)
    (tmp_path / "big.bin").write_bytes(data)
    reads: list[int] = []
    real = uploader_module.read_part

    def counting(path, plan, number, buffer, *, mtime_ns):
        reads.append(number)
        return real(path, plan, number, buffer, mtime_ns=mtime_ns)

    monkeypatch.setattr(uploader_module, "read_part", counting)

    run("--api-url", api.url, "upload", str(tmp_path / "big.bin"), "--no-checksum")

    upload = next(iter(api.uploads.values()))
    assert sorted(reads) == list(range(1, upload.part_count + 1))  # each part read exactly once
    signed = {n for _, numbers in api.signed for n in numbers}
    assert signed == set(range(1, upload.part_count + 1))
    for n in range(1, upload.part_count + 1):
        piece = data[(n - 1) * PART : n * PART]
        assert api.declared[(upload.file_id, n)] == multipart.encode(multipart.crc64nvme(piece))
    assert upload.completed_with == multipart.encode(multipart.crc64nvme(data))


def test_signing_is_batched_and_never_far_ahead(api, tmp_path: Path) -> None:
    (tmp_path / "big.bin").write_bytes(data_of(PART * 40))

    run("--api-url", api.url, "upload", str(tmp_path / "big.bin"), "--parallel", "4")

    # Only parts whose data is read (one per thread at most) are signed at once.
    assert all(1 <= len(numbers) <= 4 for _, numbers in api.signed)
    assert sum(len(numbers) for _, numbers in api.signed) == 40


def test_a_failing_part_is_retried(api, tmp_path: Path) -> None:
    data = data_of(2000)
    (tmp_path / "big.bin").write_bytes(data)
    api.faults[("f_j_1_0", 2)] = [Reply(503, b"<Error><Code>SlowDown</Code></Error>"), Reply(drop=True)]

    result = run("--api-url", api.url, "upload", str(tmp_path / "big.bin"))

    assert [n for _, n, _ in api.part_puts].count(2) == 3
    assert "retrying part 2 of big.bin" in result.stderr
    assert api.bodies["f_j_1_0"] == data


def test_an_expired_part_url_is_signed_again(api, tmp_path: Path) -> None:
    (tmp_path / "big.bin").write_bytes(data_of(2000))
    api.faults[("f_j_1_0", 3)] = [expired()]

    result = run("--api-url", api.url, "upload", str(tmp_path / "big.bin"))

    assert sum(numbers.count(3) for _, numbers in api.signed) == 2
    assert "signing it again" in result.stderr
    assert "f_j_1_0" in api.bodies


def test_bad_digest_is_read_and_sent_again_once(api, tmp_path: Path, monkeypatch) -> None:
    data = data_of(2000)
    (tmp_path / "big.bin").write_bytes(data)
    api.faults[("f_j_1_0", 2)] = [bad_digest()]
    reads: list[int] = []
    real = uploader_module.read_part

    def counting(path, plan, number, buffer, *, mtime_ns):
        reads.append(number)
        return real(path, plan, number, buffer, mtime_ns=mtime_ns)

    monkeypatch.setattr(uploader_module, "read_part", counting)

    result = run("--api-url", api.url, "upload", str(tmp_path / "big.bin"))

    assert reads.count(2) == 2 and "BadDigest" in result.stderr
    assert api.bodies["f_j_1_0"] == data


def test_bad_digest_twice_fails_the_file_clearly_and_keeps_the_journal(api, tmp_path: Path) -> None:
    (tmp_path / "big.bin").write_bytes(data_of(2000))
    (tmp_path / "small.txt").write_bytes(b"small")
    api.faults[("f_j_1_0", 2)] = [bad_digest(), bad_digest()]

    result = run("--api-url", api.url, "upload", str(tmp_path / "big.bin"), str(tmp_path / "small.txt"), expect=1)

    assert "1 of 2 file(s) failed" in result.stderr
    assert "big.bin: bad_digest: part 2: storage refused it twice (BadDigest)" in result.stderr
    assert not api.uploads["f_j_1_0"].completed_with
    assert "f_j_1_1" in api.bodies  # the other file went through
    assert "run the same command or 'squeezer upload --resume j_1'" in result.stderr
    assert len(journal_files()) == 1


def test_the_journal_is_private_holds_no_token_and_goes_at_the_end(api, tmp_path: Path, monkeypatch) -> None:
    from client.config import check_token

    token = "sqz_abcdefghijkl_" + "A" * 43
    check_token(token)
    (tmp_path / "big.bin").write_bytes(data_of(3000))
    seen: list[tuple[int, dict]] = []

    def look(file_id: str, number: int) -> None:
        if number == 5:
            path = journal_files()[0]
            seen.append((stat.S_IMODE(os.stat(path).st_mode), path.read_text()))

    api.on_part_put = look

    run("--api-url", api.url, "--token", token, "upload", str(tmp_path / "big.bin"), "-l", "5")

    assert seen, "the journal existed during the upload"
    mode, text = seen[0]
    assert mode == 0o600
    assert stat.S_IMODE(os.stat(journal.journal_dir()).st_mode) == 0o700
    assert api.url in text and "j_1" in text and str((tmp_path / "big.bin").resolve()) in text
    assert '"level":5' in text and '"kind":"multipart"' in text
    assert token not in text and "secret" not in text  # neither the token nor a presigned URL
    assert journal_files() == []


def test_the_state_folder_follows_squeezer_state_dir_and_xdg(tmp_path: Path) -> None:
    assert journal.journal_dir({"SQUEEZER_STATE_DIR": str(tmp_path)}) == tmp_path / "uploads"
    assert journal.journal_dir({"XDG_STATE_HOME": str(tmp_path)}) == tmp_path / "squeezer" / "uploads"
    assert journal.journal_dir({"XDG_STATE_HOME": "relative"}) == Path.home() / ".local/state/squeezer/uploads"


def test_one_large_file_keeps_every_thread_busy(api, tmp_path: Path) -> None:
    import threading

    (tmp_path / "big.bin").write_bytes(data_of(PART * 16))
    together = threading.Condition()
    now, peak = [0], [0]

    def held_until_four_are_in_flight(file_id: str, number: int) -> None:
        # Each part PUT waits (up to 5 s) until four are in flight at once, so
        # the figure does not depend on how fast a loaded machine dispatches:
        # a client that keeps fewer than four going sees peak < 4 and fails.
        with together:
            now[0] += 1
            peak[0] = max(peak[0], now[0])
            together.notify_all()
            together.wait_for(lambda: peak[0] >= 4, timeout=5)
            now[0] -= 1

    api.on_part_put = held_until_four_are_in_flight

    run("--api-url", api.url, "upload", str(tmp_path / "big.bin"), "--parallel", "4")

    assert peak[0] == 4
