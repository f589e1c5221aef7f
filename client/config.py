"""The client's configuration: which API to talk to, and which token to send it.

Each setting is the first of:

    API URL   --api-url, SQUEEZER_API_URL, the profile's api_url, DEFAULT_API_URL
    token     --token, SQUEEZER_TOKEN, the profile's token, the local stack's dev token
    profile   --profile, SQUEEZER_PROFILE, DEFAULT_PROFILE
    algorithm, level, parallel (upload, download): the flag, SQUEEZER_ALGORITHM /
              SQUEEZER_LEVEL / SQUEEZER_PARALLEL, the profile's value, built-in
              (:func:`command_defaults`)

The config file (:func:`config_path`) is TOML with one table per profile::

    [profiles.default]
    api_url = "https://abc123.execute-api.eu-west-1.amazonaws.com/api"
    token = "sqz_<id>_<secret>"

It is read with :mod:`tomllib` and written by :func:`save_profile` (a small
writer of its own: tables, strings, numbers and booleans), atomically and
with mode 0600 in a 0700 folder. A file that others can read still works,
with a warning, as ssh does.

The local stack (``make up``) writes its tenant's token to
:func:`local_stack_token_path` with :func:`write_local_stack_token`; the
client sends it only when nothing else gave a token and the file names the
same API the client talks to, so the local flow needs no set-up.

Tokens are checked with :func:`chalicelib.tokens.parse_token` and shown only
as ``Token.masked``. Every problem is a :class:`client.errors.ConfigError`
(exit 2) that names the file or the option and never holds a secret.
"""

from __future__ import annotations

import math
import os
import re
import stat
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:  # tokens (hashlib, hmac, secrets), tomllib and json load when used: --help needs none
    from chalicelib.tokens import Token

# The built-in defaults, declared in defaults.py (which --help reads without this module), re-exported.
from .defaults import ALGORITHM_ENV as ALGORITHM_ENV
from .defaults import DEFAULT_ALGORITHM as DEFAULT_ALGORITHM
from .defaults import DEFAULT_API_URL as DEFAULT_API_URL
from .defaults import DEFAULT_PARALLEL as DEFAULT_PARALLEL
from .defaults import DEFAULT_PROFILE as DEFAULT_PROFILE
from .defaults import LEVEL_ENV as LEVEL_ENV
from .defaults import PARALLEL_ENV as PARALLEL_ENV
from .defaults import PARALLEL_RANGE as PARALLEL_RANGE
from .errors import ConfigError
from .files import atomic_file

CONFIG_ENV = "SQUEEZER_CONFIG"
LOCAL_STATE_ENV = "SQUEEZER_LOCAL_STATE_DIR"
LOCAL_STACK_TOKEN_FILE = "dev-tenant.json"
REPO_ROOT = Path(__file__).resolve().parent.parent
FILE_MODE = 0o600
DIR_MODE = 0o700
PROFILE_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
TOKEN_SHAPE = "sqz_<12 characters a-z0-9>_<43 characters base64url>"
LOOPBACK_NAMES = {"localhost": "127.0.0.1"}

Warn = Callable[[str], None]


def warn_on_stderr(message: str) -> None:
    click.echo(f"warning: {message}", err=True)


# -- where things are --------------------------------------------------------


def config_path(env: Mapping[str, str] | None = None) -> Path:
    """``$SQUEEZER_CONFIG``, else ``$XDG_CONFIG_HOME/squeezer/config.toml``, else ``~/.config/squeezer/config.toml``."""
    env = os.environ if env is None else env
    if env.get(CONFIG_ENV):
        return Path(env[CONFIG_ENV]).expanduser()
    xdg = env.get("XDG_CONFIG_HOME", "")
    # The XDG spec says to ignore a relative XDG_CONFIG_HOME.
    base = Path(xdg) if xdg and Path(xdg).is_absolute() else Path.home() / ".config"
    return base / "squeezer" / "config.toml"


def local_stack_token_path(env: Mapping[str, str] | None = None) -> Path:
    """The local stack's token file: in ``$SQUEEZER_LOCAL_STATE_DIR``, else ``<repo>/.state/local``."""
    env = os.environ if env is None else env
    state_dir = Path(env[LOCAL_STATE_ENV]).expanduser() if env.get(LOCAL_STATE_ENV) else REPO_ROOT / ".state" / "local"
    return state_dir / LOCAL_STACK_TOKEN_FILE


# -- checks ------------------------------------------------------------------


