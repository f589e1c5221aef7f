"""Deploy and delete the packaged SAM template with boto3 CloudFormation."""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError, WaiterError

from .. import cloudformation
from ..resources import empty_bucket
from .errors import StackError

CAPABILITIES = ["CAPABILITY_IAM", "CAPABILITY_AUTO_EXPAND"]
_WAIT = {"Delay": 10, "MaxAttempts": 360}  # up to an hour


def stack_name(stage: str, app_name: str = "squeezer") -> str:
    return f"{app_name}-{stage}"


@dataclass(frozen=True)
class Deployed:
    stack_name: str
    status: str
    outputs: dict[str, str]


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def upload_artifacts(s3: Any, packaged_dir: Path, bucket: str, prefix: str) -> tuple[dict[str, Any], str]:
    """Upload deployment.zip (content-addressed) and the template; returns (template, template URL).

    Every ``CodeUri`` that points at the local zip is rewritten to its S3 URI.
    """
    template = json.loads((packaged_dir / "sam.json").read_text())
    zip_path = packaged_dir / "deployment.zip"
    code_key = f"{prefix}/deployment-{_sha256(zip_path)}.zip"
    s3.upload_file(str(zip_path), bucket, code_key)
    for resource in template.get("Resources", {}).values():
        props = resource.get("Properties", {})
        if (
            resource.get("Type") == "AWS::Serverless::Function"
            and isinstance(props.get("CodeUri"), str)
            and not props["CodeUri"].startswith("s3://")
        ):
            props["CodeUri"] = f"s3://{bucket}/{code_key}"
    body = json.dumps(template, indent=1).encode()
    template_key = f"{prefix}/template-{hashlib.sha256(body).hexdigest()}.json"
    s3.put_object(Bucket=bucket, Key=template_key, Body=body, ContentType="application/json")
    # path-style URL on the client's own endpoint (the regional one on AWS)
    return template, f"{s3.meta.endpoint_url.rstrip('/')}/{bucket}/{template_key}"


def describe(cfn: Any, name: str) -> dict[str, Any] | None:
    try:
        return cfn.describe_stacks(StackName=name)["Stacks"][0]
    except ClientError as exc:
        if "does not exist" in exc.response.get("Error", {}).get("Message", ""):
            return None
        raise


def _failure_reasons(cfn: Any, name: str, limit: int = 10) -> str:
    try:
        events = cfn.describe_stack_events(StackName=name)["StackEvents"]
    except ClientError:
        return ""
    reasons = [
        f"{e['LogicalResourceId']}: {e.get('ResourceStatusReason', '')}"
        for e in events
        if e.get("ResourceStatus", "").endswith("FAILED")
    ]
    return "\n  ".join(reasons[:limit])


def deploy_stack(
    cfn: Any,
    s3: Any,
    *,
    name: str,
    packaged_dir: Path,
    artifacts_bucket: str,
    parameters: Mapping[str, str] | None = None,
    wait: bool = True,
) -> Deployed:
    """Create or update the stack from a ``chalice package`` output directory."""
    _, template_url = upload_artifacts(s3, packaged_dir, artifacts_bucket, prefix=f"{name}")
    params = [{"ParameterKey": k, "ParameterValue": v} for k, v in (parameters or {}).items()]
    existing = describe(cfn, name)
    if existing is not None and existing["StackStatus"] == "ROLLBACK_COMPLETE":
        raise StackError(
            f"stack {name} is in ROLLBACK_COMPLETE (its first create failed) and cannot be updated: "
            "run 'python -m infra.deploy teardown' first"
        )
    args = {"StackName": name, "TemplateURL": template_url, "Parameters": params, "Capabilities": CAPABILITIES}
    if existing is None:
        print(f"creating stack {name}", file=sys.stderr)
        cfn.create_stack(**args, Tags=[{"Key": "app", "Value": "squeezer"}])
        waiter = "stack_create_complete"
    else:
        print(f"updating stack {name}", file=sys.stderr)
        try:
            cfn.update_stack(**args)
        except ClientError as exc:
            if "No updates are to be performed" not in str(exc):
                raise StackError(f"update of {name} refused: {exc}") from exc
            print("no changes", file=sys.stderr)
            wait = False
        waiter = "stack_update_complete"
    if wait:
        try:
            cfn.get_waiter(waiter).wait(StackName=name, WaiterConfig=_WAIT)
        except WaiterError as exc:
            raise StackError(f"stack {name} did not deploy: {exc}\n  {_failure_reasons(cfn, name)}") from exc
    stack = describe(cfn, name) or {}
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
    return Deployed(name, stack.get("StackStatus", "UNKNOWN"), outputs)


def delete_stack(cfn: Any, s3: Any, *, name: str, wait: bool = True) -> bool:
    """Empty the stack's bucket, delete the stack; False if there is no such stack."""
    if describe(cfn, name) is None:
        return False
    try:
        bucket = cfn.describe_stack_resource(StackName=name, LogicalResourceId=cloudformation.BUCKET)
        physical = bucket["StackResourceDetail"].get("PhysicalResourceId")
    except ClientError:
        physical = None
    if physical:
        try:
            removed = empty_bucket(s3, physical)
            print(f"emptied bucket {physical} ({removed} objects)", file=sys.stderr)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "NoSuchBucket":
                raise
    cfn.delete_stack(StackName=name)
    if wait:
        try:
            cfn.get_waiter("stack_delete_complete").wait(StackName=name, WaiterConfig=_WAIT)
        except WaiterError as exc:
            raise StackError(f"stack {name} was not deleted: {exc}\n  {_failure_reasons(cfn, name)}") from exc
    return True
