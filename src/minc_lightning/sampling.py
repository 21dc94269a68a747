"""Training data that is a pure function of (seed, epoch, position): resumable mid-epoch.

A run killed in the middle of an epoch and resumed from its last checkpoint must see exactly the
batches, and the augmentations, the uninterrupted run would have seen. Two pieces make that so:

* ``SeededSampler`` draws the epoch's order from (seed, epoch), shards it over processes like
  ``DistributedSampler`` (which it subclasses, so Lightning leaves it in place), and skips the
  batches of the epoch that were trained on before the crash;
* ``SeededDataset`` applies the random augmentation of sample i under an RNG seeded by
  (seed, epoch, i), so the views do not depend on worker count or on what ran before.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, DistributedSampler

from minc_lightning.distributed import rank, world_size


def sample_seed(seed: int, epoch: int, index: int) -> int:
    """A 32-bit seed for the augmentation of sample ``index`` in ``epoch`` (splitmix64 of the
    three numbers: cheap, and distinct inputs give unrelated seeds)."""
    x = (seed * 0x9E3779B97F4A7C15 + epoch * 0xBF58476D1CE4E5B9 + index) & _MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
    return (x ^ (x >> 31)) & 0xFFFFFFFF


_MASK64 = (1 << 64) - 1


class SeededSampler(DistributedSampler):
    """Yields ``(index, augmentation seed)`` pairs of this process's share of the epoch.

    The order is a permutation drawn from (seed, epoch) (or the identity without shuffling),
    cut to a multiple of the number of processes and dealt out as ``rank::world_size``.
    ``batches_done()`` is asked when an epoch starts how many batches of ``batch_size`` of it
    were already trained on (non-zero only when resuming mid-epoch); those are skipped.
    """

    def __init__(
        self,
        dataset: Dataset,
        batch_size: int,
        shuffle: bool = True,
        seed: int = 0,
        batches_done: Callable[[], int] = lambda: 0,
    ) -> None:
        super().__init__(dataset, num_replicas=1, rank=0, shuffle=shuffle, seed=seed)
        self.batch_size = batch_size
        self.batches_done = batches_done

    def _share(self) -> torch.Tensor:
        n, world = len(self.dataset), world_size()
        order = (
            torch.randperm(n, generator=torch.Generator().manual_seed(self.seed + self.epoch))
            if self.shuffle
            else torch.arange(n)
        )
        return order[: n - n % world][rank() :: world]

    def __len__(self) -> int:
        return len(self.dataset) // world_size()

    def __iter__(self) -> Iterator[tuple[int, int]]:
        share = self._share()[self.batches_done() * self.batch_size :]
        return iter([(int(i), sample_seed(self.seed, self.epoch, int(i))) for i in share])


class SeededDataset(Dataset):
    """Wraps a dataset whose transform is random: item ``(i, seed)`` is sample i transformed
    with torch's, numpy's and ``random``'s global generators seeded with ``seed``.

    Torch's generator is restored afterwards (the training step may draw from it when there
    are no loader workers); numpy's and ``random``'s are left re-seeded, as in any loader
    worker: saving numpy's state costs more than many transforms.
    """

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, item: tuple[int, int]) -> Any:
        index, seed = item
        generator = torch.default_generator
        state = generator.get_state()
        generator.manual_seed(seed)  # torch.manual_seed would also seed CUDA: slow
        np.random.seed(seed)
        random.seed(seed)
        try:
            return self.dataset[index]
        finally:
            generator.set_state(state)
