import boto3
import pytest
from tenancy import TenantClient, create_tenant

import app as squeezer_app
from infra.resources import stage_config


@pytest.fixture
def tenant(moto_aws):
    return create_tenant(stage_config("test").table, "alice")


@pytest.fixture
def client(moto_aws, tenant):
    with TenantClient(squeezer_app.app, tenant, stage_name="test") as chalice_client:
        yield chalice_client


@pytest.fixture
def aws(moto_aws):
    session = boto3.session.Session(region_name="us-east-1")
    return session.client("s3"), session.client("sqs"), moto_aws
