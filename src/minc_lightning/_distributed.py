"""The two collectives the losses need, and nothing else.

MINC only needs a *statistic* from the other processes (no gradient crosses them), so a plain
``all_reduce`` under ``no_grad`` is right. The spectral contrastive baseline needs the other
processes' *embeddings* with their gradients, so it uses the autograd-aware gather of
``torch.distributed.nn``: a plain ``all_gather`` would silently drop the gradient of the remote
rows and leave the gradient 1/world_size too small.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.distributed.nn.functional as dist_nn


def world_size() -> int:
    """Number of processes in the default group (1 when not distributed)."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def rank() -> int:
    """Rank of this process in the default group (0 when not distributed)."""
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


@torch.no_grad()
def all_reduce_sum(x: torch.Tensor) -> torch.Tensor:
    """Sum of ``x`` over all processes, in place; a no-op on one process."""
    if world_size() > 1:
        dist.all_reduce(x, op=dist.ReduceOp.SUM)
    return x


def gather_with_grad(x: torch.Tensor) -> torch.Tensor:
    """Concatenate ``x`` (N, d) from every process along dim 0, keeping the autograd graph.

    The backward pass sums the incoming gradients over processes and returns each process the
    slice of its own rows, so remote rows receive their gradient too.
    """
    if world_size() == 1:
        return x
    return torch.cat(dist_nn.all_gather(x), dim=0)
