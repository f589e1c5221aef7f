"""``squeezer upload/status/download/jobs`` against a fake API on 127.0.0.1.

The fake speaks the API's wire shapes (chalicelib/views.py), takes the
uploads itself and "compresses" with the real codecs when asked for status.
The real stack is exercised in tests/e2e/test_cli_e2e.py.
"""

from __future__ import annotations

import io
import json
import re
import threading
from pathlib import Path

import pytest
from click.testing import CliRunner

from chalicelib.codecs import compress_stream, decompress_stream
from chalicelib.domain import Algorithm
from client.cli import cli

from .conftest import Reply, Seen


class FakeApi:
    def __init__(self, fail: set[str] = frozenset()) -> None:
        self.jobs: dict[str, dict] = {}
        self.bodies: dict[str, bytes] = {}
        self.fail = fail
        self.url = ""
        self._lock = threading.Lock()
        self.polls = 0

    def __call__(self, seen: Seen) -> Reply:
        seen.path = seen.path.split("?", 1)[0]
        with self._lock:
            if seen.method == "POST" and seen.path == "/jobs":
                return self._create(json.loads(seen.body))
            if seen.method == "PUT" and seen.path.startswith("/upload/"):
                self.bodies[seen.path.split("/")[2]] = seen.body
                return Reply(200)
            if seen.method == "GET" and seen.path.startswith("/result/"):
                return Reply(200, self._result(seen.path.split("/")[2]))
            if seen.method == "GET" and (m := re.fullmatch(r"/jobs/([^/?]+)", seen.path)):
                self.polls += 1
                return self._status(m.group(1))
            if seen.method == "GET" and seen.path.startswith("/jobs"):
                return Reply.json(200, {"jobs": [self._header(j) for j in self.jobs.values()], "next_cursor": None})
        return Reply.json(404, {"error": {"code": "not_found", "message": seen.path}})

    def _create(self, body: dict) -> Reply:
        job_id = f"j_{len(self.jobs) + 1}"
        algorithm = Algorithm(body.get("algorithm", "zstd"))
        files = [
            {
                "file_id": f"f_{job_id}_{i}",
                "name": f["name"],
                "size": f["size"],
                "sha256": f.get("sha256"),
                "content_type": f.get("content_type"),
            }
            for i, f in enumerate(body["files"])
        ]
        self.jobs[job_id] = {
            "job_id": job_id,
            "algorithm": algorithm.value,
            "level": body.get("level", algorithm.default_level),
            "files": files,
        }
        return Reply.json(
            201,
            {
                "job_id": job_id,
                "algorithm": algorithm.value,
                "level": self.jobs[job_id]["level"],
                "created_at": 1.0,
                "status_url": f"/jobs/{job_id}",
                "files": [
                    {
                        "file_id": f["file_id"],
                        "name": f["name"],
                        "size": f["size"],
                        "upload": {
                            "method": "PUT",
                            "url": f"{self.url}/upload/{f['file_id']}?X-Amz-Signature=secret",
                            "headers": {
                                "Content-Length": str(f["size"]),
                                "Content-Type": f["content_type"] or "application/octet-stream",
                            },
                            "expires_in": 3600,
                        },
                    }
                    for f in files
                ],
            },
        )

    def _result(self, file_id: str) -> bytes:
        job = next(j for j in self.jobs.values() if any(f["file_id"] == file_id for f in j["files"]))
        out = io.BytesIO()
        compress_stream(io.BytesIO(self.bodies[file_id]), out, Algorithm(job["algorithm"]), job["level"])
        return out.getvalue()

    def _header(self, job: dict) -> dict:
        return {
            "job_id": job["job_id"],
            "algorithm": job["algorithm"],
            "level": job["level"],
            "file_count": len(job["files"]),
            "total_size": sum(f["size"] for f in job["files"]),
            "created_at": 1.0,
            "cancelled_at": None,
        }

    def _status(self, job_id: str) -> Reply:
        job = self.jobs.get(job_id)
        if job is None:
            return Reply.json(404, {"error": {"code": "job_not_found", "message": f"no job with id {job_id!r}"}})
        files = []
        for f in job["files"]:
            entry = {
                "file_id": f["file_id"],
                "name": f["name"],
                "size": f["size"],
                "algorithm": job["algorithm"],
                "level": job["level"],
                "state": "pending",
                "compressed_size": None,
                "ratio": None,
                "error": None,
                "timings": {"compress_seconds": None},
                "download_url": None,
            }
            # Files finish one poll after their upload, so --wait really waits.
            if f["file_id"] in self.bodies and self.polls > 1:
                if f["name"] in self.fail:
                    entry.update(state="failed", error={"code": "codec_error", "message": "made to fail"})
                else:
                    size = len(self._result(f["file_id"]))
                    entry.update(
                        state="completed",
                        compressed_size=size,
                        ratio=round(size / f["size"], 4) if f["size"] else None,
                        timings={"compress_seconds": 0.01},
                        download_url=f"{self.url}/result/{f['file_id']}",
                    )
            elif f["file_id"] in self.bodies:
                entry["state"] = "queued"
            files.append(entry)
        return Reply.json(
            200,
            {
                **self._header(job),
                "state": "processing",
                "counts": {},
                "totals": {"files": len(files), "bytes_in": 0, "bytes_out": 0, "ratio": None},
                "finished_at": None,
                "files": files,
            },
        )


