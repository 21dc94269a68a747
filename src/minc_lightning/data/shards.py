"""Sharded training data (litdata): written once by ``minc-lightning-prepare``, read by
``MINCDataModule(dataset="streaming", root=<folder or s3://bucket/prefix>)``.

A prepared folder holds one litdata dataset per split (``<out>/train``, ``<out>/val``) and
``manifest.json`` (the source dataset, its class names, the count of each split, how its records
are ordered, the files that could not be read). Every record is ``{"index", "label", "image"}``:
the image file's bytes unchanged (image folders) or a lossless PNG of the array (CIFAR, STL-10,
Fashion-MNIST), held as a uint8 array, so a decoded shard image equals the image the source path
decodes, and a run trained from shards sees the same pixels. The training split is written in a
seeded random order (the one ``train_subset`` takes), so that each chunk is a random sample of
the classes.

Records are read by position through litdata, from a local folder or, for object storage, from
whole chunks each reader downloads ahead of use (``data/chunks.py``). Which positions an epoch
reads, in which order, is the sampler's (``sampling.SeededSampler``, with ``ChunkOrder`` by
default): the split over processes, the augmentation of each sample and the position a resume
continues from stay this package's, so shards are exact on resume and across processes in the
same way as files. litdata's own shuffling, per-rank split and loader state (whose resume
replays by count and is not saved by the Trainer, litdata#775) are not used.
"""

from __future__ import annotations

import copy
import hashlib
import inspect
import io
import json
import logging
import os
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from PIL import Image
from torch.utils.data import Dataset

from minc_lightning.data.formats import ArrayDataset
from minc_lightning.data.images import UNREADABLE, CheckedImageFolder, to_rgb
from minc_lightning.data.sampling import written_order
from minc_lightning.errors import BadInput, MissingExtra, MissingPath, Unreachable, Unreadable

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
# 2: the training split in a seeded random order; 3: the image's bytes as a uint8 array
FORMAT = 3
EXTRA = "pip install 'minc-lightning[streaming]'"


def require_litdata() -> Any:
    """litdata, or an ImportError that says how to install it."""
    try:
        import litdata
    except ImportError as err:
        raise MissingExtra(
            f"dataset='streaming' and minc-lightning-prepare need litdata (and boto3 for "
            f"s3://): {EXTRA}"
        ) from err
    return litdata


def remote(root: str) -> bool:
    return root.startswith("s3://")


def storage_options() -> dict[str, Any]:
    """litdata's S3 options from the usual environment: an S3-compatible server's endpoint
    (``AWS_ENDPOINT_URL``); the credentials are found by boto3 itself (environment, AWS config
    files, instance roles) and are never written anywhere by this package."""
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    return {"endpoint_url": endpoint} if endpoint else {}


def read_text(root: str, name: str) -> str:
    """The text of ``root/name``, ``root`` a folder or ``s3://bucket/prefix``."""
    if not remote(root):
        path = Path(root).expanduser() / name
        if not path.is_file():
            raise MissingPath(
                f"{path} does not exist: data.root for dataset 'streaming' is a folder written "
                "by minc-lightning-prepare (or its copy in object storage, s3://bucket/prefix)"
            )
        return path.read_text()
    import boto3
    import botocore.exceptions

    bucket, _, prefix = root.removeprefix("s3://").partition("/")
    key = f"{prefix.rstrip('/')}/{name}" if prefix else name
    client = boto3.client("s3", **storage_options())
    try:
        return client.get_object(Bucket=bucket, Key=key)["Body"].read().decode()
    except botocore.exceptions.EndpointConnectionError as err:
        raise Unreachable(
            f"cannot reach the S3 endpoint {err.kwargs.get('endpoint_url')} for {root}: check "
            "AWS_ENDPOINT_URL"
        ) from err
    except botocore.exceptions.ClientError as err:
        code = err.response.get("Error", {}).get("Code", "")
        what = {
            "NoSuchBucket": f"the bucket {bucket!r} does not exist",
            "NoSuchKey": f"s3://{bucket}/{key} does not exist",
            "404": f"s3://{bucket}/{key} does not exist",
        }.get(code, f"S3 refused s3://{bucket}/{key} ({code or err})")
        raise MissingPath(
            f"{what}: data.root {root} must hold what minc-lightning-prepare wrote"
        ) from err


