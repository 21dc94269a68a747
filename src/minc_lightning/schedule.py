"""The learning-rate schedule: linear warm-up, then cosine decay, per optimizer step."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from lightly.utils.scheduler import cosine_warmup_schedule
from lightning.pytorch import Trainer

from minc_lightning.errors import BadInput


class WarmupCosine(torch.optim.lr_scheduler.LambdaLR):
    """lightly's warm-up/cosine factor (1 → 0.001) with a horizon read at every step.

    lightly's ``CosineWarmupScheduler`` stores its step counts in its state, so a run resumed
    with a longer ``max_epochs`` keeps the old horizon and trains the added epochs at the floor.
    Here ``horizon()`` returns ``(warmup_steps, total_steps)`` of the *current* run, the
    checkpoint holds only the step count, and the base learning rates are the configured ones:
    a resumed run follows the schedule of its new length (as τ does), and a changed lr applies.
    """

    def __init__(
        self, optimizer: torch.optim.Optimizer, horizon: Callable[[], tuple[int, int]]
    ) -> None:
        self.horizon = horizon
        super().__init__(optimizer, lambda step: self.factor(step))

    def factor(self, step: int) -> float:
        """The learning rate's multiplier after ``step`` optimizer steps."""
        warmup, total = self.horizon()
        total = max(total, 1)
        # float(): some lightly versions return numpy scalars, which weights_only loads refuse
        return float(
            cosine_warmup_schedule(min(step, total), total, 1.0, 0.001, min(warmup, total), 0.0)
        )

    def state_dict(self) -> dict[str, Any]:
        return {"last_epoch": self.last_epoch}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore the step count only (the horizon and base learning rates are this run's)."""
        self.last_epoch = state_dict["last_epoch"]
        self.refresh()

    def refresh(self) -> None:
        """Set every group's lr for the current step under the current horizon (after a restore
        the optimizer's lr was computed by the old one; before training starts, the horizon may
        have been unknown)."""
        lrs = [base * self.factor(self.last_epoch) for base in self.base_lrs]
        for group, lr in zip(self.optimizer.param_groups, lrs, strict=True):
            group["lr"] = lr


def run_horizon(trainer: Trainer, warmup_epochs: float) -> tuple[int, int]:
    """(warm-up steps, total optimizer steps) of the trainer's run, once its data is loaded:
    warm-up counts epochs of this run's batches, also when ``max_steps`` ends the run early."""
    total = trainer.estimated_stepping_batches
    if not math.isfinite(total):
        raise BadInput("MINCModule needs a finite run: set trainer.max_epochs or max_steps")
    per_epoch = math.ceil(trainer.num_training_batches / trainer.accumulate_grad_batches)
    return min(int(warmup_epochs * per_epoch), int(total)), int(total)


# --- the EMA scaling rule (Busbridge et al., "How to Scale Your EMA", NeurIPS 2023) ------------
REFERENCE_BATCH = 256  # alpha and tau_base are given for 256 images per update, as lr is


def scaled_momentum(momentum: float, kappa: float) -> float:
    """The momentum ρ of an EMA whose update sees ``kappa`` times the reference batch: ρ^κ
    keeps the EMA's horizon, counted in images, where it was (exactly ρ at κ = 1)."""
    return momentum if kappa == 1 else momentum**kappa


def scaled_rate(rate: float, kappa: float) -> float:
    """The EMA rate α = 1 − ρ under the same rule: 1 − (1 − α)^κ (exactly α at κ = 1)."""
    return rate if kappa == 1 else 1.0 - (1.0 - rate) ** kappa
