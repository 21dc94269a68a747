"""Preemptible jobs: a scheduler's signal, a kill after an epoch, a run stopped by max_time, and
resumes that do not fit their checkpoint. Real `minc-lightning fit` processes, real signals."""

import os
import signal
import subprocess
from pathlib import Path

import pytest
import torch
from dataset_files import write_fashion_mnist
from test_faults import TESTS, fit_command

from minc_lightning.callbacks.checkpoint import PREEMPTED_EXIT

pytestmark = pytest.mark.slow


def run(command: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess:
    env = dict(
        os.environ, PYTHONPATH=f"{TESTS}{os.pathsep}{os.environ.get('PYTHONPATH', '')}", **env
    )
    return subprocess.run(
        command,
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        start_new_session=True,  # its own process group, as a scheduler's job step
    )


def callbacks(tmp_path: Path, file: str, class_path: str, **init: object) -> str:
    args = "".join(f"        {k}: {v}\n" for k, v in init.items())
    path = tmp_path / f"{file}.yaml"
    path.write_text(
        f"trainer:\n  callbacks:\n    - class_path: {class_path}\n      init_args:\n{args}"
    )
    return f"--config={path}"


def final_state(run_dir: Path) -> dict:
    return torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)


def assert_same_weights(a: dict, b: dict) -> None:
    assert a["global_step"] == b["global_step"]
    assert a["state_dict"].keys() == b["state_dict"].keys()
    for name in a["state_dict"]:
        assert torch.equal(a["state_dict"][name], b["state_dict"][name]), name


@pytest.fixture(scope="module")
def data_and_straight(tmp_path_factory):
    """64 images (8 batches of 8 per epoch, 2 epochs) and an uninterrupted run on them."""
    tmp = tmp_path_factory.mktemp("preemption")
    write_fashion_mnist(tmp / "data", n_train=64, n_test=8)
    done = run(fit_command(tmp / "data", tmp / "straight", ["--data.num_workers=2"]), tmp)
    assert done.returncode == 0, done.stderr[-3000:]
    return tmp / "data", final_state(tmp / "straight")


@pytest.mark.parametrize("name, workers", [("SIGTERM", 2), ("SIGUSR1", 0)])
def test_scheduler_signal_saves_the_exact_position_exits_75_and_resumes_bit_exact(
    tmp_path, data_and_straight, name, workers
):
    data, straight = data_and_straight
    options = [f"--data.num_workers={workers}", "--checkpoint.every_n_train_steps=null"]
    signal_at = callbacks(tmp_path, "signal", "crash.SignalAt", step=11, name=name)
    stopped = run(fit_command(data, tmp_path / "run", [*options, signal_at]), tmp_path)
    assert stopped.returncode == PREEMPTED_EXIT, stopped.stderr[-3000:]
    assert f"{name} received: saved step 11" in stopped.stderr + stopped.stdout
    assert final_state(tmp_path / "run")["global_step"] == 11  # mid-epoch 1, not epoch 0's end
    resumed = run(
        fit_command(data, tmp_path / "run", [*options, "--ckpt_path=last_if_present"]), tmp_path
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "dataloader is not resumable" not in resumed.stderr
    assert_same_weights(final_state(tmp_path / "run"), straight)


def test_kill_right_after_an_epoch_resumes_from_its_end(tmp_path, data_and_straight):
    """The recipes' checkpoint settings (no every_n_train_steps): last.ckpt at every epoch end."""
    data, straight = data_and_straight
    options = ["--data.num_workers=2", "--checkpoint.every_n_train_steps=null"]
    kill = callbacks(tmp_path, "kill", "crash.KillAt", step=9)  # the first step of epoch 1
    killed = run(fit_command(data, tmp_path / "run", [*options, kill]), tmp_path)
    assert killed.returncode == -signal.SIGKILL
    assert final_state(tmp_path / "run")["global_step"] == 8
    resumed = run(fit_command(data, tmp_path / "run", [*options, "--ckpt_path=last"]), tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert_same_weights(final_state(tmp_path / "run"), straight)


def test_sigterm_to_one_ddp_process_stops_every_rank_with_one_checkpoint(tmp_path):
    write_fashion_mnist(tmp_path / "data", n_train=64, n_test=8)  # 4 steps per epoch on 2 × 8
    options = [
        "--trainer.devices=2",
        "--trainer.strategy=ddp",
        "--data.num_workers=0",
        "--checkpoint.every_n_train_steps=null",
        callbacks(tmp_path, "signal", "crash.SignalAt", step=6, rank=0),
    ]
    stopped = run(fit_command(tmp_path / "data", tmp_path / "run", options), tmp_path)
    assert stopped.returncode == PREEMPTED_EXIT, stopped.stderr[-3000:]
    assert stopped.stderr.count("minc-lightning: stopped by a signal") == 2  # both ranks
    assert [p.name for p in (tmp_path / "run" / "checkpoints").iterdir()] == ["last.ckpt"]
    assert final_state(tmp_path / "run")["global_step"] == 6
