"""S3 object keys. A user's file name never appears in a key.

Every upload and result sits under its tenant's id, a prefix the server
builds (never a client): ``uploads/<tenant>/<job>/<file>`` and
``results/<tenant>/<job>/<file>/<delivery>.<ext>``.
"""

from __future__ import annotations

from dataclasses import dataclass

from .domain import Algorithm


@dataclass(frozen=True)
class FileRef:
    owner: str
    job_id: str
    file_id: str


@dataclass(frozen=True)
class ObjectKeys:
    uploads_prefix: str = "uploads/"
    results_prefix: str = "results/"
    dead_letters_prefix: str = "dead-letters/"

    def upload(self, ref: FileRef) -> str:
        return f"{self.uploads_prefix}{ref.owner}/{ref.job_id}/{ref.file_id}"

    def result(self, ref: FileRef, attempt: str, algorithm: Algorithm) -> str:
        """One key per delivery that compresses the file: a delivery only ever
        writes and deletes its own, and the completion write makes one final."""
        return f"{self.results_prefix}{ref.owner}/{ref.job_id}/{ref.file_id}/{attempt}{algorithm.extension}"

    def dead_letter(self, day: str, message_id: str) -> str:
        """Where a malformed dead letter is kept for an operator to read."""
        return f"{self.dead_letters_prefix}{day}/{message_id}.json"

    def parse_upload(self, key: str) -> FileRef | None:
        """The tenant, job and file an upload key belongs to, or None if it is not one."""
        if not key.startswith(self.uploads_prefix):
            return None
        parts = key[len(self.uploads_prefix) :].split("/")
        if len(parts) != 3 or not all(parts):
            return None
        return FileRef(owner=parts[0], job_id=parts[1], file_id=parts[2])