def shard_cache(index: str) -> str:
    """The local folder that holds the chunks read from a remote split: one per prepared
    version, named by the hash of its ``index.json`` (under ``MINC_LIGHTNING_SHARD_CACHE``, by
    default ``~/.cache/minc-lightning/shards``).

    litdata's default keys its cache by the URL alone and deletes a URL's older version when a
    process opens a newer one: the loader workers and DDP processes that open a re-prepared
    prefix together then delete files under one another. A folder per version is never
    deleted by a reader; a version no run reads any more may be deleted by hand."""
    base = os.environ.get("MINC_LIGHTNING_SHARD_CACHE", "~/.cache/minc-lightning/shards")
    return str(Path(base).expanduser() / hashlib.sha256(index.encode()).hexdigest()[:32])


def opening(cache_dir: str | None) -> AbstractContextManager:
    """Held while a process opens a remote split: one process at a time per cached version.

    On open, litdata downloads the split's ``index.json`` into the cache unless it is there. A
    process that finds another one downloading it does not wait: it finds no index and fails
    ("doesn't contain any index.json"), as loader workers and DDP processes opening a version
    together did. Once the first open has finished, the others read the index from disk."""
    if cache_dir is None:  # a local folder: nothing is downloaded
        return nullcontext()
    from filelock import FileLock

    Path(cache_dir).mkdir(parents=True, exist_ok=True)
    return FileLock(Path(cache_dir) / "open.lock")


def read_manifest(root: str) -> dict[str, Any]:
    manifest = json.loads(read_text(root, MANIFEST))
    if manifest.get("format") != FORMAT:
        raise BadInput(
            f"{root}/{MANIFEST} has format {manifest.get('format')!r}, this version reads "
            f"{FORMAT}: prepare the shards again with this version's minc-lightning-prepare"
        )
    return manifest


def split_dir(root: str, split: str) -> str:
    return f"{root.rstrip('/')}/{split}"


# --- writing -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Encoder:
    """One record of a source split, by position: what ``litdata.optimize`` calls in its
    workers (picklable: the source is opened lazily in each worker)."""

    dataset: Any  # the source split, without transform
    on_corrupt: Literal["raise", "skip"]
    positions: tuple[int, ...] | None = None  # a fixed subset's source indices, in order

    def __call__(self, position: int) -> dict[str, Any]:
        index = self.positions[position] if self.positions is not None else position
        data, label, name = encoded(self.dataset, index)
        try:
            to_rgb(Image.open(io.BytesIO(data))).load()  # unreadable files are found now
        except UNREADABLE as err:
            if self.on_corrupt == "raise":
                raise Unreadable(
                    f"cannot read image {name} ({err}); pass --on_corrupt skip to leave it out "
                    "(it is then listed in the manifest)"
                ) from None  # the one line litdata's report keeps is this one, with the name
            unreadable = as_array(name.encode())  # its name, under label -2
            return {"index": position, "label": -2, "image": unreadable}
        return {"index": position, "label": label, "image": as_array(data)}


def as_array(data: bytes) -> np.ndarray:
    """The bytes as a uint8 array: a record of plain bytes is written by litdata, when pyarrow
    is installed, as an Arrow table at the chunk's end with empty records before it, which
    litdata's one-request-a-record reading then returns as empty (litdata 0.2.76); an array is
    written the same way whether pyarrow is there or not."""
    return np.frombuffer(data, dtype=np.uint8)


