"""Fixtures shared by the test modules."""

import os
import subprocess
from pathlib import Path

import pytest

QUICKSTART = Path(__file__).parents[1] / "configs" / "quickstart.yaml"

if "PYTEST_XDIST_WORKER" in os.environ:  # `pytest -n N`: N workers share the cores
    # one torch thread each, set before torch loads: two 2-thread workers on 2 cores spin
    # against each other (the fast loop took 164 s so, 53 s with one thread each)
    os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture
def offline_wandb(tmp_path, monkeypatch):
    """W&B offline, writing under tmp_path, and tmp_path as the working directory."""
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def tmpfs(tmp_path):
    """``tmpfs(size)``: a tmpfs of ``size`` ("64m") mounted on a new folder of tmp_path and
    unmounted after the test (root only; the test is skipped elsewhere)."""
    mounted = []

    def mount(size: str):
        folder = tmp_path / f"tmpfs{len(mounted)}"
        folder.mkdir()
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip() or 'not root'})")
        mounted.append(folder)
        return folder

    yield mount
    for folder in mounted:
        subprocess.run(["umount", str(folder)], check=False)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A quickstart checkpoint trained 1 epoch on 40 tiny Fashion-MNIST images (and their
    folder): what the evaluation and embedding commands read."""
    from dataset_files import write_fashion_mnist

    from minc_lightning.commands.fit import run_cli

    tmp = tmp_path_factory.mktemp("eval")
    write_fashion_mnist(tmp / "data", n_train=40, n_test=20)
    run_cli(
        [
            "fit",
            f"--config={QUICKSTART}",
            f"--data.root={tmp / 'data'}",
            "--data.batch_size=8",
            "--data.num_workers=0",
            "--data.train_subset=null",
            "--trainer.max_epochs=1",
            "--model.projection_hidden_dim=32",
            "--model.prediction_hidden_dim=32",
            "--model.backbone.init_args.width=4",
            "--trainer.enable_progress_bar=false",
            f"--trainer.default_root_dir={tmp / 'run'}",
            f"--trainer.logger.init_args.save_dir={tmp / 'run'}",
        ]
    )
    return tmp / "run" / "checkpoints" / "last.ckpt", tmp / "data"
