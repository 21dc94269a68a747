"""A resume continues the run it belongs to, on the batches it would have trained, or stops
before training and says why."""

import re
import time
from pathlib import Path

import pytest
import torch
from dataset_files import write_fashion_mnist
from lightning.pytorch import Callback
from test_cli import quick_args

from minc_lightning.checkpoint_io import find_last
from minc_lightning.cli import run_cli

pytestmark = pytest.mark.usefixtures("offline_wandb")


@pytest.fixture
def data(tmp_path) -> Path:
    write_fashion_mnist(tmp_path / "data", n_train=32, n_test=8)  # 4 batches of 8 per epoch
    return tmp_path / "data"


def fit(data: Path, run: Path, *extra: str, epochs: int = 2):
    return run_cli(["fit", *quick_args(data, run, epochs=epochs), "--trainer.logger=false", *extra])


def weights(run: Path, name: str = "last.ckpt") -> dict:
    return torch.load(run / "checkpoints" / name, weights_only=True)


@pytest.mark.parametrize(
    "changed, key, before, after",
    [
        (["--data.seed=1"], "data.seed", "0", "1"),
        (["--data.train_subset=24"], "data.train_subset", "None", "24"),
        (  # the same global batch of 8, split otherwise: other batches
            ["--data.batch_size=4", "--trainer.accumulate_grad_batches=2"],
            "data.batch_size (per device)",
            "8",
            "4",
        ),
    ],
)
def test_resume_onto_another_stream_of_batches_is_refused_naming_both_values(
    tmp_path, data, changed, key, before, after
):
    fit(data, tmp_path / "run", epochs=1)
    last = tmp_path / "run" / "checkpoints" / "last.ckpt"
    with pytest.raises(ValueError, match="another stream of batches") as err:
        fit(data, tmp_path / "run", *changed, f"--ckpt_path={last}")
    assert f"{key} was {before}, is now {after}" in str(err.value)
    if key.startswith("data.seed"):  # `last` does not take it for this run's either
        with pytest.raises(FileNotFoundError, match="data.seed: 0 there, 1 here"):
            fit(data, tmp_path / "run", *changed, "--ckpt_path=last")


def test_resume_onto_other_root_contents_is_refused(tmp_path, data):
    fit(data, tmp_path / "run", epochs=1)
    write_fashion_mnist(data, n_train=40, n_test=8)  # the folder now holds more images
    with pytest.raises(ValueError, match="data.root's contents.* was 32, is now 40"):
        fit(data, tmp_path / "run", "--ckpt_path=last")


def test_resume_with_other_workers_is_accepted_and_said(tmp_path, data, caplog):
    fit(data, tmp_path / "run", epochs=1)
    fit(data, tmp_path / "run", "--data.num_workers=1", "--ckpt_path=last")
    assert "resuming with data.num_workers 1 instead of the checkpoint's 0" in caplog.text


class Slow(Callback):
    """A step of at least 0.5 s, so that max_time (1 s) stops the run inside its first epoch of
    4 steps."""

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        time.sleep(0.5)


def test_run_stopped_by_max_time_resumes_the_rest_of_its_epoch(tmp_path, data, monkeypatch):
    straight = fit(data, tmp_path / "straight")
    slow = tmp_path / "slow.yaml"
    slow.write_text("trainer:\n  callbacks:\n    - class_path: test_resume.Slow\n")
    stopped = fit(data, tmp_path / "run", f"--config={slow}", "--trainer.max_time=00:00:00:01")
    assert 0 < stopped.trainer.global_step < 4  # inside epoch 0
    resumed = fit(data, tmp_path / "run", "--ckpt_path=last")
    assert resumed.trainer.global_step == straight.trainer.global_step == 8
    a, b = weights(tmp_path / "straight"), weights(tmp_path / "run")
    for name in a["state_dict"]:
        assert torch.equal(a["state_dict"][name], b["state_dict"][name]), name


