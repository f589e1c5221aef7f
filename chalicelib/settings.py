"""One settings object for the API and the worker, read from the environment.

Each setting is declared once, below: its type, its default and the
environment variable that sets it. Resource names always come from
variables that ``.chalice/config.json`` (or the local stack) sets; nothing
here names a real bucket, table or queue. An explicit argument beats the
environment.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from .multipart import DEFAULT_THRESHOLD, MAX_OBJECT_SIZE, UPLOAD_DAYS

GiB = 1024**3
MiB = 1024**2
# S3's largest object sent in one POST (a browser's form upload), as for one PUT.
S3_MAX_POST_SIZE = 5 * GiB
# The ranges queue is named after the jobs queue unless SQUEEZER_RANGES_QUEUE
# names it: squeezer-dev-jobs -> squeezer-dev-jobs-ranges (as -dlq for the
# dead-letter queue). The infra (infra/resources.py) names it the same way.
RANGES_QUEUE_SUFFIX = "-ranges"
# A range message is one invocation's work: the ranges queue's event source
# takes one message at a time, so Lambda (or the local bridge) runs a file's
# ranges in parallel invocations instead of one after another in a batch.
RANGES_BATCH_SIZE = 1


def ranges_queue_for(jobs_queue: str) -> str:
    """The default name of the ranges queue of the jobs queue ``jobs_queue``."""
    return f"{jobs_queue}{RANGES_QUEUE_SUFFIX}"


class SettingsError(Exception):
    """A required setting is missing or malformed."""


def _setting(
    env: str | None, default: Any = dataclasses.MISSING, *, default_factory: Callable[[], Any] | None = None
) -> Any:
    """A field set by the environment variable ``env`` (None: only by argument)."""
    if default_factory is not None:
        return dataclasses.field(default_factory=default_factory, metadata={"env": env})
    return dataclasses.field(default=default, metadata={"env": env})


def _cpus() -> int:
    return os.cpu_count() or 1


@dataclass(frozen=True)
class AwsLocation:
    """Where AWS is: all that operator commands need (``squeezer admin``), without the service's settings."""

    region: str = "us-east-1"
    endpoint_url: str | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> AwsLocation:
        """``AWS_REGION`` (then ``AWS_DEFAULT_REGION``) and ``AWS_ENDPOINT_URL``, as Settings reads them."""
        env = os.environ if env is None else env
        return cls(
            region=env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or cls.region,
            endpoint_url=env.get("AWS_ENDPOINT_URL") or None,
        )


