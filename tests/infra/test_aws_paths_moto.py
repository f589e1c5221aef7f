"""The boto3 halves of the deployment, against moto: chalice-deploy's resources and
mapping update, the CloudFormation deploy/teardown calls, and the resource teardown."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from infra import cloudformation as cf
from infra.deploy import direct, stack
from infra.deploy.errors import DeployError
from infra.resources import (
    INFRA_KEY,
    TTL_ATTRIBUTE,
    bucket_policy,
    create_aws_extras,
    create_resources,
    dead_letter_alarm,
    delete_resources,
    function_names,
    load_chalice_config,
    stage_config,
)

REGION = "us-east-1"
CFG = stage_config("dev")


@pytest.fixture
def aws():
    with mock_aws():
        yield boto3.session.Session(region_name=REGION)


def _zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("app.py", "def handler(event, context):\n    return {}\n")
    return buffer.getvalue()


def _function(session, name: str) -> None:
    iam = session.client("iam")
    role = iam.create_role(
        RoleName=f"{name}-role",
        AssumeRolePolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}
                ],
            }
        ),
    )["Role"]["Arn"]
    session.client("lambda").create_function(
        FunctionName=name,
        Runtime="python3.11",
        Role=role,
        Handler="app.handler",
        Code={"ZipFile": _zip()},
    )


def test_chalice_deploy_resources_extras_and_batch_item_failures(aws):
    clients = direct.make_clients(aws, REGION)
    created = direct.create_stage_resources(CFG, clients, REGION)
    create_aws_extras(
        CFG,
        dynamodb=clients["dynamodb"],
        cloudwatch=aws.client("cloudwatch"),
        alarm_actions=["arn:aws:sns:us-east-1:123456789012:ops"],
    )

    ddb = clients["dynamodb"]
    backups = ddb.describe_continuous_backups(TableName=CFG.table)["ContinuousBackupsDescription"]
    assert backups["PointInTimeRecoveryDescription"]["PointInTimeRecoveryStatus"] == "ENABLED"
    ttl = ddb.describe_time_to_live(TableName=CFG.table)["TimeToLiveDescription"]
    assert ttl["AttributeName"] == TTL_ATTRIBUTE
    (alarm,) = aws.client("cloudwatch").describe_alarms(AlarmNames=[dead_letter_alarm(CFG)["AlarmName"]])[
        "MetricAlarms"
    ]
    assert alarm["Dimensions"] == [{"Name": "QueueName", "Value": CFG.dead_letter_queue}]
    assert alarm["AlarmActions"] == ["arn:aws:sns:us-east-1:123456789012:ops"]
    attrs = clients["sqs"].get_queue_attributes(QueueUrl=created.queue_url, AttributeNames=["All"])["Attributes"]
    assert int(attrs["VisibilityTimeout"]) >= 6 * CFG.worker_timeout
    # the ranges queue: the jobs queue's visibility timeout and redrive (to the same dead-letter queue)
    ranges = clients["sqs"].get_queue_attributes(QueueUrl=created.ranges_queue_url, AttributeNames=["All"])
    assert created.ranges_queue_url.endswith(f"/{CFG.queue}-ranges")
    assert ranges["Attributes"]["VisibilityTimeout"] == attrs["VisibilityTimeout"]
    assert json.loads(ranges["Attributes"]["RedrivePolicy"]) == json.loads(attrs["RedrivePolicy"])
    assert json.loads(attrs["RedrivePolicy"])["deadLetterTargetArn"] == created.dead_letter_queue_arn

    # what chalice deploy leaves: functions with plain SQS mappings
    names = function_names("dev")
    lam = aws.client("lambda")
    sources = (
        ("compress", created.queue_arn, 10),
        ("compress_range", created.ranges_queue_arn, 1),
        ("dead_letters", created.dead_letter_queue_arn, 10),
    )
    for function, queue_arn, batch_size in sources:
        _function(aws, names[function])
        function_arn = lam.get_function(FunctionName=names[function])["Configuration"]["FunctionArn"]
        # chalice creates its mappings with the function's ARN
        lam.create_event_source_mapping(EventSourceArn=queue_arn, FunctionName=function_arn, BatchSize=batch_size)

    changed = direct.enable_batch_item_failures(lam, names["compress"], created.queue_arn, sleep=lambda s: None)
    assert len(changed) == 1
    changed = direct.enable_batch_item_failures(
        lam, names["compress_range"], created.ranges_queue_arn, sleep=lambda s: None
    )
    assert len(changed) == 1
    direct.enable_batch_item_failures(lam, names["dead_letters"], created.dead_letter_queue_arn, sleep=lambda s: None)
    for function in ("compress", "compress_range", "dead_letters"):
        (mapping,) = [
            m
            for m in lam.list_event_source_mappings()["EventSourceMappings"]
            if m["FunctionArn"].endswith(f":function:{names[function]}")
        ]
        assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    # idempotent: a second run changes nothing
    assert direct.enable_batch_item_failures(lam, names["compress"], created.queue_arn, sleep=lambda s: None) == []

    # create_resources again (every deploy) is harmless
    create_resources(CFG, s3=clients["s3"], sqs=clients["sqs"], dynamodb=clients["dynamodb"], region=REGION)


def test_mapping_update_fails_clearly_without_a_mapping(aws):
    clients = direct.make_clients(aws, REGION)
    created = direct.create_stage_resources(CFG, clients, REGION)
    name = function_names("dev")["compress"]
    _function(aws, name)
    with pytest.raises(DeployError, match="no event source mapping"):
        direct.enable_batch_item_failures(aws.client("lambda"), name, created.queue_arn, sleep=lambda s: None)


def test_delete_resources_removes_the_stage(aws):
    clients = direct.make_clients(aws, REGION)
    # without the TLS-only bucket policy: moto 5.2 denies every PutObject and
    # DeleteObjects under a Deny whose condition does not hold
    direct.create_stage_resources(CFG, clients, REGION, enforce_tls=False)
    cloudwatch = aws.client("cloudwatch")
    create_aws_extras(CFG, dynamodb=clients["dynamodb"], cloudwatch=cloudwatch)
    clients["s3"].put_object(Bucket=CFG.bucket, Key="uploads/j/f", Body=b"x")
    deleted = delete_resources(CFG, cloudwatch=cloudwatch, **clients)
    assert len(deleted) == 6
    assert f"queue {CFG.ranges_queue}" in deleted
    assert CFG.bucket not in [b["Name"] for b in clients["s3"].list_buckets()["Buckets"]]
    assert clients["sqs"].list_queues().get("QueueUrls", []) == []
    assert clients["dynamodb"].list_tables()["TableNames"] == []
    assert delete_resources(CFG, cloudwatch=cloudwatch, **clients) == []  # again: nothing left, no error


def _cors(s3):
    try:
        return s3.get_bucket_cors(Bucket=CFG.bucket)["CORSRules"]
    except s3.exceptions.ClientError as exc:
        assert exc.response["Error"]["Code"] == "NoSuchCORSConfiguration"
        return None


def test_create_resources_hardens_the_bucket_like_the_template(aws):
    s3 = aws.client("s3")
    # what an older create_resources left: CORS for every origin
    s3.create_bucket(Bucket=CFG.bucket)
    s3.put_bucket_cors(
        Bucket=CFG.bucket,
        CORSConfiguration={"CORSRules": [{"AllowedMethods": ["PUT", "GET"], "AllowedOrigins": ["*"]}]},
    )
    clients = direct.make_clients(aws, REGION)
    create_resources(CFG, region=REGION, **clients)

    policy = json.loads(s3.get_bucket_policy(Bucket=CFG.bucket)["Policy"])
    arn = f"arn:aws:s3:::{CFG.bucket}"
    assert policy == bucket_policy(arn, f"{arn}/*")
    (statement,) = policy["Statement"]
    assert (statement["Effect"], statement["Condition"]) == ("Deny", {"Bool": {"aws:SecureTransport": "false"}})
    (rule,) = s3.get_bucket_encryption(Bucket=CFG.bucket)["ServerSideEncryptionConfiguration"]["Rules"]
    assert rule["ApplyServerSideEncryptionByDefault"] == {"SSEAlgorithm": "AES256"}
    assert _cors(s3) is None  # the old "*" rule is gone
    block = s3.get_public_access_block(Bucket=CFG.bucket)["PublicAccessBlockConfiguration"]
    assert set(block.values()) == {True}


def test_create_resources_with_origins_and_a_kms_key(aws):
    key = aws.client("kms").create_key()["KeyMetadata"]["Arn"]
    config = load_chalice_config()
    config["stages"]["dev"][INFRA_KEY] = {"cors_origins": ["https://app.example.com"], "kms_key_arn": key}
    cfg = stage_config("dev", config)
    clients = direct.make_clients(aws, REGION)
    create_resources(cfg, region=REGION, **clients)
    s3 = clients["s3"]
    (rule,) = _cors(s3)
    assert rule["AllowedOrigins"] == ["https://app.example.com"]
    assert sorted(rule["AllowedMethods"]) == ["GET", "HEAD", "POST", "PUT"]
    assert rule["ExposeHeaders"] == ["ETag"]
    (encryption,) = s3.get_bucket_encryption(Bucket=cfg.bucket)["ServerSideEncryptionConfiguration"]["Rules"]
    assert encryption["ApplyServerSideEncryptionByDefault"] == {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": key}
    assert encryption["BucketKeyEnabled"] is True

    # origins removed again: no CORS left
    create_resources(stage_config("dev"), region=REGION, **clients)
    assert _cors(s3) is None


def test_emulators_get_no_tls_only_policy(aws):
    clients = direct.make_clients(aws, REGION)
    direct.create_stage_resources(CFG, clients, REGION, enforce_tls=False)
    with pytest.raises(clients["s3"].exceptions.ClientError, match="NoSuchBucketPolicy"):
        clients["s3"].get_bucket_policy(Bucket=CFG.bucket)


def _packaged_dir(tmp_path, resources: dict, outputs: dict) -> Path:
    packaged = tmp_path / "packaged"
    packaged.mkdir()
    (packaged / "deployment.zip").write_bytes(_zip())
    template = {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Parameters": {cf.ALARM_TOPIC_PARAMETER: {"Type": "String", "Default": ""}},
        "Resources": resources,
        "Outputs": outputs,
    }
    (packaged / "sam.json").write_text(json.dumps(template))
    return packaged


def test_upload_artifacts_points_code_uri_at_s3(aws, tmp_path):
    s3 = aws.client("s3")
    s3.create_bucket(Bucket="artifacts")
    packaged = _packaged_dir(
        tmp_path, {"Fn": {"Type": "AWS::Serverless::Function", "Properties": {"CodeUri": "./deployment.zip"}}}, {}
    )
    template, url = stack.upload_artifacts(s3, packaged, "artifacts", "squeezer-dev")
    code_uri = template["Resources"]["Fn"]["Properties"]["CodeUri"]
    assert code_uri.startswith("s3://artifacts/squeezer-dev/deployment-") and code_uri.endswith(".zip")
    key = code_uri.split("/", 3)[3]
    assert s3.get_object(Bucket="artifacts", Key=key)["Body"].read() == _zip()
    assert url.endswith(".json") and "/artifacts/squeezer-dev/template-" in url


def test_deploy_stack_creates_updates_and_deletes(aws, tmp_path):
    s3, cfn = aws.client("s3"), aws.client("cloudformation")
    s3.create_bucket(Bucket="artifacts")
    packaged = _packaged_dir(
        tmp_path,
        {
            cf.BUCKET: {"Type": "AWS::S3::Bucket", "Properties": {"BucketName": "squeezer-dev-files-123"}},
            cf.QUEUE: {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": "squeezer-dev-jobs"}},
        },
        {"EndpointURL": {"Value": "https://example.execute-api/api/"}},
    )
    first = stack.deploy_stack(
        cfn,
        s3,
        name="squeezer-dev",
        packaged_dir=packaged,
        artifacts_bucket="artifacts",
        parameters={cf.ALARM_TOPIC_PARAMETER: ""},
    )
    assert first.status == "CREATE_COMPLETE"
    assert first.outputs["EndpointURL"] == "https://example.execute-api/api/"
    again = stack.deploy_stack(cfn, s3, name="squeezer-dev", packaged_dir=packaged, artifacts_bucket="artifacts")
    assert again.status in ("CREATE_COMPLETE", "UPDATE_COMPLETE")

    s3.put_object(Bucket="squeezer-dev-files-123", Key="results/j/f.zst", Body=b"x")
    assert stack.delete_stack(cfn, s3, name="squeezer-dev") is True
    assert "squeezer-dev-files-123" not in [b["Name"] for b in s3.list_buckets()["Buckets"]]
    assert stack.delete_stack(cfn, s3, name="squeezer-dev") is False