def check_token(text: str) -> Token:
    """``text`` as a Token; ValueError (without the text: it may be a secret) if it is not one."""
    from chalicelib.tokens import parse_token

    token = parse_token(text)
    if token is None:
        raise ValueError(f"not a Squeezer token (expected {TOKEN_SHAPE})")
    return token


def check_api_url(text: str) -> str:
    """``text`` as an API base URL (``http(s)://host[:port][/path]``, no trailing slash); ValueError if it is not one."""
    shape = "expected http://host[:port][/path] or https://..."
    if not text.isascii() or not text.isprintable() or " " in text:
        raise ValueError(f"not a URL ({shape}, in plain ASCII without spaces)")
    try:
        parts = urllib.parse.urlsplit(text)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number or out of range
    except ValueError as exc:
        raise ValueError(f"not a URL ({exc})") from None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not an http(s) URL with a host name ({shape})")
    if parts.username is not None or parts.password is not None:
        raise ValueError("the URL holds a user name or password: the client sends a token instead")
    if parts.query or parts.fragment or text.endswith(("?", "#")):
        raise ValueError("the URL has a query or a fragment: give the API's base URL")
    return text.rstrip("/")


def same_api(a: str, b: str) -> bool:
    """Whether two API URLs name the same API (case, default port, trailing slash, localhost = 127.0.0.1)."""
    return _api_key(a) == _api_key(b)


def _api_key(url: str) -> tuple[str, str, int | None, str] | None:
    try:
        parts = urllib.parse.urlsplit(url.strip())
        scheme = parts.scheme.lower()
        port = parts.port or {"http": 80, "https": 443}.get(scheme)
    except ValueError:
        return None
    host = (parts.hostname or "").lower()
    return scheme, LOOPBACK_NAMES.get(host, host), port, parts.path.rstrip("/")


def is_loopback(url: str) -> bool:
    key = _api_key(url)
    return key is not None and (key[1] == "127.0.0.1" or key[1] == "::1")


# -- reading -----------------------------------------------------------------


@dataclass(frozen=True)
class Profile:
    """One ``[profiles.<name>]`` table. ``token_text`` is the raw value: check it with ``token``."""

    name: str
    api_url: str | None = None
    token_text: str | None = field(default=None, repr=False)
    algorithm: str | None = None
    level: int | None = None
    parallel: int | None = None

    @property
    def token(self) -> Token | None:
        """The token, or None if there is none; ValueError if it is malformed."""
        return None if self.token_text is None else check_token(self.token_text)

    @property
    def masked_token(self) -> str | None:
        """What may be shown of the token: its masked form, or a note if it is malformed."""
        if self.token_text is None:
            return None
        from chalicelib.tokens import parse_token

        token = parse_token(self.token_text)
        return token.masked if token is not None else "(not a valid token)"


@dataclass(frozen=True)
class ConfigFile:
    """The config file as read: its path, the whole document (for rewriting) and its profiles."""

    path: Path
    exists: bool
    document: dict[str, Any]
    profiles: dict[str, Profile]

    def profile(self, name: str, *, origin: str | None = None) -> Profile | None:
        """Profile ``name``; when a user named it (``origin``), a missing one is a ConfigError listing the others."""
        found = self.profiles.get(name)
        if found is None and origin is not None:
            raise ConfigError(self._unknown(name, origin))
        return found

    def _unknown(self, name: str, origin: str) -> str:
        head = f"profile {name!r} (from {origin}) is not in {self.path}"
        if not self.exists:
            return f"{head}: the file does not exist; create the profile with 'squeezer configure --profile {name}'"
        if not self.profiles:
            return f"{head}: it has no profiles; create one with 'squeezer configure --profile {name}'"
        return f"{head}; its profiles: {', '.join(sorted(self.profiles))}"


def read_config(path: Path | None = None, *, warn: Warn = warn_on_stderr) -> ConfigFile:
    """The config file at ``path`` (default: :func:`config_path`); an empty one if it does not exist."""
    path = config_path() if path is None else path
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return ConfigFile(path, False, {}, {})
    except OSError as exc:
        raise ConfigError(f"cannot read the config file {path}: {exc.strerror or exc}") from None
    _warn_if_shared(path, warn)
    import tomllib

    try:
        document = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(f"config file {path}: not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path}: not valid TOML: {exc}") from None
    return ConfigFile(path, True, document, _profiles(path, document))


