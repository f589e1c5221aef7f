"""The upload page and the docs page: static files the app serves itself (chalicelib/web.py)."""

from __future__ import annotations

import json
import re
import urllib.parse
from html.parser import HTMLParser

import pytest

from chalicelib import web
from chalicelib.domain import ALGORITHM_SPECS, Algorithm

NO_TOKEN = {"Authorization": None}


def get(client, path, headers=None):
    return client.http.get(path, headers={**NO_TOKEN, **(headers or {})})


def directives(response) -> dict[str, list[str]]:
    policy = response.headers["Content-Security-Policy"]
    parsed = {}
    for directive in policy.split(";"):
        name, *values = directive.split()
        parsed[name] = values
    return parsed


def error_code(response) -> str:
    body = json.loads(response.body)
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}, body
    return body["error"]["code"]


@pytest.mark.parametrize(
    ("path", "content_type"),
    [
        ("/app", "text/html; charset=utf-8"),
        ("/app/app.js", "text/javascript; charset=utf-8"),
        ("/app/crc64nvme.js", "text/javascript; charset=utf-8"),
        ("/app/app.css", "text/css; charset=utf-8"),
        ("/app/favicon.svg", "image/svg+xml"),
        ("/docs", "text/html; charset=utf-8"),
        ("/docs/init.js", "text/javascript; charset=utf-8"),
        ("/docs/swagger-ui-bundle.js", "text/javascript; charset=utf-8"),
        ("/docs/swagger-ui.css", "text/css; charset=utf-8"),
    ],
)
def test_pages_and_assets_are_served_without_a_token(client, path, content_type):
    response = get(client, path)
    assert response.status_code == 200, f"{path}: {response.body[:300]!r} (Swagger UI: run 'make web-assets')"
    assert response.headers["Content-Type"] == content_type
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert response.headers["ETag"].startswith('"')
    assert response.headers["Cache-Control"]
    assert response.body


@pytest.mark.parametrize("page", ["/app", "/docs"])
def test_the_policy_allows_no_inline_script_and_nothing_from_elsewhere(client, page):
    policy = directives(get(client, page))
    assert policy["default-src"] == ["'none'"]
    assert policy["script-src"] == ["'self'"]
    assert policy["frame-ancestors"] == ["'none'"]
    assert policy["base-uri"] == ["'none'"]
    origins = [value for name, values in policy.items() for value in values if "://" in value]
    # another origin only for the upload page's transfers to storage (the test below)
    assert origins == (policy["connect-src"][1:] if page == "/app" else [])
    assert not any("*" in values or "'unsafe-eval'" in values for values in policy.values())


def test_the_upload_page_may_connect_to_where_the_presigned_urls_point(client):
    created = client.http.post(
        "/jobs",
        headers={"Content-Type": "application/json"},
        body=json.dumps({"files": [{"name": "a.txt", "size": 3}]}),
    )
    assert created.status_code == 201, created.body
    upload_url = json.loads(created.body)["files"][0]["upload"]["url"]
    policy = directives(get(client, "/app"))
    assert policy["connect-src"] == ["'self'", web.origin(upload_url)]
    assert policy["style-src"] == ["'self'"]  # the upload page needs no inline style either


def test_docs_allow_only_what_swagger_ui_needs(client):
    policy = directives(get(client, "/docs"))
    assert policy["connect-src"] == ["'self'"]  # the spec and "try it out": this API only
    assert policy["style-src"] == ["'self'"]  # its styles come from its CSS file and the CSSOM
    assert policy["img-src"] == ["'self'", "data:"]  # icons as data: URLs in its CSS


@pytest.mark.parametrize(
    "path",
    [
        "/app/nothing.js",
        "/app/README",  # no known extension
        "/app/index.json",
        "/app/.hidden.js",
        "/app/..%2Fweb.py",
        "/app/%2E%2E%2Fapp.py",
        "/app/..",
        "/docs/..%2F..%2Fapp.js",
        "/docs/app.js",  # the upload page's asset is not the docs'
        "/app/swagger-ui-bundle.js",  # nor the docs' the upload page's
        "/docs/package.json",
        "/app/LICENSE.txt",
    ],
)
def test_unknown_assets_and_traversal_are_404_in_the_error_shape(client, path):
    response = get(client, path)
    assert response.status_code == 404, response.body
    assert error_code(response) == "not_found"
    assert response.headers["Content-Type"] == "application/json"


