"""LocalStack tier: the real adapters against LocalStack's S3, SQS and DynamoDB.

Skipped when nothing answers at LOCALSTACK_ENDPOINT (default
http://127.0.0.1:4566); start it with infra/localstack/start.sh. Every run
creates its own stage (unique names) with infra.resources.create_resources
and deletes it afterwards.
"""

from __future__ import annotations

import dataclasses
import os
import uuid
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
import requests

from chalicelib.aws import AwsClients
from chalicelib.jobstore import DynamoJobStore
from chalicelib.queue import SqsWorkQueue
from chalicelib.service import JobService
from chalicelib.settings import Settings
from chalicelib.storage import S3Storage
from chalicelib.worker import Worker
from infra.local.config import FAKE_AWS
from infra.resources import CreatedResources, StageConfig, create_resources, delete_resources, stage_config

ENDPOINT = os.environ.get("LOCALSTACK_ENDPOINT", "http://127.0.0.1:4566")
REGION = "us-east-1"


def _localstack_up() -> str | None:
    """None if LocalStack's s3, sqs and dynamodb are up, else why not."""
    try:
        health = requests.get(f"{ENDPOINT}/_localstack/health", timeout=2).json()
    except (requests.RequestException, ValueError) as exc:
        return (
            f"LocalStack is not reachable at {ENDPOINT} ({type(exc).__name__}); start it with infra/localstack/start.sh"
        )
    services = health.get("services", {})
    down = [s for s in ("s3", "sqs", "dynamodb") if services.get(s) not in ("available", "running")]
    return f"LocalStack at {ENDPOINT} does not run {', '.join(down)}" if down else None


def pytest_collection_modifyitems(config, items):
    here = os.path.dirname(__file__)
    ours = [item for item in items if str(item.fspath).startswith(here)]
    if not ours:
        return
    reason = _localstack_up()
    if reason and os.environ.get("SQUEEZER_REQUIRE_LOCALSTACK") == "1":
        # `make test-localstack` (and CI) started LocalStack: not finding it is a failure.
        raise pytest.UsageError(reason)
    for item in ours:
        item.add_marker(pytest.mark.localstack)
        if reason:
            item.add_marker(pytest.mark.skip(reason=reason))


@dataclass
class Stack:
    cfg: StageConfig
    created: CreatedResources
    settings: Settings
    clients: AwsClients
    s3: Any
    sqs: Any
    storage: S3Storage
    store: DynamoJobStore
    service: JobService
    worker: Worker


@pytest.fixture(scope="module")
def stack() -> Stack:
    suffix = uuid.uuid4().hex[:8]
    base = stage_config("local")
    cfg = dataclasses.replace(
        base,
        stage=f"lst{suffix}",
        bucket=f"squeezer-lst-{suffix}-files",
        table=f"squeezer-lst-{suffix}-jobs",
        queue=f"squeezer-lst-{suffix}-jobs",
        dead_letter_queue=f"squeezer-lst-{suffix}-jobs-dlq",
    )
    # The one set of fake credentials; LocalStack checks presigned signatures against the secret "test"
    session = boto3.session.Session(
        aws_access_key_id=FAKE_AWS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=FAKE_AWS["AWS_SECRET_ACCESS_KEY"],
        region_name=REGION,
    )
    raw = {name: session.client(name, endpoint_url=ENDPOINT, region_name=REGION) for name in ("s3", "sqs", "dynamodb")}
    created = create_resources(cfg, region=REGION, enforce_tls=False, **raw)
    settings = Settings(
        bucket=cfg.bucket,
        table=cfg.table,
        queue_name=cfg.queue,
        dead_letter_queue_name=cfg.dead_letter_queue,
        region=REGION,
        endpoint_url=ENDPOINT,
        upload_url_ttl=300,
        download_url_ttl=300,
        retry_base_delay=1,
        retry_max_delay=2,
        compress_threads=1,
    )
    clients = AwsClients(settings, session=session)
    store = DynamoJobStore(clients.dynamodb.Table(cfg.table), ttl_days=settings.record_ttl_days)
    storage = S3Storage(clients.s3, cfg.bucket, part_size=settings.part_size)
    stack = Stack(
        cfg=cfg,
        created=created,
        settings=settings,
        clients=clients,
        s3=clients.s3,
        sqs=clients.sqs,
        storage=storage,
        store=store,
        service=JobService(store, storage, settings),
        worker=Worker(store, storage, SqsWorkQueue(clients.sqs, cfg.queue), settings),
    )
    yield stack
    delete_resources(cfg, **raw)
