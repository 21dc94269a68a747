"""The run plan: what a fit's batches decide, computed once when it starts, from one reference
batch, and passed to what uses it (the loss, the schedules, the checkpoint's resume record).

``lr``, ``alpha`` (Λ's EMA rate) and ``tau_base`` (the target's momentum) are given for
``REFERENCE_BATCH`` images. A fit of global batch G scales the learning rate by G / 256 and each
moving average by the EMA scaling rule (Busbridge et al., NeurIPS 2023): an update that sees κ
times 256 images has momentum ρ^κ. Λ is updated at every forward from the batch all-reduced
over the processes (κ = per device × processes / 256); the target once per optimizer step
(κ also × gradient accumulation). ``ema_scaling=False`` keeps the given values per update.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from lightning.pytorch.utilities import rank_zero_info

from minc_lightning.errors import BadInput
from minc_lightning.schedule import REFERENCE_BATCH, run_horizon, scaled_momentum, scaled_rate


@dataclass(frozen=True)
class Ema:
    """One moving average: its value as given (per 256 images) and as applied (per update)."""

    given: float
    applied: float
    kappa: float  # images one update sees, per REFERENCE_BATCH (1 without ema_scaling)


@dataclass(frozen=True)
class RunPlan:
    """What one fit applies. ``emas`` holds "alpha" where the objective keeps Λ and "tau_base"
    where it has a target network; ``horizon`` is (warm-up steps, total optimizer steps);
    ``first_step`` the global step the fit started (or resumed) at."""

    global_batch: int
    lr: float
    emas: dict[str, Ema] = field(default_factory=dict)
    horizon: tuple[int, int] = (0, 1)
    first_step: int = 0

    def applied(self, name: str) -> float | None:
        """The applied value of the EMA ``name`` (None: this objective has none)."""
        return self.emas[name].applied if name in self.emas else None

    def line(self, hp: Any, trainer: Any) -> str:
        """The start-up line that states the plan."""
        emas = "".join(f", {k} {v.given:.6g} → {v.applied:.6g}" for k, v in self.emas.items())
        kappas = "/".join(f"{v.kappa:.4g}" for v in self.emas.values())
        rule = f" (EMA scaling rule, κ = {kappas})" if self.emas and hp.ema_scaling else ""
        return (
            f"MINCModule: global batch {self.global_batch} ({hp.batch_size} per device × "
            f"{trainer.world_size} processes × {trainer.accumulate_grad_batches} accumulated), "
            f"lr {self.lr:.4g} (= {hp.lr} × {self.global_batch}/{REFERENCE_BATCH}), "
            f"{self.horizon[0]} warm-up of {self.horizon[1]} steps{emas}{rule}"
        )


def global_batch(batch_size: int | None, trainer: Any) -> int:
    """Images per optimizer step over all processes (per device × processes × accumulation)."""
    if batch_size is None:
        raise BadInput(
            "MINCModule needs batch_size, the images per training batch on one process, to "
            "scale the learning rate: MINCModule(batch_size=...), or data.batch_size through "
            "minc-lightning (linked)."
        )
    return batch_size * trainer.world_size * trainer.accumulate_grad_batches


def emas_of(hp: Any, trainer: Any, keeps_lambda: bool, has_target: bool) -> dict[str, Ema]:
    """Each moving average the objective has, given and applied (module docstring)."""
    per_forward = hp.batch_size * trainer.world_size
    kappas = {"alpha": per_forward, "tau_base": per_forward * trainer.accumulate_grad_batches}
    scale = {"alpha": scaled_rate, "tau_base": scaled_momentum}
    emas = {}
    for name, present in (("alpha", keeps_lambda), ("tau_base", has_target)):
        if present:
            kappa = kappas[name] / REFERENCE_BATCH if hp.ema_scaling else 1
            emas[name] = Ema(hp[name], scale[name](hp[name], kappa), kappa)
    return emas


def scaled_lr(hp: Any, trainer: Any) -> float:
    """``lr`` for the global batch: lr × global batch / 256 (what the optimizer is built with,
    before the fit's data is loaded, and what its plan states)."""
    return hp.lr * global_batch(hp.batch_size, trainer) / REFERENCE_BATCH


def plan_run(
    hp: Any, trainer: Any, keeps_lambda: bool, has_target: bool, start: bool = True
) -> RunPlan:
    """The plan of the fit ``trainer`` runs; ``start``: with its horizon and first step (once
    its data is loaded), else without (a checkpoint written outside a fit)."""
    batch, lr = global_batch(hp.batch_size, trainer), scaled_lr(hp, trainer)
    emas = emas_of(hp, trainer, keeps_lambda, has_target)
    if not start:
        return RunPlan(batch, lr, emas)
    return RunPlan(batch, lr, emas, run_horizon(trainer, hp.warmup_epochs), trainer.global_step)


def announce(plan: RunPlan, hp: Any, trainer: Any) -> None:
    """State the plan (one line, rank 0) and log the applied EMA values to every logger."""
    rank_zero_info(plan.line(hp, trainer))
    for logger in trainer.loggers:
        logger.log_hyperparams({f"ema/{k}": v.applied for k, v in plan.emas.items()})
