"""S3 adapter: presigned URLs, streaming reads and multipart result writes."""

from __future__ import annotations

import base64
import contextlib
import urllib.parse
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, BinaryIO

from botocore.exceptions import BotoCoreError, ClientError

from .aws import aws_errors
from .errors import AwsError, UploadConflict
from .multipart import CHECKSUM_ALGORITHM
from .ports import ObjectStream, PresignedPost, PresignedRequest, UploadedPart

DELETE_BATCH = 1000  # S3 DeleteObjects takes at most 1,000 keys
_NOT_FOUND = {"404", "NoSuchKey", "NotFound"}
_CHECKSUM_REFUSED = {"BadDigest", "InvalidDigest", "XAmzContentChecksumMismatch"}
_PARTS_REFUSED = {"InvalidPart", "InvalidPartOrder", "EntityTooSmall", "InvalidRequest"}


class _TranslatedBody:
    """An S3 response body whose read errors come out as AwsError (see chalicelib.aws)."""

    def __init__(self, body: Any, key: str) -> None:
        self._body = body
        self._key = key

    def read(self, size: int = -1) -> bytes:
        with aws_errors(f"reading s3 object {self._key}"):
            data: bytes = self._body.read(size)
        return data

    def close(self) -> None:
        self._body.close()


def sha256_hex_to_b64(hex_digest: str) -> str:
    return base64.b64encode(bytes.fromhex(hex_digest)).decode("ascii")


def content_disposition(filename: str) -> str:
    """An attachment header that keeps non-ASCII names (RFC 6266 / 5987)."""
    ascii_name = filename.encode("ascii", "replace").decode("ascii").replace('"', "_")
    quoted = urllib.parse.quote(filename, safe="")
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quoted}"


