"""The adapters turn botocore's errors into the project's (errors.py): nothing above them sees botocore."""

from __future__ import annotations

import boto3
import pytest
from botocore.exceptions import ClientError, EndpointConnectionError
from botocore.stub import Stubber

from chalicelib.errors import AwsError, AwsUnreachable
from chalicelib.jobstore import DynamoJobStore
from chalicelib.queue import SqsWorkQueue
from chalicelib.storage import S3Storage
from chalicelib.worker import classify


def failing(exc):
    def call(*args, **kwargs):
        raise exc

    return call


@pytest.fixture
def s3():
    return boto3.client("s3", region_name="us-east-1", endpoint_url="http://127.0.0.1:9")


def test_storage_translates_errors_and_keeps_not_found_as_an_answer(s3):
    storage = S3Storage(s3, "bucket", part_size=5 * 1024 * 1024)
    with Stubber(s3) as stub:
        stub.add_client_error("get_object", "NoSuchKey", http_status_code=404)
        stub.add_client_error("get_object", "SlowDown", http_status_code=503)
        stub.add_client_error("head_object", "404", http_status_code=404)
        stub.add_client_error("head_object", "AccessDenied", http_status_code=403)
        assert storage.open_read("k") is None
        with pytest.raises(AwsError) as raised:
            storage.open_read("k")
        assert raised.value.aws_code == "SlowDown" and raised.value.code == "aws_error"
        assert storage.exists("k") is False
        with pytest.raises(AwsError):
            storage.exists("k")
    s3.delete_object = failing(EndpointConnectionError(endpoint_url="http://127.0.0.1:9"))
    with pytest.raises(AwsUnreachable) as unreachable:
        storage.delete("k")
    assert unreachable.value.code == "connection_error"


def test_a_broken_body_mid_read_is_an_aws_error():
    from chalicelib.storage import _TranslatedBody

    class Broken:
        def read(self, size=-1):
            raise EndpointConnectionError(endpoint_url="http://s3")

        def close(self):
            pass

    with pytest.raises(AwsUnreachable):
        _TranslatedBody(Broken(), "k").read(10)


def test_job_store_translates_errors_but_a_failed_condition_is_an_answer():
    table = boto3.resource("dynamodb", region_name="us-east-1", endpoint_url="http://127.0.0.1:9").Table("t")
    store = DynamoJobStore(table)
    # conditional writes go through the resource's (thread-safe) client
    table.meta.client.update_item = failing(
        ClientError({"Error": {"Code": "ConditionalCheckFailedException", "Message": "no"}}, "UpdateItem")
    )
    assert store.mark_queued("j", "f", 1.0) is False
    table.meta.client.update_item = failing(
        ClientError({"Error": {"Code": "ProvisionedThroughputExceededException", "Message": "slow"}}, "UpdateItem")
    )
    with pytest.raises(AwsError) as raised:
        store.mark_queued("j", "f", 1.0)
    assert raised.value.aws_code == "ProvisionedThroughputExceededException"
    table.get_item = failing(EndpointConnectionError(endpoint_url="http://dynamodb"))
    with pytest.raises(AwsUnreachable):
        store.get_file("j", "f")


def test_queue_translates_errors():
    sqs = boto3.client("sqs", region_name="us-east-1", endpoint_url="http://127.0.0.1:9")
    queue = SqsWorkQueue(sqs, "q")
    sqs.get_queue_url = failing(
        ClientError({"Error": {"Code": "AWS.SimpleQueueService.NonExistentQueue", "Message": "none"}}, "GetQueueUrl")
    )
    with pytest.raises(AwsError):
        queue.delay("rh", 5)


def test_the_worker_retries_aws_errors_with_their_code():
    assert classify(AwsUnreachable("x")).code == "connection_error"
    assert classify(AwsError("x", aws_code="SlowDown")).code == "aws_error"
    assert classify(RuntimeError("bug")).code == "internal_error"
