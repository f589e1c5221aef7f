"""Puts the real adapters together. Nothing is built at import time.

``get_service()``, ``get_worker()`` and ``get_range_worker()`` build on first call and cache; tests
call ``reset()`` (after starting moto) or pass fakes to the classes directly.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

from .settings import Settings

# Each getter imports what it builds: a function loads only its own part (the
# authorizer's cold start: boto3 and the tenant store, not the job store,
# the service, pydantic or the codecs; tests/app/test_cold_start.py).
if TYPE_CHECKING:
    from .auth import Authenticator
    from .aws import AwsClients
    from .jobstore import DynamoJobStore
    from .queue import SqsWorkQueue
    from .service import JobService
    from .storage import S3Storage
    from .tenantstore import DynamoTenantStore
    from .uploads import Uploads
    from .web import WebPages
    from .worker import Worker


@functools.lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings.from_env()


@functools.lru_cache(maxsize=1)
def get_clients() -> AwsClients:
    from .aws import AwsClients

    return AwsClients(get_settings())


def _store() -> DynamoJobStore:
    from .jobstore import DynamoJobStore

    settings = get_settings()
    return DynamoJobStore(get_clients().dynamodb.Table(settings.table), ttl_days=settings.record_ttl_days)


def _tenants() -> DynamoTenantStore:
    from .tenantstore import DynamoTenantStore

    return DynamoTenantStore(get_clients().dynamodb.Table(get_settings().table))


def _storage() -> S3Storage:
    from .storage import S3Storage

    settings = get_settings()
    return S3Storage(get_clients().s3, settings.bucket, part_size=settings.part_size)


@functools.cache
def _queue(name: str) -> SqsWorkQueue:
    """One adapter per queue name: its URL is looked up once per container."""
    from .queue import SqsWorkQueue

    return SqsWorkQueue(get_clients().sqs, name)


@functools.lru_cache(maxsize=1)
def get_service() -> JobService:
    from .quotas import Quotas
    from .service import JobService

    settings = get_settings()
    return JobService(
        _store(), _storage(), settings, queue=_queue(settings.queue_name), quotas=Quotas(_tenants(), settings)
    )


@functools.lru_cache(maxsize=1)
def get_uploads() -> Uploads:
    from .uploads import Uploads

    return Uploads(_store(), _storage(), get_settings())


@functools.lru_cache(maxsize=1)
def get_authenticator() -> Authenticator:
    from .auth import Authenticator

    return Authenticator(_tenants())


def _worker(source: str) -> Worker:
    """A worker fed by the queue ``source``: its hand-backs and heartbeats go there, range messages to the ranges queue."""
    from .worker import Worker

    settings = get_settings()
    return Worker(
        _store(),
        _storage(),
        _queue(source),
        settings,
        ranges_queue=_queue(settings.ranges_queue_name),
        dead_letter_queue=_queue(settings.dead_letter_queue_name),
    )


@functools.lru_cache(maxsize=1)
def get_worker() -> Worker:
    """The jobs queue's worker (``compress``), also the dead-letter queue's (``dead_letters``)."""
    return _worker(get_settings().queue_name)


@functools.lru_cache(maxsize=1)
def get_range_worker() -> Worker:
    """The ranges queue's worker (``compress_range``): one range message per invocation."""
    return _worker(get_settings().ranges_queue_name)


@functools.lru_cache(maxsize=1)
def get_openapi() -> dict[str, Any]:
    """The OpenAPI document (chalicelib/openapi.py), built once per settings."""
    from . import openapi  # the document's builder is needed by one route only

    return openapi.build(get_settings())


@functools.lru_cache(maxsize=1)
def get_web() -> WebPages:
    from .web import WebPages

    # The upload page sends files to where the presigned URLs point: the S3 client's endpoint (path-style URLs).
    return WebPages(storage_origin=get_clients().s3.meta.endpoint_url)


def reset() -> None:
    """Forget cached settings and clients (tests, or after changing the environment)."""
    for cached in (
        get_settings,
        get_clients,
        get_service,
        get_worker,
        get_range_worker,
        _queue,
        get_authenticator,
        get_uploads,
        get_openapi,
        get_web,
    ):
        cached.cache_clear()
