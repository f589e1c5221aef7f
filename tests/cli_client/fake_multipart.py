"""A fake API with multipart uploads, for the client's tests (served by conftest.LocalServer).

It extends test_upload_cli's FakeApi (jobs, single PUTs, status, results)
with the multipart routes: files above ``threshold`` bytes are cut into
``part_size`` parts (tiny, unlike S3's 5 MiB minimum: the client must not
care), part URLs are "signed" with the CRC64NVME the client declares, and a
part PUT is checked against it as S3 does (400 BadDigest). ``faults`` holds
replies to give instead of storing a part, per (file index, part number).
"""

from __future__ import annotations

import json
import math
import re
import time
from collections import defaultdict
from dataclasses import dataclass, field

from chalicelib import multipart

from .conftest import Reply, Seen
from .test_upload_cli import FakeApi

FILE_ROUTE = re.compile(r"/jobs/([^/]+)/files/([^/]+)/(parts|complete|upload)")
PART_ROUTE = re.compile(r"/part/([^/]+)/(\d+)")


def bad_digest() -> Reply:
    return Reply(
        400, b"<Error><Code>BadDigest</Code><Message>The CRC64NVME you specified did not match</Message></Error>"
    )


def expired() -> Reply:
    return Reply(403, b"<Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>")


@dataclass
class Upload:
    file_id: str
    size: int
    part_size: int
    part_count: int
    parts: dict[int, tuple[bytes, str]] = field(default_factory=dict)  # number -> (data, crc)
    completed_with: str | None = None
    aborted: bool = False

    def length(self, number: int) -> int:
        return self.part_size if number < self.part_count else self.size - self.part_size * (self.part_count - 1)


