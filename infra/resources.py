"""The one definition of Squeezer's resources.

Everything that describes the bucket, the queues and the table lives here:
the local stack, LocalStack and the moto tests create them with
:func:`create_resources` (boto3); AWS deployments get the same settings as
CloudFormation from :func:`cloudformation_resources`. Resource names come
from a stage's environment variables in ``.chalice/config.json``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CHALICE_CONFIG = ROOT / ".chalice" / "config.json"

WORKER_FUNCTION = "compress"
DEAD_LETTER_FUNCTION = "dead_letters"
OWNER_INDEX = "by_owner"
TTL_ATTRIBUTE = "expires_at"
DEAD_LETTER_RETENTION_SECONDS = 14 * 86400
LONG_POLL_SECONDS = 20


@dataclass(frozen=True)
class StageConfig:
    """Names and tunables of one stage, read from .chalice/config.json."""

    stage: str
    bucket: str
    table: str
    queue: str
    dead_letter_queue: str
    worker_timeout: int
    max_receive_count: int = 5
    expire_days: int = 30
    uploads_prefix: str = "uploads/"
    results_prefix: str = "results/"
    dead_letters_prefix: str = "dead-letters/"
    # None: derived from the worker's timeout. Set only by the local stack's
    # fault tests (a short lease to expire on purpose); deployments derive it.
    visibility_timeout_override: int | None = None

    @property
    def visibility_timeout(self) -> int:
        if self.visibility_timeout_override is not None:
            return self.visibility_timeout_override
        # AWS: at least 6x the function timeout when Lambda polls the queue.
        return 6 * self.worker_timeout

    @property
    def environment(self) -> dict[str, str]:
        return {
            "SQUEEZER_BUCKET": self.bucket,
            "SQUEEZER_TABLE": self.table,
            "SQUEEZER_QUEUE": self.queue,
            "SQUEEZER_DLQ": self.dead_letter_queue,
        }


def load_chalice_config(path: Path = CHALICE_CONFIG) -> dict[str, Any]:
    return json.loads(path.read_text())


def stage_config(stage: str, config: Mapping[str, Any] | None = None) -> StageConfig:
    config = load_chalice_config() if config is None else config
    if stage not in config.get("stages", {}):
        raise KeyError(f"stage {stage!r} is not in .chalice/config.json: {sorted(config['stages'])}")
    stage_cfg = config["stages"][stage]
    env = {**config.get("environment_variables", {}), **stage_cfg.get("environment_variables", {})}
    functions = {**config.get("lambda_functions", {}), **stage_cfg.get("lambda_functions", {})}
    timeout = functions.get(WORKER_FUNCTION, {}).get(
        "lambda_timeout", stage_cfg.get("lambda_timeout", config.get("lambda_timeout", 60))
    )
    return StageConfig(
        stage=stage,
        bucket=env["SQUEEZER_BUCKET"],
        table=env["SQUEEZER_TABLE"],
        queue=env["SQUEEZER_QUEUE"],
        dead_letter_queue=env["SQUEEZER_DLQ"],
        worker_timeout=int(timeout),
        max_receive_count=int(env.get("SQUEEZER_MAX_RECEIVE_COUNT", 5)),
        expire_days=int(env.get("SQUEEZER_RECORD_TTL_DAYS", 30)),
    )


# -- shared pieces of the definition -------------------------------------------


def table_definition(name: str) -> dict[str, Any]:
    """CreateTable arguments (also the CloudFormation table's properties)."""
    return {
        "TableName": name,
        "BillingMode": "PAY_PER_REQUEST",
        "AttributeDefinitions": [
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
            {"AttributeName": "gsi1pk", "AttributeType": "S"},
            {"AttributeName": "gsi1sk", "AttributeType": "S"},
        ],
        "KeySchema": [
            {"AttributeName": "pk", "KeyType": "HASH"},
            {"AttributeName": "sk", "KeyType": "RANGE"},
        ],
        "GlobalSecondaryIndexes": [
            {
                "IndexName": OWNER_INDEX,
                "KeySchema": [
                    {"AttributeName": "gsi1pk", "KeyType": "HASH"},
                    {"AttributeName": "gsi1sk", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "ALL"},
            }
        ],
    }


def queue_attributes(cfg: StageConfig, dead_letter_arn: str) -> dict[str, str]:
    return {
        "VisibilityTimeout": str(cfg.visibility_timeout),
        "ReceiveMessageWaitTimeSeconds": str(LONG_POLL_SECONDS),
        "RedrivePolicy": json.dumps({"deadLetterTargetArn": dead_letter_arn, "maxReceiveCount": cfg.max_receive_count}),
    }


def dead_letter_queue_attributes() -> dict[str, str]:
    return {
        "MessageRetentionPeriod": str(DEAD_LETTER_RETENTION_SECONDS),
        "ReceiveMessageWaitTimeSeconds": str(LONG_POLL_SECONDS),
        # The dead-letter handler runs quickly; a short timeout re-tries it soon.
        "VisibilityTimeout": "120",
    }


def queue_policy(queue_arn: str, bucket_arn: str) -> dict[str, Any]:
    """Lets the bucket (and only it) send its notifications to the jobs queue."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "AllowBucketNotifications",
                "Effect": "Allow",
                "Principal": {"Service": "s3.amazonaws.com"},
                "Action": "sqs:SendMessage",
                "Resource": queue_arn,
                "Condition": {"ArnEquals": {"aws:SourceArn": bucket_arn}},
            }
        ],
    }


def notification_configuration(cfg: StageConfig, queue_arn: str) -> dict[str, Any]:
    return {
        "QueueConfigurations": [
            {
                "Id": "squeezer-uploads",
                "QueueArn": queue_arn,
                "Events": ["s3:ObjectCreated:*"],
                "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": cfg.uploads_prefix}]}},
            }
        ]
    }


def lifecycle_rules(cfg: StageConfig) -> list[dict[str, Any]]:
    return [
        {
            "ID": "abort-incomplete-multipart",
            "Status": "Enabled",
            "Filter": {"Prefix": ""},
            "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1},
        },
        {
            "ID": "expire-uploads",
            "Status": "Enabled",
            "Filter": {"Prefix": cfg.uploads_prefix},
            "Expiration": {"Days": cfg.expire_days},
        },
        {
            "ID": "expire-results",
            "Status": "Enabled",
            "Filter": {"Prefix": cfg.results_prefix},
            "Expiration": {"Days": cfg.expire_days},
        },
        {
            # malformed dead letters, kept for an operator as long as the
            # dead-letter queue keeps its messages
            "ID": "expire-dead-letters",
            "Status": "Enabled",
            "Filter": {"Prefix": cfg.dead_letters_prefix},
            "Expiration": {"Days": 14},
        },
    ]


def public_access_block() -> dict[str, bool]:
    """Every public-access switch on: objects are reached only through presigned URLs."""
    return {
        "BlockPublicAcls": True,
        "IgnorePublicAcls": True,
        "BlockPublicPolicy": True,
        "RestrictPublicBuckets": True,
    }


# Default bucket encryption (SSE-S3): free, and needs no KMS permission for
# the functions or for presigned uploads.
ENCRYPTION_ALGORITHM = "AES256"


def cors_rules() -> list[dict[str, Any]]:
    # Browser uploads straight to S3 with the presigned URLs.
    return [
        {
            "AllowedMethods": ["PUT", "GET"],
            "AllowedOrigins": ["*"],
            "AllowedHeaders": ["*"],
            "ExposeHeaders": ["ETag"],
            "MaxAgeSeconds": 3000,
        }
    ]


# -- boto3: local stack, LocalStack, moto ------------------------------------------


@dataclass(frozen=True)
class CreatedResources:
    queue_url: str
    queue_arn: str
    dead_letter_queue_url: str
    dead_letter_queue_arn: str


def create_resources(cfg: StageConfig, *, s3: Any, sqs: Any, dynamodb: Any, region: str) -> CreatedResources:
    """Create (or update) every resource of a stage. Idempotent."""
    dlq_url = sqs.create_queue(QueueName=cfg.dead_letter_queue, Attributes=dead_letter_queue_attributes())["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    attributes = queue_attributes(cfg, dlq_arn)
    try:
        queue_url = sqs.create_queue(QueueName=cfg.queue, Attributes=attributes)["QueueUrl"]
    except sqs.exceptions.QueueNameExists:
        queue_url = sqs.get_queue_url(QueueName=cfg.queue)["QueueUrl"]
        sqs.set_queue_attributes(QueueUrl=queue_url, Attributes=attributes)
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]

    existing = {b["Name"] for b in s3.list_buckets().get("Buckets", [])}
    if cfg.bucket not in existing:
        if region == "us-east-1":
            s3.create_bucket(Bucket=cfg.bucket)
        else:
            s3.create_bucket(Bucket=cfg.bucket, CreateBucketConfiguration={"LocationConstraint": region})
    bucket_arn = f"arn:aws:s3:::{cfg.bucket}"
    sqs.set_queue_attributes(QueueUrl=queue_url, Attributes={"Policy": json.dumps(queue_policy(queue_arn, bucket_arn))})
    s3.put_public_access_block(Bucket=cfg.bucket, PublicAccessBlockConfiguration=public_access_block())
    s3.put_bucket_encryption(
        Bucket=cfg.bucket,
        ServerSideEncryptionConfiguration={
            "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": ENCRYPTION_ALGORITHM}}]
        },
    )
    s3.put_bucket_lifecycle_configuration(Bucket=cfg.bucket, LifecycleConfiguration={"Rules": lifecycle_rules(cfg)})
    s3.put_bucket_cors(Bucket=cfg.bucket, CORSConfiguration={"CORSRules": cors_rules()})
    s3.put_bucket_notification_configuration(
        Bucket=cfg.bucket, NotificationConfiguration=notification_configuration(cfg, queue_arn)
    )

    try:
        dynamodb.create_table(**table_definition(cfg.table))
        dynamodb.get_waiter("table_exists").wait(TableName=cfg.table, WaiterConfig={"Delay": 1, "MaxAttempts": 60})
        dynamodb.update_time_to_live(
            TableName=cfg.table, TimeToLiveSpecification={"Enabled": True, "AttributeName": TTL_ATTRIBUTE}
        )
    except dynamodb.exceptions.ResourceInUseException:
        pass  # already there: this function is re-run on every start
    return CreatedResources(queue_url, queue_arn, dlq_url, dlq_arn)


# -- shared by the CloudFormation template and the `chalice deploy` path --------
# (added for infra/cloudformation.py and infra/deploy.py)

API_FUNCTION = "api_handler"
DEAD_LETTER_ALARM_PERIOD = 300


def function_names(stage: str, config: Mapping[str, Any] | None = None) -> dict[str, str]:
    """The Lambda function names Chalice gives a stage's functions.

    ``chalice deploy`` names them ``<app>-<stage>`` (the API handler) and
    ``<app>-<stage>-<function>``; the packaged template uses the same names,
    so log groups, IAM scopes and the event source mappings agree on both paths.
    """
    config = load_chalice_config() if config is None else config
    prefix = f"{config['app_name']}-{stage}"
    return {
        API_FUNCTION: prefix,
        WORKER_FUNCTION: f"{prefix}-{WORKER_FUNCTION}",
        DEAD_LETTER_FUNCTION: f"{prefix}-{DEAD_LETTER_FUNCTION}",
    }


def dead_letter_alarm(cfg: StageConfig) -> dict[str, Any]:
    """PutMetricAlarm arguments (also the CloudFormation alarm's properties).

    Any message in the dead-letter queue means a file ran out of retries
    (its dead-letter handler marks it failed); someone should look at why.
    """
    return {
        "AlarmName": f"{cfg.dead_letter_queue}-not-empty",
        "AlarmDescription": (
            f"Messages in {cfg.dead_letter_queue}: uploads of stage {cfg.stage} "
            "failed after all retries. Check the compress function's logs."
        ),
        "Namespace": "AWS/SQS",
        "MetricName": "ApproximateNumberOfMessagesVisible",
        "Dimensions": [{"Name": "QueueName", "Value": cfg.dead_letter_queue}],
        "Statistic": "Maximum",
        "Period": DEAD_LETTER_ALARM_PERIOD,
        "EvaluationPeriods": 1,
        "Threshold": 1.0,
        "ComparisonOperator": "GreaterThanOrEqualToThreshold",
        "TreatMissingData": "notBreaching",
    }


def create_aws_extras(
    cfg: StageConfig, *, dynamodb: Any, cloudwatch: Any, alarm_actions: list[str] | None = None
) -> None:
    """What AWS adds to :func:`create_resources`: point-in-time recovery and the DLQ alarm.

    Kept apart because the local stack and LocalStack's community edition do
    not need (or fully support) them. Idempotent.
    """
    dynamodb.update_continuous_backups(
        TableName=cfg.table,
        PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True},
    )
    alarm = dead_letter_alarm(cfg)
    if alarm_actions:
        alarm["AlarmActions"] = list(alarm_actions)
    cloudwatch.put_metric_alarm(**alarm)


def delete_resources(cfg: StageConfig, *, s3: Any, sqs: Any, dynamodb: Any, cloudwatch: Any | None = None) -> list[str]:
    """Delete what :func:`create_resources` (and :func:`create_aws_extras`) made.

    Empties the bucket first (its objects are only uploads and results).
    Missing resources are skipped. Returns what was deleted.
    """
    deleted: list[str] = []
    if cloudwatch is not None:
        name = dead_letter_alarm(cfg)["AlarmName"]
        if cloudwatch.describe_alarms(AlarmNames=[name]).get("MetricAlarms"):
            cloudwatch.delete_alarms(AlarmNames=[name])
            deleted.append(f"alarm {name}")
    if cfg.bucket in {b["Name"] for b in s3.list_buckets().get("Buckets", [])}:
        empty_bucket(s3, cfg.bucket)
        s3.delete_bucket(Bucket=cfg.bucket)
        deleted.append(f"bucket {cfg.bucket}")
    for queue in (cfg.queue, cfg.dead_letter_queue):
        try:
            url = sqs.get_queue_url(QueueName=queue)["QueueUrl"]
        except sqs.exceptions.QueueDoesNotExist:
            continue
        sqs.delete_queue(QueueUrl=url)
        deleted.append(f"queue {queue}")
    try:
        dynamodb.delete_table(TableName=cfg.table)
        deleted.append(f"table {cfg.table}")
    except dynamodb.exceptions.ResourceNotFoundException:
        pass
    return deleted


def empty_bucket(s3: Any, bucket: str) -> int:
    """Delete every object, version and unfinished multipart upload of a bucket."""
    count = 0
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket):
        items = [
            {"Key": v["Key"], "VersionId": v["VersionId"]}
            for v in page.get("Versions", []) + page.get("DeleteMarkers", [])
        ]
        for start in range(0, len(items), 1000):
            s3.delete_objects(Bucket=bucket, Delete={"Objects": items[start : start + 1000], "Quiet": True})
            count += len(items[start : start + 1000])
    for page in s3.get_paginator("list_multipart_uploads").paginate(Bucket=bucket):
        for upload in page.get("Uploads", []):
            s3.abort_multipart_upload(Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"])
    return count
