"""What Squeezer's Lambda functions may do: one definition, two renderings.

:func:`function_statements` lists, per function, the actions on the stage's
bucket prefixes, table, queues and log groups that the code in ``chalicelib``
calls. The same statements are rendered

* with literal ARNs into ``.chalice/policy-<stage>.json`` (:func:`stage_policy`,
  written by ``python -m infra.deploy policies``), the ``iam_policy_file``
  that ``chalice deploy`` attaches when ``autogen_policy`` is false, and
* with CloudFormation ``Fn::GetAtt``/``Fn::Sub`` ARNs into each function's own
  role in the packaged template (:func:`function_policy`, used by
  :mod:`infra.cloudformation`), where the bucket's account-suffixed name is
  only known to CloudFormation.

No statement uses ``"Resource": "*"``. With a KMS key configured for the
stage, the functions that read or write the bucket's objects (and so sign
the presigned URLs) may use that key, through S3 only.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chalicelib.tenantstore import TOKEN_PREFIX

from .resources import (
    API_FUNCTION,
    AUTHORIZER_FUNCTION,
    DEAD_LETTER_FUNCTION,
    RANGES_FUNCTION,
    ROOT,
    WORKER_FUNCTION,
    StageConfig,
    function_names,
    kms_via_s3,
    load_chalice_config,
    stage_config,
)

POLICY_VERSION = "2012-10-17"
FUNCTIONS = (API_FUNCTION, WORKER_FUNCTION, RANGES_FUNCTION, DEAD_LETTER_FUNCTION, AUTHORIZER_FUNCTION)
# The worker's two functions: the jobs queue's and the ranges queue's (the same code).
WORKER_FUNCTIONS = (WORKER_FUNCTION, RANGES_FUNCTION)

# What S3 asks KMS for, on the signer's behalf, when the bucket encrypts with
# a KMS key: a data key to write an object (PutObject, and the parts of a
# multipart upload), a decryption to read one (GetObject) and to complete a
# multipart upload (S3 reads the encrypted parts back).
KMS_WRITE = "kms:GenerateDataKey"
KMS_READ = "kms:Decrypt"

# An ARN is a plain string, or a CloudFormation intrinsic (a dict) that
# resolves to one.
Arn = Any


@dataclass(frozen=True)
class Arns:
    """The ARNs the statements refer to, as strings or CloudFormation intrinsics."""

    bucket: Arn
    table: Arn
    queue: Arn
    dead_letter_queue: Arn
    ranges_queue: Arn
    log_groups: Mapping[str, Arn]  # function -> ARN of its log group (no ":*")


def static_arns(
    cfg: StageConfig,
    config: Mapping[str, Any] | None = None,
    *,
    partition: str = "aws",
    region: str = "*",
    account: str = "*",
) -> Arns:
    """Literal ARNs for a policy file.

    Region and account default to ``*`` so one committed file works in any
    account; every ARN still names exactly this stage's bucket, table, queues
    and functions.
    """
    names = function_names(cfg.stage, config)
    return Arns(
        bucket=f"arn:{partition}:s3:::{cfg.bucket}",
        table=f"arn:{partition}:dynamodb:{region}:{account}:table/{cfg.table}",
        queue=f"arn:{partition}:sqs:{region}:{account}:{cfg.queue}",
        dead_letter_queue=f"arn:{partition}:sqs:{region}:{account}:{cfg.dead_letter_queue}",
        ranges_queue=f"arn:{partition}:sqs:{region}:{account}:{cfg.ranges_queue}",
        log_groups={
            fn: f"arn:{partition}:logs:{region}:{account}:log-group:/aws/lambda/{name}" for fn, name in names.items()
        },
    )


def join(base: Arn, suffix: str) -> Arn:
    """``base + suffix`` for a string or an intrinsic."""
    if isinstance(base, str):
        return base + suffix
    if isinstance(base, dict) and isinstance(base.get("Fn::Sub"), str):
        return {"Fn::Sub": base["Fn::Sub"] + suffix}
    if isinstance(base, dict) and "Fn::GetAtt" in base:
        logical_id, attribute = base["Fn::GetAtt"]
        return {"Fn::Sub": f"${{{logical_id}.{attribute}}}{suffix}"}
    return {"Fn::Join": ["", [base, suffix]]}


def _statement(sid: str, actions: list[str], resources: list[Arn], condition: dict | None = None) -> dict:
    statement: dict[str, Any] = {"Sid": sid, "Effect": "Allow", "Action": sorted(actions), "Resource": resources}
    if condition:
        statement["Condition"] = condition
    return statement


def _files_key(cfg: StageConfig, actions: list[str]) -> list[dict[str, Any]]:
    """The stage's KMS key, used through S3 only; nothing without a key (SSE-S3 needs no permission)."""
    if cfg.kms_key_arn is None:
        return []
    return [
        _statement(
            "UseFilesKey",
            actions,
            [cfg.kms_key_arn],
            {"StringEquals": {"kms:ViaService": kms_via_s3(cfg.kms_key_arn)}},
        )
    ]


