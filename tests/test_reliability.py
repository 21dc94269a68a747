"""A run that says it succeeded has succeeded: resume semantics, faults and bad input.

Each test reproduces a case where an earlier version ended with exit 0 (or a misleading error)
while the run was lost or its numbers were wrong; docs/reliability.md lists them.
"""

import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from dataset_files import write_fashion_mnist
from helpers import loaders, tiny_module, trainer
from lightning.pytorch import Callback
from PIL import Image
from test_fit import CONFIGS, quick_args

from minc_lightning.commands.evaluate import knn, linear
from minc_lightning.commands.fit import run_cli
from minc_lightning.data import MINCDataModule
from minc_lightning.data.images import to_rgb
from minc_lightning.errors import ResumeRefused
from minc_lightning.module import MINCModule

pytestmark = pytest.mark.usefixtures("offline_wandb")


class Schedules(Callback):
    """lr and τ used by every optimizer step, by step."""

    def __init__(self) -> None:
        self.seen: dict[int, tuple[float, float]] = {}

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        step = trainer.global_step
        lr = trainer.optimizers[0].param_groups[0]["lr"]
        self.seen[step] = (lr, pl_module.tau(step))


def fit(epochs: int, ckpt: Path | None = None, batch: int = 8, **module) -> Schedules:
    train, _ = loaders(batch_size=batch, n=32)
    schedules = Schedules()
    run = trainer(max_epochs=epochs, callbacks=[schedules])
    run.fit(tiny_module(warmup_epochs=1, batch_size=batch, **module), train, ckpt_path=ckpt)
    if ckpt is None:
        run.save_checkpoint(Path(f"{epochs}.ckpt"))
    return schedules


# --- resume -------------------------------------------------------------------------------------
def test_longer_resumed_run_follows_the_schedule_of_its_new_length():
    fit(epochs=2)  # 8 steps
    resumed = fit(epochs=6, ckpt=Path("2.ckpt")).seen
    fresh = fit(epochs=6).seen
    assert min(resumed) == 8 and max(resumed) == max(fresh) == 23
    for step in resumed:  # lr and τ after the seam: those of a run planned with 6 epochs
        assert resumed[step] == pytest.approx(fresh[step], rel=1e-12), step
    assert resumed[8][0] > 0.5 * fresh[0][0] * 2  # far from the floor (0.001 × lr)


def test_changed_lr_on_resume_is_applied_and_said(caplog):
    fit(epochs=2)
    with caplog.at_level("INFO"):
        resumed = fit(epochs=4, ckpt=Path("2.ckpt"), lr=1.0).seen
    fresh = fit(epochs=4, lr=1.0).seen
    assert all(resumed[s] == pytest.approx(fresh[s], rel=1e-12) for s in resumed)
    assert "resuming with lr 0.03125 instead of the checkpoint's 0.01562" in caplog.text


def test_changed_batch_size_on_resume_is_refused():
    fit(epochs=2)
    with pytest.raises(
        ResumeRefused, match="cannot resume .*2.ckpt.*global batch: 8 there, 4 here"
    ):
        fit(epochs=4, ckpt=Path("2.ckpt"), batch=4)


def test_warm_up_counts_epochs_when_max_steps_ends_the_run():
    train, _ = loaders(batch_size=8, n=32)  # 4 steps per epoch
    schedules = Schedules()
    trainer(max_epochs=100, max_steps=20, callbacks=[schedules]).fit(
        tiny_module(warmup_epochs=2), train
    )
    lrs = [schedules.seen[s][0] for s in range(20)]
    base = 0.5 * 8 / 256
    assert lrs[:8] == pytest.approx([base * (s + 1) / 8 for s in range(8)])  # 2 epochs of warm-up
    assert lrs[8] == pytest.approx(base)


