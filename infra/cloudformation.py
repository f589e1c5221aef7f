"""The CloudFormation side of infra/resources.py: the merge template for ``chalice package``.

``chalice package --merge-template`` deep-merges this template into the SAM
template Chalice generates (dicts merge key by key, lists and scalars are
replaced). It adds the stage's resources, built from the functions of
:mod:`infra.resources` (no second copy of a name or a setting), and
overrides what Chalice cannot express:

* each function's environment: ``SQUEEZER_BUCKET/TABLE/QUEUE/DLQ/RANGES_QUEUE``
  from ``Ref``/``Fn::GetAtt`` instead of the literal names of config.json;
* the SQS event sources of ``compress``, ``compress_range`` (batch size 1)
  and ``dead_letters``: the template's queues, and ``FunctionResponseTypes: [ReportBatchItemFailures]`` (Chalice
  1.34 has no setting for it, so a returned ``batchItemFailures`` would be
  ignored and a partly failed batch retried in full);
* each function's role: its own least-privilege policy from :mod:`infra.iam`;
* the function names: Chalice's ``<app>-<stage>[-<function>]``, so log
  groups and IAM scopes are known in advance;
* API Gateway's own error answers (unknown route, body over its limit,
  missing or refused token, ...) in the API's ``{"error": {"code", "message"}}``
  shape, added to the ``RestAPI`` definition (``gateway_responses``);
* the API stage's throttling (``MethodSettings`` of ``RestAPI``) and, when
  the stage turns it on, a WAF web ACL on the stage that refuses bodies over
  the stage's limit with a 413 in the same shape (``web_acl``);
* the bucket's hardening: a policy refusing requests without TLS, default
  encryption (SSE-S3, or SSE-KMS with the stage's key), CORS for the stage's
  origins only (none by default).

The bucket is named ``<SQUEEZER_BUCKET>-<account>-<region>`` (bucket names are
global); queues and table keep the stage's names because Chalice reads the
queue names when it loads app.py.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from typing import Any

from chalice.utils import to_cfn_resource_name

from chalicelib.cors import EXPOSED_HEADERS
from chalicelib.fanout import MAX_RANGE_SIZE
from chalicelib.http import GATEWAY_ERRORS, BodyTooLarge
from chalicelib.settings import RANGES_BATCH_SIZE

from . import iam
from .resources import (
    API_FUNCTION,
    DEAD_LETTER_FUNCTION,
    RANGES_FUNCTION,
    TTL_ATTRIBUTE,
    WORKER_FUNCTION,
    StageConfig,
    bucket_encryption_rule,
    bucket_policy,
    cors_rules,
    dead_letter_alarm,
    dead_letter_queue_attributes,
    function_names,
    lifecycle_rules,
    load_chalice_config,
    notification_configuration,
    public_access_block,
    queue_attributes,
    queue_policy,
    stage_config,
    table_definition,
)

BUCKET = "FilesBucket"
BUCKET_POLICY = "FilesBucketPolicy"
WEB_ACL = "ApiWebAcl"
WEB_ACL_ASSOCIATION = "ApiWebAclAssociation"
TABLE = "JobsTable"
QUEUE = "JobsQueue"
RANGES_QUEUE = "RangesQueue"
DEAD_LETTER_QUEUE = "DeadLetterQueue"
QUEUE_POLICY = "JobsQueuePolicy"
ALARM = "DeadLetterAlarm"
ALARM_TOPIC_PARAMETER = "AlarmTopicArn"
HAS_ALARM_TOPIC = "HasAlarmTopic"
BATCH_ITEM_FAILURES = "ReportBatchItemFailures"

# Placeholders for values only CloudFormation knows; replaced by intrinsics.
_QUEUE_ARN = "__squeezer_queue_arn__"
_DLQ_ARN = "__squeezer_dlq_arn__"
_BUCKET_ARN = "__squeezer_bucket_arn__"


class TemplateError(Exception):
    """The resource definition or Chalice's template is not what this module expects."""


def ref(logical_id: str) -> dict:
    return {"Ref": logical_id}


def get_att(logical_id: str, attribute: str) -> dict:
    return {"Fn::GetAtt": [logical_id, attribute]}


