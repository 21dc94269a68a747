"""The newcomer's path of docs/architecture.md: a dataset is one entry in ``DATASETS``, an
objective one entry in ``OBJECTIVES``, a callback one class a config names. Each is added here
from outside the package, touching nothing else, and trains through ``minc-lightning fit``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from lightning.pytorch import Callback

from minc_lightning.baselines import BYOLLoss
from minc_lightning.commands.fit import run_cli
from minc_lightning.data import DATASETS, DatasetEntry, Preset
from minc_lightning.data.presets import NO_BLUR, Arrays
from minc_lightning.objectives import OBJECTIVES, Objective

CONFIGS = Path(__file__).parents[1] / "configs"


def toy_arrays(src, split) -> tuple[np.ndarray, np.ndarray]:
    """16 (train) or 8 (val) 12-pixel grey images whose brightness is their class."""
    n = 16 if split == "train" else 8
    labels = np.arange(n) % 4
    images = np.repeat((40 + 50 * labels).astype(np.uint8), 12 * 12).reshape(n, 12, 12)
    return images, labels


class CountSteps(Callback):
    """A newcomer's callback: counts the optimizer steps it sees."""

    def __init__(self, start: int = 0) -> None:
        self.steps = start

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.steps += 1


@pytest.mark.usefixtures("offline_wandb")
def test_a_dataset_an_objective_and_a_callback_each_need_only_their_entry(tmp_path, monkeypatch):
    preset = Preset(image_size=12, eval_resize=12, gaussian_blur=NO_BLUR, num_classes=4)
    monkeypatch.setitem(DATASETS, "toy", DatasetEntry(preset=preset, read=Arrays(toy_arrays)))
    objective = Objective(build=lambda s: BYOLLoss(), uses_target=True, uses_predictor=True)
    monkeypatch.setitem(OBJECTIVES, "mine", objective)
    cli = run_cli(
        [
            "fit",
            f"--config={CONFIGS / 'quickstart.yaml'}",
            "--data.dataset=toy",
            "--data.num_workers=0",
            "--data.batch_size=8",
            "--data.train_subset=null",
            "--model.objective=mine",
            "--model.backbone.init_args.width=2",
            "--model.projection_hidden_dim=16",
            "--model.prediction_hidden_dim=16",
            "--model.projection_dim=8",
            "--trainer.max_epochs=1",
            "--trainer.logger=false",
            f"--trainer.default_root_dir={tmp_path}",
            "--trainer.callbacks+=test_newcomer.CountSteps",
        ]
    )
    counter = next(c for c in cli.trainer.callbacks if isinstance(c, CountSteps))
    assert counter.steps == cli.trainer.global_step == 2  # 16 images, batches of 8
    assert cli.datamodule.num_classes == cli.model.hparams.num_classes == 4  # the preset's
    assert isinstance(cli.model.criterion, BYOLLoss)
