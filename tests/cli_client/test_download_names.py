"""Names from the server are not trusted: an unsafe or colliding one fails its own file, the rest download.

The fake API on 127.0.0.1 answers ``GET /jobs/j_1`` with the listed files
(names chosen by the test) and serves each result at ``/blob/<n>``.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from chalicelib.codecs import compress_stream
from chalicelib.domain import Algorithm
from client import jobs
from client.cli import cli
from client.errors import FilesFailed
from client.transfer import TransferFailed

from .conftest import Reply, Seen


def packed(data: bytes) -> bytes:
    out = io.BytesIO()
    compress_stream(io.BytesIO(data), out, Algorithm.GZIP, 6)
    return out.getvalue()


class NamedResults:
    """A fake API whose one job lists ``entries`` (name, content), every file completed with gzip."""

    def __init__(self, entries: list[tuple[str, bytes]]) -> None:
        self.blobs = [packed(data) for _, data in entries]
        self.names = [name for name, _ in entries]
        self.url = ""

    def status(self) -> dict:
        files = [
            {
                "file_id": f"f_{i}",
                "name": name,
                "state": "completed",
                "size": 1,
                "compressed_size": len(blob),
                "ratio": 0.5,
                "algorithm": "gzip",
                "level": 6,
                "attempts": 1,
                "error": None,
                "timings": {},
                "download_url": f"{self.url}/blob/{i}",
                "download_name": None,
            }
            for i, (name, blob) in enumerate(zip(self.names, self.blobs, strict=False))
        ]
        return {
            "job_id": "j_1",
            "state": "completed",
            "algorithm": "gzip",
            "level": 6,
            "file_count": len(files),
            "total_size": len(files),
            "created_at": 1.0,
            "cancelled_at": None,
            "finished_at": 2.0,
            "counts": {"completed": len(files)},
            "totals": {"files": len(files)},
            "files": files,
        }

    def __call__(self, seen: Seen) -> Reply:
        if seen.path == "/jobs/j_1":
            return Reply.json(200, self.status())
        if seen.path.startswith("/blob/"):
            return Reply(200, self.blobs[int(seen.path.rsplit("/", 1)[1])])
        return Reply.json(404, {"error": {"code": "not_found", "message": seen.path}})


@pytest.fixture
def fake(serve):
    def start(*entries: tuple[str, bytes]) -> NamedResults:
        api = NamedResults(list(entries))
        api.url = serve(api).url
        return api

    return start


def download(api: NamedResults, out: Path, *extra: str):
    return CliRunner().invoke(
        cli, ["--api-url", api.url, "download", "j_1", "--output", str(out), *extra], catch_exceptions=False
    )


def saved_files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def test_a_nul_in_a_name_fails_that_file_and_the_others_download(fake, tmp_path: Path) -> None:
    api = fake(("a.txt", b"alpha\n" * 100), ("evil\x00.txt", b"nul"), ("sub/b.txt", b"bravo\n" * 100))
    result = download(api, tmp_path / "out")
    assert result.exit_code == 1, result.output
    assert (tmp_path / "out/a.txt.gz").read_bytes() == packed(b"alpha\n" * 100)
    assert (tmp_path / "out/sub/b.txt.gz").read_bytes() == packed(b"bravo\n" * 100)
    assert saved_files(tmp_path) == ["out/a.txt.gz", "out/sub/b.txt.gz"]
    assert "1 of 3 file(s) failed" in result.stderr
    assert "'evil\\x00.txt': unsafe_name: not a safe file name: name contains control characters" in result.stderr


@pytest.mark.parametrize("name", ["bell\x07.txt", "\x1b[31mred.txt", "line\nbreak.txt", "win\\dir.txt"])
def test_control_characters_and_backslashes_are_refused_not_saved(fake, tmp_path: Path, name: str) -> None:
    api = fake(("ok.txt", b"fine"), (name, b"bad"))
    result = download(api, tmp_path / "out")
    assert result.exit_code == 1, result.output
    assert saved_files(tmp_path) == ["out/ok.txt.gz"]
    assert "unsafe_name" in result.stderr
    assert repr(name) in result.stderr  # shown escaped: a name cannot restyle or split the user's terminal
    assert "\x1b" not in result.output and "\x07" not in result.output


def test_two_files_with_the_same_name_do_not_overwrite_each_other(fake, tmp_path: Path) -> None:
    api = fake(("logs/a.log", b"the first\n"), ("b.txt", b"bravo"), ("logs/a.log", b"the second\n"))
    result = download(api, tmp_path / "out", "--parallel", "1")
    assert result.exit_code == 1, result.output
    assert (tmp_path / "out/logs/a.log.gz").read_bytes() == packed(b"the first\n")
    assert saved_files(tmp_path) == ["out/b.txt.gz", "out/logs/a.log.gz"]
    assert "1 of 3 file(s) failed" in result.stderr
    assert (
        "logs/a.log: duplicate_name: would be saved as" in result.stderr
        and "where logs/a.log is saved" in result.stderr
    )


def test_a_file_whose_result_is_another_files_folder_is_refused_before_any_download(fake, tmp_path: Path) -> None:
    # 'a' is saved as a.gz; 'a.gz/b' needs a.gz as a folder: whichever download ran first, one would fail
    # half-way. The later one in the list is refused up front, the same way every time.
    api = fake(("a", b"file a"), ("a.gz/b", b"file b"), ("c/d", b"file d"), ("c.gz/e", b"file e"))
    result = download(api, tmp_path / "out", "--json")
    assert result.exit_code == 1, result.output
    outcome = {f["name"]: f for f in json.loads(result.stdout)["files"]}
    assert outcome["a.gz/b"]["error"]["code"] == "duplicate_name"
    assert outcome["a"]["error"] is None and (tmp_path / "out/a.gz").read_bytes() == packed(b"file a")
    assert saved_files(tmp_path) == ["out/a.gz", "out/c.gz/e.gz", "out/c/d.gz"]  # c/ and c.gz/ do not clash


def test_download_results_plans_every_target_before_fetching(tmp_path: Path) -> None:
    files = [
        {"name": n, "state": "completed", "algorithm": "zstd", "download_url": "http://127.0.0.1:9/x"}
        for n in ("x\x00y", "dup", "dup", "dup.zst/z")
    ]
    plan = jobs._plan(tmp_path, files)
    assert [p.code if isinstance(p, TransferFailed) else p for p in plan.values()] == [
        "unsafe_name",
        tmp_path / "dup.zst",
        "duplicate_name",
        "duplicate_name",
    ]


def test_an_unknown_algorithm_fails_that_file_only(fake, tmp_path: Path) -> None:
    api = fake(("ok.txt", b"fine"), ("odd.txt", b"odd"))
    real = api.status
    api.status = lambda: {**real(), "files": [real()["files"][0], {**real()["files"][1], "algorithm": "lzma"}]}
    result = download(api, tmp_path / "out")
    assert result.exit_code == 1, result.output
    assert saved_files(tmp_path) == ["out/ok.txt.gz"]
    assert "odd.txt: unknown_algorithm" in result.stderr


def test_failure_lines_escape_what_the_server_said(tmp_path: Path) -> None:
    status = {
        "job_id": "j_1",
        "files": [
            {
                "file_id": "f_1",
                "name": "x\x1b]0;owned\x07",
                "state": "failed",
                "size": 1,
                "error": {"code": "codec_error", "message": "bad\nline"},
            }
        ],
    }
    with pytest.raises(FilesFailed) as caught:
        jobs.raise_if_failed(jobs.failures(status), 1)
    text = caught.value.format_message()
    assert "\x1b" not in text and "\x07" not in text and text.count("\n") == 1
    assert jobs._final_line(status["files"][0]).startswith("failed 'x\\x1b]0;owned\\x07'")