def function_logical_id(function: str) -> str:
    """The logical id Chalice's SAM template gives a function (``APIHandler``, ``Compress``...)."""
    return "APIHandler" if function == API_FUNCTION else to_cfn_resource_name(function)


def role_logical_id(function: str) -> str:
    """Chalice's per-function role (``autogen_policy: false``): ``CompressRole``, ``ApiHandlerRole``..."""
    return to_cfn_resource_name(f"{function}_role")


def event_logical_id(function: str) -> str:
    return f"{to_cfn_resource_name(function)}SqsEventSource"


QUEUE_OF_FUNCTION = {WORKER_FUNCTION: QUEUE, RANGES_FUNCTION: RANGES_QUEUE, DEAD_LETTER_FUNCTION: DEAD_LETTER_QUEUE}
# A fanned-out range's output is spooled to /tmp before it becomes one part: up to
# a range's input (1 GiB) plus what a compressor can add to incompressible data.
WORKER_TMP_MB = 2 * MAX_RANGE_SIZE // 1024**2


def queue_arn_sub(logical_id: str) -> dict:
    return {"Fn::Sub": f"${{{logical_id}.Arn}}"}


def bucket_name(cfg: StageConfig) -> dict:
    """``<SQUEEZER_BUCKET>-<account>-<region>``: unique, and known without referring to the bucket."""
    longest = len(cfg.bucket) + len("-123456789012-ap-southeast-3")
    if longest > 63:
        raise TemplateError(f"bucket base name {cfg.bucket!r} is too long for the account/region suffix (max 63)")
    return {"Fn::Sub": f"{cfg.bucket}-${{AWS::AccountId}}-${{AWS::Region}}"}


def _bucket_arn(cfg: StageConfig) -> dict:
    # Built from the name, not GetAtt: the queue policy must exist before the
    # bucket (S3 checks it can send when the notification is set), so the
    # policy cannot depend on the bucket.
    return {"Fn::Sub": f"arn:${{AWS::Partition}}:s3:::{cfg.bucket}-${{AWS::AccountId}}-${{AWS::Region}}"}


def _substitute(value: Any, replacements: Mapping[str, Any]) -> Any:
    if isinstance(value, str) and value in replacements:
        return copy.deepcopy(replacements[value])
    if isinstance(value, dict):
        return {k: _substitute(v, replacements) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(v, replacements) for v in value]
    return value


def _queue_properties(name: str, attributes: Mapping[str, str], replacements: Mapping[str, Any]) -> dict:
    """SetQueueAttributes strings -> AWS::SQS::Queue properties."""
    properties: dict[str, Any] = {"QueueName": name}
    for key, value in attributes.items():
        if key == "RedrivePolicy":
            properties[key] = _substitute(json.loads(value), replacements)
        elif key in (
            "VisibilityTimeout",
            "ReceiveMessageWaitTimeSeconds",
            "MessageRetentionPeriod",
            "DelaySeconds",
            "MaximumMessageSize",
        ):
            properties[key] = int(value)
        else:
            raise TemplateError(f"no CloudFormation mapping for queue attribute {key!r}")
    return properties


def _strict(source: Mapping[str, Any], known: set[str], what: str) -> None:
    unknown = set(source) - known
    if unknown:
        raise TemplateError(f"no CloudFormation mapping for {what} keys {sorted(unknown)}")


def _lifecycle_rule(rule: Mapping[str, Any]) -> dict:
    """S3 API lifecycle rule -> AWS::S3::Bucket Rule."""
    _strict(rule, {"ID", "Status", "Filter", "Expiration", "AbortIncompleteMultipartUpload"}, "lifecycle rule")
    out: dict[str, Any] = {"Id": rule["ID"], "Status": rule["Status"]}
    filt = rule.get("Filter", {})
    _strict(filt, {"Prefix"}, "lifecycle filter")
    if filt.get("Prefix"):
        out["Prefix"] = filt["Prefix"]
    if "Expiration" in rule:
        _strict(rule["Expiration"], {"Days"}, "lifecycle expiration")
        out["ExpirationInDays"] = rule["Expiration"]["Days"]
    if "AbortIncompleteMultipartUpload" in rule:
        out["AbortIncompleteMultipartUpload"] = dict(rule["AbortIncompleteMultipartUpload"])
    return out