def function_statements(function: str, cfg: StageConfig, arns: Arns) -> list[dict[str, Any]]:
    """The statements one function needs (``api_handler``, ``compress``, ``compress_range``, ``dead_letters``, ``tenant_auth``)."""
    uploads = join(arns.bucket, f"/{cfg.uploads_prefix}*")
    results = join(arns.bucket, f"/{cfg.results_prefix}*")
    log_group = arns.log_groups[function]
    logs = _statement(
        "WriteOwnLogs",
        ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
        [log_group, join(log_group, ":*")],
    )
    if function == API_FUNCTION:
        return [
            logs,
            # create (batch write), status and list (query, also on the owner index), cancel and retry (update)
            _statement(
                "JobsTable",
                [
                    "dynamodb:BatchWriteItem",
                    "dynamodb:GetItem",
                    "dynamodb:PutItem",
                    "dynamodb:Query",
                    "dynamodb:UpdateItem",
                ],
                [arns.table, join(arns.table, "/index/*")],
            ),
            # A presigned URL carries its signer's permissions: PUT to uploads/,
            # GET of results/. Cancel deletes the uploads of the files it
            # cancels (never a result); retry and status HEAD uploads.
            # presigned PUTs and parts (Create/UploadPart/Complete are s3:PutObject); clients' multipart
            # uploads: list the parts S3 holds, abort one
            _statement(
                "PresignUploads",
                [
                    "s3:AbortMultipartUpload",
                    "s3:DeleteObject",
                    "s3:GetObject",
                    "s3:ListMultipartUploadParts",
                    "s3:PutObject",
                ],
                [uploads],
            ),
            _statement("PresignResults", ["s3:GetObject"], [results]),
            # Without ListBucket, HeadObject of a missing upload answers 403, not 404.
            _statement("HeadMissingUploads", ["s3:ListBucket"], [arns.bucket]),
            # retry and a lost notification send the upload to the worker again
            _statement("JobsQueue", ["sqs:GetQueueUrl", "sqs:SendMessage"], [arns.queue]),
            # presigned PUTs write uploads, presigned GETs read results
            *_files_key(cfg, [KMS_READ, KMS_WRITE]),
        ]
    if function in WORKER_FUNCTIONS:
        # each function reads its own queue: compress the jobs queue, compress_range the ranges queue
        source = arns.queue if function == WORKER_FUNCTION else arns.ranges_queue
        return [
            logs,
            # fan-out (chalicelib/fanout.py): a file's ranges are batch-written, listed (Query), and a
            # range's renewal is a transaction that checks its file (ConditionCheckItem)
            _statement(
                "JobsTable",
                [
                    "dynamodb:BatchWriteItem",
                    "dynamodb:ConditionCheckItem",
                    "dynamodb:GetItem",
                    "dynamodb:PutItem",
                    "dynamodb:Query",
                    "dynamodb:UpdateItem",
                ],
                [arns.table],
            ),
            # read the upload (HeadObject is s3:GetObject), delete it when done
            _statement("ReadUploads", ["s3:GetObject", "s3:DeleteObject"], [uploads]),
            # single PUT or multipart (Create/UploadPart/Complete are s3:PutObject), tags, cleanup
            _statement(
                "WriteResults",
                ["s3:AbortMultipartUpload", "s3:DeleteObject", "s3:PutObject", "s3:PutObjectTagging"],
                [results],
            ),
            # Without ListBucket, HeadObject of a missing upload answers 403
            # instead of 404 and the worker would retry instead of failing the file.
            _statement("HeadMissingUploads", ["s3:ListBucket"], [arns.bucket]),
            # the event source mapping polls with the function's role; the
            # worker delays retries and keeps messages hidden (heartbeat) with
            # ChangeMessageVisibility, on the queue each message came from
            _statement(
                "JobsQueue" if function == WORKER_FUNCTION else "RangesQueue",
                [
                    "sqs:ChangeMessageVisibility",
                    "sqs:DeleteMessage",
                    "sqs:GetQueueAttributes",
                    "sqs:GetQueueUrl",
                    "sqs:ReceiveMessage",
                ],
                [source],
            ),
            # a fanned-out file's range messages go to the ranges queue (SendMessageBatch is sqs:SendMessage)
            _statement("SendRanges", ["sqs:GetQueueUrl", "sqs:SendMessage"], [arns.ranges_queue]),
            # reads uploads; writes results, in parts
            *_files_key(cfg, [KMS_READ, KMS_WRITE]),
        ]
    if function == DEAD_LETTER_FUNCTION:
        return [
            logs,
            # a range's dead letter reads its file's ranges (Query)
            _statement("JobsTable", ["dynamodb:GetItem", "dynamodb:Query", "dynamodb:UpdateItem"], [arns.table]),
            # a range out of retries fails its file and aborts the result's multipart upload
            _statement("AbortFannedOutResults", ["s3:AbortMultipartUpload"], [results]),
            # malformed dead letters are kept for an operator
            _statement("KeepDeadLetters", ["s3:PutObject"], [join(arns.bucket, f"/{cfg.dead_letters_prefix}*")]),
            # a file still being compressed: its dead letter comes back later
            _statement(
                "DeadLetterQueue",
                [
                    "sqs:ChangeMessageVisibility",
                    "sqs:DeleteMessage",
                    "sqs:GetQueueAttributes",
                    "sqs:GetQueueUrl",
                    "sqs:ReceiveMessage",
                ],
                [arns.dead_letter_queue],
            ),
            # writes malformed dead letters in one PUT, reads none
            *_files_key(cfg, [KMS_WRITE]),
        ]
    if function == AUTHORIZER_FUNCTION:
        return [
            logs,
            # reads a token and records its use: TOKEN# items only, never a
            # tenant's or a job's
            _statement(
                "ReadTokens",
                ["dynamodb:GetItem", "dynamodb:UpdateItem"],
                [arns.table],
                {"ForAllValues:StringLike": {"dynamodb:LeadingKeys": [f"{TOKEN_PREFIX}*"]}},
            ),
        ]
    raise KeyError(f"unknown function {function!r}; known: {', '.join(FUNCTIONS)}")


