"""The learning-rate schedule: linear warm-up, then cosine decay, per optimizer step."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from lightly.utils.scheduler import cosine_warmup_schedule


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
        return cosine_warmup_schedule(min(step, total), total, 1.0, 0.001, min(warmup, total), 0.0)

    def state_dict(self) -> dict[str, Any]:
        return {"last_epoch": self.last_epoch, "_step_count": self._step_count}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore the step count; set every group's lr from it and the current horizon (the
        optimizer's restored lr was computed by the old one)."""
        self.last_epoch = state_dict["last_epoch"]
        self._step_count = state_dict["_step_count"]
        lrs = [base * self.factor(self.last_epoch) for base in self.base_lrs]
        for group, lr in zip(self.optimizer.param_groups, lrs, strict=True):
            group["lr"] = lr
        self._last_lr = lrs
