"""Tokens and tenants through the app (chalice's local gateway runs the authorizer, as API Gateway would)."""

import json

import pytest
from tenancy import TEST_TABLE, TenantClient, bearer, create_tenant, tenant_store

import app as squeezer_app
from chalicelib.tenants import Limits, TenantAdmin
from chalicelib.tokens import new_token

JSON = {"Content-Type": "application/json"}
JOB = json.dumps({"files": [{"name": "payroll/2026.csv", "size": 3}], "algorithm": "gzip"})


def error(response, status):
    assert response.status_code == status, response.body
    body = json.loads(response.body)
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}, body
    return body["error"]["code"], body["error"]["message"]


ROUTES = [
    ("POST", "/jobs", JOB),
    ("GET", "/jobs", b""),
    ("GET", "/jobs/j_x", b""),
    ("GET", "/jobs/j_x/summary", b""),
    ("DELETE", "/jobs/j_x", b""),
    ("POST", "/jobs/j_x/retry", "{}"),
]


@pytest.mark.parametrize(("method", "path", "payload"), ROUTES)
def test_every_job_route_needs_a_token(client, method, path, payload):
    no_token = client.http.request(method, path, headers={**JSON, "Authorization": None}, body=payload)
    code, message = error(no_token, 401)
    assert code == "missing_token" and "squeezer configure" in message
    for header in ("Bearer nonsense", f"Bearer {new_token()}", "Basic dXNlcjpwYXNz", f"Token {new_token()}"):
        refused = client.http.request(method, path, headers={**JSON, "Authorization": header}, body=payload)
        assert error(refused, 401)[0] == "invalid_token"


def test_the_index_needs_no_token(client):
    assert client.http.get("/", headers={"Authorization": None}).status_code == 200


def test_a_second_tenant_sees_nothing_of_the_first(client, moto_aws):
    created = json.loads(client.http.post("/jobs", headers=JSON, body=JOB).body)
    job_id = created["job_id"]
    bob = create_tenant(TEST_TABLE, "bob")
    with TenantClient(squeezer_app.app, bob, stage_name="test") as other:
        assert json.loads(other.http.get("/jobs").body)["jobs"] == []
        for method, path, payload in [
            ("GET", f"/jobs/{job_id}", b""),
            ("GET", f"/jobs/{job_id}/summary", b""),
            ("DELETE", f"/jobs/{job_id}", b""),
            ("POST", f"/jobs/{job_id}/retry", "{}"),
        ]:
            answer = other.http.request(method, path, headers=JSON, body=payload)
            code, message = error(answer, 404)
            assert code == "job_not_found" and "payroll" not in message
            missing = other.http.request(method, path.replace(job_id, "j_" + "0" * 32), headers=JSON, body=payload)
            assert error(missing, 404)[1].replace("j_" + "0" * 32, job_id) == message  # indistinguishable
        # a cursor from alice's listing does not page through bob's (or alice's) jobs
        for _ in range(2):
            client.http.post("/jobs", headers=JSON, body=JOB)
        cursor = json.loads(client.http.get("/jobs?limit=1").body)["next_cursor"]
        assert cursor
        assert error(other.http.get(f"/jobs?limit=1&cursor={cursor}"), 400)[0] == "invalid_cursor"
    status = json.loads(client.http.get(f"/jobs/{job_id}").body)
    assert status["state"] == "pending"  # bob's cancel did nothing


def test_rotated_and_revoked_tokens_stop_working(client, tenant):
    admin = TenantAdmin(tenant_store(TEST_TABLE))
    assert client.http.get("/jobs").status_code == 200
    rotated = admin.rotate("alice")
    assert error(client.http.get("/jobs"), 401)[0] == "invalid_token"
    assert client.http.get("/jobs", headers=bearer(rotated.token.__str__())).status_code == 200
    admin.revoke("alice")
    assert error(client.http.get("/jobs", headers=bearer(str(rotated.token))), 401)[0] == "invalid_token"


def test_over_a_quota_is_429_with_retry_after_and_the_limit(moto_aws):
    tight = create_tenant(TEST_TABLE, "tight", Limits(max_open_jobs=1, max_bytes_per_day=10))
    with TenantClient(squeezer_app.app, tight, stage_name="test") as client:
        assert client.http.post("/jobs", headers=JSON, body=JOB).status_code == 201
        refused = client.http.post("/jobs", headers=JSON, body=JOB)
        code, message = error(refused, 429)
        assert code == "quota_exceeded" and "1 at a time" in message
        assert int(refused.headers["Retry-After"]) > 0
        too_big = json.dumps({"files": [{"name": "a", "size": 11}], "algorithm": "gzip"})
        assert error(client.http.post("/jobs", headers=JSON, body=too_big), 400)[0] == "exceeds_quota"


def test_a_failing_authorizer_is_a_503_in_the_error_shape(client, monkeypatch):
    from chalicelib.tenantstore import DynamoTenantStore

    def unreachable(self, token_id):
        raise ConnectionError("dynamodb is down")

    monkeypatch.setattr(DynamoTenantStore, "get_token", unreachable)
    assert error(client.http.get("/jobs"), 503)[0] == "auth_unavailable"
