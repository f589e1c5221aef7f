"""squeezer completion bash|zsh|fish: Click's completion script, for the program named in pyproject.toml."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from click.testing import CliRunner

from client.cli import cli


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_prints_the_script_for_each_shell(shell: str) -> None:
    result = CliRunner().invoke(cli, ["completion", shell], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "squeezer" in result.stdout
    assert "_SQUEEZER_COMPLETE" in result.stdout
    assert f"{shell}_complete" in result.stdout


def test_an_unknown_shell_is_a_usage_error() -> None:
    result = CliRunner().invoke(cli, ["completion", "tcsh"], catch_exceptions=False)
    assert result.exit_code == 2, result.output
    assert "'tcsh' is not one of" in result.output


def test_the_script_calls_back_into_click_completion() -> None:
    # What the bash script does on TAB: run squeezer with the variable set and the words so far.
    env = {**os.environ, "_SQUEEZER_COMPLETE": "bash_complete", "COMP_WORDS": "squeezer compl", "COMP_CWORD": "1"}
    done = subprocess.run([sys.executable, "-m", "client"], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "plain,completion" in done.stdout.splitlines()


def test_help_has_examples() -> None:
    result = CliRunner().invoke(cli, ["completion", "--help"], catch_exceptions=False)
    assert "Examples:" in result.output and "squeezer completion bash" in result.output
