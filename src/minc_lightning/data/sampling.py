"""Training data that is a pure function of (seed, epoch, position): resumable mid-epoch.

A run killed in the middle of an epoch and resumed from its last checkpoint must see exactly the
batches, and the augmentations, the uninterrupted run would have seen, with any number of loader
workers and any prefetch. Three pieces make that so:

* ``SeededSampler`` draws the epoch's order from (seed, epoch), shards it over processes like
  ``DistributedSampler`` (which it subclasses, so Lightning leaves it in place), and starts an
  epoch at a given batch;
* ``ResumableLoader`` is a ``DataLoader`` with ``state_dict``/``load_state_dict``, Lightning's
  public interface for resumable loaders: the checkpoint holds (epoch, batches trained), counted
  by ``mark_trained`` as each batch reaches the model, not as workers prefetch it. The state is
  restored before Lightning creates the epoch's iterator (whose workers draw indices at once);
* ``SeededDataset`` applies the random augmentation of sample i under an RNG seeded by
  (seed, epoch, i), so the views do not depend on worker count or on what ran before.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from minc_lightning._distributed import rank, world_size


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
    cut to a multiple of the number of processes and dealt out as ``rank::world_size``. The
    next iteration starts at batch ``start`` of the epoch (set by a resume, then back to 0);
    ``trained`` counts the batches of the epoch that reached the model.
    """

    def __init__(
        self, dataset: Dataset, batch_size: int, shuffle: bool = True, seed: int = 0
    ) -> None:
        super().__init__(dataset, num_replicas=1, rank=0, shuffle=shuffle, seed=seed)
        self.batch_size = batch_size
        self.start = 0
        self.trained = 0

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

    def batches_per_epoch(self, drop_last: bool) -> int:
        full, rest = divmod(len(self), self.batch_size)
        return full + (0 if drop_last or not rest else 1)

    def set_epoch(self, epoch: int) -> None:
        if epoch != self.epoch:  # a new epoch; a resume has set this one already
            self.start = self.trained = 0
        super().set_epoch(epoch)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        start, self.start = self.start, 0  # a resume's offset applies to one iteration
        self.trained = start
        share = self._share()[start * self.batch_size :]
        return iter([(int(i), sample_seed(self.seed, self.epoch, int(i))) for i in share])


class ResumableLoader(DataLoader):
    """A ``DataLoader`` over a ``SeededSampler`` whose position travels in the checkpoint.

    Lightning saves ``state_dict()`` with the training loop and calls ``load_state_dict`` on
    resume before it creates the epoch's iterator. ``mark_trained()`` is called once per batch
    that reaches the model (``MINCDataModule.on_after_batch_transfer``), so prefetched batches
    are not counted. What decides the sequence of batches is ``MINCDataModule.stream()``; a
    resume that differs in any of it is refused there.
    """

    sampler: SeededSampler

    def mark_trained(self) -> None:
        self.sampler.trained += 1

    def state_dict(self) -> dict[str, Any]:
        sampler = self.sampler
        return {"epoch": sampler.epoch, "batches_trained": sampler.trained}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        sampler = self.sampler
        epoch, done = int(state["epoch"]), int(state["batches_trained"])
        if done >= sampler.batches_per_epoch(self.drop_last):  # saved at the epoch's end
            epoch, done = epoch + 1, 0
        sampler.set_epoch(epoch)
        sampler.start = sampler.trained = done


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
