"""MINCModule on a tiny backbone: EMA timing, accumulation, probe, checkpoints, precision."""

import copy
import importlib
from pathlib import Path

import pytest
import torch
from dataset_files import write_fashion_mnist
from helpers import SIZE, TwoViewToy, loaders, tiny_module, trainer
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from torch import nn
from torch.utils.data import DataLoader

import minc_lightning.module as module_file
from minc_lightning.backbones import ConvNet
from minc_lightning.commands.fit import run_cli
from minc_lightning.loss import MINCLoss
from minc_lightning.module import MINCModule
from minc_lightning.objectives import OBJECTIVES


def flat(module: nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in module.parameters()])


def test_one_step_moves_online_weights_and_target_by_the_lerp():
    model = tiny_module(tau_base=0.9)
    online_before = flat(model.backbone).clone()
    target_before = flat(model.target_backbone).clone()
    head_before = flat(model.target_projector).clone()
    torch.testing.assert_close(online_before, target_before)  # target starts as a copy
    train, _ = loaders()
    trainer(max_steps=1).fit(model, train)
    online_after = flat(model.backbone)
    assert not torch.equal(online_after, online_before)
    expected = 0.9 * target_before + 0.1 * online_after  # τ(0) = tau_base
    torch.testing.assert_close(flat(model.target_backbone), expected)
    head_expected = 0.9 * head_before + 0.1 * flat(model.projector)
    torch.testing.assert_close(flat(model.target_projector), head_expected)
    assert model.criterion.num_updates.item() == 1


def test_accumulation_gives_one_target_update_per_optimizer_step(monkeypatch):
    calls = []
    real = module_file.update_momentum
    monkeypatch.setattr(
        module_file, "update_momentum", lambda a, b, m: (calls.append(m), real(a, b, m))
    )
    model = tiny_module()
    train, _ = loaders(n=64)  # 8 micro-batches
    fit = trainer(max_epochs=1, accumulate_grad_batches=2)
    fit.fit(model, train)
    assert fit.global_step == 4
    assert len(calls) == 2 * fit.global_step  # backbone and projector, once per step
    taus = calls[::2]
    assert taus == sorted(taus) and taus[0] == pytest.approx(model.plan.applied("tau_base"))
    assert model.criterion.num_updates.item() == 8  # Λ sees every micro-batch


def test_tau_schedule_rises_from_base_to_one():
    model = tiny_module(tau_base=0.996)
    train, _ = loaders(n=48)
    fit = trainer(max_epochs=1)
    fit.fit(model, train)
    total = fit.estimated_stepping_batches
    taus = [model.tau(k) for k in range(total + 1)]  # τ after 0 … K steps
    start = model.plan.applied("tau_base")
    assert start == 0.996 ** (8 / 256)  # tau_base per 256, at batches of 8
    assert taus[0] == pytest.approx(start) and taus[-1] == pytest.approx(1.0)
    assert all(a <= b for a, b in zip(taus, taus[1:], strict=False))


def test_spectral_objective_has_no_target_and_no_predictor():
    model = tiny_module(objective="spectral")
    assert not hasattr(model, "target_backbone") and not hasattr(model, "target_projector")
    assert isinstance(model.predictor, nn.Identity)
    assert not any("target" in name for name, _ in model.named_parameters())


@pytest.mark.parametrize("objective", list(OBJECTIVES))
def test_every_objective_lowers_its_own_loss(objective):
    """On the toy problem, training lowers the objective's loss on held-out images (a fixed
    batch never trained on, scored in eval mode before and after)."""
    model = tiny_module(objective=objective, num_classes=0, lr=1.0)
    (x1, x2), _ = next(iter(DataLoader(TwoViewToy(16, labelled=False), batch_size=16)))
    x1, x2 = x1 + 0.05, x2 + 0.05  # not the training images

    def held_out_loss() -> float:
        model.eval()
        with torch.no_grad():
            return model.objective_loss([x1, x2])[0].item()

    train, _ = loaders(n=64)
    trainer(max_epochs=1).fit(model, train)  # a first Λ and target: the loss is defined
    before = held_out_loss()
    trainer(max_epochs=6).fit(model, train)
    assert held_out_loss() < before - 0.01
    uses_target = OBJECTIVES[objective].uses_target
    assert hasattr(model, "target_backbone") == uses_target


