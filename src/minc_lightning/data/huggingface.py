"""Hugging Face ``datasets`` as a source (``data.dataset: huggingface``, the ``huggingface`` extra).

``data.root`` is one of:

* a folder written by ``Dataset.save_to_disk`` or ``DatasetDict.save_to_disk``;
* a folder of parquet files, each split's files named by the split
  (``train-00000-of-00002.parquet``, ``validation/part-0.parquet``, as the Hub lays them out);
* a Hub name (``user/name``), fetched when a network is there; offline it is named in the error.

The image column (``data.image_column``) may hold ``datasets.Image`` values (PIL images, bytes or
paths underneath), raw bytes, or paths (relative ones to ``data.root``); the label column
(``data.label_column``; None: unlabelled) ``ClassLabel`` or integer values. The splits are
``data.train_split`` and ``data.val_split`` (None, or absent: no validation).
"""

from __future__ import annotations

import io
import logging
import re
from pathlib import Path
from typing import Any, Literal

import numpy as np
from PIL import Image
from torch.utils.data import Dataset

from minc_lightning.data.images import UNREADABLE, to_rgb
from minc_lightning.errors import BadInput, MissingExtra, MissingPath, Unreadable

log = logging.getLogger(__name__)
HUB_NAME = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


def require_datasets() -> Any:
    try:
        import datasets
    except ImportError as err:
        raise MissingExtra(
            "dataset='huggingface' needs the datasets library: "
            "pip install 'minc-lightning[huggingface]'"
        ) from err
    return datasets


def open_split(root: str, split: str) -> Any | None:
    """Split ``split`` of the dataset at ``root`` (a ``datasets.Dataset``), or None when the
    dataset has no such split. See the module's docstring for what ``root`` may be."""
    datasets = require_datasets()
    path = Path(root).expanduser()
    if path.is_dir():
        if (path / "dataset_dict.json").is_file():
            splits = from_disk(datasets, path)
            return splits[split] if split in splits else None
        if (path / "state.json").is_file():  # one Dataset: it is the training split
            return from_disk(datasets, path) if split == "train" else None
        files = parquet_files(path)
        if not files:
            raise MissingPath(
                f"data.root {root} holds neither a dataset written by save_to_disk "
                "(dataset_dict.json or state.json) nor parquet files"
            )
        mine = [f for f in files if named_for(f.relative_to(path), split)]
        if not mine:
            return None
        try:
            return datasets.Dataset.from_parquet([str(f) for f in mine])
        except ValueError as err:  # datasets 5.2's words for files without a row
            if "no data" in str(err):
                raise BadInput(
                    f"{root} [{split}] is empty: its parquet files hold no row"
                ) from None
            raise
    if not HUB_NAME.match(str(root)):
        raise MissingPath(f"data.root {root} does not exist (nor is it a Hugging Face Hub name)")
    try:
        return datasets.load_dataset(str(root), split=split)
    except ValueError as err:
        if "split" in str(err).lower():
            return None
        raise hub_error(root, err) from None
    except Exception as err:  # offline, unknown or private: the Hub's own error, named
        raise hub_error(root, err) from None


def from_disk(datasets: Any, path: Path) -> Any:
    try:
        return datasets.load_from_disk(str(path))
    except Exception as err:  # e.g. an empty split, which datasets 5.2 fails to load
        raise Unreadable(
            f"datasets.load_from_disk could not read {path} ({type(err).__name__}: {err}); "
            "write it again with save_to_disk, with at least one row in every split"
        ) from err


def hub_error(root: str, err: Exception) -> MissingPath:
    first = str(err).strip().splitlines()[0] if str(err).strip() else ""
    return MissingPath(
        f"data.root {root!r} is not a folder here, and the Hugging Face Hub did not give it "
        f"({type(err).__name__}: {first}); offline, save it with save_to_disk where a network "
        "is and set data.root to that folder"
    )


def parquet_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*.parquet") if not p.name.startswith("."))


def named_for(relative: Path, split: str) -> bool:
    """Whether a parquet file's path names ``split`` as a word (``train-0000.parquet``,
    ``data/train/x.parquet``, not ``pretrain.parquet``)."""
    words = re.split(r"[/\\_.\-]", relative.as_posix())
    return split in words