def _queue_notifications(notification: Mapping[str, Any]) -> list[dict]:
    """PutBucketNotificationConfiguration -> QueueConfigurations (one per event)."""
    _strict(notification, {"QueueConfigurations"}, "notification configuration")
    out = []
    for item in notification["QueueConfigurations"]:
        _strict(item, {"Id", "QueueArn", "Events", "Filter"}, "queue configuration")
        rules = item.get("Filter", {}).get("Key", {}).get("FilterRules", [])
        for event in item["Events"]:
            entry: dict[str, Any] = {"Event": event, "Queue": item["QueueArn"]}
            if rules:
                entry["Filter"] = {"S3Key": {"Rules": [{"Name": r["Name"], "Value": r["Value"]} for r in rules]}}
            out.append(entry)
    return out


def _cors_rule(rule: Mapping[str, Any]) -> dict:
    renames = {
        "AllowedMethods": "AllowedMethods",
        "AllowedOrigins": "AllowedOrigins",
        "AllowedHeaders": "AllowedHeaders",
        "ExposeHeaders": "ExposedHeaders",
        "MaxAgeSeconds": "MaxAge",
        "ID": "Id",
    }
    _strict(rule, set(renames), "CORS rule")
    return {renames[key]: value for key, value in rule.items()}


def _encryption_rule(rule: Mapping[str, Any]) -> dict:
    """PutBucketEncryption rule -> AWS::S3::Bucket ServerSideEncryptionRule."""
    _strict(rule, {"ApplyServerSideEncryptionByDefault", "BucketKeyEnabled"}, "encryption rule")
    default = rule["ApplyServerSideEncryptionByDefault"]
    _strict(default, {"SSEAlgorithm", "KMSMasterKeyID"}, "default encryption")
    out: dict[str, Any] = {"ServerSideEncryptionByDefault": dict(default)}
    if "BucketKeyEnabled" in rule:
        out["BucketKeyEnabled"] = rule["BucketKeyEnabled"]
    return out


def table_properties(definition: Mapping[str, Any]) -> dict:
    """CreateTable arguments -> AWS::DynamoDB::Table properties (they differ only in SSESpecification)."""
    properties = dict(definition)
    sse = properties.pop("SSESpecification", None)
    if sse is not None:
        _strict(sse, {"Enabled"}, "table SSESpecification")
        properties["SSESpecification"] = {"SSEEnabled": sse["Enabled"]}
    return properties


# Stated, not defaulted: the stage's data is transient (lifecycle and TTL
# expire it), and teardown is meant to leave nothing behind.
_DELETE_WITH_STACK = {"DeletionPolicy": "Delete", "UpdateReplacePolicy": "Delete"}


