"""The uploader's retry policy, against a local HTTP server."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from client.transfer import RetryPolicy, TransferFailed
from client.uploader import LocalFile, Uploader

from .conftest import Reply, scripted

BODY = b"0123456789" * 5000


@pytest.fixture
def local_file(tmp_path: Path) -> LocalFile:
    path = tmp_path / "payload.bin"
    path.write_bytes(BODY)
    return LocalFile(path=path, name="payload.bin", size=len(BODY), sha256=hashlib.sha256(BODY).hexdigest())


def uploader(sleeps: list[float]) -> Uploader:
    return Uploader(parallel=2, policy=RetryPolicy(sleep=sleeps.append), timeout=(2, 5))


def presigned(url: str) -> dict:
    return {
        "method": "PUT",
        "url": url + "/bucket/key?X-Amz-Signature=secret",
        "headers": {
            "Content-Length": str(len(BODY)),
            "Content-Type": "application/x-test",
            "x-amz-checksum-sha256": "abc=",
        },
    }


def test_503_then_200_retries_once_with_backoff(serve, local_file) -> None:
    server = serve(scripted(Reply(503, b"<Error><Code>SlowDown</Code></Error>"), Reply(200)))
    sleeps: list[float] = []

    uploader(sleeps).upload(local_file, presigned(server.url))

    assert [s.method for s in server.seen] == ["PUT", "PUT"]
    assert all(s.body == BODY for s in server.seen)
    assert len(sleeps) == 1 and 0.25 <= sleeps[0] <= 0.5


def test_sends_exactly_the_presigned_headers(serve, local_file) -> None:
    server = serve(scripted(Reply(200)))
    uploader([]).upload(local_file, presigned(server.url))
    sent = {k.lower(): v for k, v in server.seen[0].headers.items()}
    assert sent["content-type"] == "application/x-test"
    assert sent["content-length"] == str(len(BODY))
    assert sent["x-amz-checksum-sha256"] == "abc="
    assert "transfer-encoding" not in sent
    # Only what the HTTP layer itself always sends may come on top.
    extra = set(sent) - {"content-type", "content-length", "x-amz-checksum-sha256"}
    assert extra <= {"host", "user-agent", "accept-encoding"}, sent
    assert sent.get("accept-encoding", "identity") == "identity"


def test_403_is_not_retried(serve, local_file) -> None:
    server = serve(scripted(Reply(403, b"<Error><Code>SignatureDoesNotMatch</Code><Message>nope</Message></Error>")))
    sleeps: list[float] = []

    with pytest.raises(TransferFailed) as failed:
        uploader(sleeps).upload(local_file, presigned(server.url))

    assert failed.value.code == "http_403"
    assert "SignatureDoesNotMatch" in failed.value.message
    assert "secret" not in failed.value.message  # never show the presigned URL
    assert len(server.seen) == 1 and sleeps == []


def test_429_honours_retry_after(serve, local_file) -> None:
    server = serve(scripted(Reply(429, headers={"Retry-After": "3"}), Reply(200)))
    sleeps: list[float] = []
    uploader(sleeps).upload(local_file, presigned(server.url))
    assert len(server.seen) == 2 and sleeps == [3.0]


def test_a_dropped_connection_is_retried(serve, local_file) -> None:
    server = serve(scripted(Reply(drop=True), Reply(drop=True), Reply(200)))
    sleeps: list[float] = []
    uploader(sleeps).upload(local_file, presigned(server.url))
    assert len(server.seen) == 3 and len(sleeps) == 2
    assert sleeps[1] > sleeps[0] / 2  # backoff grows (with jitter)


def test_gives_up_after_five_tries(serve, local_file) -> None:
    server = serve(scripted(Reply(500)))
    sleeps: list[float] = []

    with pytest.raises(TransferFailed, match="gave up after 5 tries") as failed:
        uploader(sleeps).upload(local_file, presigned(server.url))

    assert failed.value.code == "http_500"
    assert len(server.seen) == 5 and len(sleeps) == 4


def test_a_closed_port_gives_up_as_unreachable(closed_port_url, local_file) -> None:
    with pytest.raises(TransferFailed) as failed:
        uploader([]).upload(local_file, presigned(closed_port_url))
    assert failed.value.code == "unreachable"
    assert "connection refused" in failed.value.message


def test_a_file_that_changed_size_is_not_sent(serve, local_file) -> None:
    server = serve(scripted(Reply(200)))
    local_file.path.write_bytes(BODY + b"more")
    with pytest.raises(TransferFailed, match="changed size"):
        uploader([]).upload(local_file, presigned(server.url))
    assert server.seen == []


def test_upload_all_reports_each_file(serve, tmp_path: Path) -> None:
    def handler(seen):
        return Reply(403) if "bad" in seen.path else Reply(200)

    server = serve(handler)
    pairs = []
    for name in ("good", "bad", "empty"):
        data = b"" if name == "empty" else BODY
        path = tmp_path / name
        path.write_bytes(data)
        entry = {
            "file_id": f"f_{name}",
            "upload": {"method": "PUT", "url": f"{server.url}/{name}", "headers": {"Content-Length": str(len(data))}},
        }
        pairs.append((LocalFile(path=path, name=name, size=len(data)), entry))

    results = uploader([]).upload_all(pairs)

    assert [(r.file.name, r.ok, r.error_code) for r in results] == [
        ("good", True, None),
        ("bad", False, "http_403"),
        ("empty", True, None),
    ]
    empty = next(s for s in server.seen if s.path == "/empty")
    assert empty.body == b"" and empty.headers["Content-Length"] == "0"
