"""Where the client finds its API URL and token: client/config.py, seen through the CLI where it can be.

Each test has its own HOME and no SQUEEZER_* variables (conftest.isolated_home).
A fake API records the Authorization header of each request.
"""

from __future__ import annotations

import json
import os
import stat
import tomllib
from pathlib import Path

import pytest
from click.testing import CliRunner

from chalicelib.tokens import Token, new_token
from client import config
from client.cli import cli

from .conftest import Reply, scripted

NO_JOBS = Reply.json(200, {"jobs": [], "next_cursor": None})


def run(*args: str, expect: int = 0, env: dict[str, str] | None = None):
    result = CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)
    assert result.exit_code == expect, result.output
    assert "Traceback" not in result.output
    return result


def sent_tokens(server) -> list[str | None]:
    return [seen.headers.get("Authorization") for seen in server.seen]


def bearer(token: Token) -> str:
    return f"Bearer {token}"


def write_config(path: Path, text: str, mode: int = 0o600) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(mode)
    return path


def profiles_toml(**profiles: dict[str, str]) -> str:
    return config.dump_toml({"profiles": profiles})


@pytest.fixture
def config_file(isolated_home) -> Path:
    """The default config file of the isolated HOME."""
    return isolated_home / ".config" / "squeezer" / "config.toml"


@pytest.fixture
def api(serve):
    return serve(scripted(NO_JOBS))


# -- where the file is ---------------------------------------------------------


def test_config_path_is_squeezer_config_then_xdg_then_home(isolated_home, tmp_path) -> None:
    home = {"HOME": str(isolated_home)}
    assert config.config_path(home) == Path.home() / ".config" / "squeezer" / "config.toml"
    xdg = {**home, "XDG_CONFIG_HOME": str(tmp_path / "xdg")}
    assert config.config_path(xdg) == tmp_path / "xdg" / "squeezer" / "config.toml"
    assert config.config_path({**home, "XDG_CONFIG_HOME": "relative/xdg"}) == config.config_path(home)
    explicit = {**xdg, "SQUEEZER_CONFIG": str(tmp_path / "mine.toml")}
    assert config.config_path(explicit) == tmp_path / "mine.toml"


def test_local_stack_token_path_is_in_the_repo_state_folder_unless_overridden(tmp_path) -> None:
    repo_root = Path(__file__).resolve().parents[2]
    assert config.local_stack_token_path({}) == repo_root / ".state" / "local" / "dev-tenant.json"
    assert config.local_stack_token_path({"SQUEEZER_LOCAL_STATE_DIR": str(tmp_path)}) == tmp_path / "dev-tenant.json"


# -- which token is sent ---------------------------------------------------------

LEVELS = ["--token", "SQUEEZER_TOKEN", "profile", "local stack"]


@pytest.mark.parametrize("top", range(len(LEVELS)), ids=LEVELS)
def test_each_token_source_beats_the_next(top, api, config_file, isolated_home) -> None:
    tokens = {level: new_token() for level in LEVELS}
    # Give every level from `top` down; the one at `top` must be the one sent.
    given = LEVELS[top:]
    args, env = ["--api-url", api.url], {}
    if "--token" in given:
        args += ["--token", str(tokens["--token"])]
    if "SQUEEZER_TOKEN" in given:
        env["SQUEEZER_TOKEN"] = str(tokens["SQUEEZER_TOKEN"])
    if "profile" in given:
        write_config(config_file, profiles_toml(default={"api_url": api.url, "token": str(tokens["profile"])}))
    config.write_local_stack_token(isolated_home / "state", api.url, "t_dev", "dev", tokens["local stack"])

    run(*args, "jobs", env=env)

    assert sent_tokens(api) == [bearer(tokens[LEVELS[top]])]


def test_no_token_anywhere_sends_no_authorization_header(api) -> None:
    run("--api-url", api.url, "jobs")
    assert sent_tokens(api) == [None]


@pytest.mark.parametrize("top", ["--api-url", "SQUEEZER_API_URL", "profile"])
def test_each_api_url_source_beats_the_next(top, serve, config_file, closed_port_url) -> None:
    target = serve(scripted(NO_JOBS))
    order = ["--api-url", "SQUEEZER_API_URL", "profile"]
    # The level at `top` names the fake API; every level below it names a closed port.
    urls = {level: target.url if level == top else closed_port_url for level in order[order.index(top) :]}
    args = ["--api-url", urls["--api-url"]] if "--api-url" in urls else []
    env = {"SQUEEZER_API_URL": urls["SQUEEZER_API_URL"]} if "SQUEEZER_API_URL" in urls else {}
    if "profile" in urls:
        write_config(config_file, profiles_toml(default={"api_url": urls["profile"]}))

    run(*args, "jobs", env=env)

    assert len(target.seen) == 1


