"""The MINC loss and its Λ (Guo et al., AISTATS 2025; docs/method.md §2). ``p`` (N, d): online
predictions; ``t`` (N, d): target projections of the other view; Λ (d, d): an EMA of E[φφᵀ].

    L = mean_i [ -2 p_i·t_i + 2 p_i·sg(A p_i) ],    A = tril(Λ) (triangular) or Λ

so dL/dp_i = (2/N)(A p_i - t_i): pᵀΛp replaces SCL's B² pair term; tril (the Generalized
Hebbian Algorithm's trick) orders the dimensions as eigenfunctions."""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from minc_lightning._distributed import all_reduce_sum
from minc_lightning.errors import BadInput
from minc_lightning.validation import check, interval, one_of, optional, positive, positive_int


def normalize_rows(x: Tensor, mu: float | None) -> Tensor:
    """Rescale every row to squared norm ``mu`` (φ ↦ √mu·φ/‖φ‖); identity when ``mu`` is None."""
    return x if mu is None else F.normalize(x, dim=-1) * mu**0.5


def minc_loss(p: Tensor, t: Tensor, A: Tensor) -> Tensor:
    """mean_i[-2 p_i·t_i + 2 p_i·sg(A p_i)]. ``sg`` covers ``A p_i`` as a whole: with ``p @ A @ p``
    differentiable on both sides autograd would use (A + Aᵀ)/2 and lose tril's ordering."""
    return minc_loss_and_pull(p, t, A)[0]


def minc_loss_and_pull(p: Tensor, t: Tensor, A: Tensor) -> tuple[Tensor, Tensor]:
    """``minc_loss`` and the Λ term's pull against the alignment term's: dL/dp_i is
    (2/N)(A p_i − t_i), so the ratio of their root mean squares is ‖A P‖_F / ‖T‖_F (detached).
    Near 0 the loss trains as BYOL's alignment alone; it is free, A p is computed anyway."""
    Ap = p.detach() @ A.T  # (N, d): row i is A p_i
    loss = (-2.0 * (p * t).sum(-1) + 2.0 * (p * Ap).sum(-1)).mean()
    return loss, (Ap.norm() / t.detach().norm().clamp_min(1e-12)).detach()


class MINCLoss(nn.Module):
    """The MINC loss with Λ in the float32 buffer ``second_moment``, updated only in training
    mode, before the loss, from the batch estimate averaged over all processes (the first update
    sets Λ; a batch with a non-finite value anywhere changes nothing; ``num_updates`` counts).

    Args:
        dim: embedding width d.
        alpha: EMA rate of Λ in (0, 1]. With 1, full Λ, no ``mu`` and same-batch targets, the
            gradient in p is that of the SCL batch estimate whose pair term keeps i = j
            (docs/method.md §2, item 5); not the i ≠ j estimate of ``SpectralContrastiveLoss``.
        triangular: tril(Λ) (ordered, decorrelated dimensions) or Λ (a rotation of them).
        moment_source: "target" (the slow network: a steadier estimate) or "online" (``sg(p)``).
        mu: squared row norm after normalisation; ``None`` disables it (risking divergence).
    """

    def __init__(
        self,
        dim: int,
        alpha: float,
        triangular: bool = True,
        moment_source: Literal["target", "online"] = "target",
        mu: float | None = 1.0,
    ) -> None:
        super().__init__()
        check(
            "MINCLoss",
            dim=(dim, positive_int),
            alpha=(alpha, interval(0.0, 1.0, open_low=True)),
            moment_source=(moment_source, one_of(("target", "online"))),
            mu=(mu, optional(positive)),
        )
        self.dim = dim
        self.alpha = alpha
        self.triangular = triangular
        self.moment_source = moment_source
        self.mu = mu
        self.register_buffer("second_moment", torch.zeros(dim, dim))
        self.register_buffer("num_updates", torch.zeros((), dtype=torch.long))
        self.pull_ratio: Tensor | None = None  # the last training batch's (``minc_loss_and_pull``)

    @property
    def A(self) -> Tensor:  # the matrix the loss uses
        return self.second_moment.tril() if self.triangular else self.second_moment

    @torch.no_grad()
    def update(self, p: Tensor, t: Tensor, rate: float | None = None) -> None:
        """One EMA step of Λ from a batch at ``rate`` (None: ``alpha``); no host
        synchronisation."""
        s, other = (t, p.detach()) if self.moment_source == "target" else (p.detach(), t)
        # a non-finite value in s reaches sᵀs; one in the other input reaches its sum (a
        # single pass, where counting non-finite elements took three)
        check = other.sum()
        # one all_reduce carries every process's Σ sᵀs, row count and the other input's sum
        stats = all_reduce_sum(
            torch.cat([(s.T @ s).flatten(), s.new_tensor([len(s)]), check[None]])
        )
        estimate = stats[:-2].view(self.dim, self.dim) / stats[-2]
        finite = torch.isfinite(stats[-1]) & torch.isfinite(estimate).all()
        rate = self.alpha if rate is None else rate
        weight = torch.where(self.num_updates == 0, 1.0, rate)  # the first sets Λ
        updated = torch.lerp(self.second_moment, estimate, weight)
        self.second_moment.copy_(torch.where(finite, updated, self.second_moment))
        self.num_updates.add_(finite.long())

    def forward(
        self,
        online: Tensor,
        target: Tensor,
        moment_rows: int | None = None,
        rate: float | None = None,
    ) -> Tensor:
        """(N, d), (N, d) → scalar. Λ is updated from the first ``moment_rows`` rows (None: all),
        with multi-crop the global pairs, in which each global target appears once, at ``rate``
        (None: ``alpha``; MINCModule passes its run plan's, ``alpha`` scaled to the batch)."""
        if online.ndim != 2 or online.shape != target.shape or online.shape[1] != self.dim:
            shapes = f"{tuple(online.shape)} and {tuple(target.shape)}"
            raise BadInput(f"MINCLoss: online, target need shape (N, {self.dim}): {shapes}")
        with torch.autocast(device_type=online.device.type, enabled=False):  # float32 always
            p = normalize_rows(online.float(), self.mu)
            t = normalize_rows(target.detach().float(), self.mu)
            if self.training:
                self.update(p[:moment_rows], t[:moment_rows], rate)
            loss, pull = minc_loss_and_pull(p, t, self.A)
            if self.training:
                self.pull_ratio = pull
            return loss
