"""The one definition of Squeezer's resources.

Everything that describes the bucket, the queues (jobs, ranges, dead letters)
and the table lives here:
the local stack, LocalStack and the moto tests create them with
:func:`create_resources` (boto3); AWS deployments get the same settings as
CloudFormation from :mod:`infra.cloudformation`. Resource names come
from a stage's environment variables in ``.chalice/config.json``; the
deployment's hardening settings (CORS origins, KMS key, API throttling, the
WAF body limit) from the stage's ``"squeezer_infra"`` object in the same
file, with their defaults declared once, in :class:`StageConfig`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chalicelib.cors import MAX_AGE_SECONDS as CORS_MAX_AGE_SECONDS
from chalicelib.http import MAX_BODY_BYTES
from chalicelib.multipart import UPLOAD_DAYS as MULTIPART_UPLOAD_DAYS
from chalicelib.settings import ranges_queue_for
from chalicelib.table import OWNER_INDEX, TTL_ATTRIBUTE

ROOT = Path(__file__).resolve().parent.parent
CHALICE_CONFIG = ROOT / ".chalice" / "config.json"

WORKER_FUNCTION = "compress"
# app.py's handler of the ranges queue: the same worker, one range message per invocation
RANGES_FUNCTION = "compress_range"
DEAD_LETTER_FUNCTION = "dead_letters"
# app.py's built-in authorizer (@app.authorizer(name=...)): its own Lambda function
AUTHORIZER_FUNCTION = "tenant_auth"
DEAD_LETTER_RETENTION_SECONDS = 14 * 86400
LONG_POLL_SECONDS = 20
# The stage's (and optionally the top level's) object of deployment settings
# in .chalice/config.json. Not environment variables: the functions never read them.
INFRA_KEY = "squeezer_infra"
INFRA_SETTINGS = ("cors_origins", "kms_key_arn", "throttle_rate", "throttle_burst", "waf", "max_body_bytes")

_ORIGIN = re.compile(r"^https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?$")
_KMS_KEY_ARN = re.compile(r"^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:key/[A-Za-z0-9-]+$")


class StageConfigError(ValueError):
    """A stage's settings in .chalice/config.json are not usable."""


