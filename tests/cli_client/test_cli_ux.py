"""Issue 13's CLI behaviours: summary and verbosity, safe downloads, selection, defaults, polling, cancel."""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from chalicelib import multipart
from client import jobs
from client.api import ApiClient
from client.cli import cli
from client.errors import ApiError, ApiUnreachable
from client.polling import Patience
from client.progress import Progress, SlidingRate
from client.selection import Selection

from .conftest import Reply, Seen, scripted
from .test_upload_cli import FakeApi, make_tree

SUMMARY = re.compile(r"^4 files, [\d.]+ (KiB|B) → [\d.]+ (KiB|B) \(\d+\.\d% saved\) in \d+\.\d s, .+/s", re.M)


class StatusFieldsApi(FakeApi):
    """The fake API plus the status fields of issue 13: result_crc64nvme, mode, mtime."""

    def _status(self, job_id: str) -> Reply:
        reply = super()._status(job_id)
        if reply.status != 200:
            return reply
        body = json.loads(reply.body)
        for f in body["files"]:
            if f["state"] == "completed":
                f["result_crc64nvme"] = multipart.encode(multipart.crc64nvme(self._result(f["file_id"])))
                f["mode"] = 0o750 if f["name"].endswith(".txt") else 0o640
                f["mtime"] = 1_600_000_000.0
            else:
                f.update(result_crc64nvme=None, mode=None, mtime=None)
        return Reply.json(200, body)


@pytest.fixture
def api(serve) -> StatusFieldsApi:
    fake = StatusFieldsApi()
    fake.url = serve(fake).url
    return fake


@pytest.fixture(autouse=True)
def quick_polls(monkeypatch):
    monkeypatch.setattr(jobs, "DEFAULT_POLL", jobs.Poll(first=0.01, cap=0.02))


def run(*args: str, expect: int = 0, input: str | None = None):
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False, input=input)
    assert result.exit_code == expect, result.output
    return result


# -- output ----------------------------------------------------------------------


def test_default_output_is_one_summary_line_and_no_per_file_lines(api, tmp_path: Path) -> None:
    make_tree(tmp_path / "src")
    result = run("--api-url", api.url, "upload", str(tmp_path / "src"), "--download", str(tmp_path / "out"))
    assert SUMMARY.search(result.stderr), result.stderr
    assert "; 4 downloaded" in result.stderr
    assert "uploaded src/" not in result.stderr and "compressed src/" not in result.stderr
    assert "saved " not in result.stderr.replace("% saved", "")


def test_verbose_adds_per_file_lines_and_quiet_leaves_only_the_summary(api, tmp_path: Path) -> None:
    make_tree(tmp_path / "src")
    loud = run("-v", "--api-url", api.url, "upload", str(tmp_path / "src"), "--download", str(tmp_path / "a"))
    for word in ("uploaded src/notes.txt", "compressed src/notes.txt", "saved "):
        assert word in loud.stderr, loud.stderr
    quiet = run("-q", "--api-url", api.url, "upload", str(tmp_path / "src"), "--new", "--download", str(tmp_path / "b"))
    assert quiet.stderr.strip().splitlines() == [
        SUMMARY.search(quiet.stderr).group(0) + quiet.stderr.split("/s", 1)[1].strip()
    ], quiet.stderr
    assert len(quiet.stderr.strip().splitlines()) == 1


def test_json_carries_the_summary(api, tmp_path: Path) -> None:
    make_tree(tmp_path / "src")
    result = run("--api-url", api.url, "upload", str(tmp_path / "src"), "--wait", "--json")
    summary = json.loads(result.stdout)["summary"]
    assert summary["files"] == 4 and summary["bytes_out"] > 0 and 0 < summary["saved"] < 1
    assert set(summary) >= {"bytes_in", "elapsed_seconds", "bytes_per_second", "up_to_date", "kept"}


def test_the_rate_window_does_not_spike_on_a_burst() -> None:
    now = [0.0]
    rate = SlidingRate(window=10.0, floor=1.0, clock=lambda: now[0])
    now[0] = 0.01
    rate.record(100)  # 100 files seen done by one poll, 10 ms after the start
    assert rate.rate() == pytest.approx(100.0)  # over the 1 s floor, not 10,000/s
    for second in range(1, 30):
        now[0] = float(second)
        rate.record(100 + second * 5)
    assert rate.rate() == pytest.approx(5.0, rel=0.05)  # the last 10 s only


