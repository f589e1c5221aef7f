"""Fault: the server's answer names files that cannot be safe paths, or two files the same.

Before, a name with NUL crashed ``squeezer download`` (exit 70) and saved none
of the other files, and two results with the same name overwrote each other
silently. Now each such file fails alone, with a message (the name escaped),
and the rest download; so does a file whose result path another file needs
as a folder.
"""

from __future__ import annotations

import io
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from click.testing import CliRunner

from chalicelib.codecs import compress_stream
from chalicelib.domain import Algorithm
from client.cli import cli

GOOD = {"logs/a.log": b"alpha\n" * 1000, "b.txt": b"bravo\n" * 500}
BAD_NAMES = ["evil\x00name.txt", "bell\x07.txt", "../escape.txt", "/etc/passwd", "dir\\win.txt", "a//b.txt"]


def packed(data: bytes) -> bytes:
    out = io.BytesIO()
    compress_stream(io.BytesIO(data), out, Algorithm.GZIP, 6)
    return out.getvalue()


@pytest.fixture
def server():
    blobs: dict[str, bytes] = {}
    files = []
    entries = [(name, data) for name, data in GOOD.items()]
    entries += [(name, b"bad " * 10) for name in BAD_NAMES]
    entries += [("b.txt", b"a second b.txt that must not overwrite the first\n")]  # a duplicate
    entries += [("logs/a.log.gz/c.txt", b"needs the folder where logs/a.log is saved\n")]  # a file/folder clash
    for index, (name, data) in enumerate(entries):
        blob = packed(data)
        blobs[f"/blob/{index}"] = blob
        files.append(
            {
                "file_id": f"f_{index}",
                "name": name,
                "state": "completed",
                "size": len(data),
                "compressed_size": len(blob),
                "ratio": 0.5,
                "algorithm": "gzip",
                "level": 6,
                "attempts": 1,
                "error": None,
                "download_url": None,
                "download_name": None,
                "timings": {},
            }
        )
    holder: dict = {}

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def do_GET(self):
            if self.path.startswith("/jobs/j_1"):
                base = holder["url"]
                status = {
                    "job_id": "j_1",
                    "state": "completed",
                    "algorithm": "gzip",
                    "level": 6,
                    "file_count": len(files),
                    "total_size": 1,
                    "created_at": 1.0,
                    "cancelled_at": None,
                    "finished_at": 2.0,
                    "counts": {
                        "pending": 0,
                        "queued": 0,
                        "processing": 0,
                        "completed": len(files),
                        "failed": 0,
                        "cancelled": 0,
                        "open": 0,
                    },
                    "totals": {"files": len(files), "bytes_in": 1, "bytes_out": 1, "ratio": 1.0},
                    "files": [dict(f, download_url=f"{base}/blob/{f['file_id'][2:]}") for f in files],
                }
                body, kind = json.dumps(status).encode(), "application/json"
            elif self.path in blobs:
                body, kind = blobs[self.path], "application/gzip"
            else:
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    holder["url"] = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield holder["url"]
    httpd.shutdown()
    httpd.server_close()


def test_unsafe_and_duplicate_names_fail_alone_and_the_rest_download(server, tmp_path: Path):
    out = tmp_path / "out"
    result = CliRunner().invoke(
        cli, ["--api-url", server, "download", "j_1", "--output", str(out)], catch_exceptions=False
    )
    assert result.exit_code == 1, result.output  # some files failed: not 70, not a traceback
    assert "Traceback" not in result.output
    for name, data in GOOD.items():  # the good ones, byte-exact (the first b.txt, not the duplicate)
        saved = (out / (name + ".gz")).read_bytes()
        assert saved == packed(data), name
    written = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file())
    assert written == ["out/b.txt.gz", "out/logs/a.log.gz"]  # nothing else, nothing outside out/
    assert not Path("/etc/passwd.gz").exists()
    assert f"{len(BAD_NAMES) + 2} of {len(GOOD) + len(BAD_NAMES) + 2} file(s) failed" in result.stderr
    for name in BAD_NAMES:  # each one listed, escaped: a NUL or BEL never reaches the terminal
        shown = name if name.isprintable() else repr(name)
        assert f"  {shown}: unsafe_name: not a safe file name" in result.stderr, name
    assert "\x00" not in result.output and "\x07" not in result.output
    assert "  b.txt: duplicate_name: " in result.stderr
    assert "  logs/a.log.gz/c.txt: duplicate_name: " in result.stderr