@dataclass(frozen=True)
class StageConfig:
    """Names and tunables of one stage, read from .chalice/config.json.

    The fields after ``visibility_timeout_override`` are the deployment's
    hardening settings (``"squeezer_infra"`` in config.json); their defaults
    here are the only ones.
    """

    stage: str
    bucket: str
    table: str
    queue: str
    dead_letter_queue: str
    worker_timeout: int
    # SQUEEZER_RANGES_QUEUE; "": named after the jobs queue (the ``ranges_queue`` property)
    ranges_queue_override: str = ""
    max_receive_count: int = 5
    expire_days: int = 30
    uploads_prefix: str = "uploads/"
    results_prefix: str = "results/"
    dead_letters_prefix: str = "dead-letters/"
    # None: derived from the worker's timeout. Set only by the local stack's
    # fault tests (a short lease to expire on purpose); deployments derive it.
    visibility_timeout_override: int | None = None
    # Browser origins allowed to use the presigned URLs (S3 CORS) and the API
    # (SQUEEZER_CORS_ORIGINS, chalicelib/cors.py). None by default: the CLI
    # client needs no CORS, and "*" would let any web page drive a user's
    # presigned URLs from a browser.
    cors_origins: tuple[str, ...] = ()
    # SSE-KMS with this key (its ARN, in the stage's region) instead of SSE-S3.
    kms_key_arn: str | None = None
    # API Gateway stage throttling, for all callers together (requests per
    # second, and the burst the token bucket allows).
    throttle_rate: float = 50.0
    throttle_burst: int = 100
    # A WAF web ACL in front of the API (costs about $6 a month plus $0.60 per
    # million requests): it refuses request bodies over max_body_bytes before
    # they reach the function.
    waf: bool = False
    max_body_bytes: int = MAX_BODY_BYTES

    @property
    def ranges_queue(self) -> str:
        """The ranges queue's name, as the functions derive it (chalicelib.settings.ranges_queue_for)."""
        return self.ranges_queue_override or ranges_queue_for(self.queue)

    def __post_init__(self) -> None:
        problems = []
        for origin in self.cors_origins:
            if not isinstance(origin, str) or not _ORIGIN.match(origin):
                problems.append(
                    f"cors_origins: {origin!r} is not an origin like https://app.example.com (no path, no wildcard)"
                )
        if self.kms_key_arn is not None and not _KMS_KEY_ARN.match(self.kms_key_arn):
            problems.append(
                f"kms_key_arn: {self.kms_key_arn!r} is not a KMS key ARN (arn:aws:kms:<region>:<account>:key/<id>; "
                "not an alias: IAM policies cannot name a key by its alias)"
            )
        if not self.throttle_rate > 0:
            problems.append(f"throttle_rate: {self.throttle_rate!r} must be more than 0 requests per second")
        if isinstance(self.throttle_burst, bool) or not isinstance(self.throttle_burst, int) or self.throttle_burst < 1:
            problems.append(f"throttle_burst: {self.throttle_burst!r} must be a whole number of at least 1")
        if not isinstance(self.waf, bool):
            problems.append(f"waf: {self.waf!r} must be true or false")
        if (
            isinstance(self.max_body_bytes, bool)
            or not isinstance(self.max_body_bytes, int)
            or not 0 < self.max_body_bytes <= MAX_BODY_BYTES
        ):
            problems.append(
                f"max_body_bytes: {self.max_body_bytes!r} must be 1..{MAX_BODY_BYTES} "
                "(the app refuses larger bodies itself: chalicelib.http.MAX_BODY_BYTES)"
            )
        if problems:
            raise StageConfigError(f"stage {self.stage!r}: " + "; ".join(problems))

    @property
    def visibility_timeout(self) -> int:
        if self.visibility_timeout_override is not None:
            return self.visibility_timeout_override
        # AWS: at least 6x the function timeout when Lambda polls the queue
        # (the jobs queue and the ranges queue: their functions share the timeout).
        return 6 * self.worker_timeout

    @property
    def environment(self) -> dict[str, str]:
        return {
            "SQUEEZER_BUCKET": self.bucket,
            "SQUEEZER_TABLE": self.table,
            "SQUEEZER_QUEUE": self.queue,
            "SQUEEZER_DLQ": self.dead_letter_queue,
            "SQUEEZER_RANGES_QUEUE": self.ranges_queue,
            # the API's allowed origins, from this one list (Settings.cors_origins)
            "SQUEEZER_CORS_ORIGINS": ",".join(self.cors_origins),
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
    default_timeout = stage_cfg.get("lambda_timeout", config.get("lambda_timeout", 60))
    timeout = functions.get(WORKER_FUNCTION, {}).get("lambda_timeout", default_timeout)
    range_timeout = functions.get(RANGES_FUNCTION, {}).get("lambda_timeout", default_timeout)
    if int(range_timeout) != int(timeout):
        # one visibility timeout and one time budget (POST /jobs) serve both functions
        raise StageConfigError(
            f"stage {stage!r}: the lambda_timeout of {RANGES_FUNCTION} ({range_timeout}) must equal "
            f"{WORKER_FUNCTION}'s ({timeout}) in .chalice/config.json"
        )
    infra = {**config.get(INFRA_KEY, {}), **stage_cfg.get(INFRA_KEY, {})}
    unknown = set(infra) - set(INFRA_SETTINGS)
    if unknown:
        raise StageConfigError(
            f"stage {stage!r}: unknown {INFRA_KEY} settings {sorted(unknown)}; known: {', '.join(INFRA_SETTINGS)}"
        )
    if "cors_origins" in infra:
        if not isinstance(infra["cors_origins"], list):
            raise StageConfigError(f"stage {stage!r}: cors_origins must be a list of origins")
        infra["cors_origins"] = tuple(infra["cors_origins"])
    return StageConfig(
        stage=stage,
        bucket=env["SQUEEZER_BUCKET"],
        table=env["SQUEEZER_TABLE"],
        queue=env["SQUEEZER_QUEUE"],
        dead_letter_queue=env["SQUEEZER_DLQ"],
        ranges_queue_override=env.get("SQUEEZER_RANGES_QUEUE", ""),
        worker_timeout=int(timeout),
        max_receive_count=int(env.get("SQUEEZER_MAX_RECEIVE_COUNT", 5)),
        expire_days=int(env.get("SQUEEZER_RECORD_TTL_DAYS", 30)),
        **infra,
    )


# -- shared pieces of the definition -------------------------------------------


def table_definition(name: str) -> dict[str, Any]:
    """CreateTable arguments (also the CloudFormation table's properties, but for ``SSESpecification``)."""
    return {
        "TableName": name,
        "BillingMode": "PAY_PER_REQUEST",
        # Encrypted at rest with the AWS-owned key: free, no KMS permission
        # needed. (``True`` would mean the AWS-managed KMS key, with KMS
        # charges and nothing gained here.) Stated so it is not left to chance.
        "SSESpecification": {"Enabled": False},
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
            "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": MULTIPART_UPLOAD_DAYS},
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


# Default bucket encryption without a KMS key: SSE-S3, free, and needs no KMS
# permission for the functions or for presigned uploads.
ENCRYPTION_ALGORITHM = "AES256"
KMS_ALGORITHM = "aws:kms"


def bucket_encryption_rule(cfg: StageConfig) -> dict[str, Any]:
    """The bucket's default encryption (PutBucketEncryption's rule): SSE-S3, or SSE-KMS with the stage's key."""
    if cfg.kms_key_arn is None:
        return {"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": ENCRYPTION_ALGORITHM}}
    return {
        "ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": KMS_ALGORITHM, "KMSMasterKeyID": cfg.kms_key_arn},
        # one data key per bucket and period instead of one KMS call per object
        "BucketKeyEnabled": True,
    }


