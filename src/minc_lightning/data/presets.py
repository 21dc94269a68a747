"""The dataset table: one ``DatasetEntry`` per name a config gives as ``data.dataset``, with its
augmentation preset and its reader.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import numpy as np
from torch.utils.data import Dataset

from minc_lightning.data.formats import ArrayDataset, read_cifar, read_fashion_mnist, read_stl10
from minc_lightning.data.images import (
    CheckedImageFolder,
    FlatImageFolder,
    class_folders,
    flat,
)
from minc_lightning.errors import BadInput, MissingPath

IMAGENET_STATS = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
CIFAR_STATS = ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616))
Split = Literal["train", "val"]


@dataclass(frozen=True)
class Preset:
    """A dataset's augmentation defaults, following the field's practice."""

    image_size: int
    eval_resize: int  # resize before the centre crop of the eval transform
    min_scale: float = 0.08
    cj_strength: float = 1.0
    gaussian_blur: tuple[float, float] = (1.0, 0.1)  # (view 1, view 2), BYOL
    solarization_prob: tuple[float, float] = (0.0, 0.2)
    stats: tuple[tuple[float, ...], tuple[float, ...]] = IMAGENET_STATS
    num_classes: int = 0
    # multi-crop's local views: side (None: 96/224 of image_size, SwAV's and solo-learn's
    # ImageNet ratio) and crop scale (their ImageNet values)
    local_size: int | None = None
    local_scale: tuple[float, float] = (0.05, 0.14)


@dataclass(frozen=True)
class Source:
    """Where a reader finds a dataset, and what it may do about missing or unreadable files."""

    root: Path | None
    download: bool = False
    on_corrupt: Literal["raise", "skip"] = "raise"
    # Hugging Face datasets: which columns and splits hold the images (data/huggingface.py)
    image_column: str = "image"
    label_column: str | None = "label"
    train_split: str = "train"
    val_split: str | None = "validation"
    cache_bytes: int | None = None  # shards in object storage: each reader's chunks on disk


Reader = Callable[[Source, Split, Callable | None], Dataset | None]


@dataclass(frozen=True)
class DatasetEntry:
    """One dataset: its preset, its reader (None for a split it does not have), whether it needs
    ``root``, for image folders the class names of the training split (the label order), and
    whether its images differ in size."""

    preset: Preset
    read: Reader
    needs_root: bool = False
    classes: Callable[[Source], list[str]] | None = None
    varied_sizes: bool = False  # images of many sizes (folders): crop them in the loader


def imagenet100_classes() -> list[str]:
    """The 100 WordNet ids of ImageNet-100 (CMC, Tian et al. 2020), shipped with the package."""
    text = resources.files("minc_lightning.data").joinpath("imagenet100.txt").read_text()
    return [line for line in text.split() if line.startswith("n")]


@dataclass(frozen=True)
class Arrays:
    """Reader of an array dataset: ``read(src, split)`` gives (images, labels) as uint8 arrays."""

    read: Callable[[Source, Split], tuple[np.ndarray, np.ndarray]]

    def __call__(self, src: Source, split: Split, transform: Callable | None) -> Dataset:
        return ArrayDataset(*self.read(src, split), transform)


def cifar(name: Literal["cifar10", "cifar100"]) -> Callable[[Source, Split], Any]:
    def read(src: Source, split: Split):
        return read_cifar(src.root or Path("data"), name, split == "train", src.download)

    return read


def stl10(src: Source, split: Split):
    parts = "train+unlabeled" if split == "train" else "test"
    return read_stl10(src.root or Path("data"), parts, src.download)


def fashion_mnist(src: Source, split: Split):
    return read_fashion_mnist(src.root, split == "train", src.download)


def train_dir(src: Source) -> Path:
    """An image folder's training split: root/train, or root itself (root/<class>/<image>)."""
    return src.root / "train" if (src.root / "train").is_dir() else src.root


