"""Multipart uploads from the client's side: read a part, checksum it, get it signed, send it.

    JobApi         the API calls an upload makes for one job, from any worker
                   thread: one request at a time on the API client's session
                   (a Session is not thread-safe), part signing batched
    MultipartState a file's upload id, part plan and the parts storage holds
    read_part      one part of a local file into a reused buffer

Each part is signed only once its CRC64NVME is known, just before it is
sent, so no URL waits long enough to expire. Threads that need a URL while
a signing request is in flight wait and are signed together in the next
request (up to 100 parts): the batch grows by itself when the API is slow.
The plan comes from the server (``part_size``, ``part_count``); the client
enforces none of S3's limits, the server does.
"""

from __future__ import annotations

import math
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chalicelib import multipart
from chalicelib.multipart import PartPlan

from .api import ApiClient
from .errors import ApiError, SqueezerCliError, TokenRefused
from .journal import SentPart
from .transfer import Cancelled, TransferFailed

# Asked of the API in one request, at most (its own limit).
MAX_BATCH = multipart.MAX_PARTS_PER_SIGNING
# Errors of POST .../complete that say the parts or the checksum are wrong: the file fails as they say.
COMPLETE_REFUSALS = frozenset({"parts_missing", "part_size_mismatch", "checksum_mismatch", "invalid_checksum"})


@dataclass
class MultipartState:
    """A file's multipart upload: its id, its plan and the parts storage holds (by number)."""

    upload_id: str
    plan: PartPlan
    sent: dict[int, SentPart] = field(default_factory=dict)

    @classmethod
    def from_answer(cls, size: int, answer: dict[str, Any]) -> MultipartState:
        """From the ``multipart`` of ``POST /jobs`` or the answer of ``GET .../parts`` (which adds the parts held)."""
        try:
            upload_id = str(answer["upload_id"])
            part_size, part_count = int(answer["part_size"]), int(answer["part_count"])
        except (KeyError, TypeError, ValueError):
            raise TransferFailed(
                "bad_response", "the API's multipart answer lacks upload_id/part_size/part_count"
            ) from None
        if part_size < 1 or part_count != math.ceil(size / part_size):
            raise TransferFailed(
                "bad_response",
                f"the API's part plan ({part_count} parts of {part_size} bytes) does not cut {size} bytes",
            )
        state = cls(upload_id, PartPlan(size=size, part_size=part_size, count=part_count))
        for entry in answer.get("parts") or []:
            part = _held_part(entry)
            if part is not None and part.size == state.plan.part_length(part.number):
                state.sent[part.number] = part
        return state

    def missing(self) -> list[int]:
        return [n for n in range(1, self.plan.count + 1) if n not in self.sent]

    def whole_crc64nvme(self) -> str:
        """The whole file's CRC64NVME, combined from the parts' (no part is read again)."""
        values = []
        for number in range(1, self.plan.count + 1):
            part = self.sent[number]
            crc = multipart.decode(part.crc64nvme)
            if crc is None:
                raise TransferFailed("bad_checksum", f"part {number} has no usable CRC64NVME: {part.crc64nvme!r}")
            values.append((crc, part.size))
        return multipart.encode(multipart.combine_parts(values))


def _held_part(entry: object) -> SentPart | None:
    if not isinstance(entry, dict):
        return None
    crc = entry.get("crc64nvme")
    if multipart.decode(crc) is None:
        return None  # storage holds it but cannot say its checksum: send it again
    try:
        return SentPart(int(entry["part_number"]), str(crc), int(entry["size"]), entry.get("etag"))
    except (KeyError, TypeError, ValueError):
        return None


def read_part(path: Path, plan: PartPlan, number: int, buffer: bytearray, *, mtime_ns: int | None) -> memoryview:
    """Part ``number`` of the file, read into ``buffer`` (which must hold a whole part).

    TransferFailed(file_changed) if the file's size or mtime is no longer
    what the upload started with: its parts would not make one file.
    """
    offset, length = plan.part_offset(number), plan.part_length(number)
    with open(path, "rb", buffering=0) as source:
        stat = os.fstat(source.fileno())
        _check_unchanged(path, plan.size, mtime_ns, stat.st_size, stat.st_mtime_ns)
        view = memoryview(buffer)[:length]
        source.seek(offset)
        filled = 0
        while filled < length:
            got = source.readinto(view[filled:])
            if not got:
                raise TransferFailed("file_changed", f"{path} ended early: it changed since the upload started")
            filled += got
    return view


