"""How API trouble reaches the user: exit code 3 and one clear line."""

from __future__ import annotations

from click.testing import CliRunner

from client.cli import cli

from .conftest import Reply, scripted


def run(*args: str, expect: int):
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert result.exit_code == expect, result.output
    return result


def test_status_of_an_unknown_job_shows_the_api_message(serve) -> None:
    server = serve(scripted(Reply.json(404, {"error": {"code": "job_not_found", "message": "no job with id 'j_x'"}})))

    result = run("--api-url", server.url, "status", "j_x", expect=3)

    assert result.output.strip() == "Error: the API answered 404 job_not_found: no job with id 'j_x'"
    assert server.seen[0].path == "/jobs/j_x"


def test_status_against_a_closed_port_could_not_reach(closed_port_url) -> None:
    result = run("--api-url", closed_port_url, "status", "j_x", expect=3)
    assert "could not reach the Squeezer API at " + closed_port_url in result.output
    assert "connection refused" in result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1


def test_api_url_comes_from_the_environment(closed_port_url) -> None:
    result = CliRunner().invoke(cli, ["jobs"], env={"SQUEEZER_API_URL": closed_port_url})
    assert result.exit_code == 3, result.output
    assert closed_port_url in result.output


def test_reads_are_retried_on_5xx_then_answered(serve) -> None:
    job = {
        "job_id": "j_1",
        "algorithm": "zstd",
        "level": 3,
        "created_at": 1.0,
        "state": "completed",
        "counts": {"completed": 1},
        "totals": {"files": 1, "bytes_in": 10, "bytes_out": 5, "ratio": 0.5},
        "files": [
            {
                "file_id": "f_1",
                "name": "a.txt",
                "state": "completed",
                "size": 10,
                "compressed_size": 5,
                "ratio": 0.5,
                "error": None,
                "timings": {"compress_seconds": 0.01},
                "algorithm": "zstd",
            }
        ],
    }
    server = serve(scripted(Reply(502, b"bad gateway"), Reply.json(200, job)))

    result = run("--api-url", server.url, "status", "j_1", expect=0)

    assert len(server.seen) == 2
    assert "a.txt" in result.output and "50.0%" in result.output


def test_a_failing_create_is_not_retried(serve, tmp_path) -> None:
    (tmp_path / "a.txt").write_text("hello")
    server = serve(
        scripted(
            Reply.json(200, {"limits": {}}),  # GET /: the limits, checked before hashing
            Reply.json(500, {"error": {"code": "internal_error", "message": "try again later"}}),
        )
    )

    result = run("--api-url", server.url, "upload", str(tmp_path / "a.txt"), expect=3)

    assert [s.method for s in server.seen] == ["GET", "POST"]
    assert "500 internal_error: try again later" in result.output


def test_an_answer_that_is_not_ours_is_still_one_line(serve) -> None:
    server = serve(scripted(Reply(403, b'{"message": "Missing Authentication Token"}')))
    result = run("--api-url", server.url, "jobs", expect=3)
    assert "403 http_403: Missing Authentication Token" in result.output


def test_cancel_reports_an_unexpected_conflict(serve) -> None:
    body = {
        "job_id": "j_1",
        "algorithm": "zstd",
        "level": 3,
        "created_at": 1.0,
        "cancelled_at": None,
        "state": "processing",
        "counts": {},
        "totals": {"files": 1, "bytes_in": 0, "bytes_out": 0, "ratio": None},
        "files": [{"file_id": "f1", "name": "a", "state": "queued", "size": 1}],
    }
    server = serve(
        scripted(
            Reply.json(200, body),
            Reply.json(409, {"error": {"code": "conflict", "message": "job j_1 is busy"}}),
        )
    )
    again = run("--api-url", server.url, "cancel", "j_1", "--yes", expect=3)
    assert [(s.method, s.path) for s in server.seen] == [("GET", "/jobs/j_1"), ("DELETE", "/jobs/j_1")]
    assert "409 conflict" in again.output


def test_status_reads_every_page_of_a_big_job(serve) -> None:
    """GET /jobs/{id} answers a page of files at a time; the client follows next_cursor to the end."""

    def page(names: list[str], cursor: str | None) -> dict:
        return {
            "job_id": "j_1",
            "algorithm": "zstd",
            "level": 3,
            "created_at": 1.0,
            "state": "completed",
            "counts": {"completed": 3},
            "totals": {"files": 3, "bytes_in": 30, "bytes_out": 15, "ratio": 0.5},
            "files": [
                {
                    "file_id": f"f_{name}",
                    "name": name,
                    "state": "completed",
                    "size": 10,
                    "compressed_size": 5,
                    "ratio": 0.5,
                    "error": None,
                    "timings": {"compress_seconds": 0.01},
                    "algorithm": "zstd",
                }
                for name in names
            ],
            "next_cursor": cursor,
        }

    server = serve(scripted(Reply.json(200, page(["a.txt", "b.txt"], "c1")), Reply.json(200, page(["c.txt"], None))))

    result = run("--api-url", server.url, "status", "j_1", expect=0)

    assert [s.path for s in server.seen] == ["/jobs/j_1", "/jobs/j_1?cursor=c1"]
    assert all(name in result.output for name in ("a.txt", "b.txt", "c.txt"))
