"""ops/gpu_check.sh --dry-run: the GPU check's code paths, on the CPU at a tiny size."""

import json
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]

pytestmark = pytest.mark.slow


def test_gpu_check_dry_run_writes_every_part_and_the_summary(tmp_path):
    done = subprocess.run(
        ["bash", str(ROOT / "ops" / "gpu_check.sh"), str(tmp_path), "--dry-run"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["mode"] == "dry-run"
    for variant in ("eager", "channels_last", "compile"):
        row = results["throughput"][variant]
        assert all(row[k]["images_per_s"] > 0 for k in ("minc", "byol", "bound"))
        assert row["minc / byol"] == pytest.approx(row["minc"]["step_s"] / row["byol"]["step_s"])
    for mode in ("device", "loader"):
        assert results["data_path"][f"fit_{mode}"]["images"] > 0
    bf16 = results["mixed_precision"]["bf16-mixed"]
    assert bf16["all_losses_finite"] and bf16["lambda_dtypes"] == ["torch.float32"]
    assert set(results["lambda_scale"]) == {"16", "32"}
    summary = (tmp_path / "summary.md").read_text()
    assert "| compile |" in summary
    assert "meets the target" in summary or "misses the target" in summary