def stage_resources(cfg: StageConfig) -> dict[str, Any]:
    """The bucket, queues, queue policy, table and alarm of a stage as CloudFormation resources."""
    replacements = {
        _QUEUE_ARN: get_att(QUEUE, "Arn"),
        _DLQ_ARN: get_att(DEAD_LETTER_QUEUE, "Arn"),
        _BUCKET_ARN: _bucket_arn(cfg),
    }
    table = table_properties(table_definition(cfg.table))
    table["TimeToLiveSpecification"] = {"AttributeName": TTL_ATTRIBUTE, "Enabled": True}
    table["PointInTimeRecoverySpecification"] = {"PointInTimeRecoveryEnabled": True}

    alarm = dead_letter_alarm(cfg)
    alarm["Dimensions"] = [{"Name": "QueueName", "Value": get_att(DEAD_LETTER_QUEUE, "QueueName")}]
    alarm["AlarmActions"] = {"Fn::If": [HAS_ALARM_TOPIC, [ref(ALARM_TOPIC_PARAMETER)], ref("AWS::NoValue")]}
    bucket: dict[str, Any] = {
        "BucketName": bucket_name(cfg),
        "PublicAccessBlockConfiguration": public_access_block(),
        "BucketEncryption": {"ServerSideEncryptionConfiguration": [_encryption_rule(bucket_encryption_rule(cfg))]},
        "LifecycleConfiguration": {"Rules": [_lifecycle_rule(r) for r in lifecycle_rules(cfg)]},
        "NotificationConfiguration": {
            "QueueConfigurations": _substitute(
                _queue_notifications(notification_configuration(cfg, _QUEUE_ARN)), replacements
            )
        },
    }
    cors = cors_rules(cfg)
    if cors:  # no origins configured: no CORS configuration at all
        bucket["CorsConfiguration"] = {"CorsRules": [_cors_rule(r) for r in cors]}
    return {
        DEAD_LETTER_QUEUE: {
            "Type": "AWS::SQS::Queue",
            **_DELETE_WITH_STACK,
            "Properties": _queue_properties(cfg.dead_letter_queue, dead_letter_queue_attributes(), replacements),
        },
        QUEUE: {
            "Type": "AWS::SQS::Queue",
            **_DELETE_WITH_STACK,
            "Properties": _queue_properties(cfg.queue, queue_attributes(cfg, _DLQ_ARN), replacements),
        },
        # fan-out's range messages: the jobs queue's redrive and visibility timeout
        RANGES_QUEUE: {
            "Type": "AWS::SQS::Queue",
            **_DELETE_WITH_STACK,
            "Properties": _queue_properties(cfg.ranges_queue, queue_attributes(cfg, _DLQ_ARN), replacements),
        },
        QUEUE_POLICY: {
            "Type": "AWS::SQS::QueuePolicy",
            "Properties": {
                "Queues": [ref(QUEUE)],
                "PolicyDocument": _substitute(queue_policy(_QUEUE_ARN, _BUCKET_ARN), replacements),
            },
        },
        BUCKET: {
            "Type": "AWS::S3::Bucket",
            # S3 sends a test event when the notification is set: the queue
            # policy must already allow it.
            "DependsOn": [QUEUE_POLICY],
            # teardown empties the bucket before deleting the stack
            **_DELETE_WITH_STACK,
            "Properties": bucket,
        },
        BUCKET_POLICY: {
            "Type": "AWS::S3::BucketPolicy",
            "Properties": {
                "Bucket": ref(BUCKET),
                "PolicyDocument": bucket_policy(get_att(BUCKET, "Arn"), {"Fn::Sub": f"${{{BUCKET}.Arn}}/*"}),
            },
        },
        TABLE: {
            "Type": "AWS::DynamoDB::Table",
            # PITR covers mistakes while the stack lives
            **_DELETE_WITH_STACK,
            "Properties": table,
        },
        ALARM: {"Type": "AWS::CloudWatch::Alarm", "Properties": alarm},
    }


def resource_arns(cfg: StageConfig, config: Mapping[str, Any]) -> iam.Arns:
    """ARNs of the template's resources, for the functions' role policies."""
    names = function_names(cfg.stage, config)
    return iam.Arns(
        bucket=get_att(BUCKET, "Arn"),
        table=get_att(TABLE, "Arn"),
        queue=get_att(QUEUE, "Arn"),
        dead_letter_queue=get_att(DEAD_LETTER_QUEUE, "Arn"),
        ranges_queue=get_att(RANGES_QUEUE, "Arn"),
        log_groups={
            fn: {
                "Fn::Sub": f"arn:${{AWS::Partition}}:logs:${{AWS::Region}}:${{AWS::AccountId}}"
                f":log-group:/aws/lambda/{name}"
            }
            for fn, name in names.items()
        },
    )


def function_overrides(cfg: StageConfig, config: Mapping[str, Any]) -> dict[str, Any]:
    """What the merge template changes in Chalice's functions and roles."""
    names = function_names(cfg.stage, config)
    arns = resource_arns(cfg, config)
    environment = {
        "SQUEEZER_BUCKET": ref(BUCKET),
        "SQUEEZER_TABLE": ref(TABLE),
        "SQUEEZER_QUEUE": get_att(QUEUE, "QueueName"),
        "SQUEEZER_DLQ": get_att(DEAD_LETTER_QUEUE, "QueueName"),
        "SQUEEZER_RANGES_QUEUE": get_att(RANGES_QUEUE, "QueueName"),
        "SQUEEZER_CORS_ORIGINS": cfg.environment["SQUEEZER_CORS_ORIGINS"],
    }
    resources: dict[str, Any] = {}
    for function in iam.FUNCTIONS:
        role = role_logical_id(function)
        properties: dict[str, Any] = {
            "FunctionName": names[function],
            "Environment": {"Variables": dict(environment)},
            "Role": get_att(role, "Arn"),
        }
        if function in iam.WORKER_FUNCTIONS:
            properties["EphemeralStorage"] = {"Size": WORKER_TMP_MB}
        if function in QUEUE_OF_FUNCTION:
            properties["Events"] = {
                event_logical_id(function): {
                    "Type": "SQS",
                    "Properties": {
                        # Fn::Sub, because Chalice writes an Fn::Sub here and the
                        # merge is by key: a GetAtt would end up next to it.
                        "Queue": queue_arn_sub(QUEUE_OF_FUNCTION[function]),
                        "FunctionResponseTypes": [BATCH_ITEM_FAILURES],
                    },
                }
            }
        resources[function_logical_id(function)] = {"Properties": properties}
        resources[role] = {
            "Type": "AWS::IAM::Role",
            "Properties": {
                "Policies": [
                    {"PolicyName": f"{role}Policy", "PolicyDocument": iam.function_policy(function, cfg, arns)}
                ]
            },
        }
    return resources