@pytest.mark.parametrize("name", ["../web.py", "../../app.py", "/etc/passwd", "app/../app.js", "a\\b.js", ""])
def test_names_that_are_not_one_clean_segment_are_refused_before_any_lookup(name):
    with pytest.raises(web.AssetNotFound):
        web.find_asset(web.PAGES["app"], name)


@pytest.mark.parametrize("page", ["app", "docs"])
def test_a_page_asked_for_with_a_trailing_slash_redirects_to_itself(client, page):
    # API Gateway routes /api/app/ to /app, where app/app.js would resolve to /api/app/app/app.js
    response = get(client, f"/{page}/")
    assert response.status_code == 301
    assert response.headers["Location"] == f"../{page}"
    assert urllib.parse.urljoin(f"https://example.com/api/{page}/", f"../{page}") == f"https://example.com/api/{page}"


def test_an_unchanged_asset_is_a_304(client):
    first = get(client, "/app/app.js")
    again = get(client, "/app/app.js", {"If-None-Match": first.headers["ETag"]})
    assert again.status_code == 304 and not again.body
    changed = get(client, "/app/app.js", {"If-None-Match": '"something-else"'})
    assert changed.status_code == 200


def test_swagger_ui_files_are_cached_longer_than_ours(client):
    assert get(client, "/docs/swagger-ui-bundle.js").headers["Cache-Control"] == web.VENDOR_CACHE
    assert get(client, "/app/app.js").headers["Cache-Control"] == "no-cache"
    assert get(client, "/app").headers["Cache-Control"] == "no-cache"


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.inline_scripts = 0
        self.handlers: list[str] = []
        self.options: dict[str, dict[str, str]] = {}
        self._in_script = False

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        self.handlers += [name for name in attributes if name.startswith("on")]
        for name in ("src", "href"):
            if attributes.get(name):
                self.urls.append(attributes[name])
        if tag == "script":
            self._in_script = True
            assert attributes.get("src"), "a script without src is inline"
        if tag == "option":
            self.options[attributes["value"]] = attributes

    def handle_endtag(self, tag):
        self._in_script = self._in_script and tag != "script"

    def handle_data(self, data):
        if self._in_script and data.strip():
            self.inline_scripts += 1


@pytest.mark.parametrize("page", ["app", "docs"])
def test_pages_use_relative_urls_and_no_inline_script(client, page):
    parsed = _Page()
    parsed.feed(get(client, f"/{page}").body.decode())
    assert parsed.inline_scripts == 0 and parsed.handlers == []
    for url in parsed.urls:
        assert not urllib.parse.urlsplit(url).scheme and not url.startswith("/"), url
        # served from the page's prefix, e.g. app/app.js under .../app
        if "." in url and "/" in url:
            assert get(client, f"/{url}").status_code == 200, url


def test_the_pages_scripts_use_no_absolute_api_paths():
    for name in ("app.js", "crc64nvme.js"):
        source = (web.WEB_ROOT / "app" / name).read_text()
        assert not re.search(r"""["'`]/(jobs|openapi)""", source), name
    assert "localStorage" not in (web.WEB_ROOT / "app" / "app.js").read_text()


def test_the_level_choices_are_the_services(client):
    parsed = _Page()
    parsed.feed(get(client, "/app").body.decode())
    assert set(parsed.options) == {algorithm.value for algorithm in Algorithm}
    for algorithm, spec in ALGORITHM_SPECS.items():
        option = parsed.options[algorithm.value]
        assert (int(option["data-min"]), int(option["data-max"])) == spec.levels
        assert int(option["data-default"]) == spec.default_level