def folder_classes(src: Source) -> list[str]:
    try:
        return class_folders(train_dir(src))
    except FileNotFoundError:
        return []


@dataclass(frozen=True)
class ImageFolders:
    """Reader of an image-folder dataset, root/train/<class>/<image> and root/val/<class>/<image>;
    validation takes the training split's labels.

    Args:
        classes: a fixed set of class names (ImageNet-100's), else the training folders'.
        unknown_in_val: what a validation class outside the training classes does.
        val_required: without root/val, an error (ImageNet) or root/<class>/<image> as a
            training split only (any folder).
    """

    classes: Callable[[Source], list[str]] | None = None
    unknown_in_val: Literal["error", "ignore"] = "error"
    val_required: bool = True

    def __call__(self, src: Source, split: Split, transform: Callable | None) -> Dataset | None:
        folder = src.root / split
        if not folder.is_dir():
            if not self.val_required:  # root/<class>/<image>, or root/<image> unlabelled
                kind = FlatImageFolder if flat(src.root) else CheckedImageFolder
                train = kind(src.root, transform, on_corrupt=src.on_corrupt)
                return train if split == "train" else None
            raise MissingPath(
                f"{folder} does not exist. Expected layout: root/train/<wnid>/<image> and "
                "root/val/<wnid>/<image> (ILSVRC-2012: sort the validation images into their "
                "wnid folders with the devkit's ground truth). ImageNet is at https://image-net.org."
            )
        names = sorted(self.classes(src)) if self.classes is not None else None
        if split == "train":
            return CheckedImageFolder(folder, transform, names, src.on_corrupt)
        return CheckedImageFolder(
            folder,
            transform,
            names if names is not None else folder_classes(src),
            src.on_corrupt,
            require_all=False,
            unknown=self.unknown_in_val,
        )


def huggingface(src: Source, split: Split, transform: Callable | None) -> Dataset | None:
    """Reader of a Hugging Face dataset (``data/huggingface.py``): the split that
    ``src.train_split`` or ``src.val_split`` names (None when validation has none)."""
    from minc_lightning.data.huggingface import HFImages, open_split

    name = src.train_split if split == "train" else src.val_split
    table = None if name is None else open_split(str(src.root), name)
    if table is None:
        if split == "val":
            return None
        raise MissingPath(f"{src.root} has no split {name!r} (data.train_split)")
    folder = src.root if Path(str(src.root)).expanduser().is_dir() else None
    return HFImages(
        table,
        f"{src.root} [{name}]",
        src.image_column,
        src.label_column,
        transform,
        src.on_corrupt,
        folder,
    )


def huggingface_classes(src: Source) -> list[str]:
    """The label names of the training split: its ``ClassLabel``'s, else 0 … the largest label
    (none when unlabelled)."""
    return huggingface(src, "train", None).classes or []


NO_BLUR = (0.0, 0.0)
# Local views of the small datasets (our choice; no paper gives them): half the global side, and
# crops of 10-35% of the image, whose native side (32-59% of the image's) brackets that size,
# so a local view is neither much enlarged nor much shrunk.
SMALL_LOCAL_SCALE = (0.1, 0.35)