def test_without_any_api_url_the_local_stack_is_the_default(closed_port_url) -> None:
    assert config.resolve(config.Overrides()).api_url == config.DEFAULT_API_URL == "http://127.0.0.1:8000"


def test_profile_is_chosen_by_flag_then_environment_then_default(serve, config_file) -> None:
    servers = {name: serve(scripted(NO_JOBS)) for name in ("default", "work", "home")}
    tokens = {name: new_token() for name in servers}
    write_config(
        config_file,
        profiles_toml(**{name: {"api_url": servers[name].url, "token": str(tokens[name])} for name in servers}),
    )

    run("jobs")
    run("jobs", env={"SQUEEZER_PROFILE": "work"})
    run("--profile", "home", "jobs", env={"SQUEEZER_PROFILE": "work"})

    assert {name: sent_tokens(server) for name, server in servers.items()} == {
        "default": [bearer(tokens["default"])],
        "work": [bearer(tokens["work"])],
        "home": [bearer(tokens["home"])],
    }


def test_an_unknown_profile_is_an_error_listing_the_profiles(config_file, api) -> None:
    write_config(config_file, profiles_toml(default={"token": str(new_token())}, work={"api_url": api.url}))

    result = run("--profile", "wrok", "jobs", expect=2)

    assert "profile 'wrok' (from --profile) is not in " + str(config_file) in result.output
    assert "its profiles: default, work" in result.output
    from_env = run("jobs", env={"SQUEEZER_PROFILE": "wrok"}, expect=2)
    assert "(from SQUEEZER_PROFILE)" in from_env.output
    assert api.seen == []


def test_a_profile_named_when_there_is_no_config_file_says_how_to_create_it(config_file) -> None:
    result = run("--profile", "work", "jobs", expect=2)
    assert f"is not in {config_file}: the file does not exist" in result.output
    assert "squeezer configure --profile work" in result.output


def test_token_and_url_from_different_levels_combine(api, config_file) -> None:
    token = new_token()
    write_config(config_file, profiles_toml(default={"api_url": api.url}))
    run("jobs", env={"SQUEEZER_TOKEN": str(token)})
    assert sent_tokens(api) == [bearer(token)]


def test_a_profile_token_sent_to_another_url_than_its_own_is_warned_about(api, config_file, closed_port_url) -> None:
    token = new_token()
    write_config(config_file, profiles_toml(default={"api_url": closed_port_url, "token": str(token)}))

    result = run("--api-url", api.url, "jobs")

    assert sent_tokens(api) == [bearer(token)]
    assert f"stored for {closed_port_url}) to {api.url} (from --api-url)" in result.stderr


# -- the local stack's token -----------------------------------------------------------


def test_the_local_stack_token_is_used_when_its_api_url_matches(api, isolated_home) -> None:
    token = new_token()
    port = api.url.rsplit(":", 1)[1]
    # Written for localhost with a trailing slash: the same API as 127.0.0.1 without one.
    config.write_local_stack_token(isolated_home / "state", f"http://localhost:{port}/", "t_dev", "dev", token)

    run("--api-url", api.url, "jobs")

    assert sent_tokens(api) == [bearer(token)]


def test_the_local_stack_token_is_not_sent_to_another_api(api, isolated_home, closed_port_url) -> None:
    config.write_local_stack_token(isolated_home / "state", closed_port_url, "t_dev", "dev", new_token())
    run("--api-url", api.url, "jobs")
    assert sent_tokens(api) == [None]


def test_the_local_stack_token_is_not_used_when_a_profile_has_one(api, config_file, isolated_home) -> None:
    mine = new_token()
    write_config(config_file, profiles_toml(default={"api_url": api.url, "token": str(mine)}))
    config.write_local_stack_token(isolated_home / "state", api.url, "t_dev", "dev", new_token())
    run("jobs")
    assert sent_tokens(api) == [bearer(mine)]


def test_the_default_url_matches_the_local_stack_file_the_stack_writes(isolated_home) -> None:
    token = new_token()
    config.write_local_stack_token(isolated_home / "state", "http://localhost:8000", "t_dev", "dev", token)
    resolved = config.resolve(config.Overrides())
    assert (resolved.api_url, resolved.token) == ("http://127.0.0.1:8000", token)
    assert resolved.token_origin == f"the local stack's {isolated_home / 'state' / 'dev-tenant.json'}"


def test_a_broken_local_stack_file_is_skipped_with_a_warning(api, isolated_home) -> None:
    write_config(isolated_home / "state" / "dev-tenant.json", json.dumps({"api_url": api.url, "token": "nope"}))
    result = run("--api-url", api.url, "jobs")
    assert sent_tokens(api) == [None]
    assert "not using the local stack's token" in result.stderr


