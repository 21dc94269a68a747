"""The examples run (CI runs them on tiny data)."""

from pathlib import Path

import pytest
from helpers import python

pytestmark = pytest.mark.slow  # fresh Python processes

ROOT = Path(__file__).parents[1]


def test_drop_in_example_trains(tmp_path):
    result = python(str(ROOT / "examples" / "drop_in.py"), "--max_steps", "3", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "MINC loss after 3 steps" in result.stdout


def test_plain_pytorch_example_trains():
    result = python(str(ROOT / "examples" / "plain_pytorch.py"))
    assert result.returncode == 0, result.stderr[-2000:]
    loss, trace = result.stdout.split()[1].rstrip(","), result.stdout.split()[-1]
    assert float(loss) < 0 and abs(float(trace) - 1.0) < 1e-3  # mu=1: unit rows, trace 1
