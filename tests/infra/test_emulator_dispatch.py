"""The emulator's dispatch patch (infra.local.moto_patches._remember_backends_by_host): moto's answer, found once per host."""

from __future__ import annotations

import pytest
from moto.moto_server import werkzeug_app

from infra.local import moto_patches

HOSTS = [
    "s3.us-east-1.amazonaws.com",
    "dynamodb",
    "sqs.eu-west-1.amazonaws.com",
    "s3",
    "moto_api",
    "bucket.s3.us-east-1.amazonaws.com",
]


@pytest.fixture
def dispatcher(monkeypatch):
    """A dispatcher of the patched class; moto's own method put back after the test, and a count of its calls."""
    cls = werkzeug_app.DomainDispatcherApplication
    original = cls.__dict__["get_backend_for_host"]
    calls: list[str | None] = []

    def counting(self, host):
        calls.append(host)
        return original(self, host)

    monkeypatch.setattr(cls, "get_backend_for_host", counting)
    expected = {host: original(cls(create_app=lambda backend: None), host) for host in HOSTS}
    moto_patches._remember_backends_by_host()
    return cls(create_app=lambda backend: None), expected, calls


def test_each_host_gets_the_backend_moto_finds_and_is_looked_up_once(dispatcher):
    patched, expected, calls = dispatcher
    assert None not in expected.values()

    for _ in range(3):
        assert {host: patched.get_backend_for_host(host) for host in HOSTS} == expected

    assert sorted(calls) == sorted(HOSTS)  # moto's lookup (a folder listing, every pattern) once per host


def test_unknown_hosts_are_asked_each_time_and_none_stays_none(dispatcher):
    patched, _, calls = dispatcher

    assert patched.get_backend_for_host(None) is None
    assert patched.get_backend_for_host("example.org") is None
    assert patched.get_backend_for_host("example.org") is None

    assert calls == ["example.org", "example.org"]


def test_applying_twice_wraps_once(dispatcher):
    patched, expected, calls = dispatcher
    moto_patches._remember_backends_by_host()

    patched.get_backend_for_host("dynamodb")
    patched.get_backend_for_host("dynamodb")

    assert calls == ["dynamodb"]
