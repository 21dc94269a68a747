"""Scalar summaries of Λ and of embeddings, for logging (collapse and GHA-ordering indicators)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


@torch.no_grad()
def lambda_eigenvalues(second_moment: Tensor) -> Tensor:
    """Eigenvalues of Λ's symmetric part, largest first (tril's asymmetry is left out)."""
    lam = second_moment.float()
    return torch.linalg.eigvalsh((lam + lam.T) / 2).flip(0)


@torch.no_grad()
def lambda_diagnostics(second_moment: Tensor, top_k: int = 4) -> dict[str, float]:
    """Trace, off-diagonal energy ratio ‖Λ - diag Λ‖²_F / ‖Λ‖²_F, the ``top_k`` eigenvalues and
    how the trace spreads over them: ``participation`` (Σλ)²/Σλ², the number of directions that
    would hold it in equal parts (1 to d), and ``top4_share``, the part the largest four hold.

    Under the triangular (GHA) loss Λ should approach a diagonal matrix with decreasing entries:
    the off-diagonal ratio goes to 0 and ``diag_sorted`` (fraction of adjacent diagonal entries in
    decreasing order) goes to 1.
    """
    lam = second_moment.float()
    lam = (lam + lam.T) / 2
    diag = lam.diagonal()
    total = lam.square().sum().clamp_min(1e-12)
    eig = lambda_eigenvalues(lam)
    out = {
        "trace": diag.sum().item(),
        "offdiag_ratio": ((total - diag.square().sum()) / total).item(),
        "diag_sorted": (diag[:-1] >= diag[1:]).float().mean().item() if len(diag) > 1 else 1.0,
        "participation": spread(eig),
        "top4_share": (eig[:4].sum() / eig.sum().clamp_min(1e-12)).item(),
    }
    out.update({f"eig_{i}": eig[i].item() for i in range(min(top_k, len(eig)))})
    return out


def spread(eigenvalues: Tensor) -> float:
    """The participation ratio (Σλ)²/Σλ² of non-negative eigenvalues: k for k equal ones."""
    lam = eigenvalues.clamp_min(0)
    return (lam.sum().square() / lam.square().sum().clamp_min(1e-24)).item()


@torch.no_grad()
def embedding_std(z: Tensor) -> float:
    """Mean over dimensions of the std of L2-normalised embeddings (0 when collapsed, ≈1/√d when
    spread out)."""
    return F.normalize(z.float(), dim=-1).std(dim=0).mean().item()


@torch.no_grad()
def effective_rank(z: Tensor) -> float:
    """Effective rank (Roy & Vetterli 2007): exp of the entropy of the normalised singular values
    of the centred embeddings (N, d); 1 for a collapsed batch, up to min(N, d)."""
    z = z.float()
    if not torch.isfinite(z).all():
        return float("nan")
    s = torch.linalg.svdvals(z - z.mean(0))
    p = s / s.sum().clamp_min(1e-12)
    return torch.exp(-(p * torch.log(p.clamp_min(1e-12))).sum()).item()


@torch.no_grad()
def rankme(z: Tensor, eps: float = 1e-7) -> float:
    """RankMe (Garrido et al., ICML 2023, eq. 1): exp(−Σ_k p_k log p_k) with p_k = σ_k / ‖σ‖₁ + ε,
    σ the singular values of the features (N, d) as they are (not centred, unlike
    ``effective_rank``); between 1 and min(N, d)."""
    z = z.float()
    if not torch.isfinite(z).all():
        return float("nan")
    s = torch.linalg.svdvals(z)
    p = s / s.sum().clamp_min(1e-12) + eps
    return torch.exp(-(p * torch.log(p)).sum()).item()
