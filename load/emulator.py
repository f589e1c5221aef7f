"""The benchmarks' helpers around the local stack's emulator.

The emulator itself is started by :func:`infra.local.running_emulator` (the
local stack's launcher, in its own process, so its request handling does not
share the benchmark's GIL: on AWS, S3 is somebody else's CPU). On a 2-core
machine it still shares the cores: worker-side CPU time is reported next to
wall time for that reason. The credentials are the stack's fake ones
(:data:`infra.local.config.FAKE_AWS`).
"""

from __future__ import annotations

import os

from infra.local import emulator_client
from infra.local.config import FAKE_AWS, REGION
from infra.resources import create_resources, stage_config


def use_fake_credentials() -> None:
    """This process talks to the emulator only: the fake credentials, none of the caller's AWS_* settings."""
    for name in [name for name in os.environ if name.startswith("AWS_")]:
        del os.environ[name]
    os.environ.update(FAKE_AWS)


def settings_for(endpoint: str, **overrides):
    """Settings of the tests' "test" stage, pointed at ``endpoint``."""
    from chalicelib.settings import Settings

    env = {**stage_config("test").environment, "AWS_ENDPOINT_URL": endpoint, "AWS_REGION": REGION}
    return Settings.from_env(env, **overrides)


def create(endpoint: str):
    """The "test" stage's bucket, table and queues in the emulator at ``endpoint``."""
    clients = {name: emulator_client(name, endpoint) for name in ("s3", "sqs", "dynamodb")}
    return create_resources(stage_config("test"), region=REGION, enforce_tls=False, **clients)


def upload_stream(s3, bucket: str, key: str, source, size: int, part: int = 64 * 1024 * 1024) -> None:
    """Multipart upload of ``size`` bytes read from ``source``, part by part."""
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    parts, number, left = [], 1, size
    while left > 0:
        body = source.read(min(part, left))
        left -= len(body)
        etag = s3.upload_part(Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=body)["ETag"]
        parts.append({"PartNumber": number, "ETag": etag})
        number += 1
    s3.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts})