def _profiles(path: Path, document: dict[str, Any]) -> dict[str, Profile]:
    tables = document.get("profiles", {})
    if not isinstance(tables, dict):
        raise ConfigError(f"config file {path}: 'profiles' must be a table, like [profiles.default]")
    found = {}
    for name, table in tables.items():
        if not isinstance(table, dict):
            raise ConfigError(
                f"config file {path}: profiles.{_key(name)} must be a table, like [profiles.{_key(name)}]"
            )
        for key in ("api_url", "token", "algorithm"):
            if key in table and not isinstance(table[key], str):
                raise ConfigError(f"config file {path}: profiles.{_key(name)}.{key} must be a string")
        for key in ("level", "parallel"):
            if key in table and (not isinstance(table[key], int) or isinstance(table[key], bool)):
                raise ConfigError(f"config file {path}: profiles.{_key(name)}.{key} must be an integer")
        found[name] = Profile(
            name,
            table.get("api_url"),
            table.get("token"),
            algorithm=table.get("algorithm"),
            level=table.get("level"),
            parallel=table.get("parallel"),
        )
    return found


def _warn_if_shared(path: Path, warn: Warn) -> None:
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except OSError:
        return
    if mode & 0o077:
        warn(f"{path} can be read or changed by other users (mode {mode:04o}) and holds tokens: run 'chmod 600 {path}'")


# -- resolving ---------------------------------------------------------------


@dataclass(frozen=True)
class Given:
    """A value from the command line or the environment, and where it came from (``--token``, ``SQUEEZER_TOKEN``)."""

    value: str = field(repr=False)
    origin: str


@dataclass(frozen=True)
class Overrides:
    """What the command line and the environment say; each is None when neither said anything."""

    api_url: Given | None = None
    token: Given | None = None
    profile: Given | None = None


@dataclass(frozen=True)
class ClientConfig:
    """The settings a command talks to the API with. ``token_origin`` says where the token came from."""

    api_url: str
    token: Token | None
    token_origin: str | None
    profile: str


def resolve(overrides: Overrides, *, env: Mapping[str, str] | None = None, warn: Warn = warn_on_stderr) -> ClientConfig:
    """The API URL and token to use, each from the first place that has one (see the module docstring)."""
    env = os.environ if env is None else env
    name = overrides.profile.value if overrides.profile else DEFAULT_PROFILE
    profile: Profile | None = None
    where = ""
    if overrides.profile or overrides.api_url is None or overrides.token is None:
        # Read only if it can matter: a broken file does not stop a fully specified command.
        config = read_config(config_path(env), warn=warn)
        profile = config.profile(name, origin=overrides.profile.origin if overrides.profile else None)
        where = f"profile {name!r} in {config.path}"

    if overrides.api_url is not None:
        api_url = _checked(check_api_url, overrides.api_url.value, overrides.api_url.origin)
    elif profile is not None and profile.api_url is not None:
        api_url = _checked(check_api_url, profile.api_url, f"{where}: api_url")
    else:
        api_url = DEFAULT_API_URL

    if overrides.token is not None:
        return ClientConfig(
            api_url, _checked(check_token, overrides.token.value, overrides.token.origin), overrides.token.origin, name
        )
    if profile is not None and profile.token_text is not None:
        token = _checked(check_token, profile.token_text, f"{where}: token")
        if overrides.api_url is not None and profile.api_url is not None and not same_api(profile.api_url, api_url):
            warn(
                f"sending the token of {where} (stored for {profile.api_url}) "
                f"to {api_url} (from {overrides.api_url.origin})"
            )
        return ClientConfig(api_url, token, where, name)
    dev_path = local_stack_token_path(env)
    dev = read_local_stack_token(dev_path, warn=warn)
    if dev is not None and same_api(dev.api_url, api_url):
        return ClientConfig(api_url, dev.token, f"the local stack's {dev_path}", name)
    return ClientConfig(api_url, None, None, name)


def _checked(check: Callable[[str], Any], value: str, origin: str) -> Any:
    try:
        return check(value)
    except ValueError as exc:
        raise ConfigError(f"{origin}: {exc}") from None


# -- the local stack's token ---------------------------------------------------


@dataclass(frozen=True)
class LocalStackToken:
    api_url: str
    tenant_id: str
    name: str
    token: Token


def write_local_stack_token(
    state_dir: str | os.PathLike[str], api_url: str, tenant_id: str, name: str, token: Token | str
) -> Path:
    """Write the local stack's tenant and token to ``state_dir``/dev-tenant.json (mode 0600, atomically)."""
    import json

    from chalicelib.tokens import Token

    checked = token if isinstance(token, Token) else check_token(token)
    path = Path(state_dir) / LOCAL_STACK_TOKEN_FILE
    body = {"api_url": check_api_url(api_url), "tenant_id": tenant_id, "name": name, "token": str(checked)}
    write_private_file(path, (json.dumps(body, indent=2) + "\n").encode("utf-8"))
    return path