def small_preset(size: int, num_classes: int, **changed: Any) -> Preset:
    """A dataset of small square images: crops and evaluation at ``size``, local views at half of
    it over the small images' scale range; ``changed`` for the rest."""
    local = {"local_size": size // 2, "local_scale": SMALL_LOCAL_SCALE}
    return Preset(image_size=size, eval_resize=size, num_classes=num_classes, **local | changed)


def cifar_preset(num_classes: int) -> Preset:
    """CIFAR-10 and CIFAR-100: the same images, sizes and statistics."""
    return small_preset(32, num_classes, gaussian_blur=NO_BLUR, stats=CIFAR_STATS)


DATASETS: dict[str, DatasetEntry] = {
    # BYOL's ImageNet recipe: 224 px crops, asymmetric blur and solarisation.
    "imagenet": DatasetEntry(
        preset=Preset(image_size=224, eval_resize=256, num_classes=1000),
        read=ImageFolders(unknown_in_val="error"),
        needs_root=True,
        varied_sizes=True,
    ),
    "imagenet100": DatasetEntry(
        preset=Preset(image_size=224, eval_resize=256, num_classes=100),
        read=ImageFolders(classes=lambda src: imagenet100_classes(), unknown_in_val="ignore"),
        needs_root=True,
        varied_sizes=True,
    ),
    # 32 px, no blur (blurring a 32 px image destroys it), as solo-learn and lightly do.
    "cifar10": DatasetEntry(preset=cifar_preset(10), read=Arrays(cifar("cifar10"))),
    "cifar100": DatasetEntry(preset=cifar_preset(100), read=Arrays(cifar("cifar100"))),
    "stl10": DatasetEntry(preset=small_preset(96, 10), read=Arrays(stl10)),
    # 28 px grayscale: no blur, milder crops and jitter (only brightness/contrast act on gray).
    "fashion_mnist": DatasetEntry(
        preset=small_preset(
            28,
            10,
            min_scale=0.2,
            cj_strength=0.5,
            gaussian_blur=NO_BLUR,
            stats=((0.2860,) * 3, (0.3530,) * 3),
        ),
        read=Arrays(fashion_mnist),
    ),
    # any root/train/<class>/<image> (+ root/val/<class>/<image>) or root/<class>/<image> tree
    "folder": DatasetEntry(
        preset=Preset(image_size=224, eval_resize=256),
        read=ImageFolders(val_required=False),
        needs_root=True,
        classes=folder_classes,
        varied_sizes=True,
    ),
    # a Hugging Face dataset: save_to_disk, parquet files or a Hub name (data/huggingface.py)
    "huggingface": DatasetEntry(
        preset=Preset(image_size=224, eval_resize=256),
        read=huggingface,
        needs_root=True,
        classes=huggingface_classes,
        varied_sizes=True,
    ),
}


@dataclass(frozen=True)
class Shards:
    """Reader of shards written by ``minc-lightning-prepare`` (``data/shards.py``), in a folder or
    at ``s3://bucket/prefix``; the manifest gives each split's count and unreadable files."""

    root: str
    manifest: dict

    def __call__(self, src: Source, split: Split, transform: Callable | None) -> Dataset | None:
        from minc_lightning.data.shards import ShardImages

        info = self.manifest["splits"].get(split)
        if info is None:
            if split == "val":
                return None
            raise MissingPath(
                f"{self.root} holds no {split} split: minc-lightning-prepare --splits {split}"
            )
        skipped = [s["position"] for s in info["skipped"]]
        order = info.get("order", "source")
        count = info["count"]
        return ShardImages(self.root, split, count, skipped, transform, order, src.cache_bytes)


def shard_entry(root: str) -> DatasetEntry:
    """``dataset="streaming"``: the prepared dataset's preset, classes and image kind, read
    from the manifest at ``root``."""
    from minc_lightning.data.shards import read_manifest

    manifest = read_manifest(root)
    source = DATASETS[manifest["dataset"]]
    classes = manifest.get("classes")
    return DatasetEntry(
        preset=source.preset,
        read=Shards(root, manifest),
        needs_root=True,
        classes=(lambda src: list(classes)) if source.classes is not None and classes else None,
        varied_sizes=source.varied_sizes,
    )


def prepared_first(src: Source, split: Split, transform: Callable | None) -> Dataset | None:
    raise BadInput("dataset 'streaming' is read through MINCDataModule, from its manifest")


# shards written by minc-lightning-prepare; MINCDataModule replaces this entry by shard_entry(root)
DATASETS["streaming"] = DatasetEntry(
    preset=DATASETS["folder"].preset, read=prepared_first, needs_root=True
)
PRESETS: dict[str, Preset] = {name: entry.preset for name, entry in DATASETS.items()}