def function_policy(function: str, cfg: StageConfig, arns: Arns) -> dict[str, Any]:
    """The policy document of one function's role (the packaged template)."""
    return {"Version": POLICY_VERSION, "Statement": function_statements(function, cfg, arns)}


def stage_policy(cfg: StageConfig, config: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The stage's policy file: every function's statements, literal ARNs.

    Chalice gives each function its own role but attaches the same
    ``iam_policy_file`` to all of them, so the file is the union.
    """
    arns = static_arns(cfg, config)
    statements: list[dict[str, Any]] = []
    for function in FUNCTIONS:
        prefix = "".join(part.title() for part in function.split("_"))
        for statement in function_statements(function, cfg, arns):
            statements.append({**statement, "Sid": prefix + statement["Sid"]})
    return {"Version": POLICY_VERSION, "Statement": statements}


CHALICE_DIR = ROOT / ".chalice"


def policy_path(stage: str, chalice_dir: Path = CHALICE_DIR) -> Path:
    return chalice_dir / f"policy-{stage}.json"


def render(document: Mapping[str, Any]) -> str:
    return json.dumps(document, indent=2) + "\n"


def write_policy_files(
    stages: list[str] | None = None,
    config: Mapping[str, Any] | None = None,
    chalice_dir: Path = CHALICE_DIR,
) -> list[Path]:
    """Write ``.chalice/policy-<stage>.json`` for the given (default: all) stages."""
    config = load_chalice_config(chalice_dir / "config.json") if config is None else config
    written = []
    for stage in stages or sorted(config["stages"]):
        path = policy_path(stage, chalice_dir)
        path.write_text(render(stage_policy(stage_config(stage, config), config)))
        written.append(path)
    return written


def stale_policy_files(config: Mapping[str, Any] | None = None, chalice_dir: Path = CHALICE_DIR) -> list[str]:
    """Stages whose policy file is missing or differs from the definition."""
    config = load_chalice_config(chalice_dir / "config.json") if config is None else config
    stale = []
    for stage in sorted(config["stages"]):
        path = policy_path(stage, chalice_dir)
        expected = render(stage_policy(stage_config(stage, config), config))
        if not path.exists() or path.read_text() != expected:
            stale.append(stage)
    return stale
