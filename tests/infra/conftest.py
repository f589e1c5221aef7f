"""Fixtures for the deployment tests.

``packaged`` runs the real ``chalice package`` (through infra.deploy) on a
copy of the project whose config.json has ``autogen_policy: false``, the
change the deployment needs, so the tests do not depend on (or touch) the
checked-out config.json.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from infra.resources import ROOT

PACKAGED_STAGE = "prod"


def copy_project(dest: Path) -> Path:
    """app.py, chalicelib, requirements.txt and config.json with the stage policy files switched on."""
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copy2(ROOT / "app.py", dest / "app.py")
    shutil.copy2(ROOT / "requirements.txt", dest / "requirements.txt")
    shutil.copytree(ROOT / "chalicelib", dest / "chalicelib", ignore=shutil.ignore_patterns("__pycache__"))
    chalice_dir = dest / ".chalice"
    chalice_dir.mkdir()
    config = json.loads((ROOT / ".chalice" / "config.json").read_text())
    config["autogen_policy"] = False
    for name, stage in config["stages"].items():
        stage["iam_policy_file"] = f"policy-{name}.json"
    (chalice_dir / "config.json").write_text(json.dumps(config, indent=2))
    cache = ROOT / ".chalice" / "deployments"
    if cache.is_dir():  # chalice's dependency cache: saves rebuilding the wheels
        shutil.copytree(cache, chalice_dir / "deployments")
    return dest


@pytest.fixture(scope="session")
def project_copy(tmp_path_factory) -> Path:
    return copy_project(tmp_path_factory.mktemp("project") / "squeezer")


@pytest.fixture(scope="session")
def packaged(project_copy) -> Path:
    """Path of sam.json made by ``python -m infra.deploy package --stage prod`` (on the copy)."""
    from infra.deploy import packaging

    return packaging.package(PACKAGED_STAGE, project_copy / "packaged", region="us-east-1", project_dir=project_copy)


@pytest.fixture(scope="session")
def variant(tmp_path_factory) -> Path:
    """sam.json of prod with the hardening settings the checked-in prod does not use:
    a KMS key, two CORS origins, other throttling, and no WAF."""
    from infra.deploy import packaging
    from infra.resources import INFRA_KEY

    project = copy_project(tmp_path_factory.mktemp("variant") / "squeezer")
    path = project / ".chalice" / "config.json"
    config = json.loads(path.read_text())
    config["stages"][PACKAGED_STAGE][INFRA_KEY] = {
        "kms_key_arn": "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab",
        "cors_origins": ["https://app.example.com", "http://localhost:3000"],
        "throttle_rate": 5,
        "throttle_burst": 10,
        "waf": False,
    }
    path.write_text(json.dumps(config, indent=2))
    return packaging.package(PACKAGED_STAGE, project / "packaged", region="us-east-1", project_dir=project)


@pytest.fixture(scope="session")
def template(packaged) -> dict:
    return json.loads(packaged.read_text())
