"""Runs, configs and checkpoints from before the package took its current layout keep working:
the old module paths resolve, with a warning that names the new one."""

from __future__ import annotations

import importlib
import re
import shutil
from pathlib import Path

import pytest
import torch
from dataset_files import write_fashion_mnist

import minc_lightning
from minc_lightning.callbacks import OnlineKNN
from minc_lightning.cli import run_cli
from minc_lightning.loading import model_from_checkpoint

BEFORE = Path(__file__).parent / "data" / "before_layout"  # written by the flat package


@pytest.mark.parametrize(
    "old, name, new",
    [
        ("monitor", "OnlineKNN", "callbacks.knn"),
        ("fastpath", "FastPaths", "callbacks.speed"),
        ("pictures", "LambdaPictures", "callbacks.lambda_pictures"),
        ("progress", "LineProgress", "callbacks.progress"),
        ("run_checkpoint", "ResumableCheckpoint", "callbacks.checkpoint"),
        ("datasets", "DATASETS", "data.presets"),
        ("datasets", "read_idx", "data.formats"),
        ("datasets", "to_rgb", "data.images"),
        ("augment", "ViewRecipe", "data.augment"),
        ("guard", "NonFiniteGuard", "nonfinite"),
        ("checkpoints", "find_last", "checkpoint_io"),
    ],
)
def test_an_old_path_gives_the_new_object_and_names_the_new_path(old, name, new):
    module = importlib.import_module(f"minc_lightning.{old}")
    with pytest.warns(
        FutureWarning,
        match=rf"minc_lightning\.{old}\.{name} moved to "
        rf"minc_lightning\.{new}\.{name}",
    ):
        found = getattr(module, name)
    assert found is getattr(importlib.import_module(f"minc_lightning.{new}"), name)
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        module.nothing  # noqa: B018


def test_a_config_names_a_callback_by_its_short_path(tmp_path):
    """What the README and architecture.md write: minc_lightning.callbacks.<Name>."""
    write_fashion_mnist(tmp_path / "data", n_train=8, n_test=4)
    config = Path(__file__).parents[1] / "configs" / "quickstart.yaml"
    cli = run_cli(
        [
            f"--config={config}",
            f"--data.root={tmp_path / 'data'}",
            "--trainer.callbacks+=minc_lightning.callbacks.OnlineKNN",
            "--trainer.callbacks+=minc_lightning.callbacks.FastPaths",
        ],
        run=False,
    )
    kinds = {type(c).__name__ for c in cli.trainer.callbacks}
    assert {"OnlineKNN", "FastPaths"} <= kinds


def test_only_the_old_paths_are_redirected():
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module("minc_lightning.no_such_module")
    assert minc_lightning.data.MINCDataModule is minc_lightning.MINCDataModule


@pytest.fixture
def old_run(tmp_path, monkeypatch) -> Path:
    """The run folder the flat package wrote (relative paths: run/, data/), set up again."""
    (tmp_path / "run" / "checkpoints").mkdir(parents=True)
    shutil.copy(BEFORE / "last.ckpt", tmp_path / "run" / "checkpoints" / "last.ckpt")
    shutil.copy(BEFORE / "config.yaml", tmp_path / "config.yaml")
    write_fashion_mnist(tmp_path / "data", n_train=32, n_test=8)  # what it trained on
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.usefixtures("offline_wandb")
def test_an_old_config_and_checkpoint_resume_under_the_new_layout(old_run):
    before = torch.load(old_run / "run" / "checkpoints" / "last.ckpt", weights_only=True)
    with pytest.warns(FutureWarning, match="minc_lightning.monitor.OnlineKNN moved to"):
        cli = run_cli(["fit", "--config=config.yaml", "--ckpt_path=last", "--trainer.max_epochs=2"])
    assert before["global_step"] == 4 and cli.trainer.global_step == 8  # resumed, not restarted
    assert any(isinstance(c, OnlineKNN) for c in cli.trainer.callbacks)
    after = torch.load(old_run / "run" / "checkpoints" / "last.ckpt", weights_only=True)
    assert after["global_step"] == 8


def test_an_old_checkpoint_loads_for_evaluation(old_run):
    ckpt = old_run / "run" / "checkpoints" / "last.ckpt"
    model = model_from_checkpoint(ckpt)
    saved = torch.load(ckpt, weights_only=True)["state_dict"]
    assert all(torch.equal(model.state_dict()[k], v) for k, v in saved.items())


def test_every_test_docs_reliability_names_exists():
    """docs/reliability.md makes no promise without a test: each test it names is defined."""
    root = Path(__file__).parents[1]
    defined = {
        m.group(1)
        for path in (root / "tests").glob("test_*.py")
        for m in re.finditer(r"^def (test_\w+)", path.read_text(), re.M)
    }
    named = set(
        re.findall(r"(test_\w+)(?:\[[^\]]*\])?`", (root / "docs/reliability.md").read_text())
    )
    assert named, "docs/reliability.md names no test"
    assert named <= defined, sorted(named - defined)
    promises = [
        line
        for line in (root / "docs/reliability.md").read_text().splitlines()
        if line.startswith(("| ", "- ")) and not line.startswith("| promise")
    ]
    untested = [line[:80] for line in promises if not re.search(r"test_\w+", line)]
    assert not untested, untested  # each promise beside the test that holds it
