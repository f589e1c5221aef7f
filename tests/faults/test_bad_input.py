"""Fault: bad input that used to get through, and errors that came in other shapes.

Before: a sha256 with a trailing newline was accepted (then the right upload
always failed checksum_mismatch); JSON nested 1,000 deep answered 500; a
content_type with CR/LF, a tab or non-ASCII was accepted and its upload
headers could not be sent; unknown routes, wrong methods and some 415s came
in Chalice's or API Gateway's shapes.
"""

from __future__ import annotations

import hashlib
import json

import pytest
from chalice.test import Client
from tenancy import TenantClient, create_tenant

import app as squeezer_app
from chalicelib.http import MAX_BODY_BYTES, MAX_JSON_DEPTH, chalice_errors

JSON = {"Content-Type": "application/json"}
SHA = hashlib.sha256(b"x").hexdigest()


@pytest.fixture(scope="module")
def client():
    import boto3
    from moto import mock_aws

    from chalicelib import wiring
    from infra.resources import create_resources, stage_config

    TEST_STAGE = stage_config("test")

    with mock_aws():
        session = boto3.session.Session(region_name="us-east-1")
        create_resources(
            TEST_STAGE,
            s3=session.client("s3"),
            sqs=session.client("sqs"),
            dynamodb=session.client("dynamodb"),
            region="us-east-1",
            enforce_tls=False,
        )
        wiring.reset()
        tenant = create_tenant(TEST_STAGE.table, "alice")
        with TenantClient(squeezer_app.app, tenant, stage_name="test") as chalice_client:
            yield chalice_client
        wiring.reset()


def error_of(response, status):
    assert response.status_code == status, response.body
    body = json.loads(response.body)
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}, body
    assert body["error"]["message"]
    return body["error"]["code"]


def post(client, file_fields):
    body = {"files": [{"name": "a.txt", "size": 1, **file_fields}]}
    return client.http.post("/jobs", headers=JSON, body=json.dumps(body))


@pytest.mark.parametrize("sha256", [SHA + "\n", SHA + " ", " " + SHA, SHA[:-1], SHA + "0", "g" * 64])
def test_sha256_must_be_exactly_64_hex_characters(client, sha256):
    assert error_of(post(client, {"sha256": sha256}), 400) == "invalid_sha256"


def test_a_well_formed_sha256_is_accepted_in_either_case(client):
    assert post(client, {"sha256": SHA.upper()}).status_code == 201


@pytest.mark.parametrize(
    "content_type",
    [
        "text/plain\r\nX-Evil: 1",
        "text/plain\n",
        "text/plain\t",
        "text/\tplain",
        "text/pläin",
        'text/plain; a="ü"',
        'text/plain; a="\r\n"',
        "text",
        "text/",
        "/plain",
        "text/plain;a",
        "text/plain; a=b c",
        "x" * 250 + "/plain",
        "text/plain; ",  # a header value cannot end in a space: it would arrive trimmed
    ],
)
def test_content_type_follows_rfc_9110_in_visible_ascii(client, content_type):
    assert error_of(post(client, {"content_type": content_type}), 400) == "invalid_content_type"


@pytest.mark.parametrize(
    "content_type",
    [
        "text/plain",
        "application/vnd.api+json",
        "text/plain; charset=utf-8",
        'text/plain; charset="utf-8"',
        "text/plain;charset=utf-8;format=flowed",
        "application/x-ndjson",
        'multipart/mixed; boundary="a b"',
    ],
)
def test_valid_media_types_are_accepted_and_sent_back_as_the_upload_header(client, content_type):
    response = post(client, {"content_type": content_type})
    assert response.status_code == 201, response.body
    headers = json.loads(response.body)["files"][0]["upload"]["headers"]
    assert headers["Content-Type"] == content_type
    content_type.encode("ascii")  # sendable as an HTTP header


def test_deeply_nested_json_is_a_400(client):
    for depth in (MAX_JSON_DEPTH + 1, 1000, 100_000):
        for body in ("[" * depth + "]" * depth, '{"a":' * depth + "1" + "}" * depth):
            assert error_of(client.http.post("/jobs", headers=JSON, body=body), 400) == "json_too_deep"
    # never closed: too deep for the parser long before it finds the end
    assert error_of(client.http.post("/jobs", headers=JSON, body="[" * 1000), 400) == "json_too_deep"


def test_nesting_up_to_the_limit_is_only_a_shape_error(client):
    body = "[" * MAX_JSON_DEPTH + "]" * MAX_JSON_DEPTH
    assert error_of(client.http.post("/jobs", headers=JSON, body=body), 400) == "invalid_body"


