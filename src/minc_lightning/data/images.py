"""Image folders and image decoding: ``root/<class>/<image>`` trees (ImageNet, ImageNet-100, any
folder) through torchvision's ``ImageFolder``, with a walk that follows links once, skips what is
not data, and a loader that names unreadable files and decodes every PIL mode to what a viewer
shows.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torchvision
from PIL import Image, ImageOps
from torchvision.datasets.folder import IMG_EXTENSIONS

from minc_lightning.errors import BadInput, MissingPath, Unreadable

log = logging.getLogger(__name__)


HIGH_BIT_DEPTH = ("I;16", "I;16B", "I;16L", "I;16N", "I", "F")
BACKGROUND = (255, 255, 255)  # what transparent pixels show: white, as image viewers on a page
# what PIL raises for a file it cannot decode (truncated, not an image, a decompression bomb)
UNREADABLE = (OSError, SyntaxError, ValueError, Image.DecompressionBombError)


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
        raise MissingPath(f"{directory} is not a folder")
    names = [e.name for e in os.scandir(directory) if not hidden(e.name) and e.is_dir()]
    if not names:
        raise MissingPath(f"Couldn't find any class folder in {directory}.")
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
            raise MissingPath(
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
                raise MissingPath(f"Found no valid file for the class {name}.")
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
            raise MissingPath(
                f"{directory} lacks {len(absent)} of the {len(self.keep)} expected class "
                f"folders, e.g. {', '.join(absent[:5])}"
            )
        extra = sorted(set(present) - set(self.keep))
        if extra and self.unknown == "error":
            raise BadInput(
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
        except UNREADABLE as err:
            if self.on_corrupt == "raise":
                raise Unreadable(
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


def flat(directory: Path) -> bool:
    """Whether ``directory`` is a folder of images with no class folders (``root/<image>``)."""
    return directory.is_dir() and not any(
        e.is_dir() and not hidden(e.name) for e in os.scandir(directory)
    )


class FlatImageFolder(CheckedImageFolder):
    """``root/<image>``: a folder of images with no class folders, all unlabelled (label -1),
    e.g. a user's photos to train on or embed."""

    def find_classes(self, directory: str) -> tuple[list[str], dict[str, int]]:
        return [], {}

    def make_dataset(self, directory: str, *args: Any, **kwargs: Any) -> list[tuple[str, int]]:
        images, others = FolderWalk(Path(directory), []).images(Path(directory))
        if not images:
            raise MissingPath(
                f"{directory} holds no image PIL opens ({', '.join(IMAGE_EXTENSIONS[:12])}, ...)"
            )
        if others:
            log.warning("%s: skipped %d files that are not images", directory, len(others))
        return [(str(p), -1) for p in images]
