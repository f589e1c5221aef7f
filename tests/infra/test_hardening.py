"""Issue 10's hardened deployment in the packaged template: TLS-only bucket, encryption (SSE-S3 or
the stage's KMS key), CORS for configured origins only, API throttling, the WAF body limit, and the
authorizer's own role. Settings come from the stage's "squeezer_infra" in .chalice/config.json."""

from __future__ import annotations

import copy
import json
import re

import pytest

from chalicelib.http import MAX_BODY_BYTES
from chalicelib.tenantstore import TOKEN_PREFIX
from infra import cloudformation as cf
from infra import iam
from infra.resources import INFRA_KEY, StageConfigError, load_chalice_config, stage_config

PACKAGED_STAGE = "prod"  # the stage the packaged fixtures build (conftest.py)
CFG = stage_config(PACKAGED_STAGE)
KEY_ARN = "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
ORIGINS = ["https://app.example.com", "http://localhost:3000"]  # also conftest.py's variant
ROLES = {"APIHandler": "ApiHandlerRole", "Compress": "CompressRole", "DeadLetters": "DeadLettersRole"}
AUTHORIZER = "TenantAuth"


def props(template, logical_id):
    return template["Resources"][logical_id]["Properties"]


def statements(template, role):
    return {s["Sid"]: s for s in props(template, role)["Policies"][0]["PolicyDocument"]["Statement"]}


def config_with(stage: str = PACKAGED_STAGE, **settings) -> dict:
    """config.json with the stage's squeezer_infra settings replaced (None drops one)."""
    config = copy.deepcopy(load_chalice_config())
    infra = config["stages"][stage].setdefault(INFRA_KEY, {})
    for name, value in settings.items():
        if value is None:
            infra.pop(name, None)
        else:
            infra[name] = value
    return config


def merged(**settings) -> dict:
    return cf.merge_template(PACKAGED_STAGE, config_with(**settings))


# -- bucket ------------------------------------------------------------------------


def test_bucket_policy_refuses_requests_without_tls(template):
    policy = props(template, "FilesBucketPolicy")
    assert template["Resources"]["FilesBucketPolicy"]["Type"] == "AWS::S3::BucketPolicy"
    assert policy["Bucket"] == {"Ref": "FilesBucket"}
    (statement,) = policy["PolicyDocument"]["Statement"]
    assert statement["Effect"] == "Deny"
    assert statement["Principal"] == "*"
    assert statement["Action"] == "s3:*"
    # the bucket itself (list, policy...) and every object
    assert statement["Resource"] == [{"Fn::GetAtt": ["FilesBucket", "Arn"]}, {"Fn::Sub": "${FilesBucket.Arn}/*"}]
    assert statement["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def test_bucket_blocks_public_access_and_uses_sse_s3_by_default(template):
    bucket = props(template, "FilesBucket")
    assert set(bucket["PublicAccessBlockConfiguration"].values()) == {True}
    assert len(bucket["PublicAccessBlockConfiguration"]) == 4
    assert CFG.kms_key_arn is None
    assert bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"] == [
        {"ServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}
    ]
    # SSE-S3 needs no KMS permission
    for resource in template["Resources"].values():
        if resource["Type"] == "AWS::IAM::Role":
            for policy in resource["Properties"]["Policies"]:
                assert "kms:" not in json.dumps(policy)


def test_kms_key_encrypts_the_bucket_and_its_users_may_use_it_through_s3_only():
    template = merged(kms_key_arn=KEY_ARN)
    (rule,) = props(template, "FilesBucket")["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert rule == {
        "ServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": KEY_ARN},
        "BucketKeyEnabled": True,
    }
    expected = {
        # presigned PUT of uploads (a data key), presigned GET of results (decrypt)
        "ApiHandlerRole": ["kms:Decrypt", "kms:GenerateDataKey"],
        # reads uploads, writes results in parts (completing them decrypts the parts)
        "CompressRole": ["kms:Decrypt", "kms:GenerateDataKey"],
        # the same, for fanned-out ranges
        "CompressRangeRole": ["kms:Decrypt", "kms:GenerateDataKey"],
        # one PUT of a malformed dead letter
        "DeadLettersRole": ["kms:GenerateDataKey"],
    }
    for role, actions in expected.items():
        key = statements(template, role)["UseFilesKey"]
        assert key["Action"] == actions, role
        assert key["Resource"] == [KEY_ARN]
        assert key["Condition"] == {"StringEquals": {"kms:ViaService": "s3.eu-west-1.amazonaws.com"}}
    # the authorizer never touches the bucket
    assert "kms:" not in json.dumps(props(template, "TenantAuthRole"))
    # the policy file (chalice deploy) says the same
    document = iam.stage_policy(stage_config(PACKAGED_STAGE, config_with(kms_key_arn=KEY_ARN)))
    in_file = {s["Sid"]: s["Action"] for s in document["Statement"] if s["Sid"].endswith("UseFilesKey")}
    assert in_file == {
        "ApiHandlerUseFilesKey": expected["ApiHandlerRole"],
        "CompressUseFilesKey": expected["CompressRole"],
        "CompressRangeUseFilesKey": expected["CompressRangeRole"],
        "DeadLettersUseFilesKey": expected["DeadLettersRole"],
    }


