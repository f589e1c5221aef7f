"""Facts in .chalice/config.json that must agree with each other."""

import pytest

from chalicelib.settings import Settings
from infra.resources import load_chalice_config, stage_config


@pytest.mark.parametrize("stage", sorted(load_chalice_config()["stages"]))
def test_the_api_knows_the_worker_timeout_it_budgets_for(stage):
    """POST /jobs refuses files that cannot be compressed within SQUEEZER_WORKER_TIMEOUT:
    it must be the compress function's real timeout in every stage."""
    cfg = stage_config(stage)
    settings = Settings.from_env(
        cfg.environment
        | {
            k: str(v)
            for k, v in {
                **load_chalice_config()["environment_variables"],
                **load_chalice_config()["stages"][stage]["environment_variables"],
            }.items()
        }
    )
    assert settings.worker_timeout_seconds == cfg.worker_timeout
    # a claim outlives several heartbeats, and the visibility covers the worker's timeout
    assert settings.heartbeat_seconds * 3 <= settings.lease_seconds
    assert cfg.visibility_timeout >= cfg.worker_timeout
