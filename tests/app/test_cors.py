"""CORS through chalice.test.Client: allowed origins get the headers, other origins and unconfigured stages none.

The origins come from SQUEEZER_CORS_ORIGINS (Settings.cors_origins); a
preflight is an OPTIONS without a token, on every route (chalicelib/cors.py).
"""

import json

import pytest
from chalice.test import Client

import app as squeezer_app
from chalicelib import wiring

PAGE = "https://page.example.com"
OTHER = "http://127.0.0.1:8000"
CORS_HEADERS = {
    "access-control-allow-origin",
    "access-control-allow-methods",
    "access-control-allow-headers",
    "access-control-expose-headers",
    "access-control-max-age",
}


@pytest.fixture
def origins(monkeypatch, moto_aws):
    def configure(value):
        monkeypatch.setenv("SQUEEZER_CORS_ORIGINS", value)
        wiring.reset()  # settings are read once per process

    return configure


def cors_headers(response):
    return {k.lower(): v for k, v in response.headers.items() if k.lower() in CORS_HEADERS}


def create(client, origin):
    body = json.dumps({"files": [{"name": "a.txt", "size": 1}]})
    return client.http.post("/jobs", headers={"Content-Type": "application/json", "Origin": origin}, body=body)


def test_an_allowed_origin_gets_its_own_origin_back_and_the_exposed_headers(client, origins):
    origins(f"{OTHER}, {PAGE}")
    response = create(client, PAGE)
    assert response.status_code == 201, response.body
    assert cors_headers(response) == {
        "access-control-allow-origin": PAGE,
        "access-control-expose-headers": "Location, Retry-After",
    }
    assert response.headers["Vary"] == "Origin"
    # also on the app's errors, and on routes without an authorizer
    missing = client.http.get("/jobs/j_nope", headers={"Origin": PAGE})
    assert missing.status_code == 404 and cors_headers(missing)["access-control-allow-origin"] == PAGE
    assert cors_headers(client.http.get("/", headers={"Origin": OTHER}))["access-control-allow-origin"] == OTHER


def test_another_origin_gets_no_cors_headers(client, origins):
    origins(PAGE)
    response = create(client, "https://evil.example.com")
    assert response.status_code == 201
    assert cors_headers(response) == {}
    assert response.headers["Vary"] == "Origin"  # the answer depends on the origin: caches must know
    assert cors_headers(create(client, PAGE + ".evil.com")) == {}  # exact match, not a prefix


def test_no_origins_configured_no_cors_headers(client, origins):
    origins("")
    response = create(client, PAGE)
    assert response.status_code == 201
    assert cors_headers(response) == {} and "Vary" not in response.headers
    preflight = client.http.request(
        "OPTIONS", "/jobs", headers={"Origin": PAGE, "Access-Control-Request-Method": "POST"}
    )
    assert preflight.status_code == 204 and cors_headers(preflight) == {}


@pytest.mark.parametrize(
    ("path", "method", "allowed"),
    [
        ("/jobs", "POST", "GET, POST"),
        ("/jobs/j_x", "DELETE", "DELETE, GET"),
        ("/jobs/j_x/files/f_y/upload", "POST", "DELETE, POST"),
        ("/", "GET", "GET"),
    ],
)
def test_a_preflight_needs_no_token_and_names_the_routes_methods(moto_aws, origins, path, method, allowed):
    origins(PAGE)
    with Client(squeezer_app.app, stage_name="test") as anonymous:  # a browser's preflight carries no token
        response = anonymous.http.request(
            "OPTIONS",
            path,
            headers={
                "Origin": PAGE,
                "Access-Control-Request-Method": method,
                "Access-Control-Request-Headers": "authorization,content-type",
            },
        )
    assert response.status_code == 204, response.body
    assert cors_headers(response) == {
        "access-control-allow-origin": PAGE,
        "access-control-allow-methods": allowed,
        "access-control-allow-headers": "Authorization, Content-Type",
        "access-control-expose-headers": "Location, Retry-After",
        "access-control-max-age": "3000",
    }
    assert response.headers["Allow"] == f"{allowed}, OPTIONS"


def test_a_preflight_from_another_origin_or_for_another_method_allows_nothing(moto_aws, origins):
    origins(PAGE)
    with Client(squeezer_app.app, stage_name="test") as anonymous:
        other = anonymous.http.request(
            "OPTIONS", "/jobs", headers={"Origin": OTHER, "Access-Control-Request-Method": "POST"}
        )
        wrong_method = anonymous.http.request(
            "OPTIONS", "/jobs", headers={"Origin": PAGE, "Access-Control-Request-Method": "PUT"}
        )
    assert other.status_code == 204 and cors_headers(other) == {}
    assert "access-control-allow-methods" not in cors_headers(wrong_method)


def test_every_route_answers_a_preflight_without_an_authorizer():
    for path, methods in squeezer_app.app.routes.items():
        assert "OPTIONS" in methods, path
        assert methods["OPTIONS"].authorizer is None, path
