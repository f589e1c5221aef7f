"""Find the files to upload, checksum them, and upload them in parallel.

Uploads go straight to the presigned URLs the API hands out, with exactly
the headers it listed (they are signed: S3 rejects anything else). Each
worker thread has its own ``requests.Session``; bodies are streamed from
disk, so memory stays flat whatever the file sizes.
"""

from __future__ import annotations

import hashlib
import mimetypes
import os
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import click

from chalicelib.codecs import Source
from chalicelib.errors import ValidationError
from chalicelib.validation import check_name, is_media_type

from .errors import InputError
from .output import human_size
from .progress import Progress
from .transfer import (
    TRANSPORT_ERRORS,
    Cancelled,
    RetryableError,
    RetryPolicy,
    ThreadSessions,
    TransferFailed,
    check_response,
    describe_transport_error,
    run_with_retries,
)

READ_SIZE = 1024 * 1024


@dataclass(frozen=True)
class LocalFile:
    path: Path
    name: str  # relative, '/'-separated: the name the job knows the file by
    size: int
    content_type: str | None = None
    sha256: str | None = None

    def spec(self) -> dict[str, Any]:
        """The file as ``POST /jobs`` wants it."""
        spec: dict[str, Any] = {"name": self.name, "size": self.size}
        if self.content_type:
            spec["content_type"] = self.content_type
        if self.sha256:
            spec["sha256"] = self.sha256
        return spec


@dataclass(frozen=True)
class UploadResult:
    file: LocalFile
    file_id: str
    error_code: str | None = None
    error_message: str | None = None

    @property
    def ok(self) -> bool:
        return self.error_code is None


# -- discovery ---------------------------------------------------------------


def discover(paths: Iterable[str | os.PathLike[str]], *, on_skip: Callable[[str], None]) -> list[LocalFile]:
    """Files named on the command line plus everything under the folders named.

    A folder's files are named ``<folder name>/<path inside it>`` (``.`` and
    ``..`` add no prefix), like ``cp -r``. Symlinks inside a folder are
    followed only to files inside that folder; the rest are skipped through
    ``on_skip``, as are names the API would refuse. Two files with the same
    name are a usage error.
    """
    found: dict[str, LocalFile] = {}
    for arg in paths:
        path = Path(arg)
        if path.is_dir():
            entries = _walk(path, on_skip)
        elif path.is_file():
            entries = [(path, path.name)]
        elif not os.path.lexists(path):
            raise InputError(f"{path}: no such file or folder")
        else:
            on_skip(f"skipped {path}: not a regular file or folder")
            continue
        for file_path, name in entries:
            problem = _name_problem(name)
            if problem:
                on_skip(f"skipped {file_path}: {problem}")
                continue
            if name in found:
                raise click.UsageError(
                    f"{found[name].path} and {file_path} would both be uploaded as {name!r}: "
                    "upload them in separate jobs"
                )
            try:
                size = file_path.stat().st_size
            except OSError as exc:
                raise InputError(f"cannot read {file_path}: {exc.strerror}") from None
            found[name] = LocalFile(path=file_path, name=name, size=size, content_type=_content_type(name))
    return list(found.values())


def _walk(top: Path, on_skip: Callable[[str], None]) -> list[tuple[Path, str]]:
    root = top.resolve()
    prefix = "" if top.name in ("", ".", "..") else top.name + "/"
    entries: list[tuple[Path, str]] = []

    def unreadable(exc: OSError) -> None:
        on_skip(f"skipped {exc.filename}: cannot read the folder ({exc.strerror})")

    for dirpath, dirnames, filenames in os.walk(top, onerror=unreadable):
        here = Path(dirpath)
        dirnames.sort()
        for dirname in list(dirnames):
            if (here / dirname).is_symlink():
                # Not followed even when it stays inside the tree: its files
                # would be uploaded twice, or forever in a loop.
                dirnames.remove(dirname)
                on_skip(f"skipped {here / dirname}: symlink to a folder, not followed")
        for filename in sorted(filenames):
            path = here / filename
            if path.is_symlink():
                try:
                    target = path.resolve(strict=True)
                except (OSError, RuntimeError):
                    on_skip(f"skipped {path}: broken symlink")
                    continue
                if not target.is_relative_to(root):
                    on_skip(f"skipped {path}: symlink points outside {top} (to {target})")
                    continue
            if not path.is_file():
                on_skip(f"skipped {path}: not a regular file")
                continue
            entries.append((path, prefix + path.relative_to(top).as_posix()))
    return entries


def _name_problem(name: str) -> str | None:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return "the name is not valid UTF-8"
    try:
        check_name(name, where="the API would refuse the name")
    except ValidationError as exc:
        return exc.message
    return None


def _content_type(name: str) -> str | None:
    """The type guessed from the name, if the API accepts it (its own rule); else none is sent."""
    guessed, _encoding = mimetypes.guess_type(name, strict=False)
    return guessed if is_media_type(guessed) else None


# -- checksums -----------------------------------------------------------------


