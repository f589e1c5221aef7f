from __future__ import annotations

import os
import sys
from pathlib import Path

import boto3
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

# Offline, fake credentials, our own names: set before anything imports app.py.
TEST_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
    "SQUEEZER_BUCKET": "squeezer-test-files",
    "SQUEEZER_TABLE": "squeezer-test-jobs",
    "SQUEEZER_QUEUE": "squeezer-test-jobs",
    "SQUEEZER_DLQ": "squeezer-test-jobs-dlq",
    "SQUEEZER_PART_SIZE": str(5 * 1024 * 1024),
}
for _name in ("AWS_PROFILE", "AWS_ENDPOINT_URL"):
    os.environ.pop(_name, None)
os.environ.update(TEST_ENV)

from chalicelib import wiring  # noqa: E402
from chalicelib.settings import Settings  # noqa: E402
from infra.resources import StageConfig, create_resources  # noqa: E402

TEST_STAGE = StageConfig(
    stage="test",
    bucket=TEST_ENV["SQUEEZER_BUCKET"],
    table=TEST_ENV["SQUEEZER_TABLE"],
    queue=TEST_ENV["SQUEEZER_QUEUE"],
    dead_letter_queue=TEST_ENV["SQUEEZER_DLQ"],
    worker_timeout=60,
    max_receive_count=3,
)


@pytest.fixture
def settings() -> Settings:
    return Settings.from_env()


@pytest.fixture
def moto_aws():
    """Every Squeezer resource, created from infra's definition inside moto."""
    from moto import mock_aws

    with mock_aws():
        session = boto3.session.Session(region_name="us-east-1")
        created = create_resources(
            TEST_STAGE, s3=session.client("s3"), sqs=session.client("sqs"),
            dynamodb=session.client("dynamodb"), region="us-east-1",
        )
        wiring.reset()
        yield created
        wiring.reset()
