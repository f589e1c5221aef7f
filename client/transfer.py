"""Moving bytes to and from presigned URLs: retry policy, per-thread sessions, downloads.

    RetryableError    a try failed in a way another try may fix (connection
                      trouble, 5xx, 429)
    TransferFailed    give up on this file: a 4xx other than 429, or the
                      tries ran out

Neither message ever contains the URL: a presigned URL is a credential.
Downloads are written through :func:`client.files.atomic_file` (never a partial file).
"""

from __future__ import annotations

import random
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import requests

from .files import atomic_file

T = TypeVar("T")
CHUNK_SIZE = 1024 * 1024

TRANSPORT_ERRORS = (
    requests.ConnectionError,
    requests.Timeout,
    requests.exceptions.ChunkedEncodingError,
)


class RetryableError(Exception):
    def __init__(self, code: str, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.retry_after = retry_after


class TransferFailed(Exception):
    """``status`` and ``storage_code`` (S3's ``<Code>``, e.g. ``BadDigest``) when storage answered with an error."""

    def __init__(self, code: str, message: str, *, status: int | None = None, storage_code: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status
        self.storage_code = storage_code


class Cancelled(Exception):
    """The user interrupted the command; stop moving bytes."""


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with jitter: 0.5 s, 1 s, 2 s, 4 s between five tries.

    The jitter (each wait is drawn from the upper half of its step) keeps
    eight workers that failed together from all retrying in the same instant.
    """

    tries: int = 5
    base_delay: float = 0.5
    max_delay: float = 8.0
    max_retry_after: float = 30.0
    sleep: Callable[[float], None] = field(default=time.sleep, compare=False)

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        step = min(self.max_delay, self.base_delay * 2 ** (attempt - 1))
        wait = random.uniform(step / 2, step)
        if retry_after is not None:
            wait = max(wait, min(retry_after, self.max_retry_after))
        return wait


def run_with_retries(
    attempt: Callable[[], T],
    policy: RetryPolicy,
    *,
    on_retry: Callable[[int, RetryableError, float], None] | None = None,
) -> T:
    """Call ``attempt`` until it returns, raises TransferFailed, or the tries run out."""
    for number in range(1, policy.tries + 1):
        try:
            return attempt()
        except RetryableError as exc:
            if number >= policy.tries:
                raise TransferFailed(exc.code, f"{exc.message} (gave up after {number} tries)") from exc
            wait = policy.delay(number, exc.retry_after)
            if on_retry is not None:
                on_retry(number, exc, wait)
            policy.sleep(wait)
    raise AssertionError("unreachable")  # pragma: no cover - tries >= 1


def check_response(response: requests.Response) -> None:
    """Raise RetryableError for 429/5xx, TransferFailed for other 4xx."""
    status = response.status_code
    if status < 400:
        return
    storage_code, detail = _storage_error_detail(response)
    message = f"storage answered {status} {response.reason or ''}".rstrip() + (f": {detail}" if detail else "")
    if status == 429 or status >= 500:
        raise RetryableError(f"http_{status}", message, retry_after=_retry_after(response))
    raise TransferFailed(f"http_{status}", message, status=status, storage_code=storage_code)


def describe_transport_error(exc: BaseException) -> tuple[str, str]:
    """(code, one-line reason) for a requests transport error, without its URL."""
    chain = list(_causes(exc))
    names = {type(e).__name__ for e in chain}
    if isinstance(exc, requests.ConnectTimeout):
        return "timeout", "connecting timed out"
    if isinstance(exc, requests.ReadTimeout):
        return "timeout", "no answer within the read timeout"
    if any(isinstance(e, ConnectionRefusedError) for e in chain):
        return "unreachable", "connection refused"
    if "NameResolutionError" in names or any(getattr(e, "errno", None) == -2 for e in chain):
        return "unreachable", "host name not found"
    if names & {
        "RemoteDisconnected",
        "ProtocolError",
        "ConnectionResetError",
        "BrokenPipeError",
        "IncompleteRead",
        "ChunkedEncodingError",
    }:
        return "connection_dropped", "the server closed the connection"
    return "connection_error", f"connection error ({type(exc).__name__})"


def _causes(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        current = todo.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        todo += [current.__cause__, current.__context__, getattr(current, "reason", None)]
        todo += [arg for arg in getattr(current, "args", ()) if isinstance(arg, BaseException)]


def _retry_after(response: requests.Response) -> float | None:
    raw = response.headers.get("Retry-After", "")
    try:
        return max(0.0, float(raw))
    except ValueError:
        return None  # an HTTP date: rare enough to fall back to our own backoff


def _storage_error_detail(response: requests.Response) -> tuple[str | None, str]:
    """S3's error code and "code - message", from its XML: <Error><Code>..</Code><Message>..</Message>."""
    try:
        text = response.text[:4000]
    except Exception:  # noqa: BLE001 - the detail is a nicety, the status is enough
        return None, ""
    code = re.search(r"<Code>([^<]{1,100})</Code>", text)
    message = re.search(r"<Message>([^<]{1,300})</Message>", text)
    parts = [m.group(1).strip() for m in (code, message) if m]
    return (code.group(1).strip() if code else None), " - ".join(parts)


class ThreadSessions:
    """One ``requests.Session`` per thread: a Session is not thread-safe."""

    def __init__(self, factory: Callable[[], requests.Session] | None = None) -> None:
        self._local = threading.local()
        self._factory = factory or _bare_session
        self._all: list[requests.Session] = []
        self._lock = threading.Lock()

    def get(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = self._factory()
            with self._lock:
                self._all.append(session)
        return session

    def close(self) -> None:
        with self._lock:
            for session in self._all:
                session.close()
            self._all.clear()


def _bare_session() -> requests.Session:
    session = requests.Session()
    # Presigned requests carry exactly the headers the API listed; drop the
    # defaults requests would add (Accept, Accept-Encoding, ...). Environment
    # proxies still apply.
    session.headers.clear()
    return session


def download_to(
    session: requests.Session,
    url: str,
    target: Path,
    *,
    policy: RetryPolicy,
    timeout: tuple[float, float],
    expected_size: int | None = None,
    on_bytes: Callable[[int], None] = lambda n: None,
    cancel: threading.Event | None = None,
    on_retry: Callable[[int, RetryableError, float], None] | None = None,
) -> int:
    """Stream ``url`` to ``target`` through a temporary file, then rename it into place.

    A failed or interrupted download never leaves a partial ``target``.
    Returns the number of bytes written.
    """
    target.parent.mkdir(parents=True, exist_ok=True)

    def attempt() -> int:
        written = 0
        try:
            with atomic_file(target, durable=True) as out:
                try:
                    with session.get(url, stream=True, timeout=timeout) as response:
                        check_response(response)
                        for chunk in response.iter_content(CHUNK_SIZE):
                            if cancel is not None and cancel.is_set():
                                raise Cancelled()
                            out.write(chunk)
                            written += len(chunk)
                            on_bytes(len(chunk))
                except TRANSPORT_ERRORS as exc:
                    raise RetryableError(*describe_transport_error(exc)) from exc
                if expected_size is not None and written != expected_size:
                    raise RetryableError("short_download", f"got {written} bytes, expected {expected_size}")
            return written
        except BaseException:
            on_bytes(-written)
            raise

    return run_with_retries(attempt, policy, on_retry=on_retry)