@dataclass(frozen=True)
class Settings:
    # -- resources (required) ---------------------------------------------------------
    bucket: str = _setting("SQUEEZER_BUCKET")
    table: str = _setting("SQUEEZER_TABLE")
    queue_name: str = _setting("SQUEEZER_QUEUE")
    dead_letter_queue_name: str = _setting("SQUEEZER_DLQ")
    # Fan-out's range messages (chalicelib/fanout.py) have a queue of their
    # own, read one message per invocation, so a file's ranges run side by
    # side: ``ranges_queue_name``, this name, or by default the jobs queue's
    # name + RANGES_QUEUE_SUFFIX (ranges_queue_for).
    ranges_queue_override: str = _setting("SQUEEZER_RANGES_QUEUE", "")
    # -- where AWS is -------------------------------------------------------------------
    region: str = _setting("AWS_REGION", AwsLocation.region)
    endpoint_url: str | None = _setting("AWS_ENDPOINT_URL", None)
    # -- object keys -------------------------------------------------------------------
    uploads_prefix: str = _setting(None, "uploads/")
    results_prefix: str = _setting(None, "results/")
    # -- the API ---------------------------------------------------------------------------
    upload_url_ttl: int = _setting("SQUEEZER_UPLOAD_URL_TTL", 3600)
    # A PUT that started just before its URL expired may still be arriving:
    # a pending file is declared expired only this long after its URL.
    upload_grace_seconds: int = _setting("SQUEEZER_UPLOAD_GRACE_SECONDS", 900)
    download_url_ttl: int = _setting("SQUEEZER_DOWNLOAD_URL_TTL", 3600)
    # A job holds at most this many files, sent in requests (POST /jobs, then
    # POST /jobs/{id}/files while the job is open for more) of at most
    # max_files_per_request each.
    max_files_per_job: int = _setting("SQUEEZER_MAX_FILES_PER_JOB", 100_000)
    max_files_per_request: int = _setting("SQUEEZER_MAX_FILES_PER_REQUEST", 1000)
    # S3's largest object (10,000 parts of 5 GiB); the worker's time budget refuses what it cannot compress.
    max_file_size: int = _setting("SQUEEZER_MAX_FILE_SIZE", MAX_OBJECT_SIZE)
    # Files above this many bytes are uploaded in parts (chalicelib/multipart.py).
    multipart_threshold: int = _setting("SQUEEZER_MULTIPART_THRESHOLD", DEFAULT_THRESHOLD)
    # With ``"upload_method": "post"`` a file up to this many bytes gets a presigned
    # POST form (one request, at most S3's 5 GiB); a larger one is uploaded in parts.
    max_post_size: int = _setting("SQUEEZER_MAX_POST_SIZE", S3_MAX_POST_SIZE)
    # Browser origins the API answers CORS requests from (comma-separated in
    # the variable): none by default. Deployments set the variable from the
    # stage's "squeezer_infra": {"cors_origins": [...]} in .chalice/config.json
    # (infra/resources.py), the list the bucket's CORS rules allow too.
    cors_origins: tuple[str, ...] = _setting("SQUEEZER_CORS_ORIGINS", ())
    # A part URL is signed just before its part is sent: a short life.
    part_url_ttl: int = _setting("SQUEEZER_PART_URL_TTL", 900)
    # A multipart upload may take this long before its file is declared
    # upload_expired (the bucket's lifecycle rule aborts it after as long).
    multipart_upload_days: int = _setting("SQUEEZER_MULTIPART_UPLOAD_DAYS", UPLOAD_DAYS)
    max_list_page: int = _setting("SQUEEZER_MAX_LIST_PAGE", 100)
    # Files per page of GET /jobs/{id} (the default and the most): a page of signed download URLs
    # stays far below Lambda's 6 MB response limit (about 1 KB a file).
    max_status_page: int = _setting("SQUEEZER_MAX_STATUS_PAGE", 1000)
    record_ttl_days: int = _setting("SQUEEZER_RECORD_TTL_DAYS", 30)
    # A tenant's limits unless the operator set its own (squeezer admin create-tenant / set-limits).
    max_bytes_per_day: int = _setting("SQUEEZER_MAX_BYTES_PER_DAY", 1024 * GiB)
    max_open_jobs: int = _setting("SQUEEZER_MAX_OPEN_JOBS", 20)
    # -- the worker --------------------------------------------------------------------
    # Two parts at most are in memory (one filling, one uploading).
    part_size: int = _setting("SQUEEZER_PART_SIZE", 8 * MiB)
    # A claim on a file lasts this long unless the worker's heartbeat renews
    # it; the heartbeat also keeps the message hidden for lease + one beat, so
    # a killed worker's file is taken over about a minute later, never while
    # the worker is alive. The heartbeat is also how a cancel is noticed.
    lease_seconds: int = _setting("SQUEEZER_LEASE_SECONDS", 60)
    heartbeat_seconds: float = _setting("SQUEEZER_HEARTBEAT_SECONDS", 5.0)
    # The worker's Lambda timeout: POST /jobs refuses files that cannot be
    # compressed within it (chalicelib/throughput.py).
    worker_timeout_seconds: int = _setting("SQUEEZER_WORKER_TIMEOUT", 900)
    # The worker hands records back untouched when the invocation has less
    # than this left, instead of being killed half-way by the Lambda timeout.
    # 0 turns the check off (chalice.test.Client's budget is a fixed 3 s).
    stop_margin_ms: int = _setting("SQUEEZER_STOP_MARGIN_MS", 30_000)
    retry_base_delay: int = _setting("SQUEEZER_RETRY_BASE_DELAY", 5)
    retry_max_delay: int = _setting("SQUEEZER_RETRY_MAX_DELAY", 300)
    # zstd uses this many threads for objects of at least threads_min_size.
    compress_threads: int = _setting("SQUEEZER_COMPRESS_THREADS", default_factory=_cpus)
    threads_min_size: int = _setting("SQUEEZER_THREADS_MIN_SIZE", 64 * MiB)
    # The input of one zstd thread's job. libzstd's own (8 MiB at level 3) keeps
    # about 50 MiB in flight with two threads; 2 MiB keeps about 15 MiB, with
    # no loss of speed or ratio measured on logs (benchmark 3, BENCHMARKS.md).
    zstd_job_size: int = _setting("SQUEEZER_ZSTD_JOB_SIZE", 2 * MiB)
    # Fan-out (chalicelib/fanout.py): a zstd or gzip file above this many
    # bytes, or one whose single-invocation estimate does not fit the time
    # budget, is cut into ranges of range_size bytes (grown when 10,000
    # parts need it, at most 1 GiB), each compressed by its own invocation
    # into one part of the result. 1 GiB: below it a file takes at most about
    # 20 s at the default levels, so splitting buys little and costs requests;
    # above it the wall time falls with the number of workers, and every
    # large zstd result is seekable.
    fanout_threshold: int = _setting("SQUEEZER_FANOUT_THRESHOLD", GiB)
    range_size: int = _setting("SQUEEZER_RANGE_SIZE", 256 * MiB)
    # A batch's small files (the S3 notification's size at most small_file_size)
    # are compressed side by side, this many at once: each one is mostly
    # waiting on its four AWS requests. Larger files run one after another,
    # each with its own threads. Memory: about three times small_file_size per
    # thread (the read-ahead chunks, the result buffered for its one PUT).
    file_threads: int = _setting("SQUEEZER_FILE_THREADS", 8)
    small_file_size: int = _setting("SQUEEZER_SMALL_FILE_SIZE", 1 * MiB)
    # The SQS event sources' batch size (read when the app is loaded).
    worker_batch_size: int = _setting("SQUEEZER_WORKER_BATCH_SIZE", 10)

    @property
    def ranges_queue_name(self) -> str:
        """The ranges queue: SQUEEZER_RANGES_QUEUE, or named after the jobs queue (as app.py's queue_names)."""
        return self.ranges_queue_override or ranges_queue_for(self.queue_name)

    def __post_init__(self) -> None:
        if not 0 < self.heartbeat_seconds * 3 <= self.lease_seconds:
            raise SettingsError(
                "SQUEEZER_HEARTBEAT_SECONDS must be positive and at most a third of "
                "SQUEEZER_LEASE_SECONDS, so a claim survives a missed beat"
            )
        if self.part_size < 5 * MiB:
            raise SettingsError("SQUEEZER_PART_SIZE must be at least 5 MiB (S3's minimum part)")
        if not MiB <= self.range_size <= GiB:
            raise SettingsError("SQUEEZER_RANGE_SIZE must be from 1 MiB to 1 GiB (a range is at most 1 GiB of input)")
        if self.fanout_threshold < 0:
            raise SettingsError("SQUEEZER_FANOUT_THRESHOLD must not be negative")
        if not 0 < self.max_post_size <= S3_MAX_POST_SIZE:
            raise SettingsError("SQUEEZER_MAX_POST_SIZE must be from 1 byte to 5 GiB (S3's largest POST upload)")
        if not 512 * 1024 <= self.zstd_job_size <= 512 * MiB:
            raise SettingsError("SQUEEZER_ZSTD_JOB_SIZE must be from 512 KiB to 512 MiB (libzstd's job sizes)")
        if self.file_threads < 1:
            raise SettingsError("SQUEEZER_FILE_THREADS must be at least 1")
        if not 0 <= self.small_file_size <= self.part_size:
            raise SettingsError("SQUEEZER_SMALL_FILE_SIZE must be from 0 to SQUEEZER_PART_SIZE (one PUT per result)")
        if not 1 <= self.worker_batch_size <= 10:
            raise SettingsError("SQUEEZER_WORKER_BATCH_SIZE must be from 1 to 10 (SQS's largest batch)")

    def zstd_threads(self, size: int) -> int:
        """zstd worker threads for an object (or range) of ``size`` bytes: 0 compresses on the caller's thread."""
        return self.compress_threads if self.compress_threads > 1 and size >= self.threads_min_size else 0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Build settings from ``env`` (default ``os.environ``); ``overrides`` win."""
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        for spec in dataclasses.fields(cls):
            name = spec.metadata.get("env")
            if spec.name in overrides or not name:
                continue
            raw = env.get(name) or (env.get("AWS_DEFAULT_REGION") if name == "AWS_REGION" else None)
            if raw in (None, ""):
                if spec.default is dataclasses.MISSING and spec.default_factory is dataclasses.MISSING:
                    raise SettingsError(
                        f"environment variable {name} is not set: set it in "
                        ".chalice/config.json or the local stack's environment"
                    )
                continue
            values[spec.name] = _parse(name, raw, spec.type)
        return cls(**{**values, **overrides})


def _parse(name: str, raw: str, kind: Any) -> Any:
    kind = str(kind)
    try:
        if kind == "int":
            return int(raw)
        if kind == "float":
            return float(raw)
    except ValueError:
        raise SettingsError(f"{name} must be {'an integer' if kind == 'int' else 'a number'}, got {raw!r}") from None
    if kind == "tuple[str, ...]":
        return tuple(item.strip() for item in raw.split(",") if item.strip())
    return raw


class AppQueues(NamedTuple):
    """What app.py's event sources need when Chalice loads the app."""

    jobs: str
    dead_letters: str
    batch_size: int
    ranges: str


def queue_names(env: Mapping[str, str] | None = None) -> AppQueues:
    """The jobs, dead-letter and ranges queues and the batch size, for app.py's event sources.

    Chalice reads them when it loads the app, also to package or deploy it,
    where the other settings may be absent: placeholders then, not an error.
    """
    env = os.environ if env is None else env
    batch = env.get("SQUEEZER_WORKER_BATCH_SIZE") or "10"
    jobs = env.get("SQUEEZER_QUEUE") or "squeezer-queue-not-configured"
    return AppQueues(
        jobs=jobs,
        dead_letters=env.get("SQUEEZER_DLQ") or "squeezer-dlq-not-configured",
        batch_size=int(_parse("SQUEEZER_WORKER_BATCH_SIZE", batch, "int")),
        ranges=env.get("SQUEEZER_RANGES_QUEUE") or ranges_queue_for(jobs),
    )
