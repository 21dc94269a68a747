"""The MINC loss against the equations of docs/method.md §2, written out naively."""

import pytest
import torch

from minc_lightning.baselines import SpectralContrastiveLoss, byol_loss, spectral_contrastive_loss
from minc_lightning.loss import MINCLoss, minc_loss

torch.set_default_dtype(torch.float32)


def batch(n: int = 12, d: int = 6, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g), torch.randn(n, d, generator=g)


def naive_second_moment(s: torch.Tensor) -> torch.Tensor:
    n, d = s.shape
    m = torch.zeros(d, d, dtype=torch.float64)
    for i in range(n):
        for a in range(d):
            for b in range(d):
                m[a, b] += s[i, a].double() * s[i, b].double() / n
    return m


def grad_wrt_p(loss_fn, p: torch.Tensor) -> torch.Tensor:
    p = p.clone().requires_grad_(True)
    loss_fn(p).backward()
    return p.grad


def test_matches_spectral_contrastive_gradient_with_alpha_one():
    """docs/method.md §2, item 5: alpha=1, Λ not triangular, moment from the target, no
    normalisation: the MINC gradient is the gradient of the SCL batch estimate written as a
    double sum."""
    p, t = batch()
    n = p.shape[0]

    def scl_double_sum(p):
        positive = sum(p[i] @ t[i] for i in range(n))
        negative = sum((p[i] @ t[j]) ** 2 for i in range(n) for j in range(n))
        return -2.0 / n * positive + negative / n**2

    loss = MINCLoss(dim=p.shape[1], alpha=1.0, triangular=False, moment_source="target", mu=None)
    loss(torch.randn_like(p), torch.randn_like(t))  # an earlier batch alpha=1 must forget
    torch.testing.assert_close(grad_wrt_p(lambda q: loss(q, t), p), grad_wrt_p(scl_double_sum, p))


def test_triangular_gradient_is_lower_triangular_not_symmetrised():
    p, t = batch(seed=1)
    n = p.shape[0]
    loss = MINCLoss(dim=p.shape[1], alpha=1.0, triangular=True, mu=None)
    got = grad_wrt_p(lambda q: loss(q, t), p)
    lam = naive_second_moment(t).float()
    lower = torch.tensor(
        [[lam[a, b] if b <= a else 0.0 for b in range(lam.shape[1])] for a in range(lam.shape[0])]
    )
    expected = 2.0 / n * (p @ lower.T - t)
    torch.testing.assert_close(got, expected)
    symmetrised = 2.0 / n * (p @ ((lower + lower.T) / 2).T - t)
    assert not torch.allclose(got, symmetrised, atol=1e-4)


def test_loss_value_is_the_batch_mean_of_the_formula():
    p, t = batch(seed=2)
    A = torch.randn(p.shape[1], p.shape[1])
    expected = sum(-2 * p[i] @ t[i] + 2 * p[i] @ (A @ p[i]) for i in range(len(p))) / len(p)
    torch.testing.assert_close(minc_loss(p, t, A), expected)


def test_pull_ratio_is_the_lambda_terms_gradient_over_the_alignment_terms():
    """dL/dp_i = (2/N)(A p_i - t_i): the logged ratio is the root mean square of the Λ part over
    that of the alignment part, each computed from the gradient autograd gives."""
    p, t = batch(seed=7)
    loss = MINCLoss(dim=6, alpha=1.0, triangular=True, mu=None)
    assert loss.pull_ratio is None  # nothing trained yet
    loss(p, t)
    zero = torch.zeros(6, 6)
    alignment = grad_wrt_p(lambda q: minc_loss(q, t, zero), p)
    whole = grad_wrt_p(lambda q: minc_loss(q, t, loss.A), p)
    expected = (whole - alignment).norm() / alignment.norm()
    torch.testing.assert_close(loss.pull_ratio, expected)
    loss.eval()
    loss(10 * p, t)  # evaluation leaves the training batch's ratio
    torch.testing.assert_close(loss.pull_ratio, expected)


def test_ema_first_update_then_exact_average():
    alpha, batches = 0.3, [batch(seed=s) for s in range(3)]
    loss = MINCLoss(dim=6, alpha=alpha, triangular=True, mu=None)
    expected = None
    for p, t in batches:
        loss(p, t)
        estimate = naive_second_moment(t)
        expected = estimate if expected is None else (1 - alpha) * expected + alpha * estimate
        torch.testing.assert_close(loss.second_moment.double(), expected, rtol=1e-5, atol=1e-6)
    assert loss.num_updates.item() == 3