# -- safe downloads ----------------------------------------------------------------


def test_a_second_download_skips_everything_and_restores_mode_and_mtime(api, tmp_path: Path) -> None:
    make_tree(tmp_path / "src")
    out = tmp_path / "out"
    run("--api-url", api.url, "upload", str(tmp_path / "src"), "--download", str(out))
    notes = out / "src" / "notes.txt.zst"
    assert (os.stat(notes).st_mode & 0o777, os.stat(notes).st_mtime) == (0o750, 1_600_000_000.0)
    api_gets = sum(1 for _ in api.bodies)

    again = run("--api-url", api.url, "download", "j_1", "-o", str(out))

    assert again.stdout == ""  # nothing saved
    assert "0 downloaded" not in again.stderr and "all 4 already up to date" in again.stderr, again.stderr
    assert sum(1 for _ in api.bodies) == api_gets


def test_a_different_existing_file_is_refused_then_kept_or_overwritten(api, tmp_path: Path) -> None:
    make_tree(tmp_path / "src")
    run("--api-url", api.url, "upload", str(tmp_path / "src"), "--wait")
    target = tmp_path / "out" / "src" / "notes.txt.zst"
    target.parent.mkdir(parents=True)
    target.write_bytes(b"my own file")

    refused = run("--api-url", api.url, "download", "j_1", "-o", str(tmp_path / "out"), expect=1)
    assert "1 file(s) already exist and differ" in refused.stderr and "--force" in refused.stderr
    assert "--no-clobber" in refused.stderr and str(target) in refused.stderr
    assert target.read_bytes() == b"my own file"
    assert not (tmp_path / "out" / "src" / "sub").exists()  # nothing at all was downloaded

    kept = run("-v", "--api-url", api.url, "download", "j_1", "-o", str(tmp_path / "out"), "--no-clobber")
    assert target.read_bytes() == b"my own file"
    assert "3 downloaded, 1 existing kept (--no-clobber)" in kept.stderr and f"kept {target}" in kept.stderr

    forced = run("--api-url", api.url, "download", "j_1", "-o", str(tmp_path / "out"), "--force")
    assert target.read_bytes() != b"my own file" and "1 downloaded, 3 already up to date" in forced.stderr


def test_force_and_no_clobber_together_are_a_usage_error(api, tmp_path: Path) -> None:
    result = run("--api-url", api.url, "download", "j_1", "-o", str(tmp_path), "--force", "--no-clobber", expect=2)
    assert "contradict" in result.output


def test_refused_results_say_so_in_a_few_lines(serve, tmp_path: Path) -> None:
    files = [
        {
            "file_id": f"f{i}",
            "name": f"n{i}",
            "state": "completed",
            "size": 10,
            "compressed_size": 5,
            "algorithm": "zstd",
            "download_url": "",
            "result_crc64nvme": None,
        }
        for i in range(40)
    ]
    status = {"job_id": "j_1", "state": "cancelled", "cancelled_at": 2.0, "files": files}
    denied = b"<Error><Code>SignatureDoesNotMatch</Code><Message>Check your AWS Secret Access Key</Message></Error>"

    def handler(seen: Seen) -> Reply:
        return Reply.json(200, status) if seen.path.startswith("/jobs") else Reply(403, denied)

    server = serve(handler)
    for f in files:
        f["download_url"] = f"{server.url}/result/{f['file_id']}"
    result = run("--api-url", server.url, "download", "j_1", "-o", str(tmp_path), expect=1)
    assert result.stderr.count("Secret Access Key") == 0
    assert len(result.stderr.splitlines()) < 20, result.stderr
    assert "... and 37 more downloads failed with result_unavailable" in result.stderr


