"""Every way a command can fail, as a ``click.ClickException`` with an exit code.

    click.ClickException
    +-- SqueezerCliError          exit 1
        +-- InputError            exit 1: a local file cannot be read or written
        +-- FilesFailed           exit 1: at least one file of a job failed
        +-- ApiError              exit 3: the API answered with an error
        +-- ApiUnreachable        exit 3: the API could not be reached

Click's own usage errors exit with 2. Messages are one line (FilesFailed
adds one line per failed file, with names from the server escaped if they
hold control characters) and never contain a presigned URL: anyone holding
one could use it.
"""

from __future__ import annotations

from collections.abc import Iterable

import click

from .output import printable

EXIT_FILES_FAILED = 1
EXIT_API = 3
EXIT_INTERNAL = 70  # EX_SOFTWARE: a bug in the client, not the user's fault


class SqueezerCliError(click.ClickException):
    exit_code = 1

    def format_message(self) -> str:
        return self.message


class InputError(SqueezerCliError):
    """A local file or folder cannot be read or written."""


class ApiError(SqueezerCliError):
    """The API answered with ``{"error": {"code", "message"}}`` or garbage."""

    exit_code = EXIT_API

    def __init__(self, status: int, code: str, message: str) -> None:
        self.status = status
        self.code = code
        self.api_message = message
        super().__init__(f"the API answered {status} {code}: {message}")


class ApiUnreachable(SqueezerCliError):
    exit_code = EXIT_API

    def __init__(self, api_url: str, reason: str) -> None:
        self.api_url = api_url
        super().__init__(
            f"could not reach the Squeezer API at {api_url}: {reason} (check --api-url or SQUEEZER_API_URL)"
        )


class FilesFailed(SqueezerCliError):
    exit_code = EXIT_FILES_FAILED

    def __init__(self, failures: Iterable[tuple[str, str | None, str | None]], total: int) -> None:
        """``failures``: (name, error code, message) per failed file."""
        self.failures = list(failures)
        lines = [f"{len(self.failures)} of {total} file(s) failed:"]
        lines += [
            f"  {printable(name)}: {printable(code)}: {printable(message)}" for name, code, message in self.failures
        ]
        super().__init__("\n".join(lines))
