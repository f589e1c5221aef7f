"""Settings of the worker's data path: zstd's threads and job size."""

import pytest

from chalicelib.settings import Settings, SettingsError

REQUIRED = {"SQUEEZER_BUCKET": "b", "SQUEEZER_TABLE": "t", "SQUEEZER_QUEUE": "q", "SQUEEZER_DLQ": "d"}


def test_zstd_threads_follow_the_cpus_above_the_size_threshold():
    settings = Settings.from_env(REQUIRED, compress_threads=2, threads_min_size=64 * 1024**2)
    assert settings.zstd_threads(64 * 1024**2) == 2  # the function's 2 vCPUs for a large object
    assert settings.zstd_threads(64 * 1024**2 - 1) == 0  # on the caller's thread below it
    assert Settings.from_env(REQUIRED, compress_threads=1).zstd_threads(10**12) == 0  # one CPU: no extra thread


def test_zstd_job_size_is_checked():
    assert Settings.from_env(REQUIRED).zstd_job_size == 2 * 1024**2
    for bad in ("1024", str(1024**3)):
        with pytest.raises(SettingsError, match="SQUEEZER_ZSTD_JOB_SIZE must be from 512 KiB to 512 MiB"):
            Settings.from_env({**REQUIRED, "SQUEEZER_ZSTD_JOB_SIZE": bad})
