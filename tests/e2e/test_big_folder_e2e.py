"""A folder of 2,500 small files goes up as ONE job (POST /jobs + POST /jobs/{id}/files) and every file completes."""

from __future__ import annotations

import json
import os
import random
import time
from pathlib import Path

import pytest
import requests
from click.testing import CliRunner

from chalicelib import multipart
from client.cli import cli

pytestmark = pytest.mark.integration

FILES = 2500
BUDGET_SECONDS = 300  # not met yet on 2 shared cores: the local worker did ~2 files/s (see the report)


def test_a_folder_of_2500_files_is_one_job_and_every_file_completes(local_stack, tmp_path: Path) -> None:
    src = tmp_path / "src"
    rng = random.Random(13)
    for i in range(FILES):
        path = src / f"d{i % 25:02d}" / f"f{i:04d}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"".join(b"line %d of file %d\n" % (n, i) for n in range(rng.randint(60, 220))))
    os.chmod(src / "d00" / "f0000.txt", 0o700)
    began = time.monotonic()
    result = CliRunner().invoke(
        cli,
        [
            "--api-url",
            local_stack.api_url,
            "--token",
            local_stack.token,
            "--timeout",
            "120",
            "upload",
            str(src),
            "--wait",
            "--json",
        ],
        catch_exceptions=False,
    )
    elapsed = time.monotonic() - began
    assert result.exit_code == 0, result.output[-600:]
    print(f"\n2,500 files as one job: {elapsed:.1f} s")  # noqa: T201 - the figure the README quotes
    assert elapsed < BUDGET_SECONDS
    summary = json.loads(result.stdout)
    status = requests.get(
        f"{local_stack.api_url}/jobs/{summary['job_id']}",
        headers={"Authorization": f"Bearer {local_stack.token}"},
        timeout=60,
    ).json()
    assert status["file_count"] == FILES and status["more_files"] is False and status["state"] == "completed"
    assert status["counts"]["completed"] == FILES
    first = next(f for f in status["files"] if f["name"] == "src/d00/f0000.txt")
    assert first["mode"] == 0o700 and first["mtime"] is not None
    result_bytes = requests.get(first["download_url"], timeout=60).content
    assert first["result_crc64nvme"] == multipart.encode(multipart.crc64nvme(result_bytes))