REST_API = "RestAPI"  # the logical id `chalice package` gives the API
GATEWAY_RESPONSES_KEY = "x-amazon-apigateway-gateway-responses"


def gateway_responses(cors_origins: tuple[str, ...] = ()) -> dict[str, Any]:
    """API Gateway's own errors (unknown route, body too large, ...) in the API's error shape.

    Keyed by GatewayResponse type, in the API definition's
    ``x-amazon-apigateway-gateway-responses`` extension (what SAM's own
    ``GatewayResponses`` property generates). Not separate
    ``AWS::ApiGateway::GatewayResponse`` resources: those change the RestApi
    but not the stage's deployment, so the first deployment does not serve
    them and a later one, made by SAM from ``DefinitionBody`` alone, drops
    them again (aws/serverless-application-model#390, #623, #3482). In the
    definition they are part of what SAM hashes into its deployment, so
    every change to them deploys.

    With ``cors_origins`` (the stage's) they carry CORS headers too, so a
    page can read a 401, 404 or 429 the function never saw
    (chalicelib/cors.py answers everything else). A gateway response cannot
    choose among origins: with one origin it names it; with several it
    names none (echoing the request's ``Origin`` would allow every origin,
    not the listed ones), so a page sees those few errors as a failed
    request, and everything the function answers keeps its CORS headers.
    """
    parameters = {"gatewayresponse.header.Content-Type": "'application/json'"}
    if cors_origins:
        parameters["gatewayresponse.header.Vary"] = "'Origin'"
    if len(cors_origins) == 1:
        parameters.update(
            {
                "gatewayresponse.header.Access-Control-Allow-Origin": f"'{cors_origins[0]}'",
                "gatewayresponse.header.Access-Control-Expose-Headers": f"'{', '.join(EXPOSED_HEADERS)}'",
            }
        )
    responses = {}
    for kind, error in GATEWAY_ERRORS.items():
        message = "$context.error.messageString" if error.message is None else json.dumps(error.message)
        response: dict[str, Any] = {
            "responseParameters": dict(parameters),
            "responseTemplates": {
                "application/json": f'{{"error": {{"code": {json.dumps(error.code)}, "message": {message}}}}}'
            },
        }
        if error.status is not None:
            response["statusCode"] = str(error.status)
        responses[kind] = response
    return responses


def api_stage_name(stage: str, config: Mapping[str, Any]) -> str:
    """The API Gateway stage Chalice deploys to (``api_gateway_stage``, ``api`` by default)."""
    return str(config["stages"][stage].get("api_gateway_stage", config.get("api_gateway_stage", "api")))


def method_settings(cfg: StageConfig) -> list[dict[str, Any]]:
    """The stage's throttling, for every method (API Gateway answers 429 ``throttled`` over it)."""
    return [
        {
            "ResourcePath": "/*",
            "HttpMethod": "*",
            "ThrottlingRateLimit": cfg.throttle_rate,
            "ThrottlingBurstLimit": cfg.throttle_burst,
        }
    ]


def api_overrides(cfg: StageConfig) -> dict[str, Any]:
    """What the merge adds to Chalice's ``RestAPI``: gateway responses in its definition, and throttling."""
    return {
        REST_API: {
            "Properties": {
                "DefinitionBody": {GATEWAY_RESPONSES_KEY: gateway_responses(cfg.cors_origins)},
                "MethodSettings": method_settings(cfg),
            }
        }
    }


