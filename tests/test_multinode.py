"""Multi-node, run for real on 127.0.0.1: 2 nodes × 1 process through torchrun, and through
Lightning's SLURM environment with the variables srun sets for two tasks on two nodes (gloo, CPU).
Each trains, resumes with ``--ckpt_path last``, and must equal 1 node × 2 processes."""

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from dataset_files import write_fashion_mnist
from test_fit import quick_args

pytestmark = pytest.mark.slow  # fresh Python processes that talk over 127.0.0.1

TESTS = Path(__file__).parent
# the same job for every launch: 2 processes in all, each on 1 CPU "device"
DDP = ["--trainer.strategy=ddp", "--trainer.devices=1", "--data.batch_size=4"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fit_args(data: Path, run: Path, epochs: int, *extra: str) -> list[str]:
    record = run.parent / f"{run.name}-record-{epochs}"
    callbacks = run.parent / f"{run.name}-callbacks.yaml"
    callbacks.write_text(
        "trainer:\n  callbacks:\n    - class_path: multinode_record.Record\n"
        f"      init_args:\n        out: {record}\n"
    )
    args = [*quick_args(data, run, epochs), f"--config={callbacks}", "--trainer.logger=false"]
    return ["fit", *args, *DDP, *extra]


def environment() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "MASTER_"))}
    env["PYTHONPATH"] = os.pathsep.join([str(TESTS), env.get("PYTHONPATH", "")])
    env["OMP_NUM_THREADS"] = "1"
    return env


def wait_all(processes: list[subprocess.Popen]) -> None:
    outputs = [p.communicate(timeout=600)[0] for p in processes]
    for p, out in zip(processes, outputs, strict=True):
        assert p.returncode == 0, out[-4000:]


CLI = [sys.executable, "-m", "minc_lightning.commands.fit"]


def torchrun_two_nodes(args: list[str], cwd: Path) -> None:
    port = free_port()
    nodes = [
        subprocess.Popen(
            [
                *(sys.executable, "-m", "torch.distributed.run", "--nnodes", "2"),
                *("--nproc_per_node", "1", "--node_rank", str(rank)),
                *("--master_addr", "127.0.0.1", "--master_port", str(port)),
                *("-m", "minc_lightning.commands.fit", *args, "--trainer.num_nodes=2"),
            ],
            env=environment(),
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for rank in (0, 1)
    ]
    wait_all(nodes)


def slurm_two_nodes(args: list[str], cwd: Path) -> None:
    """The variables srun sets for `srun --nodes 2 --ntasks-per-node 1`, one task per node."""
    port = free_port()
    tasks = []
    for rank in (0, 1):
        env = environment() | {
            "SLURM_JOB_ID": "4242",
            "SLURM_JOB_NAME": "minc",
            "SLURM_NTASKS": "2",
            "SLURM_NTASKS_PER_NODE": "1",
            "SLURM_NNODES": "2",
            "SLURM_JOB_NUM_NODES": "2",
            "SLURM_NODELIST": "localhost",
            "SLURM_JOB_NODELIST": "localhost",
            "SLURM_PROCID": str(rank),
            "SLURM_LOCALID": "0",
            "SLURM_NODEID": str(rank),
            "MASTER_PORT": str(port),
        }
        tasks.append(
            subprocess.Popen(
                [*CLI, *args, "--trainer.num_nodes=2"],
                env=env,
                cwd=cwd,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
        )
    wait_all(tasks)


def one_node_two_processes(args: list[str], cwd: Path) -> None:
    args = [*args, "--trainer.devices=2"]  # after the others: the last one counts
    wait_all(
        [
            subprocess.Popen(
                [*CLI, *args],
                env=environment(),
                cwd=cwd,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
        ]
    )


def train_and_resume(launch, data: Path, run: Path) -> list[dict]:
    """Epoch 1, then a resume to epoch 2 with --ckpt_path last; each process's record."""
    launch(fit_args(data, run, 1), run.parent)
    launch(fit_args(data, run, 2, "--ckpt_path=last"), run.parent)
    out = run.parent / f"{run.name}-record-2"
    return [torch.load(out / f"rank{r}.pt", weights_only=True) for r in (0, 1)]


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("multinode") / "data"
    write_fashion_mnist(root, n_train=32, n_test=8)  # 4 steps per epoch of 2 × 4 images
    return root


@pytest.fixture(scope="module")
def one_node(data) -> list[dict]:
    return train_and_resume(one_node_two_processes, data, data.parent / "one_node")


@pytest.mark.parametrize("launch", [torchrun_two_nodes, slurm_two_nodes], ids=["torchrun", "slurm"])
def test_two_nodes_train_resume_and_equal_one_node_with_two_processes(data, one_node, launch):
    rank0, rank1 = train_and_resume(launch, data, data.parent / launch.__name__)
    assert (rank0["node"], rank1["node"]) == (0, 1)  # two nodes, not two processes on one
    assert rank0["world"] == rank1["world"] == 2
    assert rank0["step"] == rank1["step"] == 8  # 2 epochs of 4 steps, across the resume
    assert torch.equal(rank0["lambda"], rank1["lambda"])  # Λ is averaged over all processes
    assert torch.equal(rank0["online"], rank1["online"])
    for epoch in (1,):  # the epoch trained after the resume
        mine, theirs = set(rank0["positions"][epoch]), set(rank1["positions"][epoch])
        assert not mine & theirs and len(mine | theirs) == 32  # disjoint, and all of them
    for ours, theirs in zip((rank0, rank1), one_node, strict=True):
        assert ours["positions"] == theirs["positions"]
        assert ours["step"] == theirs["step"]
        torch.testing.assert_close(ours["lambda"], theirs["lambda"], rtol=1e-5, atol=1e-7)
        torch.testing.assert_close(ours["online"], theirs["online"], rtol=1e-5, atol=1e-7)
