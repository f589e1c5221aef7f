"""Tenants on LocalStack's DynamoDB: the authorizer's reads, the admin's transactions and the quotas' conditions.

LocalStack without Docker runs no Lambda authorizer behind its API Gateway,
so the authorizer's logic (chalicelib.auth) is run here against LocalStack's
table, as far as LocalStack goes: token items, transactions (create,
rotate, revoke) and the conditional writes that hold the quotas.
"""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from chalicelib.auth import Authenticator
from chalicelib.errors import JobNotFound, QuotaExceeded
from chalicelib.quotas import Quotas
from chalicelib.service import JobService
from chalicelib.tenants import Limits, TenantAdmin
from chalicelib.tenantstore import DynamoTenantStore
from client.cli import cli


@pytest.fixture(scope="module")
def tenants(stack):
    return DynamoTenantStore(stack.clients.dynamodb.Table(stack.cfg.table))


def test_create_authenticate_rotate_revoke(tenants):
    admin, auth = TenantAdmin(tenants), Authenticator(tenants)
    first = admin.create("ls-acme")
    principal = auth.authenticate(f"Bearer {first.token}")
    assert principal is not None and principal.tenant_id == first.tenant.tenant_id
    second = admin.rotate("ls-acme")
    assert auth.authenticate(f"Bearer {first.token}") is None
    assert auth.authenticate(f"Bearer {second.token}") is not None
    admin.revoke("ls-acme")
    assert auth.authenticate(f"Bearer {second.token}") is None


def test_quotas_and_isolation_with_real_conditional_writes(stack, tenants):
    admin = TenantAdmin(tenants)
    alice = admin.create("ls-alice", Limits(max_open_jobs=2, max_bytes_per_day=10_000)).tenant.tenant_id
    bob = admin.create("ls-bob").tenant.tenant_id
    service = JobService(stack.store, stack.storage, stack.settings, quotas=Quotas(tenants, stack.settings))
    body = {"files": [{"name": "a.txt", "size": 100}], "algorithm": "gzip"}
    job = service.create_job(body, owner=alice)
    assert f"/uploads/{alice}/{job.job.job_id}/" in job.files[0][1].url
    service.create_job(body, owner=alice)
    with pytest.raises(QuotaExceeded):
        service.create_job(body, owner=alice)
    with pytest.raises(JobNotFound):
        service.get_status(job.job.job_id, owner=bob)
    service.cancel_job(job.job.job_id, owner=alice)  # finished: its slot is freed
    service.create_job(body, owner=alice)
    assert len(tenants.get_tenant(alice).open_jobs) == 2


def test_the_admin_cli_works_against_localstack(stack, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", stack.settings.endpoint_url)
    monkeypatch.setenv("AWS_REGION", stack.settings.region)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    result = CliRunner().invoke(
        cli, ["admin", "create-tenant", "ls-cli", "--table", stack.cfg.table, "--json"], catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    token = json.loads(result.stdout)["token"]
    store = DynamoTenantStore(stack.clients.dynamodb.Table(stack.cfg.table))
    assert Authenticator(store).authenticate(f"Bearer {token}") is not None
