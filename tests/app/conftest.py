import boto3
import pytest
from chalice.test import Client

import app as squeezer_app


@pytest.fixture
def client(moto_aws):
    with Client(squeezer_app.app, stage_name="test") as chalice_client:
        yield chalice_client


@pytest.fixture
def aws(moto_aws):
    session = boto3.session.Session(region_name="us-east-1")
    return session.client("s3"), session.client("sqs"), moto_aws
