"""Tenants for tests: create one in moto's table, and a chalice test client that sends its token."""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import requests
from chalice.test import Client, TestHTTPClient

from chalicelib.tenants import IssuedToken, Limits, TenantAdmin
from chalicelib.tenantstore import DynamoTenantStore
from client.config import LOCAL_STACK_TOKEN_FILE, read_local_stack_token
from infra.resources import stage_config


def tenant_store(table_name: str, **client_options: Any) -> DynamoTenantStore:
    session = boto3.session.Session(region_name="us-east-1")
    return DynamoTenantStore(session.resource("dynamodb", **client_options).Table(table_name))


# Tests create many jobs that they never finish: room for them unless a test is about the limit.
ROOMY = Limits(max_open_jobs=100_000)


def create_tenant(table_name: str, name: str, limits: Limits = ROOMY, **client_options: Any) -> IssuedToken:
    return TenantAdmin(tenant_store(table_name, **client_options)).create(name, limits)


def bearer(issued: IssuedToken | str) -> dict[str, str]:
    token = issued if isinstance(issued, str) else str(issued.token)
    return {"Authorization": f"Bearer {token}"}


class _TokenHTTPClient(TestHTTPClient):
    """Sends ``Authorization: Bearer <token>`` unless the test passes its own Authorization (or None)."""

    def __init__(self, app: Any, config: Any, token: str) -> None:
        super().__init__(app, config)
        self._token = token

    def request(self, method: str, path: str, headers: dict[str, str] | None = None, body: bytes = b"") -> Any:
        headers = dict(headers or {})
        if not any(name.lower() == "authorization" for name in headers):
            headers["Authorization"] = f"Bearer {self._token}"
        headers = {name: value for name, value in headers.items() if value is not None}
        return super().request(method, path, headers=headers, body=body)


class TenantClient(Client):
    """chalice.test.Client acting as one tenant. ``Authorization: None`` in a request's headers sends none."""

    def __init__(self, app: Any, issued: IssuedToken | str, **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        self.token = issued if isinstance(issued, str) else str(issued.token)

    @property
    def http(self) -> TestHTTPClient:
        if self._http_client is None:
            self._http_client = _TokenHTTPClient(self._app, self._chalice_config, self.token)
        return self._http_client


def upload_key(file_entry: dict[str, Any]) -> str:
    """The S3 key a created file's presigned upload goes to (a form's ``key`` field, or a path-style URL: /<bucket>/<key>)."""
    if file_entry["upload"].get("fields"):
        return str(file_entry["upload"]["fields"]["key"])
    path = urllib.parse.urlparse(file_entry["upload"]["url"]).path
    return urllib.parse.unquote(path).split("/", 2)[2]


TEST_TABLE = stage_config("test").table


@dataclass(frozen=True)
class Api:
    """The API of a running local stack over real HTTP, as its dev tenant (presigned URLs go without it)."""

    url: str
    token: str

    @classmethod
    def of(cls, stack: Any) -> Api:
        return cls(stack.api_url, stack.token)

    @classmethod
    def from_state(cls, url: str, state_dir: Path) -> Api:
        """The stack whose runner wrote ``dev-tenant.json`` in ``state_dir``."""
        saved = read_local_stack_token(Path(state_dir) / LOCAL_STACK_TOKEN_FILE)
        assert saved is not None, f"no dev token in {state_dir}"
        return cls(url, str(saved.token))

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        headers = {"Authorization": f"Bearer {self.token}", **kwargs.pop("headers", {})}
        kwargs.setdefault("timeout", 10)
        return requests.request(method, f"{self.url}{path}", headers=headers, **kwargs)

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("POST", path, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("DELETE", path, **kwargs)
