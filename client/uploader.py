"""Find the files to upload, checksum them, and upload them in parallel.

Uploads go straight to the presigned URLs the API hands out, with exactly
the headers it listed (they are signed: S3 rejects anything else). Each
worker thread has its own ``requests.Session``. Whole files are streamed
from disk; a large file's parts (:mod:`client.multipart_upload`) are read
into one buffer per thread, so memory stays at threads x part size whatever
the file sizes.
"""

from __future__ import annotations

import functools
import hashlib
import mimetypes
import os
import threading
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol, cast

import click

from chalicelib import multipart
from chalicelib.codecs import Source
from chalicelib.errors import ValidationError
from chalicelib.validation import check_name, is_media_type

from .errors import ApiError, InputError, SqueezerCliError
from .journal import SentPart
from .multipart_upload import COMPLETE_REFUSALS, JobApi, MultipartState, api_failure, read_part
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
# Files up to this size get a sha256 before the job is created; larger ones
# are expected in parts (the API's default threshold), checked per part.
CHECKSUM_UP_TO = multipart.DEFAULT_THRESHOLD


@dataclass(frozen=True)
class LocalFile:
    path: Path
    name: str  # relative, '/'-separated: the name the job knows the file by
    size: int
    content_type: str | None = None
    sha256: str | None = None
    mtime_ns: int | None = None  # when it was scanned: a resume refuses a file modified since
    mode: int | None = None  # permission bits when it was scanned: recorded with the result

    def spec(self) -> dict[str, Any]:
        """The file as ``POST /jobs`` wants it (mode and mtime travel so that a download can restore them)."""
        spec: dict[str, Any] = {"name": self.name, "size": self.size}
        if self.content_type:
            spec["content_type"] = self.content_type
        if self.sha256:
            spec["sha256"] = self.sha256
        if self.mode is not None:
            spec["mode"] = self.mode
        if self.mtime_ns is not None and self.mtime_ns >= 0:
            spec["mtime"] = self.mtime_ns / 1e9
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


def discover(
    paths: Iterable[str | os.PathLike[str]],
    *,
    on_skip: Callable[[str], None],
    select: Callable[[str], bool] | None = None,
    symlinks: str = "inside",
) -> list[LocalFile]:
    """Files named on the command line plus everything under the folders named.

    A folder's files are named ``<folder name>/<path inside it>`` (``.`` and
    ``..`` add no prefix), like ``cp -r``. Symlinks inside a folder
    (``symlinks``, see :data:`client.selection.SYMLINK_POLICIES`): ``inside``
    follows those to files inside that folder, ``follow`` every one (folders
    too, loops cut), ``skip`` none; the rest are skipped through ``on_skip``,
    as are names the API would refuse. ``select`` is asked with the path
    relative to the folder named (the base name for a file named): False
    leaves the file out. Two files with the same name are a usage error.
    """
    found: dict[str, LocalFile] = {}
    for arg in paths:
        path = Path(arg)
        if path.is_dir():
            entries = _walk(path, on_skip, symlinks)
        elif path.is_file():
            entries = [(path, path.name)]
        elif not os.path.lexists(path):
            raise InputError(f"{path}: no such file or folder")
        else:
            on_skip(f"skipped {path}: not a regular file or folder")
            continue
        prefix_length = len(_prefix(path)) if path.is_dir() else 0
        for file_path, name in entries:
            if select is not None and not select(name[prefix_length:]):
                continue
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
                stat = file_path.stat()
            except OSError as exc:
                raise InputError(f"cannot read {file_path}: {exc.strerror}") from None
            found[name] = LocalFile(
                path=file_path,
                name=name,
                size=stat.st_size,
                content_type=_content_type(name),
                mtime_ns=stat.st_mtime_ns,
                mode=stat.st_mode & 0o7777,
            )
    return list(found.values())


def _prefix(top: Path) -> str:
    return "" if top.name in ("", ".", "..") else top.name + "/"


