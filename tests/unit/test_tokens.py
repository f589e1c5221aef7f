import logging

import pytest
from fakes import InMemoryTenantStore

from chalicelib import tokens
from chalicelib.auth import TOUCH_EVERY_SECONDS, Authenticator
from chalicelib.tenants import TenantAdmin
from chalicelib.tokens import Token, hash_secret, new_token, parse_bearer, parse_token, secret_matches


def test_a_new_token_has_a_public_id_and_256_random_bits():
    token = new_token()
    text = str(token)
    assert text.startswith(f"sqz_{token.token_id}_") and len(token.token_id) == 12
    assert len(token.secret) == 43  # base64url of 32 bytes
    assert parse_token(text) == token
    assert len({str(new_token()) for _ in range(200)}) == 200


def test_the_secret_never_shows_in_repr_or_masked():
    token = new_token()
    assert token.secret not in repr(token) and token.secret not in token.masked
    assert token.token_id in token.masked


@pytest.mark.parametrize(
    "text",
    [
        "",
        "sqz_",
        "sqz_abc_def",
        "sqz_ABCDEFGHIJKL_" + "a" * 43,  # upper-case id
        "sqz_abcdefghijkl_" + "a" * 42,  # short secret
        "sqz_abcdefghijkl_" + "a" * 44,
        "sqz_abcdefghijkl_" + "a" * 42 + "!",
        "xyz_abcdefghijkl_" + "a" * 43,
        "sqz_abcdefghijkl_" + "a" * 43 + "\n" + "x",
    ],
)
def test_malformed_tokens_are_refused(text):
    assert parse_token(text) is None


@pytest.mark.parametrize(
    "header",
    [None, "", "Bearer", "Bearer ", "Basic dXNlcjpwYXNz", "Token sqz_abcdefghijkl_" + "a" * 43, 42],
)
def test_headers_without_a_bearer_token_are_refused(header):
    assert parse_bearer(header) is None


def test_bearer_scheme_is_case_insensitive():
    token = new_token()
    assert parse_bearer(f"bearer {token}") == token and parse_bearer(f"Bearer {token}") == token


def test_only_the_right_secret_matches_its_hash():
    token = new_token()
    stored = hash_secret(token.secret)
    assert stored != token.secret and len(stored) == 64
    assert secret_matches(token, stored)
    assert not secret_matches(
        Token(token.token_id, token.secret[:-1] + ("A" if token.secret[-1] != "A" else "B")), stored
    )


def test_the_token_id_of_a_malformed_header_is_found_for_logs():
    assert tokens.token_id_of("Bearer sqz_abcdefghijkl_short") == "abcdefghijkl"
    assert tokens.token_id_of("Basic xyz") is None and tokens.token_id_of(None) is None


@pytest.fixture
def admin_and_auth():
    store = InMemoryTenantStore()
    clock = [1000.0]
    return store, TenantAdmin(store, clock=lambda: clock[0]), Authenticator(store, clock=lambda: clock[0]), clock


def test_the_authenticator_finds_the_tenant_of_a_good_token(admin_and_auth):
    store, admin, auth, _ = admin_and_auth
    issued = admin.create("alice")
    principal = auth.authenticate(f"Bearer {issued.token}")
    assert principal is not None
    assert (principal.tenant_id, principal.name, principal.token_id) == (
        issued.tenant.tenant_id,
        "alice",
        issued.token.token_id,
    )
    assert store.tokens[issued.token.token_id].last_used_at == 1000.0


def test_last_used_is_written_at_most_once_per_interval(admin_and_auth):
    store, admin, auth, clock = admin_and_auth
    issued = admin.create("alice")
    header = f"Bearer {issued.token}"
    auth.authenticate(header)
    clock[0] += 10
    auth.authenticate(header)
    assert store.tokens[issued.token.token_id].last_used_at == 1000.0
    clock[0] += TOUCH_EVERY_SECONDS
    auth.authenticate(header)
    assert store.tokens[issued.token.token_id].last_used_at == clock[0]


def test_unknown_wrong_rotated_and_revoked_tokens_are_refused_and_logged_by_id_only(admin_and_auth, caplog):
    _, admin, auth, _ = admin_and_auth
    issued = admin.create("alice")
    wrong = Token(issued.token.token_id, new_token().secret)
    unknown = new_token()
    caplog.set_level(logging.INFO, logger="squeezer.auth")
    assert auth.authenticate(f"Bearer {wrong}") is None
    assert auth.authenticate(f"Bearer {unknown}") is None
    assert auth.authenticate("Bearer sqz_abcdefghijkl_tooshort") is None
    rotated = admin.rotate("alice")
    assert auth.authenticate(f"Bearer {issued.token}") is None  # the old one stopped working
    assert auth.authenticate(f"Bearer {rotated.token}") is not None
    admin.revoke("alice")
    assert auth.authenticate(f"Bearer {rotated.token}") is None
    logged = caplog.text
    for secret in (issued.token.secret, wrong.secret, unknown.secret, rotated.token.secret, "tooshort"):
        assert secret not in logged
    assert issued.token.token_id in logged and unknown.token_id in logged and "abcdefghijkl" in logged


def test_a_failed_last_used_write_does_not_refuse_a_good_token(admin_and_auth, monkeypatch):
    store, admin, auth, _ = admin_and_auth
    issued = admin.create("alice")

    def broken(*args, **kwargs):
        raise RuntimeError("throttled")

    monkeypatch.setattr(store, "touch_token", broken)
    assert auth.authenticate(f"Bearer {issued.token}") is not None