# -- selection -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "rules, path, wanted",
    [
        ([("include", "*.py")], "a/b.py", True),
        ([("include", "*.py")], "a/b.txt", False),  # only includes: unmatched files are left out
        ([("exclude", "*.log")], "x/y.log", False),
        ([("exclude", "*.log")], "x/y.txt", True),
        ([("include", "keep.log"), ("exclude", "*.log")], "d/keep.log", True),  # first match wins
        ([("exclude", "*.log"), ("include", "keep.log")], "d/keep.log", False),
        ([("exclude", "node_modules")], "web/node_modules/x/index.js", False),
        ([("exclude", "docs/api")], "docs/api/x.md", False),
        ([("exclude", "docs/api")], "other/docs/api/x.md", True),  # with '/': from the folder named
        ([("include", "src/**/*.py"), ("exclude", "*")], "src/a/b/c.py", True),
        ([("include", "src/**/*.py"), ("exclude", "*")], "src/c.py", True),  # '**/' also matches no folder
        ([("include", "src/*.py"), ("exclude", "*")], "src/a/c.py", False),  # '*' stays within a folder
        ([("exclude", "build/")], "build", True),  # trailing '/': folders only
        ([("exclude", "build/")], "build/out.o", False),
        ([("exclude", "[ab].txt")], "b.txt", False),
    ],
)
def test_selection_rules(rules, path, wanted) -> None:
    assert Selection.of(rules).wants(path) is wanted


def test_include_exclude_keep_command_line_order_and_dry_run_sends_nothing(api, tmp_path: Path) -> None:
    make_tree(tmp_path / "src")
    args = ["--api-url", api.url, "upload", str(tmp_path / "src"), "--dry-run"]

    first = run(*args, "--include", "data.json", "--exclude", "sub/*", "--json")
    names = [f["name"] for f in json.loads(first.stdout)["files"]]
    assert names == ["src/notes.txt", "src/sub/data.json", "src/日本/résumé.txt"]

    reversed_order = run(*args, "--exclude", "sub/*", "--include", "data.json")
    assert "data.json" not in reversed_order.stdout and "notes.txt" in reversed_order.stdout
    assert "dry run: would upload 2 files" in reversed_order.stderr
    assert api.jobs == {}  # no job, no request


def test_symlink_policy(api, tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "a.txt").write_text("a")
    (tmp_path / "outside.txt").write_text("o")
    (tmp_path / "src" / "link_in").symlink_to(tmp_path / "src" / "a.txt")
    (tmp_path / "src" / "link_out").symlink_to(tmp_path / "outside.txt")
    (tmp_path / "more").mkdir()
    (tmp_path / "more" / "m.txt").write_text("m")
    (tmp_path / "src" / "dir").symlink_to(tmp_path / "more", target_is_directory=True)

    def names(*extra: str) -> list[str]:
        result = run("--api-url", api.url, "upload", str(tmp_path / "src"), "--dry-run", "--json", *extra)
        return sorted(f["name"] for f in json.loads(result.stdout)["files"])

    assert names() == ["src/a.txt", "src/link_in"]
    assert names("--symlinks", "skip") == ["src/a.txt"]
    assert names("--symlinks", "follow") == ["src/a.txt", "src/dir/m.txt", "src/link_in", "src/link_out"]


# -- config defaults -------------------------------------------------------------------------


def _profile(home: Path, **values) -> None:
    path = home / ".config" / "squeezer" / "config.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    body = "".join(f"{k} = {json.dumps(v)}\n" for k, v in values.items())
    path.write_text("[profiles.default]\n" + body)
    path.chmod(0o600)


@pytest.mark.parametrize(
    "profile, env, flags, expected",
    [
        ({}, {}, [], ("zstd", 3, 8)),
        ({"algorithm": "brotli", "level": 5, "parallel": 3}, {}, [], ("brotli", 5, 3)),
        (
            {"algorithm": "brotli", "level": 5},
            {"SQUEEZER_ALGORITHM": "gzip", "SQUEEZER_LEVEL": "2"},
            [],
            ("gzip", 2, 8),
        ),
        (
            {"algorithm": "brotli", "level": 5, "parallel": 3},
            {"SQUEEZER_PARALLEL": "4"},
            ["-a", "zstd"],
            ("zstd", 3, 4),
        ),
        ({"level": 9}, {}, ["-a", "zstd", "-l", "7", "--parallel", "2"], ("zstd", 7, 2)),
        ({"algorithm": "gzip"}, {"SQUEEZER_LEVEL": "4"}, [], ("gzip", 4, 8)),
    ],
)
def test_flags_beat_environment_beat_profile_beat_built_in(
    api, tmp_path: Path, isolated_home: Path, monkeypatch, profile, env, flags, expected
) -> None:
    _profile(isolated_home, **profile)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    make_tree(tmp_path / "src")
    seen_parallel = []
    import client.uploader as uploader_module  # the upload command imports Uploader from it when it runs

    real = uploader_module.Uploader

    def spy(**kwargs):
        seen_parallel.append(kwargs["parallel"])
        return real(**kwargs)

    monkeypatch.setattr(uploader_module, "Uploader", spy)
    run("--api-url", api.url, "upload", str(tmp_path / "src"), "--no-checksum", *flags)
    job = api.jobs["j_1"]
    assert (job["algorithm"], job["level"], seen_parallel[0]) == expected


