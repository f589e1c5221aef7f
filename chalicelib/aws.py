"""The one place that creates boto3 clients.

Clients are built on first use, never at import, so moto can patch them in
tests and region and endpoint come from the settings at run time.
``AWS_ENDPOINT_URL`` (in Settings) points everything at LocalStack or the
local emulator; on AWS it is unset.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from .errors import AwsError, AwsUnreachable
from .settings import AwsLocation, Settings

# Standard retry mode retries throttling and 5xx with backoff before our own
# retry logic sees an error.
_CONFIG = Config(
    retries={"mode": "standard", "max_attempts": 5},
    connect_timeout=5,
    read_timeout=60,
    signature_version="s3v4",
    s3={"addressing_style": "path"},
    max_pool_connections=32,
)


class AwsClients:
    """Lazily built, cached clients for one Settings (or, for operator commands, an AwsLocation)."""

    def __init__(self, settings: Settings | AwsLocation, session: boto3.session.Session | None = None) -> None:
        self._settings = settings
        self._session = session
        self._cache: dict[str, Any] = {}
        self._lock = threading.Lock()

    def _build(self, kind: str, name: str) -> Any:
        with self._lock:
            key = f"{kind}:{name}"
            if key not in self._cache:
                session = self._session or boto3.session.Session()
                options: dict[str, Any] = {
                    "region_name": self._settings.region,
                    "endpoint_url": self._settings.endpoint_url,
                    "config": _CONFIG,
                }
                factory: Any = session.client if kind == "client" else session.resource
                self._cache[key] = factory(name, **options)
            return self._cache[key]

    @property
    def s3(self) -> Any:
        return self._build("client", "s3")

    @property
    def sqs(self) -> Any:
        return self._build("client", "sqs")

    @property
    def dynamodb(self) -> Any:
        return self._build("resource", "dynamodb")


def error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


@contextlib.contextmanager
def aws_errors(what: str) -> Iterator[None]:
    """Turn botocore's exceptions raised inside into AwsError / AwsUnreachable."""
    try:
        yield
    except ClientError as exc:
        code = error_code(exc)
        raise AwsError(f"{what}: AWS said {code or 'an error'}: {exc}", aws_code=code) from exc
    except BotoCoreError as exc:  # no connection, a timeout, a broken stream
        raise AwsUnreachable(f"{what}: {type(exc).__name__}: {exc}") from exc
