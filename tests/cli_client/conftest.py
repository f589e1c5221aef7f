"""Tiny local HTTP servers for the client's tests (127.0.0.1, a free port, a thread).

Every test runs with a home folder of its own and without the caller's
SQUEEZER_* settings, so a developer's config file or local stack token never
reaches a test (and a test never writes into them).
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Reply:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    drop: bool = False  # close the connection without answering

    @classmethod
    def json(cls, status: int, value: object) -> Reply:
        return cls(status, json.dumps(value).encode(), {"Content-Type": "application/json"})


class LocalServer:
    """Answers each request with ``handler(seen)``; records every request."""

    def __init__(self, handler: Callable[[Seen], Reply]) -> None:
        self.handler = handler
        self.seen: list[Seen] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:  # keep pytest output clean
                pass

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                seen = Seen(self.command, self.path, dict(self.headers.items()), body)
                outer.seen.append(seen)
                reply = outer.handler(seen)
                if reply.drop:
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                self.send_response(reply.status)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(reply.body)))
                self.end_headers()
                self.wfile.write(reply.body)

            do_GET = do_PUT = do_POST = do_DELETE = _serve

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> LocalServer:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


@pytest.fixture(autouse=True)
def isolated_home(tmp_path_factory, monkeypatch) -> Path:
    """An empty HOME (resume journals in HOME/.local/state); no SQUEEZER_CONFIG, _TOKEN, _PROFILE, _API_URL,
    _STATE_DIR; the local stack's state in HOME/state."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    for name in (
        "XDG_CONFIG_HOME",
        "XDG_STATE_HOME",
        "SQUEEZER_CONFIG",
        "SQUEEZER_TOKEN",
        "SQUEEZER_PROFILE",
        "SQUEEZER_API_URL",
        "SQUEEZER_STATE_DIR",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SQUEEZER_LOCAL_STATE_DIR", str(home / "state"))
    return home


@pytest.fixture
def serve():
    """``serve(handler)`` starts a LocalServer that is stopped after the test."""
    started: list[LocalServer] = []

    def start(handler: Callable[[Seen], Reply]) -> LocalServer:
        server = LocalServer(handler).__enter__()
        started.append(server)
        return server

    yield start
    for server in started:
        server.__exit__(None, None, None)


def scripted(*replies: Reply) -> Callable[[Seen], Reply]:
    """A handler giving ``replies`` in order, then repeating the last one."""
    queue = list(replies)

    def handler(seen: Seen) -> Reply:
        return queue.pop(0) if len(queue) > 1 else queue[0]

    return handler


@pytest.fixture
def closed_port_url() -> str:
    """A URL where nothing listens."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"