def _check_unchanged(path: Path, size: int, mtime_ns: int | None, now_size: int, now_mtime_ns: int) -> None:
    if now_size != size:
        raise TransferFailed(
            "file_changed", f"the file changed size since the upload started ({size} -> {now_size} bytes)"
        )
    if mtime_ns is not None and now_mtime_ns != mtime_ns:
        raise TransferFailed("file_changed", "the file was modified since the upload started")


class JobApi:
    """One job's upload calls, safe to make from every worker thread.

    Calls go one at a time through the one API client (its session is not
    thread-safe); the API answers in well under the time a part takes to
    send, and threads waiting for a URL meanwhile are signed in one request.
    """

    def __init__(self, api: ApiClient, job_id: str, *, cancel: threading.Event | None = None) -> None:
        self.api = api
        self.job_id = job_id
        self._cancel = cancel or threading.Event()
        self._call_lock = threading.Lock()
        self._cond = threading.Condition()
        self._waiting: dict[str, dict[int, str]] = {}  # file id -> part number -> crc
        self._signed: dict[tuple[str, int], dict[str, Any] | BaseException] = {}
        self._signing = False
        self.signing_requests = 0

    def sign_part(self, file_id: str, number: int, crc64nvme: str) -> dict[str, Any]:
        """The presigned PUT of one part (method, url, headers), signed with its CRC64NVME."""
        key = (file_id, number)
        with self._cond:
            self._waiting.setdefault(file_id, {})[number] = crc64nvme
            while key not in self._signed:
                if self._cancel.is_set():
                    self._waiting.get(file_id, {}).pop(number, None)
                    raise Cancelled()
                if self._signing:
                    self._cond.wait(timeout=0.5)
                    continue
                batch = self._take_batch(file_id, number)
                self._signing = True
                self._cond.release()
                try:
                    results = self._sign(file_id, batch)
                finally:
                    self._cond.acquire()
                    self._signing = False
                self._signed.update(results)
                self._cond.notify_all()
            outcome = self._signed.pop(key)
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    def _take_batch(self, file_id: str, number: int) -> list[tuple[int, str]]:
        waiting = self._waiting[file_id]
        numbers = [number] + sorted(n for n in waiting if n != number)[: MAX_BATCH - 1]
        batch = [(n, waiting.pop(n)) for n in numbers]
        if not waiting:
            del self._waiting[file_id]
        return batch

    def _sign(
        self, file_id: str, batch: list[tuple[int, str]]
    ) -> dict[tuple[str, int], dict[str, Any] | BaseException]:
        try:
            with self._call_lock:
                self.signing_requests += 1
                answer = self.api.sign_parts(self.job_id, file_id, batch)
        except Exception as exc:  # noqa: BLE001 - handed to every thread of the batch, which reports it
            return {(file_id, n): exc for n, _ in batch}
        by_number = {p.get("part_number"): p for p in answer if isinstance(p, dict)}
        results: dict[tuple[str, int], dict[str, Any] | BaseException] = {}
        for n, _ in batch:
            signed = by_number.get(n)
            if signed is None or not signed.get("url"):
                results[(file_id, n)] = TransferFailed("bad_response", f"the API did not sign part {n}")
            else:
                results[(file_id, n)] = signed
        return results

    def complete(self, file_id: str, crc64nvme: str) -> dict[str, Any]:
        with self._call_lock:
            return self.api.complete_upload(self.job_id, file_id, crc64nvme)

    def add_files(self, files: list[dict[str, Any]], *, more_files: bool) -> dict[str, Any]:
        """POST /jobs/{id}/files, between the upload threads' calls."""
        with self._call_lock:
            return self.api.add_files(self.job_id, files, more_files=more_files)

    def renew_upload(self, file_id: str) -> dict[str, Any]:
        with self._call_lock:
            return self.api.renew_upload(self.job_id, file_id)

    def list_parts(self, file_id: str) -> dict[str, Any]:
        with self._call_lock:
            return self.api.list_parts(self.job_id, file_id)

    def abort(self, file_id: str) -> dict[str, Any]:
        with self._call_lock:
            return self.api.abort_upload(self.job_id, file_id)

    def file_state(self, file_id: str) -> str | None:
        """The file's state on the server now (None if the job does not list it)."""
        with self._call_lock:
            status = self.api.get_job(self.job_id)
        return next((f.get("state") for f in status.get("files", []) if f.get("file_id") == file_id), None)


def api_failure(exc: SqueezerCliError) -> TransferFailed:
    """An API error met while uploading a file, as that file's failure."""
    if isinstance(exc, ApiError) and not isinstance(exc, TokenRefused):
        return TransferFailed(exc.code, exc.api_message or exc.message, status=exc.status)
    if isinstance(exc, ApiError):
        return TransferFailed(exc.code, exc.message, status=exc.status)
    return TransferFailed("api_unreachable", exc.message)
