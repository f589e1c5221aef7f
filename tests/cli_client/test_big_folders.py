"""Limits checked before any hashing, and big folders sent as one job in batches (POST /jobs/{id}/files)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from client.cli import cli

from .conftest import Reply, Seen

LIMITS = {"max_files_per_job": 3, "max_files_per_request": 2, "max_file_size": 5 * 1024**3}


@pytest.fixture
def no_hashing(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("files were hashed before the limits were checked")

    monkeypatch.setattr("client.uploader.add_checksums", refuse)


def index_only(seen: Seen) -> Reply:
    if seen.method == "GET" and seen.path == "/":
        return Reply.json(200, {"limits": LIMITS})
    raise AssertionError(f"nothing but GET / may be asked: {seen.method} {seen.path}")


def test_a_file_over_the_size_limit_is_refused_before_hashing(serve, tmp_path: Path, no_hashing) -> None:
    big = tmp_path / "big.iso"
    with big.open("wb") as f:
        f.truncate(6 * 1024**3)  # sparse: 6 GiB of nothing on disk
    server = serve(index_only)
    result = CliRunner().invoke(cli, ["--api-url", server.url, "upload", str(big)], catch_exceptions=False)
    assert result.exit_code == 2, result.output
    assert "big.iso is 6.0 GiB, more than the 5.0 GiB a file may be" in result.output
    assert [(s.method, s.path) for s in server.seen] == [("GET", "/")]


def test_too_many_files_are_refused_before_hashing(serve, tmp_path: Path, no_hashing) -> None:
    folder = tmp_path / "many"
    folder.mkdir()
    for i in range(4):
        (folder / f"{i}.txt").write_text("x")
    server = serve(index_only)
    result = CliRunner().invoke(cli, ["--api-url", server.url, "upload", str(folder)], catch_exceptions=False)
    assert result.exit_code == 2, result.output
    assert "4 files is more than the 3 one job may hold" in result.output


class BatchApi:
    """A job API with batches: records the order of adds and uploads; can fail an add once."""

    def __init__(self) -> None:
        self.events: list[str] = []
        self.job_open = True
        self.names: list[str] = []
        self.fail_add = False
        self.url = ""

    def __call__(self, seen: Seen) -> Reply:
        if seen.method == "GET" and seen.path == "/":
            return Reply.json(200, {"limits": {**LIMITS, "max_files_per_job": 100}})
        if seen.method == "POST" and seen.path == "/jobs":
            body = json.loads(seen.body)
            self.events.append(f"create {len(body['files'])} more={body.get('more_files', False)}")
            self.job_open = bool(body.get("more_files"))
            return Reply.json(201, self._created(body["files"], job=True))
        if seen.method == "POST" and seen.path == "/jobs/j_1/files":
            body = json.loads(seen.body)
            self.events.append(f"add {len(body['files'])} more={body['more_files']}")
            if self.fail_add:
                self.fail_add = False
                return Reply.json(503, {"error": {"code": "aws_error", "message": "try later"}})
            self.job_open = body["more_files"]
            return Reply.json(200, self._created(body["files"], job=False))
        if seen.method == "PUT" and seen.path.startswith("/up/"):
            self.events.append(f"put {seen.path[4:]}")
            return Reply(200)
        if seen.method == "GET" and seen.path == "/jobs/j_1":
            files = [{"file_id": f"f_{n}", "name": n, "state": "queued"} for n in self.names]
            return Reply.json(200, {"job_id": "j_1", "more_files": self.job_open, "files": files})
        raise AssertionError(f"unexpected {seen.method} {seen.path}")

    def _created(self, files, *, job: bool):
        out = []
        for spec in files:
            assert isinstance(spec["mode"], int) and isinstance(spec["mtime"], float)  # os.stat travels
            self.names.append(spec["name"])
            upload = {"method": "PUT", "url": f"{self.url}/up/{spec['name']}", "headers": {}, "fields": None}
            out.append(
                {
                    "file_id": f"f_{spec['name']}",
                    "name": spec["name"],
                    "size": spec["size"],
                    "upload": {**upload, "expires_in": 60},
                    "multipart": None,
                }
            )
        answer = {"job_id": "j_1", "files": out, "more_files": self.job_open}
        return (
            {**answer, "algorithm": "zstd", "level": 3, "created_at": 1.0, "status_url": "/jobs/j_1"} if job else answer
        )


def folder_of(tmp_path: Path, n: int) -> Path:
    folder = tmp_path / "src"
    folder.mkdir()
    for i in range(n):
        (folder / f"{i}.txt").write_text(f"file {i}")
    os.chmod(folder / "0.txt", 0o751)
    return folder


def test_a_folder_bigger_than_a_batch_is_one_job_uploaded_as_it_grows(serve, tmp_path: Path) -> None:
    api = BatchApi()
    server = serve(api)
    api.url = server.url
    folder = folder_of(tmp_path, 5)
    result = CliRunner().invoke(
        cli, ["--api-url", server.url, "upload", str(folder), "--parallel", "1"], catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    assert result.output.count("j_1") >= 1
    adds = [e for e in api.events if not e.startswith("put")]
    assert adds == ["create 2 more=True", "add 2 more=True", "add 1 more=False"]
    assert sum(e.startswith("put") for e in api.events) == 5
    assert api.events.index("put src/0.txt") < api.events.index("add 1 more=False")  # batch 1 went up early
    mode = next(json.loads(s.body)["files"][0]["mode"] for s in server.seen if s.path == "/jobs")
    assert mode == 0o751


def test_an_interrupted_batch_upload_resumes_with_the_files_not_added_yet(serve, tmp_path: Path) -> None:
    api = BatchApi()
    server = serve(api)
    api.url = server.url
    folder = folder_of(tmp_path, 5)
    api.fail_add = True
    first = CliRunner().invoke(
        cli, ["--api-url", server.url, "upload", str(folder), "--parallel", "1"], catch_exceptions=False
    )
    assert first.exit_code != 0
    assert api.job_open is True and len(api.names) == 2
    again = CliRunner().invoke(
        cli, ["--api-url", server.url, "upload", str(folder), "--parallel", "1"], catch_exceptions=False
    )
    assert again.exit_code == 0, again.output
    assert "resuming job j_1" in again.output
    assert sorted(api.names) == sorted(f"src/{i}.txt" for i in range(5)) and not api.job_open
    assert len(set(api.names)) == 5  # nothing was added twice