class S3Storage:
    """All S3 calls of the service, on one bucket."""

    def __init__(self, client: Any, bucket: str, *, part_size: int) -> None:
        self._s3 = client
        self.bucket = bucket
        self.part_size = part_size

    def presign_upload(
        self,
        key: str,
        *,
        size: int,
        content_type: str,
        sha256_hex: str | None,
        expires_in: int,
    ) -> PresignedRequest:
        """A PUT URL bound to the key, the exact size and (if given) the sha256.

        Content-Length, Content-Type and x-amz-checksum-sha256 are signed
        headers: S3 rejects an upload whose headers differ, and checks the
        body against the checksum.
        """
        params: dict[str, Any] = {
            "Bucket": self.bucket,
            "Key": key,
            "ContentLength": size,
            "ContentType": content_type,
        }
        headers = {"Content-Length": str(size), "Content-Type": content_type}
        if sha256_hex:
            params["ChecksumSHA256"] = sha256_hex_to_b64(sha256_hex)
            headers["x-amz-checksum-sha256"] = params["ChecksumSHA256"]
        with aws_errors(f"signing an upload of {key}"):
            url = self._s3.generate_presigned_url("put_object", Params=params, ExpiresIn=expires_in, HttpMethod="PUT")
        return PresignedRequest(method="PUT", url=url, headers=headers, expires_in=expires_in)

    def presign_post(
        self,
        key: str,
        *,
        size: int,
        content_type: str,
        sha256_hex: str | None,
        expires_in: int,
    ) -> PresignedPost:
        """A POST form bound to the key, the content type, the exact size and (if given) the sha256.

        boto3 adds the ``bucket`` and exact ``key`` conditions to the policy;
        ours are the Content-Type, a ``content-length-range`` of exactly
        ``size`` bytes and, with a sha256, ``x-amz-checksum-sha256``: the
        form field twin of the PUT header (an S3 additional checksum, in
        the policy so it cannot be changed or dropped; LocalStack accepts
        it without checking the body, tests/localstack). S3 answers a
        successful POST with 204 (no ``success_action_status``: nothing in
        its 201 XML body is needed, and each extra field must be in the policy).
        """
        fields = {"Content-Type": content_type}
        conditions: list[Any] = [{"Content-Type": content_type}, ["content-length-range", size, size]]
        if sha256_hex:
            fields["x-amz-checksum-sha256"] = sha256_hex_to_b64(sha256_hex)
            conditions.append({"x-amz-checksum-sha256": fields["x-amz-checksum-sha256"]})
        with aws_errors(f"signing a form upload of {key}"):
            signed = self._s3.generate_presigned_post(
                Bucket=self.bucket, Key=key, Fields=fields, Conditions=conditions, ExpiresIn=expires_in
            )
        return PresignedPost(
            url=str(signed["url"]),
            fields={str(name): str(value) for name, value in signed["fields"].items()},
            expires_in=expires_in,
        )

    def presign_download(self, key: str, *, filename: str, expires_in: int) -> str:
        with aws_errors(f"signing a download of {key}"):
            url: str = self._s3.generate_presigned_url(
                "get_object",
                Params={
                    "Bucket": self.bucket,
                    "Key": key,
                    "ResponseContentDisposition": content_disposition(filename),
                },
                ExpiresIn=expires_in,
            )
        return url

    # -- clients' multipart uploads ------------------------------------------------------
    def start_multipart(self, key: str, *, content_type: str) -> str:
        with aws_errors(f"starting a multipart upload of {key}"):
            response = self._s3.create_multipart_upload(
                Bucket=self.bucket,
                Key=key,
                ContentType=content_type,
                ChecksumAlgorithm=CHECKSUM_ALGORITHM,
                ChecksumType="FULL_OBJECT",
            )
        return str(response["UploadId"])

    def presign_part(
        self, key: str, *, upload_id: str, number: int, size: int, crc64nvme: str, expires_in: int
    ) -> PresignedRequest:
        params = {
            "Bucket": self.bucket,
            "Key": key,
            "UploadId": upload_id,
            "PartNumber": number,
            "ContentLength": size,
            "ChecksumCRC64NVME": crc64nvme,
        }
        with aws_errors(f"signing part {number} of {key}"):
            url = self._s3.generate_presigned_url("upload_part", Params=params, ExpiresIn=expires_in, HttpMethod="PUT")
        headers = {"Content-Length": str(size), "x-amz-checksum-crc64nvme": crc64nvme}
        return PresignedRequest(method="PUT", url=url, headers=headers, expires_in=expires_in)

    def list_parts(self, key: str, *, upload_id: str) -> list[UploadedPart]:
        parts: list[UploadedPart] = []
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Key": key, "UploadId": upload_id}
        while True:
            response = self._upload_call("listing the parts of", key, "list_parts", **kwargs)
            parts.extend(
                UploadedPart(
                    number=int(p["PartNumber"]),
                    size=int(p["Size"]),
                    etag=str(p["ETag"]),
                    crc64nvme=p.get("ChecksumCRC64NVME"),
                )
                for p in response.get("Parts", [])
            )
            if not response.get("IsTruncated"):
                return parts
            kwargs["PartNumberMarker"] = response["NextPartNumberMarker"]

    def complete_multipart(self, key: str, *, upload_id: str, parts: list[UploadedPart], crc64nvme: str) -> None:
        self._upload_call(
            "completing",
            key,
            "complete_multipart_upload",
            Bucket=self.bucket,
            Key=key,
            UploadId=upload_id,
            MultipartUpload={"Parts": [{"PartNumber": p.number, "ETag": p.etag} for p in parts]},
            ChecksumCRC64NVME=crc64nvme,
            ChecksumType="FULL_OBJECT",
        )

    def abort_multipart(self, key: str, *, upload_id: str) -> None:
        try:
            self._upload_call(
                "aborting", key, "abort_multipart_upload", Bucket=self.bucket, Key=key, UploadId=upload_id
            )
        except UploadConflict as exc:
            if exc.code != "upload_gone":
                raise

    def _upload_call(self, what: str, key: str, operation: str, **kwargs: Any) -> Any:
        """A call on a client's multipart upload, its refusals as UploadConflict."""
        try:
            with aws_errors(f"{what} the multipart upload of {key}"):
                return getattr(self._s3, operation)(**kwargs)
        except AwsError as exc:
            if exc.aws_code == "NoSuchUpload":
                raise UploadConflict(
                    "the multipart upload is no more (completed, aborted, or expired): upload the file again in a new job",
                    code="upload_gone",
                ) from None
            if exc.aws_code in _CHECKSUM_REFUSED:
                raise UploadConflict(
                    "S3 refused the whole file's CRC64NVME: it differs from the parts it holds; "
                    "compute it again from the file (or its parts' values)",
                    code="checksum_mismatch",
                ) from None
            if exc.aws_code in _PARTS_REFUSED:
                raise UploadConflict(f"S3 refused the parts: {exc.message}", code="parts_refused") from None
            raise

    def open_read(self, key: str) -> ObjectStream | None:
        """Start reading an object, or None if there is none: one request, no HEAD."""
        return self._get(key)

    def open_read_range(self, key: str, *, offset: int, length: int) -> ObjectStream | None:
        """Read ``length`` bytes from ``offset`` (``Range: bytes=a-b``), or None if there is no object.

        ``size`` is the length S3 sent, which the caller compares with what it asked for.
        """
        if length <= 0:
            raise ValueError("a range holds at least one byte")
        return self._get(key, Range=f"bytes={offset}-{offset + length - 1}")

    def _get(self, key: str, **extra: Any) -> ObjectStream | None:
        try:
            with aws_errors(f"reading s3 object {key}"):
                response = self._s3.get_object(Bucket=self.bucket, Key=key, **extra)
        except AwsError as exc:
            if exc.aws_code in _NOT_FOUND:
                return None
            raise
        return ObjectStream(body=_TranslatedBody(response["Body"], key), size=response["ContentLength"])

    def object_size(self, key: str) -> int | None:
        """The object's size (one HEAD), or None if there is none."""
        try:
            with aws_errors(f"looking for s3 object {key}"):
                response = self._s3.head_object(Bucket=self.bucket, Key=key)
        except AwsError as exc:
            if exc.aws_code in _NOT_FOUND:
                return None
            raise
        return int(response["ContentLength"])

    # -- fanned-out results: one part per range, uploaded by the range's own invocation ---------
    def start_result_upload(self, key: str, *, content_type: str, metadata: dict[str, str]) -> str:
        """Start the multipart upload of a fanned-out result; its upload id."""
        with aws_errors(f"starting the upload of {key}"):
            response = self._s3.create_multipart_upload(
                Bucket=self.bucket, Key=key, ContentType=content_type, Metadata=metadata
            )
        return str(response["UploadId"])

    def upload_part(self, key: str, *, upload_id: str, number: int, body: BinaryIO, size: int) -> str:
        """Upload ``size`` bytes of ``body`` (a seekable file) as part ``number``; its ETag.

        The same part number again replaces the part: the ETag the caller
        records decides which one the completion joins.
        """
        body.seek(0)
        response = self._upload_call(
            f"uploading part {number} of",
            key,
            "upload_part",
            Bucket=self.bucket,
            Key=key,
            UploadId=upload_id,
            PartNumber=number,
            Body=body,
            ContentLength=size,
        )
        return str(response["ETag"])

    def complete_parts(
        self, key: str, *, upload_id: str, parts: list[tuple[int, str]], tags: dict[str, str] | None = None
    ) -> None:
        """Join ``parts`` of (number, ETag), in order, into the object; then tag it."""
        self._upload_call(
            "completing",
            key,
            "complete_multipart_upload",
            Bucket=self.bucket,
            Key=key,
            UploadId=upload_id,
            MultipartUpload={"Parts": [{"PartNumber": number, "ETag": etag} for number, etag in parts]},
        )
        if tags:
            with aws_errors(f"tagging {key}"):
                self._s3.put_object_tagging(
                    Bucket=self.bucket,
                    Key=key,
                    Tagging={"TagSet": [{"Key": k, "Value": v} for k, v in tags.items()]},
                )

    def open_writer(self, key: str, *, content_type: str, metadata: dict[str, str]) -> MultipartWriter:
        return MultipartWriter(
            self._s3,
            self.bucket,
            key,
            part_size=self.part_size,
            content_type=content_type,
            metadata=metadata,
        )

    def exists(self, key: str) -> bool:
        """Whether the object is there (one HEAD)."""
        return self.object_size(key) is not None

    def put_bytes(self, key: str, data: bytes, *, content_type: str) -> None:
        """Write a small object in one request (dead letters kept for an operator)."""
        with aws_errors(f"writing s3 object {key}"):
            self._s3.put_object(Bucket=self.bucket, Key=key, Body=data, ContentType=content_type)

    def delete(self, key: str) -> None:
        with aws_errors(f"deleting s3 object {key}"):
            self._s3.delete_object(Bucket=self.bucket, Key=key)

    def delete_many(self, keys: Sequence[str]) -> None:
        """Delete objects with DeleteObjects, 1,000 keys per request; AwsError if S3 refuses any."""
        keys = list(dict.fromkeys(keys))
        for start in range(0, len(keys), DELETE_BATCH):
            chunk = keys[start : start + DELETE_BATCH]
            with aws_errors(f"deleting {len(chunk)} s3 object(s)"):
                response = self._s3.delete_objects(
                    Bucket=self.bucket, Delete={"Objects": [{"Key": key} for key in chunk], "Quiet": True}
                )
            errors = response.get("Errors") or []
            if errors:
                codes = ", ".join(sorted({str(e.get("Code", "?")) for e in errors}))
                raise AwsError(f"S3 refused to delete {len(errors)} of {len(chunk)} object(s): {codes}")