def test_write_local_stack_token_writes_0600_json_atomically(tmp_path) -> None:
    token = new_token()
    path = config.write_local_stack_token(tmp_path / "state", "http://127.0.0.1:8000/", "t_1", "dev", token)

    assert path == tmp_path / "state" / config.LOCAL_STACK_TOKEN_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert json.loads(path.read_text()) == {
        "api_url": "http://127.0.0.1:8000",
        "tenant_id": "t_1",
        "name": "dev",
        "token": str(token),
    }
    assert [p.name for p in path.parent.iterdir()] == ["dev-tenant.json"]  # no temporary file left
    assert config.read_local_stack_token(path) == config.LocalStackToken("http://127.0.0.1:8000", "t_1", "dev", token)
    with pytest.raises(ValueError, match="not a Squeezer token"):
        config.write_local_stack_token(tmp_path, "http://127.0.0.1:8000", "t_1", "dev", "sqz_short")


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        ("http://127.0.0.1:8000", "http://localhost:8000/", True),
        ("HTTP://LOCALHOST:8000", "http://127.0.0.1:8000", True),
        ("http://example.com", "http://example.com:80/", True),
        ("https://example.com/api/", "https://example.com/api", True),
        ("http://127.0.0.1:8000", "http://127.0.0.1:8001", False),
        ("http://127.0.0.1:8000", "https://127.0.0.1:8000", False),
        ("https://example.com/api", "https://example.com/other", False),
    ],
)
def test_same_api(a, b, same) -> None:
    assert config.same_api(a, b) is same


# -- reading the file -----------------------------------------------------------------


def test_malformed_toml_is_a_usage_error_naming_the_file(config_file, api) -> None:
    write_config(config_file, '[profiles.default]\ntoken = "sqz_\n')
    result = run("--api-url", api.url, "jobs", expect=2)
    assert result.output.startswith(f"Error: config file {config_file}: not valid TOML: ")
    assert "line 2" in result.output
    assert api.seen == []


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ('profiles = "x"\n', "'profiles' must be a table"),
        ('[profiles]\ndefault = "x"\n', "profiles.default must be a table"),
        ("[profiles.default]\ntoken = 1\n", "profiles.default.token must be a string"),
        ("[profiles.default]\napi_url = true\n", "profiles.default.api_url must be a string"),
    ],
)
def test_a_file_of_the_wrong_shape_is_a_usage_error(config_file, text, problem) -> None:
    write_config(config_file, text)
    result = run("jobs", expect=2)
    assert f"config file {config_file}: {problem}" in result.output


def test_a_malformed_profile_token_is_an_error_that_does_not_show_it(config_file) -> None:
    almost = str(new_token()) + "x"
    write_config(config_file, profiles_toml(default={"token": almost}))
    result = run("jobs", expect=2)
    assert f"profile 'default' in {config_file}: token: not a Squeezer token" in result.output
    assert almost not in result.output


@pytest.mark.parametrize(
    ("args", "env", "origin"),
    [(["--token", "sqz_bad"], {}, "--token"), ([], {"SQUEEZER_TOKEN": "sqz_bad"}, "SQUEEZER_TOKEN")],
)
def test_a_malformed_token_from_the_command_line_or_environment_is_a_usage_error(api, args, env, origin) -> None:
    result = run("--api-url", api.url, *args, "jobs", env=env, expect=2)
    assert f"Error: {origin}: not a Squeezer token" in result.output
    assert "sqz_bad" not in result.output
    assert api.seen == []


@pytest.mark.parametrize(
    "url", ["127.0.0.1:8000", "ftp://example.com", "http://", "http://u:p@example.com", "http://h/?q"]
)
def test_a_bad_api_url_is_a_usage_error(url) -> None:
    result = run("--api-url", url, "jobs", expect=2)
    assert "Error: --api-url: " in result.output


def test_a_config_file_others_can_read_is_used_with_a_warning(config_file, api) -> None:
    token = new_token()
    write_config(config_file, profiles_toml(default={"api_url": api.url, "token": str(token)}), mode=0o640)

    result = run("jobs")

    assert sent_tokens(api) == [bearer(token)]
    assert f"warning: {config_file} can be read or changed by other users (mode 0640)" in result.stderr
    assert f"chmod 600 {config_file}" in result.stderr


def test_a_private_config_file_gives_no_warning(config_file, api) -> None:
    write_config(config_file, profiles_toml(default={"api_url": api.url, "token": str(new_token())}))
    assert "warning" not in run("jobs").stderr


