"""The datasets: one entry each in ``DATASETS`` (its augmentation preset and its reader), and the
readers of their own on-disk formats, with errors that say where the data should be.

CIFAR (python pickles), STL-10 (binaries) and Fashion-MNIST (idx, optionally gzipped) are read
straight from their files into uint8 arrays; torchvision is used only to download them when they
are missing and the machine is online. Image folders (ImageNet, ImageNet-100, any
``root/<class>/<image>`` tree) go through torchvision's ``ImageFolder`` with a loader that names
unreadable files.
"""

from __future__ import annotations

import gzip
import logging
import os
import pickle
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torchvision
from PIL import Image, ImageOps
from torch.utils.data import Dataset
from torchvision.datasets.folder import IMG_EXTENSIONS

log = logging.getLogger(__name__)

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
            raise ValueError(f"{len(images)} images but {len(labels)} labels")
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


def missing(name: str, path: Path, layout: str, how: str) -> FileNotFoundError:
    return FileNotFoundError(f"{name} not found at {path}. Expected layout: {layout}. {how}")


def _try_download(name: str, download: Callable[[], Any], error: FileNotFoundError) -> None:
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
        "or run online with data.download=true.",
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
        "into root, or run online with data.download=true.",
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
            raise ValueError(f"{y_file} holds {len(y)} labels for {len(x)} images")
        labels.append(y)
    return np.concatenate(images), np.concatenate(labels)


