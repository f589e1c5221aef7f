"""The packaged SAM template (real ``chalice package`` + merge template) is wired as the issue asks."""

from __future__ import annotations

import json

import pytest

from infra import cloudformation as cf
from infra.resources import (
    DEAD_LETTER_RETENTION_SECONDS,
    TTL_ATTRIBUTE,
    function_names,
    lifecycle_rules,
    load_chalice_config,
    stage_config,
    table_definition,
)

PACKAGED_STAGE = "prod"  # the stage the packaged fixture builds (conftest.py)
CFG = stage_config(PACKAGED_STAGE)
FUNCTIONS = {
    "api_handler": "APIHandler",
    "compress": "Compress",
    "compress_range": "CompressRange",
    "dead_letters": "DeadLetters",
    "tenant_auth": "TenantAuth",
}
ENV_REFS = {
    "SQUEEZER_BUCKET": {"Ref": "FilesBucket"},
    "SQUEEZER_TABLE": {"Ref": "JobsTable"},
    "SQUEEZER_QUEUE": {"Fn::GetAtt": ["JobsQueue", "QueueName"]},
    "SQUEEZER_DLQ": {"Fn::GetAtt": ["DeadLetterQueue", "QueueName"]},
    "SQUEEZER_RANGES_QUEUE": {"Fn::GetAtt": ["RangesQueue", "QueueName"]},
}


def props(template, logical_id):
    return template["Resources"][logical_id]["Properties"]


def walk(value):
    yield value
    if isinstance(value, dict):
        for item in value.values():
            yield from walk(item)
    elif isinstance(value, list):
        for item in value:
            yield from walk(item)


def test_chalice_generated_the_ids_we_merged_into(template):
    assert cf.check_packaged(template) == []
    assert template["Transform"] == "AWS::Serverless-2016-10-31"
    for function, logical_id in FUNCTIONS.items():
        assert cf.function_logical_id(function) == logical_id
        assert template["Resources"][logical_id]["Type"] == "AWS::Serverless::Function"
    assert "DefaultRole" not in template["Resources"]


@pytest.mark.parametrize("logical_id", FUNCTIONS.values())
def test_every_function_gets_resource_names_from_the_template(template, logical_id):
    variables = props(template, logical_id)["Environment"]["Variables"]
    for name, value in ENV_REFS.items():
        assert variables[name] == value
    # the other settings of config.json are untouched
    assert variables["SQUEEZER_RECORD_TTL_DAYS"] == "30"


def test_function_names_follow_chalice_deploy(template):
    names = function_names(PACKAGED_STAGE)
    for function, logical_id in FUNCTIONS.items():
        assert props(template, logical_id)["FunctionName"] == names[function]


