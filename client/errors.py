"""Every way a command can fail, as a ``click.ClickException`` with an exit code.

    click.ClickException
    +-- SqueezerCliError          exit 1
        +-- InputError            exit 1: a local file cannot be read or written
        +-- FilesFailed           exit 1: at least one file of a job failed
        +-- OfflineFilesFailed    exit 1: compress/decompress: at least one local file failed
        +-- ConfigError           exit 2: the config file, a profile, a token or an API URL is not usable
        +-- ConfirmationNeeded    exit 2: a command would ask, but stdin is not a terminal (pass --yes)
        +-- ApiError              exit 3: the API answered with an error
        |   +-- TokenRefused      exit 3: a 401: no token, or one the API does not accept
        +-- ApiUnreachable        exit 3: the API could not be reached
        +-- UploadInterrupted     exit 130: Ctrl-C during an upload; says how to resume it
        +-- Interrupted           exit 130: Ctrl-C anywhere else

Click's own usage errors exit with 2. Messages are one line (FilesFailed
adds one line per failed file, up to SHOWN_FAILURES, with names from the server escaped if they
hold control characters) and never contain a presigned URL or a token's
secret: anyone holding one could use it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import IO, Any

import click

from .output import printable

EXIT_FILES_FAILED = 1
EXIT_USAGE = 2  # as Click's own usage errors
EXIT_API = 3
EXIT_INTERNAL = 70  # EX_SOFTWARE: a bug in the client, not the user's fault
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as a shell reports a command stopped by Ctrl-C
SHOWN_FAILURES = 10  # FilesFailed lists this many files, then counts the rest by error code


class SqueezerCliError(click.ClickException):
    exit_code = 1

    def format_message(self) -> str:
        return self.message


class InputError(SqueezerCliError):
    """A local file or folder cannot be read or written."""


class ConfigError(SqueezerCliError):
    """The config file cannot be read or parsed, or a profile, token or API URL is not usable."""

    exit_code = EXIT_USAGE


class ApiError(SqueezerCliError):
    """The API answered with ``{"error": {"code", "message"}}`` or garbage."""

    exit_code = EXIT_API

    def __init__(self, status: int, code: str, message: str, *, text: str | None = None) -> None:
        self.status = status
        self.code = code
        self.api_message = message
        super().__init__(text if text is not None else f"the API answered {status} {code}: {message}")


class TokenRefused(ApiError):
    """A 401: the API got no token (``missing_token``) or does not accept it (``invalid_token``).

    The message says what to do instead of repeating the API's words.
    ``masked`` is the token sent as it may be shown (``Token.masked``), None
    if none was sent; ``origin`` where it came from (``--token``,
    ``SQUEEZER_TOKEN``, a profile, the local stack's file): the fix depends
    on it, since the command line and the environment come before the
    config file.
    """

    def __init__(self, status: int, code: str, message: str, *, masked: str | None, origin: str | None) -> None:
        self.masked = masked
        self.origin = origin
        super().__init__(status, code, message, text=_refusal_text(code, masked, origin))


# Where a token can come from that the config file cannot override (see client.config).
OVERRIDING_ORIGINS = frozenset({"--token", "SQUEEZER_TOKEN"})


def _refusal_text(code: str, masked: str | None, origin: str | None) -> str:
    source = ""
    if origin is not None:
        before = ", which comes before the config file" if origin in OVERRIDING_ORIGINS else ""
        source = f" (this token came from {origin}{before})"
    if code == "invalid_token":
        shown = f" {masked}" if masked else ""
        return (
            f"the API refused the token{shown}: it is unknown, rotated or revoked; "
            f"get a new one from the operator and run 'squeezer configure'{source}"
        )
    if masked is not None:
        # The client sent one, yet the API saw none: something on the way dropped the header.
        return (
            f"the API received no token although the client sent {masked}{source}: "
            "does a proxy drop the Authorization header?"
        )
    return (
        "no token: run 'squeezer configure' or set SQUEEZER_TOKEN "
        "(an operator creates tokens with 'squeezer admin create-tenant')"
    )


class ApiUnreachable(SqueezerCliError):
    exit_code = EXIT_API

    def __init__(self, api_url: str, reason: str) -> None:
        self.api_url = api_url
        self.reason = reason
        super().__init__(f"could not reach the Squeezer API at {api_url}: {reason} ({_unreachable_hint(api_url)})")


def _unreachable_hint(api_url: str) -> str:
    from .config import is_loopback  # config imports this module

    if is_loopback(api_url):
        return "is the local stack running? start it with 'make up' in the squeezer folder, or check --api-url"
    return "check --api-url or SQUEEZER_API_URL"


class FilesFailed(SqueezerCliError):
    exit_code = EXIT_FILES_FAILED

    def __init__(self, failures: Iterable[tuple[str, str | None, str | None]], total: int) -> None:
        """``failures``: (name, error code, message) per failed file."""
        self.failures = list(failures)
        lines = [f"{len(self.failures)} of {total} file(s) failed:"]
        lines += [
            f"  {printable(name)}: {printable(code)}: {printable(message)}"
            for name, code, message in self.failures[:SHOWN_FAILURES]
        ]
        rest = self.failures[SHOWN_FAILURES:]
        if rest:
            codes = Counter(printable(code) for _, code, _ in rest)
            lines.append(f"  ... and {len(rest)} more ({', '.join(f'{n} {c}' for c, n in codes.most_common())})")
        super().__init__("\n".join(lines))


class ConfirmationNeeded(SqueezerCliError):
    """A command that asks first cannot ask: stdin is not a terminal and --yes was not given."""

    exit_code = EXIT_USAGE


class Interrupted(SqueezerCliError):
    """Ctrl-C (or an aborted prompt) anywhere: exit 130, as a shell reports a command stopped by SIGINT."""

    exit_code = EXIT_INTERRUPTED

    def __init__(self) -> None:
        super().__init__("interrupted")


class UploadInterrupted(SqueezerCliError):
    """Ctrl-C while a job's files were being sent: its journal is kept, and the message says how to go on."""

    exit_code = EXIT_INTERRUPTED

    def __init__(self, job_id: str) -> None:
        self.job_id = job_id
        super().__init__(
            f"interrupted: job {job_id} is resumable; run: squeezer upload --resume {job_id} (or the same command again)"
        )

    def show(self, file: IO[Any] | None = None) -> None:
        # Not an error of the user's: the line without click's "Error: ".
        click.echo(self.format_message(), file=file, err=file is None)


class OfflineFilesFailed(SqueezerCliError):
    """``compress``/``decompress`` of several files: some failed (each already had its line).

    The message is the command's summary line (``3 files, 12.0 MiB → 2.1 MiB
    (82.5% saved); 1 failed``), shown as the last line, without "Error: ".
    """

    exit_code = EXIT_FILES_FAILED

    def show(self, file: IO[Any] | None = None) -> None:
        click.echo(self.format_message(), file=file, err=file is None)