def kms_via_s3(key_arn: str) -> str:
    """The ``kms:ViaService`` value of S3 in the key's region (a key serves buckets of its own region only)."""
    partition, region = key_arn.split(":")[1], key_arn.split(":")[3]
    return f"s3.{region}.amazonaws.com" + (".cn" if partition == "aws-cn" else "")


def bucket_policy(bucket_arn: Any, objects_arn: Any) -> dict[str, Any]:
    """Refuses every request to the bucket or its objects that does not come over TLS.

    ``bucket_arn``/``objects_arn`` (``<bucket arn>/*``) are strings or
    CloudFormation intrinsics. A Deny with ``Principal: *`` is not a public
    policy, so Block Public Access allows it.
    """
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "DenyInsecureTransport",
                "Effect": "Deny",
                "Principal": "*",
                "Action": "s3:*",
                "Resource": [bucket_arn, objects_arn],
                "Condition": {"Bool": {"aws:SecureTransport": "false"}},
            }
        ],
    }


CORS_METHODS = ("PUT", "GET", "POST", "HEAD")


def cors_rules(cfg: StageConfig) -> list[dict[str, Any]]:
    """Browser uploads and downloads with the presigned URLs, from the stage's origins only.

    No origins (the default): no rules, and the bucket gets no CORS
    configuration at all.
    """
    if not cfg.cors_origins:
        return []
    return [
        {
            "AllowedMethods": list(CORS_METHODS),
            "AllowedOrigins": list(cfg.cors_origins),
            # what a presigned PUT signs (content type, checksum, metadata): the
            # origin, not the header list, is what limits who can use it. A
            # presigned POST form (multipart/form-data, no custom header) needs
            # no preflight at all; its answer's ETag is exposed as a PUT's.
            "AllowedHeaders": ["*"],
            "ExposeHeaders": ["ETag"],
            "MaxAgeSeconds": CORS_MAX_AGE_SECONDS,
        }
    ]