def _walk(top: Path, on_skip: Callable[[str], None], symlinks: str = "inside") -> list[tuple[Path, str]]:
    root = top.resolve()
    prefix = _prefix(top)
    entries: list[tuple[Path, str]] = []
    follow = symlinks == "follow"
    seen_folders = {root}

    def unreadable(exc: OSError) -> None:
        on_skip(f"skipped {exc.filename}: cannot read the folder ({exc.strerror})")

    for dirpath, dirnames, filenames in os.walk(top, onerror=unreadable, followlinks=follow):
        here = Path(dirpath)
        dirnames.sort()
        for dirname in list(dirnames):
            if (here / dirname).is_symlink():
                if follow:
                    real = (here / dirname).resolve()
                    if real in seen_folders or root.is_relative_to(real):
                        dirnames.remove(dirname)
                        on_skip(f"skipped {here / dirname}: symlink to a folder already uploaded (a loop)")
                    else:
                        seen_folders.add(real)
                    continue
                # Not followed even when it stays inside the tree: its files
                # would be uploaded twice, or forever in a loop.
                dirnames.remove(dirname)
                on_skip(f"skipped {here / dirname}: symlink to a folder, not followed (--symlinks follow does)")
        for filename in sorted(filenames):
            path = here / filename
            if path.is_symlink():
                if symlinks == "skip":
                    on_skip(f"skipped {path}: symlink (--symlinks skip)")
                    continue
                try:
                    target = path.resolve(strict=True)
                except (OSError, RuntimeError):
                    on_skip(f"skipped {path}: broken symlink")
                    continue
                if not follow and not target.is_relative_to(root):
                    on_skip(f"skipped {path}: symlink points outside {top} (to {target}; --symlinks follow takes it)")
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


def add_checksums(
    files: list[LocalFile], *, parallel: int, progress: Progress, max_size: int | None = None
) -> list[LocalFile]:
    """The files with their sha256 (read once here, once more to upload).

    Files over ``max_size`` (default CHECKSUM_UP_TO, the API's multipart
    threshold) are left without: they are uploaded in parts, each checked by
    storage with its CRC64NVME, and reading a huge file twice would double
    its upload time. A server with a higher threshold takes such a file in
    one PUT without a sha256; one with a lower threshold drops the sha256 of
    a file it wants in parts (one read wasted, nothing lost).
    Threads help: hashlib releases the GIL while it hashes large buffers.
    """
    limit = CHECKSUM_UP_TO if max_size is None else max_size
    todo = [f for f in files if f.size <= limit]
    with progress.bytes("checksum", sum(f.size for f in todo)) as task:

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
            done = {local.name: local for local in pool.map(digest, todo)}
    return [done.get(f.name, f) for f in files]


# -- uploads -----------------------------------------------------------------


@dataclass
class FileUpload:
    """One file to send: a single PUT, or the parts of a multipart upload that storage does not hold yet.

    ``upload`` None for a single PUT: ask the API for a fresh URL first (a
    resumed upload, whose first URL may have expired).
    """

    local: LocalFile
    file_id: str
    upload: dict[str, Any] | None = None
    multipart: MultipartState | None = None
    abandoned: threading.Event = field(default_factory=threading.Event, repr=False)

    @classmethod
    def from_entry(cls, local: LocalFile, entry: dict[str, Any]) -> FileUpload:
        """From the file's entry in the answer of ``POST /jobs``. TransferFailed if its plan is unusable."""
        if entry.get("multipart"):
            return cls(local, entry["file_id"], multipart=MultipartState.from_answer(local.size, entry["multipart"]))
        return cls(local, entry["file_id"], upload=entry.get("upload"))

    @property
    def bytes_to_send(self) -> int:
        if self.multipart is None:
            return self.local.size
        return sum(self.multipart.plan.part_length(n) for n in self.multipart.missing())


class UploadEvents(Protocol):
    """What the uploader tells as it goes (the resume journal listens), from the thread that called upload_all."""

    def part_sent(self, file_id: str, part: SentPart) -> None: ...
    def file_done(self, file_id: str) -> None: ...


class _NoEvents:
    def part_sent(self, file_id: str, part: SentPart) -> None:
        pass

    def file_done(self, file_id: str) -> None:
        pass


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


