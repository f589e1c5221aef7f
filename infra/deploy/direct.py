"""The ``chalice deploy`` path and LocalStack: resources made with boto3 from infra/resources.py.

``chalice deploy`` creates the functions, the API and the SQS event source
mappings, but not the bucket, queues and table (create_resources does), and
it cannot turn on ``ReportBatchItemFailures`` (Chalice 1.34 has no setting
for it): :func:`enable_batch_item_failures` does that afterwards.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from ..resources import (
    DEAD_LETTER_FUNCTION,
    RANGES_FUNCTION,
    ROOT,
    WORKER_FUNCTION,
    CreatedResources,
    StageConfig,
    create_aws_extras,
    create_resources,
    delete_resources,
    function_names,
    load_chalice_config,
    stage_config,
)
from .errors import DeployError
from .packaging import ensure_policy_file, require_own_policies, run_chalice

BATCH_ITEM_FAILURES = "ReportBatchItemFailures"
_SETTLING = {"Creating", "Enabling", "Updating", "Disabling"}


def make_clients(session: Any, region: str, endpoint_url: str | None = None) -> dict[str, Any]:
    def client(name: str) -> Any:
        return session.client(name, region_name=region, endpoint_url=endpoint_url)

    return {"s3": client("s3"), "sqs": client("sqs"), "dynamodb": client("dynamodb")}


def create_stage_resources(
    cfg: StageConfig, clients: Mapping[str, Any], region: str, *, enforce_tls: bool = True
) -> CreatedResources:
    """The stage's resources; ``enforce_tls=False`` for an emulator on plain HTTP (LocalStack)."""
    return create_resources(
        cfg,
        s3=clients["s3"],
        sqs=clients["sqs"],
        dynamodb=clients["dynamodb"],
        region=region,
        enforce_tls=enforce_tls,
    )


def _mappings(lambda_client: Any, function_name: str, queue_arn: str) -> list[dict[str, Any]]:
    """The mappings from the queue to the function (by name; an alias or version counts too)."""
    # Listed by queue and matched on the function ARN: Lambda normalises a
    # FunctionName filter, moto compares it verbatim with what the mapping
    # was created with (chalice uses the ARN).
    mappings: list[dict[str, Any]] = []
    for page in lambda_client.get_paginator("list_event_source_mappings").paginate(EventSourceArn=queue_arn):
        for mapping in page.get("EventSourceMappings", []):
            arn = mapping.get("FunctionArn", "")
            if arn.split(":function:", 1)[-1].split(":", 1)[0] == function_name:
                mappings.append(mapping)
    return mappings


def enable_batch_item_failures(
    lambda_client: Any,
    function_name: str,
    queue_arn: str,
    *,
    timeout: float = 180,
    sleep: Callable[[float], None] = time.sleep,
) -> list[str]:
    """Turn on ReportBatchItemFailures on the function's mappings from ``queue_arn``.

    Waits while a mapping is still being created or updated (Lambda refuses
    updates then). Returns the UUIDs it changed; already-enabled mappings
    are left alone. Raises DeployError if there is no mapping from the queue.
    """
    deadline = time.monotonic() + timeout
    changed: list[str] = []
    while True:
        mappings = _mappings(lambda_client, function_name, queue_arn)
        if not mappings:
            raise DeployError(
                f"{function_name} has no event source mapping from {queue_arn}: did 'chalice deploy' run for this stage?"
            )
        pending = [
            m
            for m in mappings
            if BATCH_ITEM_FAILURES not in (m.get("FunctionResponseTypes") or []) and m["UUID"] not in changed
        ]
        if not pending:
            return changed
        for mapping in pending:
            if mapping.get("State") in _SETTLING:
                continue
            try:
                lambda_client.update_event_source_mapping(
                    UUID=mapping["UUID"], FunctionResponseTypes=[BATCH_ITEM_FAILURES]
                )
                changed.append(mapping["UUID"])
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") != "ResourceInUseException":
                    raise
        if time.monotonic() > deadline:
            raise DeployError(f"event source mappings of {function_name} stayed busy for {timeout:.0f} s; run again")
        if any(m["UUID"] not in changed for m in pending):
            sleep(3)


