"""``chalice package`` with the merge template of infra/cloudformation.py, and cfn-lint."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .. import cloudformation, iam
from ..resources import ROOT, load_chalice_config
from .errors import DeployError, ToolError

PACKAGE_FILES = {"sam.json", "deployment.zip"}


def chalice_command() -> list[str]:
    """The chalice CLI of the running interpreter's environment (the project venv)."""
    candidate = Path(sys.executable).with_name("chalice")
    if candidate.exists():
        return [str(candidate)]
    found = shutil.which("chalice")
    if not found:
        raise ToolError("the chalice CLI is not installed: pip install -r requirements-dev.txt")
    return [found]


def run_chalice(
    args: list[str], *, region: str, project_dir: Path = ROOT, env: Mapping[str, str] | None = None
) -> None:
    """Run chalice in the project directory; its output goes to stderr."""
    command = chalice_command() + args
    # Names come from the stage in config.json only, never from the caller's shell.
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("SQUEEZER_")}
    full_env = {**inherited, "AWS_DEFAULT_REGION": region, **(env or {})}
    try:
        sys.stderr.fileno()
        streams: dict[str, Any] = {"stdout": sys.stderr, "stderr": sys.stderr}  # live progress
    except (AttributeError, OSError, ValueError):  # a captured stderr (CliRunner): collect, then copy
        streams = {"stdout": subprocess.PIPE, "stderr": subprocess.STDOUT, "text": True}
    result = subprocess.run(command, cwd=project_dir, env=full_env, check=False, **streams)
    if result.stdout:
        sys.stderr.write(result.stdout)
    if result.returncode != 0:
        raise ToolError(f"'{' '.join(['chalice', *args])}' failed with exit status {result.returncode}")


def require_own_policies(stage: str, config: Mapping[str, Any]) -> None:
    stage_cfg = config["stages"].get(stage)
    if stage_cfg is None:
        raise DeployError(
            f"stage {stage!r} is not in .chalice/config.json (stages: {', '.join(sorted(config['stages']))})"
        )
    if stage_cfg.get("autogen_policy", config.get("autogen_policy", True)):
        raise DeployError(
            f'stage {stage!r} lets Chalice generate its IAM policy (with "Resource": "*"). '
            f'Set "autogen_policy": false and "iam_policy_file": "policy-{stage}.json" in .chalice/config.json '
            "(python -m infra.deploy policies writes the file)."
        )


def ensure_policy_file(stage: str, config: Mapping[str, Any], project_dir: Path = ROOT) -> Path:
    """(Re)write the stage's policy file when it differs from infra/iam.py."""
    chalice_dir = project_dir / ".chalice"
    path = iam.policy_path(stage, chalice_dir)
    if stage in iam.stale_policy_files(config, chalice_dir):
        iam.write_policy_files([stage], config, chalice_dir)
        print(f"wrote {path} from infra/iam.py", file=sys.stderr)
    return path


def write_merge_template(stage: str, config: Mapping[str, Any], build_dir: Path) -> Path:
    build_dir.mkdir(parents=True, exist_ok=True)
    path = build_dir / f"merge-{stage}.json"
    path.write_text(json.dumps(cloudformation.merge_template(stage, config), indent=2) + "\n")
    return path


def _clear_outdir(outdir: Path) -> None:
    if not outdir.exists():
        return
    extra = {p.name for p in outdir.iterdir()} - PACKAGE_FILES
    if extra:
        raise DeployError(f"{outdir} holds other files ({', '.join(sorted(extra))}); choose an empty or new --out")
    shutil.rmtree(outdir)


def package(stage: str, outdir: Path, *, region: str, project_dir: Path = ROOT) -> Path:
    """Package the stage into ``outdir`` (sam.json + deployment.zip); returns the template path."""
    config = load_chalice_config(project_dir / ".chalice" / "config.json")
    require_own_policies(stage, config)
    ensure_policy_file(stage, config, project_dir)
    merge = write_merge_template(stage, config, project_dir / "build")
    outdir = outdir.resolve()
    _clear_outdir(outdir)
    run_chalice(
        ["package", "--stage", stage, "--merge-template", str(merge), str(outdir)],
        region=region,
        project_dir=project_dir,
    )
    template_path = outdir / "sam.json"
    problems = cloudformation.check_packaged(json.loads(template_path.read_text()))
    if problems:
        raise DeployError("the packaged template is not wired as expected:\n  " + "\n  ".join(problems))
    return template_path


def lint(template_path: Path, regions: list[str] | None = None) -> list[str]:
    """cfn-lint's errors and warnings for a template (informational findings are left out)."""
    try:
        from cfnlint.api import lint_file
        from cfnlint.config import ManualArgs
    except ImportError as exc:  # pragma: no cover - dev dependency
        raise ToolError("cfn-lint is not installed: pip install cfn-lint") from exc
    matches = lint_file(template_path, ManualArgs(regions=regions or ["us-east-1"]))
    return [str(m) for m in matches if m.rule.id[0] in ("E", "W")]
