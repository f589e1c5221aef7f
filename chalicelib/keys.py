"""S3 object keys. A user's file name never appears in a key."""
from __future__ import annotations

from dataclasses import dataclass

from .codecs import Algorithm


@dataclass(frozen=True)
class FileRef:
    job_id: str
    file_id: str


@dataclass(frozen=True)
class ObjectKeys:
    uploads_prefix: str = "uploads/"
    results_prefix: str = "results/"

    def upload(self, job_id: str, file_id: str) -> str:
        return f"{self.uploads_prefix}{job_id}/{file_id}"

    def result(self, job_id: str, file_id: str, algorithm: Algorithm) -> str:
        return f"{self.results_prefix}{job_id}/{file_id}{algorithm.extension}"

    def job_uploads(self, job_id: str) -> str:
        return f"{self.uploads_prefix}{job_id}/"

    def job_results(self, job_id: str) -> str:
        return f"{self.results_prefix}{job_id}/"

    def parse_upload(self, key: str) -> FileRef | None:
        """The job and file an upload key belongs to, or None if it is not one."""
        if not key.startswith(self.uploads_prefix):
            return None
        parts = key[len(self.uploads_prefix):].split("/")
        if len(parts) != 2 or not all(parts):
            return None
        return FileRef(job_id=parts[0], file_id=parts[1])
