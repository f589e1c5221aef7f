"""What the local stack runs with: ports, state directory, the stage's environment.

Names and timeouts are read from ``.chalice/config.json`` through Chalice's
own ``Config`` (so precedence matches a deployment); the resources
themselves come from :mod:`infra.resources`. Nothing here names a bucket,
table or queue.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from chalice.config import Config as ChaliceConfig

from infra.resources import ROOT, load_chalice_config, stage_config

STAGE = "local"
HOST = "127.0.0.1"
REGION = "us-east-1"
DEFAULT_API_PORT = 8000
DEFAULT_MOTO_PORT = 5000
STATE_DIR = ROOT / ".state" / "local"

# Fake credentials: the emulator accepts anything, and these can never reach AWS.
FAKE_AWS = {
    "AWS_ACCESS_KEY_ID": "test",
    "AWS_SECRET_ACCESS_KEY": "test",
    "AWS_SESSION_TOKEN": "test",
    "AWS_DEFAULT_REGION": REGION,
    "AWS_REGION": REGION,
    # A person's ~/.aws files must not add a profile, region or endpoint.
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
}

# Variables of the bridge (they are also read by ``python -m infra.local bridge``).
BATCH_SIZE_VAR = "SQUEEZER_BRIDGE_BATCH_SIZE"
WINDOW_VAR = "SQUEEZER_BRIDGE_WINDOW"
CONCURRENCY_VAR = "SQUEEZER_BRIDGE_CONCURRENCY"
RANGE_CONCURRENCY_VAR = "SQUEEZER_BRIDGE_RANGE_CONCURRENCY"
EXECUTOR_VAR = "SQUEEZER_BRIDGE_EXECUTOR"


def _env_int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    return int(raw) if raw else default


def chalice_config(stage: str = STAGE) -> ChaliceConfig:
    return ChaliceConfig(
        chalice_stage=stage,
        config_from_disk=load_chalice_config(),
        default_params={"project_dir": str(ROOT)},
    )


def stage_environment(stage: str = STAGE) -> dict[str, str]:
    """The stage's environment variables, merged as Chalice merges them."""
    return {name: str(value) for name, value in chalice_config(stage).environment_variables.items()}


def function_timeout(function_name: str, stage: str = STAGE) -> int:
    """The Lambda timeout (seconds) a deployment of ``function_name`` would get."""
    timeout = chalice_config(stage).scope(stage, function_name).lambda_timeout
    return int(timeout) if timeout else 60


@dataclass(frozen=True)
class BridgeOptions:
    """Tunables of the event-source bridge; ``None`` means "as the app declares".

    ``batch_size``, ``window_seconds`` and ``concurrency`` tune the jobs and
    dead-letter queues' pollers; ``range_concurrency`` is the number of the
    ranges queue's pollers (one range per invocation; None: the bridge's 2).
    """

    batch_size: int | None = None
    window_seconds: float | None = None
    concurrency: int | None = None
    executor: str = "process"
    range_concurrency: int | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides) -> BridgeOptions:
        env = os.environ if env is None else env
        values = {
            "batch_size": _env_int(env, BATCH_SIZE_VAR, 0) or None,
            "window_seconds": float(env[WINDOW_VAR]) if env.get(WINDOW_VAR) else None,
            "concurrency": _env_int(env, CONCURRENCY_VAR, 0) or None,
            "executor": env.get(EXECUTOR_VAR) or "process",
            "range_concurrency": _env_int(env, RANGE_CONCURRENCY_VAR, 0) or None,
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    def environment(self) -> dict[str, str]:
        env = {EXECUTOR_VAR: self.executor}
        if self.batch_size:
            env[BATCH_SIZE_VAR] = str(self.batch_size)
        if self.window_seconds is not None:
            env[WINDOW_VAR] = str(self.window_seconds)
        if self.concurrency:
            env[CONCURRENCY_VAR] = str(self.concurrency)
        if self.range_concurrency:
            env[RANGE_CONCURRENCY_VAR] = str(self.range_concurrency)
        return env


@dataclass(frozen=True)
class LocalConfig:
    api_port: int = DEFAULT_API_PORT
    moto_port: int = DEFAULT_MOTO_PORT
    state_dir: Path = STATE_DIR
    stage: str = STAGE
    bridge: BridgeOptions = field(default_factory=BridgeOptions)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides) -> LocalConfig:
        env = os.environ if env is None else env
        values = {
            "api_port": _env_int(env, "SQUEEZER_API_PORT", DEFAULT_API_PORT),
            "moto_port": _env_int(env, "SQUEEZER_MOTO_PORT", DEFAULT_MOTO_PORT),
            "bridge": BridgeOptions.from_env(env),
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    @property
    def api_url(self) -> str:
        return f"http://{HOST}:{self.api_port}"

    @property
    def endpoint_url(self) -> str:
        return f"http://{HOST}:{self.moto_port}"

    @property
    def cors_origins(self) -> tuple[str, ...]:
        """The stage's browser origins and the stack's own API (it serves the upload page).

        The API's origin both as 127.0.0.1 and as localhost: a person may type
        either. The bucket's CORS rules (infra.resources.create_resources) and
        the API (SQUEEZER_CORS_ORIGINS) get this one list.
        """
        own = (self.api_url, f"http://localhost:{self.api_port}")
        configured = stage_config(self.stage).cors_origins
        return (*configured, *(origin for origin in own if origin not in configured))

    def process_environment(
        self, base: Mapping[str, str] | None = None, extra: Mapping[str, str] | None = None
    ) -> dict[str, str]:
        """The environment of every process of the stack.

        Starts from ``base`` without any AWS_* or SQUEEZER_* variable (a test
        session's values must not leak in), then adds fake credentials, the
        endpoint, the stage's variables and the bridge's tunables.
        """
        base = os.environ if base is None else base
        env = {k: v for k, v in base.items() if not k.startswith(("AWS_", "SQUEEZER_"))}
        env.update(FAKE_AWS)
        env["AWS_ENDPOINT_URL"] = self.endpoint_url
        env.update(stage_environment(self.stage))
        env["SQUEEZER_CORS_ORIGINS"] = ",".join(self.cors_origins)
        env.update(self.bridge.environment())
        env["PYTHONUNBUFFERED"] = "1"
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), base.get("PYTHONPATH")]))
        env.update(extra or {})
        return env
