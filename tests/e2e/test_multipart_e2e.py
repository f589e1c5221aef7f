"""A multipart upload through the API's routes on the real local stack (HTTP, presigned part URLs)."""

from __future__ import annotations

import hashlib
import io
import time

import requests
from tenancy import Api

from chalicelib import multipart
from chalicelib.codecs import decompress_stream
from chalicelib.domain import Algorithm

MiB = 1024**2
FINAL = {"completed", "failed", "partially_failed", "cancelled"}


def _data(size: int) -> bytes:
    line = b"2026-12-04T06:00:00Z GET /api/v1/items?page=%d 200 %d ms\n"
    out = bytearray()
    i = 0
    while len(out) < size:
        out += line % (i, i % 997)
        i += 1
    return bytes(out[:size])


def _send(api: Api, job_id: str, file_id: str, data: bytes, numbers: list[int]) -> None:
    plan = multipart.plan(len(data))
    pieces = {n: data[plan.part_offset(n) : plan.part_offset(n) + plan.part_length(n)] for n in numbers}
    body = {
        "parts": [{"part_number": n, "crc64nvme": multipart.encode(multipart.crc64nvme(p))} for n, p in pieces.items()]
    }
    signed = api.post(f"/jobs/{job_id}/files/{file_id}/parts", json=body)
    assert signed.status_code == 200, signed.text
    with requests.Session() as session:
        for part in signed.json()["parts"]:
            put = session.put(part["url"], data=pieces[part["part_number"]], headers=part["headers"], timeout=60)
            assert put.status_code == 200, put.text


def test_parts_signed_in_batches_listed_completed_compressed_byte_exact(local_stack):
    api = Api.of(local_stack)
    data = _data(64 * MiB + 1)  # 1 byte over the threshold: 9 parts, the last of 1 byte
    created = api.post("/jobs", json={"files": [{"name": "big.log", "size": len(data)}], "algorithm": "zstd"})
    assert created.status_code == 201, created.text
    entry = created.json()["files"][0]
    assert entry["upload"] is None
    assert entry["multipart"]["part_count"] == 9 and entry["multipart"]["checksum_algorithm"] == "CRC64NVME"
    job_id, file_id = created.json()["job_id"], entry["file_id"]

    _send(api, job_id, file_id, data, [1, 2, 3, 4])
    listed = api.get(f"/jobs/{job_id}/files/{file_id}/parts").json()
    assert [p["part_number"] for p in listed["parts"]] == [1, 2, 3, 4]  # what a resumed upload need not send
    crc = multipart.encode(multipart.crc64nvme(data))
    early = api.post(f"/jobs/{job_id}/files/{file_id}/complete", json={"crc64nvme": crc})
    assert early.status_code == 409 and early.json()["error"]["code"] == "parts_missing"
    _send(api, job_id, file_id, data, [5, 6, 7, 8, 9])
    done = api.post(f"/jobs/{job_id}/files/{file_id}/complete", json={"crc64nvme": crc})
    assert done.status_code == 200, done.text

    deadline = time.monotonic() + 120
    while (job := api.get(f"/jobs/{job_id}").json())["state"] not in FINAL:
        assert time.monotonic() < deadline, job
        time.sleep(0.3)
    file = job["files"][0]
    assert job["state"] == "completed", file
    assert file["checksum"] == {"algorithm": "crc64nvme", "value": crc}
    result = requests.get(file["download_url"], timeout=60)
    plain = io.BytesIO()
    decompress_stream(io.BytesIO(result.content), plain, Algorithm.ZSTD)
    assert hashlib.sha256(plain.getvalue()).digest() == hashlib.sha256(data).digest()


def test_abort_and_the_routes_errors_over_http(local_stack):
    api = Api.of(local_stack)
    created = api.post("/jobs", json={"files": [{"name": "big.bin", "size": 65 * MiB}], "algorithm": "gzip"}).json()
    job_id, file_id = created["job_id"], created["files"][0]["file_id"]
    bad = api.post(
        f"/jobs/{job_id}/files/{file_id}/parts", json={"parts": [{"part_number": 99, "crc64nvme": "AAAAAAAAAAA="}]}
    )
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_part_number"
    assert api.get(f"/jobs/{job_id}/files/f_nope/parts").json()["error"]["code"] == "file_not_found"
    aborted = api.delete(f"/jobs/{job_id}/files/{file_id}/upload")
    assert aborted.status_code == 200 and aborted.json()["error"]["code"] == "upload_aborted"
    again = api.delete(f"/jobs/{job_id}/files/{file_id}/upload")
    assert again.status_code == 409 and again.json()["error"]["code"] == "upload_finished"