# --- Fashion-MNIST ---------------------------------------------------------------------------
def read_idx(path: Path) -> np.ndarray:
    """An idx file (the MNIST format: big-endian header, then uint8 data), gzipped or not."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 8:
        raise ValueError(f"{path} is not a uint8 idx file (bad magic number)")
    ndim = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    array = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if array.size != int(np.prod(shape)):
        raise ValueError(f"{path} is truncated: header says {shape}, found {array.size} values")
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
            "On Debian/Ubuntu: `apt-get install dataset-fashion-mnist`; or run online with "
            "data.download=true (torchvision fetches it into root).",
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


# --- image folders ---------------------------------------------------------------------------
HIGH_BIT_DEPTH = ("I;16", "I;16B", "I;16L", "I;16N", "I", "F")
BACKGROUND = (255, 255, 255)  # what transparent pixels show: white, as image viewers on a page


def to_rgb(image: Image.Image) -> Image.Image:
    """An 8-bit RGB image of what ``image`` shows in a viewer.

    PIL's ``convert("RGB")`` alone clips 16-bit and 32-bit images to 255 (a 16-bit scan trains
    as a white square), drops transparency (showing whatever colour lies under transparent
    pixels) and ignores the EXIF orientation. Here: the EXIF rotation is applied; 16-bit
    images are scaled to 8 bits (``I``: by the range its values use, ``F``: [0, 1] or [0, 255]);
    transparency, also a palette's, is composited on white; palette, CMYK, YCbCr and bilevel
    images are converted by PIL.
    """
    image = ImageOps.exif_transpose(image)
    if image.mode in HIGH_BIT_DEPTH:
        pixels = np.asarray(image).astype(np.float64)
        top = pixels.max(initial=0.0)
        if image.mode.startswith("I;16") or (image.mode == "I" and 255 < top <= 65535):
            pixels = pixels / 257.0
        elif image.mode == "I" and top > 65535:
            pixels = pixels * (255.0 / top)
        elif image.mode == "F" and top <= 1.0:
            pixels = pixels * 255.0
        image = Image.fromarray(np.clip(np.rint(pixels), 0, 255).astype(np.uint8), "L")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (*BACKGROUND, 255))
        image = Image.alpha_composite(background, rgba)
    return image if image.mode == "RGB" else image.convert("RGB")


# Every extension PIL reads (GIF, TGA, ICO, ... beyond torchvision's list), lower case.
IMAGE_EXTENSIONS = tuple(
    sorted(
        {e.lower() for e, fmt in Image.registered_extensions().items() if fmt in Image.OPEN}
        | set(IMG_EXTENSIONS)
    )
)


def hidden(name: str) -> bool:
    """Folders and files that are not data: hidden ones (``.git``, ``.ipynb_checkpoints``,
    AppleDouble ``._x.jpg``) and macOS archive debris (``__MACOSX``)."""
    return name.startswith(".") or name == "__MACOSX"


def class_folders(directory: str | Path) -> list[str]:
    """The class folders of ``directory``, sorted: its sub-folders and links to folders (an
    ImageNet-100 made of links into ImageNet), less hidden ones."""
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"{directory} is not a folder")
    names = [e.name for e in os.scandir(directory) if not hidden(e.name) and e.is_dir()]
    if not names:
        raise FileNotFoundError(f"Couldn't find any class folder in {directory}.")
    return sorted(names)


class FolderWalk:
    """Finds the images of a dataset's class folders, each real file once.

    Links are followed, also out of the dataset (a subset made of links into a full copy), but
    a folder is entered once in the whole dataset: a link loop, a second link to the same
    folder, or a link back to the dataset's root, one of its parents or another class folder
    adds nothing. Hidden entries are not visited."""

    def __init__(self, root: Path, class_dirs: list[Path]) -> None:
        self.root = root.resolve()
        self.classes = {d.resolve() for d in class_dirs}
        self.dirs: set[Path] = set()
        self.files: set[Path] = set()

    def images(self, folder: Path) -> tuple[list[Path], list[Path]]:
        """The images under class folder ``folder`` (sorted), and the other files there."""
        images, others, stack = [], [], [folder]
        while stack:
            current = stack.pop()
            real = current.resolve()
            back = real == self.root or real in self.root.parents or real in self.classes
            if real in self.dirs or (current is not folder and back):
                continue
            self.dirs.add(real)
            for entry in sorted(os.scandir(current), key=lambda e: e.name):
                path = Path(entry.path)
                if hidden(entry.name):
                    continue
                if entry.is_dir():
                    stack.append(path)
                    continue
                # a plain file's real path is its folder's: resolving it (a system call per
                # path component) is needed for links only, not for a million JPEGs
                real_file = path.resolve() if entry.is_symlink() else real / entry.name
                if entry.is_file() and real_file not in self.files:
                    self.files.add(real_file)
                    suffix = path.suffix.lower()
                    (images if suffix in IMAGE_EXTENSIONS else others).append(path)
        return sorted(images), others


class CheckedImageFolder(torchvision.datasets.ImageFolder):
    """``ImageFolder`` with a given class list, whose errors name the file or folder.

    Args:
        root: ``root/<class>/<image>``.
        classes: the labels, in order (None: the class folders of ``root``). A validation split
            takes its training split's list, so a class has one label in both.
        require_all: every class of ``classes`` must have a folder (a training split); else a
            missing class folder is allowed (a validation split may lack a class).
        unknown: a class folder not in ``classes`` is an "error" (its images would get no label
            or another class's) or is "ignore"d (ImageNet-100 inside ImageNet).
        on_corrupt: "raise" stops at an unreadable image, naming it; "skip" logs it with a
            running count and serves the next image instead.
    """

    def __init__(
        self,
        root: Path,
        transform: Callable | None = None,
        classes: list[str] | None = None,
        on_corrupt: Literal["raise", "skip"] = "raise",
        require_all: bool = True,
        unknown: Literal["error", "ignore"] = "ignore",
    ) -> None:
        self.keep = classes
        self.on_corrupt = on_corrupt
        self.require_all = require_all
        self.unknown = unknown
        self.skipped = 0
        try:
            super().__init__(str(root), transform=transform, allow_empty=not require_all)
        except FileNotFoundError as err:
            raise FileNotFoundError(
                f"{root}: {err}. Every class folder root/<class>/ needs at least one image "
                f"with one of the extensions PIL opens ({', '.join(IMAGE_EXTENSIONS[:12])}, ...)."
            ) from err

    def make_dataset(
        self,
        directory: str,
        class_to_idx: dict[str, int],
        extensions: Any = None,
        is_valid_file: Any = None,
        allow_empty: bool = False,
    ) -> list[tuple[str, int]]:
        """Every file PIL opens (``IMAGE_EXTENSIONS``), each real file once (``FolderWalk``);
        other files are counted and the first few named in the log."""
        names = [n for n in sorted(class_to_idx) if (Path(directory) / n).is_dir()]
        walk = FolderWalk(Path(directory), [Path(directory) / n for n in names])
        samples, skipped = [], []
        for name in names:
            folder, label = Path(directory) / name, class_to_idx[name]
            images, others = walk.images(folder)
            if not images and not allow_empty:
                raise FileNotFoundError(f"Found no valid file for the class {name}.")
            samples += [(str(p), label) for p in images]
            skipped += others
        if skipped:
            log.warning(
                "%s: skipped %d files that are not images PIL opens (e.g. %s)",
                directory,
                len(skipped),
                ", ".join(str(p) for p in skipped[:3]),
            )
        return samples

    def find_classes(self, directory: str) -> tuple[list[str], dict[str, int]]:
        present = class_folders(directory)
        if self.keep is None:
            return present, {c: i for i, c in enumerate(present)}
        absent = sorted(set(self.keep) - set(present))
        if absent and self.require_all:
            raise FileNotFoundError(
                f"{directory} lacks {len(absent)} of the {len(self.keep)} expected class "
                f"folders, e.g. {', '.join(absent[:5])}"
            )
        extra = sorted(set(present) - set(self.keep))
        if extra and self.unknown == "error":
            raise ValueError(
                f"{directory} holds {len(extra)} class folder(s) the training split does not "
                f"have ({', '.join(extra[:5])}); their images would be scored under another "
                "class's label. Remove them or add them to the training split."
            )
        return list(self.keep), {c: i for i, c in enumerate(self.keep)}

    def __getitem__(self, index: int) -> tuple[Any, int]:
        path, target = self.samples[index]
        # a transform with `from_file` decodes the lazily opened file itself (e.g. at a
        # reduced scale); any other is given the fully decoded RGB image
        from_file = getattr(self.transform, "from_file", None)
        try:
            with open(path, "rb") as f:
                image = Image.open(f)
                if from_file is not None:
                    return from_file(image), target
                image = to_rgb(image)  # converting forces a full decode
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
            if self.on_corrupt == "raise":
                raise OSError(
                    f"cannot read image {path} ({err}); set data.on_corrupt=skip to skip "
                    "unreadable images"
                ) from err
            self.skipped += 1
            log.warning(
                "skipping unreadable image %s (%d skipped so far by this worker)",
                path,
                self.skipped,
            )
            return self[(index + 1) % len(self)]
        return (self.transform(image) if self.transform else image), target


# --- the table ------------------------------------------------------------------------------
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


@dataclass(frozen=True)
class Source:
    """Where a reader finds a dataset, and what it may do about missing or unreadable files."""

    root: Path | None
    download: bool = True
    on_corrupt: Literal["raise", "skip"] = "raise"


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
    text = resources.files("minc_lightning").joinpath("imagenet100.txt").read_text()
    return [line for line in text.split() if line.startswith("n")]


def _arrays(read: Callable, src: Source, split: Split, transform: Callable | None) -> Dataset:
    return ArrayDataset(*read(src, split), transform)


def _cifar(name: Literal["cifar10", "cifar100"], src: Source, split: Split):
    return read_cifar(src.root or Path("data"), name, split == "train", src.download)


def _stl10(src: Source, split: Split):
    parts = "train+unlabeled" if split == "train" else "test"
    return read_stl10(src.root or Path("data"), parts, src.download)


def _fashion_mnist(src: Source, split: Split):
    return read_fashion_mnist(src.root, split == "train", src.download)


def _train_dir(src: Source) -> Path:
    """An image folder's training split: root/train, or root itself (root/<class>/<image>)."""
    return src.root / "train" if (src.root / "train").is_dir() else src.root


def folder_classes(src: Source) -> list[str]:
    try:
        return class_folders(_train_dir(src))
    except FileNotFoundError:
        return []


def _images(
    classes: Callable[[Source], list[str]] | None,
    unknown_in_val: Literal["error", "ignore"],
    required: bool,
    src: Source,
    split: Split,
    transform: Callable | None,
) -> Dataset | None:
    """An image-folder split; validation takes the training split's labels."""
    folder = src.root / split
    if not folder.is_dir():
        if not required:  # folder: root/<class>/<image> is a training split only
            train = CheckedImageFolder(src.root, transform, on_corrupt=src.on_corrupt)
            return train if split == "train" else None
        raise FileNotFoundError(
            f"{folder} does not exist. Expected layout: root/train/<wnid>/<image> and "
            "root/val/<wnid>/<image> (ILSVRC-2012: sort the validation images into their wnid "
            "folders with the devkit's ground truth). ImageNet is at https://image-net.org."
        )
    if split == "train":
        names = sorted(classes(src)) if classes is not None else None
        return CheckedImageFolder(folder, transform, names, src.on_corrupt)
    names = sorted(classes(src)) if classes is not None else folder_classes(src)
    return CheckedImageFolder(
        folder, transform, names, src.on_corrupt, require_all=False, unknown=unknown_in_val
    )


DATASETS: dict[str, DatasetEntry] = {
    # BYOL's ImageNet recipe: 224 px crops, asymmetric blur and solarisation.
    "imagenet": DatasetEntry(
        Preset(224, 256, num_classes=1000),
        partial(_images, None, "error", True),
        True,
        varied_sizes=True,
    ),
    "imagenet100": DatasetEntry(
        Preset(224, 256, num_classes=100),
        partial(_images, lambda src: imagenet100_classes(), "ignore", True),
        True,
        varied_sizes=True,
    ),
    # 32 px, no blur (blurring a 32 px image destroys it), as solo-learn and lightly do.
    "cifar10": DatasetEntry(
        Preset(32, 32, gaussian_blur=(0.0, 0.0), stats=CIFAR_STATS, num_classes=10),
        partial(_arrays, partial(_cifar, "cifar10")),
    ),
    "cifar100": DatasetEntry(
        Preset(32, 32, gaussian_blur=(0.0, 0.0), stats=CIFAR_STATS, num_classes=100),
        partial(_arrays, partial(_cifar, "cifar100")),
    ),
    "stl10": DatasetEntry(Preset(96, 96, num_classes=10), partial(_arrays, _stl10)),
    # 28 px grayscale: no blur, milder crops and jitter (only brightness/contrast act on gray).
    "fashion_mnist": DatasetEntry(
        Preset(
            28,
            28,
            min_scale=0.2,
            cj_strength=0.5,
            gaussian_blur=(0.0, 0.0),
            stats=((0.2860,) * 3, (0.3530,) * 3),
            num_classes=10,
        ),
        partial(_arrays, _fashion_mnist),
    ),
    # any root/train/<class>/<image> (+ root/val/<class>/<image>) or root/<class>/<image> tree
    "folder": DatasetEntry(
        Preset(224, 256),
        partial(_images, None, "error", False),
        True,
        folder_classes,
        varied_sizes=True,
    ),
}
PRESETS: dict[str, Preset] = {name: entry.preset for name, entry in DATASETS.items()}
