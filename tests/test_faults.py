"""Crashes, bad batches and low precision: state survives and is never corrupted."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from dataset_files import write_fashion_mnist
from helpers import TwoViewToy, tiny_module, trainer
from lightning.pytorch import Callback
from torch.utils.data import DataLoader

from minc_lightning.data import MINCDataModule

TESTS = Path(__file__).parent
CONFIG = TESTS.parent / "configs" / "quickstart.yaml"


def fit_command(data: Path, run: Path, extra: list[str] = ()) -> list[str]:
    return [
        sys.executable,
        "-m",
        "minc_lightning.commands.fit",
        "fit",
        f"--config={CONFIG}",
        f"--data.root={data}",
        "--data.batch_size=8",
        "--data.train_subset=null",
        "--model.projection_hidden_dim=32",
        "--model.prediction_hidden_dim=32",
        "--model.projection_dim=16",
        "--model.backbone.init_args.width=4",
        "--trainer.max_epochs=2",
        "--trainer.accelerator=cpu",
        "--trainer.deterministic=true",
        "--trainer.enable_progress_bar=false",
        "--checkpoint.every_n_train_steps=1",
        f"--trainer.default_root_dir={run}",
        f"--trainer.logger.init_args.save_dir={run}",
        *extra,
    ]


def run(command: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=f"{TESTS}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def straight_killed_resumed(fit, tmp_path: Path) -> list[subprocess.CompletedProcess]:
    """Two epochs of 8 steps straight (run folder "straight"), then killed by SIGKILL at step 11
    (in the middle of the second epoch, its last checkpoint with it) and resumed (folder
    "crashed"); ``fit(run_dir, *extra)`` is the command line."""
    straight = run(fit(tmp_path / "straight"), tmp_path)
    assert straight.returncode == 0, straight.stderr[-3000:]
    crash_cfg = tmp_path / "crash.yaml"
    crash_cfg.write_text(
        "trainer:\n  callbacks:\n    - class_path: crash.KillAt\n"
        "      init_args:\n        step: 11\n"
    )
    killed = run(fit(tmp_path / "crashed", f"--config={crash_cfg}"), tmp_path)
    assert killed.returncode == -signal.SIGKILL
    last = tmp_path / "crashed" / "checkpoints" / "last.ckpt"
    step = torch.load(last, weights_only=True)["global_step"]
    assert 8 < step < 16  # the last checkpoint is in the middle of the second epoch
    resumed = run(fit(tmp_path / "crashed", "--ckpt_path=last"), tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    return [straight, killed, resumed]


@pytest.mark.slow
@pytest.mark.parametrize(
    "augment_on, workers, local_views",
    [
        # each augment_on with and without loader workers and local views; two views with
        # loader workers are resumed bit for bit after SIGTERM in test_preemption
        ("loader", 0, 0),
        ("device", 0, 0),
        ("loader", 2, 2),  # multi-crop: two local views
        ("device", 2, 2),
    ],
)
def test_sigkill_mid_epoch_then_resume_is_bit_exact(tmp_path, augment_on, workers, local_views):
    write_fashion_mnist(tmp_path / "data", n_train=64, n_test=8)  # 8 batches per epoch
    data = tmp_path / "data"

    def fit(run_dir: Path, *extra: str) -> list[str]:
        options = [
            f"--data.augment_on={augment_on}",
            f"--data.num_workers={workers}",
            f"--data.local_views={local_views}",
            "--model.local_predictor=separate",  # a predictor of its own to resume as well
        ]
        return fit_command(data, run_dir, [*options, *extra])

    straight_killed_resumed(fit, tmp_path)
    a = torch.load(tmp_path / "straight" / "checkpoints" / "last.ckpt", weights_only=True)
    b = torch.load(tmp_path / "crashed" / "checkpoints" / "last.ckpt", weights_only=True)
    assert a["global_step"] == b["global_step"] == 16
    assert a["state_dict"].keys() == b["state_dict"].keys()
    for name in a["state_dict"]:
        assert torch.equal(a["state_dict"][name], b["state_dict"][name]), name
    assert any("second_moment" in k for k in a["state_dict"])
    assert any(k.startswith("target_backbone") for k in a["state_dict"])
    assert any(k.startswith("local_predictor") for k in a["state_dict"]) == (local_views > 0)


def test_resumed_loader_starts_at_the_trained_position_with_workers(tmp_path):
    """The loader's state (epoch, batches that reached the model) is restored before its
    iterator exists: workers that draw their indices at once still start at that batch."""
    write_fashion_mnist(tmp_path, n_train=40)
    dm = MINCDataModule("fashion_mnist", str(tmp_path), batch_size=4, num_workers=2)
    dm.setup("fit")
    loader = dm.train_dataloader()
    loader.sampler.set_epoch(1)
    full = [y.tolist() for _, y in loader]
    fresh = dm.train_dataloader()
    fresh.load_state_dict({"epoch": 1, "batches_trained": 3})
    assert [y.tolist() for _, y in fresh] == full[3:]
    fresh.load_state_dict({"epoch": 0, "batches_trained": 10})  # saved at epoch 0's end
    assert fresh.sampler.epoch == 1 and [y.tolist() for _, y in fresh] == full
    for i, _ in enumerate(fresh):  # counted as batches reach the model, not as workers fetch
        if i < 2:
            fresh.mark_trained()
    assert fresh.state_dict() == {"epoch": 1, "batches_trained": 2}


class BadBatch(TwoViewToy):
    """Batch ``bad`` (of size 8) holds a NaN pixel."""

    def __init__(self, bad: int, **kwargs) -> None:
        super().__init__(**kwargs)
        self.bad = bad

    def __getitem__(self, i: int):
        views, label = super().__getitem__(i)
        if i // 8 == self.bad:
            views[0][0, 0, 0] = float("nan")
        return views, label


class Snapshots(Callback):
    """State (Λ, target, weights, optimizer) before and after the bad batch."""

    def __init__(self, bad: int) -> None:
        self.bad, self.before, self.after = bad, None, None

    def state(self, trainer, model) -> dict:
        opt = trainer.optimizers[0].state_dict()["state"]
        return {
            "lambda": model.criterion.second_moment.clone(),
            "updates": model.criterion.num_updates.clone(),
            "target": [p.detach().clone() for p in model.target_backbone.parameters()],
            "online": [p.detach().clone() for p in model.backbone.parameters()],
            "momentum": {
                k: {n: t.clone() for n, t in v.items() if torch.is_tensor(t)}
                for k, v in opt.items()
            },
        }

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if batch_idx == self.bad:
            self.before = self.state(trainer, pl_module)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if batch_idx == self.bad:
            self.after = self.state(trainer, pl_module)


def assert_same(a: dict, b: dict) -> None:
    assert torch.equal(a["lambda"], b["lambda"]) and torch.equal(a["updates"], b["updates"])
    for x, y in zip(a["target"] + a["online"], b["target"] + b["online"], strict=True):
        assert torch.equal(x, y)
    assert a["momentum"].keys() == b["momentum"].keys()
    for k in a["momentum"]:
        for n in a["momentum"][k]:
            assert torch.equal(a["momentum"][k][n], b["momentum"][k][n])


def test_non_finite_batch_is_skipped_and_changes_nothing():
    model = tiny_module(on_nonfinite="skip")
    snaps = Snapshots(bad=2)
    data = DataLoader(BadBatch(bad=2, n=48), batch_size=8)
    with pytest.warns(UserWarning, match="non-finite loss or gradient at optimizer step 2"):
        trainer(max_epochs=1, callbacks=[snaps]).fit(model, data)
    assert snaps.before is not None and snaps.before["momentum"]  # momentum exists by then
    assert_same(snaps.before, snaps.after)
    assert model.criterion.num_updates.item() == 5  # the 5 good batches
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_non_finite_batch_stops_with_the_step_named():
    model = tiny_module(on_nonfinite="raise")
    snaps = Snapshots(bad=3)
    data = DataLoader(BadBatch(bad=3, n=48), batch_size=8)
    fit = trainer(max_epochs=1, callbacks=[snaps])
    with pytest.raises(FloatingPointError, match=r"optimizer step 3 \(epoch 0, batch 3\)"):
        fit.fit(model, data)
    snaps.after = snaps.state(fit, model)
    assert_same(snaps.before, snaps.after)


@pytest.mark.slow  # hundreds of training steps
def test_bf16_mixed_hundreds_of_steps_on_real_data():
    from minc_lightning.data.formats import find_fashion_mnist

    if find_fashion_mnist(None) is None:
        if os.environ.get("CI"):
            pytest.fail("CI installs dataset-fashion-mnist")
        pytest.skip("dataset-fashion-mnist is not installed")

    class Finite(Callback):
        losses: list = []

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            self.losses.append(outputs["loss"].item())
            assert torch.isfinite(pl_module.criterion.second_moment).all()

    dm = MINCDataModule("fashion_mnist", batch_size=32, num_workers=2, train_subset=32 * 250)
    model = tiny_module(num_classes=10, optimizer="lars", lr=1.0, batch_size=32)
    finite = Finite()
    fit = trainer(max_epochs=1, precision="bf16-mixed", callbacks=[finite], limit_val_batches=0)
    fit.fit(model, dm)
    assert fit.global_step == 250 and len(finite.losses) == 250
    assert all(torch.isfinite(torch.tensor(finite.losses)))
    assert model.criterion.second_moment.dtype == torch.float32
