"""Whole shard chunks from object storage, downloaded ahead of use into a bounded local folder.

Each reader (a loader worker, or the training process without workers) keeps its own folder
under the version's cache (``shards.shard_cache``), holding a copy of the split's ``index.json``
and the chunks it reads next, which litdata then reads as a local dataset. ``plan`` gives the
chunks in the order their records will be read (``sampling.ChunkOrder.reads``); a thread
downloads them in that order while there is room, so a request's latency is paid once per chunk,
ahead of time, not once per record. A chunk whose planned records have all been read is deleted.
A read outside the plan (validation, or a plan another worker count made) downloads its chunk
on demand and, when the folder is full, evicts the chunk needed furthest ahead.

litdata's own remote reading either fetches each record's bytes with a request of its own (the
random access ``dataset[i]``) or downloads chunks in its own order (its iteration), which is not
this package's seeded, resumable one: hence this module.
"""

from __future__ import annotations

import os
import shutil
import threading
from collections import deque
from pathlib import Path
from typing import Any

from minc_lightning.errors import Unreachable, Unreadable


class ChunkCache:
    """The chunks of one remote split that one reader holds, at most ``bound`` bytes of them.

    Args:
        url: the split, ``s3://bucket/prefix/split``.
        chunks: ``index.json``'s chunk entries (``filename``, ``chunk_bytes``, ``chunk_size``).
        index: the text of ``index.json``.
        folder: the version's cache folder; this reader's is ``folder/readers/<pid>``.
        bound: the most bytes of chunks this reader's folder holds at once.
        client: an S3 client (boto3's), made in the reader's process.
    """

    def __init__(
        self, url: str, chunks: list[dict], index: str, folder: Path, bound: int, client: Any
    ) -> None:
        self.url = url.rstrip("/")
        self.bucket, _, self.prefix = self.url.removeprefix("s3://").partition("/")
        self.chunks, self.bound, self.client = chunks, bound, client
        self.folder = folder / "readers" / str(os.getpid())
        forget_dead_readers(folder / "readers")
        shutil.rmtree(self.folder, ignore_errors=True)  # a dead process's, with this pid
        self.folder.mkdir(parents=True)
        (self.folder / "index.json").write_text(index)
        self.present: dict[int, int] = {}  # chunk → bytes, whole on disk
        self.loading: dict[int, int] = {}  # chunk → bytes reserved while it downloads
        self.failed: dict[int, Exception] = {}
        self.uses: dict[int, deque[int]] = {}  # chunk → the plan's steps that read it
        self.last_use: dict[int, int] = {}  # unplanned chunks: when each was last read
        self.step = 0
        self.reading: int | None = None  # the chunk the reader is in: never evicted
        self.peak = 0
        self.ahead: list[int] = []  # the plan's chunks in order of first use
        self.lock = threading.Condition()
        self.thread: threading.Thread | None = None

    # --- what the reader calls ---------------------------------------------------------------
    def plan(self, sequence: list[int]) -> None:
        """The chunks of the records this reader reads next, one entry per record, in order."""
        with self.lock:
            self.uses = {}
            for step, chunk in enumerate(sequence):
                self.uses.setdefault(chunk, deque()).append(step)
            self.step = 0
            self.ahead = list(dict.fromkeys(sequence))
            for chunk in [c for c in self.present if c not in self.uses]:
                self.evict(chunk)  # held for the last plan, not needed by this one
            self.lock.notify_all()
        if self.thread is None:
            self.thread = threading.Thread(target=self.prefetch, daemon=True)
            self.thread.start()

    def acquire(self, chunk: int, record: int) -> str:
        """The local folder, once ``chunk`` (holding ``record``) is in it."""
        with self.lock:
            while chunk in self.loading:
                self.lock.wait()
            self.failed.pop(chunk, None)  # tried ahead and failed: tried again, for this record
            self.reading = chunk
            if chunk in self.present:
                return str(self.folder)
            self.make_room(self.chunks[chunk]["chunk_bytes"], keep=chunk)
            self.reserve(chunk)
        self.fetch(chunk, record)
        return str(self.folder)

    def release(self, chunk: int) -> None:
        """One record of ``chunk`` has been read."""
        with self.lock:
            self.step += 1
            self.reading = None
            uses = self.uses.get(chunk)
            if uses is None:  # outside the plan: kept until room is needed
                self.last_use[chunk] = self.step
                return
            if uses:
                uses.popleft()
            if not uses and chunk in self.present:
                self.evict(chunk)
                self.lock.notify_all()

    def close(self) -> None:
        with self.lock:
            self.ahead = []
            self.lock.notify_all()
        shutil.rmtree(self.folder, ignore_errors=True)

    # --- downloads ---------------------------------------------------------------------------
    def fetch(self, chunk: int, record: int | None) -> None:
        """Download ``chunk`` (its bytes are reserved in ``loading``) into the folder."""
        entry = self.chunks[chunk]
        target = self.folder / entry["filename"]
        partial = target.with_suffix(".part")
        key = f"{self.prefix}/{entry['filename']}" if self.prefix else entry["filename"]
        try:
            # one GET: boto3's download_file first asks for the size (a second round trip) and
            # starts a pool of threads, for each chunk; measured here, twice the CPU and time
            body = self.client.get_object(Bucket=self.bucket, Key=key)["Body"]
            with open(partial, "wb") as out:
                for block in body.iter_chunks(1 << 20):
                    out.write(block)
            partial.rename(target)
        except Exception as err:
            partial.unlink(missing_ok=True)
            failure = self.named(err, chunk, key, record)
            with self.lock:
                del self.loading[chunk]
                self.lock.notify_all()
            raise failure from err
        with self.lock:
            self.present[chunk] = self.loading.pop(chunk)
            self.lock.notify_all()

    def prefetch(self) -> None:
        """Download the plan's chunks in order of first use, while there is room for them."""
        while True:
            with self.lock:
                chunk = self.next_to_fetch()
                while chunk is None:
                    self.lock.wait()
                    chunk = self.next_to_fetch()
                self.reserve(chunk)
            try:
                self.fetch(chunk, None)
            except Exception as err:  # not tried again ahead; the reader tries when it needs it
                with self.lock:
                    self.failed[chunk] = err
                    self.lock.notify_all()

    def next_to_fetch(self) -> int | None:
        """The first planned chunk not yet here, if it fits without evicting a planned one."""
        for chunk in self.ahead:
            if not self.uses.get(chunk) or chunk in self.failed:
                continue  # read already, or failed (the reader will raise it)
            if chunk in self.present or chunk in self.loading:
                continue
            size = self.chunks[chunk]["chunk_bytes"]
            for old in [c for c in self.present if not self.uses.get(c) and c != self.reading]:
                if self.used() + size <= self.bound:
                    break
                self.evict(old)
            return chunk if self.used() + size <= self.bound else None
        return None

    def make_room(self, size: int, keep: int) -> None:
        """Evict until ``size`` more bytes fit: chunks read least recently outside the plan
        first, then planned ones by how far ahead they are needed (the furthest first)."""
        while self.used() + size > self.bound:
            candidates = [c for c in self.present if c not in (keep, self.reading)]
            if not candidates:
                if not self.loading:
                    return  # one chunk larger than the bound: it is read all the same
                self.lock.wait()
                continue

            def need(c: int) -> tuple[int, int]:
                uses = self.uses.get(c)
                if uses is None:
                    return (1, -self.last_use.get(c, 0))
                return (0 if not uses else 1, uses[0] if uses else 0)

            self.evict(max(candidates, key=need))

    def reserve(self, chunk: int) -> None:
        self.loading[chunk] = self.chunks[chunk]["chunk_bytes"]
        self.peak = max(self.peak, self.used())

    def used(self) -> int:
        return sum(self.present.values()) + sum(self.loading.values())

    def evict(self, chunk: int) -> None:
        (self.folder / self.chunks[chunk]["filename"]).unlink(missing_ok=True)
        del self.present[chunk]
        self.last_use.pop(chunk, None)

    def named(self, err: Exception, chunk: int, key: str, record: int | None) -> Exception:
        """A failed download as an error that names the chunk, its records and the endpoint."""
        first = sum(c["chunk_size"] for c in self.chunks[:chunk])
        records = f"records {first}–{first + self.chunks[chunk]['chunk_size'] - 1}"
        reading = f"record {record}" if record is not None else records
        where = f"s3://{self.bucket}/{key}"
        endpoint = self.client.meta.endpoint_url
        from botocore.exceptions import ConnectionError, HTTPClientError

        code = getattr(err, "response", {}).get("Error", {}).get("Code", "")
        if code in ("404", "NoSuchKey"):
            return Unreadable(
                f"cannot read {reading}: its chunk {where} ({records}) is missing from the "
                "bucket; the shards were changed or deleted since minc-lightning-prepare wrote "
                "them"
            )
        if isinstance(err, (ConnectionError, HTTPClientError, OSError)):
            return Unreachable(
                f"cannot read {reading}: the S3 endpoint {endpoint} did not answer for "
                f"{where} ({type(err).__name__}); the last checkpoint resumes once it is back"
            )
        return Unreadable(f"cannot read {reading} from {where} ({type(err).__name__}: {err})")


def forget_dead_readers(readers: Path) -> None:
    """Delete the folders of readers whose process has ended (a killed run leaves them)."""
    if not readers.is_dir():
        return
    for folder in readers.iterdir():
        if folder.name.isdigit() and not alive(int(folder.name)):
            shutil.rmtree(folder, ignore_errors=True)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
