"""A browser's path on the local stack: presigned POST forms and CORS, over real HTTP.

A job with ``"upload_method": "post"`` gets forms; a form POSTed to the
emulator's S3 (``ObjectCreated:Post``) is compressed like a PUT upload. The
bucket's CORS rules allow the stack's own API origin (the page it serves),
and no other; the API answers preflights from that origin without a token.
"""

from __future__ import annotations

import io
import os
import time

import pytest
import requests
from tenancy import Api

from chalicelib.codecs import decompress_stream
from chalicelib.domain import Algorithm

pytestmark = pytest.mark.integration

DEADLINE = 60.0
ELSEWHERE = "https://elsewhere.example.com"


def _create(api: Api, files: dict[str, bytes]) -> dict:
    body = {
        "algorithm": "zstd",
        "upload_method": "post",
        "files": [{"name": name, "size": len(data), "content_type": "text/plain"} for name, data in files.items()],
    }
    response = api.post("/jobs", json=body)
    assert response.status_code == 201, response.text
    return response.json()


def _wait_completed(api: Api, job_id: str) -> dict:
    deadline = time.monotonic() + DEADLINE
    while True:
        job = api.get(f"/jobs/{job_id}").json()
        if job["state"] not in ("pending", "processing"):
            return job
        assert time.monotonic() < deadline, f"job {job_id} not final after {DEADLINE}s: {job['counts']}"
        time.sleep(0.3)


def test_files_posted_with_forms_are_compressed(local_stack):
    api = Api.of(local_stack)
    files = {"page/notes.txt": b"sent by a browser form\n" * 5000, "page/random.txt": os.urandom(200_000)}
    created = _create(api, files)
    with requests.Session() as session:
        for entry in created["files"]:
            upload = entry["upload"]
            assert (upload["method"], upload["headers"], entry["multipart"]) == ("POST", {}, None)
            # the form as a browser sends it: the fields in order, the file last
            response = session.post(
                upload["url"],
                data=upload["fields"],
                files={"file": (entry["name"].rsplit("/", 1)[-1], files[entry["name"]])},
                headers={"Origin": local_stack.api_url},
                timeout=30,
            )
            assert response.status_code == 204, response.text
            assert response.headers.get("Access-Control-Allow-Origin") == local_stack.api_url
    job = _wait_completed(api, created["job_id"])
    assert job["state"] == "completed", job
    for entry in job["files"]:
        download = requests.get(entry["download_url"], timeout=30)
        assert download.status_code == 200
        out = io.BytesIO()
        decompress_stream(io.BytesIO(download.content), out, Algorithm.ZSTD)
        assert out.getvalue() == files[entry["name"]]


def test_the_bucket_answers_a_preflight_for_the_stacks_own_origin_only(local_stack):
    api = Api.of(local_stack)
    created = _create(api, {"a.txt": b"abc"})
    url = created["files"][0]["upload"]["url"]

    def preflight(origin: str) -> requests.Response:
        headers = {"Origin": origin, "Access-Control-Request-Method": "POST"}
        return requests.options(url, headers=headers, timeout=10)

    allowed = preflight(local_stack.api_url)
    assert allowed.status_code == 200, allowed.text
    assert allowed.headers["Access-Control-Allow-Origin"] == local_stack.api_url
    assert "POST" in allowed.headers["Access-Control-Allow-Methods"]
    # the same page opened as localhost (a person may type either)
    port = local_stack.api_url.rsplit(":", 1)[1]
    assert preflight(f"http://localhost:{port}").status_code == 200
    refused = preflight(ELSEWHERE)
    # S3 (and moto, from the bucket's rules) refuse it with 403 "CORSResponse"; a browser
    # fails any preflight that is not a 2xx. The status is what tells the two apart here:
    # moto's server adds Access-Control-Allow-* headers to every answer, 403 included.
    assert refused.status_code == 403, refused.text
    assert "CORS" in refused.text


def test_the_api_answers_a_preflight_from_its_origin_without_a_token(local_stack):
    def preflight(origin: str) -> requests.Response:
        headers = {"Origin": origin, "Access-Control-Request-Method": "POST"}
        return requests.options(f"{local_stack.api_url}/jobs", headers=headers, timeout=10)

    allowed = preflight(local_stack.api_url)
    assert allowed.status_code == 204, allowed.text
    assert allowed.headers["Access-Control-Allow-Origin"] == local_stack.api_url
    assert allowed.headers["Access-Control-Allow-Methods"] == "GET, POST"
    assert allowed.headers["Access-Control-Allow-Headers"] == "Authorization, Content-Type"
    other = preflight(ELSEWHERE)
    assert other.status_code == 204 and "Access-Control-Allow-Origin" not in other.headers