class MultipartWriter:
    """A sink that writes an S3 object of unknown length with bounded memory.

    A result smaller than one part is a single PutObject; anything larger
    becomes a multipart upload whose parts are sent by one background thread
    while the caller keeps compressing. At most two parts are in memory: the
    one being filled and the one being sent. Once the upload is multipart,
    each part is allocated once at its full size and filled in place (a
    growing bytearray reallocates and copies as it grows, holding the old and
    new blocks at once); the first part grows, as the result may stay small.
    ``close(tags)`` finishes the object; ``abort()`` removes any partial upload.
    """

    def __init__(
        self,
        client: Any,
        bucket: str,
        key: str,
        *,
        part_size: int,
        content_type: str,
        metadata: dict[str, str],
    ) -> None:
        self._s3 = client
        self._bucket = bucket
        self._key = key
        self._part_size = part_size
        self._content_type = content_type
        self._metadata = metadata
        self._buffer = bytearray()  # the part being filled, self._filled bytes of it written
        self._filled = 0
        self._upload_id: str | None = None
        self._parts: list[dict[str, Any]] = []
        self._sender: ThreadPoolExecutor | None = None
        self._in_flight: Future[None] | None = None
        self.size = 0

    def write(self, data: bytes) -> int:
        view = memoryview(data).cast("B")
        written = len(view)
        while len(view):
            take = min(self._part_size - self._filled, len(view))
            if self._upload_id is None:  # the first part: the result may stay small, so grow as it comes
                self._buffer += view[:take]
            else:
                if not self._buffer:
                    self._buffer = bytearray(self._part_size)
                self._buffer[self._filled : self._filled + take] = view[:take]
            self._filled += take
            view = view[take:]
            if self._filled == self._part_size:
                full, self._buffer, self._filled = self._buffer, bytearray(), 0
                self._send(full)
        self.size += written
        return written

    def _take_tail(self) -> bytearray:
        """The part being filled, cut to what was written (in place, no copy); the writer starts empty again."""
        tail, self._buffer = self._buffer, bytearray()
        del tail[self._filled :]
        self._filled = 0
        return tail

    def _send(self, body: bytearray) -> None:
        """Queue a part; waits for the previous one first (two parts in memory at most)."""
        if self._upload_id is None:
            with aws_errors(f"starting the upload of {self._key}"):
                response = self._s3.create_multipart_upload(
                    Bucket=self._bucket,
                    Key=self._key,
                    ContentType=self._content_type,
                    Metadata=self._metadata,
                )
            self._upload_id = response["UploadId"]
            self._sender = ThreadPoolExecutor(max_workers=1, thread_name_prefix="part-upload")
        self._wait_for_part()
        number = len(self._parts) + 1
        self._parts.append({"PartNumber": number, "ETag": None})
        assert self._sender is not None
        self._in_flight = self._sender.submit(self._upload_part, number, body)

    def _upload_part(self, number: int, body: bytearray) -> None:
        with aws_errors(f"uploading part {number} of {self._key}"):
            response = self._s3.upload_part(
                Bucket=self._bucket,
                Key=self._key,
                UploadId=self._upload_id,
                PartNumber=number,
                Body=body,
            )
        self._parts[number - 1]["ETag"] = response["ETag"]

    def _wait_for_part(self) -> None:
        if self._in_flight is not None:
            in_flight, self._in_flight = self._in_flight, None
            in_flight.result()  # re-raises the upload's error here, in the caller

    def close(self, *, tags: dict[str, str] | None = None) -> int:
        """Finish the object; returns its size."""
        with aws_errors(f"finishing {self._key}"):
            return self._close(tags)

    def _close(self, tags: dict[str, str] | None) -> int:
        try:
            if self._upload_id is None:
                self._s3.put_object(
                    Bucket=self._bucket,
                    Key=self._key,
                    Body=bytes(self._take_tail()),
                    ContentType=self._content_type,
                    Metadata=self._metadata,
                    Tagging=urllib.parse.urlencode(tags or {}),
                )
            else:
                if self._filled:
                    self._send(self._take_tail())
                self._wait_for_part()
                self._s3.complete_multipart_upload(
                    Bucket=self._bucket,
                    Key=self._key,
                    UploadId=self._upload_id,
                    MultipartUpload={"Parts": self._parts},
                )
                if tags:
                    # Checksums are known only at the end; metadata cannot change
                    # after CreateMultipartUpload, tags can.
                    self._s3.put_object_tagging(
                        Bucket=self._bucket,
                        Key=self._key,
                        Tagging={"TagSet": [{"Key": k, "Value": v} for k, v in tags.items()]},
                    )
        finally:
            self._shutdown()
        self._buffer, self._filled = bytearray(), 0
        return self.size

    def abort(self) -> None:
        with contextlib.suppress(Exception):  # aborting anyway; the original error is being raised
            self._wait_for_part()
        self._shutdown()
        if self._upload_id is not None:
            with contextlib.suppress(BotoCoreError, ClientError):  # the lifecycle rule aborts leftovers
                self._s3.abort_multipart_upload(Bucket=self._bucket, Key=self._key, UploadId=self._upload_id)
        self._buffer, self._filled = bytearray(), 0

    def _shutdown(self) -> None:
        if self._sender is not None:
            self._sender.shutdown(wait=True)
            self._sender = None
