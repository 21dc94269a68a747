"""The losses under a real 2-process gloo group equal one process on the global batch."""

import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from minc_lightning.baselines import SpectralContrastiveLoss
from minc_lightning.loss import MINCLoss

WORLD = 2


def global_batches():
    g = torch.Generator().manual_seed(0)
    # unequal row counts per process: the Λ average must be weighted by rows
    rows = [(5, 9), (7, 3)]  # (process 0, process 1) for two steps
    return [
        [(torch.randn(n, 4, generator=g), torch.randn(n, 4, generator=g)) for n in step]
        for step in rows
    ]


def _worker(rank: int, init_file: str, out_dir: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD)
    try:
        loss = MINCLoss(dim=4, alpha=0.5, mu=None)
        for step in global_batches():
            loss(*step[rank])
        z = torch.randn(2 * WORLD * 6, 4, generator=torch.Generator().manual_seed(1))
        z1, z2 = z[: WORLD * 6], z[WORLD * 6 :]
        mine = slice(rank * 6, (rank + 1) * 6)
        z1_local = z1[mine].clone().requires_grad_(True)
        z2_local = z2[mine].clone().requires_grad_(True)
        scl = SpectralContrastiveLoss(mu=1.0)(z1_local, z2_local)
        scl.backward()
        torch.save(
            {
                "lambda": loss.second_moment,
                "scl": scl.detach(),
                "g1": z1_local.grad,
                "g2": z2_local.grad,
            },
            os.path.join(out_dir, f"rank{rank}.pt"),
        )
    finally:
        dist.destroy_process_group()


@pytest.mark.slow  # two gloo processes
def test_two_processes_equal_one_process_on_the_global_batch(tmp_path):
    mp.spawn(_worker, args=(str(tmp_path / "init"), str(tmp_path)), nprocs=WORLD)
    results = [torch.load(tmp_path / f"rank{r}.pt") for r in range(WORLD)]

    # MINC: every process holds the Λ of one process that saw the global batch
    single = MINCLoss(dim=4, alpha=0.5, mu=None)
    for step in global_batches():
        single(torch.cat([p for p, _ in step]), torch.cat([t for _, t in step]))
    for r in results:
        torch.testing.assert_close(r["lambda"], single.second_moment)

    # SCL: the mean of the per-process losses is the global loss, and the per-process gradients
    # (averaged over processes, as DDP does) are the global gradients
    z = torch.randn(2 * WORLD * 6, 4, generator=torch.Generator().manual_seed(1))
    z1 = z[: WORLD * 6].clone().requires_grad_(True)
    z2 = z[WORLD * 6 :].clone().requires_grad_(True)
    full = SpectralContrastiveLoss(mu=1.0)(z1, z2)
    full.backward()
    torch.testing.assert_close(sum(r["scl"] for r in results) / WORLD, full.detach())
    torch.testing.assert_close(torch.cat([r["g1"] for r in results]) / WORLD, z1.grad)
    torch.testing.assert_close(torch.cat([r["g2"] for r in results]) / WORLD, z2.grad)
