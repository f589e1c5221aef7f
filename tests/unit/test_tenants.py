import pytest
from fakes import InMemoryTenantStore

from chalicelib.errors import ValidationError
from chalicelib.tenants import Limits, TenantAdmin, TenantExists, TenantNotFound, check_tenant_name
from chalicelib.tokens import secret_matches


@pytest.fixture
def admin():
    store = InMemoryTenantStore()
    return store, TenantAdmin(store, clock=lambda: 500.0)


def test_create_stores_only_the_hash_and_returns_the_token_once(admin):
    store, tenants = admin
    issued = tenants.create("acme", Limits(max_bytes_per_day=10**9, max_open_jobs=3))
    record = store.tokens[issued.token.token_id]
    assert secret_matches(issued.token, record.secret_hash)
    assert issued.token.secret not in repr(store.__dict__)
    assert issued.tenant.tenant_id.startswith("t_") and issued.tenant.limits.max_open_jobs == 3
    assert [t.name for t in tenants.list()] == ["acme"]


@pytest.mark.parametrize("name", ["", "Acme", "a b", "-x", "a" * 64, "../x", "é", None, 3])
def test_bad_names_are_refused(name):
    with pytest.raises(ValidationError):
        check_tenant_name(name)


def test_names_are_unique_and_limits_positive(admin):
    _, tenants = admin
    tenants.create("acme")
    with pytest.raises(TenantExists):
        tenants.create("acme")
    with pytest.raises(ValidationError):
        tenants.create("other", Limits(max_open_jobs=0))


def test_rotate_and_revoke_need_an_existing_live_tenant(admin):
    store, tenants = admin
    with pytest.raises(TenantNotFound):
        tenants.rotate("ghost")
    first = tenants.create("acme")
    second = tenants.rotate("acme")
    assert second.token != first.token and store.tokens[first.token.token_id].revoked_at == 500.0
    revoked = tenants.revoke("acme")
    assert revoked.revoked and tenants.revoke("acme").revoked_at == revoked.revoked_at  # idempotent
    with pytest.raises(TenantNotFound):
        tenants.rotate("acme")


def test_set_limits(admin):
    store, tenants = admin
    issued = tenants.create("acme")
    tenants.set_limits("acme", Limits(max_open_jobs=7))
    assert store.tenants[issued.tenant.tenant_id].limits == Limits(max_open_jobs=7)
