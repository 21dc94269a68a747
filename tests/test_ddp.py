"""Two gloo processes under Lightning's DDP equal one process on the global batch, step by step."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch

pytestmark = pytest.mark.slow  # fresh Python processes

SCRIPT = Path(__file__).parent / "ddp_script.py"


def train(out: Path, devices: int, objective: str) -> list[list[dict]]:
    out.mkdir()
    result = subprocess.run(
        [sys.executable, str(SCRIPT), str(out), str(devices), objective],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return [torch.load(out / f"rank{r}.pt", weights_only=True) for r in range(devices)]


@pytest.mark.parametrize("objective", ["minc", "spectral"])
def test_two_processes_match_one_process_at_every_step(tmp_path, objective):
    (single,) = train(tmp_path / "one", 1, objective)
    rank0, rank1 = train(tmp_path / "two", 2, objective)
    assert len(single) == len(rank0) == len(rank1) == 4
    for step, (a, b, s) in enumerate(zip(rank0, rank1, single, strict=True)):
        # the processes agree exactly on the state they share
        assert torch.equal(a["online"], b["online"]), step
        if objective == "minc":
            # the EMA scaling rule counts the global batch: 8 images per update either way
            assert a["alpha"] == b["alpha"] == s["alpha"] == 1 - 0.9 ** (8 / 256)
            assert a["tau_start"] == s["tau_start"] == 0.99 ** (8 / 256)
            assert torch.equal(a["lambda"], b["lambda"]), step
            assert torch.equal(a["target"], b["target"]), step
            torch.testing.assert_close(a["lambda"], s["lambda"], rtol=1e-4, atol=1e-6)
            torch.testing.assert_close(a["target"], s["target"], rtol=1e-4, atol=1e-6)
        # the mean of the per-process losses is the global-batch loss; the weights follow
        torch.testing.assert_close((a["loss"] + b["loss"]) / 2, s["loss"], rtol=1e-4, atol=1e-6)
        torch.testing.assert_close(a["online"], s["online"], rtol=1e-4, atol=1e-6)