def test_a_bad_default_names_where_it_came_from(api, tmp_path: Path, isolated_home: Path, monkeypatch) -> None:
    _profile(isolated_home, algorithm="gzip", level=42)
    make_tree(tmp_path / "src")
    result = run("--api-url", api.url, "upload", str(tmp_path / "src"), expect=2)
    assert "profile 'default'" in result.stderr and "level" in result.stderr
    monkeypatch.setenv("SQUEEZER_PARALLEL", "many")
    result = run("--api-url", api.url, "upload", str(tmp_path / "src"), "-l", "1", expect=2)
    assert "SQUEEZER_PARALLEL: 'many' is not an integer" in result.stderr


# -- polling and status -------------------------------------------------------------------------


class FlakyApi:
    """get_job: refused twice, a 503, then the job."""

    def __init__(self) -> None:
        self.calls = 0

    def get_job(self, job_id):
        self.calls += 1
        if self.calls <= 2:
            raise ApiUnreachable("http://127.0.0.1:1", "connection refused")
        if self.calls == 3:
            raise ApiError(503, "http_503", "unavailable")
        return {"job_id": job_id, "files": [{"file_id": "f", "name": "a", "state": "completed", "size": 1}]}


def test_waiting_retries_a_refused_connection_with_backoff(capsys) -> None:
    api = FlakyApi()
    pauses: list[float] = []
    patience = Patience(first=1.0, factor=2.0, sleep=pauses.append, clock=lambda: 0.0)
    status = jobs.wait_for_job(api, "j_1", progress=Progress(bars=False), patience=patience)
    assert status["files"][0]["state"] == "completed" and pauses == [1.0, 2.0, 4.0]
    err = capsys.readouterr().err
    assert "(connection refused); waiting for job j_1: trying again in 1 s" in err


class RefusingApi:
    def get_job(self, job_id):
        raise ApiUnreachable("http://127.0.0.1:1", "connection refused")