def test_sweep_runs_sharing_a_folder_never_resume_each_other(tmp_path, data, caplog):
    """Two runs with other hyper-parameters in one default_root_dir (as a sweep without per-run
    folders): each resumes only its own checkpoint, and neither overwrites the other's."""
    run = tmp_path / "shared"
    fit(data, run, "--model.alpha=0.1", epochs=1)
    first = weights(run)
    other = fit(data, run, "--model.alpha=0.3", "--ckpt_path=last_if_present", epochs=1)
    assert other.trainer.global_step == 4  # started afresh: not resumed from alpha 0.1's state
    assert "belongs to another run (model.alpha: 0.1 there, 0.3 here)" in caplog.text
    assert torch.equal(
        weights(run)["state_dict"]["criterion.second_moment"],
        first["state_dict"]["criterion.second_moment"],
    )  # last.ckpt untouched
    assert weights(run, "last-v1.ckpt")["hyper_parameters"]["alpha"] == 0.3
    again = fit(data, run, "--model.alpha=0.1", "--ckpt_path=last", epochs=2)
    assert again.trainer.global_step == 8 and again.trainer.ckpt_path.endswith("last.ckpt")
    with pytest.raises(FileNotFoundError, match="no checkpoint of this run"):
        fit(data, run, "--model.alpha=0.6", "--ckpt_path=last")


def test_each_wandb_sweep_run_gets_its_own_folder(tmp_path, data, monkeypatch):
    monkeypatch.setenv("WANDB_SWEEP_ID", "sweep1")
    for run_id in ("run-a", "run-b"):
        monkeypatch.setenv("WANDB_RUN_ID", run_id)
        fit(data, tmp_path / "runs", "--ckpt_path=last_if_present", epochs=1)
    assert (tmp_path / "runs" / "run-a" / "checkpoints" / "last.ckpt").is_file()
    assert (tmp_path / "runs" / "run-b" / "checkpoints" / "last.ckpt").is_file()
    found, _ = find_last(tmp_path / "runs" / "run-b" / "checkpoints")
    assert found is not None


def test_a_run_that_trains_zero_steps_says_so(tmp_path, data):
    fit(data, tmp_path / "run", epochs=1)
    with pytest.raises(RuntimeError, match="trained zero optimizer steps"):
        fit(data, tmp_path / "run", "--ckpt_path=last", epochs=1)  # max_epochs already reached


def test_ckpt_path_that_is_a_directory_says_so(tmp_path, data):
    with pytest.raises(IsADirectoryError, match="is a directory"):
        fit(data, tmp_path / "run", f"--ckpt_path={tmp_path}")


def test_settings_the_objective_ignores_are_named_at_start(tmp_path, data, caplog):
    fit(data, tmp_path / "run", "--model.objective=byol", epochs=1)
    assert "objective 'byol' ignores alpha, triangular, moment_source, mu" in caplog.text


def test_a_picture_that_cannot_be_written_says_the_checkpoint_is_safe(tmp_path, data):
    run = tmp_path / "run"
    run.mkdir()
    (run / "lambda").write_text("a file where the pictures' folder would go")
    with pytest.raises(RuntimeError, match="its checkpoint .*last.ckpt is safe .*picture of Λ"):
        fit(data, run, epochs=1)
    assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 4


def test_every_key_of_the_stream_is_checked_on_resume(tmp_path):
    """Each setting that decides the batches, the number of processes included (which needs
    DDP to change in a real run), stops a resume with its name and both values."""
    from minc_lightning.data import MINCDataModule

    write_fashion_mnist(tmp_path, n_train=32)
    dm = MINCDataModule("fashion_mnist", str(tmp_path), batch_size=8, num_workers=0)
    dm.setup("fit")
    saved = dm.state_dict()
    assert len(saved["stream"]) == 9  # data.local_views among them
    for key, value in saved["stream"].items():
        other = "another" if isinstance(value, str) else (value or 0) + 1  # as written then
        written = dict(saved, stream=dict(saved["stream"], **{key: other}))
        with pytest.raises(ValueError, match=re.escape(f"{key} was {other!r}, is now {value!r}")):
            dm.load_state_dict(written)
    dm.load_state_dict(saved)  # the same stream resumes
