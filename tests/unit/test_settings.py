"""Settings: each declared once, with its default and its environment variable."""

import dataclasses

import pytest

from chalicelib.settings import Settings, SettingsError, queue_names

REQUIRED = {"SQUEEZER_BUCKET": "b", "SQUEEZER_TABLE": "t", "SQUEEZER_QUEUE": "q", "SQUEEZER_DLQ": "d"}


def test_defaults_and_required_names():
    settings = Settings.from_env(REQUIRED)
    assert (settings.bucket, settings.table, settings.queue_name, settings.dead_letter_queue_name) == (
        "b",
        "t",
        "q",
        "d",
    )
    assert settings.region == "us-east-1" and settings.endpoint_url is None
    missing = dict(REQUIRED)
    del missing["SQUEEZER_TABLE"]
    with pytest.raises(SettingsError, match="SQUEEZER_TABLE"):
        Settings.from_env(missing)


def test_every_environment_setting_is_read_with_its_type():
    env = dict(REQUIRED)
    expected = {}
    for spec in dataclasses.fields(Settings):
        name = spec.metadata.get("env")
        if not name or name in REQUIRED or name.startswith("AWS_"):
            continue
        default = spec.default if spec.default is not dataclasses.MISSING else spec.default_factory()
        if spec.name == "cors_origins":  # comma-separated in the variable
            env[name] = " https://a.example.com, http://127.0.0.1:8000 ,"
            expected[spec.name] = ("https://a.example.com", "http://127.0.0.1:8000")
            continue
        value = default * 3 if spec.name in ("lease_seconds",) else default + (1 if isinstance(default, int) else 0)
        if spec.name == "worker_batch_size":
            value = 7
        if spec.name == "max_post_size":  # at most S3's 5 GiB, the default
            value = default - 1
        env[name] = str(value)
        expected[spec.name] = value
    settings = Settings.from_env(env)
    assert {name: getattr(settings, name) for name in expected} == expected


def test_bad_values_are_clear_errors_and_arguments_win():
    with pytest.raises(SettingsError, match="SQUEEZER_PART_SIZE must be an integer"):
        Settings.from_env({**REQUIRED, "SQUEEZER_PART_SIZE": "big"})
    with pytest.raises(SettingsError, match="at least 5 MiB"):
        Settings.from_env({**REQUIRED, "SQUEEZER_PART_SIZE": "1024"})
    with pytest.raises(SettingsError, match="a third of"):
        Settings.from_env({**REQUIRED, "SQUEEZER_HEARTBEAT_SECONDS": "30"})
    with pytest.raises(SettingsError, match="SQUEEZER_MAX_POST_SIZE must be from 1 byte to 5 GiB"):
        Settings.from_env({**REQUIRED, "SQUEEZER_MAX_POST_SIZE": str(5 * 1024**3 + 1)})
    assert Settings.from_env(REQUIRED).cors_origins == ()  # no origin unless configured
    assert Settings.from_env({**REQUIRED, "SQUEEZER_BUCKET": "env"}, bucket="arg").bucket == "arg"
    assert Settings.from_env({**REQUIRED, "AWS_DEFAULT_REGION": "eu-west-1"}).region == "eu-west-1"


def test_the_apps_queue_names_never_fail_to_load():
    assert queue_names({}) == ("squeezer-queue-not-configured", "squeezer-dlq-not-configured", 10)
    assert queue_names({"SQUEEZER_QUEUE": "q", "SQUEEZER_DLQ": "d", "SQUEEZER_WORKER_BATCH_SIZE": "4"}) == ("q", "d", 4)
