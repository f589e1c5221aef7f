"""Schemathesis against the running local stack: every operation of /openapi.json, bounded examples.

Each response must conform to the document: no server error, a documented
status, a documented content type, and a body that matches its schema. The
run is bounded (examples per operation, and time) and seeded, so it is
repeatable; its report goes to ``.state/test-artifacts/schemathesis/``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from chalicelib.tenants import Limits, TenantAdmin

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
REPORTS = ROOT / ".state" / "test-artifacts" / "schemathesis"
CHECKS = "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance"
SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")


def test_every_operation_conforms_to_the_document(local_stack):
    # A tenant of its own: the run creates jobs, and must not use up the dev tenant's open jobs or bytes.
    issued = TenantAdmin(local_stack.tenant_store()).create(
        "schemathesis", Limits(max_open_jobs=10_000, max_bytes_per_day=2**50)
    )
    shutil.rmtree(REPORTS, ignore_errors=True)
    command = [
        str(SCHEMATHESIS),
        "run",
        f"{local_stack.api_url}/openapi.json",
        "--url",
        local_stack.api_url,
        "--header",
        f"Authorization: Bearer {issued.token}",
        "--checks",
        CHECKS,
        "--max-examples",
        "30",
        "--max-time",
        "150",
        "--seed",
        "20261204",
        # one worker: hypothesis describes lambdas by parsing source with ast, which CPython 3.11
        # does not do safely from two threads at once ("AST constructor recursion depth mismatch")
        "--workers",
        "1",
        "--request-timeout",
        "20",
        "--report",
        "junit",
        "--report-dir",
        str(REPORTS),
    ]
    env = {**os.environ, "SCHEMATHESIS_HOOKS": "", "NO_COLOR": "1"}
    done = subprocess.run(command, capture_output=True, text=True, timeout=400, env=env, cwd=ROOT)
    output = done.stdout + done.stderr
    assert str(issued.token.secret) not in output, "schemathesis printed the token"
    assert done.returncode == 0, output[-6000:]
    assert "No issues found" in output or "passed" in output, output[-3000:]
