"""One settings object for the API and the worker, read from the environment.

Resource names always come from environment variables that
``.chalice/config.json`` (or the local stack) sets; nothing here names a
real bucket, table or queue. An explicit argument beats the environment.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Mapping

GiB = 1024**3
MiB = 1024**2


class SettingsError(Exception):
    """A required setting is missing or malformed."""


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw in (None, ""):
        return default
    try:
        return int(raw)
    except ValueError:
        raise SettingsError(f"{name} must be an integer, got {raw!r}") from None


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw in (None, ""):
        return default
    try:
        return float(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a number, got {raw!r}") from None


@dataclass(frozen=True)
class Settings:
    bucket: str
    table: str
    queue_name: str
    dead_letter_queue_name: str
    region: str = "us-east-1"
    endpoint_url: str | None = None
    uploads_prefix: str = "uploads/"
    results_prefix: str = "results/"
    upload_url_ttl: int = 3600
    # A PUT that started just before its URL expired may still be arriving:
    # a pending file is declared expired only this long after its URL.
    upload_grace_seconds: int = 900
    download_url_ttl: int = 3600
    max_files_per_job: int = 1000
    max_file_size: int = 5 * GiB
    # Two parts at most are in memory (one filling, one uploading).
    part_size: int = 8 * MiB
    # A claim on a file lasts this long unless the worker's heartbeat renews
    # it; the heartbeat also keeps the message hidden for lease + one beat, so
    # a killed worker's file is taken over about a minute later, never while
    # the worker is alive. The heartbeat is also how a cancel is noticed.
    lease_seconds: int = 60
    heartbeat_seconds: float = 5.0
    # The worker's Lambda timeout: POST /jobs refuses files that cannot be
    # compressed within it (chalicelib/throughput.py).
    worker_timeout_seconds: int = 900
    # The worker hands records back untouched when the invocation has less
    # than this left, instead of being killed half-way by the Lambda timeout.
    # 0 turns the check off (chalice.test.Client's budget is a fixed 3 s).
    stop_margin_ms: int = 30_000
    retry_base_delay: int = 5
    retry_max_delay: int = 300
    record_ttl_days: int = 30
    max_list_page: int = 100
    # zstd uses this many threads for objects of at least threads_min_size.
    compress_threads: int = field(default_factory=lambda: os.cpu_count() or 1)
    threads_min_size: int = 64 * MiB
    default_owner: str = "public"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides) -> "Settings":
        """Build settings from ``env`` (default ``os.environ``)."""
        env = os.environ if env is None else env
        required = {
            "bucket": "SQUEEZER_BUCKET",
            "table": "SQUEEZER_TABLE",
            "queue_name": "SQUEEZER_QUEUE",
            "dead_letter_queue_name": "SQUEEZER_DLQ",
        }
        values: dict = {}
        for attr, var in required.items():
            if attr in overrides:
                continue
            if not env.get(var):
                raise SettingsError(
                    f"environment variable {var} is not set: set it in "
                    ".chalice/config.json or the local stack's environment"
                )
            values[attr] = env[var]
        values["region"] = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "us-east-1"
        values["endpoint_url"] = env.get("AWS_ENDPOINT_URL") or None
        values["upload_url_ttl"] = _int(env, "SQUEEZER_UPLOAD_URL_TTL", 3600)
        values["download_url_ttl"] = _int(env, "SQUEEZER_DOWNLOAD_URL_TTL", 3600)
        values["lease_seconds"] = _int(env, "SQUEEZER_LEASE_SECONDS", 60)
        values["heartbeat_seconds"] = _float(env, "SQUEEZER_HEARTBEAT_SECONDS", 5.0)
        values["worker_timeout_seconds"] = _int(env, "SQUEEZER_WORKER_TIMEOUT", 900)
        values["stop_margin_ms"] = _int(env, "SQUEEZER_STOP_MARGIN_MS", 30_000)
        values["retry_base_delay"] = _int(env, "SQUEEZER_RETRY_BASE_DELAY", 5)
        values["retry_max_delay"] = _int(env, "SQUEEZER_RETRY_MAX_DELAY", 300)
        values["record_ttl_days"] = _int(env, "SQUEEZER_RECORD_TTL_DAYS", 30)
        values["part_size"] = _int(env, "SQUEEZER_PART_SIZE", 8 * MiB)
        if env.get("SQUEEZER_COMPRESS_THREADS"):
            values["compress_threads"] = _int(env, "SQUEEZER_COMPRESS_THREADS", 1)
        values.update(overrides)
        if not 0 < values["heartbeat_seconds"] * 3 <= values["lease_seconds"]:
            raise SettingsError("SQUEEZER_HEARTBEAT_SECONDS must be positive and at most a third of "
                                "SQUEEZER_LEASE_SECONDS, so a claim survives a missed beat")
        if values["part_size"] < 5 * MiB:
            raise SettingsError("SQUEEZER_PART_SIZE must be at least 5 MiB (S3's minimum part)")
        return cls(**values)