def test_probe_does_not_change_backbone_gradients():
    model = tiny_module()
    model.trainer = None
    (x1, x2), _ = next(iter(DataLoader(TwoViewToy(8), batch_size=8)))
    labels = torch.arange(8) % 4

    def backbone_grads(y):
        model.zero_grad()
        h = model.backbone(torch.cat([x1, x2]))
        loss = model.projector(h).square().mean()
        probe_loss, _ = model.probe.loss(h.detach(), torch.cat([y, y]))
        (loss + probe_loss).backward()
        return [p.grad.clone() for p in model.backbone.parameters()], model.probe.linear.weight.grad

    with_labels, probe_grad = backbone_grads(labels)
    without, no_probe_grad = backbone_grads(torch.full_like(labels, -1))
    for a, b in zip(with_labels, without, strict=True):
        assert torch.equal(a, b)
    assert probe_grad.abs().sum() > 0 and no_probe_grad.abs().sum() == 0


def test_probe_learns_a_separable_problem():
    model = tiny_module(probe_lr=0.5, lr=1e-3)
    train, val = loaders(n=64)
    fit = trainer(max_epochs=8)
    fit.fit(model, train, val)
    assert fit.callback_metrics["val/top1"] > 0.9


def test_unlabelled_data_trains_without_probe_signal():
    model = tiny_module()
    train, _ = loaders(labelled=False)
    probe_before = model.probe.linear.weight.detach().clone()
    trainer(max_steps=2).fit(model, train)
    assert torch.equal(model.probe.linear.weight, probe_before)


@pytest.mark.parametrize(
    "batch",
    [
        (torch.zeros(2, 3, SIZE, SIZE), torch.zeros(2)),
        ([torch.zeros(2, 3, SIZE, SIZE)], torch.zeros(2)),
        ([torch.zeros(2, 3, SIZE, SIZE), torch.zeros(3, 3, SIZE, SIZE)], torch.zeros(2)),
        # local views of two sizes; a local view of another batch size
        ([torch.zeros(2, 3, SIZE, SIZE)] * 2 + [torch.zeros(2, 3, 4, 4), torch.zeros(2, 3, 5, 5)],),
        ([torch.zeros(2, 3, SIZE, SIZE)] * 2 + [torch.zeros(3, 3, 4, 4)],),
    ],
)
def test_bad_batch_names_the_contract(batch):
    with pytest.raises(ValueError, match="two global views of one shape") as err:
        tiny_module().training_step(batch, 0)
    assert "received" in str(err.value)


