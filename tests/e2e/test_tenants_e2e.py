"""Two tenants on the real local stack, over HTTP and through the CLI: B sees nothing of A's."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import requests
from click.testing import CliRunner
from tenancy import Api

from chalicelib.tenants import Limits, TenantAdmin
from chalicelib.tokens import parse_token
from client.cli import cli

FINAL = {"completed", "failed", "partially_failed", "cancelled"}


@pytest.fixture(scope="module")
def tenants(local_stack):
    admin = TenantAdmin(local_stack.tenant_store())
    a = admin.create("e2e-a", Limits(max_open_jobs=100))
    b = admin.create("e2e-b", Limits(max_open_jobs=100))
    return admin, Api(local_stack.api_url, str(a.token)), Api(local_stack.api_url, str(b.token))


def _finished_job(api: Api, data: bytes) -> dict:
    created = api.post("/jobs", json={"files": [{"name": "payroll/2026.csv", "size": len(data)}], "algorithm": "gzip"})
    assert created.status_code == 201, created.text
    upload = created.json()["files"][0]["upload"]
    assert requests.put(upload["url"], data=data, headers=upload["headers"], timeout=30).status_code == 200
    job_id = created.json()["job_id"]
    deadline = time.monotonic() + 60
    while (job := api.get(f"/jobs/{job_id}").json())["state"] not in FINAL:
        assert time.monotonic() < deadline, job
        time.sleep(0.2)
    return job


def test_b_cannot_list_read_summarize_cancel_retry_or_download_a_s_job(local_stack, tenants, tmp_path: Path):
    _, a, b = tenants
    job = _finished_job(a, b"name,salary\n" * 500)
    job_id = job["job_id"]
    assert job["state"] == "completed" and job["files"][0]["download_url"]
    assert job_id not in b.get("/jobs").text
    for method, path in [
        ("GET", f"/jobs/{job_id}"),
        ("GET", f"/jobs/{job_id}/summary"),
        ("DELETE", f"/jobs/{job_id}"),
        ("POST", f"/jobs/{job_id}/retry"),
    ]:
        answer = b.request(method, path, json={} if method == "POST" else None)
        assert answer.status_code == 404, (method, path, answer.text)
        assert answer.json()["error"]["code"] == "job_not_found" and "payroll" not in answer.text
    # the CLI as B: the download fails with the 404, nothing is written
    out = tmp_path / "out"
    result = CliRunner().invoke(
        cli,
        ["--api-url", b.url, "--token", b.token, "download", job_id, "--output", str(out)],
        catch_exceptions=False,
    )
    assert result.exit_code == 3 and "job_not_found" in result.stderr, result.output
    assert not out.exists() or not any(out.rglob("*"))
    assert a.get(f"/jobs/{job_id}").json()["state"] == "completed"  # B's cancel changed nothing


def test_no_token_bad_token_rotated_and_revoked_tokens_get_401(local_stack, tenants):
    admin, _, _ = tenants
    url = local_stack.api_url
    assert requests.get(f"{url}/jobs", timeout=10).json()["error"]["code"] == "missing_token"
    for header in ("Bearer sqz_bad", "Basic dXNlcjpwYXNz"):
        answer = requests.get(f"{url}/jobs", headers={"Authorization": header}, timeout=10)
        assert (answer.status_code, answer.json()["error"]["code"]) == (401, "invalid_token")
    first = admin.create("e2e-rotating")
    second = admin.rotate("e2e-rotating")
    old, new = Api(url, str(first.token)), Api(url, str(second.token))
    assert old.get("/jobs").status_code == 401 and new.get("/jobs").status_code == 200
    admin.revoke("e2e-rotating")
    answer = new.get("/jobs")
    assert (answer.status_code, answer.json()["error"]["code"]) == (401, "invalid_token")


def test_a_quota_gets_429_with_retry_after(local_stack, tenants):
    admin, _, _ = tenants
    tight = Api(local_stack.api_url, str(admin.create("e2e-tight", Limits(max_open_jobs=1)).token))
    body = {"files": [{"name": "a.txt", "size": 10}], "algorithm": "zstd"}
    assert tight.post("/jobs", json=body).status_code == 201
    refused = tight.post("/jobs", json=body)
    assert refused.status_code == 429, refused.text
    assert refused.json()["error"]["code"] == "quota_exceeded" and int(refused.headers["Retry-After"]) > 0


def test_the_cli_s_401_says_how_to_set_a_token(local_stack):
    result = CliRunner().invoke(
        cli,
        ["--api-url", local_stack.api_url, "--token", "sqz_abcdefghijkl_" + "a" * 43, "jobs"],
        catch_exceptions=False,
    )
    assert result.exit_code == 3, result.output
    assert "squeezer configure" in result.stderr and "a" * 43 not in result.stderr + result.stdout


def test_no_log_of_the_stack_holds_a_token_secret(local_stack, tenants):
    """After good, bad, rotated and revoked tokens went through the API: refusals are logged by token id only."""
    _, a, b = tenants
    a.get("/jobs")
    requests.get(f"{local_stack.api_url}/jobs", headers={"Authorization": f"Bearer {a.token}x"}, timeout=10)
    # parse_token, not a split on "_": a secret is base64url and may itself hold "_"
    secrets = [parse_token(token).secret for token in (a.token, b.token, local_stack.token)]
    assert all(len(secret) == 43 for secret in secrets)
    logs = {path.name: path.read_text(errors="replace") for path in local_stack.state_dir.glob("*.log")}
    assert "refused token" in logs["api.log"], "the refusal is logged (by the token's id)"
    for name, text in logs.items():
        for secret in secrets:
            assert secret not in text, f"a token's secret is in {name}"