def test_cors_allows_exactly_the_configured_origins():
    (rule,) = props(merged(cors_origins=ORIGINS), "FilesBucket")["CorsConfiguration"]["CorsRules"]
    assert rule["AllowedOrigins"] == ORIGINS
    assert sorted(rule["AllowedMethods"]) == ["GET", "HEAD", "POST", "PUT"]
    assert rule["ExposedHeaders"] == ["ETag"]
    assert "*" not in json.dumps(rule["AllowedOrigins"])


@pytest.mark.parametrize(
    ("setting", "value", "message"),
    [
        ("cors_origins", ["*"], "no path, no wildcard"),
        ("cors_origins", ["https://app.example.com/"], "no path"),
        ("cors_origins", "https://app.example.com", "must be a list"),
        ("kms_key_arn", "arn:aws:kms:eu-west-1:123456789012:alias/squeezer", "not an alias"),
        ("max_body_bytes", MAX_BODY_BYTES + 1, "the app refuses larger bodies itself"),
        ("max_body_bytes", 0, "must be 1.."),
        ("throttle_rate", 0, "more than 0"),
        ("throttle_burst", 2.5, "whole number"),
        ("waf", "yes", "true or false"),
        ("wafs", True, "unknown squeezer_infra settings"),
    ],
)
def test_unusable_settings_are_refused_with_the_reason(setting, value, message):
    with pytest.raises(StageConfigError, match=re.escape(message)):
        stage_config(PACKAGED_STAGE, config_with(**{setting: value}))


# -- table -------------------------------------------------------------------------