def add_checksums(files: list[LocalFile], *, parallel: int, progress: Progress) -> list[LocalFile]:
    """The files with their sha256 (read once here, once more to upload).

    Threads help: hashlib releases the GIL while it hashes large buffers.
    """
    with progress.bytes("checksum", sum(f.size for f in files)) as task:

        def digest(local: LocalFile) -> LocalFile:
            sha = hashlib.sha256()
            try:
                with open(local.path, "rb") as source:
                    while chunk := source.read(READ_SIZE):
                        sha.update(chunk)
                        task.advance(len(chunk))
            except OSError as exc:
                raise InputError(f"cannot read {local.path}: {exc.strerror or exc}") from None
            return replace(local, sha256=sha.hexdigest())

        with ThreadPoolExecutor(max_workers=parallel, thread_name_prefix="squeezer-sha256") as pool:
            return list(pool.map(digest, files))


# -- uploads -----------------------------------------------------------------


class _ProgressReader:
    """The open file, reported to the progress bar as requests reads it.

    requests (urllib3) reads it in small blocks and sends each at once: the
    body is never held in memory. ``__len__`` tells requests the size, so it
    sends a Content-Length instead of chunked encoding.
    """

    def __init__(
        self, source: Source, remaining: int, on_bytes: Callable[[int], None], cancel: threading.Event
    ) -> None:
        self._source = source
        self._remaining = remaining
        self._on_bytes = on_bytes
        self._cancel = cancel
        self.count = 0

    def read(self, size: int = -1) -> bytes:
        if self._cancel.is_set():
            raise Cancelled()
        data: bytes = self._source.read(size)
        self.count += len(data)
        self._remaining -= len(data)
        self._on_bytes(len(data))
        return data

    def __len__(self) -> int:
        return max(0, self._remaining)


class Uploader:
    def __init__(
        self,
        *,
        parallel: int = 8,
        policy: RetryPolicy = RetryPolicy(),
        timeout: tuple[float, float] = (5.0, 120.0),
        sessions: ThreadSessions | None = None,
        progress: Progress | None = None,
    ) -> None:
        self._parallel = parallel
        self._policy = policy
        self._timeout = timeout
        self._sessions = sessions or ThreadSessions()
        self._progress = progress or Progress(bars=False)
        self.cancel = threading.Event()

    def upload_all(self, pairs: list[tuple[LocalFile, dict[str, Any]]]) -> list[UploadResult]:
        """Upload every (file, API file entry) pair; one result per pair, in order."""
        results: dict[int, UploadResult] = {}
        with self._progress.bytes("upload", sum(local.size for local, _ in pairs)) as task:
            pool = ThreadPoolExecutor(max_workers=self._parallel, thread_name_prefix="squeezer-upload")
            try:
                futures = {
                    pool.submit(self._upload_one, local, entry, task.advance): index
                    for index, (local, entry) in enumerate(pairs)
                }
                for future in as_completed(futures):
                    result = future.result()
                    results[futures[future]] = result
                    if result.ok:
                        self._progress.note(f"uploaded {result.file.name} ({human_size(result.file.size)})")
                    else:
                        self._progress.note(
                            f"upload failed: {result.file.name}: {result.error_code}: {result.error_message}"
                        )
            except BaseException:
                self.cancel.set()  # workers stop at their next read
                pool.shutdown(wait=True, cancel_futures=True)
                raise
            finally:
                pool.shutdown(wait=True)
                self._sessions.close()
        return [results[i] for i in range(len(pairs))]

    def _upload_one(self, local: LocalFile, entry: dict[str, Any], on_bytes: Callable[[int], None]) -> UploadResult:
        file_id = entry["file_id"]
        try:
            self.upload(local, entry["upload"], on_bytes=on_bytes)
        except TransferFailed as exc:
            return UploadResult(local, file_id, exc.code, exc.message)
        except OSError as exc:
            return UploadResult(local, file_id, "unreadable", f"cannot read {local.path}: {exc.strerror or exc}")
        return UploadResult(local, file_id)

    def upload(
        self, local: LocalFile, upload: dict[str, Any], *, on_bytes: Callable[[int], None] = lambda n: None
    ) -> None:
        """PUT one file to its presigned URL, retrying what a retry can fix."""
        session = self._sessions.get()
        method = upload.get("method", "PUT")
        headers = dict(upload.get("headers") or {})

        def attempt() -> None:
            with open(local.path, "rb") as source:
                size = os.fstat(source.fileno()).st_size
                if size != local.size:
                    raise TransferFailed(
                        "file_changed", f"the file changed size since it was scanned ({local.size} -> {size} bytes)"
                    )
                body = _ProgressReader(source, size, on_bytes, self.cancel) if size else b""
                try:
                    response = session.request(method, upload["url"], data=body, headers=headers, timeout=self._timeout)
                    with response:
                        check_response(response)
                except TRANSPORT_ERRORS as exc:
                    _roll_back(body, on_bytes)
                    raise RetryableError(*describe_transport_error(exc)) from exc
                except BaseException:
                    _roll_back(body, on_bytes)
                    raise

        def retrying(attempt_no: int, exc: RetryableError, wait: float) -> None:
            self._progress.note(f"retrying {local.name} in {wait:.1f}s: {exc.message}")

        run_with_retries(attempt, self._policy, on_retry=retrying)


def _roll_back(body: object, on_bytes: Callable[[int], None]) -> None:
    if isinstance(body, _ProgressReader) and body.count:
        on_bytes(-body.count)
