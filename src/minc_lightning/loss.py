"""The MINC loss (Guo et al., "Representation Learning via Non-Contrastive Mutual Information",
AISTATS 2025) and the two baselines it is compared with.

Notation (SPEC section 2): ``p`` (N, d) online predictions, ``t`` (N, d) target projections of the
other view (row i of each is a positive pair), ``sg`` stop-gradient, Λ (d, d) an EMA of the second
moment E[φ φᵀ]. MINC replaces the B² pairwise term of the spectral contrastive loss by ``pᵀ Λ p``:

    L = mean_i [ -2 p_i·t_i + 2 p_i·sg(A p_i) ],    A = tril(Λ) (triangular) or Λ

so dL/dp_i = (2/N) (A p_i - t_i). The lower-triangular A is the Generalized Hebbian Algorithm's
trick: it orders the embedding dimensions as eigenfunctions instead of an arbitrary rotation.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from minc_lightning.distributed import all_reduce_sum, gather_with_grad, rank


def normalize_rows(x: Tensor, mu: float | None) -> Tensor:
    """Rescale every row to squared norm ``mu`` (φ ↦ √mu·φ/‖φ‖); identity when ``mu`` is None."""
    return x if mu is None else F.normalize(x, dim=-1) * mu**0.5


def minc_loss(p: Tensor, t: Tensor, A: Tensor) -> Tensor:
    """MINC objective for a fixed matrix ``A``: mean_i[-2 p_i·t_i + 2 p_i·sg(A p_i)].

    ``sg`` covers the product ``A p_i`` as a whole: with ``p @ A @ p`` differentiable on both
    sides autograd would use (A + Aᵀ)/2 and lose the ordering that tril(Λ) gives.
    """
    Ap = p.detach() @ A.T  # (N, d): row i is A p_i
    return (-2.0 * (p * t).sum(-1) + 2.0 * (p * Ap).sum(-1)).mean()


def spectral_contrastive_loss(
    z1: Tensor, z2: Tensor, z2_all: Tensor | None = None, offset: int = 0
) -> Tensor:
    """Spectral contrastive loss (HaoChen et al. 2021), batch estimate.

    ``-(2/N) Σ_i z1_i·z2_i + 1/(N(M-1)) Σ_i Σ_{j≠i} (z1_i·z2_all_j)²`` with z1, z2 (N, d) the
    local rows and ``z2_all`` (M, d) the second view of the global batch, in which the local rows
    start at ``offset`` (M = N, offset 0 on one process).
    """
    z2_all = z2 if z2_all is None else z2_all
    n, m = z1.shape[0], z2_all.shape[0]
    positive = (z1 * z2).sum(-1).mean()
    sim2 = (z1 @ z2_all.T).square()  # (N, M)
    own = torch.arange(n, device=z1.device)
    sim2 = sim2.index_put((own, own + offset), sim2.new_zeros(()))  # drop the positive pairs
    return -2.0 * positive + sim2.sum() / (n * (m - 1))


class MINCLoss(nn.Module):
    """MINC loss with its Λ state (SPEC section 2).

    Args:
        dim: embedding width d.
        alpha: EMA rate of Λ in (0, 1]; 1 uses the current batch's estimate only (then the
            gradient is exactly the spectral contrastive loss's). No default here: the paper
            leaves it open; MINCModule's default comes from our ablation (docs/results.md).
        triangular: use tril(Λ) (default, the paper's GHA form: ordered, decorrelated
            dimensions) instead of Λ (any rotation of them).
        moment_source: which embeddings feed Λ: "target" (default: the slowly moving network
            gives the steadier estimate, as Λ summarises the *other* view's distribution) or
            "online" (``sg(p)``).
        mu: squared row norm after normalisation (default 1, as the spectral contrastive
            reference code normalises); ``None`` disables it, and both MINC and SCL can then
            diverge within a few steps.

    Λ lives in the persistent float32 buffer ``second_moment`` (saved in ``state_dict``), with
    ``num_updates`` counting the batches that changed it. It is updated only in training mode,
    before the loss is computed, from the batch estimate averaged over all processes (weighted by
    their rows); the first update sets Λ to that estimate, and a batch holding any non-finite
    value on any process leaves it untouched.
    """

    second_moment: Tensor
    num_updates: Tensor

    def __init__(
        self,
        dim: int,
        alpha: float,
        triangular: bool = True,
        moment_source: Literal["target", "online"] = "target",
        mu: float | None = 1.0,
    ) -> None:
        super().__init__()
        if dim < 1:
            raise ValueError(f"MINCLoss: dim must be a positive integer, got {dim}")
        if not 0.0 < alpha <= 1.0:
            raise ValueError(f"MINCLoss: alpha must be in (0, 1], got {alpha}")
        if moment_source not in ("target", "online"):
            raise ValueError(
                f"MINCLoss: moment_source must be 'target' or 'online', got {moment_source!r}"
            )
        if mu is not None and not mu > 0:
            raise ValueError(f"MINCLoss: mu must be positive or None, got {mu}")
        self.dim, self.alpha, self.triangular = dim, alpha, triangular
        self.moment_source, self.mu = moment_source, mu
        self.register_buffer("second_moment", torch.zeros(dim, dim))
        self.register_buffer("num_updates", torch.zeros((), dtype=torch.long))

    @property
    def A(self) -> Tensor:
        """The matrix the loss uses: tril(Λ) or Λ."""
        return self.second_moment.tril() if self.triangular else self.second_moment

    @torch.no_grad()
    def update(self, p: Tensor, t: Tensor) -> None:
        """One EMA step of Λ from a batch (called by ``forward`` in training mode)."""
        s = t if self.moment_source == "target" else p.detach()
        # One all_reduce carries Σ sᵀs, the row count and the non-finite count of every process.
        stats = torch.cat(
            [
                (s.T @ s).flatten(),
                s.new_tensor([s.shape[0]]),
                (~torch.isfinite(p.detach())).sum().float().view(1)
                + (~torch.isfinite(t)).sum().float().view(1),
            ]
        )
        stats = all_reduce_sum(stats)
        estimate = stats[:-2].view(self.dim, self.dim) / stats[-2]
        finite = (stats[-1] == 0) & torch.isfinite(estimate).all()
        # weight 1 on the first update (Λ = estimate), alpha afterwards; no host sync needed
        weight = torch.where(self.num_updates == 0, 1.0, self.alpha)
        updated = torch.lerp(self.second_moment, estimate, weight)
        self.second_moment.copy_(torch.where(finite, updated, self.second_moment))
        self.num_updates.add_(finite.long())

    def forward(self, online: Tensor, target: Tensor) -> Tensor:
        """Scalar loss for ``online`` (N, dim, with gradient) against ``target`` (N, dim)."""
        if online.ndim != 2 or online.shape != target.shape or online.shape[1] != self.dim:
            raise ValueError(
                f"MINCLoss expects online and target of shape (N, {self.dim}), got "
                f"{tuple(online.shape)} and {tuple(target.shape)}"
            )
        # float32 for Λ and the loss, even under bf16/fp16 autocast
        with torch.autocast(device_type=online.device.type, enabled=False):
            p = normalize_rows(online.float(), self.mu)
            t = normalize_rows(target.detach().float(), self.mu)
            if self.training:
                self.update(p, t)
            return minc_loss(p, t, self.A)

    def extra_repr(self) -> str:
        return (
            f"dim={self.dim}, alpha={self.alpha}, triangular={self.triangular}, "
            f"moment_source={self.moment_source!r}, mu={self.mu}"
        )


class SpectralContrastiveLoss(nn.Module):
    """The spectral contrastive loss (SPEC section 4), MINC's contrastive baseline.

    Args:
        mu: squared row norm after normalisation; ``None`` disables it.
        gather_distributed: take the negatives from every process through an autograd-aware
            gather, so the loss is that of the global batch and gradients are not 1/world_size
            too small.
    """

    def __init__(self, mu: float | None = 1.0, gather_distributed: bool = True) -> None:
        super().__init__()
        if mu is not None and not mu > 0:
            raise ValueError(f"SpectralContrastiveLoss: mu must be positive or None, got {mu}")
        self.mu, self.gather_distributed = mu, gather_distributed

    def forward(self, z1: Tensor, z2: Tensor) -> Tensor:
        """Scalar loss for two views ``z1``, ``z2`` (N, d) of the same N images."""
        if z1.ndim != 2 or z1.shape != z2.shape or z1.shape[0] < 2:
            raise ValueError(
                "SpectralContrastiveLoss expects z1 and z2 of the same shape (N >= 2, d), got "
                f"{tuple(z1.shape)} and {tuple(z2.shape)}"
            )
        with torch.autocast(device_type=z1.device.type, enabled=False):
            z1 = normalize_rows(z1.float(), self.mu)
            z2 = normalize_rows(z2.float(), self.mu)
            if not self.gather_distributed:
                return spectral_contrastive_loss(z1, z2)
            z2_all = gather_with_grad(z2)
            # equal local batch sizes (drop_last); local rows start at rank·N
            return spectral_contrastive_loss(z1, z2, z2_all, offset=rank() * z1.shape[0])


def byol_loss(p: Tensor, t: Tensor) -> Tensor:
    """BYOL's regression loss, mean_i (2 - 2 cos(p_i, sg(t_i))), in float32."""
    with torch.autocast(device_type=p.device.type, enabled=False):
        return (2.0 - 2.0 * F.cosine_similarity(p.float(), t.detach().float(), dim=-1)).mean()


class BYOLLoss(nn.Module):
    """BYOL's symmetric loss for ``p``, ``t`` stacked in both view orders (N = 2B rows): the *sum*
    of the two directions' means, as in BYOL's reference code (averaging them halves the loss and
    its gradient, which silently changes results)."""

    def forward(self, p: Tensor, t: Tensor) -> Tensor:
        return 2.0 * byol_loss(p, t)