def read_local_stack_token(path: Path, *, warn: Warn = warn_on_stderr) -> LocalStackToken | None:
    """The local stack's token file, or None if there is none. A broken one is skipped with a warning."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        warn(f"not using the local stack's token: cannot read {path}: {exc.strerror or exc}")
        return None
    _warn_if_shared(path, warn)
    import json

    try:
        body = json.loads(raw)
        token = check_token(body["token"])
        found = LocalStackToken(str(body["api_url"]), str(body.get("tenant_id", "")), str(body.get("name", "")), token)
    except (ValueError, TypeError, KeyError):
        warn(f"not using the local stack's token: {path} is not a JSON object with an api_url and a valid token")
        return None
    return found


# -- writing -------------------------------------------------------------------


@dataclass(frozen=True)
class Saved:
    path: Path
    profile: str
    api_url: str
    token: Token


def check_profile_name(name: str) -> str:
    """``name`` if a profile may be written under it; ConfigError otherwise."""
    if not PROFILE_NAME.fullmatch(name):
        raise ConfigError(f"profile name {name!r}: use 1 to 64 letters, digits, '-' or '_'")
    return name


def save_profile(path: Path, name: str, api_url: str, token: Token) -> Saved:
    """Write profile ``name`` into the config file, keeping everything else the file holds (not its comments).

    The file is read again here, not earlier: a prompt can take a while, and
    another ``configure`` may have written meanwhile. No warning about its
    mode: the new file is 0600.
    """
    check_profile_name(name)
    config = read_config(path, warn=lambda _: None)
    document = dict(config.document)
    profiles = dict(document.get("profiles", {}))
    profiles[name] = {**profiles.get(name, {}), "api_url": api_url, "token": str(token)}
    document["profiles"] = profiles
    try:
        text = dump_toml(document)
    except TypeError as exc:
        raise ConfigError(f"cannot rewrite {path}: {exc}; edit the file by hand") from None
    write_private_file(path, text.encode("utf-8"))
    return Saved(path, name, api_url, token)


@dataclass(frozen=True)
class ProfileRow:
    """A profile as ``configure --list`` shows it: never the token itself."""

    name: str
    api_url: str | None
    masked_token: str | None
    active: bool

    def as_json(self) -> dict[str, Any]:
        return {"name": self.name, "api_url": self.api_url, "token": self.masked_token, "active": self.active}


def profile_rows(config: ConfigFile, active: str) -> list[ProfileRow]:
    return [ProfileRow(p.name, p.api_url, p.masked_token, p.name == active) for p in config.profiles.values()]


def write_private_file(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` atomically: a 0600 file, in a folder created 0700 if missing.

    A symlink (a dotfiles manager's) is followed: its target is replaced.
    """
    target = Path(os.path.realpath(path))
    make_private_dirs(target.parent)
    with atomic_file(target, durable=True, mode=FILE_MODE) as out:
        out.write(data)


def make_private_dirs(directory: Path) -> None:
    # Only folders made here are 0700 (the umask can only take bits away):
    # an existing one (/tmp, a shared folder) is not ours to change.
    # Every missing folder gets it: Path.mkdir(parents=True) would give the parents 0777 less the umask.
    missing = []
    while not directory.exists():
        missing.append(directory)
        directory = directory.parent
    for folder in reversed(missing):
        folder.mkdir(mode=DIR_MODE, exist_ok=True)


# -- a small TOML writer -------------------------------------------------------

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r"}


def dump_toml(document: Mapping[str, Any]) -> str:
    """``document`` as TOML that :func:`tomllib.loads` reads back equal.

    Tables, strings, integers, floats and booleans; anything else (arrays,
    dates) is a TypeError, since the client never writes them.
    """
    lines = ["# Squeezer client configuration, rewritten by 'squeezer configure' (comments are not kept).", ""]
    _dump_table(lines, [], document)
    return "\n".join(lines).rstrip("\n") + "\n"


