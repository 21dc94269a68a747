"""The objectives MINCModule trains with, each declaring what it needs.

An objective with a target compares the online predictions p (2B, d) of both view orders with
the EMA target network's projections t (2B, d) of the other view: ``loss(p, t)``. One without a
target compares the online projections of the two views: ``loss(z1, z2)``, (B, d) each.
To add an objective, write its loss (an ``nn.Module``) and add one entry to ``OBJECTIVES``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any, Literal

from torch import Tensor, nn

from minc_lightning.baselines import BYOLLoss, SpectralContrastiveLoss
from minc_lightning.diagnostics import lambda_diagnostics
from minc_lightning.loss import MINCLoss


@dataclass(frozen=True)
class LossSettings:
    """MINCModule's arguments a loss may be built from."""

    dim: int
    alpha: float
    triangular: bool
    moment_source: Literal["target", "online"]
    mu: float | None

    @classmethod
    def of(cls, hparams: Mapping[str, Any]) -> LossSettings:
        """From MINCModule's hyper-parameters (``dim`` is its ``projection_dim``)."""
        return cls(hparams["projection_dim"], *(hparams[k] for k in LOSS_SETTINGS))


# MINCModule's arguments of the same names, in LossSettings' order (its dim is projection_dim)
LOSS_SETTINGS = tuple(f.name for f in fields(LossSettings) if f.name != "dim")


@dataclass(frozen=True)
class Objective:
    """A loss and what it needs from MINCModule.

    Args:
        build: the loss module, from MINCModule's settings.
        uses_target: trained against an EMA target network (``loss(p, t)``), else on the two
            views' online projections (``loss(z1, z2)``).
        uses_predictor: the online network ends in a predictor MLP (when the module's
            ``use_predictor`` is on).
        diagnostics: scalars of the loss's state to log (Λ's, for MINC).
        reads: which of the loss settings (``LossSettings``) the loss reads.
        stateful: the loss keeps an estimate from the batch's targets (Λ): with local views it
            is told which rows are the global pairs, ``loss(p, t, moment_rows=2B)``.
    """

    build: Callable[[LossSettings], nn.Module]
    uses_target: bool
    uses_predictor: bool
    diagnostics: Callable[[nn.Module], dict[str, float]] = lambda loss: {}
    reads: tuple[str, ...] = ()
    stateful: bool = False

    def ignored(self) -> tuple[str, ...]:
        """MINCModule's settings this objective does not use."""
        unused = [k for k in LOSS_SETTINGS if k not in self.reads]
        if not self.uses_target:
            unused.append("tau_base")
        if not self.uses_predictor:
            unused += ["use_predictor", "prediction_hidden_dim"]
        return tuple(unused)


def _minc_state(loss: nn.Module) -> dict[str, float]:
    second_moment: Tensor = loss.second_moment
    stats = {f"lambda/{k}": v for k, v in lambda_diagnostics(second_moment).items()}
    if loss.pull_ratio is not None:  # the Λ term's gradient in p over the alignment term's
        stats["lambda/pull_ratio"] = loss.pull_ratio.item()
    return stats


OBJECTIVES: dict[str, Objective] = {
    "minc": Objective(
        build=lambda s: MINCLoss(s.dim, s.alpha, s.triangular, s.moment_source, s.mu),
        uses_target=True,
        uses_predictor=True,
        diagnostics=_minc_state,
        reads=LOSS_SETTINGS,
        stateful=True,
    ),
    "spectral": Objective(
        build=lambda s: SpectralContrastiveLoss(s.mu),
        uses_target=False,
        uses_predictor=False,
        reads=("mu",),
    ),
    "byol": Objective(build=lambda s: BYOLLoss(), uses_target=True, uses_predictor=True),
}
