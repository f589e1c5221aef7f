"""``python -m infra.deploy``: package, deploy and tear down Squeezer; set up LocalStack.

Progress goes to stderr; ``--json`` answers go to stdout.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
from botocore.exceptions import EndpointConnectionError

from .. import cloudformation, iam
from ..resources import ROOT, StageConfigError, load_chalice_config, stage_config
from . import direct, packaging, stack
from .errors import DeployError

DEFAULT_LOCALSTACK = "http://127.0.0.1:4566"


@dataclass
class Context:
    region: str
    project_dir: Path = ROOT
    _session: Any = field(default=None, repr=False)

    @property
    def session(self) -> Any:
        if self._session is None:  # built on first use: --help and package need no AWS
            import boto3

            self._session = boto3.session.Session(region_name=self.region)
        return self._session

    def client(self, name: str) -> Any:
        return self.session.client(name, region_name=self.region)


pass_ctx = click.make_pass_decorator(Context)


def _stage(stage: str, config: dict) -> None:
    if stage not in config.get("stages", {}):
        raise DeployError(
            f"stage {stage!r} is not in .chalice/config.json (stages: {', '.join(sorted(config['stages']))})"
        )


def _say(message: str) -> None:
    click.echo(message, err=True)


def _emit(data: dict, as_json: bool, lines: list[str]) -> None:
    if as_json:
        click.echo(json.dumps(data, indent=2))
    else:
        for line in lines:
            click.echo(line)


stage_option = click.option(
    "--stage", required=True, help="Stage of .chalice/config.json (dev, prod, ...).", envvar="STAGE"
)
json_option = click.option("--json", "as_json", is_flag=True, help="Print the result as JSON on stdout.")


@click.group()
@click.option(
    "--region",
    envvar="AWS_DEFAULT_REGION",
    default="us-east-1",
    show_default=True,
    help="AWS region (env AWS_DEFAULT_REGION).",
)
@click.pass_context
def cli(ctx: click.Context, region: str) -> None:
    """Package, deploy and tear down Squeezer; set up its resources on LocalStack."""
    if not isinstance(ctx.obj, Context):  # tests pass their own (another project_dir)
        ctx.obj = Context(region=region)


@cli.command()
@click.option("--check", is_flag=True, help="Only check that the files match infra/iam.py (exit 1 if not).")
def policies(check: bool) -> None:
    """Write .chalice/policy-<stage>.json for every stage from infra/iam.py."""
    if check:
        stale = iam.stale_policy_files()
        if stale:
            raise DeployError(f"stale policy files for stages {', '.join(stale)}: run python -m infra.deploy policies")
        _say("policy files are up to date")
        return
    for path in iam.write_policy_files():
        _say(f"wrote {path.relative_to(ROOT)}")


@cli.command()
@stage_option
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), help="Write here instead of stdout.")
def template(stage: str, output: Path | None) -> None:
    """Print the merge template chalice package gets (for review)."""
    _stage(stage, load_chalice_config())
    text = json.dumps(cloudformation.merge_template(stage), indent=2) + "\n"
    if output:
        output.write_text(text)
        _say(f"wrote {output}")
    else:
        click.echo(text, nl=False)


@cli.command()
@stage_option
@click.option(
    "--out",
    "outdir",
    default="packaged",
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Output directory for sam.json and deployment.zip.",
)
@click.option("--lint/--no-lint", default=True, show_default=True, help="Run cfn-lint on the result.")
@pass_ctx
def package(ctx: Context, stage: str, outdir: Path, lint: bool) -> None:
    """chalice package with everything wired: resources, env Refs, ReportBatchItemFailures, IAM."""
    template_path = packaging.package(stage, outdir, region=ctx.region, project_dir=ctx.project_dir)
    if lint:
        problems = packaging.lint(template_path)
        if problems:
            raise DeployError("cfn-lint found problems:\n" + "\n".join(problems))
        _say("cfn-lint: no errors or warnings")
    click.echo(str(template_path))


@cli.command()
@stage_option
@click.option(
    "--artifacts-bucket",
    required=True,
    envvar="SQUEEZER_ARTIFACTS_BUCKET",
    help="Existing S3 bucket for the code zip and template (env SQUEEZER_ARTIFACTS_BUCKET).",
)
@click.option(
    "--packaged-dir",
    default="packaged",
    show_default=True,
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    help="Output of the package command.",
)
@click.option("--stack-name", help="CloudFormation stack name [default: squeezer-<stage>].")
@click.option(
    "--alarm-topic-arn",
    default="",
    envvar="SQUEEZER_ALARM_TOPIC_ARN",
    help="SNS topic for the dead-letter alarm (env SQUEEZER_ALARM_TOPIC_ARN).",
)
@json_option
@pass_ctx
def deploy(
    ctx: Context,
    stage: str,
    artifacts_bucket: str,
    packaged_dir: Path,
    stack_name: str | None,
    alarm_topic_arn: str,
    as_json: bool,
) -> None:
    """Create or update the CloudFormation stack from the packaged template."""
    config = load_chalice_config(ctx.project_dir / ".chalice" / "config.json")
    name = stack_name or stack.stack_name(stage, config["app_name"])
    result = stack.deploy_stack(
        ctx.client("cloudformation"),
        ctx.client("s3"),
        name=name,
        packaged_dir=packaged_dir,
        artifacts_bucket=artifacts_bucket,
        parameters={cloudformation.ALARM_TOPIC_PARAMETER: alarm_topic_arn},
    )
    url = result.outputs.get("EndpointURL", "")
    _emit(
        {"stack": result.stack_name, "status": result.status, "outputs": result.outputs}, as_json, [f"API URL: {url}"]
    )


@cli.command("chalice-deploy")
@stage_option
@click.option(
    "--alarm-topic-arn",
    default="",
    envvar="SQUEEZER_ALARM_TOPIC_ARN",
    help="SNS topic for the dead-letter alarm (env SQUEEZER_ALARM_TOPIC_ARN).",
)
@json_option
@pass_ctx
def chalice_deploy(ctx: Context, stage: str, alarm_topic_arn: str, as_json: bool) -> None:
    """Create the resources with boto3, run chalice deploy, enable ReportBatchItemFailures."""
    result = direct.chalice_deploy(
        stage,
        session=ctx.session,
        region=ctx.region,
        alarm_actions=[alarm_topic_arn] if alarm_topic_arn else None,
        project_dir=ctx.project_dir,
    )
    _emit(result, as_json, [f"API URL: {result['api_url']}"])


@cli.command()
@stage_option
@click.option("--stack-name", help="CloudFormation stack name [default: squeezer-<stage>].")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@pass_ctx
def teardown(ctx: Context, stage: str, stack_name: str | None, yes: bool) -> None:
    """Delete the stage: its stack (packaged path) or chalice delete + resources (chalice-deploy path).

    Deletes the uploads, results and job records of the stage.
    """
    config = load_chalice_config(ctx.project_dir / ".chalice" / "config.json")
    _stage(stage, config)  # before anything is deleted
    if not yes:
        click.confirm(f"Delete stage {stage!r} in {ctx.region} with all its files and jobs?", abort=True, err=True)
    name = stack_name or stack.stack_name(stage, config["app_name"])
    if stack.delete_stack(ctx.client("cloudformation"), ctx.client("s3"), name=name):
        _say(f"deleted stack {name}")
        return
    for item in direct.chalice_teardown(stage, session=ctx.session, region=ctx.region, project_dir=ctx.project_dir):
        _say(f"deleted {item}")


@cli.command("localstack-deploy")
@click.option(
    "--endpoint",
    default=DEFAULT_LOCALSTACK,
    show_default=True,
    envvar="LOCALSTACK_ENDPOINT",
    help="LocalStack endpoint (env LOCALSTACK_ENDPOINT).",
)
@click.option("--stage", default="local", show_default=True, help="Stage whose names to use.")
@json_option
@pass_ctx
def localstack_deploy(ctx: Context, endpoint: str, stage: str, as_json: bool) -> None:
    """Create the stage's bucket, queues and table on LocalStack; print the app's environment."""
    import boto3

    config = load_chalice_config(ctx.project_dir / ".chalice" / "config.json")
    _stage(stage, config)
    cfg = stage_config(stage, config)
    session = boto3.session.Session(aws_access_key_id="test", aws_secret_access_key="test", region_name=ctx.region)
    try:
        created = direct.create_stage_resources(
            cfg,
            direct.make_clients(session, ctx.region, endpoint),
            ctx.region,
            enforce_tls=endpoint.startswith("https://"),  # LocalStack's default endpoint is plain HTTP
        )
    except EndpointConnectionError as exc:
        raise DeployError(
            f"LocalStack is not reachable at {endpoint}: run infra/localstack/start.sh (or set LOCALSTACK_ENDPOINT)"
        ) from exc
    env = direct.app_environment(cfg, endpoint_url=endpoint, region=ctx.region)
    _say(f"created the {stage} stage's resources on {endpoint} (queue {created.queue_url})")
    _emit(
        {
            "environment": env,
            "queue_url": created.queue_url,
            "ranges_queue_url": created.ranges_queue_url,
            "dead_letter_queue_url": created.dead_letter_queue_url,
        },
        as_json,
        [f"export {key}={value}" for key, value in env.items()],
    )


def main() -> None:
    try:
        cli(prog_name="python -m infra.deploy")
    except StageConfigError as exc:  # raised wherever a stage's settings are read: one user error
        DeployError(f"{exc} (.chalice/config.json)").show()
        sys.exit(DeployError.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)
