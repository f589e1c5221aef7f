"""Who is calling: the authorizer's logic, over the TenantStore port.

``app.py``'s ``tenant_auth`` (a Chalice built-in authorizer: its own Lambda
function on API Gateway, run in-process by ``chalice local``) calls
``Authenticator.authenticate`` with the ``Authorization`` header and turns
the answer into an allow-everything or deny policy; API Gateway caches it
for ``AUTH_CACHE_SECONDS`` per token, so a revoked or rotated token stops
working within that time on AWS (at once under ``chalice local``).

Logs name a token by its public id only, never the secret or the header.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from .domain import now
from .tenants import Principal
from .tokens import hash_secret, parse_bearer, secret_matches, token_id_of

if TYPE_CHECKING:  # the port's module imports the codecs, which the authorizer never needs
    from .ports import TenantStore

log = logging.getLogger("squeezer.auth")

# API Gateway keeps an authorizer's answer this long per token: short, so a
# revocation takes effect quickly, long enough to spare DynamoDB a read per request.
AUTH_CACHE_SECONDS = 30
# last_used_at is written at most this often per token.
TOUCH_EVERY_SECONDS = 300

# Compared against when the token id is unknown, so an unknown id and a wrong
# secret take the same time.
_DECOY_HASH = hash_secret("squeezer-decoy-secret")


class Authenticator:
    def __init__(self, store: TenantStore, *, clock: Callable[[], float] = now) -> None:
        self._store = store
        self._clock = clock

    def authenticate(self, header: str | None) -> Principal | None:
        """The tenant a request's ``Authorization`` header belongs to, or None (logged, without the secret)."""
        token = parse_bearer(header)
        if token is None:
            log.warning("refused a malformed token (token id %s)", token_id_of(header) or "unknown")
            return None
        record = self._store.get_token(token.token_id)
        matches = secret_matches(token, record.secret_hash if record else _DECOY_HASH)
        if record is None or not matches:
            log.warning("refused token %s: %s", token.token_id, "unknown id" if record is None else "wrong secret")
            return None
        if record.revoked_at is not None:
            log.warning("refused token %s of tenant %s: revoked", token.token_id, record.tenant_id)
            return None
        at = self._clock()
        if record.last_used_at is None or record.last_used_at < at - TOUCH_EVERY_SECONDS:
            try:
                self._store.touch_token(token.token_id, at=at, unless_after=at - TOUCH_EVERY_SECONDS)
            except Exception:  # noqa: BLE001 - a missed "last used" never refuses a good token
                log.warning("could not record the use of token %s", token.token_id, exc_info=True)
        return Principal(tenant_id=record.tenant_id, name=record.tenant_name, token_id=token.token_id)