class MultipartFakeApi(FakeApi):
    def __init__(self, *, threshold: int = 1000, part_size: int = 256, put_delay: float = 0.0) -> None:
        super().__init__()
        self.threshold = threshold
        self.part_size = part_size
        self.put_delay = put_delay
        self.uploads: dict[str, Upload] = {}
        self.faults: dict[tuple[str, int], list[Reply]] = defaultdict(list)
        self.signed: list[tuple[str, list[int]]] = []  # (file id, part numbers) per signing request
        self.declared: dict[tuple[str, int], str] = {}  # (file id, part number) -> the CRC64NVME last signed
        self.part_puts: list[tuple[str, int, int]] = []  # (file id, number, bytes) per PUT received
        self.single_puts: list[str] = []
        self.renewed: list[str] = []
        self.on_part_put = None  # called (file_id, number) before a part PUT is answered

    # -- routing --------------------------------------------------------------
    def __call__(self, seen: Seen) -> Reply:
        path = seen.path.split("?", 1)[0]
        if seen.method == "PUT" and (m := PART_ROUTE.fullmatch(path)):
            return self._put_part(m.group(1), int(m.group(2)), seen)
        if seen.method == "PUT" and path.startswith("/upload/"):
            self.single_puts.append(path.split("/")[2])
        if m := FILE_ROUTE.fullmatch(path):
            with self._lock:
                return self._file_route(seen.method, m.group(1), m.group(2), m.group(3), seen.body)
        return super().__call__(seen)

    def _create(self, body: dict) -> Reply:
        reply = super()._create(body)
        created = json.loads(reply.body)
        for entry in created["files"]:
            entry["multipart"] = None
            if entry["size"] > self.threshold:
                count = math.ceil(entry["size"] / self.part_size)
                self.uploads[entry["file_id"]] = Upload(entry["file_id"], entry["size"], self.part_size, count)
                entry["upload"] = None
                entry["multipart"] = {
                    "upload_id": f"up-{entry['file_id']}",
                    "part_size": self.part_size,
                    "part_count": count,
                    "checksum_algorithm": "CRC64NVME",
                }
        return Reply.json(201, created)

    def _file_route(self, method: str, job_id: str, file_id: str, what: str, body: bytes) -> Reply:
        job = self.jobs.get(job_id)
        if job is None:
            return _error(404, "job_not_found", f"no job {job_id}")
        if not any(f["file_id"] == file_id for f in job["files"]):
            return _error(404, "file_not_found", f"no file {file_id}")
        upload = self.uploads.get(file_id)
        if what == "upload" and method == "POST":
            if upload is not None or file_id in self.bodies:
                return _error(409, "not_pending", "the file is not waiting for a single upload")
            self.renewed.append(file_id)
            size = next(f["size"] for f in job["files"] if f["file_id"] == file_id)
            url = f"{self.url}/upload/{file_id}?X-Amz-Signature=fresh"
            headers = {"Content-Length": str(size), "Content-Type": "application/octet-stream"}
            return Reply.json(200, {"upload": {"method": "PUT", "url": url, "headers": headers, "expires_in": 3600}})
        if upload is None:
            return _error(409, "not_multipart", "the file is not uploaded in parts")
        if what == "upload" and method == "DELETE":
            upload.aborted = True
            return Reply.json(200, {"file_id": file_id, "state": "failed"})
        if upload.aborted or upload.completed_with:
            return _error(409, "upload_gone", "the multipart upload is no more")
        if what == "parts" and method == "GET":
            parts = [
                {"part_number": n, "size": len(data), "etag": f'"etag-{n}"', "crc64nvme": crc}
                for n, (data, crc) in sorted(upload.parts.items())
            ]
            return Reply.json(
                200,
                {
                    "upload_id": f"up-{file_id}",
                    "part_size": upload.part_size,
                    "part_count": upload.part_count,
                    "parts": parts,
                },
            )
        if what == "parts" and method == "POST":
            asked = json.loads(body)["parts"]
            if not 1 <= len(asked) <= multipart.MAX_PARTS_PER_SIGNING:
                return _error(400, "invalid_parts", "1 to 100 parts")
            self.signed.append((file_id, [p["part_number"] for p in asked]))
            signed = []
            for p in asked:
                n, crc = p["part_number"], p["crc64nvme"]
                if multipart.decode(crc) is None or not 1 <= n <= upload.part_count:
                    return _error(400, "invalid_parts", f"part {n}")
                self.declared[(file_id, n)] = crc
                signed.append(
                    {
                        "part_number": n,
                        "method": "PUT",
                        "url": f"{self.url}/part/{file_id}/{n}?X-Amz-Signature=secret",
                        "headers": {"Content-Length": str(upload.length(n)), "x-amz-checksum-crc64nvme": crc},
                        "expires_in": 900,
                    }
                )
            return Reply.json(200, {"parts": signed})
        if what == "complete" and method == "POST":
            missing = [n for n in range(1, upload.part_count + 1) if n not in upload.parts]
            if missing:
                return _error(409, "parts_missing", f"parts missing: {missing}")
            data = b"".join(upload.parts[n][0] for n in range(1, upload.part_count + 1))
            crc = json.loads(body).get("crc64nvme")
            if multipart.decode(crc) is None:
                return _error(400, "invalid_checksum", "not a CRC64NVME")
            if crc != multipart.encode(multipart.crc64nvme(data)):
                return _error(409, "checksum_mismatch", "S3 refused the whole file's CRC64NVME")
            upload.completed_with = crc
            self.bodies[file_id] = data
            return Reply.json(200, {"file_id": file_id, "state": "queued"})
        return _error(405, "method_not_allowed", f"{method} {what}")

    def _put_part(self, file_id: str, number: int, seen: Seen) -> Reply:
        if self.on_part_put is not None:
            self.on_part_put(file_id, number)
        with self._lock:
            self.part_puts.append((file_id, number, len(seen.body)))
            faults = self.faults.get((file_id, number))
            if faults:
                return faults.pop(0)
            upload = self.uploads[file_id]
            headers = {k.lower(): v for k, v in seen.headers.items()}
            if len(seen.body) != upload.length(number) or headers.get("content-length") != str(upload.length(number)):
                return Reply(400, b"<Error><Code>IncompleteBody</Code></Error>")
            actual = multipart.encode(multipart.crc64nvme(seen.body))
            if headers.get("x-amz-checksum-crc64nvme") != actual:
                return bad_digest()
        if self.put_delay:
            time.sleep(self.put_delay)  # slow storage: a kill lands mid-upload
        with self._lock:
            upload.parts[number] = (seen.body, actual)
        return Reply(200, headers={"ETag": f'"etag-{number}"'})

    # -- what the tests look at -----------------------------------------------
    def part_bytes(self) -> int:
        return sum(n for _, _, n in self.part_puts)

    def held(self, file_id: str) -> set[int]:
        with self._lock:
            return set(self.uploads[file_id].parts)


def _error(status: int, code: str, message: str) -> Reply:
    return Reply.json(status, {"error": {"code": code, "message": message}})


def serve_multipart(serve, **kwargs) -> MultipartFakeApi:
    api = MultipartFakeApi(**kwargs)
    api.url = serve(api).url
    return api
