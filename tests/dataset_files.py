"""Tiny datasets written to disk in the real formats (CIFAR pickles, STL-10 binaries,
Fashion-MNIST idx files, JPEG/PNG class folders)."""

from __future__ import annotations

import gzip
import pickle
import struct
from pathlib import Path

import numpy as np
from PIL import Image

from minc_lightning.data.presets import imagenet100_classes


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def write_cifar(root: Path, name: str = "cifar10", per_file: int = 6) -> dict[str, np.ndarray]:
    """CIFAR python pickles; returns the written images (N, 32, 32, 3) and labels per split."""
    folder, files, key, classes = (
        (
            "cifar-10-batches-py",
            [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"],
            "labels",
            10,
        )
        if name == "cifar10"
        else ("cifar-100-python", ["train", "test"], "fine_labels", 100)
    )
    (root / folder).mkdir(parents=True, exist_ok=True)
    out: dict[str, list] = {"train_x": [], "train_y": [], "test_x": [], "test_y": []}
    for i, f in enumerate(files):
        images = rng(i).integers(0, 256, (per_file, 32, 32, 3), dtype=np.uint8)
        labels = [int(v) for v in rng(100 + i).integers(0, classes, per_file)]
        with open(root / folder / f, "wb") as fh:
            flat = images.transpose(0, 3, 1, 2).reshape(per_file, -1)
            pickle.dump({"data": flat, key: labels}, fh)
        split = "test" if "test" in f else "train"
        out[f"{split}_x"].append(images)
        out[f"{split}_y"] += labels
    return {k: np.concatenate(v) if k.endswith("x") else np.asarray(v) for k, v in out.items()}


def write_stl10(root: Path, n_train: int = 4, n_unlabeled: int = 6, n_test: int = 4) -> dict:
    folder = root / "stl10_binary"
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for i, (part, n) in enumerate(
        [("train", n_train), ("unlabeled", n_unlabeled), ("test", n_test)]
    ):
        images = rng(i).integers(0, 256, (n, 96, 96, 3), dtype=np.uint8)
        images.transpose(0, 3, 2, 1).tofile(folder / f"{part}_X.bin")  # column-major, as STL-10
        out[f"{part}_x"] = images
        if part != "unlabeled":
            labels = rng(10 + i).integers(1, 11, n).astype(np.uint8)  # 1-based in the files
            labels.tofile(folder / f"{part}_y.bin")
            out[f"{part}_y"] = labels.astype(np.int64) - 1
    return out


def write_idx(path: Path, array: np.ndarray) -> None:
    header = struct.pack(">BBBB", 0, 0, 8, array.ndim) + b"".join(
        struct.pack(">I", d) for d in array.shape
    )
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def write_fashion_mnist(root: Path, n_train: int = 12, n_test: int = 6) -> dict:
    root.mkdir(parents=True, exist_ok=True)
    out = {}
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        images = rng(n).integers(0, 256, (n, 28, 28), dtype=np.uint8)
        labels = np.arange(n) % 10
        write_idx(root / f"{prefix}-images-idx3-ubyte.gz", images)
        write_idx(root / f"{prefix}-labels-idx1-ubyte.gz", labels)
        out[f"{prefix}_x"], out[f"{prefix}_y"] = images, labels
    return out


def write_image_folder(
    root: Path, classes: list[str], per_class: int = 2, size: int = 20, ext: str = ".JPEG"
) -> None:
    for c, name in enumerate(classes):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            pixels = rng(c * 100 + i).integers(0, 256, (size, size + 4, 3), dtype=np.uint8)
            fmt = "PNG" if ext.lower() == ".png" else "JPEG"
            Image.fromarray(pixels).save(root / name / f"img_{i}{ext}", format=fmt)


def write_imagenet(root: Path, subset_100: bool = False, per_class: int = 1) -> list[str]:
    """ILSVRC-2012 layout root/{train,val}/<wnid>/*.JPEG; with ``subset_100`` the 100 classes of
    ImageNet-100 plus two that are not in it."""
    classes = (
        imagenet100_classes() + ["n99999991", "n99999992"]
        if subset_100
        else ["n01440764", "n01443537", "n01484850"]
    )
    for split in ("train", "val"):
        write_image_folder(root / split, classes, per_class=per_class, size=12)
    return classes
