"""One contract, two implementations: DynamoDB (moto) and the in-memory fake."""

import boto3
import pytest
from fakes import InMemoryTenantStore

from chalicelib.tenants import Limits, Tenant, TenantExists, TokenRecord
from chalicelib.tenantstore import DynamoTenantStore
from chalicelib.tokens import new_token


@pytest.fixture(params=["dynamodb", "memory"])
def store(request):
    if request.param == "memory":
        yield InMemoryTenantStore()
        return
    request.getfixturevalue("moto_aws")
    table = boto3.resource("dynamodb", region_name="us-east-1").Table("squeezer-test-jobs")
    yield DynamoTenantStore(table)


def add(store, name="alice", tenant_id="t_1", limits=None):
    token = new_token()
    tenant = Tenant(tenant_id, name, created_at=10.0, token_id=token.token_id, limits=limits or Limits())
    record = TokenRecord.issue(token, tenant_id, name, 10.0)
    store.create_tenant(tenant, record)
    return tenant, record, token


def test_a_tenant_and_its_token_read_back(store):
    tenant, record, token = add(store, limits=Limits(max_bytes_per_day=5, max_open_jobs=2))
    assert store.get_tenant("t_1") == tenant
    assert store.find_tenant("alice") == tenant
    assert store.get_token(token.token_id) == record
    assert record.secret_hash != token.secret and token.secret not in repr(record)
    assert store.get_tenant("t_nope") is None and store.find_tenant("bob") is None
    assert store.get_token("nope") is None
    assert [t.name for t in store.list_tenants()] == ["alice"]


def test_a_name_is_taken_once(store):
    add(store)
    with pytest.raises(TenantExists):
        add(store, tenant_id="t_2")
    assert [t.tenant_id for t in store.list_tenants()] == ["t_1"]  # nothing of the second one was written
    add(store, name="bob", tenant_id="t_2")
    assert sorted(t.name for t in store.list_tenants()) == ["alice", "bob"]


def test_replace_token_revokes_the_old_one_and_only_from_the_current_state(store):
    tenant, old, _ = add(store)
    new = TokenRecord.issue(new_token(), tenant.tenant_id, tenant.name, 20.0)
    assert store.replace_token(tenant, new, at=20.0)
    assert store.get_token(old.token_id).revoked_at == 20.0
    assert store.get_token(new.token_id).revoked_at is None
    assert store.get_tenant(tenant.tenant_id).token_id == new.token_id
    # a second rotation from the stale view loses: the first one's token stays current
    other = TokenRecord.issue(new_token(), tenant.tenant_id, tenant.name, 30.0)
    assert not store.replace_token(tenant, other, at=30.0)
    assert store.get_token(other.token_id) is None
    assert store.get_tenant(tenant.tenant_id).token_id == new.token_id


def test_revoke_marks_tenant_and_token_once(store):
    tenant, record, _ = add(store)
    store.revoke_tenant(tenant, at=50.0)
    store.revoke_tenant(tenant, at=60.0)  # idempotent: the first time stays
    assert store.get_tenant(tenant.tenant_id).revoked_at == 50.0
    assert store.get_token(record.token_id).revoked_at == 50.0
    later = TokenRecord.issue(new_token(), tenant.tenant_id, tenant.name, 70.0)
    assert not store.replace_token(store.get_tenant(tenant.tenant_id), later, at=70.0)  # revoked stays revoked


def test_touch_records_a_use_at_most_once_per_interval(store):
    _, record, _ = add(store)
    store.touch_token(record.token_id, at=100.0, unless_after=0.0)
    assert store.get_token(record.token_id).last_used_at == 100.0
    store.touch_token(record.token_id, at=150.0, unless_after=100.0)  # recorded at 100: not older than 100
    assert store.get_token(record.token_id).last_used_at == 100.0
    store.touch_token(record.token_id, at=500.0, unless_after=200.0)
    assert store.get_token(record.token_id).last_used_at == 500.0


def test_bytes_are_reserved_within_the_limit_and_released(store):
    add(store)
    assert store.reserve_bytes("t_1", "2026-12-04", 60, limit=100, expires_at=1) is None
    assert store.reserve_bytes("t_1", "2026-12-04", 40, limit=100, expires_at=1) is None  # exactly at the limit
    assert store.reserve_bytes("t_1", "2026-12-04", 1, limit=100, expires_at=1) == 100  # over: unchanged
    assert store.reserve_bytes("t_1", "2026-12-05", 100, limit=100, expires_at=1) is None  # a new day
    store.release_bytes("t_1", "2026-12-04", 40)
    assert store.reserve_bytes("t_1", "2026-12-04", 40, limit=100, expires_at=1) is None


def test_open_jobs_are_counted_up_to_the_limit(store):
    add(store)
    assert store.add_open_job("t_1", "j_a", limit=2)
    assert store.add_open_job("t_1", "j_b", limit=2)
    assert not store.add_open_job("t_1", "j_c", limit=2)
    assert store.get_tenant("t_1").open_jobs == {"j_a", "j_b"}
    store.remove_open_jobs("t_1", ["j_a", "j_unknown"])
    assert store.add_open_job("t_1", "j_c", limit=2)
    assert store.get_tenant("t_1").open_jobs == {"j_b", "j_c"}
    assert not store.add_open_job("t_nope", "j_x", limit=5)  # no such tenant: nothing written


def test_limits_can_be_changed_and_cleared(store):
    add(store, limits=Limits(max_bytes_per_day=5))
    store.set_limits("t_1", Limits(max_open_jobs=3))
    assert store.get_tenant("t_1").limits == Limits(max_open_jobs=3)