@pytest.fixture
def fake_api(serve):
    def start(fail=frozenset()) -> FakeApi:
        api = FakeApi(fail=set(fail))
        api.url = serve(api).url
        return api

    return start


@pytest.fixture(autouse=True)
def quick_polls(monkeypatch):
    import client.jobs as jobs

    monkeypatch.setattr(jobs, "DEFAULT_POLL", jobs.Poll(first=0.01, cap=0.02))


def make_tree(root: Path) -> dict[str, bytes]:
    files = {
        "notes.txt": b"hello squeezer\n" * 3000,
        "sub/data.json": json.dumps(list(range(3000))).encode(),
        "sub/empty.dat": b"",
        "日本/résumé.txt": "é ü 日本\n".encode() * 300,
    }
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    return files


def run(*args: str, expect: int = 0):
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert result.exit_code == expect, result.output
    return result


@pytest.mark.parametrize("algorithm", ["zstd", "brotli", "gzip"])
def test_upload_wait_download_round_trip(fake_api, tmp_path: Path, algorithm: str) -> None:
    api = fake_api()
    files = make_tree(tmp_path / "src")
    out = tmp_path / "out"

    result = run("--api-url", api.url, "upload", str(tmp_path / "src"), "-a", algorithm, "--download", str(out))

    assert result.stdout.strip() == "j_1"  # stdout: the job id only
    assert "compress: 4/4 files done" in result.stderr
    assert "secret" not in result.output
    extension = Algorithm(algorithm).extension
    for name, data in files.items():
        restored = io.BytesIO()
        with open(out / "src" / (name + extension), "rb") as packed:
            decompress_stream(packed, restored, Algorithm(algorithm))
        assert restored.getvalue() == data, name
    declared = {f["name"]: f for f in api.jobs["j_1"]["files"]}
    assert declared["src/notes.txt"]["content_type"] == "text/plain"
    assert len(declared["src/notes.txt"]["sha256"]) == 64


def test_a_failed_file_exits_1_and_is_listed(fake_api, tmp_path: Path) -> None:
    api = fake_api(fail={"src/sub/data.json"})
    make_tree(tmp_path / "src")

    result = run("--api-url", api.url, "upload", str(tmp_path / "src"), "--wait", "--no-checksum", expect=1)

    assert "1 of 4 file(s) failed:" in result.stderr
    assert "src/sub/data.json: codec_error: made to fail" in result.stderr
    assert all(f["sha256"] is None for f in api.jobs["j_1"]["files"])


def test_upload_json_then_status_download_and_jobs(fake_api, tmp_path: Path) -> None:
    api = fake_api()
    make_tree(tmp_path / "src")

    uploaded = json.loads(run("--api-url", api.url, "upload", str(tmp_path / "src"), "--json").stdout)
    assert uploaded["job_id"] == "j_1" and all(f["uploaded"] for f in uploaded["files"])

    status = run("--api-url", api.url, "status", "j_1", "--watch")
    assert re.search(r"src/notes.txt\s+completed", status.stdout)

    saved = run("--api-url", api.url, "download", "j_1", "-o", str(tmp_path / "dl"))
    assert len(saved.stdout.splitlines()) == 4
    assert (tmp_path / "dl" / "src" / "notes.txt.zst").is_file()

    listed = json.loads(run("--api-url", api.url, "jobs", "--json").stdout)
    assert [j["job_id"] for j in listed["jobs"]] == ["j_1"]


def test_download_before_the_job_is_done_says_how_to_wait(fake_api, tmp_path: Path) -> None:
    api = fake_api()
    make_tree(tmp_path / "src")
    run("--api-url", api.url, "upload", str(tmp_path / "src"))
    api.polls = 0  # nothing finished yet

    result = run("--api-url", api.url, "download", "j_1", "-o", str(tmp_path / "dl"), expect=1)

    assert "not finished yet" in result.stderr and "--wait" in result.stderr


def test_nothing_to_upload_is_a_usage_error(fake_api, tmp_path: Path) -> None:
    api = fake_api()
    (tmp_path / "empty").mkdir()
    result = run("--api-url", api.url, "upload", str(tmp_path / "empty"), expect=2)
    assert "no files to upload" in result.output


@pytest.mark.parametrize("algorithm, level", [("zstd", "23"), ("brotli", "12"), ("gzip", "0")])
def test_a_level_the_api_would_refuse_is_a_usage_error_before_any_request(
    fake_api, tmp_path: Path, algorithm: str, level: str
) -> None:
    api = fake_api()
    make_tree(tmp_path / "src")

    result = run("--api-url", api.url, "upload", str(tmp_path / "src"), "-a", algorithm, "-l", level, expect=2)

    low, high = Algorithm(algorithm).level_range
    assert f"level must be an integer from {low} to {high} for {algorithm}, got {level}" in result.output
    assert "Traceback" not in result.output
    assert api.jobs == {}
