"""The chunk-local order over shards (``sampling.ChunkOrder``): a function of
(seed, epoch, position), every record once per epoch per process group, each reader's chunks
its own and read in one stretch, and a resume that continues it exactly."""

from __future__ import annotations

from collections import deque

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from minc_lightning.data.sampling import ChunkOrder, SeededDataset, SeededSampler


def chunked(records: int, per_chunk: int) -> np.ndarray:
    """The chunk of each of ``records`` dataset indices, ``per_chunk`` to a chunk (the last
    shorter), in a scrambled order, as a permuted or skipping split maps them."""
    chunk_of = np.arange(records) // per_chunk
    return chunk_of[np.random.default_rng(7).permutation(records)]


def order(chunk_of, **kw) -> ChunkOrder:
    settings = dict(seed=3, world=1, rank=0, batch_size=8, window=3, readers=2) | kw
    return ChunkOrder(chunk_of, **settings)


def test_the_order_is_a_function_of_seed_and_epoch():
    chunk_of = chunked(500, 20)
    a, b = order(chunk_of).share(4), order(chunk_of.copy()).share(4)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, order(chunk_of).share(5))
    assert not np.array_equal(a, order(chunk_of, seed=4).share(4))


@pytest.mark.parametrize("world", [1, 2, 3])
def test_each_process_reads_every_record_of_its_share_once_in_equal_counts(world):
    chunk_of = chunked(503, 20)
    shares = [order(chunk_of, world=world, rank=r).share(0) for r in range(world)]
    assert len({len(s) for s in shares}) == 1 and len(shares[0]) == 503 // world
    together = np.concatenate(shares)
    assert len(np.unique(together)) == len(together)  # no record twice
    assert len(together) == 503 - 503 % world  # all but the tail, as the global order


