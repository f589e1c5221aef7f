"""``squeezer configure``: prompts, checks, keeps other profiles, lists with tokens masked."""

from __future__ import annotations

import json
import stat
import tomllib

import pytest
from click.testing import CliRunner

from chalicelib.tokens import new_token
from client import config
from client.cli import cli


def run(*args: str, expect: int = 0, input: str | None = None, env: dict[str, str] | None = None):
    result = CliRunner().invoke(cli, list(args), input=input, env=env, catch_exceptions=False)
    assert result.exit_code == expect, result.output
    assert "Traceback" not in result.output
    return result


@pytest.fixture
def path(isolated_home):
    return config.config_path()


def saved(path) -> dict:
    return tomllib.loads(path.read_text())["profiles"]


def test_configure_prompts_for_url_and_hidden_token(path) -> None:
    token = new_token()

    result = run("configure", input=f"https://api.example.com/\n{token}\n")

    assert saved(path) == {"default": {"api_url": "https://api.example.com", "token": str(token)}}
    assert "API URL [http://127.0.0.1:8000]: " in result.stderr
    assert "Token (input hidden): " in result.stderr
    assert token.secret not in result.output  # the hidden prompt did not echo it
    assert result.stdout == f"saved profile 'default' in {path}: https://api.example.com, token {token.masked}\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700


def test_configure_asks_again_for_a_malformed_token_without_showing_it(path) -> None:
    token = new_token()
    typo = str(token)[:-1]

    result = run("configure", "--api-url", "https://api.example.com", input=f"{typo}\n{token}\n")

    assert result.stderr.count("Token (input hidden): ") == 2
    assert (
        "Error: not a Squeezer token (expected sqz_<12 characters a-z0-9>_<43 characters base64url>)" in result.stderr
    )
    assert typo not in result.output
    assert saved(path)["default"]["token"] == str(token)


def test_configure_asks_again_for_a_bad_url(path) -> None:
    token = new_token()
    result = run("configure", "--token", str(token), input="api.example.com\nhttps://api.example.com\n")
    assert "Error: not an http(s) URL with a host name" in result.stderr
    assert saved(path)["default"]["api_url"] == "https://api.example.com"


def test_configure_again_offers_the_current_url_and_keeps_the_token_on_enter(path) -> None:
    token = new_token()
    run("configure", "--api-url", "https://api.example.com", "--token", str(token))

    result = run("configure", input="\n\n")

    assert "API URL [https://api.example.com]: " in result.stderr
    assert f"Token (input hidden; Enter keeps {token.masked}): " in result.stderr
    assert saved(path) == {"default": {"api_url": "https://api.example.com", "token": str(token)}}


def test_configure_a_named_profile_keeps_the_others(path) -> None:
    first, second, third = new_token(), new_token(), new_token()
    run("configure", "--api-url", "https://a.example", "--token", str(first))
    run("configure", "--profile", "work", "--api-url", "https://b.example", "--token", str(second))
    run("--profile", "home", "configure", "--api-url", "https://c.example", "--token", str(third))

    assert saved(path) == {
        "default": {"api_url": "https://a.example", "token": str(first)},
        "work": {"api_url": "https://b.example", "token": str(second)},
        "home": {"api_url": "https://c.example", "token": str(third)},
    }


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--token", "sqz_nope"], "Invalid value for '--token': not a Squeezer token"),
        (["--api-url", "ftp://x.example"], "Invalid value for '--api-url': not an http(s) URL"),
        (["--profile", "my work"], "profile name 'my work': use 1 to 64 letters"),
        (["--list", "--token", "sqz_nope"], "--list shows the profiles: it takes no --api-url or --token"),
    ],
)
def test_configure_refuses_bad_values_as_usage_errors(path, args, message) -> None:
    token = new_token()
    full = {"--token": str(token), "--api-url": "https://ok.example"}
    for given in args:
        full.pop(given, None)
    extra = [] if "--list" in args else [x for pair in full.items() for x in pair]
    result = run("configure", *args, *extra, expect=2)
    assert message in result.output
    assert "sqz_nope" not in result.output
    assert not path.exists()


def test_configure_warns_when_the_token_would_travel_unencrypted(path) -> None:
    token = new_token()
    plain = run("configure", "--api-url", "http://api.example.com", "--token", str(token))
    local = run("configure", "--api-url", "http://localhost:8000", "--token", str(token))
    assert "warning: http://api.example.com is not https" in plain.stderr
    assert "warning" not in local.stderr


def test_configure_list_shows_profiles_with_masked_tokens(path) -> None:
    a, b = new_token(), new_token()
    run("configure", "--api-url", "https://a.example", "--token", str(a))
    run("configure", "--profile", "work", "--api-url", "https://b.example", "--token", str(b))

    text = run("configure", "--list", env={"SQUEEZER_PROFILE": "work"})
    as_json = run("configure", "--list", "--json")

    assert text.stdout.splitlines() == [
        f"profiles in {path}:",
        f"  default  https://a.example  {a.masked}",
        f"* work     https://b.example  {b.masked}",
    ]
    assert json.loads(as_json.stdout) == {
        "path": str(path),
        "exists": True,
        "profiles": [
            {"name": "default", "api_url": "https://a.example", "token": a.masked, "active": True},
            {"name": "work", "api_url": "https://b.example", "token": b.masked, "active": False},
        ],
    }
    for result in (text, as_json):
        assert a.secret not in result.output and b.secret not in result.output


def test_configure_list_marks_a_malformed_token_without_showing_it(path) -> None:
    almost = str(new_token()) + "="
    path.parent.mkdir(parents=True)
    path.write_text(config.dump_toml({"profiles": {"default": {"token": almost}}}))
    path.chmod(0o600)

    result = run("configure", "--list")

    assert "  (no api_url)  (not a valid token)" in result.stdout
    assert almost not in result.output


def test_configure_list_without_a_file(path) -> None:
    assert "no config file at" in run("configure", "--list").stderr
    assert json.loads(run("configure", "--list", "--json").stdout) == {
        "path": str(path),
        "exists": False,
        "profiles": [],
    }


def test_configure_list_of_a_malformed_file_is_a_usage_error(path) -> None:
    path.parent.mkdir(parents=True)
    path.write_text("[profiles\n")
    result = run("configure", "--list", expect=2)
    assert f"config file {path}: not valid TOML" in result.output


def test_help_warns_about_tokens_on_the_command_line() -> None:
    for args in (["configure", "--help"], ["--help"]):
        text = " ".join(run(*args).output.split())
        assert "shell history" in text and "ps" in text, args
