"""The web pages the app serves itself: the upload page (``/app``) and the API docs (``/docs``).

Each page is a folder of static files under ``chalicelib/web/`` (chalice
package copies ``chalicelib/`` into the Lambda bundle, so they ship with the
app), plus shared files (``common/``) and, for the docs, Swagger UI from the
npm package pinned in ``package.json`` (``make web-assets`` copies it into
``web/vendor/``, gitignored). No CDN: the pages work offline.

An asset name is one path segment of letters, digits, ``.``, ``_`` and
``-`` that starts with a letter or digit and ends in a known extension, and
it is looked up by name in the page's folders: nothing outside them can be
named, so no path traversal. Every answer carries a Content-Security-Policy
without inline scripts; the upload page may connect to the API (``'self'``)
and to the origin the presigned URLs point at (S3, or the local emulator).
"""

from __future__ import annotations

import functools
import hashlib
import re
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from chalice.app import Response

from .errors import SqueezerError

WEB_ROOT = Path(__file__).resolve().parent / "web"
VENDOR = WEB_ROOT / "vendor"

CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}
_ASSET_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
INDEX = "index.html"

# Our own files change with each deployment and are not fingerprinted: the
# browser asks again each time and gets a 304 while the ETag matches. Swagger
# UI's files change only with its pinned version.
REVALIDATE = "no-cache"
VENDOR_CACHE = "public, max-age=86400"

# What each page may load: nothing inline, nothing from elsewhere. Swagger UI
# draws its icons from data: URLs (img-src data:); its styles are in its CSS
# file and set from script through the CSSOM, which style-src does not govern,
# so it needs no 'unsafe-inline' (tests/e2e/test_browser.py fails on any
# violation, with every operation expanded).
_BASE_POLICY = {
    "default-src": "'none'",
    "script-src": "'self'",
    "style-src": "'self'",
    "img-src": "'self'",
    "connect-src": "'self'",
    "base-uri": "'none'",
    "form-action": "'none'",
    "frame-ancestors": "'none'",
}
_PAGE_POLICY = {
    "app": {},
    "docs": {"img-src": "'self' data:"},
}


class AssetNotFound(SqueezerError):
    status = 404
    code = "not_found"


@dataclass(frozen=True)
class Page:
    """A page: its folders, searched in order for an asset's name."""

    name: str
    folders: tuple[Path, ...]


PAGES = {
    "app": Page("app", (WEB_ROOT / "app", WEB_ROOT / "common")),
    "docs": Page("docs", (WEB_ROOT / "docs", VENDOR / "swagger-ui", WEB_ROOT / "common")),
}


@dataclass(frozen=True)
class Asset:
    body: str
    content_type: str
    etag: str
    cache_control: str


def origin(url: str) -> str:
    """``scheme://host[:port]`` of a URL."""
    parts = urllib.parse.urlsplit(url)
    if not parts.scheme or not parts.netloc:
        raise ValueError(f"not an absolute URL: {url!r}")
    return f"{parts.scheme}://{parts.netloc}"


def content_security_policy(page: str, *, storage_origin: str) -> str:
    """The page's policy; ``storage_origin`` is where presigned URLs point (the upload page sends files there)."""
    policy = {**_BASE_POLICY, **_PAGE_POLICY[page]}
    if page == "app":
        policy["connect-src"] = f"'self' {storage_origin}"
    return "; ".join(f"{directive} {value}" for directive, value in policy.items())


class WebPages:
    """Answers ``GET /<page>`` and ``GET /<page>/<asset>`` from the page's folders."""

    def __init__(self, *, storage_origin: str, pages: Mapping[str, Page] = PAGES) -> None:
        self._storage_origin = origin(storage_origin)
        self._pages = pages

    def respond(self, page: str, asset: str | None, headers: Mapping[str, str], *, path: str = "") -> Response:
        """The asset (the page itself when ``asset`` is None), or 304 when ``If-None-Match`` has its ETag.

        ``path`` is the path the browser asked for: API Gateway (and ``chalice
        local``) route ``/app/`` to ``/app``, where the page's relative URLs
        would resolve one folder too deep, so that is a redirect to ``../app``.
        """
        if asset is None and path.endswith("/"):
            return Response(body="", status_code=301, headers={"Location": f"../{page}", "Cache-Control": REVALIDATE})
        found = find_asset(self._pages[page], INDEX if asset is None else asset)
        response_headers: dict[str, str | list[str]] = {
            "Content-Type": found.content_type,
            "Cache-Control": found.cache_control,
            "ETag": found.etag,
            "Content-Security-Policy": content_security_policy(page, storage_origin=self._storage_origin),
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer",
        }
        if found.etag in _etags(headers.get("if-none-match")):
            return Response(body="", status_code=304, headers=response_headers)
        return Response(body=found.body, status_code=200, headers=response_headers)


def find_asset(page: Page, name: str) -> Asset:
    """The asset called ``name`` in the page's folders, or AssetNotFound."""
    suffix = Path(name).suffix
    if not _ASSET_NAME.fullmatch(name) or suffix not in CONTENT_TYPES:
        raise AssetNotFound(f"{page.name} has no asset {name!r}")
    for folder in page.folders:
        asset = _load(folder / name)
        if asset is not None:
            return asset
    if page.name == "docs" and not (VENDOR / "swagger-ui").is_dir():
        raise AssetNotFound(f"docs has no asset {name!r}: Swagger UI is not installed (run 'make web-assets')")
    raise AssetNotFound(f"{page.name} has no asset {name!r}")


@functools.lru_cache(maxsize=64)
def _load(path: Path) -> Asset | None:
    """A file's text and ETag, read once per process (the files ship with the code)."""
    try:
        raw = path.read_bytes()
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return None
    return Asset(
        body=raw.decode("utf-8"),
        content_type=CONTENT_TYPES[path.suffix],
        etag='"' + hashlib.sha256(raw).hexdigest()[:32] + '"',
        cache_control=VENDOR_CACHE if VENDOR in path.parents else REVALIDATE,
    )


def _etags(header: str | None) -> set[str]:
    if not header:
        return set()
    return {tag.strip().removeprefix("W/") for tag in header.split(",")}