@pytest.mark.parametrize("readers", [1, 2, 4])
def test_each_reader_reads_its_own_chunks_in_one_stretch(readers):
    per_chunk, window, batch = 20, 3, 8
    chunk_of = chunked(1000, per_chunk)
    o = order(chunk_of, readers=readers, window=window, batch_size=batch)
    seen = []
    for r in range(readers):
        chunks = chunk_of[o.reads(1, 0, r, readers)]
        seen.append(set(chunks.tolist()))
        for c in set(chunks.tolist()):  # within one window, or two it straddles
            at = np.flatnonzero(chunks == c)
            assert at[-1] - at[0] < 2 * window * per_chunk, (c, at)
        # at any time, a reader holds at most window + 1 chunks: those it has begun and not
        # finished (the cache's need, before the chunks it downloads ahead)
        first = {c: np.flatnonzero(chunks == c)[0] for c in set(chunks.tolist())}
        last = {c: np.flatnonzero(chunks == c)[-1] for c in first}
        open_ = [sum(first[c] <= t <= last[c] for c in first) for t in range(len(chunks))]
        assert max(open_) <= window + 1
    shared = [c for c in range(1000 // per_chunk) if sum(c in s for s in seen) > 1]
    assert len(shared) <= readers - 1  # only the chunks on a boundary between readers
    assert set().union(*seen) == set(range(1000 // per_chunk))


def test_records_are_shuffled_within_a_window():
    chunk_of = np.arange(400) // 20  # in order: a window's records are 3 chunks'
    share = order(chunk_of, readers=1, window=3, batch_size=8).share(0)
    batches = share.reshape(-1, 8)
    mixed = np.mean([len(set(chunk_of[b].tolist())) > 1 for b in batches])
    assert mixed > 0.8  # most batches draw from more than one chunk
    assert not np.array_equal(np.sort(share[:60]), share[:60])  # not read in written order


def test_the_sampler_resumes_the_chunk_order_at_its_batch_and_tells_the_readers():
    chunk_of = chunked(200, 10)
    o = order(chunk_of, batch_size=4)
    sampler = SeededSampler(range(200), 4, seed=3, order=o)
    sampler.set_epoch(2)
    full = list(sampler)
    assert [i for i, *_ in full] == o.share(2).tolist()
    assert {(e, s) for _, _, e, s, _ in full} == {(2, 0)}
    sampler.start = 7  # a resume after 7 batches
    resumed = list(sampler)
    assert [i for i, *_ in resumed] == [i for i, *_ in full[28:]]
    assert [seed for _, seed, *_ in resumed] == [seed for _, seed, *_ in full[28:]]
    assert {(e, s) for _, _, e, s, _ in resumed} == {(2, 7)}
    assert {n for *_, n in full} == {1} and {n for *_, n in resumed} == {2}


class Planned(torch.utils.data.Dataset):
    """Records each ``expect`` call, in the process that reads."""

    def __init__(self, n: int) -> None:
        self.n, self.expected = n, []

    def __len__(self) -> int:
        return self.n

    def expect(self, indices) -> None:
        self.expected.append(list(indices))

    def __getitem__(self, i: int):
        return torch.tensor([i, len(self.expected[-1]), self.expected[-1][0]])


@pytest.mark.parametrize("workers", [0, 2])
def test_each_loader_worker_is_told_exactly_the_records_it_then_reads(workers):
    chunk_of = chunked(96, 8)
    o = order(chunk_of, batch_size=4, readers=max(workers, 1))
    sampler = SeededSampler(range(96), 4, seed=3, order=o)
    sampler.start = 3  # from batch 3 on
    data = SeededDataset(Planned(96), o)
    loader = DataLoader(data, batch_size=4, sampler=sampler, num_workers=workers)
    batches = [b for b in loader]
    for j, batch in enumerate(batches):  # batch j went to worker j % workers
        reader = j % max(workers, 1)
        expected = o.reads(0, 3, reader, max(workers, 1))
        assert batch[:, 1].tolist() == [len(expected)] * 4
        assert batch[:, 2].tolist() == [expected[0]] * 4
        mine = batches[reader :: max(workers, 1)]
        assert torch.cat([b[:, 0] for b in mine]).tolist() == expected.tolist()


class FolderClient:
    """boto3's ``get_object`` over a local folder (bucket = folder name), for the cache's
    bookkeeping alone; the real S3 server's tests are in test_streaming.py."""

    class meta:  # noqa: N801 (boto3's attribute)
        endpoint_url = "local"

    def __init__(self, root) -> None:
        self.root = root

    def get_object(self, Bucket: str, Key: str) -> dict:  # noqa: N803 (boto3's names)
        import io

        class Body(io.BytesIO):
            def iter_chunks(self, size: int):
                return iter(lambda: self.read(size), b"")

        return {"Body": Body((self.root / Bucket / Key).read_bytes())}


def test_the_chunk_being_read_is_never_evicted_to_make_room(tmp_path):
    """A chunk read again after its planned reads (a second pass without a new plan) has no
    planned use left: evicting it to make room for the next planned chunk, while the reader is
    in it, left litdata waiting for a deleted file ("Timed out ... waiting for chunk")."""
    from minc_lightning.data.chunks import ChunkCache

    (tmp_path / "b" / "split").mkdir(parents=True)
    chunks = [{"filename": f"c{i}.bin", "chunk_bytes": 10, "chunk_size": 1} for i in range(3)]
    for c in chunks:
        (tmp_path / "b" / "split" / c["filename"]).write_bytes(b"x" * 10)
    cache = ChunkCache("s3://b/split", chunks, "{}", tmp_path / "cache", 15, FolderClient(tmp_path))
    with cache.lock:  # a plan whose reads of chunks 0 and 1 are done, chunk 2 still to come
        cache.uses = {0: deque(), 1: deque()}
        cache.uses[2] = deque([5])
        cache.ahead = [0, 1, 2]
    for c in (0, 1):
        cache.acquire(c, c)
        cache.release(c)  # planned reads done: evicted
    cache.acquire(0, 0)  # read again, outside the plan; room for one chunk only
    with cache.lock:
        assert cache.next_to_fetch() is None  # the next planned chunk waits ...
    assert (cache.folder / "c0.bin").is_file()  # ... rather than evict the one being read
    cache.release(0)
    with cache.lock:
        assert cache.next_to_fetch() == 2  # once it is read, its room is taken
    cache.close()
