"""The OpenAPI document: served as built from the models, valid 3.1, covering every route and every error code."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest
from openapi_spec_validator import validate

import app as squeezer_app
from chalicelib import errors, http, openapi, schemas, uploads
from chalicelib.wiring import get_settings

ROOT = Path(__file__).resolve().parents[2]
# The modules between a request and its answer; the worker's file error codes are not HTTP errors.
API_MODULES = ("http", "service", "uploads", "quotas", "schemas", "validation", "jobstore", "storage", "aws")


@pytest.fixture
def document():
    return openapi.build(get_settings())


def test_the_served_document_is_the_one_built_from_the_models(client, document):
    response = client.http.get("/openapi.json", headers={"Authorization": None})  # public: no token
    assert response.status_code == 200, response.body
    assert json.loads(response.body) == document


def test_the_document_is_valid_openapi_3_1(document):
    assert document["openapi"] == "3.1.0"
    validate(document)


def test_every_route_of_the_app_is_described_and_nothing_else():
    routes = {
        (method, path)
        for path, entries in squeezer_app.app.routes.items()
        for method in entries
        if method != "OPTIONS"  # CORS preflights are answered for every route, not operations of their own
    }
    described = {(op.method, op.path) for op in openapi.OPERATIONS}
    assert routes - described == set(), "routes missing from chalicelib/openapi.py OPERATIONS"
    assert described - routes == set(), "OPERATIONS that app.py does not serve"


def test_authorized_routes_are_the_ones_that_need_a_token(document):
    for path, entries in squeezer_app.app.routes.items():
        for method, entry in entries.items():
            if method == "OPTIONS":
                continue
            operation = document["paths"][path][method.lower()]
            needs_token = entry.authorizer is not None
            assert (operation["security"] == [{"bearer": []}]) == needs_token, (method, path)


def test_limits_come_from_the_settings(document):
    settings = get_settings()
    component = document["components"]["schemas"]
    assert component["FileIn"]["properties"]["size"]["maximum"] == settings.max_file_size
    assert component["CreateJobIn"]["properties"]["files"]["maxItems"] == settings.max_files_per_request
    assert component["AddFilesIn"]["properties"]["files"]["maxItems"] == settings.max_files_per_request


def _raised_codes() -> dict[str, int | None]:
    """Each error code the API's modules can raise, with the status of the error class that carries it."""
    status_of = {
        cls.__name__: cls.status
        for module in (errors, http, uploads)
        for cls in vars(module).values()
        if isinstance(cls, type) and issubclass(cls, errors.SqueezerError)
    }
    found: dict[str, int | None] = {}
    for name in API_MODULES:
        tree = ast.parse((ROOT / "chalicelib" / f"{name}.py").read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef) and node.name in status_of:
                for item in node.body:
                    if isinstance(item, ast.Assign) and [getattr(t, "id", "") for t in item.targets] == ["code"]:
                        found[ast.literal_eval(item.value)] = status_of[node.name]
            if not isinstance(node, ast.Call):
                continue
            func = getattr(node.func, "id", getattr(node.func, "attr", ""))
            for keyword in node.keywords:
                if keyword.arg == "code" and isinstance(keyword.value, ast.Constant):
                    found[keyword.value.value] = status_of.get(func)
            if func == "_error" and node.args and isinstance(node.args[0], ast.Constant):  # schemas.py's own codes
                found[node.args[0].value] = 400
            if func == "error_response" and len(node.args) >= 2 and isinstance(node.args[1], ast.Constant):
                found[node.args[1].value] = ast.literal_eval(node.args[0])
    return found


def test_every_error_code_the_api_raises_is_in_the_document_with_its_status():
    raised = _raised_codes()
    assert len(raised) > 30, "the scan found too few codes: has the code moved?"
    missing = sorted(code for code in raised if code not in openapi.ERROR_STATUS)
    assert missing == [], "codes the API raises that ERROR_STATUS does not list"
    wrong = {
        code: (status, openapi.ERROR_STATUS[code])
        for code, status in raised.items()
        if status is not None and openapi.ERROR_STATUS[code] != status
    }
    assert wrong == {}, "codes whose class status differs from the document's"


def test_each_operation_lists_its_codes_under_their_statuses(document):
    for op in openapi.OPERATIONS:
        responses = document["paths"][op.path][op.method.lower()]["responses"]
        for code in openapi.error_codes(op):
            status = str(openapi.ERROR_STATUS[code])
            enum = responses[status]["content"]["application/json"]["schema"]["properties"]["error"]["properties"]
            assert code in enum["code"]["enum"], (op.operation_id, code)


def test_a_model_error_code_is_a_documented_400():
    codes = {
        meta.code
        for model in (schemas.CreateJobIn, schemas.FileIn, schemas.SignPartsIn, schemas.PartIn, schemas.CompleteIn)
        for field in model.model_fields.values()
        for meta in field.metadata
        if isinstance(meta, schemas.Code)
    }
    assert codes and all(openapi.ERROR_STATUS[code] == 400 for code in codes)
