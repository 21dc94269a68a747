"""What the benchmark scripts share. Python puts a script's own folder first on ``sys.path``, so
``python benchmarks/<name>.py`` finds this module from any working directory."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "docs" / "data"  # raw results, committed; report.py draws docs/results.md from them


def quiet_trainer(device: str, precision: str = "32-true", **kwargs: Any) -> L.Trainer:
    """A one-device Trainer that writes nothing and prints nothing: a benchmark's own."""
    defaults = dict(
        accelerator=device,
        devices=1,
        precision=precision,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    return L.Trainer(**(defaults | kwargs))