def _dump_table(lines: list[str], path: list[str], table: Mapping[str, Any]) -> None:
    values = [(k, v) for k, v in table.items() if not isinstance(v, Mapping)]
    subtables = [(k, v) for k, v in table.items() if isinstance(v, Mapping)]
    if path and (values or not subtables):
        lines.append("[" + ".".join(_key(part) for part in path) + "]")
    for key, value in values:
        lines.append(f"{_key(key)} = {_value(value, [*path, key])}")
    if values or (path and not subtables):
        lines.append("")
    for key, value in subtables:
        _dump_table(lines, [*path, key], value)


def _key(key: str) -> str:
    return key if _BARE_KEY.fullmatch(key) else _string(key)


def _value(value: Any, path: list[str]) -> str:
    if isinstance(value, bool):  # before int: a bool is an int
        return "true" if value else "false"
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        return repr(value) if math.isfinite(value) else ("inf" if value > 0 else "-inf")
    raise TypeError(f"{'.'.join(_key(p) for p in path)} holds a {type(value).__name__}, which configure does not write")


def _string(text: str) -> str:
    out = []
    for char in text:
        if char in _ESCAPES:
            out.append(_ESCAPES[char])
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            out.append(f"\\u{ord(char):04X}")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


# -- defaults for upload and download ------------------------------------------


# Where a default came from, weakest first: a level applies only with an algorithm from as strong a place.
BUILT_IN, PROFILE, ENVIRONMENT, COMMAND_LINE = range(4)


@dataclass(frozen=True)
class Setting:
    value: Any
    rank: int  # BUILT_IN .. COMMAND_LINE
    origin: str  # "-a", "SQUEEZER_LEVEL", "profile 'default' in <path>", "built-in"


@dataclass(frozen=True)
class Defaults:
    algorithm: Setting
    level: Setting  # value None: the algorithm's own default level
    parallel: Setting


def command_defaults(
    profile_name: Given | None,
    *,
    algorithm: str | None = None,
    level: int | None = None,
    parallel: int | None = None,
    env: Mapping[str, str] | None = None,
    warn: Warn = warn_on_stderr,
) -> Defaults:
    """Algorithm, level and parallelism: the flag, else its environment variable, else the profile, else built-in.

    Arguments are what the command line said (None: nothing). A level from a
    weaker place than the algorithm is not used: ``-a gzip`` on the command
    line takes gzip's own default level, not the profile's level for brotli.
    Values from the environment or the profile are checked here (ConfigError
    naming where they came from); the algorithm's level range is checked by
    the command.
    """
    env = os.environ if env is None else env
    name = profile_name.value if profile_name else DEFAULT_PROFILE
    found = read_config(config_path(env), warn=warn)
    profile = found.profile(name, origin=profile_name.origin if profile_name else None)
    where = f"profile {name!r} in {found.path}"

    def pick(
        flag: Any, flag_name: str, envvar: str, from_profile: Any, built_in: Any, parse: Callable[[str], Any]
    ) -> Setting:
        if flag is not None:
            return Setting(flag, COMMAND_LINE, flag_name)
        if env.get(envvar):
            return Setting(_checked(parse, env[envvar], envvar), ENVIRONMENT, envvar)
        if from_profile is not None:
            return Setting(_checked(parse, str(from_profile), f"{where}: {flag_name.lstrip('-')}"), PROFILE, where)
        return Setting(built_in, BUILT_IN, "built-in")

    chosen_algorithm = pick(
        algorithm, "--algorithm", ALGORITHM_ENV, profile and profile.algorithm, DEFAULT_ALGORITHM, _algorithm
    )
    chosen_level = pick(level, "--level", LEVEL_ENV, profile and profile.level, None, _integer)
    if chosen_level.rank < chosen_algorithm.rank:
        chosen_level = Setting(None, BUILT_IN, "built-in")
    chosen_parallel = pick(
        parallel, "--parallel", PARALLEL_ENV, profile and profile.parallel, DEFAULT_PARALLEL, _parallel
    )
    return Defaults(chosen_algorithm, chosen_level, chosen_parallel)


def _algorithm(text: str) -> str:
    from chalicelib.algorithms import Algorithm

    try:
        return Algorithm(text.strip()).value
    except ValueError:
        raise ValueError(f"{text!r} is not an algorithm: use one of {', '.join(a.value for a in Algorithm)}") from None


def _integer(text: str) -> int:
    try:
        return int(text.strip())
    except ValueError:
        raise ValueError(f"{text!r} is not an integer") from None


def _parallel(text: str) -> int:
    value = _integer(text)
    low, high = PARALLEL_RANGE
    if not low <= value <= high:
        raise ValueError(f"parallel must be from {low} to {high}, got {value}")
    return value
