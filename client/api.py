"""A small client for the Squeezer HTTP API (see chalicelib/views.py for the shapes).

Every failure becomes one of two errors from :mod:`client.errors`:
``ApiUnreachable`` (no answer) or ``ApiError`` (an answer with an error; a
401 is its subclass ``TokenRefused``, whose message says what to do).
Reads (GET) are retried on connection trouble, 5xx and 429, and so are the
requests that are safe to repeat (signing parts, a fresh upload URL,
completing or aborting an upload); creating a job is not, because a retried
POST could create the job twice.

The token goes in ``Authorization: Bearer`` on this client's own session
only. Presigned S3 URLs are fetched with the bare sessions of
:mod:`client.transfer`, which never carry it (S3 would refuse a request with
two authentications, and a token must not travel to storage). Nothing here
logs headers.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import requests

from chalicelib.tokens import Token

from .errors import ApiError, ApiUnreachable, TokenRefused
from .transfer import (
    TRANSPORT_ERRORS,
    RetryableError,
    RetryPolicy,
    TransferFailed,
    describe_transport_error,
    run_with_retries,
)

USER_AGENT = "squeezer-cli/0.1"


@dataclass(frozen=True)
class Timeouts:
    connect: float = 5.0
    read: float = 30.0

    def as_tuple(self) -> tuple[float, float]:
        return (self.connect, self.read)


class ApiClient:
    def __init__(
        self,
        base_url: str,
        *,
        token: Token | None = None,
        token_origin: str | None = None,
        session: requests.Session | None = None,
        timeouts: Timeouts = Timeouts(),
        read_retries: RetryPolicy = RetryPolicy(tries=3, base_delay=0.25, max_delay=2.0),
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._session = session if session is not None else requests.Session()
        self._session.headers.setdefault("User-Agent", USER_AGENT)
        if token is not None:
            # requests drops this header itself on a redirect to another host.
            self._session.headers["Authorization"] = f"Bearer {token}"
        self._token = token
        self._token_origin = token_origin
        self._timeouts = timeouts
        self._read_retries = read_retries

    # -- endpoints -------------------------------------------------------
    def index(self) -> dict[str, Any]:
        """GET /: the service, its limits and routes."""
        return self._request("GET", "/", repeatable=True)

    def create_job(
        self, files: list[dict[str, Any]], *, algorithm: str, level: int | None, more_files: bool = False
    ) -> dict[str, Any]:
        """POST /jobs: the job with one presigned upload per file; ``more_files`` keeps it open for add_files."""
        body: dict[str, Any] = {"files": files, "algorithm": algorithm}
        if level is not None:
            body["level"] = level
        if more_files:
            body["more_files"] = True
        return self._request("POST", "/jobs", json=body)

    def add_files(self, job_id: str, files: list[dict[str, Any]], *, more_files: bool) -> dict[str, Any]:
        """POST /jobs/{id}/files: a batch for an open job, with its uploads; ``more_files`` False closes the job."""
        return self._request("POST", f"/jobs/{_segment(job_id)}/files", json={"files": files, "more_files": more_files})

    def get_job(self, job_id: str) -> dict[str, Any]:
        """GET /jobs/{id}, page after page: states, sizes, errors and download URLs of every file.

        The API answers a page of files at a time (``next_cursor``); the
        state and totals of the last page read (every page carries them
        whole) come with all the files.
        """
        path = f"/jobs/{_segment(job_id)}"
        page = self._request("GET", path)
        files = list(page.get("files", []))
        while cursor := page.get("next_cursor"):
            page = self._request("GET", path, params={"cursor": cursor})
            files += page.get("files", [])
        return {**page, "files": files, "next_cursor": None}

    def get_summary(self, job_id: str) -> dict[str, Any]:
        """GET /jobs/{id}/summary: state, counts and totals from one read, for polling."""
        return self._request("GET", f"/jobs/{_segment(job_id)}/summary")

    def list_jobs(self, *, limit: int | None = None, cursor: str | None = None) -> dict[str, Any]:
        params = {k: v for k, v in {"limit": limit, "cursor": cursor}.items() if v is not None}
        return self._request("GET", "/jobs", params=params)

    def iter_jobs(self, *, limit: int | None = None, follow: bool = False) -> Iterator[dict[str, Any]]:
        """Recent jobs, newest first; with ``follow``, every page."""
        cursor = None
        while True:
            page = self.list_jobs(limit=limit, cursor=cursor)
            yield from page.get("jobs", [])
            cursor = page.get("next_cursor")
            if not follow or not cursor:
                return

    def cancel_job(self, job_id: str) -> dict[str, Any]:
        return self._request("DELETE", f"/jobs/{_segment(job_id)}")

    def retry_job(self, job_id: str) -> dict[str, Any]:
        """POST /jobs/{id}/retry: queue again the failed files a retry can fix."""
        return self._request("POST", f"/jobs/{_segment(job_id)}/retry", json={})

    # -- uploads (multipart and resume) ----------------------------------
    def sign_parts(self, job_id: str, file_id: str, parts: list[tuple[int, str]]) -> list[dict[str, Any]]:
        """POST .../parts: a presigned PUT per ``(part number, base64 CRC64NVME)``, in the order asked."""
        body = {"parts": [{"part_number": number, "crc64nvme": crc} for number, crc in parts]}
        answer = self._request("POST", f"{_file_path(job_id, file_id)}/parts", json=body, repeatable=True)
        signed = answer.get("parts")
        if not isinstance(signed, list):
            raise ApiError(200, "bad_response", "the signed parts are not a list")
        return signed

    def list_parts(self, job_id: str, file_id: str) -> dict[str, Any]:
        """GET .../parts: the upload's plan and the parts storage already holds."""
        return self._request("GET", f"{_file_path(job_id, file_id)}/parts")

    def complete_upload(self, job_id: str, file_id: str, crc64nvme: str) -> dict[str, Any]:
        """POST .../complete: join the parts; storage checks the whole file's CRC64NVME."""
        path = f"{_file_path(job_id, file_id)}/complete"
        return self._request("POST", path, json={"crc64nvme": crc64nvme}, repeatable=True)

    def abort_upload(self, job_id: str, file_id: str) -> dict[str, Any]:
        """DELETE .../upload: give up a multipart upload (the file fails with upload_aborted)."""
        return self._request("DELETE", f"{_file_path(job_id, file_id)}/upload", repeatable=True)

    def renew_upload(self, job_id: str, file_id: str) -> dict[str, Any]:
        """POST .../upload: a fresh single-PUT ``upload`` for a file still pending (409 not_pending otherwise)."""
        return self._request("POST", f"{_file_path(job_id, file_id)}/upload", json={}, repeatable=True)

    def close(self) -> None:
        self._session.close()

    # -- plumbing --------------------------------------------------------
    def _request(self, method: str, path: str, *, repeatable: bool = False, **kwargs: Any) -> dict[str, Any]:
        """``repeatable``: a request other than GET that is safe to send twice, retried like a read."""
        url = self.base_url + path
        retried = method == "GET" or repeatable

        def attempt() -> requests.Response:
            try:
                response = self._session.request(method, url, timeout=self._timeouts.as_tuple(), **kwargs)
            except TRANSPORT_ERRORS as exc:
                code, reason = describe_transport_error(exc)
                raise RetryableError(code, reason) from exc
            if retried and (response.status_code == 429 or response.status_code >= 500):
                raise _TransientAnswer(response)
            return response

        policy = self._read_retries if retried else RetryPolicy(tries=1)
        try:
            response = run_with_retries(attempt, policy)
        except TransferFailed as exc:
            last = exc.__cause__
            if isinstance(last, _TransientAnswer):
                response = last.response  # still failing: report the API's own error
            else:
                reason = last.message if isinstance(last, RetryableError) else exc.message
                raise ApiUnreachable(self.base_url, reason) from None
        try:
            return _decode(response)
        except ApiError as exc:
            if exc.status == 401 and exc.code in ("missing_token", "invalid_token"):
                masked = self._token.masked if self._token is not None else None
                raise TokenRefused(
                    exc.status, exc.code, exc.api_message, masked=masked, origin=self._token_origin
                ) from None
            raise


class _TransientAnswer(RetryableError):
    def __init__(self, response: requests.Response) -> None:
        super().__init__(f"http_{response.status_code}", f"the API answered {response.status_code}")
        self.response = response


def _segment(value: str) -> str:
    return urllib.parse.quote(value, safe="")


def _file_path(job_id: str, file_id: str) -> str:
    return f"/jobs/{_segment(job_id)}/files/{_segment(file_id)}"


def _decode(response: requests.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        body = None
    if response.status_code >= 400:
        error = body.get("error") if isinstance(body, dict) else None
        if isinstance(error, dict):
            raise ApiError(response.status_code, str(error.get("code", "error")), str(error.get("message", "")))
        # Not our shape: API Gateway's {"message": ...}, a proxy's HTML page.
        message = body.get("message") if isinstance(body, dict) else None
        text = message or (response.text or "").strip().splitlines()[0:1]
        text = text if isinstance(text, str) else (text[0] if text else response.reason or "")
        raise ApiError(response.status_code, f"http_{response.status_code}", str(text)[:200])
    if not isinstance(body, dict):
        raise ApiError(
            response.status_code,
            "bad_response",
            "the answer is not a JSON object: is --api-url the Squeezer API?",
        )
    return body
