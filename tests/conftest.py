from __future__ import annotations

import os
from pathlib import Path

import boto3
import pytest

ROOT = Path(__file__).resolve().parent.parent

from infra.local.config import FAKE_AWS  # noqa: E402
from infra.resources import load_chalice_config, stage_config  # noqa: E402

# Offline, the one set of fake credentials (the local stack's), our own names:
# set before anything imports app.py.
TEST_ENV = dict(FAKE_AWS)

# The "test" stage of .chalice/config.json: chalice.test.Client applies the
# same variables, so the app, the worker and moto agree on every name.
TEST_STAGE = stage_config("test")
_config = load_chalice_config()
TEST_ENV.update(_config.get("environment_variables", {}))
TEST_ENV.update(_config["stages"]["test"]["environment_variables"])
for _name in ("AWS_PROFILE", "AWS_ENDPOINT_URL"):
    os.environ.pop(_name, None)
os.environ.update(TEST_ENV)

from chalicelib import wiring  # noqa: E402
from infra.local import gateway  # noqa: E402

# chalice.test.Client answers unknown routes as the deployed API Gateway does.
gateway.install()
from chalicelib.settings import Settings  # noqa: E402
from infra.resources import create_resources  # noqa: E402


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
            TEST_STAGE,
            s3=session.client("s3"),
            sqs=session.client("sqs"),
            dynamodb=session.client("dynamodb"),
            region="us-east-1",
        )
        wiring.reset()
        yield created
        wiring.reset()