# -- WAF: the request-size limit ---------------------------------------------------
# API Gateway's own limit is a fixed 10 MB. WAF can refuse less, but it sees at
# most the first 16 KB of a body (64 KB for extra fees), so a size constraint
# on the body cannot tell a 1 MiB body from a 17 KB one. What WAF does see
# whole is the Content-Length header: the rule compares its value with the
# limit. A body sent without one (chunked) is not measured here; the app's own
# check (chalicelib.http.MAX_BODY_BYTES) still refuses it.
BODY_TOO_LARGE_RULE = "body-too-large"
BODY_TOO_LARGE_RESPONSE = "body_too_large"


def integer_above_regex(limit: int) -> str:
    """A regular expression matching exactly the decimal integers greater than ``limit``.

    WAF has no numeric comparison of a header's value; this is one, digit by
    digit: a longer number, or the same length with a higher digit after a
    common prefix. Leading zeros are allowed (and ignored).
    """
    if limit < 0:
        raise ValueError("limit must be 0 or more")
    digits = str(limit)
    alternatives = [f"[1-9][0-9]{{{len(digits)},}}"]
    for i, digit in enumerate(digits):
        if digit == "9":
            continue
        higher = "9" if digit == "8" else f"[{int(digit) + 1}-9]"
        rest = len(digits) - i - 1
        alternatives.append(digits[:i] + higher + (f"[0-9]{{{rest}}}" if rest else ""))
    return f"^0*({'|'.join(alternatives)})$"


def web_acl(cfg: StageConfig, metric_prefix: str) -> dict[str, Any]:
    """A regional web ACL that answers 413 in the API's error shape to a declared body over the limit."""

    def visibility(name: str) -> dict[str, Any]:
        return {"SampledRequestsEnabled": True, "CloudWatchMetricsEnabled": True, "MetricName": name}

    body = {
        "error": {
            "code": BodyTooLarge.code,
            "message": f"the request body is larger than {cfg.max_body_bytes} bytes",
        }
    }
    return {
        "Type": "AWS::WAFv2::WebACL",
        "Properties": {
            "Scope": "REGIONAL",
            "Description": f"Squeezer {cfg.stage}: request bodies up to {cfg.max_body_bytes} bytes",
            "DefaultAction": {"Allow": {}},
            "VisibilityConfig": visibility(f"{metric_prefix}-api"),
            "CustomResponseBodies": {
                BODY_TOO_LARGE_RESPONSE: {"ContentType": "APPLICATION_JSON", "Content": json.dumps(body)}
            },
            "Rules": [
                {
                    "Name": BODY_TOO_LARGE_RULE,
                    "Priority": 0,
                    "Statement": {
                        "RegexMatchStatement": {
                            "FieldToMatch": {"SingleHeader": {"Name": "content-length"}},
                            "RegexString": integer_above_regex(cfg.max_body_bytes),
                            "TextTransformations": [{"Priority": 0, "Type": "NONE"}],
                        }
                    },
                    "Action": {
                        "Block": {
                            "CustomResponse": {
                                "ResponseCode": BodyTooLarge.status,
                                "CustomResponseBodyKey": BODY_TOO_LARGE_RESPONSE,
                            }
                        }
                    },
                    "VisibilityConfig": visibility(f"{metric_prefix}-{BODY_TOO_LARGE_RULE}"),
                }
            ],
        },
    }


def waf_resources(cfg: StageConfig, config: Mapping[str, Any]) -> dict[str, Any]:
    """The web ACL and its association with the API's stage; nothing when the stage has ``waf`` off."""
    if not cfg.waf:
        return {}
    stage = api_stage_name(cfg.stage, config)
    stage_arn = f"arn:${{AWS::Partition}}:apigateway:${{AWS::Region}}::/restapis/${{{REST_API}}}/stages/{stage}"
    return {
        WEB_ACL: web_acl(cfg, f"{config['app_name']}-{cfg.stage}"),
        WEB_ACL_ASSOCIATION: {
            "Type": "AWS::WAFv2::WebACLAssociation",
            # SAM names the stage it makes <api><stage>Stage; the association
            # fails if it runs before the stage exists
            "DependsOn": [api_sam_stage_id(cfg.stage, config)],
            "Properties": {"ResourceArn": {"Fn::Sub": stage_arn}, "WebACLArn": get_att(WEB_ACL, "Arn")},
        },
    }