def test_waiting_gives_up_after_the_bound_and_says_what_it_waited_for() -> None:
    api = RefusingApi()
    now = [0.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    patience = Patience(first=50.0, give_up_after=60.0, sleep=sleep, clock=lambda: now[0])
    with pytest.raises(ApiUnreachable, match=r"gave up after \d+ s waiting for job j_1"):
        jobs.wait_for_job(api, "j_1", progress=Progress(bars=False), patience=patience)


def test_cannot_connect_to_a_loopback_url_says_make_up(closed_port_url: str) -> None:
    result = run("--api-url", closed_port_url, "jobs", expect=3)
    assert "make up" in result.stderr


def _job(states, *, cancelled_at=None, created_at=None):
    return {
        "job_id": "j_1",
        "algorithm": "zstd",
        "level": 3,
        "state": "processing",
        "created_at": time.time() if created_at is None else created_at,
        "cancelled_at": cancelled_at,
        "counts": {},
        "totals": {"files": len(states)},
        "files": [
            {
                "file_id": f"f{i}",
                "name": f"n{i}",
                "state": s,
                "size": 10,
                "compressed_size": 5 if s == "completed" else None,
                "ratio": 0.5 if s == "completed" else None,
                "error": {"code": "codec_error", "message": "broken"} if s == "failed" else None,
            }
            for i, s in enumerate(states)
        ],
    }


def test_status_says_which_files_were_never_uploaded_and_failed_lists_only_failures(serve) -> None:
    server = serve(scripted(Reply.json(200, _job(["completed", "failed", "pending", "pending"], created_at=1.0))))
    shown = run("--api-url", server.url, "status", "j_1", expect=1)
    assert "2 of 4 file(s) were never uploaded (first: n2), and their upload window is over" in shown.stderr
    failed = run("--api-url", server.url, "status", "j_1", "--failed", expect=1)
    assert [line.split() for line in failed.stdout.splitlines()[2:]] == [["n1", "10", "B", "codec_error:", "broken"]]


def test_jobs_have_labelled_columns_and_no_extra_one_for_cancelled(serve) -> None:
    listing = {
        "jobs": [
            {
                "job_id": "j_1",
                "algorithm": "zstd",
                "level": 3,
                "file_count": 316,
                "total_size": 2048,
                "created_at": time.time() - 190,
                "cancelled_at": time.time(),
            },
            {
                "job_id": "j_2",
                "algorithm": "gzip",
                "level": 6,
                "file_count": 2,
                "total_size": 10,
                "created_at": time.time() - 7200,
                "cancelled_at": None,
            },
        ],
        "next_cursor": None,
    }
    summaries = {
        "j_1": {"state": "cancelled", "totals": {"ratio": 0.25, "bytes_out": 10}},
        "j_2": {"state": "completed", "totals": {"ratio": 0.5, "bytes_out": 5}},
    }

    def handler(seen: Seen) -> Reply:
        if seen.path.endswith("/summary"):
            return Reply.json(200, summaries[seen.path.split("/")[2]])
        return Reply.json(200, listing)

    result = run("--api-url", serve(handler).url, "jobs")
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["JOB", "STATE", "ALGORITHM", "FILES", "RATIO", "SIZE", "AGE"]
    assert lines[2].split() == ["j_1", "cancelled", "zstd/3", "316", "25.0%", "2.0", "KiB", "3", "min", "ago"]
    assert lines[3].split()[:2] == ["j_2", "completed"] and lines[3].endswith("2 h ago")


# -- cancel and interruptions -------------------------------------------------------------------------


def _cancel_server(serve, *, cancelled: bool = False):
    state = {"cancelled": cancelled}

    def handler(seen: Seen) -> Reply:
        if seen.method == "DELETE":
            state["cancelled"] = True
        body = _job(["completed", "queued", "queued"], cancelled_at=2.0 if state["cancelled"] else None)
        if state["cancelled"]:
            for f in body["files"][1:]:
                f["state"] = "cancelled"
        return Reply.json(200, body)

    return serve(handler)


def test_cancel_needs_yes_when_stdin_is_not_a_terminal(serve) -> None:
    server = _cancel_server(serve)
    result = run("--api-url", server.url, "cancel", "j_1", expect=2)
    assert "pass --yes" in result.stderr
    assert all(s.method == "GET" for s in server.seen)


def test_cancel_asks_and_prints_one_line(serve, monkeypatch) -> None:
    import client.cli as cli_module

    monkeypatch.setattr(cli_module, "_stdin_is_terminal", lambda: True)
    server = _cancel_server(serve)
    declined = run("--api-url", server.url, "cancel", "j_1", input="n\n")
    assert "not cancelled" in declined.stderr and all(s.method == "GET" for s in server.seen)
    accepted = run("--api-url", server.url, "cancel", "j_1", input="y\n")
    assert "Cancel job j_1? 2 of 3 file(s) are unfinished" in accepted.stderr
    assert "cancelled job j_1: 1 completed kept, 2 cancelled" in accepted.stderr
    assert accepted.stdout == ""


def test_cancel_with_yes_then_again_is_quiet_success(serve) -> None:
    server = _cancel_server(serve)
    first = run("--api-url", server.url, "cancel", "j_1", "--yes")
    assert first.stderr.strip() == "cancelled job j_1: 1 completed kept, 2 cancelled"
    again = run("--api-url", server.url, "cancel", "j_1", "--yes")
    assert again.stderr.strip() == "job j_1 is already cancelled (1 completed kept)"
    assert sum(1 for s in server.seen if s.method == "DELETE") == 1


def test_ctrl_c_exits_130(serve, monkeypatch) -> None:
    def interrupted(self, job_id):
        raise KeyboardInterrupt

    monkeypatch.setattr(ApiClient, "get_job", interrupted)
    result = run("--api-url", "http://127.0.0.1:9", "status", "j_1", expect=130)
    assert "interrupted" in result.stderr


def test_every_command_help_has_an_example() -> None:
    missing = []

    def walk(group, path):
        for name, command in group.commands.items():
            if name in ("compress", "decompress", "completion"):
                continue
            if hasattr(command, "commands"):
                walk(command, [*path, name])
                continue
            text = CliRunner().invoke(cli, [*path, name, "--help"]).output
            if "Examples:" not in text or f"squeezer {' '.join([*path, name])}" not in text:
                missing.append(" ".join([*path, name]))

    walk(cli, [])
    assert missing == []
