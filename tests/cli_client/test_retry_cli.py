"""``squeezer retry JOB_ID [--wait] [--json]`` against a fake API on 127.0.0.1."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from client import jobs
from client.cli import cli

from .conftest import Reply, Seen

OUTCOME = {
    "job_id": "j_1",
    "retried": [{"file_id": "f_1", "name": "a.log"}],
    "skipped": [{"file_id": "f_2", "name": "b.bin", "reason": "checksum_mismatch is not fixed by a retry"}],
}


def run(*args: str, expect: int):
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert result.exit_code == expect, result.output
    assert "Traceback" not in result.output
    return result


def file(file_id: str, name: str, state: str, error: dict | None = None) -> dict:
    return {
        "file_id": file_id,
        "name": name,
        "state": state,
        "size": 10,
        "compressed_size": 4 if state == "completed" else None,
        "ratio": 0.4 if state == "completed" else None,
        "algorithm": "zstd",
        "level": 3,
        "attempts": 1,
        "error": error,
        "timings": {},
        "download_url": None,
        "download_name": None,
    }


def status(*files: dict) -> dict:
    return {
        "job_id": "j_1",
        "state": "processing",
        "algorithm": "zstd",
        "level": 3,
        "file_count": len(files),
        "total_size": 10 * len(files),
        "created_at": 1.0,
        "cancelled_at": None,
        "finished_at": None,
        "counts": {},
        "totals": {"files": len(files)},
        "files": list(files),
    }


CHECKSUM = {"code": "checksum_mismatch", "message": "not the declared sha256"}


class RetryApi:
    """POST /jobs/j_1/retry answers ``outcome``; each GET /jobs/j_1 answers the next of ``statuses``."""

    def __init__(self, outcome: dict, *statuses: dict) -> None:
        self.outcome, self.statuses = outcome, list(statuses)

    def __call__(self, seen: Seen) -> Reply:
        if seen.method == "POST" and seen.path == "/jobs/j_1/retry":
            return Reply.json(200, self.outcome)
        if seen.method == "GET" and seen.path == "/jobs/j_1":
            return Reply.json(200, self.statuses.pop(0) if len(self.statuses) > 1 else self.statuses[0])
        return Reply.json(404, {"error": {"code": "not_found", "message": seen.path}})


@pytest.fixture(autouse=True)
def quick_polls(monkeypatch):
    monkeypatch.setattr(jobs, "DEFAULT_POLL", jobs.Poll(first=0.01, cap=0.02))


def test_retry_posts_an_empty_object_and_says_what_was_skipped_on_stderr(serve) -> None:
    server = serve(RetryApi(OUTCOME))
    result = run("--api-url", server.url, "retry", "j_1", expect=0)
    assert [(s.method, s.path) for s in server.seen] == [("POST", "/jobs/j_1/retry")]
    assert json.loads(server.seen[0].body) == {}
    assert server.seen[0].headers["Content-Type"] == "application/json"
    assert "job j_1: 1 file(s) queued again, 1 not retried" in result.stderr
    assert "not retried b.bin: checksum_mismatch is not fixed by a retry" in result.stderr
    assert result.stdout == ""


def test_retry_json_goes_to_stdout_and_chatter_to_stderr(serve) -> None:
    server = serve(RetryApi(OUTCOME))
    result = run("--api-url", server.url, "retry", "j_1", "--json", expect=0)
    assert json.loads(result.stdout) == OUTCOME
    assert "queued again" in result.stderr


def test_a_job_id_is_one_path_segment(serve) -> None:
    server = serve(lambda seen: Reply.json(404, {"error": {"code": "job_not_found", "message": "no such job"}}))
    run("--api-url", server.url, "retry", "j/../x", expect=3)
    assert server.seen[0].path == "/jobs/j%2F..%2Fx/retry"


@pytest.mark.parametrize("status_code, code", [(404, "job_not_found"), (409, "job_cancelled")])
def test_api_errors_exit_3_with_the_apis_message(serve, status_code: int, code: str) -> None:
    server = serve(lambda seen: Reply.json(status_code, {"error": {"code": code, "message": "job j_1: " + code}}))
    result = run("--api-url", server.url, "retry", "j_1", expect=3)
    assert f"the API answered {status_code} {code}: job j_1: {code}" in result.stderr


def test_an_api_without_the_retry_route_is_an_api_error(serve) -> None:
    server = serve(lambda seen: Reply.json(403, {"message": "Missing Authentication Token"}))
    result = run("--api-url", server.url, "retry", "j_1", expect=3)
    assert "403 http_403: Missing Authentication Token" in result.stderr


def test_an_unreachable_api_exits_3(closed_port_url: str) -> None:
    result = run("--api-url", closed_port_url, "retry", "j_1", expect=3)
    assert "could not reach the Squeezer API" in result.stderr


def test_wait_follows_the_retried_files_until_final_and_exits_0(serve) -> None:
    skipped = file("f_2", "b.bin", "failed", CHECKSUM)  # still failed, but not retried: not waited for, not judged
    server = serve(
        RetryApi(
            OUTCOME,
            status(file("f_1", "a.log", "queued"), skipped),
            status(file("f_1", "a.log", "processing"), skipped),
            status(file("f_1", "a.log", "completed"), skipped),
        )
    )
    result = run("-v", "--api-url", server.url, "retry", "j_1", "--wait", expect=0)
    assert sum(1 for s in server.seen if s.method == "GET") == 3
    assert "compressed a.log" in result.stderr  # a per-file line: -v
    assert result.stdout.startswith("job j_1") and "a.log" in result.stdout  # the status table


def test_wait_exits_1_when_a_retried_file_fails_again(serve) -> None:
    again = {"code": "retries_exhausted", "message": "gave up after 5 attempts: aws_error"}
    server = serve(
        RetryApi(
            OUTCOME,
            status(file("f_1", "a.log", "queued"), file("f_2", "b.bin", "failed", CHECKSUM)),
            status(file("f_1", "a.log", "failed", again), file("f_2", "b.bin", "failed", CHECKSUM)),
        )
    )
    result = run("--api-url", server.url, "retry", "j_1", "--wait", "--json", expect=1)
    assert "1 of 1 file(s) failed:\n  a.log: retries_exhausted: gave up after 5 attempts" in result.stderr
    body = json.loads(result.stdout)
    assert body["retried"] == OUTCOME["retried"] and body["status"]["files"][0]["state"] == "failed"


def test_wait_with_nothing_retried_does_not_poll(serve) -> None:
    server = serve(RetryApi({"job_id": "j_1", "retried": [], "skipped": OUTCOME["skipped"]}))
    result = run("--api-url", server.url, "retry", "j_1", "--wait", expect=0)
    assert [s.method for s in server.seen] == ["POST"]
    assert "0 file(s) queued again, 1 not retried" in result.stderr


def test_names_and_reasons_from_the_server_are_printed_escaped(serve) -> None:
    server = serve(
        RetryApi(
            {"job_id": "j_1", "retried": [], "skipped": [{"file_id": "f_2", "name": "x\x1b[2J", "reason": "gone\r"}]}
        )
    )
    result = run("--api-url", server.url, "retry", "j_1", expect=0)
    assert "not retried 'x\\x1b[2J': 'gone\\r'" in result.stderr and "\x1b" not in result.output
