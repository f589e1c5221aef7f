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


@pytest.mark.parametrize("stage", sorted(load_chalice_config()["stages"]))
def test_the_ranges_queue_has_one_name_for_the_app_the_worker_and_the_infra(stage):
    from chalicelib.settings import queue_names

    cfg = stage_config(stage)
    config = load_chalice_config()
    env = {**config["environment_variables"], **config["stages"][stage]["environment_variables"]}
    assert cfg.ranges_queue == f"{cfg.queue}-ranges"
    assert queue_names(env).ranges == cfg.ranges_queue  # the app's event source (app.py)
    assert Settings.from_env(cfg.environment).ranges_queue_name == cfg.ranges_queue  # the worker's sends
    assert cfg.environment["SQUEEZER_RANGES_QUEUE"] == cfg.ranges_queue


def test_the_ranges_queue_name_and_timeout_are_checked():
    import copy
    import dataclasses

    from infra.resources import StageConfigError

    config = copy.deepcopy(load_chalice_config())
    config["stages"]["dev"]["environment_variables"]["SQUEEZER_RANGES_QUEUE"] = "my-ranges"
    cfg = stage_config("dev", config)
    assert cfg.ranges_queue == "my-ranges"
    # a copy for another jobs queue (tests make stages with unique names) follows it, unless named
    assert dataclasses.replace(stage_config("dev"), queue="q-1").ranges_queue == "q-1-ranges"
    assert dataclasses.replace(cfg, queue="q-1").ranges_queue == "my-ranges"
    config["stages"]["dev"]["lambda_functions"] = {"compress_range": {"lambda_timeout": 300}}
    with pytest.raises(StageConfigError, match="lambda_timeout of compress_range \\(300\\) must equal compress's"):
        stage_config("dev", config)
