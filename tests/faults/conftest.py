"""Fixtures the fault tests share."""

import boto3
import pytest
from fakes import InMemoryJobStore

from chalicelib.jobstore import DynamoJobStore


@pytest.fixture(params=["memory", "dynamodb"])
def store(request):
    """Each case on the in-memory store and on DynamoDB (moto)."""
    if request.param == "memory":
        return InMemoryJobStore()
    request.getfixturevalue("moto_aws")
    return DynamoJobStore(boto3.resource("dynamodb", region_name="us-east-1").Table("squeezer-test-jobs"))