# --- non-finite results -------------------------------------------------------------------------
def test_infinite_weights_stop_the_run_naming_the_step():
    class Poison(Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            if trainer.global_step == 3:
                with torch.no_grad():
                    next(pl_module.backbone.parameters()).fill_(float("inf"))

    train, _ = loaders(n=64)
    with pytest.raises(FloatingPointError, match="non-finite at optimizer step 2"):
        trainer(max_epochs=1, callbacks=[Poison()]).fit(tiny_module(on_nonfinite="skip"), train)


def test_huge_learning_rate_does_not_end_as_a_success():
    train, _ = loaders(n=64)
    with pytest.raises(FloatingPointError, match="optimizer step"):
        trainer(max_epochs=1).fit(tiny_module(lr=1e38, mu=None), train)


def test_run_whose_every_step_was_skipped_fails():
    class AllNaN(torch.utils.data.Dataset):
        def __len__(self):
            return 16

        def __getitem__(self, i):
            return [torch.full((3, 12, 12), float("nan"))] * 2, 0

    data = torch.utils.data.DataLoader(AllNaN(), batch_size=8)
    with pytest.warns(UserWarning), pytest.raises(FloatingPointError, match="all 2 optimizer"):
        trainer(max_epochs=1).fit(tiny_module(on_nonfinite="skip"), data)


# --- values refused where they enter -------------------------------------------------------------
INF, NAN = float("inf"), float("nan")
MODULE_BAD = {
    "lr": [INF, NAN, 0.0, -1.0],
    "mu": [INF, 0.0, -1.0],
    "alpha": [0.0, 1.5, NAN],
    "tau_base": [1.5, -0.1, NAN],
    "weight_decay": [-1.0, INF],
    "momentum": [1.5, -0.1],
    "warmup_epochs": [-1.0, INF],
    "probe_lr": [0.0, INF],
    "num_classes": [-1],
    "projection_dim": [0, -3],
    "projection_hidden_dim": [0],
    "prediction_hidden_dim": [0],
    "feature_dim": [0],
    "objective": ["simclr"],
    "optimizer": ["adam"],
}


@pytest.mark.parametrize("key,value", [(k, v) for k, vs in MODULE_BAD.items() for v in vs], ids=str)
def test_module_refuses_bad_values_naming_the_key(key, value):
    with pytest.raises(ValueError, match=rf"MINCModule: {key} must be"):
        tiny_module(**{key: value})


DATA_BAD = {
    "dataset": ["mnist"],
    "batch_size": [0, -1, 2.5],
    "num_workers": [-1],
    "image_size": [0],
    "eval_resize": [-3],
    "train_subset": [0],
    "val_subset": [-5],
    "on_corrupt": ["ignore"],
    "seed": [-1],
}


@pytest.mark.parametrize("key,value", [(k, v) for k, vs in DATA_BAD.items() for v in vs], ids=str)
def test_data_module_refuses_bad_values_naming_the_key(key, value):
    with pytest.raises(ValueError, match=rf"MINCDataModule: {key} must be"):
        MINCDataModule(**({"dataset": "fashion_mnist"} | {key: value}))


@pytest.mark.parametrize(
    "command,key,value",
    [
        (knn, "k", 0),
        (knn, "temperature", 0.0),
        (knn, "temperature", INF),
        (knn, "batch_size", 0),
        (linear, "epochs", 0),
        (linear, "lr", -0.1),
        (linear, "num_workers", -1),
    ],
    ids=lambda v: getattr(v, "__name__", str(v)),  # the same ids in every pytest worker
)
def test_eval_commands_refuse_bad_values_naming_the_key(command, key, value):
    with pytest.raises(ValueError, match=rf"minc-lightning-eval \w+: {key} must be"):
        command(ckpt="unused.ckpt", **{key: value})


# --- checkpoints and the CLI ---------------------------------------------------------------------
@pytest.fixture
def data(tmp_path) -> Path:
    write_fashion_mnist(tmp_path / "data", n_train=16, n_test=8)
    return tmp_path / "data"


def test_fast_dev_run_in_a_run_directory_writes_nothing_resume_takes(tmp_path, data):
    run = tmp_path / "run"
    run_cli(["fit", *quick_args(data, run)])  # the real run: 2 steps
    run_cli(["fit", *quick_args(data, run), "--trainer.fast_dev_run=true"])  # a smoke test
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["last.ckpt"]
    resumed = run_cli(["fit", *quick_args(data, run, epochs=2), "--ckpt_path=last"])
    assert resumed.trainer.global_step == 4  # continued the real run's 2 steps


def test_resume_last_without_a_checkpoint_is_an_error_unless_asked(tmp_path, data):
    with pytest.raises(FileNotFoundError, match="no checkpoint of this run in .*run/checkpoints"):
        run_cli(["fit", *quick_args(data, tmp_path / "run"), "--ckpt_path=last"])
    cli = run_cli(["fit", *quick_args(data, tmp_path / "run"), "--ckpt_path=last_if_present"])
    assert cli.trainer.global_step == 2 and (tmp_path / "run/checkpoints/last.ckpt").is_file()


@pytest.mark.parametrize("damage", ["empty", "truncated", "random bytes"])
def test_damaged_checkpoint_is_named(tmp_path, data, damage):
    run = tmp_path / "run"
    run_cli(["fit", *quick_args(data, run)])
    last = run / "checkpoints" / "last.ckpt"
    content = last.read_bytes()
    last.write_bytes(
        {"empty": b"", "truncated": content[: len(content) // 2], "random bytes": os.urandom(4096)}[
            damage
        ]
    )
    with pytest.raises(ValueError, match=f"checkpoint {last} .*cannot be read") as err:
        run_cli(["fit", *quick_args(data, run, epochs=2), "--ckpt_path=last"])
    assert "weights_only=False" not in str(err.value)
    with pytest.raises(ValueError, match=f"checkpoint {last} .*cannot be read"):
        knn(ckpt=str(last))


def test_unwritable_checkpoint_folder_fails_before_training(tmp_path, data):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "checkpoints").write_text("a file where the folder should be")
    with pytest.raises(PermissionError, match="cannot write the checkpoints to .*checkpoints"):
        run_cli(["fit", *quick_args(data, tmp_path / "run")])


class LoseCheckpoint(Callback):
    """What a save that failed silently leaves: no file where the checkpoint should be."""

    def on_fit_end(self, trainer, pl_module):  # after the last save, before the summary
        Path(trainer.checkpoint_callback.last_model_path).unlink()


def test_run_whose_checkpoint_is_missing_does_not_succeed(tmp_path, data):
    args = ["fit", *quick_args(data, tmp_path / "run")]
    with pytest.raises(RuntimeError, match="checkpoint .*last.ckpt was not written"):
        run_cli([*args, "--trainer.callbacks+=test_reliability.LoseCheckpoint"])


def test_unreachable_wandb_server_means_offline_in_seconds(tmp_path, monkeypatch):
    monkeypatch.delenv("WANDB_MODE")
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    monkeypatch.setenv("WANDB_BASE_URL", "http://127.0.0.1:9")  # nothing listens there
    run_cli(
        [f"--config={CONFIGS / 'quickstart.yaml'}", f"--config={CONFIGS / 'wandb.yaml'}"], run=False
    )
    assert os.environ["WANDB_MODE"] == "offline"


# --- images and labels ----------------------------------------------------------------------------
def test_every_image_mode_becomes_what_it_shows(tmp_path):
    gray = np.arange(0, 256, 16, dtype=np.uint8).reshape(4, 4)
    sixteen = Image.fromarray(gray.astype(np.uint16) * 257)  # I;16, the same picture
    path = tmp_path / "16bit.png"
    sixteen.save(path)
    assert np.array_equal(np.asarray(to_rgb(Image.open(path)))[..., 0], gray)

    palette = Image.fromarray(np.arange(16, dtype=np.uint8).reshape(4, 4), "P")
    palette.putpalette([v for i in range(256) for v in (16 * i % 256,) * 3])  # entry i: gray 16i
    assert np.array_equal(np.asarray(to_rgb(palette))[..., 0], gray)

    alpha = np.where(gray >= 128, 255, 0).astype(np.uint8)  # the dark half is transparent
    la = Image.fromarray(np.stack([gray, alpha], -1), "LA")
    shown = np.where(alpha == 255, gray, 255)  # on white
    assert np.array_equal(np.asarray(to_rgb(la))[..., 0], shown)

    rgb = np.random.default_rng(0).integers(0, 256, (4, 4, 3), dtype=np.uint8)
    cmyk = Image.fromarray(rgb).convert("CMYK")
    assert np.array_equal(np.asarray(to_rgb(cmyk)), rgb)

    tall = Image.fromarray(np.zeros((6, 2, 3), np.uint8))
    exif = tall.getexif()
    exif[0x0112] = 6  # stored upright, shown rotated by 90°
    tall.save(tmp_path / "rotated.jpg", exif=exif)
    assert to_rgb(Image.open(tmp_path / "rotated.jpg")).size == (6, 2)


def write_classes(root: Path, classes: dict[str, int]) -> None:
    """One 16-bit image per class whose brightness is the class's ``value``."""
    for name, value in classes.items():
        (root / name).mkdir(parents=True)
        Image.fromarray(np.full((8, 8), value * 257, np.uint16)).save(root / name / "x.png")


def test_validation_takes_the_training_label_map(tmp_path):
    write_classes(tmp_path / "train", {"a": 10, "b": 100, "c": 200})
    write_classes(tmp_path / "val", {"a": 10, "c": 200})  # lacks b
    dm = MINCDataModule("folder", str(tmp_path), batch_size=1, num_workers=0, image_size=8)
    dm.setup("fit")
    (_, ya), (xc, yc) = dm.val_set[0], dm.val_set[1]
    assert (ya, yc) == (0, 2)  # c keeps its training label
    mean, std = dm.preset.stats[0][0], dm.preset.stats[1][0]
    assert xc[0].mean().item() * std + mean == pytest.approx(200 / 255, abs=1e-3)  # not white


def test_validation_class_unknown_to_training_is_an_error(tmp_path):
    write_classes(tmp_path / "train", {"a": 10, "b": 100})
    write_classes(tmp_path / "val", {"a": 10, "c": 200})
    dm = MINCDataModule("folder", str(tmp_path), batch_size=1, num_workers=0, image_size=8)
    with pytest.raises(ValueError, match=r"val holds 1 class folder.*\(c\)"):
        dm.setup("fit")


def test_checks_accept_the_recipes_values():
    model = MINCModule(backbone=torch.nn.Flatten(), feature_dim=4, num_classes=0)
    assert math.isclose(model.hparams.lr, 0.2)
