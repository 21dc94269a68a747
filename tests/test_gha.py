"""The property MINC exists for: tril(Λ) recovers the eigenvectors *in order*.

Synthetic problem with a known spectrum: whitened Gaussian inputs x ∈ R^8 and a second view
x' = C x + sqrt(I - C²) ε, so E[x x'ᵀ] = C = diag(0.9, 0.75, 0.6, 0.45, 0.2, ...). A linear
encoder W (4 × 8) trained with the MINC loss has fixed points W C = A W: with A = Λ any rotation
of the top-4 eigenvectors, with A = tril(Λ) only the ordered eigenvectors themselves (GHA).
"""

import torch

from minc_lightning.diagnostics import lambda_diagnostics
from minc_lightning.loss import MINCLoss

D, DIM, N, STEPS = 8, 4, 128, 800
SPECTRUM = torch.tensor([0.9, 0.75, 0.6, 0.45, 0.2, 0.1, 0.05, 0.0])


def train(triangular: bool) -> tuple[torch.Tensor, MINCLoss]:
    torch.manual_seed(1)
    W = (torch.randn(DIM, D) * 0.3).requires_grad_(True)
    loss_fn = MINCLoss(DIM, alpha=0.2, triangular=triangular, mu=None)
    opt = torch.optim.SGD([W], lr=0.1)
    for _ in range(STEPS):
        x = torch.randn(N, D)
        x2 = x * SPECTRUM + torch.randn(N, D) * (1 - SPECTRUM**2).sqrt()
        a, b = torch.cat([x, x2]), torch.cat([x2, x])  # both view orders
        with torch.no_grad():
            t = b @ W.T  # the target: the same encoder, held fixed
        loss = loss_fn(a @ W.T, t)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return W.detach(), loss_fn


def figures(W: torch.Tensor, loss_fn: MINCLoss) -> tuple[torch.Tensor, torch.Tensor, float]:
    rows = W / W.norm(dim=1, keepdim=True)
    aligned = rows[:, :DIM].abs().diagonal()  # |cos(row k, e_k)|
    in_subspace = rows[:, :DIM].norm(dim=1)  # share of each row in span(e_1..e_4)
    offdiag = lambda_diagnostics(loss_fn.second_moment)["offdiag_ratio"]
    return aligned, in_subspace, offdiag


def test_triangular_recovers_ordered_eigenvectors_and_diagonal_lambda():
    W, loss_fn = train(triangular=True)
    aligned, in_subspace, offdiag = figures(W, loss_fn)
    diag = loss_fn.second_moment.diagonal()
    print(
        f"triangular: |cos(w_k, e_k)| = {aligned.tolist()}, off-diagonal energy {offdiag:.4%},"
        f" diag(Λ) = {diag.tolist()}"
    )
    assert (aligned > 0.99).all()
    assert offdiag < 0.01
    assert (diag[:-1] > diag[1:]).all()  # ordered like the spectrum
    torch.testing.assert_close(diag, SPECTRUM[:DIM], atol=0.1, rtol=0)


def test_full_lambda_recovers_only_a_rotation_of_the_subspace():
    W, loss_fn = train(triangular=False)
    aligned, in_subspace, offdiag = figures(W, loss_fn)
    print(
        f"full Λ: |cos(w_k, e_k)| = {aligned.tolist()}, in subspace {in_subspace.tolist()}, "
        f"off-diagonal energy {offdiag:.4%}"
    )
    assert (in_subspace > 0.99).all()  # the right subspace ...
    assert (aligned < 0.9).any()  # ... in an arbitrary rotation
    assert offdiag > 0.01
    eig = torch.linalg.eigvalsh(loss_fn.second_moment).flip(0)
    torch.testing.assert_close(eig, SPECTRUM[:DIM], atol=0.1, rtol=0)  # same spectrum
