"""Presigned POST forms on LocalStack, which checks what moto ignores: the policy's
``content-length-range`` (a form bound to N bytes takes exactly N) and the
bound key and Content-Type. A form carrying the policy-bound
x-amz-checksum-sha256 field is accepted; LocalStack does not check the body
against it (the xfail below says so).
"""

from __future__ import annotations

import hashlib
import os

import pytest
import requests

pytestmark = pytest.mark.localstack


def _form(stack, key: str, data: bytes, *, sha256: bool = False):
    return stack.storage.presign_post(
        key,
        size=len(data),
        content_type="text/plain",
        sha256_hex=hashlib.sha256(data).hexdigest() if sha256 else None,
        expires_in=300,
    )


def _post(form, body: bytes, fields: dict[str, str] | None = None) -> requests.Response:
    return requests.post(form.url, data=fields or form.fields, files={"file": ("f.txt", body)}, timeout=30)


def _exists(stack, key: str) -> bool:
    return stack.storage.exists(key)


@pytest.mark.parametrize("delta", [-1, 1])
def test_a_form_refuses_a_file_of_another_size(stack, delta):
    data = os.urandom(1000)
    key = f"uploads/public/j_size/{'short' if delta < 0 else 'long'}"
    form = _form(stack, key, data)
    refused = _post(form, data[:delta] if delta < 0 else data + b"x")
    assert refused.status_code in (400, 403), refused.text
    assert "EntityToo" in refused.text  # EntityTooSmall / EntityTooLarge
    assert not _exists(stack, key)


def test_a_form_takes_the_declared_size_with_its_type(stack):
    data = os.urandom(1000)
    key = "uploads/public/j_ok/f"
    form = _form(stack, key, data, sha256=True)
    accepted = _post(form, data)
    assert accepted.status_code == 204, accepted.text
    head = stack.s3.head_object(Bucket=stack.cfg.bucket, Key=key)
    assert (head["ContentLength"], head["ContentType"]) == (1000, "text/plain")
    assert stack.s3.get_object(Bucket=stack.cfg.bucket, Key=key)["Body"].read() == data


def test_a_form_refuses_another_content_type_or_key(stack):
    data = b"hello"
    key = "uploads/public/j_bound/f"
    form = _form(stack, key, data)
    for name, value in (("Content-Type", "text/html"), ("key", "uploads/public/j_bound/other")):
        refused = _post(form, data, {**form.fields, name: value})
        assert refused.status_code == 403, (name, refused.text)
    assert not _exists(stack, key) and not _exists(stack, "uploads/public/j_bound/other")


@pytest.mark.xfail(
    strict=True,
    reason="LocalStack 2026.3.0 takes the policy-bound x-amz-checksum-sha256 field but does not check the body "
    "against it; whether S3 does for a POST as for a PUT is not verified on these machines",
)
def test_a_form_with_a_sha256_refuses_other_content(stack):
    data = b"the declared content"
    key = "uploads/public/j_sha/f"
    form = _form(stack, key, data, sha256=True)
    tampered = _post(form, b"the declared CONTENT")  # same size, other bytes
    assert tampered.status_code == 400, tampered.text
    assert not _exists(stack, key)
