"""Tenants: who owns a job, their tokens and limits, and the operator's commands on them.

A tenant has one live token at a time. ``TenantAdmin`` is what ``squeezer
admin`` runs (with AWS credentials, not through the API): create a tenant
(its token is shown once), list, rotate the token (the old one stops
working), revoke. Only the hash of a token's secret is stored
(chalicelib/tokens.py).
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from .domain import now
from .errors import SqueezerError, ValidationError
from .tokens import Token, new_token

if TYPE_CHECKING:  # ports.py imports this module's types
    from .ports import TenantStore

NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")


class TenantNotFound(SqueezerError):
    status = 404
    code = "tenant_not_found"


class TenantExists(SqueezerError):
    status = 409
    code = "tenant_exists"


@dataclass(frozen=True)
class Limits:
    """A tenant's own limits; None: the service's default (Settings)."""

    max_bytes_per_day: int | None = None
    max_open_jobs: int | None = None


@dataclass(frozen=True)
class Tenant:
    tenant_id: str
    name: str
    created_at: float
    token_id: str
    limits: Limits = Limits()
    revoked_at: float | None = None
    # Jobs counted against max_open_jobs until they are seen finished.
    open_jobs: frozenset[str] = field(default_factory=frozenset)

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None


@dataclass(frozen=True)
class TokenRecord:
    """A token as stored: its public id and the hash of its secret, never the secret."""

    token_id: str
    secret_hash: str
    tenant_id: str
    tenant_name: str
    created_at: float
    last_used_at: float | None = None
    revoked_at: float | None = None

    @classmethod
    def issue(cls, token: Token, tenant_id: str, tenant_name: str, at: float) -> TokenRecord:
        return cls(
            token_id=token.token_id,
            secret_hash=token.secret_hash,
            tenant_id=tenant_id,
            tenant_name=tenant_name,
            created_at=at,
        )


@dataclass(frozen=True)
class Principal:
    """Who a request runs as, from the authorizer."""

    tenant_id: str
    name: str
    token_id: str


@dataclass(frozen=True)
class IssuedToken:
    """What ``create-tenant`` and ``rotate-token`` give back: the token, shown once."""

    tenant: Tenant
    token: Token


def new_tenant_id() -> str:
    return "t_" + secrets.token_hex(8)


def check_tenant_name(name: object) -> str:
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        raise ValidationError(
            f"tenant name {name!r} is not valid: 1 to 63 characters, lower-case letters, digits, '.', '_' "
            "or '-', starting with a letter or digit",
            code="invalid_tenant_name",
        )
    return name


def check_limit(name: str, value: int | None) -> int | None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise ValidationError(f"{name} must be a positive integer, got {value!r}", code="invalid_limit")
    return value


class TenantAdmin:
    """The operator's commands, over a TenantStore (ports.py)."""

    def __init__(self, store: TenantStore, *, clock: Callable[[], float] = now) -> None:
        self._store = store
        self._clock = clock

    def create(self, name: str, limits: Limits = Limits()) -> IssuedToken:
        check_tenant_name(name)
        check_limit("max bytes per day", limits.max_bytes_per_day)
        check_limit("max open jobs", limits.max_open_jobs)
        at = self._clock()
        token = new_token()
        tenant = Tenant(tenant_id=new_tenant_id(), name=name, created_at=at, token_id=token.token_id, limits=limits)
        self._store.create_tenant(tenant, TokenRecord.issue(token, tenant.tenant_id, name, at))
        return IssuedToken(tenant=tenant, token=token)

    def list(self) -> list[Tenant]:
        return sorted(self._store.list_tenants(), key=lambda t: t.name)

    def get(self, name: str) -> Tenant:
        tenant = self._store.find_tenant(check_tenant_name(name))
        if tenant is None:
            raise TenantNotFound(f"no tenant named {name!r}: 'squeezer admin list-tenants' lists them")
        return tenant

    def token(self, tenant: Tenant) -> TokenRecord | None:
        """The tenant's current token as stored (its hash, created, last used): never the secret."""
        return self._store.get_token(tenant.token_id)

    def rotate(self, name: str) -> IssuedToken:
        """A new token for the tenant; the old one stops working at once (and the revoked tenant stays revoked)."""
        tenant = self.get(name)
        if tenant.revoked:
            raise TenantNotFound(f"tenant {name!r} is revoked; create a new tenant instead")
        at = self._clock()
        token = new_token()
        if not self._store.replace_token(tenant, TokenRecord.issue(token, tenant.tenant_id, tenant.name, at), at=at):
            raise TenantExists(f"tenant {name!r} changed meanwhile (another rotate or revoke); run the command again")
        return IssuedToken(tenant=replace(tenant, token_id=token.token_id), token=token)

    def revoke(self, name: str) -> Tenant:
        """Revoke the tenant and its token. Idempotent; the tenant's jobs and results stay until they expire."""
        tenant = self.get(name)
        if tenant.revoked:
            return tenant
        at = self._clock()
        self._store.revoke_tenant(tenant, at=at)
        return replace(tenant, revoked_at=at)

    def set_limits(self, name: str, limits: Limits) -> Tenant:
        check_limit("max bytes per day", limits.max_bytes_per_day)
        check_limit("max open jobs", limits.max_open_jobs)
        tenant = self.get(name)
        self._store.set_limits(tenant.tenant_id, limits)
        return replace(tenant, limits=limits)
