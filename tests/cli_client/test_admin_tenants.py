"""``squeezer admin`` tenant commands, straight to DynamoDB (moto), not through the API."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from tenancy import TEST_TABLE, tenant_store

from chalicelib.auth import Authenticator
from chalicelib.tokens import parse_token
from client.cli import cli


def run(*args: str, expect: int = 0):
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert result.exit_code == expect, (result.output, result.stderr)
    assert "Traceback" not in result.output + result.stderr
    return result


@pytest.fixture
def table(moto_aws, monkeypatch):
    monkeypatch.setenv("SQUEEZER_TABLE", TEST_TABLE)
    return TEST_TABLE


def works(token: str) -> bool:
    return Authenticator(tenant_store(TEST_TABLE)).authenticate(f"Bearer {token}") is not None


def test_create_prints_the_token_once_and_it_works(table):
    result = run("admin", "create-tenant", "acme", "--max-bytes-per-day", "10GiB", "--max-open-jobs", "5")
    token = result.stdout.strip()
    assert parse_token(token) is not None and works(token)
    assert "only time the token is shown" in result.stderr
    listed = json.loads(run("admin", "list-tenants", "--json").stdout)["tenants"]
    assert [(t["name"], t["max_bytes_per_day"], t["max_open_jobs"]) for t in listed] == [("acme", 10 * 1024**3, 5)]
    assert listed[0]["token_id"] == parse_token(token).token_id and listed[0]["last_used_at"] is not None
    text = run("admin", "list-tenants").stdout
    assert "acme" in text and "10.0 GiB" in text and parse_token(token).secret not in text


def test_create_json_gives_the_fields_and_the_table_can_be_named_explicitly(moto_aws, monkeypatch):
    monkeypatch.delenv("SQUEEZER_TABLE", raising=False)
    created = json.loads(run("admin", "create-tenant", "acme", "--table", TEST_TABLE, "--json").stdout)
    assert {"tenant_id", "name", "token", "token_id", "created_at"} <= set(created)
    assert created["name"] == "acme" and works(created["token"])


def test_rotate_stops_the_old_token_and_revoke_stops_the_new(table):
    old = json.loads(run("admin", "create-tenant", "acme", "--json").stdout)["token"]
    new = run("admin", "rotate-token", "acme").stdout.strip()
    assert new != old and not works(old) and works(new)
    revoked = json.loads(run("admin", "revoke-tenant", "acme", "--json").stdout)
    assert revoked["revoked_at"] and not works(new)
    assert "revoked" in run("admin", "list-tenants").stdout


def test_set_limits_changes_and_clears(table):
    run("admin", "create-tenant", "acme", "--max-open-jobs", "3")
    run("admin", "set-limits", "acme", "--max-bytes-per-day", "500M")
    (tenant,) = json.loads(run("admin", "list-tenants", "--json").stdout)["tenants"]
    assert (tenant["max_bytes_per_day"], tenant["max_open_jobs"]) == (500 * 1024**2, None)


def test_clear_errors_for_taken_names_unknown_tenants_and_bad_values(table):
    run("admin", "create-tenant", "acme")
    assert "exists already" in run("admin", "create-tenant", "acme", expect=1).stderr
    assert "no tenant named 'ghost'" in run("admin", "rotate-token", "ghost", expect=1).stderr
    assert "no tenant named 'ghost'" in run("admin", "revoke-tenant", "ghost", expect=1).stderr
    assert "not valid" in run("admin", "create-tenant", "Bad Name", expect=1).stderr
    assert "is not a size" in run("admin", "create-tenant", "x", "--max-bytes-per-day", "lots", expect=2).stderr
    run("admin", "create-tenant", "y", "--max-open-jobs", "0", expect=2)


def test_no_table_is_a_usage_error(monkeypatch):
    monkeypatch.delenv("SQUEEZER_TABLE", raising=False)
    result = run("admin", "list-tenants", expect=2)
    assert "--table" in result.stderr


def test_aws_unreachable_is_exit_3_with_what_to_check(monkeypatch):
    monkeypatch.setenv("SQUEEZER_TABLE", "t")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # nothing listens on the discard port
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    result = run("admin", "list-tenants", expect=3)
    assert "AWS_ENDPOINT_URL" in result.stderr