@pytest.mark.parametrize(
    "body",
    [
        b"{",
        b"not json",
        b'{"files": "\xff"}',
        b'{"files": [{"name": "a", "size": ' + b"9" * 5000 + b"}]}",
    ],
)
def test_malformed_json_is_invalid_json_without_python_internals(client, body):
    response = client.http.post("/jobs", headers=JSON, body=body)
    assert error_of(response, 400) == "invalid_json"
    assert "sys." not in json.loads(response.body)["error"]["message"]


def test_an_oversized_body_is_a_413(client):
    body = json.dumps({"files": [{"name": "a", "size": 1}], "pad": "x" * MAX_BODY_BYTES})
    assert error_of(client.http.post("/jobs", headers=JSON, body=body), 413) == "body_too_large"


def test_a_large_legitimate_job_fits_the_body_limit(client):
    files = [
        {
            "name": f"logs/2026/12/04/service-{i:05d}.jsonl",
            "size": 123456,
            "sha256": SHA,
            "content_type": "application/x-ndjson",
        }
        for i in range(1000)
    ]
    assert len(json.dumps({"files": files})) < MAX_BODY_BYTES


def test_unknown_routes_wrong_methods_and_media_types_answer_in_the_error_shape(client):
    assert error_of(client.http.get("/nope"), 404) == "not_found"
    assert error_of(client.http.get("/jobs/j_1/nope/deeper"), 404) == "not_found"
    assert error_of(client.http.put("/jobs", headers=JSON, body="{}"), 405) == "method_not_allowed"
    assert error_of(client.http.patch("/jobs/j_1", headers=JSON, body="{}"), 405) == "method_not_allowed"
    xml = client.http.post("/jobs", headers={"Content-Type": "application/xml"}, body="<a/>")
    assert error_of(xml, 415) == "unsupported_media_type"
    form = client.http.post("/jobs", headers={"Content-Type": "text/plain"}, body="{}")
    assert error_of(form, 415) == "unsupported_media_type"
    # the same message whether Chalice's route check or the handler refused the type
    for response, sent in ((xml, "application/xml"), (form, "text/plain")):
        assert json.loads(response.body)["error"]["message"] == f"send the body as application/json, not {sent!r}"
    charset = client.http.post(
        "/jobs",
        headers={"Content-Type": "application/json; charset=utf-8"},
        body=json.dumps({"files": [{"name": "a", "size": 1}]}),
    )
    assert charset.status_code == 201, charset.body


def test_every_chalice_error_comes_out_in_the_error_shape():
    """Chalice's view errors and an exception no handler caught: our shape, never Chalice's {Code, Message}."""
    from chalice import Chalice, ConflictError, TooManyRequestsError

    app = Chalice(app_name="shapes")
    app.register_middleware(chalice_errors, "http")

    @app.route("/conflict")
    def conflict():
        raise ConflictError("already there")

    @app.route("/busy")
    def busy():
        raise TooManyRequestsError("slow down")

    @app.route("/boom")
    def boom():
        raise RuntimeError("secret detail")

    @app.middleware("http")
    def failing_middleware(event, get_response):
        if event.path == "/broken-middleware":
            raise RuntimeError("secret detail")
        return get_response(event)

    @app.route("/broken-middleware")
    def never():
        return {}

    with Client(app) as shapes:
        assert error_of(shapes.http.get("/conflict"), 409) == "conflict"
        assert error_of(shapes.http.get("/busy"), 429) == "throttled"
        for path in ("/boom", "/broken-middleware"):
            response = shapes.http.get(path)
            assert error_of(response, 500) == "internal_error"
            assert b"secret detail" not in response.body


def test_a_file_the_worker_cannot_compress_in_time_is_refused_at_the_door(client):
    """Before, 5 GiB at brotli 9 (about 75 minutes against Lambda's 15) was accepted and failed hours later."""
    # the test stage gives its worker 60 s (budget 30 s): 1 GiB at brotli 11 needs hours, at level 1 about 17 s
    body = {"files": [{"name": "dump.sql", "size": 1024**3}], "algorithm": "brotli", "level": 11}
    response = client.http.post("/jobs", headers=JSON, body=json.dumps(body))
    assert error_of(response, 400) == "exceeds_time_budget"
    message = json.loads(response.body)["error"]["message"]
    assert "dump.sql" in message and "brotli level 11" in message and "or lower" in message
    body["level"] = 1
    assert client.http.post("/jobs", headers=JSON, body=json.dumps(body)).status_code == 201