def test_table_encrypted_at_rest_and_recoverable(template):
    table = props(template, "JobsTable")
    assert table["SSESpecification"] == {"SSEEnabled": False}  # the AWS-owned key
    assert table["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}


# -- API: throttling and the body limit ----------------------------------------------


def test_stage_throttling_from_the_stage_config(template):
    settings = props(template, "RestAPI")["MethodSettings"]
    assert settings == [
        {
            "ResourcePath": "/*",
            "HttpMethod": "*",
            "ThrottlingRateLimit": CFG.throttle_rate,
            "ThrottlingBurstLimit": CFG.throttle_burst,
        }
    ]
    configured = props(merged(throttle_rate=7.5, throttle_burst=15), "RestAPI")["MethodSettings"]
    assert (configured[0]["ThrottlingRateLimit"], configured[0]["ThrottlingBurstLimit"]) == (7.5, 15)


def _body_rule(template):
    (rule,) = props(template, cf.WEB_ACL)["Rules"]
    return rule


def test_prod_has_a_waf_that_answers_413_in_our_shape_over_the_apps_limit(template):
    assert CFG.waf is True
    assert CFG.max_body_bytes == MAX_BODY_BYTES  # the app's own limit, not a second copy
    acl = props(template, cf.WEB_ACL)
    assert acl["Scope"] == "REGIONAL"
    assert acl["DefaultAction"] == {"Allow": {}}
    rule = _body_rule(template)
    statement = rule["Statement"]["RegexMatchStatement"]
    assert statement["FieldToMatch"] == {"SingleHeader": {"Name": "content-length"}}
    assert statement["RegexString"] == cf.integer_above_regex(MAX_BODY_BYTES)
    response = rule["Action"]["Block"]["CustomResponse"]
    assert response["ResponseCode"] == 413
    body = acl["CustomResponseBodies"][response["CustomResponseBodyKey"]]
    assert body["ContentType"] == "APPLICATION_JSON"
    error = json.loads(body["Content"])["error"]
    assert set(error) == {"code", "message"}
    assert error["code"] == "body_too_large"
    assert str(MAX_BODY_BYTES) in error["message"]

    association = template["Resources"][cf.WEB_ACL_ASSOCIATION]
    assert association["Properties"]["WebACLArn"] == {"Fn::GetAtt": [cf.WEB_ACL, "Arn"]}
    stage = props(template, "RestAPI")["StageName"]
    assert association["Properties"]["ResourceArn"] == {
        "Fn::Sub": f"arn:${{AWS::Partition}}:apigateway:${{AWS::Region}}::/restapis/${{RestAPI}}/stages/{stage}"
    }
    # SAM's name for the stage it makes; the association must wait for it
    assert association["DependsOn"] == [f"RestAPI{stage}Stage"]


def test_waf_limit_is_the_configured_one():
    rule = _body_rule(merged(max_body_bytes=65536))
    assert rule["Statement"]["RegexMatchStatement"]["RegexString"] == cf.integer_above_regex(65536)


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_no_waf_when_switched_off(stage):
    template = cf.merge_template(stage, config_with(stage, waf=False))
    assert not [r for r in template["Resources"].values() if r.get("Type", "").startswith("AWS::WAFv2::")]


def test_waf_is_off_by_default():
    assert stage_config("dev").waf is False
    assert not [r for r in cf.merge_template("dev")["Resources"].values() if r.get("Type", "").startswith("AWS::WAF")]


@pytest.mark.parametrize("limit", [0, 1, 8, 9, 10, 99, 100, 909, 990, 65536, MAX_BODY_BYTES])
def test_content_length_regex_matches_exactly_the_numbers_over_the_limit(limit):
    pattern = re.compile(cf.integer_above_regex(limit))
    for value in {*range(max(0, limit - 300), limit + 300), 10 * limit + 7, 10**12}:
        assert bool(pattern.match(str(value))) == (value > limit), value
    assert pattern.match(f"000{limit + 1}") and not pattern.match(f"000{limit}")
    for junk in ("", "-5", "1e9", f"{limit + 1} ", "abc"):
        assert not pattern.match(junk), junk


# -- the authorizer -------------------------------------------------------------------


def test_authorizer_has_its_own_role_reading_only_token_items(template):
    function = props(template, AUTHORIZER)
    assert function["Role"] == {"Fn::GetAtt": ["TenantAuthRole", "Arn"]}
    assert function["FunctionName"] == f"squeezer-{PACKAGED_STAGE}-tenant_auth"
    assert function["Environment"]["Variables"]["SQUEEZER_TABLE"] == {"Ref": "JobsTable"}
    granted = statements(template, "TenantAuthRole")
    assert set(granted) == {"WriteOwnLogs", "ReadTokens"}
    tokens = granted["ReadTokens"]
    assert tokens["Action"] == ["dynamodb:GetItem", "dynamodb:UpdateItem"]
    assert tokens["Resource"] == [{"Fn::GetAtt": ["JobsTable", "Arn"]}]  # no index
    assert TOKEN_PREFIX == "TOKEN#"
    assert tokens["Condition"] == {"ForAllValues:StringLike": {"dynamodb:LeadingKeys": ["TOKEN#*"]}}
    assert all("tenant_auth" in r["Fn::Sub"] for r in granted["WriteOwnLogs"]["Resource"])
    # API Gateway may call it (Chalice's permission, untouched)
    permission = props(template, "TenantAuthInvokePermission")
    assert permission["FunctionName"] == {"Fn::GetAtt": [AUTHORIZER, "Arn"]}
    assert permission["Principal"] == "apigateway.amazonaws.com"


# -- cfn-lint on the variants the prod package does not have ---------------------------


def test_variant_packages_and_passes_cfn_lint(variant):
    """prod with a KMS key, two origins, other throttling and no WAF (conftest.py)."""
    from infra.deploy import packaging

    template = json.loads(variant.read_text())
    assert props(template, "FilesBucket")["CorsConfiguration"]["CorsRules"][0]["AllowedOrigins"] == ORIGINS
    assert "CorsConfiguration" in props(template, "FilesBucket")
    assert cf.WEB_ACL not in template["Resources"]
    assert "UseFilesKey" in statements(template, "CompressRole")
    assert packaging.lint(variant) == []


# -- CORS on the API: one list, the stage's cors_origins ------------------------------------


def _api_environment(template):
    return props(template, "APIHandler")["Environment"]["Variables"]


def _gateway_cors(template):
    responses = props(template, "RestAPI")["DefinitionBody"]["x-amazon-apigateway-gateway-responses"]
    return {
        kind: {k: v for k, v in r["responseParameters"].items() if k != "gatewayresponse.header.Content-Type"}
        for kind, r in responses.items()
    }


def test_the_api_gets_the_stages_origins_and_none_by_default(template):
    assert _api_environment(template)["SQUEEZER_CORS_ORIGINS"] == ""
    assert set(map(frozenset, _gateway_cors(template).values())) == {frozenset()}  # no CORS header anywhere
    one = merged(cors_origins=ORIGINS[:1])
    assert _api_environment(one)["SQUEEZER_CORS_ORIGINS"] == ORIGINS[0]
    for kind, headers in _gateway_cors(one).items():
        assert headers == {
            "gatewayresponse.header.Access-Control-Allow-Origin": f"'{ORIGINS[0]}'",
            "gatewayresponse.header.Access-Control-Expose-Headers": "'Location, Retry-After'",
            "gatewayresponse.header.Vary": "'Origin'",
        }, kind
    two = merged(cors_origins=ORIGINS)
    assert _api_environment(two)["SQUEEZER_CORS_ORIGINS"] == ",".join(ORIGINS)
    # several origins: a gateway response cannot choose one, and echoing the request's would allow any
    assert {frozenset(h.items()) for h in _gateway_cors(two).values()} == {
        frozenset({("gatewayresponse.header.Vary", "'Origin'")})
    }


def test_every_path_has_an_options_method_without_the_authorizer(variant):
    """A browser's preflight carries no token: it must reach the function, not the authorizer."""
    from chalicelib.openapi import OPERATIONS

    public = {op.path for op in OPERATIONS if not op.authorized}
    template = json.loads(variant.read_text())
    paths = props(template, "RestAPI")["DefinitionBody"]["paths"]
    for path, methods in paths.items():
        assert "options" in methods, path
        assert not methods["options"].get("security"), path
        assert methods["options"]["x-amazon-apigateway-integration"]["type"] == "aws_proxy", path
        assert any(m.get("security") for name, m in methods.items() if name != "options") or path in public, path
    assert _gateway_cors(template)["UNAUTHORIZED"]["gatewayresponse.header.Vary"] == "'Origin'"