def image_kind(datasets: Any, table: Any, name: str, column: str) -> tuple[Any, str]:
    """The table with its image column as stored and how it stores images: "image" (a
    ``datasets.Image``, left undecoded here so that on_corrupt applies when it is), "bytes" or
    "path"; any other column is refused, by name."""
    feature = table.features[column]
    if isinstance(feature, datasets.Image):
        return table.cast_column(column, datasets.Image(decode=False)), "image"
    if getattr(feature, "dtype", None) in ("binary", "large_binary"):
        return table, "bytes"
    if getattr(feature, "dtype", None) in ("string", "large_string"):
        return table, "path"
    raise BadInput(
        f"{name}: column {column!r} holds {feature}, not images (datasets.Image, "
        "bytes or file paths); name the image column with data.image_column"
    )


class HFImages(Dataset):
    """One split of a Hugging Face dataset as (image, label) pairs, through ``transform``.

    Args:
        table: the split (``datasets.Dataset``).
        name: how errors name it, e.g. ``"user/name [train]"``.
        image_column: the column of images.
        label_column: the column of labels (None: every label is -1).
        transform: the transform of a decoded RGB image (one with ``from_file`` decodes the
            lazily opened image itself, as ``CheckedImageFolder`` does).
        on_corrupt: "raise" stops at an unreadable image, naming its row; "skip" logs it with a
            running count and serves the next image instead.
        folder: where relative paths in the image column are found.
    """

    def __init__(
        self,
        table: Any,
        name: str,
        image_column: str,
        label_column: str | None,
        transform: Any = None,
        on_corrupt: Literal["raise", "skip"] = "raise",
        folder: Path | None = None,
    ) -> None:
        datasets = require_datasets()
        self.name, self.image_column, self.label_column = name, image_column, label_column
        self.transform, self.on_corrupt, self.folder = transform, on_corrupt, folder
        self.skipped = 0
        columns = list(table.column_names)
        for role, column in (("image", image_column), ("label", label_column)):
            if column is not None and column not in columns:
                raise BadInput(
                    f"{name} has no column {column!r} (data.{role}_column); its columns: "
                    f"{', '.join(columns)}"
                )
        if len(table) == 0:
            raise BadInput(f"{name} is empty: a split needs at least one image")
        table, self.kind = image_kind(datasets, table, name, image_column)
        self.classes: list[str] | None = None
        if label_column is not None:
            labels = table.features[label_column]
            if isinstance(labels, datasets.ClassLabel):
                self.classes = list(labels.names)
            elif not str(getattr(labels, "dtype", "")).startswith(("int", "uint")):
                raise BadInput(
                    f"{name}: column {label_column!r} holds {labels}, not integer labels; set "
                    "data.label_column to the label column, or null for unlabelled images"
                )
        keep = [image_column] + ([label_column] if label_column else [])
        self.table = table.select_columns(keep)
        if label_column is not None and self.classes is None:  # integers: 0 … the largest
            labels = self.labels()
            self.classes = [str(i) for i in range(int(labels.max()) + 1)] if len(labels) else []

    def __len__(self) -> int:
        return len(self.table)

    def labels(self) -> np.ndarray:
        if self.label_column is None:
            return np.full(len(self), -1, dtype=np.int64)
        return np.asarray(self.table.with_format("numpy")[self.label_column], dtype=np.int64)

    def encoded(self, index: int) -> tuple[bytes, int, str]:
        """(the image's bytes as stored, its label, its name): what shards and embeddings use."""
        row = self.table[index]
        label = int(row[self.label_column]) if self.label_column else -1
        value, name = row[self.image_column], f"{self.name} row {index}"
        if self.kind == "image":
            data, path = value.get("bytes"), value.get("path")
            if data is None and path is not None:
                data = self.path(path).read_bytes()
            if data is None:
                raise Unreadable(f"{name}: column {self.image_column!r} holds no image")
            return data, label, name
        if self.kind == "bytes":
            return bytes(value), label, name
        return self.path(value).read_bytes(), label, name

    def path(self, path: str) -> Path:
        p = Path(path).expanduser()
        return p if p.is_absolute() or self.folder is None else self.folder / p

    def __getitem__(self, index: int) -> tuple[Any, int]:
        try:
            data, label, name = self.encoded(index)
            image = Image.open(io.BytesIO(data))
            from_file = getattr(self.transform, "from_file", None)
            if from_file is not None:
                return from_file(image), label
            image = to_rgb(image)  # converting forces a full decode
        except UNREADABLE as err:  # Unreadable too: an OSError
            if self.on_corrupt == "raise":
                raise Unreadable(
                    f"cannot read image {self.name} row {index} ({err}); set "
                    "data.on_corrupt=skip to skip unreadable images"
                ) from err
            self.skipped += 1
            log.warning(
                "skipping unreadable image %s row %d (%d skipped so far by this worker)",
                self.name,
                index,
                self.skipped,
            )
            return self[(index + 1) % len(self)]
        return (self.transform(image) if self.transform else image), label
