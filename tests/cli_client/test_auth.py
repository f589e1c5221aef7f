"""The token on the wire: sent to the API, never to storage, never shown; what a 401 tells the user."""

from __future__ import annotations

import logging

import pytest
from click.testing import CliRunner

from chalicelib.tokens import new_token
from client import config
from client.api import ApiClient
from client.cli import cli

from .conftest import Reply, scripted
from .test_upload_cli import FakeApi, make_tree


@pytest.fixture(autouse=True)
def quick_polls(monkeypatch):
    import client.jobs as jobs

    monkeypatch.setattr(jobs, "DEFAULT_POLL", jobs.Poll(first=0.01, cap=0.02))


def run(*args: str, expect: int = 0, env: dict[str, str] | None = None):
    result = CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)
    assert result.exit_code == expect, result.output
    assert "Traceback" not in result.output
    return result


@pytest.fixture
def api_and_storage(serve):
    """A fake API whose presigned URLs point at a second server, standing in for S3."""
    fake = FakeApi()
    api, storage = serve(fake), serve(fake)
    fake.url = storage.url
    return api, storage


def test_the_token_goes_to_the_api_and_never_to_storage(api_and_storage, tmp_path) -> None:
    api, storage = api_and_storage
    make_tree(tmp_path / "src")
    token = new_token()

    run("--api-url", api.url, "upload", str(tmp_path / "src"), "--download", str(tmp_path / "out"),
        env={"SQUEEZER_TOKEN": str(token)})  # fmt: skip

    assert {s.method for s in api.seen} == {"POST", "GET"}
    assert {s.headers.get("Authorization") for s in api.seen} == {f"Bearer {token}"}
    assert {s.method for s in storage.seen} == {"PUT", "GET"}
    assert len(storage.seen) == 8  # four uploads, four downloads
    for seen in storage.seen:
        assert "Authorization" not in seen.headers
        assert token.secret not in str(seen.headers) + seen.path


def test_a_redirect_to_another_host_does_not_carry_the_token(serve) -> None:
    elsewhere = serve(scripted(Reply.json(200, {"jobs": [], "next_cursor": None})))
    # Another host for requests: "localhost" instead of 127.0.0.1.
    target = elsewhere.url.replace("127.0.0.1", "localhost") + "/jobs"
    api = serve(scripted(Reply(302, b"", {"Location": target})))
    token = new_token()

    ApiClient(api.url, token=token).list_jobs()

    assert api.seen[0].headers["Authorization"] == f"Bearer {token}"
    assert "Authorization" not in elsewhere.seen[0].headers


def test_requests_debug_logging_does_not_show_the_token(serve, caplog) -> None:
    api = serve(scripted(Reply.json(200, {"jobs": [], "next_cursor": None})))
    token = new_token()
    with caplog.at_level(logging.DEBUG):
        ApiClient(api.url, token=token).list_jobs()
    assert caplog.records  # urllib3 did log the request
    assert token.secret not in caplog.text
    assert token.secret not in repr(token)


# -- a 401 ----------------------------------------------------------------------


def refusal(code: str) -> Reply:
    return Reply.json(401, {"error": {"code": code, "message": "the server's own words"}})


def test_missing_token_says_how_to_get_one(serve) -> None:
    api = serve(scripted(refusal("missing_token")))

    result = run("--api-url", api.url, "jobs", expect=3)

    assert result.output == (
        "Error: no token: run 'squeezer configure' or set SQUEEZER_TOKEN "
        "(an operator creates tokens with 'squeezer admin create-tenant')\n"
    )


def test_invalid_token_names_the_masked_token_and_what_to_do(serve, isolated_home) -> None:
    api = serve(scripted(refusal("invalid_token")))
    token = new_token()
    config.save_profile(config.config_path(), "default", api.url, token)

    result = run("status", "j_1", expect=3)

    assert result.output.startswith(
        f"Error: the API refused the token {token.masked}: it is unknown, rotated or revoked; "
        "get a new one from the operator and run 'squeezer configure' (this token came from profile 'default' in "
    )
    assert token.secret not in result.output
    assert len(result.output.splitlines()) == 1


def test_invalid_token_from_the_environment_says_it_overrides_the_config_file(serve) -> None:
    api = serve(scripted(refusal("invalid_token")))
    token = new_token()

    result = run("--api-url", api.url, "jobs", env={"SQUEEZER_TOKEN": str(token)}, expect=3)

    assert f"the API refused the token {token.masked}: " in result.output
    assert "(this token came from SQUEEZER_TOKEN, which comes before the config file)" in result.output
    assert token.secret not in result.output


def test_invalid_token_on_a_create_is_exit_3_too(serve, tmp_path) -> None:
    api = serve(scripted(refusal("invalid_token")))
    (tmp_path / "a.txt").write_text("hello")
    token = new_token()

    result = run("--api-url", api.url, "--token", str(token), "upload", str(tmp_path / "a.txt"), "--json", expect=3)

    assert "(this token came from --token, which comes before the config file)" in result.output
    assert result.stdout == ""


def test_missing_token_although_one_was_sent_points_at_the_way(serve) -> None:
    api = serve(scripted(refusal("missing_token")))
    token = new_token()
    result = run("--api-url", api.url, "--token", str(token), "jobs", expect=3)
    assert f"the API received no token although the client sent {token.masked}" in result.output
    assert "Authorization header" in result.output


def test_another_401_keeps_the_api_s_words(serve) -> None:
    api = serve(scripted(Reply.json(401, {"error": {"code": "unauthorized", "message": "go away"}})))
    result = run("--api-url", api.url, "jobs", expect=3)
    assert "Error: the API answered 401 unauthorized: go away" in result.output


# -- never shown ------------------------------------------------------------------


def test_the_token_appears_in_no_output(api_and_storage, tmp_path, isolated_home) -> None:
    api, _ = api_and_storage
    make_tree(tmp_path / "src")
    token = new_token()
    config.save_profile(config.config_path(), "default", api.url, token)

    outputs = [
        run("upload", str(tmp_path / "src"), "--wait", "--json"),
        run("status", "j_1", "--json"),
        run("status", "j_1"),
        run("jobs", "--json"),
        run("download", "j_1", "-o", str(tmp_path / "out"), "--json"),
        run("configure", "--list"),
        run("configure", "--list", "--json"),
        run("configure", "--api-url", api.url, "--token", str(token)),
        run("configure", "--api-url", api.url, "--token", str(token), "--json"),
        run("--help"),
        run("configure", "--help"),
    ]

    assert len(api.seen) > 5
    for result in outputs:
        assert token.secret not in result.output
    assert token.masked in outputs[5].output