# -- boto3: local stack, LocalStack, moto ------------------------------------------


@dataclass(frozen=True)
class CreatedResources:
    queue_url: str
    queue_arn: str
    dead_letter_queue_url: str
    dead_letter_queue_arn: str
    ranges_queue_url: str
    ranges_queue_arn: str


def create_resources(
    cfg: StageConfig, *, s3: Any, sqs: Any, dynamodb: Any, region: str, enforce_tls: bool = True
) -> CreatedResources:
    """Create (or update) every resource of a stage. Idempotent.

    ``enforce_tls`` puts the bucket policy that refuses requests without TLS
    (:func:`bucket_policy`); the emulators are created without it.
    """
    dlq_url = sqs.create_queue(QueueName=cfg.dead_letter_queue, Attributes=dead_letter_queue_attributes())["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    attributes = queue_attributes(cfg, dlq_arn)
    queue_url, queue_arn = _work_queue(sqs, cfg.queue, attributes)
    # the ranges queue: the same redrive (to the same dead-letter queue) and visibility timeout
    ranges_url, ranges_arn = _work_queue(sqs, cfg.ranges_queue, attributes)

    existing = {b["Name"] for b in s3.list_buckets().get("Buckets", [])}
    if cfg.bucket not in existing:
        if region == "us-east-1":
            s3.create_bucket(Bucket=cfg.bucket)
        else:
            s3.create_bucket(Bucket=cfg.bucket, CreateBucketConfiguration={"LocationConstraint": region})
    bucket_arn = f"arn:aws:s3:::{cfg.bucket}"
    sqs.set_queue_attributes(QueueUrl=queue_url, Attributes={"Policy": json.dumps(queue_policy(queue_arn, bucket_arn))})
    s3.put_public_access_block(Bucket=cfg.bucket, PublicAccessBlockConfiguration=public_access_block())
    if enforce_tls:
        # Emulators (moto, the local stack, LocalStack) speak plain HTTP on
        # loopback, and moto applies a Deny without evaluating its condition:
        # they are created with enforce_tls=False.
        s3.put_bucket_policy(Bucket=cfg.bucket, Policy=json.dumps(bucket_policy(bucket_arn, f"{bucket_arn}/*")))
    s3.put_bucket_encryption(
        Bucket=cfg.bucket, ServerSideEncryptionConfiguration={"Rules": [bucket_encryption_rule(cfg)]}
    )
    s3.put_bucket_lifecycle_configuration(Bucket=cfg.bucket, LifecycleConfiguration={"Rules": lifecycle_rules(cfg)})
    cors = cors_rules(cfg)
    if cors:
        s3.put_bucket_cors(Bucket=cfg.bucket, CORSConfiguration={"CORSRules": cors})
    else:  # also removes the "*" rule older versions of this function set
        s3.delete_bucket_cors(Bucket=cfg.bucket)
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
    return CreatedResources(queue_url, queue_arn, dlq_url, dlq_arn, ranges_url, ranges_arn)


def _work_queue(sqs: Any, name: str, attributes: Mapping[str, str]) -> tuple[str, str]:
    """Create (or update the attributes of) a queue the worker reads: its URL and ARN."""
    try:
        url = sqs.create_queue(QueueName=name, Attributes=dict(attributes))["QueueUrl"]
    except sqs.exceptions.QueueNameExists:
        url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
        sqs.set_queue_attributes(QueueUrl=url, Attributes=dict(attributes))
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return str(url), str(arn)


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
        RANGES_FUNCTION: f"{prefix}-{RANGES_FUNCTION}",
        DEAD_LETTER_FUNCTION: f"{prefix}-{DEAD_LETTER_FUNCTION}",
        AUTHORIZER_FUNCTION: f"{prefix}-{AUTHORIZER_FUNCTION}",
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
    for queue in (cfg.queue, cfg.ranges_queue, cfg.dead_letter_queue):
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
