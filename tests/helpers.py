"""Tiny deterministic data and modules shared by the tests (seconds on a CPU)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset

from minc_lightning.backbones import ConvNet
from minc_lightning.module import MINCModule

SIZE = 12


class TwoViewToy(Dataset):
    """Deterministic two-view images whose mean brightness encodes one of ``classes`` labels."""

    def __init__(self, n: int = 64, classes: int = 4, labelled: bool = True) -> None:
        self.n, self.classes, self.labelled = n, classes, labelled

    def __len__(self) -> int:
        return self.n

    def image(self, i: int, view: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(1000 * view + i)
        return torch.randn(3, SIZE, SIZE, generator=g) * 0.3 + (i % self.classes) - 1.5

    def __getitem__(self, i: int):
        label = i % self.classes if self.labelled else -1
        return [self.image(i, 1), self.image(i, 2)], label


class EvalToy(TwoViewToy):
    def __getitem__(self, i: int):
        return self.image(i, 3), i % self.classes


def tiny_module(**kwargs) -> MINCModule:
    torch.manual_seed(0)
    defaults = dict(
        backbone=ConvNet(width=4),
        batch_size=8,
        projection_hidden_dim=16,
        projection_dim=8,
        prediction_hidden_dim=16,
        num_classes=4,
        warmup_epochs=0,
        optimizer="sgd",
        lr=0.5,
    )
    return MINCModule(**(defaults | kwargs))


def loaders(batch_size: int = 8, n: int = 32, **kwargs) -> tuple[DataLoader, DataLoader]:
    train = DataLoader(TwoViewToy(n, **kwargs), batch_size=batch_size, drop_last=True)
    val = DataLoader(EvalToy(n), batch_size=batch_size)
    return train, val


def trainer(**kwargs) -> L.Trainer:
    defaults = dict(
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        log_every_n_steps=1,
        deterministic=True,
    )
    return L.Trainer(**(defaults | kwargs))


def python(
    *args: str, cwd: Path | None = None, timeout: float = 300
) -> subprocess.CompletedProcess:
    """``python *args`` in a fresh interpreter (this one's), its output captured as text."""
    return subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, cwd=cwd, timeout=timeout
    )
