"""What the benchmarks share: the repository's paths, a quiet Trainer and the evaluation score."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
import torch

from minc_lightning.scoring import knn_accuracy, linear_accuracy, split_features

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "docs" / "data"  # raw results, committed; report.py draws docs/results.md from them
CLI_HELP = "Any other argument goes to minc-lightning fit, e.g. --trainer.max_epochs=4."


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


def score(
    backbone: torch.nn.Module, dm: Any, device: torch.device, knn_k: int, linear_epochs: int
) -> dict[str, float]:
    """kNN (T=0.1) and linear top-1 of ``backbone``'s frozen features on ``dm``'s two splits
    under the eval transform: ``minc-lightning-eval``'s own code path."""
    features = split_features(
        backbone, dm.eval_dataloader("train"), dm.eval_dataloader("val"), device, dm.num_classes
    )
    return {
        "knn": knn_accuracy(features, k=knn_k, temperature=0.1)["top1"],
        "linear": linear_accuracy(features, epochs=linear_epochs)["top1"],
    }
