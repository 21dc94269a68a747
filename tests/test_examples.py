"""The examples run (CI runs them on tiny data)."""

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # fresh Python processes

ROOT = Path(__file__).parents[1]


def test_drop_in_example_trains(tmp_path):
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "drop_in.py"), "--max_steps", "3"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "MINC loss after 3 steps" in result.stdout


def test_plain_pytorch_example_trains():
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "plain_pytorch.py")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    loss, trace = result.stdout.split()[1].rstrip(","), result.stdout.split()[-1]
    assert float(loss) < 0 and abs(float(trace) - 1.0) < 1e-3  # mu=1: unit rows, trace 1
