"""Interrupted uploads: Ctrl-C, the journal, resuming (same command or --resume), changed files, kill -9."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from chalicelib import multipart
from client import journal
from client.cli import cli
from client.uploader import Uploader

from .fake_multipart import MultipartFakeApi, serve_multipart

THRESHOLD, PART = 1000, 256
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def quick_polls(monkeypatch):
    import client.jobs as jobs

    monkeypatch.setattr(jobs, "DEFAULT_POLL", jobs.Poll(first=0.01, cap=0.02))


@pytest.fixture
def api(serve) -> MultipartFakeApi:
    return serve_multipart(serve, threshold=THRESHOLD, part_size=PART)


def run(*args: str, expect: int = 0):
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert result.exit_code == expect, result.output
    return result


def data_of(size: int, seed: int = 7) -> bytes:
    return bytes((i * seed + i // 251) % 256 for i in range(size))


def journals() -> list[Path]:
    folder = journal.journal_dir()
    return sorted(folder.glob("*.json")) if folder.exists() else []


@pytest.fixture
def interrupt_at(monkeypatch):
    """``interrupt_at(n)``: the n-th part PUT from now raises KeyboardInterrupt (Ctrl-C); ``interrupt_at(None)``: none."""
    real = Uploader._put_buffer
    armed: dict[str, int | None] = {"nth": None}
    calls: list[str] = []

    def put(self, request, view, on_bytes, label):
        calls.append(label)
        if len(calls) == armed["nth"]:
            raise KeyboardInterrupt
        return real(self, request, view, on_bytes, label)

    def arm(nth: int | None) -> None:
        calls.clear()
        armed["nth"] = nth

    monkeypatch.setattr(Uploader, "_put_buffer", put)
    return arm


def test_ctrl_c_exits_130_keeps_the_journal_and_says_how_to_resume(api, tmp_path: Path, interrupt_at) -> None:
    (tmp_path / "big.bin").write_bytes(data_of(3000))
    interrupt_at(4)

    result = run("--api-url", api.url, "upload", str(tmp_path / "big.bin"), "--parallel", "1", expect=130)

    assert "interrupted: job j_1 is resumable; run: squeezer upload --resume j_1" in result.stderr
    lines = result.stderr.splitlines()  # (the fake server's own tracebacks may land on stderr too)
    assert not any(line.startswith(("Error:", "Aborted")) for line in lines)
    saved = json.loads(journals()[0].read_text())
    assert saved["job_id"] == "j_1"
    assert [p[0] for p in saved["files"][0]["parts"]] == [1, 2, 3]
    assert api.held("f_j_1_0") == {1, 2, 3}


def test_resume_by_id_sends_only_the_missing_parts(api, tmp_path: Path, interrupt_at, monkeypatch) -> None:
    data = data_of(3000)
    (tmp_path / "big.bin").write_bytes(data)
    interrupt_at(5)
    run("--api-url", api.url, "upload", str(tmp_path / "big.bin"), "--parallel", "1", expect=130)
    interrupt_at(None)
    before = len(api.part_puts)
    reads: list[int] = []
    import client.uploader as uploader_module

    real_read = uploader_module.read_part

    def counting(path, plan, number, buffer, *, mtime_ns):
        reads.append(number)
        return real_read(path, plan, number, buffer, mtime_ns=mtime_ns)

    monkeypatch.setattr(uploader_module, "read_part", counting)

    result = run("--api-url", api.url, "upload", "--resume", "j_1")

    assert "resuming job j_1 (1 of 1 files left)" in result.stderr
    assert result.stdout.strip() == "j_1"
    resent = [n for _, n, _ in api.part_puts[before:]]
    assert sorted(resent) == list(range(5, 13))  # parts 1-4 were held: neither read nor sent again
    assert sorted(reads) == sorted(resent)
    assert sum(b for _, _, b in api.part_puts[before:]) == len(data) - 4 * PART
    assert api.uploads["f_j_1_0"].completed_with == multipart.encode(multipart.crc64nvme(data))
    assert api.bodies["f_j_1_0"] == data
    assert journals() == []


def test_the_same_command_again_resumes_and_wait_and_download_work(
    api, tmp_path: Path, interrupt_at, monkeypatch
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "big.bin").write_bytes(data_of(2000))
    (src / "small.txt").write_bytes(b"small file\n" * 10)
    command = ["--api-url", api.url, "upload", str(src), "-a", "gzip", "-l", "9", "--parallel", "1"]
    interrupt_at(3)
    run(*command, expect=130)
    interrupt_at(None)
    assert "f_j_1_1" not in api.bodies  # the small file was never sent

    result = run(*command, "--download", str(tmp_path / "out"))

    assert "resuming job j_1 (2 of 2 files left)" in result.stderr
    assert api.renewed == ["f_j_1_1"]  # a fresh URL for the small file
    assert len(api.jobs) == 1
    assert (tmp_path / "out" / "src" / "big.bin.gz").is_file()
    assert (tmp_path / "out" / "src" / "small.txt.gz").is_file()
    assert journals() == []


def test_another_level_is_another_upload(api, tmp_path: Path, interrupt_at, monkeypatch) -> None:
    (tmp_path / "big.bin").write_bytes(data_of(2000))
    interrupt_at(2)
    run("--api-url", api.url, "upload", str(tmp_path / "big.bin"), "--parallel", "1", expect=130)
    interrupt_at(None)

    result = run("--api-url", api.url, "upload", str(tmp_path / "big.bin"), "-l", "4")

    assert "resuming" not in result.stderr and result.stdout.strip() == "j_2"
    assert [p.stem for p in journals()] == ["j_1"]  # the interrupted one can still be resumed

    listed = run("upload", "--list-resumable").stdout
    assert "j_1" in listed and "1 of 1 files left" in listed


def test_a_changed_file_is_refused_by_name_and_nothing_is_sent_for_it(
    api, tmp_path: Path, interrupt_at, monkeypatch
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "big.bin").write_bytes(data_of(2000))
    (src / "other.bin").write_bytes(data_of(1500, seed=3))
    command = ["--api-url", api.url, "upload", str(src), "--parallel", "1"]
    interrupt_at(2)
    run(*command, expect=130)
    interrupt_at(None)
    with open(src / "big.bin", "ab") as grown:
        grown.write(b"more")
    before = len(api.part_puts)

    result = run(*command, expect=1)

    big = str((src / "big.bin").resolve())
    assert f"src/big.bin: file_changed: {big} changed size since the upload started (2000 -> 2004 bytes)" in (
        result.stderr
    )
    assert "start a new upload" in result.stderr
    assert all(file_id != "f_j_1_0" for file_id, _, _ in api.part_puts[before:])  # nothing sent for it
    assert api.uploads["f_j_1_0"].aborted
    assert api.uploads["f_j_1_1"].completed_with  # the other file went on
    assert journals() == []  # the job cannot finish: the same command now starts a new one


def test_a_touched_file_is_refused_too(api, tmp_path: Path, interrupt_at, monkeypatch) -> None:
    path = tmp_path / "big.bin"
    path.write_bytes(data_of(2000))
    interrupt_at(2)
    run("--api-url", api.url, "upload", str(path), "--parallel", "1", expect=130)
    interrupt_at(None)
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))

    result = run("--api-url", api.url, "upload", "--resume", "j_1", expect=1)

    assert "was modified since the upload started" in result.stderr


def test_resume_of_an_unknown_job_lists_the_resumable_ones(api, tmp_path: Path, interrupt_at, monkeypatch) -> None:
    (tmp_path / "big.bin").write_bytes(data_of(2000))
    interrupt_at(2)
    run("--api-url", api.url, "upload", str(tmp_path / "big.bin"), "--parallel", "1", expect=130)
    interrupt_at(None)

    result = run("--api-url", api.url, "upload", "--resume", "j_nope", expect=1)
    assert "no resumable upload of job j_nope" in result.stderr and "(resumable: j_1)" in result.stderr

    result = run("--api-url", api.url, "upload", "--resume", "j_1", str(tmp_path / "big.bin"), expect=2)
    assert "--resume takes no PATHS" in result.output

    result = run("--api-url", api.url, "upload", "--resume", "j_1", "-a", "gzip", expect=2)
    assert "drop --algorithm" in result.output


def test_a_job_the_api_forgot_starts_a_new_upload(api, tmp_path: Path, interrupt_at, monkeypatch) -> None:
    (tmp_path / "big.bin").write_bytes(data_of(2000))
    interrupt_at(2)
    run("--api-url", api.url, "upload", str(tmp_path / "big.bin"), "--parallel", "1", expect=130)
    interrupt_at(None)
    del api.jobs["j_1"]

    result = run("--api-url", api.url, "upload", str(tmp_path / "big.bin"))

    assert "does not know job j_1 any more" in result.stderr and "starting a new upload" in result.stderr
    # A new job (the fake reuses the id it forgot), announced as new, uploaded whole.
    assert f"job {result.stdout.strip()}: 1 file(s)" in result.stderr and journals() == []
    assert api.bodies[next(iter(api.uploads))] == data_of(2000)


def test_nothing_left_to_send_just_removes_the_journal(api, tmp_path: Path, interrupt_at, monkeypatch) -> None:
    """Killed between the last part and removing the journal: the resume finds everything there."""
    path = tmp_path / "big.bin"
    path.write_bytes(data_of(2000))
    interrupt_at(2)
    run("--api-url", api.url, "upload", str(path), "--parallel", "1", expect=130)
    interrupt_at(None)
    run("--api-url", api.url, "upload", "--resume", "j_1")  # finishes it
    (journal.journal_dir() / "j_1.json").write_text(json.dumps(_stale_journal(api.url, path)))
    before = len(api.part_puts)

    result = run("--api-url", api.url, "upload", str(path), "--wait")

    assert "resuming job j_1" in result.stderr and len(api.part_puts) == before
    assert journals() == []


def _stale_journal(url: str, path: Path) -> dict:
    stat = path.stat()
    return {
        "version": 1,
        "job_id": "j_1",
        "api_url": url,
        "created_at": 1.0,
        "command": {"paths": [str(path.resolve())], "algorithm": "zstd", "level": None},
        "files": [
            {
                "path": str(path.resolve()),
                "name": path.name,
                "size": stat.st_size,
                "mtime_ns": stat.st_mtime_ns,
                "file_id": "f_j_1_0",
                "kind": "multipart",
                "done": False,
                "upload_id": "up-f_j_1_0",
                "part_size": PART,
                "part_count": 8,
                "parts": [],
            }
        ],
    }


@pytest.mark.integration
def test_kill_9_mid_upload_then_the_same_command_resumes(serve, tmp_path: Path) -> None:
    """A real ``python -m client upload`` killed with SIGKILL while parts are in flight."""
    part = 64 * 1024
    api = serve_multipart(serve, threshold=part, part_size=part, put_delay=0.15)
    data = os.urandom(3 * 1024 * 1024)  # 48 parts
    path = tmp_path / "big.bin"
    path.write_bytes(data)
    state = tmp_path / "state"
    env = {
        **os.environ,
        "SQUEEZER_STATE_DIR": str(state),
        "SQUEEZER_API_URL": api.url,
        "PYTHONPATH": str(REPO),
    }
    command = [sys.executable, "-m", "client", "upload", str(path), "--parallel", "4", "--no-checksum"]
    process = subprocess.Popen(command, env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        while len(api.uploads) == 0 or len(api.held("f_j_1_0")) < 12:
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "the upload did not start"
            time.sleep(0.02)
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait(timeout=10)
    assert process.returncode == -signal.SIGKILL
    held_at_kill = api.held("f_j_1_0")
    assert len(held_at_kill) < 48, "the kill came too late to test anything"
    saved = journal.JournalStore(state / "uploads").load("j_1")  # the snapshot and the events logged since
    assert saved is not None and saved.files[0].parts, "the journal has the parts sent before the kill"
    assert (state / "uploads" / "j_1.log").stat().st_size, "parts are appended to the log, not rewritten"
    time.sleep(0.3)  # let the server finish storing the parts whose bodies had arrived
    held = api.held("f_j_1_0")
    before = len(api.part_puts)

    resumed = subprocess.run(command, env=env, cwd=REPO, capture_output=True, text=True, timeout=60)

    assert resumed.returncode == 0, resumed.stderr
    assert "resuming job j_1 (1 of 1 files left)" in resumed.stderr
    sent_again = {n for _, n, _ in api.part_puts[before:]}
    assert sent_again == set(range(1, 49)) - held  # only what storage did not hold
    assert api.bodies["f_j_1_0"] == data
    assert api.uploads["f_j_1_0"].completed_with == multipart.encode(multipart.crc64nvme(data))
    assert not (state / "uploads" / "j_1.json").exists()


def test_a_job_another_process_is_uploading_is_not_resumed_twice(api, tmp_path: Path, interrupt_at) -> None:
    (tmp_path / "big.bin").write_bytes(data_of(2000))
    interrupt_at(2)
    run("--api-url", api.url, "upload", str(tmp_path / "big.bin"), "--parallel", "1", expect=130)
    interrupt_at(None)
    held = journal.JournalStore.default().lock("j_1")  # as the other process would
    assert held is not None
    try:
        result = run("--api-url", api.url, "upload", str(tmp_path / "big.bin"), expect=1)
        assert "job j_1 is being uploaded by another squeezer process right now" in result.stderr
    finally:
        os.close(held)

    listed = json.loads(run("upload", "--list-resumable", "--json").stdout)
    assert [(j["job_id"], j["files_left"]) for j in listed["jobs"]] == [("j_1", 1)]
    run("--api-url", api.url, "upload", "--resume", "j_1")
    assert journals() == [] and not list(journal.journal_dir().glob("*.lock"))