def encoded(dataset: Dataset, index: int) -> tuple[bytes, int, str]:
    """(the image's bytes, its label, its name) of a source dataset's image ``index``."""
    if hasattr(dataset, "encoded"):  # e.g. a Hugging Face dataset's images as stored
        return dataset.encoded(index)
    if isinstance(dataset, CheckedImageFolder):
        path, label = dataset.samples[index]
        return Path(path).read_bytes(), int(label), path
    if isinstance(dataset, ArrayDataset):
        out = io.BytesIO()
        Image.fromarray(np.ascontiguousarray(dataset.images[index])).save(out, format="PNG")
        return out.getvalue(), int(dataset.labels[index]), f"image {index}"
    raise TypeError(f"cannot write shards of {type(dataset).__name__}")


# --- reading -----------------------------------------------------------------------------------
def source_positions(count: int, order: str, skipped: list[int]) -> np.ndarray:
    """The position of each readable image of a split, in the source's order: what a run
    from the source files calls image i is at ``positions[i]``. ``order`` is the manifest's:
    "source" (record p is image p), "permutation" (record p is image ``perm[p]`` of the seeded
    permutation ``subset_indices`` draws) or "subset" (record p is the subset's image p)."""
    positions = np.arange(count)
    if order == "permutation":
        positions = np.empty(count, dtype=np.int64)
        positions[written_order(count, None)] = np.arange(count)
    return positions[~np.isin(positions, skipped)] if skipped else positions


def record_reader(url: str, **options: Any) -> Any:
    """litdata's random access to the records of ``url``, decoding the record asked for alone.

    From 0.2.74, litdata by default decodes a window of neighbouring records with each one read
    and keeps them until a record outside the window is asked for: a gain for reading in
    storage order, a loss of about 0.5 ms a 224 px sample in this package's shuffled order,
    where the next record is rarely in the window (``benchmarks/streaming.py``). Older
    versions decode the record alone and take no such argument."""
    from litdata import StreamingDataset

    if "batch_decode" in inspect.signature(StreamingDataset).parameters:
        options["batch_decode"] = 0
    return StreamingDataset(url, **options)