def test_update_happens_before_the_loss():
    p, t = batch(seed=3)
    loss = MINCLoss(dim=6, alpha=0.5, triangular=False, mu=None)
    value = loss(p, t)
    torch.testing.assert_close(value, minc_loss(p, t, naive_second_moment(t).float()))


def test_online_moment_source_uses_predictions():
    p, t = batch(seed=4)
    loss = MINCLoss(dim=6, alpha=1.0, moment_source="online", mu=None)
    loss(p, t)
    torch.testing.assert_close(loss.second_moment.double(), naive_second_moment(p))


def test_no_update_in_eval_mode():
    p, t = batch(seed=5)
    loss = MINCLoss(dim=6, alpha=0.5)
    loss(p, t)
    before = loss.second_moment.clone()
    loss.eval()
    loss(*batch(seed=6))
    assert torch.equal(loss.second_moment, before) and loss.num_updates.item() == 1


@pytest.mark.parametrize("mu", [1.0, None])
@pytest.mark.parametrize("source", ["target", "online"])
@pytest.mark.parametrize("where", ["online", "target"])
def test_non_finite_batch_never_changes_lambda(where, source, mu):
    """Whichever input holds it, whichever Λ is estimated from, normalised or not."""
    loss = MINCLoss(dim=6, alpha=0.5, moment_source=source, mu=mu)
    loss(*batch(seed=7))
    before = loss.second_moment.clone()
    for bad in (float("nan"), float("inf"), -float("inf")):
        p, t = batch(seed=8)
        (p if where == "online" else t)[3, 2] = bad
        loss(p, t)
        assert torch.equal(loss.second_moment, before) and loss.num_updates.item() == 1


def test_normalisation_sets_squared_norm_mu():
    p, t = batch(seed=9)
    mu = 2.5
    with_mu = MINCLoss(dim=6, alpha=1.0, mu=mu)
    value = with_mu(p, t)
    pn = p / p.norm(dim=1, keepdim=True) * mu**0.5
    tn = t / t.norm(dim=1, keepdim=True) * mu**0.5
    torch.testing.assert_close(value, MINCLoss(dim=6, alpha=1.0, mu=None)(pn, tn))
    torch.testing.assert_close(with_mu.second_moment.trace(), torch.tensor(mu))


def test_float32_under_bf16_autocast():
    p, t = batch(seed=10)
    loss = MINCLoss(dim=6, alpha=0.5)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        value = loss(p.bfloat16(), t.bfloat16())
    assert value.dtype == torch.float32 and loss.second_moment.dtype == torch.float32


def test_state_dict_round_trip():
    loss = MINCLoss(dim=6, alpha=0.5)
    loss(*batch(seed=11))
    state = loss.state_dict()
    assert set(state) == {"second_moment", "num_updates"}
    other = MINCLoss(dim=6, alpha=0.5)
    other.load_state_dict(state)
    p, t = batch(seed=12)
    torch.testing.assert_close(other(p, t), loss(p, t))
    torch.testing.assert_close(other.second_moment, loss.second_moment)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"alpha": 0.0}, "alpha"),
        ({"alpha": 1.5}, "alpha"),
        ({"moment_source": "both"}, "moment_source"),
        ({"mu": -1.0}, "mu"),
        ({"dim": 0}, "dim"),
    ],
)
def test_bad_arguments_raise(kwargs, message):
    args = {"dim": 6, "alpha": 0.5} | kwargs
    with pytest.raises(ValueError, match=message):
        MINCLoss(**args)


def test_bad_shapes_raise():
    loss = MINCLoss(dim=6, alpha=0.5)
    with pytest.raises(ValueError, match=r"\(N, 6\)"):
        loss(torch.randn(4, 5), torch.randn(4, 5))
    with pytest.raises(ValueError, match="shape"):
        loss(torch.randn(4, 6), torch.randn(3, 6))


def test_spectral_contrastive_loss_against_double_sum():
    z1, z2 = batch(n=7, seed=13)
    n = len(z1)
    positive = sum(z1[i] @ z2[i] for i in range(n))
    negative = sum((z1[i] @ z2[j]) ** 2 for i in range(n) for j in range(n) if i != j)
    expected = -2.0 / n * positive + negative / (n * (n - 1))
    torch.testing.assert_close(spectral_contrastive_loss(z1, z2), expected)
    normalised = SpectralContrastiveLoss(mu=None)(z1, z2)
    torch.testing.assert_close(normalised, expected)


def test_byol_loss_is_two_minus_two_cosine():
    p, t = batch(seed=14)
    cos = torch.stack([p[i] @ t[i] / (p[i].norm() * t[i].norm()) for i in range(len(p))])
    torch.testing.assert_close(byol_loss(p, t), (2 - 2 * cos).mean())
    assert byol_loss(p, p).abs() < 1e-6
