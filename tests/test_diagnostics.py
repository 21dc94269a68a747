"""Λ's summaries (``diagnostics.lambda_diagnostics``) on matrices whose answer is known."""

import pytest
import torch

from minc_lightning.diagnostics import lambda_diagnostics, spread


def rotated(eigenvalues: list[float], seed: int = 0) -> torch.Tensor:
    """A symmetric matrix with these eigenvalues in a random basis."""
    n = len(eigenvalues)
    q, _ = torch.linalg.qr(torch.randn(n, n, generator=torch.Generator().manual_seed(seed)))
    return q @ torch.diag(torch.tensor(eigenvalues)) @ q.T


@pytest.mark.parametrize(
    "eigenvalues, participation",
    [([1.0] * 8, 8.0), ([2.0, 2.0, 0, 0, 0, 0], 2.0), ([1.0, 0, 0], 1.0), ([3.0, 1.0], 16 / 10)],
)
def test_participation_counts_the_directions_that_hold_the_trace(eigenvalues, participation):
    """(Σλ)²/Σλ²: k for k equal eigenvalues, whatever the basis."""
    assert spread(torch.tensor(eigenvalues)) == pytest.approx(participation)
    stats = lambda_diagnostics(rotated(eigenvalues))
    assert stats["participation"] == pytest.approx(participation, rel=1e-4)


def test_top4_share_is_the_part_of_the_trace_the_four_largest_hold():
    eigenvalues = [0.27, 0.20, 0.19, 0.15] + [0.19 / 124] * 124  # the quickstart's, as filed
    stats = lambda_diagnostics(rotated(eigenvalues, seed=1))
    assert stats["top4_share"] == pytest.approx(0.81, abs=1e-4)
    assert stats["trace"] == pytest.approx(1.0, abs=1e-4)
    top = [stats[f"eig_{i}"] for i in range(4)]
    assert top == pytest.approx([0.27, 0.20, 0.19, 0.15], abs=1e-5)


def test_ordering_of_a_diagonal_and_of_a_rotated_matrix():
    """A diagonal in decreasing order: no off-diagonal energy, every adjacent pair in order; the
    same spectrum rotated: off-diagonal energy, whatever its diagonal."""
    ordered = lambda_diagnostics(torch.diag(torch.tensor([4.0, 3.0, 2.0, 1.0])))
    assert ordered["offdiag_ratio"] == pytest.approx(0.0)
    assert ordered["diag_sorted"] == 1.0
    assert lambda_diagnostics(rotated([4.0, 3.0, 2.0, 1.0]))["offdiag_ratio"] > 0.1
    reversed_ = lambda_diagnostics(torch.diag(torch.tensor([1.0, 2.0, 3.0, 4.0])))
    assert reversed_["diag_sorted"] == 0.0
