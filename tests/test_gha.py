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


def train(triangular: bool, predictor: bool = False) -> tuple[torch.Tensor, MINCLoss]:
    """W after MINC training; with ``predictor`` the loss sees P W x, a trained linear map P
    (MINCModule's predictor, BYOL's) after the encoder, against the targets W x'."""
    torch.manual_seed(1)
    W = (torch.randn(DIM, D) * 0.3).requires_grad_(True)
    P = (torch.eye(DIM) + 0.1 * torch.randn(DIM, DIM)) if predictor else torch.eye(DIM)
    P.requires_grad_(predictor)
    loss_fn = MINCLoss(DIM, alpha=0.2, triangular=triangular, mu=None)
    opt = torch.optim.SGD([W, P] if predictor else [W], lr=0.1)
    for _ in range(STEPS * (2 if predictor else 1)):
        x = torch.randn(N, D)
        x2 = x * SPECTRUM + torch.randn(N, D) * (1 - SPECTRUM**2).sqrt()
        a, b = torch.cat([x, x2]), torch.cat([x2, x])  # both view orders
        with torch.no_grad():
            t = b @ W.T  # the target: the same encoder, held fixed
        loss = loss_fn(a @ W.T @ P.T, t)
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


def test_a_predictor_before_the_loss_lets_the_encoder_leave_the_order():
    """What MINCModule trains differs from the problem above by its predictor: with a trained
    linear P between the encoder and the loss, tril(Λ) no longer pins the encoder's rows to the
    eigenvectors in order (P absorbs the rotation), though they still span the subspace. On
    real data MINC with a predictor is then free to train as BYOL does
    (benchmarks/lambda_settings.py measures it without the predictor)."""
    W, loss_fn = train(triangular=True, predictor=True)
    aligned, in_subspace, offdiag = figures(W, loss_fn)
    print(f"with a predictor: |cos(w_k, e_k)| = {aligned.tolist()}, in {in_subspace.tolist()}")
    assert (in_subspace > 0.9).all()
    assert (aligned < 0.5).sum() >= 2  # without the predictor every one is above 0.99