class ShardImages(Dataset):
    """A prepared split: (transformed image, label), as the source path gives.

    Image i is the i-th readable record; ``in_source_order()`` makes image i the one the source
    files call i (as training in the global order needs, to equal training from the files).
    From object storage, records are read from whole chunks downloaded ahead of use
    (``data/chunks.py``), or, after ``per_record()``, one request per record (litdata's random
    access: the global order, whose records lie in random chunks).

    Args:
        root: the prepared folder or ``s3://bucket/prefix``.
        split: "train" or "val".
        count: the split's records (from the manifest).
        skipped: the positions of unreadable files (left out; listed in the manifest).
        transform: as the source dataset's; a transform with ``from_file`` decodes the lazily
            opened image itself (``augment_on="device"``).
        order: how the records are ordered (``source_positions``).
        cache_bytes: the most bytes of chunks a reader of object storage holds at once (None:
            room for ``CACHE_CHUNKS`` of the largest chunk); at least the largest chunk.
    """

    CACHE_CHUNKS = 12

    def __init__(
        self,
        root: str,
        split: str,
        count: int,
        skipped: list[int],
        transform: Any = None,
        order: str = "source",
        cache_bytes: int | None = None,
    ) -> None:
        require_litdata()
        self.root, self.split = root, split
        self.url = split_dir(root, split)
        self.index = read_text(self.url, "index.json")
        self.chunks = json.loads(self.index)["chunks"]
        self.count, self.order, self.skipped = count, order, skipped
        self.positions = source_positions(count, "source", skipped)
        self.chunk_of = self.chunks_of(self.positions)
        self.transform = transform
        self.cache_dir = shard_cache(self.index) if remote(root) else None
        self.cache_bytes = cache_bytes
        if cache_bytes is not None and cache_bytes < self.largest_chunk:
            raise BadInput(
                f"cache_bytes {cache_bytes} cannot hold one chunk of {self.url} "
                f"({self.largest_chunk} bytes): raise data.cache_bytes to {self.largest_chunk} "
                "or more, better data.chunk_window + 2 chunks' worth"
            )
        self.whole_chunks = True
        self._records = None  # opened in each process that reads (loader workers)
        self._store = None

    def chunks_of(self, positions: np.ndarray) -> np.ndarray:
        ends = np.cumsum([c["chunk_size"] for c in self.chunks])
        return np.searchsorted(ends, positions, side="right")

    def in_source_order(self) -> ShardImages:
        """This split with image i the one the source files call i."""
        ordered = copy.copy(self)
        ordered.positions = source_positions(self.count, self.order, self.skipped)
        ordered.chunk_of = self.chunks_of(ordered.positions)
        return ordered

    def per_record(self) -> ShardImages:
        """This split read one record per request from object storage."""
        single = copy.copy(self)
        single.whole_chunks = False
        return single

    def __len__(self) -> int:
        return len(self.positions)

    @property
    def largest_chunk(self) -> int:
        return max(c["chunk_bytes"] for c in self.chunks)

    def subset(self, indices: list[int]) -> ShardImages:
        """These images of the split (``train_subset``), in this order."""
        part = copy.copy(self)
        part.positions, part.chunk_of = self.positions[indices], self.chunk_of[indices]
        return part

    @property
    def store(self) -> Any:
        """This process's chunks of a remote split (``data/chunks.py``)."""
        if self._store is None:
            import boto3

            from minc_lightning.data.chunks import ChunkCache

            bound = self.cache_bytes or self.CACHE_CHUNKS * self.largest_chunk
            client = boto3.client("s3", **storage_options())
            self._store = ChunkCache(
                self.url, self.chunks, self.index, Path(self.cache_dir), bound, client
            )
        return self._store

    @property
    def chunked(self) -> bool:
        """Read from whole chunks this process downloads (object storage, by default)."""
        return self.cache_dir is not None and self.whole_chunks

    @property
    def records(self) -> Any:
        if self._records is None:
            if self.chunked:
                self._records = record_reader(str(self.store.folder))
            elif self.cache_dir is None:  # a local folder
                self._records = record_reader(self.url)
            else:
                with opening(self.cache_dir):
                    self._records = record_reader(
                        self.url, cache_dir=self.cache_dir, storage_options=storage_options()
                    )
        return self._records

    def __getstate__(self) -> dict[str, Any]:
        return self.__dict__ | {"_records": None, "_store": None}  # each worker opens its own

    def expect(self, indices: np.ndarray) -> None:
        """The dataset indices this process will read next, in order: their chunks are
        downloaded ahead of use (object storage; a local folder needs nothing)."""
        if self.chunked:
            self.store.plan(self.chunk_of[indices].tolist())

    def __getitem__(self, i: int) -> tuple[Any, int]:
        position, chunk = int(self.positions[i]), int(self.chunk_of[i])
        if self.chunked:
            self.store.acquire(chunk, position)  # names the record, chunk and endpoint
        try:
            record = self.records[position]
        except Exception as err:  # a damaged chunk: name the record
            raise Unreadable(
                f"cannot read record {position} of {self.url} "
                f"({type(err).__name__}: {err}); the shards may have been changed or deleted "
                "since minc-lightning-prepare wrote them"
            ) from err
        finally:
            if self.chunked:
                self.store.release(chunk)
        if int(record["index"]) != position:
            raise BadInput(
                f"{self.url}: record {position} holds index "
                f"{record['index']}; the shards are not those the manifest describes"
            )
        image = Image.open(io.BytesIO(record["image"]))
        from_file = getattr(self.transform, "from_file", None)
        if from_file is not None:
            return from_file(image), int(record["label"])
        image = to_rgb(image)
        return (self.transform(image) if self.transform else image), int(record["label"])
