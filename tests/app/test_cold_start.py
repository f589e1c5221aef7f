"""What the authorizer's Lambda function loads: app.py and the tenant store, not the rest of the service.

API Gateway calls ``tenant_auth`` in a function of its own, which imports
app.py; every module it loads is cold-start time on each new instance.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
NOT_FOR_THE_AUTHORIZER = (
    "pydantic",
    "zstandard",
    "zlib_ng",
    "chalicelib.codecs",
    "chalicelib.jobstore",
    "chalicelib.schemas",
    "chalicelib.service",
    "chalicelib.views",
    "chalicelib.worker",
)
PROBE = """
import json, sys
import app
from chalicelib.wiring import get_authenticator
get_authenticator()
print(json.dumps(sorted(sys.modules)))
"""


def test_the_authorizer_loads_neither_the_job_service_nor_the_codecs_nor_pydantic():
    env = {
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": str(ROOT),
        "AWS_DEFAULT_REGION": "us-east-1",
        "SQUEEZER_BUCKET": "b",
        "SQUEEZER_TABLE": "t",
        "SQUEEZER_QUEUE": "q",
        "SQUEEZER_DLQ": "d",
    }
    out = subprocess.run(
        [sys.executable, "-c", PROBE], env=env, cwd=ROOT, capture_output=True, text=True, timeout=60, check=True
    )
    loaded = set(json.loads(out.stdout.strip().splitlines()[-1]))
    assert "chalicelib.tenantstore" in loaded and "chalicelib.auth" in loaded  # it did build the authenticator
    assert sorted(loaded & set(NOT_FOR_THE_AUTHORIZER)) == []
