"""LineProgress: one plain line every N optimizer steps, for logs that are not a terminal."""

from __future__ import annotations

import math
import sys
import time
from typing import Any

from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import ProgressBar


def duration(seconds: float) -> str:
    """``1h02m``, ``3m07s`` or ``12s``."""
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


class LineProgress(ProgressBar):
    """A progress report for SLURM logs and CI: every ``every_n_steps`` optimizer steps one line
    with the step, loss, learning rate, τ, images per second and the time left, and one line per
    validation. No carriage returns, so a log file holds only what a reader needs.

    ``minc-lightning`` uses it in place of the progress bar when stdout is not a terminal.

    Args:
        every_n_steps: one line every n optimizer steps; None: the trainer's
            ``log_every_n_steps``.
    """

    def __init__(self, every_n_steps: int | None = None) -> None:
        super().__init__()
        self.every_n_steps = every_n_steps  # None: the trainer's log_every_n_steps
        self.enabled = True
        self.started = 0.0
        self.first_step = 0
        self.images = 0
        self.last_step = -1

    def disable(self) -> None:
        self.enabled = False

    def enable(self) -> None:
        self.enabled = True

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.started = time.monotonic()
        self.first_step = trainer.global_step
        self.images = 0
        self.every_n_steps = self.every_n_steps or max(trainer.log_every_n_steps, 1)

    def on_train_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, idx: int
    ) -> None:
        views = batch[0] if isinstance(batch, (list, tuple)) else batch
        self.images += len(views[0]) if isinstance(views, (list, tuple)) else len(views)
        step = trainer.global_step
        if not self.enabled or step == self.last_step or step % self.every_n_steps:
            return
        self.last_step = step
        self.print_line(trainer, pl_module, step)

    def print_line(self, trainer: Trainer, pl_module: LightningModule, step: int) -> None:
        elapsed = max(time.monotonic() - self.started, 1e-9)
        total = trainer.estimated_stepping_batches
        done = step - self.first_step
        left = (total - step) * elapsed / done if done and math.isfinite(total) else math.nan
        metrics = trainer.callback_metrics
        parts = [f"step {step}/{int(total) if math.isfinite(total) else '?'}"]
        if "train/loss" in metrics:
            parts.append(f"loss {float(metrics['train/loss']):.4f}")
        if trainer.optimizers:
            parts.append(f"lr {trainer.optimizers[0].param_groups[0]['lr']:.4g}")
        if getattr(getattr(pl_module, "objective", None), "uses_target", False):
            parts.append(f"tau {pl_module.tau(step):.5f}")
        parts.append(f"{self.images / elapsed:.0f} img/s")
        parts.append(f"ETA {duration(left)}" if math.isfinite(left) else "ETA ?")
        print(" | ".join(parts), file=sys.stdout, flush=True)

    def on_validation_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not self.enabled or trainer.sanity_checking:
            return
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val/")}
        if metrics:
            scores = ", ".join(f"{k} {100 * v:.2f}%" for k, v in sorted(metrics.items()))
            print(f"epoch {trainer.current_epoch} validation: {scores}", flush=True)