@pytest.mark.parametrize(
    ("logical_id", "event", "queue", "batch_size"),
    [
        ("Compress", "CompressSqsEventSource", "JobsQueue", 10),
        # one range per invocation: a file's ranges run in parallel invocations, never in turn in one batch
        ("CompressRange", "CompressRangeSqsEventSource", "RangesQueue", 1),
        ("DeadLetters", "DeadLettersSqsEventSource", "DeadLetterQueue", 10),
    ],
)
def test_sqs_events_report_batch_item_failures_from_the_templates_queues(
    template, logical_id, event, queue, batch_size
):
    events = props(template, logical_id)["Events"]
    assert list(events) == [event]
    source = events[event]
    assert source["Type"] == "SQS"
    assert source["Properties"]["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert source["Properties"]["Queue"] == {"Fn::Sub": f"${{{queue}.Arn}}"}  # and nothing else merged in
    assert source["Properties"]["BatchSize"] == batch_size


def test_visibility_timeouts_cover_the_functions(template):
    worker_timeout = props(template, "Compress")["Timeout"]
    assert worker_timeout == CFG.worker_timeout
    assert props(template, "JobsQueue")["VisibilityTimeout"] >= 6 * worker_timeout
    assert props(template, "CompressRange")["Timeout"] == worker_timeout
    assert props(template, "RangesQueue")["VisibilityTimeout"] >= 6 * worker_timeout
    # Lambda refuses a mapping whose queue times out before the function does
    assert props(template, "DeadLetterQueue")["VisibilityTimeout"] >= props(template, "DeadLetters")["Timeout"]


def test_jobs_queue_long_polls_and_redrives_to_the_dlq(template):
    queue = props(template, "JobsQueue")
    assert queue["QueueName"] == CFG.queue
    assert queue["ReceiveMessageWaitTimeSeconds"] == 20
    assert queue["RedrivePolicy"] == {
        "deadLetterTargetArn": {"Fn::GetAtt": ["DeadLetterQueue", "Arn"]},
        "maxReceiveCount": CFG.max_receive_count,
    }
    # the ranges queue: the same redrive to the same dead-letter queue (whose handler fails a range's file)
    ranges = props(template, "RangesQueue")
    assert ranges["QueueName"] == CFG.ranges_queue == f"{CFG.queue}-ranges"
    assert ranges["RedrivePolicy"] == queue["RedrivePolicy"]
    assert ranges["VisibilityTimeout"] == queue["VisibilityTimeout"]
    assert template["Resources"]["RangesQueue"]["DeletionPolicy"] == "Delete"
    dlq = props(template, "DeadLetterQueue")
    assert dlq["QueueName"] == CFG.dead_letter_queue
    assert dlq["MessageRetentionPeriod"] == DEAD_LETTER_RETENTION_SECONDS == 14 * 86400


def test_table_on_demand_with_ttl_and_pitr_from_the_shared_definition(template):
    table = props(template, "JobsTable")
    shared = cf.table_properties(table_definition(CFG.table))
    assert {k: table[k] for k in shared} == shared
    # encrypted at rest with the AWS-owned key, said explicitly (SSEEnabled true would be the KMS-managed key)
    assert table["SSESpecification"] == {"SSEEnabled": False}
    assert table["BillingMode"] == "PAY_PER_REQUEST"
    assert table["TimeToLiveSpecification"] == {"AttributeName": TTL_ATTRIBUTE, "Enabled": True}
    assert table["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}


def test_bucket_is_private_encrypted_and_uniquely_named(template):
    bucket = props(template, "FilesBucket")
    assert bucket["BucketName"] == {"Fn::Sub": f"{CFG.bucket}-${{AWS::AccountId}}-${{AWS::Region}}"}
    assert bucket["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "IgnorePublicAcls": True,
        "BlockPublicPolicy": True,
        "RestrictPublicBuckets": True,
    }
    rule = bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]
    assert rule["ServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"


def test_lifecycle_rules(template):
    rules = {r["Id"]: r for r in props(template, "FilesBucket")["LifecycleConfiguration"]["Rules"]}
    assert rules["abort-incomplete-multipart"]["AbortIncompleteMultipartUpload"] == {
        "DaysAfterInitiation": 3
    }  # a multipart upload may stay open 3 days
    assert "Prefix" not in rules["abort-incomplete-multipart"]  # the whole bucket
    assert rules["expire-uploads"] == {
        "Id": "expire-uploads",
        "Status": "Enabled",
        "Prefix": "uploads/",
        "ExpirationInDays": CFG.expire_days,
    }
    assert rules["expire-results"]["Prefix"] == "results/"
    assert rules["expire-results"]["ExpirationInDays"] == CFG.expire_days
    assert len(rules) == len(lifecycle_rules(CFG))


def test_uploads_notify_the_jobs_queue_which_lets_only_the_bucket_send(template):
    bucket = template["Resources"]["FilesBucket"]
    (notification,) = bucket["Properties"]["NotificationConfiguration"]["QueueConfigurations"]
    assert notification == {
        "Event": "s3:ObjectCreated:*",
        "Queue": {"Fn::GetAtt": ["JobsQueue", "Arn"]},
        "Filter": {"S3Key": {"Rules": [{"Name": "prefix", "Value": "uploads/"}]}},
    }
    assert bucket["DependsOn"] == ["JobsQueuePolicy"]
    policy = props(template, "JobsQueuePolicy")
    assert policy["Queues"] == [{"Ref": "JobsQueue"}]
    (statement,) = policy["PolicyDocument"]["Statement"]
    assert statement["Principal"] == {"Service": "s3.amazonaws.com"}
    assert statement["Action"] == "sqs:SendMessage"
    assert statement["Resource"] == {"Fn::GetAtt": ["JobsQueue", "Arn"]}
    assert statement["Condition"]["ArnEquals"]["aws:SourceArn"] == {
        "Fn::Sub": f"arn:${{AWS::Partition}}:s3:::{CFG.bucket}-${{AWS::AccountId}}-${{AWS::Region}}"
    }


def test_no_cors_by_default(template):
    assert CFG.cors_origins == ()
    assert "CorsConfiguration" not in props(template, "FilesBucket")


def test_dead_letter_alarm(template):
    alarm = props(template, "DeadLetterAlarm")
    assert alarm["Namespace"] == "AWS/SQS"
    assert alarm["MetricName"] == "ApproximateNumberOfMessagesVisible"
    assert alarm["Dimensions"] == [{"Name": "QueueName", "Value": {"Fn::GetAtt": ["DeadLetterQueue", "QueueName"]}}]
    assert alarm["Threshold"] == 1.0 and alarm["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
    assert alarm["AlarmActions"]["Fn::If"][0] == "HasAlarmTopic"
    assert template["Parameters"]["AlarmTopicArn"]["Default"] == ""


def test_no_iam_statement_allows_every_resource(template):
    documents = [
        policy["PolicyDocument"]
        for resource in template["Resources"].values()
        if resource["Type"] == "AWS::IAM::Role"
        for policy in resource["Properties"]["Policies"]
    ]
    assert len(documents) == len(FUNCTIONS)
    for document in documents:
        for statement in document["Statement"]:
            resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
            assert "*" not in resources, statement
            for resource in resources:
                assert not (isinstance(resource, str) and resource.endswith(":*:*:*")), statement
    text = json.dumps(template)
    assert '"Resource": "*"' not in text


def _role_statements(template, role):
    return {s["Sid"]: s for s in props(template, role)["Policies"][0]["PolicyDocument"]["Statement"]}


def test_each_role_reaches_only_what_its_function_uses(template):
    api = _role_statements(template, "ApiHandlerRole")
    worker = _role_statements(template, "CompressRole")
    dead = _role_statements(template, "DeadLettersRole")
    uploads = {"Fn::Sub": "${FilesBucket.Arn}/uploads/*"}
    results = {"Fn::Sub": "${FilesBucket.Arn}/results/*"}
    assert api["PresignUploads"]["Resource"] == [uploads]
    assert api["PresignResults"]["Resource"] == [results]
    assert {"Fn::Sub": "${JobsTable.Arn}/index/*"} in api["JobsTable"]["Resource"]
    # the API only sends (retry, lost notifications), to the jobs queue
    api_sqs = {a for s in api.values() for a in s["Action"] if a.startswith("sqs:")}
    assert api_sqs == {"sqs:GetQueueUrl", "sqs:SendMessage"}
    assert api["JobsQueue"]["Resource"] == [{"Fn::GetAtt": ["JobsQueue", "Arn"]}]
    assert worker["JobsQueue"]["Resource"] == [{"Fn::GetAtt": ["JobsQueue", "Arn"]}]
    assert "sqs:ChangeMessageVisibility" in worker["JobsQueue"]["Action"]
    assert "sqs:SendMessage" not in worker["JobsQueue"]["Action"]  # the worker sends only range messages
    assert worker["WriteResults"]["Resource"] == [results]
    assert worker["ReadUploads"]["Resource"] == [uploads]
    assert dead["DeadLetterQueue"]["Resource"] == [{"Fn::GetAtt": ["DeadLetterQueue", "Arn"]}]
    # the dead-letter handler writes only malformed dead letters, under their prefix, and aborts the
    # result upload of a fanned-out file whose range ran out of retries (nothing else of results/)
    assert sorted(
        (a, json.dumps(s["Resource"])) for s in dead.values() for a in s["Action"] if a.startswith("s3:")
    ) == [
        ("s3:AbortMultipartUpload", json.dumps([results])),
        ("s3:PutObject", json.dumps([{"Fn::Sub": "${FilesBucket.Arn}/dead-letters/*"}])),
    ]
    # the worker sends range messages to the ranges queue; compress_range reads that queue, and only it
    ranges_arn = [{"Fn::GetAtt": ["RangesQueue", "Arn"]}]
    assert worker["SendRanges"] == {
        "Sid": "SendRanges",
        "Effect": "Allow",
        "Action": ["sqs:GetQueueUrl", "sqs:SendMessage"],
        "Resource": ranges_arn,
    }
    ranger = _role_statements(template, "CompressRangeRole")
    assert ranger["RangesQueue"]["Resource"] == ranges_arn
    assert {"sqs:ChangeMessageVisibility", "sqs:ReceiveMessage", "sqs:DeleteMessage"} <= set(
        ranger["RangesQueue"]["Action"]
    )
    assert ranger["SendRanges"]["Resource"] == ranges_arn
    ranger_queues = {json.dumps(r) for s in ranger.values() if s["Action"][0].startswith("sqs:") for r in s["Resource"]}
    assert ranger_queues == {json.dumps(ranges_arn[0])}
    assert {k: v for k, v in ranger.items() if k not in ("RangesQueue", "SendRanges", "WriteOwnLogs")} == {
        k: v for k, v in worker.items() if k not in ("JobsQueue", "SendRanges", "WriteOwnLogs")
    }  # the same worker code otherwise
    names = function_names(PACKAGED_STAGE)
    assert all(names["compress_range"] in r["Fn::Sub"] for r in ranger["WriteOwnLogs"]["Resource"])
    logs = worker["WriteOwnLogs"]["Resource"]
    assert all(names["compress"] in r["Fn::Sub"] for r in logs)


def test_outputs(template):
    outputs = template["Outputs"]
    assert "execute-api" in outputs["EndpointURL"]["Value"]["Fn::Sub"]
    assert outputs["BucketName"]["Value"] == {"Ref": "FilesBucket"}
    assert {"TableName", "JobsQueueUrl", "RangesQueueUrl", "DeadLetterQueueUrl", "DeadLetterAlarmName"} <= set(outputs)


@pytest.mark.parametrize("stage", sorted(load_chalice_config()["stages"]))
def test_merge_template_builds_for_every_stage(stage):
    merge = cf.merge_template(stage)
    cfg = stage_config(stage)
    assert props(merge, "JobsQueue")["VisibilityTimeout"] == 6 * cfg.worker_timeout
    assert props(merge, "JobsQueue")["QueueName"] == cfg.queue
    assert props(merge, "RangesQueue")["VisibilityTimeout"] == 6 * cfg.worker_timeout
    assert props(merge, "RangesQueue")["QueueName"] == cfg.ranges_queue
    assert props(merge, "JobsTable")["TableName"] == cfg.table


def test_cfn_lint_passes(packaged):
    import cfnlint  # noqa: F401 - a dev requirement: a missing cfn-lint must fail, not skip

    from infra.deploy import packaging

    assert packaging.lint(packaged) == []


def test_check_packaged_catches_autogen_policy():
    chalice_like = {
        "Resources": {
            "DefaultRole": {"Type": "AWS::IAM::Role", "Properties": {"AssumeRolePolicyDocument": {}}},
            "Compress": {"Type": "AWS::Serverless::Function", "Properties": {"Handler": "app.compress"}},
        }
    }
    problems = cf.check_packaged(chalice_like)
    assert any("autogen_policy" in p for p in problems)
    assert any("APIHandler" in p for p in problems)


def test_api_gateways_own_errors_come_in_the_error_shape(template):
    """Unknown routes, oversized bodies, throttling: answered by API Gateway before the app runs."""
    api = template["Resources"]["RestAPI"]
    assert api["Type"] == "AWS::Serverless::Api"
    definition = api["Properties"]["DefinitionBody"]
    assert "/jobs" in definition["paths"]  # merged into Chalice's definition, not a half resource of our own
    responses = definition["x-amazon-apigateway-gateway-responses"]
    assert {
        "MISSING_AUTHENTICATION_TOKEN",
        "UNAUTHORIZED",
        "ACCESS_DENIED",
        "UNSUPPORTED_MEDIA_TYPE",
        "REQUEST_TOO_LARGE",
        "THROTTLED",
        "DEFAULT_4XX",
        "DEFAULT_5XX",
    } <= set(responses)
    # in the definition, where a change makes SAM deploy again; separate resources would not be served
    assert not [r for r in template["Resources"].values() if r["Type"] == "AWS::ApiGateway::GatewayResponse"]
    expected = {
        "MISSING_AUTHENTICATION_TOKEN": ("404", "not_found"),
        # no Authorization header / a token the authorizer refused: both 401, never 403
        "UNAUTHORIZED": ("401", "missing_token"),
        "ACCESS_DENIED": ("401", "invalid_token"),
        "REQUEST_TOO_LARGE": ("413", "body_too_large"),
        "UNSUPPORTED_MEDIA_TYPE": ("415", "unsupported_media_type"),
        "THROTTLED": ("429", "throttled"),
        "DEFAULT_4XX": (None, "bad_request"),
        "DEFAULT_5XX": (None, "gateway_error"),
    }
    for kind, response in responses.items():
        assert response["responseParameters"] == {"gatewayresponse.header.Content-Type": "'application/json'"}
        body_template = response["responseTemplates"]["application/json"]
        # API Gateway puts the message in as a quoted JSON string
        body = json.loads(body_template.replace("$context.error.messageString", json.dumps('say "why"')))
        assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}, kind
        if kind in expected:
            assert (response.get("statusCode"), body["error"]["code"]) == expected[kind], kind
    assert responses["DEFAULT_4XX"]["responseTemplates"]["application/json"] == (
        '{"error": {"code": "bad_request", "message": $context.error.messageString}}'
    )  # keeps API Gateway's status


def test_check_packaged_catches_a_ranges_event_source_with_batches(template):
    import copy

    batched = copy.deepcopy(template)
    props(batched, "CompressRange")["Events"]["CompressRangeSqsEventSource"]["Properties"]["BatchSize"] = 10
    assert any("BatchSize 10, not 1" in p for p in cf.check_packaged(batched))


def test_check_packaged_catches_a_missing_rest_api():
    problems = cf.check_packaged({"Resources": {"RestAPI": {"Properties": {"DefinitionBody": {}}}}})
    assert any("RestAPI" in p for p in problems)


def test_the_worker_has_tmp_for_a_range_s_output(template):
    """A fanned-out range (up to 1 GiB of input) is spooled to /tmp before it becomes a part: 512 MB is not enough."""
    workers = [
        name
        for name, r in template["Resources"].items()
        if r["Type"] == "AWS::Serverless::Function" and "EphemeralStorage" in r["Properties"]
    ]
    assert sorted(workers) == ["Compress", "CompressRange"]
    for name in workers:
        assert props(template, name)["EphemeralStorage"] == {"Size": 2048}
