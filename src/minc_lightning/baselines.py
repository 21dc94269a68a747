"""The baselines MINC is compared with (docs/method.md §5), through the same MINCModule code path:
the spectral contrastive loss (SCL, HaoChen et al. 2021) and BYOL's regression loss.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from minc_lightning._distributed import gather_with_grad, rank
from minc_lightning.errors import BadInput
from minc_lightning.loss import normalize_rows


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


class SpectralContrastiveLoss(nn.Module):
    """The spectral contrastive loss (docs/method.md §5), MINC's contrastive baseline.

    Args:
        mu: squared row norm after normalisation; ``None`` disables it.
        gather_distributed: take the negatives from every process through an autograd-aware
            gather, so the loss is that of the global batch and gradients are not 1/world_size
            too small.
    """

    def __init__(self, mu: float | None = 1.0, gather_distributed: bool = True) -> None:
        super().__init__()
        if mu is not None and not mu > 0:
            raise BadInput(f"SpectralContrastiveLoss: mu must be positive or None, got {mu}")
        self.mu = mu
        self.gather_distributed = gather_distributed

    def forward(self, z1: Tensor, z2: Tensor) -> Tensor:
        """Scalar loss for two views ``z1``, ``z2`` (N, d) of the same N images."""
        if z1.ndim != 2 or z1.shape != z2.shape or z1.shape[0] < 2:
            raise BadInput(
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
