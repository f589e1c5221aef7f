"""infra/iam.py's policy files, and the deploy CLI's offline commands."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from infra import iam
from infra.deploy import packaging
from infra.deploy.cli import cli
from infra.deploy.errors import DeployError
from infra.resources import load_chalice_config, stage_config


def test_policy_files_match_the_definition():
    assert iam.stale_policy_files() == [], "run: python -m infra.deploy policies"


@pytest.mark.parametrize("stage", sorted(load_chalice_config()["stages"]))
def test_stage_policy_names_only_the_stage_resources(stage):
    cfg = stage_config(stage)
    document = json.loads(iam.policy_path(stage).read_text())
    sids = [s["Sid"] for s in document["Statement"]]
    assert len(sids) == len(set(sids))
    for statement in document["Statement"]:
        for resource in statement["Resource"]:
            assert resource != "*"
            assert any(name in resource for name in (cfg.bucket, cfg.table, cfg.queue, f"squeezer-{stage}")), resource
        s3_objects = [r for r in statement["Resource"] if r.startswith("arn:aws:s3:::") and "/" in r]
        assert all(r.endswith(("/uploads/*", "/results/*", "/dead-letters/*")) for r in s3_objects)


def test_static_arns_can_be_pinned_to_an_account():
    arns = iam.static_arns(stage_config("prod"), region="eu-west-1", account="123456789012")
    assert arns.queue == "arn:aws:sqs:eu-west-1:123456789012:squeezer-prod-jobs"


def test_join_keeps_intrinsics_readable():
    assert iam.join("arn:aws:s3:::b", "/uploads/*") == "arn:aws:s3:::b/uploads/*"
    assert iam.join({"Fn::GetAtt": ["FilesBucket", "Arn"]}, "/x") == {"Fn::Sub": "${FilesBucket.Arn}/x"}
    assert iam.join({"Fn::Sub": "arn:${AWS::Partition}:logs"}, ":*") == {"Fn::Sub": "arn:${AWS::Partition}:logs:*"}


def test_packaging_refuses_autogen_policy():
    config = load_chalice_config()
    config = {
        **config,
        "autogen_policy": True,
        "stages": {"prod": {**config["stages"]["prod"], "autogen_policy": True}},
    }
    with pytest.raises(DeployError, match='"autogen_policy": false'):
        packaging.require_own_policies("prod", config)


def run(*args):
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return result


def test_cli_policies_check():
    result = run("policies", "--check")
    assert result.exit_code == 0, result.output


def test_cli_template_prints_the_merge_template():
    result = run("template", "--stage", "dev")
    assert result.exit_code == 0, result.output
    template = json.loads(result.stdout)
    assert template["Resources"]["JobsQueue"]["Properties"]["QueueName"] == "squeezer-dev-jobs"


@pytest.mark.parametrize("command", [["template"], ["teardown", "--yes"], ["localstack-deploy"]])
def test_cli_unknown_stage_is_a_user_error(command):
    result = run(*command, "--stage", "nope")
    assert result.exit_code == 2, result.output
    assert "stage 'nope' is not in .chalice/config.json" in result.output
