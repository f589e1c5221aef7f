"""The quick benchmark run: it must finish and print every figure.

Speed never fails this test (the machines are shared and noisy); a crash,
a missing figure or a non-zero exit does.
"""

import subprocess
import sys
from pathlib import Path

import pytest

from load.bench import figure_names

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.integration  # starts a moto server on 127.0.0.1


@pytest.mark.timeout(180)
def test_quick_benchmarks_print_every_figure():
    result = subprocess.run(
        [sys.executable, "-m", "load.bench", "--quick"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=170,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    missing = [name for name in figure_names() if name not in result.stdout]
    assert not missing, f"figures not printed: {missing}\n{result.stdout}"
    assert "summary:" in result.stdout, result.stdout
