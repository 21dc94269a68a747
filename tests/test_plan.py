"""The EMA scaling rule: alpha and tau_base are given for 256 images per update and scaled to the
images each update sees (Busbridge et al. 2023), so that Λ and the target average over the same
number of images at any batch size."""

import math
from pathlib import Path

import pytest
import torch
import yaml
from helpers import loaders, tiny_module, trainer

from minc_lightning.loss import MINCLoss
from minc_lightning.schedule import scaled_momentum, scaled_rate


def test_the_rule_and_its_identity_at_the_reference_batch():
    assert scaled_rate(0.1, 2) == pytest.approx(0.19, abs=1e-15)
    assert scaled_momentum(0.99, 2) == pytest.approx(0.9801, abs=1e-15)
    assert scaled_momentum(0.99**16, 1 / 16) == pytest.approx(0.99, abs=1e-15)
    assert scaled_rate(0.1, 1) == 0.1 and scaled_momentum(0.99, 1) == 0.99  # exactly
    assert scaled_rate(1.0, 3) == 1.0


def fitted(epochs: int = 1, ckpt: Path | None = None, accumulate: int = 1, **module):
    model = tiny_module(**module)
    if model.objective.stateful:  # the rate each update of Λ is given
        update, model.rates = model.criterion.update, []

        def spy(p, t, rate=None):
            model.rates.append(rate)
            return update(p, t, rate)

        model.criterion.update = spy
    run = trainer(max_epochs=epochs, accumulate_grad_batches=accumulate)
    train, _ = loaders(batch_size=8, n=32)
    run.fit(model, train, ckpt_path=ckpt)
    return model, run


@pytest.mark.parametrize("accumulate", [1, 2])
def test_applied_values_follow_the_images_each_update_sees(accumulate):
    """Batches of 8 on one process: Λ sees 8 images per update, the target 8 × accumulation."""
    model, _ = fitted(accumulate=accumulate, alpha=0.1, tau_base=0.99)
    assert model.plan.applied("alpha") == 1 - 0.9 ** (8 / 256)
    assert set(model.rates) == {1 - 0.9 ** (8 / 256)}  # every update of Λ got the plan's rate
    assert model.criterion.alpha == 0.1  # the loss keeps what it was built with
    assert model.plan.applied("tau_base") == 0.99 ** (8 * accumulate / 256)
    assert model.tau(0) == pytest.approx(model.plan.applied("tau_base"), abs=1e-15)


def test_without_scaling_the_values_are_per_update():
    model, _ = fitted(alpha=0.1, tau_base=0.99, ema_scaling=False)
    assert set(model.rates) == {0.1} and model.plan.applied("tau_base") == 0.99


def test_at_the_reference_batch_training_is_bit_identical_to_unscaled():
    """κ = 1 changes nothing: the same steps, bit for bit, with the rule on or off."""
    results = []
    for scaling in (True, False):
        model = tiny_module(batch_size=256, ema_scaling=scaling)
        train, _ = loaders(batch_size=256, n=512)
        trainer(max_epochs=1).fit(model, train)
        results.append(model.state_dict())
    assert results[0].keys() == results[1].keys()
    for name in results[0]:
        assert torch.equal(results[0][name], results[1][name]), name


def test_resume_restores_the_applied_values(tmp_path):
    model, run = fitted(alpha=0.3, tau_base=0.98)
    path = tmp_path / "one.ckpt"
    run.save_checkpoint(path)
    saved = torch.load(path, weights_only=True)["minc_lightning"]["emas"]
    assert saved == {k: model.plan.applied(k) for k in ("alpha", "tau_base")}
    resumed, _ = fitted(epochs=2, ckpt=path, alpha=0.3, tau_base=0.98)
    assert {k: resumed.plan.applied(k) for k in saved} == saved
    assert set(resumed.rates) == {saved["alpha"]}


def test_objectives_scale_only_the_emas_they_have():
    byol, _ = fitted(objective="byol")
    assert set(byol.plan.emas) == {"tau_base"}
    spectral, _ = fitted(objective="spectral")
    assert spectral.plan.emas == {}


def weights(batch: int, alpha: float, updates: int = 2000) -> torch.Tensor:
    """The weight MINCLoss's Λ gives the batch estimate of k updates ago, for k = 0, 1, ...:
    its response to one estimate of 1 among estimates of 0 (Λ is linear in the estimates)."""
    loss = MINCLoss(1, alpha=alpha, mu=None)
    zeros, ones = torch.zeros(batch, 1), torch.ones(batch, 1)
    loss.update(zeros, zeros)  # the first update sets Λ = 0
    response = []
    for k in range(updates):
        rows = ones if k == 0 else zeros
        loss.update(rows, rows)
        response.append(float(loss.second_moment))
    return torch.tensor(response, dtype=torch.float64)


def steady_variance(batch: int, alpha: float) -> float:
    """Λ's steady-state variance on a stationary stream of batch estimates, each the mean of
    ``batch`` independent rows of unit variance: Σ_k w_k² / batch."""
    return float((weights(batch, alpha) ** 2).sum() / batch)


def images_to_half_way(batch: int, alpha: float) -> int:
    """Images after a step in the stream until Λ has moved half of it: Σ w_k ≥ 1/2."""
    covered = torch.cumsum(weights(batch, alpha), 0)
    return batch * (int(torch.nonzero(covered >= 0.5)[0]) + 1)


def test_scaled_rate_keeps_the_steady_state_variance_and_the_lag_in_images():
    """Batch 16 at alpha 0.05 against batch 64 at the scaled rate (κ = 4): the same
    steady-state variance of Λ within 1%, and the same images to move half-way after a step
    in the stream within one update of the larger batch. Unscaled (0.05 at batch 64), the
    variance is 4× lower and the lag about 4× longer."""
    small, large = (16, 0.05), (64, scaled_rate(0.05, 4))
    assert steady_variance(*large) == pytest.approx(steady_variance(*small), rel=0.01)
    assert abs(images_to_half_way(*large) - images_to_half_way(*small)) <= 64
    assert steady_variance(64, 0.05) < steady_variance(*small) / 3
    assert images_to_half_way(64, 0.05) > 3 * images_to_half_way(*small)
    assert images_to_half_way(*small) == 16 * math.ceil(math.log(0.5) / math.log(0.95))


# What each recipe applied per update before the rule (every one: 0.1 and 0.99; the ViT 0.996).
BEFORE_THE_RULE = {"imagenet100_vit": (0.1, 0.996)}


RECIPES = [
    p
    for p in sorted(Path(__file__).parents[1].glob("configs/*.yaml"))
    if {"model", "data"} <= set(yaml.safe_load(p.read_text()))  # not the add-ons (wandb, sweep)
]


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda p: p.stem)
def test_every_recipe_applies_at_its_own_batch_what_it_did_before_the_rule(recipe):
    config = yaml.safe_load(recipe.read_text())
    trainer_cfg = config.get("trainer", {})
    devices = trainer_cfg.get("devices", 1)
    processes = (devices if isinstance(devices, int) else 1) * trainer_cfg.get("num_nodes", 1)
    per_forward = config["data"]["batch_size"] * processes
    per_step = per_forward * trainer_cfg.get("accumulate_grad_batches", 1)
    alpha, tau = config["model"]["alpha"], config["model"]["tau_base"]
    expected = BEFORE_THE_RULE.get(recipe.stem, (0.1, 0.99))
    assert scaled_rate(alpha, per_forward / 256) == pytest.approx(expected[0], abs=1e-12)
    assert scaled_momentum(tau, per_step / 256) == pytest.approx(expected[1], abs=1e-12)
