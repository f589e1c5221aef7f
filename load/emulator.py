"""A moto server on 127.0.0.1 in its own process, with Squeezer's resources.

The server runs in a child process so that its request handling does not
share the benchmark's GIL (on AWS, S3 is somebody else's CPU). On a 2-core
machine it still shares the cores: worker-side CPU time is reported next to
wall time for that reason.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass

import boto3

from infra.local.config import FAKE_AWS
from infra.resources import create_resources, stage_config

FAKE_ENV = FAKE_AWS  # the local stack's fake credentials: one set for stack, tests and benchmarks
REGION = "us-east-1"


def use_fake_credentials() -> None:
    """Offline, fake credentials for this process only (never a real account)."""
    os.environ.update(FAKE_ENV)
    os.environ.pop("AWS_PROFILE", None)


@dataclass
class Emulator:
    endpoint: str
    process: subprocess.Popen

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()


def start() -> Emulator:
    """The local stack's own emulator launcher (infra/local/emulator.py), on a free port, without saving."""
    from infra.local import free_ports

    (port,) = free_ports(1)
    process = subprocess.Popen(
        [sys.executable, "-m", "infra.local.emulator", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
        env={**os.environ, **FAKE_ENV},
    )
    assert process.stdout is not None
    line = process.stdout.readline().strip()
    if not line.endswith(f"127.0.0.1:{port}"):
        process.kill()
        raise RuntimeError(f"moto server did not start: {line!r}")
    return Emulator(endpoint=f"http://127.0.0.1:{port}", process=process)


def settings_for(endpoint: str, **overrides):
    """Settings of the tests' "test" stage, pointed at ``endpoint``."""
    from chalicelib.settings import Settings

    env = {**stage_config("test").environment, "AWS_ENDPOINT_URL": endpoint, "AWS_REGION": REGION}
    return Settings.from_env(env, **overrides)


def create(endpoint: str):
    session = boto3.session.Session(region_name=REGION)
    clients = {name: session.client(name, endpoint_url=endpoint) for name in ("s3", "sqs", "dynamodb")}
    return create_resources(stage_config("test"), region=REGION, **clients)


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
