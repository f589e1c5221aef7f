from __future__ import annotations

import functools
import os
from pathlib import Path

import boto3
import botocore.loaders
import botocore.session
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

# One botocore data loader for the whole test process. chalicelib.aws builds a
# new boto3 session for each client, and every new session parses the service
# models (s3, sqs, dynamodb: JSON files of megabytes) again: after each
# wiring.reset() that was about 0.3 s per test. The models never change, so
# sharing the loader (and its cache) changes nothing but the time; the
# clients themselves are still built afresh for each test.
botocore.session.create_loader = functools.lru_cache(maxsize=None)(botocore.loaders.create_loader)

from chalicelib import wiring  # noqa: E402
from infra.local import gateway  # noqa: E402

# chalice.test.Client answers unknown routes as the deployed API Gateway does.
gateway.install()
from chalicelib.settings import Settings  # noqa: E402
from infra.resources import CreatedResources, create_resources  # noqa: E402


@pytest.fixture
def settings() -> Settings:
    return Settings.from_env()


class _MotoSession:
    """One moto mock for the whole session: its patching is switched on per test.

    Per test, moto's state is reset (every backend, so also what a test's own
    ``mock_aws()`` left) and Squeezer's resources are created again from
    infra's definition: about 50 ms, with the boto3 clients built once per
    session instead of per test. Tests see exactly what a fresh ``mock_aws()``
    gave them: an empty bucket, table and queues (plus S3's one TestEvent).
    """

    def __init__(self) -> None:
        from moto import mock_aws

        self._mock = mock_aws()
        self._clients: dict[str, object] | None = None

    def __enter__(self) -> CreatedResources:
        self._mock.start(reset=True)  # moto's reset: every backend emptied
        if self._clients is None:  # built inside the mock (moto's credentials)
            session = boto3.session.Session(region_name="us-east-1")
            self._clients = {name: session.client(name) for name in ("s3", "sqs", "dynamodb")}
        created = create_resources(TEST_STAGE, **self._clients, region="us-east-1", enforce_tls=False)
        wiring.reset()  # the app's cached clients and adapters are rebuilt inside the mock
        return created

    def __exit__(self, *exc: object) -> None:
        wiring.reset()
        self._mock.stop(remove_data=False)  # reset on the next __enter__


@pytest.fixture(scope="session")
def _moto_session() -> _MotoSession:
    return _MotoSession()


@pytest.fixture
def moto_aws(_moto_session):
    """Every Squeezer resource, created from infra's definition inside moto, empty for each test."""
    with _moto_session as created:
        yield created
