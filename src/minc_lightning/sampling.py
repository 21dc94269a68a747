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
    """A 32-bit seed for the augmentation of sample ``index`` in ``epoch``."""
    return int(np.random.SeedSequence([seed, epoch, index]).generate_state(1)[0])


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
        self.batch_size, self.batches_done = batch_size, batches_done

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
    under torch, numpy and ``random`` generators seeded with ``seed`` (the callers' generator
    states are restored afterwards)."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, item: tuple[int, int]) -> Any:
        index, seed = item
        np_state, py_state = np.random.get_state(), random.getstate()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            np.random.seed(seed)
            random.seed(seed)
            try:
                return self.dataset[index]
            finally:
                np.random.set_state(np_state)
                random.setstate(py_state)