def deployed_api_url(stage: str, project_dir: Path = ROOT) -> str | None:
    """The REST API URL chalice deploy recorded in .chalice/deployed/<stage>.json."""
    path = project_dir / ".chalice" / "deployed" / f"{stage}.json"
    if not path.exists():
        return None
    for resource in json.loads(path.read_text()).get("resources", []):
        if resource.get("resource_type") == "rest_api":
            return resource.get("rest_api_url")
    return None


def chalice_deploy(
    stage: str,
    *,
    session: Any,
    region: str,
    alarm_actions: list[str] | None = None,
    project_dir: Path = ROOT,
) -> dict[str, Any]:
    """Resources (boto3), then ``chalice deploy``, then ReportBatchItemFailures on its mappings."""
    config = load_chalice_config(project_dir / ".chalice" / "config.json")
    require_own_policies(stage, config)
    ensure_policy_file(stage, config, project_dir)
    cfg = stage_config(stage, config)
    clients = make_clients(session, region)
    print(f"creating the resources of stage {stage} in {region}", file=sys.stderr)
    try:
        created = create_stage_resources(cfg, clients, region)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "BucketAlreadyExists":
            raise DeployError(
                f"bucket name {cfg.bucket!r} is taken by another AWS account: set a unique SQUEEZER_BUCKET "
                f"for stage {stage} in .chalice/config.json (e.g. with your account id)"
            ) from exc
        raise
    create_aws_extras(
        cfg,
        dynamodb=clients["dynamodb"],
        cloudwatch=session.client("cloudwatch", region_name=region),
        alarm_actions=alarm_actions,
    )
    run_chalice(["deploy", "--stage", stage], region=region, project_dir=project_dir)
    lambda_client = session.client("lambda", region_name=region)
    names = function_names(stage, config)
    changed = {
        names[WORKER_FUNCTION]: enable_batch_item_failures(lambda_client, names[WORKER_FUNCTION], created.queue_arn),
        names[RANGES_FUNCTION]: enable_batch_item_failures(
            lambda_client, names[RANGES_FUNCTION], created.ranges_queue_arn
        ),
        names[DEAD_LETTER_FUNCTION]: enable_batch_item_failures(
            lambda_client, names[DEAD_LETTER_FUNCTION], created.dead_letter_queue_arn
        ),
    }
    return {
        "stage": stage,
        "api_url": deployed_api_url(stage, project_dir),
        "queue_url": created.queue_url,
        "ranges_queue_url": created.ranges_queue_url,
        "dead_letter_queue_url": created.dead_letter_queue_url,
        "batch_item_failures_enabled": changed,
    }


def chalice_teardown(stage: str, *, session: Any, region: str, project_dir: Path = ROOT) -> list[str]:
    """``chalice delete``, then the stage's bucket (emptied), queues, table and alarm."""
    config = load_chalice_config(project_dir / ".chalice" / "config.json")
    cfg = stage_config(stage, config)
    if (project_dir / ".chalice" / "deployed" / f"{stage}.json").exists():
        run_chalice(["delete", "--stage", stage], region=region, project_dir=project_dir)
    clients = make_clients(session, region)
    return delete_resources(
        cfg,
        s3=clients["s3"],
        sqs=clients["sqs"],
        dynamodb=clients["dynamodb"],
        cloudwatch=session.client("cloudwatch", region_name=region),
    )


def app_environment(cfg: StageConfig, *, endpoint_url: str, region: str) -> dict[str, str]:
    """The environment that points chalice local, the bridge or a test at these resources."""
    return {
        "AWS_ENDPOINT_URL": endpoint_url,
        "AWS_DEFAULT_REGION": region,
        "AWS_REGION": region,
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        **cfg.environment,
    }
