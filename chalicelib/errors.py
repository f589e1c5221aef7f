"""Domain errors.

    SqueezerError                 code + message; ``status`` for the API
    +-- ValidationError           400: the request is malformed
    +-- JobNotFound               404
    +-- JobConflict               409: the job cannot do that in its state
    +-- ProcessingError           worker: one file could not be processed
        +-- PermanentError        fail the file now, retrying cannot help
        +-- TransientError        retry later with backoff

Messages say what went wrong and, where it helps, what to do.
"""
from __future__ import annotations


class SqueezerError(Exception):
    status = 500
    code = "internal_error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code

    def to_body(self) -> dict:
        return {"error": {"code": self.code, "message": self.message}}


class ValidationError(SqueezerError):
    status = 400
    code = "invalid_request"


class JobNotFound(SqueezerError):
    status = 404
    code = "job_not_found"


class JobConflict(SqueezerError):
    status = 409
    code = "job_conflict"


class ProcessingError(SqueezerError):
    """A file could not be compressed (worker side)."""


class PermanentError(ProcessingError):
    code = "processing_failed"


class TransientError(ProcessingError):
    code = "transient_error"


class LeaseLost(Exception):
    """Another delivery owns the file, or it reached a final state meanwhile."""