def test_feature_dim_is_inferred_or_asked_for():
    flat_backbone = nn.Sequential(nn.Conv2d(3, 5, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    assert tiny_module(backbone=flat_backbone).feature_dim == 5
    spatial = nn.Conv2d(3, 5, 3)
    with pytest.raises(ValueError, match="flatten"):
        tiny_module(backbone=spatial)
    grayscale_only = nn.Sequential(nn.Conv2d(1, 5, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    with pytest.raises(ValueError, match="feature_dim"):
        tiny_module(backbone=grayscale_only)
    assert tiny_module(backbone=grayscale_only, feature_dim=5).feature_dim == 5


def test_wrong_feature_dim_fails_with_the_widths():
    model = tiny_module(feature_dim=7, batch_size=4)
    (x1, x2), y = next(iter(DataLoader(TwoViewToy(4), batch_size=4)))
    with pytest.raises(ValueError, match=r"\(2B, 7\)"):
        model.training_step(([x1, x2], y), 0)


def test_weight_decay_and_lr_scaling():
    model = tiny_module(optimizer="lars", lr=0.2, weight_decay=1e-4)
    train, _ = loaders(batch_size=8)
    fit = trainer(max_steps=1)
    fit.fit(model, train)
    groups = {g["name"]: g for g in fit.optimizers[0].param_groups}
    assert groups["online"]["initial_lr"] == pytest.approx(0.2 * 8 / 256)
    assert groups["online"]["weight_decay"] == 1e-4
    no_decay = {id(p) for p in groups["online_no_decay"]["params"]}
    for name, p in model.backbone.named_parameters():
        assert (id(p) in no_decay) == (name.endswith("bias") or p.ndim == 1), name
    assert groups["probe"]["weight_decay"] == 0.0


def test_checkpoint_round_trip(tmp_path):
    model = tiny_module()
    train, _ = loaders()
    fit = trainer(max_steps=3, default_root_dir=tmp_path, enable_checkpointing=True)
    fit.fit(model, train)
    path = tmp_path / "round_trip.ckpt"
    fit.save_checkpoint(path)
    loaded = MINCModule.load_from_checkpoint(path, backbone=copy.deepcopy(model.backbone))
    assert loaded.criterion.num_updates.item() == 3
    for (name, a), b in zip(model.state_dict().items(), loaded.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    assert loaded.hparams.num_classes == 4


class StopAfter(Callback):
    """Stops a run after ``epochs`` epochs, as a crash would (same schedule length)."""

    def __init__(self, epochs: int) -> None:
        self.epochs = epochs

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        trainer.should_stop = trainer.current_epoch + 1 >= self.epochs


def test_resume_is_bit_exact(tmp_path):
    def run(root, ckpt_path=None, stop_after=None):
        model = tiny_module()
        train, _ = loaders(n=32)
        callbacks = [ModelCheckpoint(dirpath=root, save_last=True, save_top_k=0)]
        callbacks += [StopAfter(stop_after)] if stop_after else []
        fit = trainer(max_epochs=4, callbacks=callbacks, enable_checkpointing=True)
        fit.fit(model, train, ckpt_path=ckpt_path)
        return model, fit

    straight, _ = run(tmp_path / "straight")
    _, interrupted = run(tmp_path / "interrupted", stop_after=2)
    assert interrupted.global_step == 8
    resumed, fit = run(tmp_path / "resumed", ckpt_path=tmp_path / "interrupted" / "last.ckpt")
    assert fit.global_step == 16
    for (name, a), b in zip(
        straight.state_dict().items(), resumed.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b), name


def test_bf16_mixed_keeps_lambda_and_loss_in_float32():
    model = tiny_module()
    train, _ = loaders()
    fit = trainer(max_steps=4, precision="bf16-mixed")
    fit.fit(model, train)
    assert isinstance(model.criterion, MINCLoss)
    assert model.criterion.second_moment.dtype == torch.float32
    assert torch.isfinite(model.criterion.second_moment).all()
    assert torch.isfinite(fit.callback_metrics["train/loss"])


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"lr": 0.0}, "lr"),
        ({"lr": -1.0}, "lr"),
        ({"objective": "simclr"}, "objective"),
        ({"alpha": 1.5}, "alpha"),
        ({"optimizer": "adam"}, "optimizer"),
        ({"tau_base": 1.5}, "tau_base"),
    ],
)
def test_bad_configuration_fails_at_construction(kwargs, name):
    with pytest.raises(ValueError, match=name):
        tiny_module(**kwargs)


def test_logs_monitoring_values():
    model = tiny_module()
    train, _ = loaders()
    fit = trainer(max_steps=2)
    fit.fit(model, train)
    metrics = fit.callback_metrics
    for key in [
        "train/loss",
        "train/tau",
        "train/lr",
        "lambda/trace",
        "lambda/offdiag_ratio",
        "lambda/eig_0",
        "train/embedding_std",
        "train/effective_rank",
    ]:
        assert torch.isfinite(metrics[key]), key
    # mu = 1 normalises rows to unit norm, so the trace of Λ = E[t tᵀ] is 1
    assert metrics["lambda/trace"] == pytest.approx(1.0, abs=1e-4)


def test_batch_size_is_given_not_guessed():
    train, _ = loaders(batch_size=8)
    with pytest.raises(ValueError, match="MINCModule needs batch_size"):
        trainer(max_steps=1).fit(tiny_module(batch_size=None), train)
    with pytest.raises(ValueError, match="batch_size=16.*the loader gives 8"):
        trainer(max_steps=1).fit(tiny_module(batch_size=16), train)


def test_built_by_cli_tells_a_config_from_an_object(tmp_path, monkeypatch):
    """minc_lightning.cli_context.built_by_cli: a backbone built from a config is saved as its
    config (so evaluation can rebuild it), a Python object is not saved."""
    from minc_lightning.cli_context import built_by_cli

    assert not built_by_cli()
    assert "backbone" not in tiny_module().hparams
    monkeypatch.chdir(tmp_path)
    write_fashion_mnist(tmp_path / "data", n_train=8, n_test=4)
    config = Path(__file__).parents[1] / "configs" / "quickstart.yaml"
    cli = run_cli(
        [f"--config={config}", f"--data.root={tmp_path / 'data'}", "--data.num_workers=0"],
        run=False,
    )
    # the class's path (jsonargparse ≥ 4.39 writes the shortest one that imports it)
    module, _, name = cli.model.hparams.backbone["class_path"].rpartition(".")
    assert getattr(importlib.import_module(module), name) is ConvNet