def test_offline_commands_and_admin_do_not_read_the_config(config_file, tmp_path) -> None:
    write_config(config_file, "not toml at all [")
    (tmp_path / "a.txt").write_text("hello " * 100)

    run("compress", str(tmp_path / "a.txt"))
    run("decompress", str(tmp_path / "a.txt.zst"), "-o", str(tmp_path / "b.txt"))
    run("admin", "--help")
    run("--profile", "nowhere", "compress", str(tmp_path / "a.txt"), "-f")

    assert (tmp_path / "b.txt").read_text() == "hello " * 100
    run("jobs", expect=2)  # and a command that needs the API does


def test_a_fully_specified_command_does_not_need_the_config_file(config_file, api) -> None:
    write_config(config_file, "not toml at all [")
    token = new_token()
    run("--api-url", api.url, "--token", str(token), "jobs")
    assert sent_tokens(api) == [bearer(token)]


# -- writing the file -----------------------------------------------------------------


def test_save_profile_writes_0600_in_a_new_0700_folder(tmp_path) -> None:
    path = tmp_path / "new" / "squeezer" / "config.toml"
    token = new_token()

    config.save_profile(path, "default", "https://api.example.com", token)

    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(path.parent.parent.stat().st_mode) == 0o700
    assert tomllib.loads(path.read_text()) == {
        "profiles": {"default": {"api_url": "https://api.example.com", "token": str(token)}}
    }
    assert sorted(p.name for p in path.parent.iterdir()) == ["config.toml"]


def test_save_profile_does_not_change_an_existing_folder(tmp_path) -> None:
    tmp_path.chmod(0o755)
    config.save_profile(tmp_path / "config.toml", "default", "https://x.example", new_token())
    assert stat.S_IMODE(tmp_path.stat().st_mode) == 0o755


def test_save_profile_keeps_the_other_profiles_and_keys(config_file) -> None:
    write_config(
        config_file,
        'color = false\n[profiles.work]\napi_url = "https://work.example"\ntoken = "x"\ntimeout = 30\n'
        '[profiles."my laptop"]\napi_url = "http://127.0.0.1:8000"\n',
        mode=0o644,
    )
    old = tomllib.loads(config_file.read_text())
    token = new_token()

    config.save_profile(config_file, "default", "https://api.example.com", token)
    config.save_profile(config_file, "work", "https://work2.example", token)

    assert tomllib.loads(config_file.read_text()) == {
        "color": False,
        "profiles": {
            "work": {"api_url": "https://work2.example", "token": str(token), "timeout": 30},
            "my laptop": old["profiles"]["my laptop"],
            "default": {"api_url": "https://api.example.com", "token": str(token)},
        },
    }
    assert stat.S_IMODE(config_file.stat().st_mode) == 0o600


def test_save_profile_follows_a_symlinked_config_file(tmp_path) -> None:
    real = tmp_path / "dotfiles" / "squeezer.toml"
    write_config(real, "")
    link = tmp_path / "config.toml"
    link.symlink_to(real)

    config.save_profile(link, "default", "https://x.example", new_token())

    assert link.is_symlink()
    assert "https://x.example" in real.read_text()


def test_save_profile_refuses_a_file_it_cannot_read_back(config_file) -> None:
    write_config(config_file, "[profiles.default\n")
    before = config_file.read_text()
    with pytest.raises(config.ConfigError, match="not valid TOML"):
        config.save_profile(config_file, "work", "https://x.example", new_token())
    assert config_file.read_text() == before


def test_save_profile_refuses_values_it_cannot_write(config_file) -> None:
    write_config(config_file, "[profiles.default]\nscopes = [1, 2]\n")
    with pytest.raises(config.ConfigError, match="profiles.default.scopes holds a list"):
        config.save_profile(config_file, "work", "https://x.example", new_token())


@pytest.mark.parametrize(
    "text",
    [
        'quote " and backslash \\ and \\n literally',
        "new\nline, tab\t, return\r, form feed\f, backspace\b",
        "control \x00 \x01 \x1f and delete \x7f",
        "unicode: é 日本 🐍 \u2028",
        "'single' '''triple''' \"\"\"",
        "",
    ],
)
def test_dump_toml_reads_back_equal(text) -> None:
    document = {
        "top": text,
        "n": 3,
        "f": 1.5,
        "yes": True,
        "profiles": {text or "empty": {"api_url": text, "token": text}, "plain-name_1": {}},
    }
    assert tomllib.loads(config.dump_toml(document)) == document


def test_a_failed_write_leaves_the_old_file_and_no_temporary_file(config_file, monkeypatch) -> None:
    write_config(config_file, profiles_toml(default={"api_url": "https://old.example"}))
    before = config_file.read_text()

    def broken_replace(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="No space left"):
        config.save_profile(config_file, "default", "https://new.example", new_token())

    assert config_file.read_text() == before
    assert sorted(p.name for p in config_file.parent.iterdir()) == ["config.toml"]
