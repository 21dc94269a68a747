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

Shards in object storage are read a chunk at a time, so their order is ``ChunkOrder``'s: still a
function of (seed, epoch, position), with the processes' shares and each reader's chunks known in
advance, which is what lets each loader worker download its next chunks before it reads them.
"""

from __future__ import annotations

import random
import signal
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler, get_worker_info

from minc_lightning._distributed import rank, world_size


def written_order(size: int, n: int | None) -> np.ndarray:
    """The source images ``minc-lightning-prepare`` writes to a training split, in order: the
    seeded permutation whose first ``n`` are ``train_subset``'s subset."""
    order = np.random.default_rng(0).permutation(size)
    return order if n is None else order[:n]


def subset_indices(size: int, n: int | None) -> tuple[int, ...] | None:
    """The fixed random subset of ``n`` of ``size`` images that ``train_subset`` and
    ``val_subset`` take, in its order (None: all of them). ``minc-lightning-prepare
    --train_subset`` writes the same one."""
    if n is None or n >= size:
        return None
    return tuple(written_order(size, n).tolist())


def ignore_stop_signals(worker_id: int) -> None:
    """Loader workers ignore SIGTERM and SIGUSR1. A scheduler signals the whole process group;
    a worker that died of it would fail the training process before it writes the checkpoint
    the signal asks for. The workers end with their training process."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGUSR1, signal.SIG_IGN)


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
        self,
        dataset: Dataset,
        batch_size: int,
        shuffle: bool = True,
        seed: int = 0,
        order: ChunkOrder | None = None,
    ) -> None:
        super().__init__(dataset, num_replicas=1, rank=0, shuffle=shuffle, seed=seed)
        self.batch_size = batch_size
        self.order = order
        self.start = 0
        self.trained = 0
        self.iterations = 0  # each iteration's readers plan afresh

    def _share(self) -> torch.Tensor:
        if self.order is not None:
            return torch.from_numpy(self.order.share(self.epoch))
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
        seeds = [(int(i), sample_seed(self.seed, self.epoch, int(i))) for i in share]
        if self.order is not None:  # the readers plan their chunks from (epoch, first batch)
            self.iterations += 1
            return iter([(*pair, self.epoch, start, self.iterations) for pair in seeds])
        return iter(seeds)


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
        state = {"epoch": sampler.epoch, "batches_trained": sampler.trained}
        if sampler.order is not None:  # the chunk order's readers, kept by a resume
            state["readers"] = sampler.order.readers
        return state

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

    def __init__(self, dataset: Dataset, order: ChunkOrder | None = None) -> None:
        self.dataset = dataset
        self.order = order
        self.planned: tuple[int, ...] | None = None

    def __len__(self) -> int:
        return len(self.dataset)

    def plan(self, epoch: int, start: int, iteration: int) -> None:
        """Tell the dataset (``expect``) what this reader reads from batch ``start`` of
        ``epoch`` on, once per iteration: the loader deals batches to its workers in turn, from
        the first."""
        if (epoch, start, iteration) == self.planned:
            return
        self.planned = (epoch, start, iteration)
        worker = get_worker_info()
        reader, readers = (worker.id, worker.num_workers) if worker else (0, 1)
        self.dataset.expect(self.order.reads(epoch, start, reader, readers))

    def __getitem__(self, item: tuple[int, ...]) -> Any:
        index, seed, *planned = item
        if planned and self.order is not None and hasattr(self.dataset, "expect"):
            self.plan(*planned)
        generator = torch.default_generator
        state = generator.get_state()
        generator.manual_seed(seed)  # torch.manual_seed would also seed CUDA: slow
        np.random.seed(seed)
        random.seed(seed)
        try:
            return self.dataset[index]
        finally:
            generator.set_state(state)


@dataclass(frozen=True)
class ChunkOrder:
    """The order of an epoch over shards, read a chunk at a time: a function of
    (seed, epoch, position) as the global permutation is, with each reader's chunks contiguous.

    1. the chunks are permuted (seed, epoch), and their records laid end to end;
    2. each process takes an equal contiguous share (the tail of fewer than ``world`` records
       is left out, as ``SeededSampler`` leaves it);
    3. batch j of a process is read by reader ``j % readers`` (the loader deals batches to its
       workers in turn), and each reader's batches come from its own contiguous part of the
       share;
    4. within a reader's part, records are shuffled within consecutive windows of ``window``
       chunks' worth of records.

    So a reader holds at most ``window + 1`` chunks at a time and reads each chunk in one
    stretch. ``readers`` is fixed when a run starts (its loader workers, or 1): a resume with
    other workers keeps it, and reads the same batches.

    Args:
        chunk_of: the chunk of each dataset index.
        seed, world, rank, batch_size: as the sampler's.
        window: chunks per shuffling window.
        readers: the batch streams of a process.
    """

    chunk_of: np.ndarray
    seed: int
    world: int
    rank: int
    batch_size: int
    window: int
    readers: int

    def share(self, epoch: int) -> np.ndarray:
        """This process's dataset indices for ``epoch``, in the order they are read."""
        rng = np.random.default_rng([self.seed, epoch])
        by_chunk = np.argsort(self.chunk_of, kind="stable")
        chunks, starts = np.unique(self.chunk_of[by_chunk], return_index=True)
        groups = np.split(by_chunk, starts[1:])
        laid = np.concatenate([groups[c] for c in rng.permutation(len(chunks))])
        per = len(laid) // self.world
        mine = laid[self.rank * per : (self.rank + 1) * per]
        sizes = np.diff(np.r_[0 : per : self.batch_size, per])  # each batch's size
        owner = np.arange(len(sizes)) % self.readers
        window = self.window * -(-len(self.chunk_of) // len(chunks))  # records
        parts, at = [], 0
        for r in range(self.readers):
            part = mine[at : at + sizes[owner == r].sum()].copy()
            at += len(part)
            for w, lo in enumerate(range(0, len(part), window)):
                shuffle = np.random.default_rng([self.seed, epoch, self.rank, r, w])
                part[lo : lo + window] = shuffle.permutation(part[lo : lo + window])
            parts.append(part)
        taken = [0] * self.readers
        order = np.empty(per, dtype=np.int64)
        for j, (size, r) in enumerate(zip(sizes, owner, strict=True)):
            lo = j * self.batch_size
            order[lo : lo + size] = parts[r][taken[r] : taken[r] + size]
            taken[r] += size
        return order

    def reads(self, epoch: int, start: int, reader: int, readers: int) -> np.ndarray:
        """What loader worker ``reader`` of ``readers`` reads of ``epoch`` from batch
        ``start`` on, in order."""
        share = self.share(epoch)[start * self.batch_size :]
        batches = np.split(share, np.arange(self.batch_size, len(share), self.batch_size))
        mine = batches[reader::readers]
        return np.concatenate(mine) if mine else np.empty(0, dtype=np.int64)