class _BufferSource:
    """A part already in memory, read out in the blocks the HTTP layer asks for."""

    def __init__(self, view: memoryview) -> None:
        self._view = view
        self._at = 0

    def read(self, size: int = -1) -> bytes:
        end = len(self._view) if size is None or size < 0 else min(len(self._view), self._at + size)
        data = bytes(self._view[self._at : end])
        self._at = end
        return data


class Uploader:
    """Sends files to their presigned URLs in parallel: whole files, and the parts of large ones.

    One pool of ``parallel`` threads serves both: a part is a unit of work
    like a small file, so one huge file keeps every thread busy. Memory is
    bounded by ``parallel`` part buffers. Multipart files and fresh URLs
    need ``api`` (the job's :class:`JobApi`).
    """

    def __init__(
        self,
        *,
        parallel: int = 8,
        policy: RetryPolicy = RetryPolicy(),
        timeout: tuple[float, float] = (5.0, 120.0),
        sessions: ThreadSessions | None = None,
        progress: Progress | None = None,
        api: JobApi | None = None,
        cancel: threading.Event | None = None,
    ) -> None:
        self._parallel = parallel
        self._policy = policy
        self._timeout = timeout
        self._sessions = sessions or ThreadSessions()
        self._progress = progress or Progress(bars=False)
        self._api = api
        self.cancel = cancel or threading.Event()
        self._buffers = threading.local()

    @property
    def api(self) -> JobApi | None:
        return self._api

    def upload_all(
        self,
        items: Sequence[FileUpload | tuple[LocalFile, dict[str, Any]]],
        *,
        events: UploadEvents | None = None,
    ) -> list[UploadResult]:
        """Upload every file (or (file, API file entry) pair); one result per item, in order."""
        events = events or _NoEvents()
        results: dict[int, UploadResult] = {}
        work: dict[int, FileUpload] = {}
        for index, item in enumerate(items):
            if isinstance(item, FileUpload):
                work[index] = item
                continue
            local, entry = item
            try:
                work[index] = FileUpload.from_entry(local, entry)
            except TransferFailed as exc:
                results[index] = UploadResult(local, entry["file_id"], exc.code, exc.message)
        with self._progress.bytes("upload", sum(w.bytes_to_send for w in work.values())) as task:
            pool = ThreadPoolExecutor(max_workers=self._parallel, thread_name_prefix="squeezer-upload")
            try:
                self._run(pool, work, results, events, task.advance)
            except BaseException:
                self.cancel.set()  # workers stop at their next read
                pool.shutdown(wait=True, cancel_futures=True)
                raise
            finally:
                pool.shutdown(wait=True)
                self._sessions.close()
        return [results[i] for i in range(len(items))]

    def _run(
        self,
        pool: ThreadPoolExecutor,
        work: dict[int, FileUpload],
        results: dict[int, UploadResult],
        events: UploadEvents,
        on_bytes: Callable[[int], None],
    ) -> None:
        futures: dict[Future[Any], tuple[int, int | None]] = {}
        by_file: dict[int, list[Future[Any]]] = {}
        parts_left: dict[int, int] = {}
        ready: list[int] = []  # multipart files with every part held already: complete them
        for index, item in work.items():
            if item.multipart is None:
                futures[pool.submit(self._upload_one, item, on_bytes)] = (index, None)
                continue
            missing = item.multipart.missing()
            parts_left[index] = len(missing)
            by_file[index] = []
            for part_number in missing:
                future = pool.submit(self._send_part, item, part_number, on_bytes)
                futures[future] = (index, part_number)
                by_file[index].append(future)
            if not missing:
                ready.append(index)

        def finish(index: int, result: UploadResult) -> None:
            results[index] = result
            if result.ok:
                events.file_done(result.file_id)
                self._progress.detail(f"uploaded {result.file.name} ({human_size(result.file.size)})")
            else:
                self._progress.error(f"upload failed: {result.file.name}: {result.error_code}: {result.error_message}")

        for index in ready:
            finish(index, self._complete(work[index]))
        for future in as_completed(futures):
            index, number = futures[future]
            if future.cancelled() or index in results:
                continue  # a part of a file that already failed
            item, outcome = work[index], future.result()
            if number is None:
                assert isinstance(outcome, UploadResult)
                finish(index, outcome)
            elif isinstance(outcome, SentPart):
                assert item.multipart is not None
                item.multipart.sent[number] = outcome
                events.part_sent(item.file_id, outcome)
                parts_left[index] -= 1
                if parts_left[index] == 0:
                    finish(index, self._complete(item))
            elif isinstance(outcome, UploadResult):
                item.abandoned.set()  # its other parts are not sent
                for other in by_file[index]:
                    other.cancel()
                finish(index, outcome)

    # -- single files ----------------------------------------------------------
    def _upload_one(self, item: FileUpload, on_bytes: Callable[[int], None]) -> UploadResult:
        local = item.local
        try:
            upload = item.upload if item.upload is not None else self._fresh_upload(item)
            if upload is None:
                return UploadResult(local, item.file_id)  # the server has it already
            try:
                self.upload(local, upload, on_bytes=on_bytes)
            except TransferFailed as exc:
                if exc.status != 403 or self._api is None:
                    raise
                # The URL expired (a long queue of large files before this one): ask for a new one, once.
                self._progress.note(f"storage refused the URL of {local.name} ({exc.message}): asking for a new one")
                upload = self._fresh_upload(item)
                if upload is not None:
                    self.upload(local, upload, on_bytes=on_bytes)
        except TransferFailed as exc:
            return UploadResult(local, item.file_id, exc.code, exc.message)
        except OSError as exc:
            return UploadResult(local, item.file_id, "unreadable", f"cannot read {local.path}: {exc.strerror or exc}")
        except SqueezerCliError as exc:
            failed = api_failure(exc)
            return UploadResult(local, item.file_id, failed.code, failed.message)
        return UploadResult(local, item.file_id)

    def _fresh_upload(self, item: FileUpload) -> dict[str, Any] | None:
        """A new presigned PUT for a pending file; None if the server no longer waits for it."""
        if self._api is None:
            raise TransferFailed("no_upload_url", "the API gave no upload URL for this file")
        try:
            answer = self._api.renew_upload(item.file_id)
        except ApiError as exc:
            if exc.status == 409 and exc.code == "not_pending":
                return None
            raise
        upload = answer.get("upload") if isinstance(answer.get("upload"), dict) else answer
        if not isinstance(upload, dict) or not upload.get("url"):
            raise TransferFailed("bad_response", "the API's fresh upload has no URL")
        return upload

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

    # -- parts -----------------------------------------------------------------
    def _send_part(
        self, item: FileUpload, number: int, on_bytes: Callable[[int], None]
    ) -> SentPart | UploadResult | None:
        if item.abandoned.is_set() or self.cancel.is_set():
            return None
        local = item.local
        try:
            return self.send_part(item, number, on_bytes=on_bytes)
        except TransferFailed as exc:
            return UploadResult(local, item.file_id, exc.code, f"part {number}: {exc.message}")
        except OSError as exc:
            return UploadResult(local, item.file_id, "unreadable", f"cannot read {local.path}: {exc.strerror or exc}")
        except SqueezerCliError as exc:
            failed = api_failure(exc)
            return UploadResult(local, item.file_id, failed.code, f"part {number}: {failed.message}")

    def send_part(self, item: FileUpload, number: int, *, on_bytes: Callable[[int], None] = lambda n: None) -> SentPart:
        """Read part ``number``, checksum it, get it signed and PUT it; what storage now holds.

        Storage checks the part's CRC64NVME as it arrives: a refusal
        (BadDigest) reads the part again and sends it once more, a second
        one fails the file.
        """
        state, local = item.multipart, item.local
        if state is None or self._api is None:
            raise TransferFailed("not_multipart", f"{local.name} is not a multipart upload")
        api = self._api
        buffer = self._buffer(state.plan.part_size)
        for reading in (1, 2):
            view = read_part(local.path, state.plan, number, buffer, mtime_ns=local.mtime_ns)
            # awscrt reads any buffer; the helper's annotation says bytes, and a copy would cost a part.
            crc = multipart.encode(multipart.crc64nvme(cast(bytes, view)))
            try:
                etag = self._put_part(
                    functools.partial(api.sign_part, item.file_id, number, crc), view, on_bytes, local.name, number
                )
            except TransferFailed as exc:
                if exc.storage_code != "BadDigest":
                    raise
                if reading == 1:
                    self._progress.note(
                        f"storage refused part {number} of {local.name} (BadDigest: what arrived did not match "
                        "its CRC64NVME): reading it again"
                    )
                    continue
                raise TransferFailed(
                    "bad_digest",
                    "storage refused it twice (BadDigest): what arrived did not match its CRC64NVME; "
                    "is the file being written to, or the disk or memory failing?",
                    status=exc.status,
                    storage_code=exc.storage_code,
                ) from exc
            return SentPart(number, crc, len(view), etag)
        raise AssertionError("unreachable")  # pragma: no cover

    def _put_part(
        self,
        sign: Callable[[], dict[str, Any]],
        view: memoryview,
        on_bytes: Callable[[int], None],
        name: str,
        number: int,
    ) -> str | None:
        """PUT a part with retries; a 403 (its URL expired during the retries) signs it again, once."""
        request = sign()
        try:
            return self._put_buffer(request, view, on_bytes, f"part {number} of {name}")
        except TransferFailed as exc:
            if exc.status != 403:
                raise
            self._progress.note(f"storage refused the URL of part {number} of {name} ({exc.message}): signing it again")
        return self._put_buffer(sign(), view, on_bytes, f"part {number} of {name}")

    def _put_buffer(
        self, request: dict[str, Any], view: memoryview, on_bytes: Callable[[int], None], label: str
    ) -> str | None:
        session = self._sessions.get()
        headers = dict(request.get("headers") or {})

        def attempt() -> str | None:
            body = _ProgressReader(_BufferSource(view), len(view), on_bytes, self.cancel)
            try:
                response = session.request(
                    request.get("method", "PUT"), request["url"], data=body, headers=headers, timeout=self._timeout
                )
                with response:
                    check_response(response)
                    etag = response.headers.get("ETag")
                    return str(etag) if etag is not None else None
            except TRANSPORT_ERRORS as exc:
                _roll_back(body, on_bytes)
                raise RetryableError(*describe_transport_error(exc)) from exc
            except BaseException:
                _roll_back(body, on_bytes)
                raise

        def retrying(attempt_no: int, exc: RetryableError, wait: float) -> None:
            self._progress.note(f"retrying {label} in {wait:.1f}s: {exc.message}")

        return run_with_retries(attempt, self._policy, on_retry=retrying)

    def _buffer(self, size: int) -> bytearray:
        """This thread's part buffer, grown to ``size``: memory stays at threads x part size."""
        buffer: bytearray | None = getattr(self._buffers, "buffer", None)
        if buffer is None or len(buffer) < size:
            buffer = self._buffers.buffer = bytearray(size)
        return buffer

    # -- completing ------------------------------------------------------------
    def _complete(self, item: FileUpload) -> UploadResult:
        """Join a multipart file's parts, with the whole file's CRC64NVME combined from theirs."""
        local, state = item.local, item.multipart
        assert state is not None and self._api is not None
        try:
            self._api.complete(item.file_id, state.whole_crc64nvme())
        except TransferFailed as exc:
            return UploadResult(local, item.file_id, exc.code, exc.message)
        except ApiError as exc:
            if exc.code in COMPLETE_REFUSALS or not self._already_completed(item):
                failed = api_failure(exc)
                return UploadResult(local, item.file_id, failed.code, f"completing the upload: {failed.message}")
        except SqueezerCliError as exc:
            failed = api_failure(exc)
            return UploadResult(local, item.file_id, failed.code, f"completing the upload: {failed.message}")
        return UploadResult(local, item.file_id)

    def _already_completed(self, item: FileUpload) -> bool:
        # A retried complete whose first try went through is refused: the file then waits no more.
        assert self._api is not None
        try:
            state = self._api.file_state(item.file_id)
        except SqueezerCliError:
            return False
        return state not in (None, "pending")


def _roll_back(body: object, on_bytes: Callable[[int], None]) -> None:
    if isinstance(body, _ProgressReader) and body.count:
        on_bytes(-body.count)
