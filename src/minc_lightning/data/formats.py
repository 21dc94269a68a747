"""The on-disk formats of the array datasets, read straight into uint8 arrays, with errors that
say where the data should be: CIFAR (python pickles), STL-10 (binaries) and Fashion-MNIST (idx,
optionally gzipped). torchvision is used only to download them when they are missing and the
machine is online.
"""

from __future__ import annotations

import gzip
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torchvision
from PIL import Image
from torch.utils.data import Dataset

from minc_lightning.errors import BadInput, MissingPath

# Where Debian's `dataset-fashion-mnist` package puts the files.
DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")


class ArrayDataset(Dataset):
    """Images held as a uint8 array (N, H, W) or (N, H, W, C) with integer labels (-1: none)."""

    def __init__(
        self,
        images: np.ndarray,
        labels: np.ndarray,
        transform: Callable | None = None,
        rgb: bool = True,
    ) -> None:
        if len(images) != len(labels):
            raise BadInput(f"{len(images)} images but {len(labels)} labels")
        self.images = images
        self.labels = torch.as_tensor(labels, dtype=torch.long)
        self.transform = transform
        self.rgb = rgb

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> tuple[Any, int]:
        image = Image.fromarray(self.images[i])
        if self.rgb and image.mode != "RGB":  # grayscale → 3 identical channels for RGB backbones
            image = image.convert("RGB")
        return (self.transform(image) if self.transform else image), int(self.labels[i])


def missing(name: str, path: Path, layout: str, how: str) -> MissingPath:
    absent = "" if path.exists() else " (no such folder)"
    return MissingPath(f"{name} not found at {path}{absent}. Expected layout: {layout}. {how}")


DOWNLOAD = "or download it into data.root: add --data.download true (online)"


def _try_download(name: str, download: Callable[[], Any], error: MissingPath) -> None:
    """Run a torchvision download; when offline, raise ``error`` (which says what to do)."""
    try:
        download()
    except Exception as err:  # network errors come in many types
        raise error from err


# --- CIFAR -----------------------------------------------------------------------------------
def read_cifar(
    root: Path, name: Literal["cifar10", "cifar100"], train: bool, download: bool
) -> tuple[np.ndarray, np.ndarray]:
    folder, files = (
        (
            "cifar-10-batches-py",
            [f"data_batch_{i}" for i in range(1, 6)] if train else ["test_batch"],
        )
        if name == "cifar10"
        else ("cifar-100-python", ["train" if train else "test"])
    )
    paths = [root / folder / f for f in files]
    error = missing(
        name.upper().replace("CIFAR", "CIFAR-"),
        root / folder,
        f"root/{folder}/{{{','.join(files)}}} (the python version of the dataset)",
        "Download it from https://www.cs.toronto.edu/~kriz/cifar.html and extract it into root, "
        + DOWNLOAD,
    )
    if not all(p.is_file() for p in paths):
        if not download:
            raise error
        cls = torchvision.datasets.CIFAR10 if name == "cifar10" else torchvision.datasets.CIFAR100
        _try_download(name, lambda: cls(str(root), train=train, download=True), error)
    images, labels = [], []
    for p in paths:
        with open(p, "rb") as f:
            entry = pickle.load(f, encoding="latin1")
        images.append(np.asarray(entry["data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
        labels += entry["labels"] if "labels" in entry else entry["fine_labels"]
    return np.concatenate(images).transpose(0, 2, 3, 1), np.asarray(labels)


# --- STL-10 ----------------------------------------------------------------------------------
def read_stl10(
    root: Path, split: Literal["train+unlabeled", "train", "test"], download: bool
) -> tuple[np.ndarray, np.ndarray]:
    folder = root / "stl10_binary"
    parts = {"train+unlabeled": ["train", "unlabeled"], "train": ["train"], "test": ["test"]}[split]
    error = missing(
        "STL-10",
        folder,
        "root/stl10_binary/{train_X,train_y,test_X,test_y,unlabeled_X}.bin",
        "Download stl10_binary.tar.gz from https://cs.stanford.edu/~acoates/stl10/ and extract it "
        "into root, " + DOWNLOAD,
    )
    if not all((folder / f"{p}_X.bin").is_file() for p in parts):
        if not download:
            raise error
        _try_download("stl10", lambda: torchvision.datasets.STL10(str(root), download=True), error)
    images, labels = [], []
    for part in parts:
        # stored column-major: (N, C, W, H)
        x = np.fromfile(folder / f"{part}_X.bin", dtype=np.uint8).reshape(-1, 3, 96, 96)
        images.append(x.transpose(0, 3, 2, 1))
        y_file = folder / f"{part}_y.bin"
        y = (
            np.fromfile(y_file, dtype=np.uint8).astype(np.int64) - 1
            if part != "unlabeled"
            else np.full(len(x), -1, dtype=np.int64)
        )
        if len(y) != len(x):
            raise BadInput(f"{y_file} holds {len(y)} labels for {len(x)} images")
        labels.append(y)
    return np.concatenate(images), np.concatenate(labels)


# --- Fashion-MNIST ---------------------------------------------------------------------------
def read_idx(path: Path) -> np.ndarray:
    """An idx file (the MNIST format: big-endian header, then uint8 data), gzipped or not."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 8:
        raise BadInput(f"{path} is not a uint8 idx file (bad magic number)")
    ndim = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    array = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if array.size != int(np.prod(shape)):
        raise BadInput(f"{path} is truncated: header says {shape}, found {array.size} values")
    return array.reshape(shape)


def find_fashion_mnist(root: Path | None) -> Path | None:
    """The first folder holding the four Fashion-MNIST idx files (gzipped or not): in ``root``
    when one is given (never another copy in its place), else Debian's."""
    candidates = [root, root / "FashionMNIST" / "raw"] if root else [DEBIAN_FASHION_MNIST]
    for folder in candidates:
        if all(_idx_file(folder, stem) for stem in FASHION_MNIST_FILES):
            return folder
    return None


FASHION_MNIST_FILES = [
    f"{split}-{kind}-ubyte"
    for split in ("train", "t10k")
    for kind in ("images-idx3", "labels-idx1")
]


def _idx_file(folder: Path, stem: str) -> Path | None:
    for name in (stem, stem + ".gz"):
        if (folder / name).is_file():
            return folder / name
    return None


def read_fashion_mnist(
    root: Path | None, train: bool, download: bool
) -> tuple[np.ndarray, np.ndarray]:
    folder = find_fashion_mnist(root)
    if folder is None:
        error = missing(
            "Fashion-MNIST",
            root or DEBIAN_FASHION_MNIST,
            "{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz] in root, root/FashionMNIST/raw or "
            f"{DEBIAN_FASHION_MNIST}",
            "On Debian/Ubuntu: `apt-get install dataset-fashion-mnist` and leave data.root unset; "
            + DOWNLOAD,
        )
        if not download or root is None:
            raise error
        _try_download(
            "fashion_mnist",
            lambda: torchvision.datasets.FashionMNIST(str(root), train=train, download=True),
            error,
        )
        folder = root / "FashionMNIST" / "raw"
    prefix = "train" if train else "t10k"
    images = read_idx(_idx_file(folder, f"{prefix}-images-idx3-ubyte"))
    labels = read_idx(_idx_file(folder, f"{prefix}-labels-idx1-ubyte")).astype(np.int64)
    return images, labels