def api_sam_stage_id(stage: str, config: Mapping[str, Any]) -> str:
    """The logical id SAM gives the ``AWS::ApiGateway::Stage`` of ``RestAPI``."""
    return REST_API + "".join(ch for ch in api_stage_name(stage, config) if ch.isalnum()) + "Stage"


def merge_template(stage: str, config: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The template to pass to ``chalice package --merge-template``."""
    config = load_chalice_config() if config is None else config
    cfg = stage_config(stage, config)
    return {
        "Parameters": {
            ALARM_TOPIC_PARAMETER: {
                "Type": "String",
                "Default": "",
                "Description": "SNS topic ARN notified when the dead-letter queue is not empty (optional)",
            }
        },
        "Conditions": {HAS_ALARM_TOPIC: {"Fn::Not": [{"Fn::Equals": [ref(ALARM_TOPIC_PARAMETER), ""]}]}},
        "Resources": {
            **stage_resources(cfg),
            **function_overrides(cfg, config),
            **api_overrides(cfg),
            **waf_resources(cfg, config),
        },
        "Outputs": {
            "BucketName": {"Value": ref(BUCKET)},
            "TableName": {"Value": ref(TABLE)},
            "JobsQueueUrl": {"Value": ref(QUEUE)},
            "RangesQueueUrl": {"Value": ref(RANGES_QUEUE)},
            "DeadLetterQueueUrl": {"Value": ref(DEAD_LETTER_QUEUE)},
            "DeadLetterAlarmName": {"Value": ref(ALARM)},
        },
    }


def check_packaged(template: Mapping[str, Any]) -> list[str]:
    """Problems in a merged template that mean Chalice's ids or settings were not what we merged into.

    A merge into a logical id Chalice did not generate silently creates a
    half resource; this catches it (and ``autogen_policy`` left on).
    """
    problems = []
    resources = template.get("Resources", {})
    for function in iam.FUNCTIONS:
        fid, role = function_logical_id(function), role_logical_id(function)
        props = resources.get(fid, {}).get("Properties", {})
        if resources.get(fid, {}).get("Type") != "AWS::Serverless::Function" or "Handler" not in props:
            problems.append(f"Chalice generated no function {fid!r} for {function!r}")
            continue
        if "AssumeRolePolicyDocument" not in resources.get(role, {}).get("Properties", {}):
            problems.append(
                f'Chalice generated no role {role!r}: set "autogen_policy": false for the stage in .chalice/config.json'
            )
        if function in QUEUE_OF_FUNCTION:
            events = props.get("Events", {})
            event = events.get(event_logical_id(function), {})
            if set(events) != {event_logical_id(function)} or "BatchSize" not in event.get("Properties", {}):
                problems.append(
                    f"Chalice's SQS event of {fid!r} is not {event_logical_id(function)!r}: {sorted(events)}"
                )
            elif event["Properties"].get("Queue") != queue_arn_sub(QUEUE_OF_FUNCTION[function]):
                problems.append(
                    f"the SQS event of {fid!r} does not point at {QUEUE_OF_FUNCTION[function]}: "
                    f"{event['Properties'].get('Queue')}"
                )
            elif function == RANGES_FUNCTION and event["Properties"]["BatchSize"] != RANGES_BATCH_SIZE:
                # more would run a file's ranges one after another in one invocation
                problems.append(
                    f"the SQS event of {fid!r} has BatchSize {event['Properties']['BatchSize']}, "
                    f"not {RANGES_BATCH_SIZE}"
                )
    if "DefaultRole" in resources:
        problems.append('the template still has Chalice\'s DefaultRole: set "autogen_policy": false')
    api = resources.get(REST_API, {})
    if api.get("Type") != "AWS::Serverless::Api" or "paths" not in api.get("Properties", {}).get("DefinitionBody", {}):
        problems.append(f"Chalice generated no REST API {REST_API!r} with a DefinitionBody for the gateway responses")
    return problems
