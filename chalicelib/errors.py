"""Domain errors.

    SqueezerError                 code + message; ``status`` for the API
    +-- ValidationError           400: the request is malformed
    +-- Unauthorized              401: the tenant is revoked or gone
    +-- JobNotFound               404
    +-- JobConflict               409: the job cannot do that in its state
    +-- QuotaExceeded             429: over a tenant's limit, with when to retry
    +-- UploadConflict            409: a multipart upload is gone, incomplete, or its checksum refused
    +-- ProcessingError           worker: one file could not be processed
    |   +-- PermanentError        fail the file now, retrying cannot help
    |   +-- TransientError        retry later with backoff
    +-- AwsError                  503: an AWS call failed; later may work
        +-- AwsUnreachable        no connection, or it timed out

The adapters (storage.py, jobstore.py, queue.py) turn botocore's errors
into AwsError with ``chalicelib.aws.aws_errors``; nothing above them sees
botocore. Messages say what went wrong and, where it helps, what to do.
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


class ValidationError(SqueezerError):
    status = 400
    code = "invalid_request"


class Unauthorized(SqueezerError):
    """The caller's tenant cannot act (revoked since the authorizer's answer was cached)."""

    status = 401
    code = "invalid_token"


class JobNotFound(SqueezerError):
    status = 404
    code = "job_not_found"


class JobConflict(SqueezerError):
    status = 409
    code = "job_conflict"


class QuotaExceeded(SqueezerError):
    """Over one of the tenant's limits; ``retry_after`` seconds from now it may fit."""

    status = 429
    code = "quota_exceeded"

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = max(1, int(retry_after))


class UploadConflict(SqueezerError):
    """A multipart upload cannot do that: gone, not complete, or refused by S3."""

    status = 409
    code = "upload_conflict"


class ProcessingError(SqueezerError):
    """A file could not be compressed (worker side)."""


class PermanentError(ProcessingError):
    code = "processing_failed"


class TransientError(ProcessingError):
    code = "transient_error"


class AwsError(SqueezerError):
    """An AWS service answered with an error (throttling, 5xx, access, a missing resource)."""

    status = 503
    code = "aws_error"

    def __init__(self, message: str, *, code: str | None = None, aws_code: str = "") -> None:
        super().__init__(message, code=code)
        self.aws_code = aws_code


class AwsUnreachable(AwsError):
    """No connection to the AWS endpoint, or a read timed out."""

    code = "connection_error"
