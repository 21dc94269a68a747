"""MINCDataModule: two BYOL views per image (lightly's transforms) for the usual SSL datasets.

Training batches are ``([view1, view2], labels)`` with label -1 for unlabelled images. The
loader yields the views as uint8 and ``on_after_batch_transfer`` normalises them on the device,
so that MINCModule receives its contract's float views (a float view costs four times the
bytes to collate, pin and copy). Validation batches are float ``(image, label)`` under a
deterministic eval transform (resize, centre crop, normalise).
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torchvision.transforms as T
from lightly.transforms import BYOLTransform, BYOLView1Transform, BYOLView2Transform
from lightning.pytorch import LightningDataModule
from lightning.pytorch.utilities import rank_zero_info
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Subset
from torchvision.datasets.folder import find_classes

from minc_lightning.checks import (
    check,
    each,
    interval,
    non_negative,
    non_negative_int,
    one_of,
    optional,
    positive_int,
    probability,
)
from minc_lightning.datasets import (
    ArrayDataset,
    CheckedImageFolder,
    read_cifar,
    read_fashion_mnist,
    read_stl10,
)
from minc_lightning.sampling import SeededDataset, SeededSampler

DatasetName = Literal[
    "imagenet", "imagenet100", "cifar10", "cifar100", "stl10", "fashion_mnist", "folder"
]
DATASETS: tuple[str, ...] = DatasetName.__args__  # type: ignore[attr-defined]

IMAGENET_STATS = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))


@dataclass(frozen=True)
class Preset:
    """Augmentation defaults per dataset, following the field's practice."""

    image_size: int
    eval_resize: int  # resize before the centre crop of the eval transform
    min_scale: float = 0.08
    cj_strength: float = 1.0
    gaussian_blur: tuple[float, float] = (1.0, 0.1)  # (view 1, view 2), BYOL
    solarization_prob: tuple[float, float] = (0.0, 0.2)
    stats: tuple[tuple[float, ...], tuple[float, ...]] = IMAGENET_STATS
    num_classes: int = 0


_CIFAR_STATS = ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616))
PRESETS: dict[str, Preset] = {
    # BYOL's ImageNet recipe: 224 px crops, asymmetric blur and solarisation.
    "imagenet": Preset(224, 256, num_classes=1000),
    "imagenet100": Preset(224, 256, num_classes=100),
    # 32 px, no blur (blurring a 32 px image destroys it), as solo-learn and lightly do.
    "cifar10": Preset(32, 32, gaussian_blur=(0.0, 0.0), stats=_CIFAR_STATS, num_classes=10),
    "cifar100": Preset(32, 32, gaussian_blur=(0.0, 0.0), stats=_CIFAR_STATS, num_classes=100),
    "stl10": Preset(96, 96, num_classes=10),
    # 28 px grayscale: no blur, milder crops and jitter (only brightness/contrast act on gray).
    "fashion_mnist": Preset(
        28,
        28,
        min_scale=0.2,
        cj_strength=0.5,
        gaussian_blur=(0.0, 0.0),
        stats=((0.2860,) * 3, (0.3530,) * 3),
        num_classes=10,
    ),
    "folder": Preset(224, 256),
}


def uint8_output(view: BYOLView1Transform | BYOLView2Transform):
    """lightly's view transform ending in a uint8 tensor instead of a float one (its augmentations
    unchanged): a quarter of the bytes to collate, pin and copy to the GPU, and no float image
    is made per sample. ``MINCDataModule.on_after_batch_transfer`` normalises whole batches."""
    steps = view.transform.transforms
    if type(steps[-1]).__name__ != "ToTensor":  # lightly changed its transform: fail loudly
        raise RuntimeError(f"expected lightly's view transform to end in ToTensor: {steps}")
    steps[-1] = T.PILToTensor()
    return view


def imagenet100_classes() -> list[str]:
    """The 100 WordNet ids of ImageNet-100 (CMC, Tian et al. 2020), shipped with the package."""
    text = resources.files("minc_lightning").joinpath("imagenet100.txt").read_text()
    return [line for line in text.split() if line.startswith("n")]


class MINCDataModule(LightningDataModule):
    """Two-view training data and a deterministic validation split.

    Args:
        dataset: one of imagenet, imagenet100, cifar10, cifar100, stl10, fashion_mnist, folder.
        root: where the data lives (ImageNet: ``root/{train,val}/<wnid>/*.JPEG``; folder:
            ``root/train/<class>/*`` and optionally ``root/val/<class>/*``, or ``root/<class>/*``).
            Fashion-MNIST is also looked for in Debian's ``dataset-fashion-mnist`` location.
        batch_size: per process.
        num_workers: loader processes per training process.
        image_size, min_scale, cj_strength, gaussian_blur, solarization_prob: augmentation
            settings; None takes the dataset's preset (``PRESETS``). The two-element settings
            are (view 1, view 2), as BYOL's asymmetric views.
        cj_prob, cj_bright, cj_contrast, cj_sat, cj_hue, random_gray_scale, hf_prob: the rest of
            lightly's ``BYOLView{1,2}Transform`` parameters, shared by both views.
        eval_resize: resize before the eval centre crop (None: preset).
        drop_last: drop the last incomplete training batch (keeps batch statistics and the
            spectral loss's negatives well defined).
        pin_memory: pin host memory for faster GPU transfer (None: when CUDA is available).
        train_subset: use a fixed random subset of this many training images (quick runs).
        val_subset: the same for the validation split.
        on_corrupt: an unreadable image either stops with its path ("raise") or is logged and
            skipped ("skip"). Applies to image folders.
        download: let torchvision download CIFAR, STL-10 or Fashion-MNIST when missing.
        seed: fixes the order of every epoch and every image's augmentation (a function of
            seed, epoch and position), so a run resumed mid-epoch sees the same batches.
    """

    def __init__(
        self,
        dataset: DatasetName = "fashion_mnist",
        root: str | None = None,
        batch_size: int = 256,
        num_workers: int = 4,
        image_size: int | None = None,
        min_scale: float | None = None,
        cj_prob: float = 0.8,
        cj_strength: float | None = None,
        cj_bright: float = 0.4,
        cj_contrast: float = 0.4,
        cj_sat: float = 0.2,
        cj_hue: float = 0.1,
        random_gray_scale: float = 0.2,
        gaussian_blur: tuple[float, float] | None = None,
        solarization_prob: tuple[float, float] | None = None,
        hf_prob: float = 0.5,
        eval_resize: int | None = None,
        drop_last: bool = True,
        pin_memory: bool | None = None,
        train_subset: int | None = None,
        val_subset: int | None = None,
        on_corrupt: Literal["raise", "skip"] = "raise",
        download: bool = True,
        seed: int = 0,
    ) -> None:
        super().__init__()
        check(
            "MINCDataModule",
            dataset=(dataset, one_of(DATASETS)),
            batch_size=(batch_size, positive_int),
            num_workers=(num_workers, non_negative_int),
            image_size=(image_size, optional(positive_int)),
            min_scale=(min_scale, optional(interval(0.0, 1.0, open_low=True))),
            cj_prob=(cj_prob, probability),
            cj_strength=(cj_strength, optional(non_negative)),
            cj_bright=(cj_bright, non_negative),
            cj_contrast=(cj_contrast, non_negative),
            cj_sat=(cj_sat, non_negative),
            cj_hue=(cj_hue, interval(0.0, 0.5)),
            random_gray_scale=(random_gray_scale, probability),
            gaussian_blur=(gaussian_blur, optional(each(probability, 2))),
            solarization_prob=(solarization_prob, optional(each(probability, 2))),
            hf_prob=(hf_prob, probability),
            eval_resize=(eval_resize, optional(positive_int)),
            train_subset=(train_subset, optional(positive_int)),
            val_subset=(val_subset, optional(positive_int)),
            on_corrupt=(on_corrupt, one_of(("raise", "skip"))),
            seed=(seed, non_negative_int),
        )
        if dataset in ("imagenet", "imagenet100", "folder") and root is None:
            raise ValueError(f"MINCDataModule: dataset {dataset!r} needs data.root")
        self.save_hyperparameters()
        self.dataset, self.root = dataset, Path(root).expanduser() if root else None
        self.batch_size, self.num_workers, self.drop_last = batch_size, num_workers, drop_last
        self.pin_memory = torch.cuda.is_available() if pin_memory is None else pin_memory
        preset = PRESETS[dataset]
        self.preset = preset
        self.image_size = image_size or preset.image_size
        view_args = dict(
            input_size=self.image_size,
            cj_prob=cj_prob,
            cj_strength=preset.cj_strength if cj_strength is None else cj_strength,
            cj_bright=cj_bright,
            cj_contrast=cj_contrast,
            cj_sat=cj_sat,
            cj_hue=cj_hue,
            min_scale=preset.min_scale if min_scale is None else min_scale,
            random_gray_scale=random_gray_scale,
            hf_prob=hf_prob,
            normalize=None,  # on whole batches, on the device: on_after_batch_transfer
        )
        blur = preset.gaussian_blur if gaussian_blur is None else gaussian_blur
        solarize = preset.solarization_prob if solarization_prob is None else solarization_prob
        self.train_transform = BYOLTransform(
            uint8_output(
                BYOLView1Transform(
                    **view_args, gaussian_blur=blur[0], solarization_prob=solarize[0]
                )
            ),
            uint8_output(
                BYOLView2Transform(
                    **view_args, gaussian_blur=blur[1], solarization_prob=solarize[1]
                )
            ),
        )
        # uint8 → float, minus mean, over std in one pass: (x - 255 m) / (255 s)
        self._shift = 255 * torch.tensor(preset.stats[0]).view(1, -1, 1, 1)
        self._scale = 255 * torch.tensor(preset.stats[1]).view(1, -1, 1, 1)
        resize = eval_resize or (
            self.image_size
            if preset.eval_resize == preset.image_size
            else round(self.image_size * preset.eval_resize / preset.image_size)
        )
        self.eval_transform = T.Compose(
            [
                T.Resize(resize),
                T.CenterCrop(self.image_size),
                T.ToTensor(),
                T.Normalize(*preset.stats),
            ]
        )
        self.train_set: Dataset | None = None
        self.val_set: Dataset | None = None

    # --- what the data is --------------------------------------------------------------------
    @property
    def num_classes(self) -> int:
        """Number of label classes (read from the folder for ``dataset="folder"``)."""
        if self.dataset != "folder":
            return self.preset.num_classes
        train_dir = self.root / "train" if (self.root / "train").is_dir() else self.root
        if not train_dir.is_dir():
            return 0
        return len(self.train_classes())

    def train_classes(self) -> list[str]:
        """The class names of an image-folder dataset's training split, in label order."""
        if self.dataset == "imagenet100":
            return sorted(imagenet100_classes())
        train_dir = self.root / "train" if (self.root / "train").is_dir() else self.root
        try:
            return find_classes(str(train_dir))[0]
        except FileNotFoundError:
            return []

    def build(self, split: Literal["train", "val"], transform) -> Dataset | None:
        """The dataset of a split under ``transform`` (None: no validation split)."""
        train, name, root = split == "train", self.dataset, self.root
        download = self.hparams.download
        if name in ("cifar10", "cifar100"):
            return ArrayDataset(*read_cifar(root or Path("data"), name, train, download), transform)
        if name == "stl10":
            stl_split = "train+unlabeled" if train else "test"
            return ArrayDataset(*read_stl10(root or Path("data"), stl_split, download), transform)
        if name == "fashion_mnist":
            return ArrayDataset(*read_fashion_mnist(root, train, download), transform)
        folder: Path | None = root / split
        if name == "folder":
            if not (root / "train").is_dir():  # root/<class>/<image>: a training split only
                folder = root if train else None
            elif not folder.is_dir() and not train:
                folder = None  # no validation split
            if folder is None:
                return None
        elif not folder.is_dir():
            raise FileNotFoundError(
                f"{folder} does not exist. Expected layout: root/train/<wnid>/<image> and "
                "root/val/<wnid>/<image> (ILSVRC-2012: sort the validation images into their wnid "
                "folders with the devkit's ground truth). ImageNet is at https://image-net.org."
            )
        on_corrupt = self.hparams.on_corrupt
        if train:
            classes = imagenet100_classes() if name == "imagenet100" else None
            return CheckedImageFolder(folder, transform, sorted(classes or []) or None, on_corrupt)
        # validation: the training split's labels; a class it lacks is fine, one it adds is not
        unknown = "ignore" if name == "imagenet100" else "error"
        return CheckedImageFolder(
            folder, transform, self.train_classes(), on_corrupt, require_all=False, unknown=unknown
        )

    @staticmethod
    def _subset(dataset: Dataset, n: int | None) -> Dataset:
        if n is None or n >= len(dataset):
            return dataset
        indices = np.random.default_rng(0).permutation(len(dataset))[:n]
        return Subset(dataset, indices.tolist())

    # --- Lightning hooks ---------------------------------------------------------------------
    def setup(self, stage: str | None = None) -> None:
        if self.train_set is None and stage in (None, "fit"):
            self.train_set = self._subset(
                self.build("train", self.train_transform), self.hparams.train_subset
            )
            processes = self.trainer.world_size if self.trainer else 1
            if self.drop_last and len(self.train_set) < self.batch_size * processes:
                raise ValueError(
                    f"The {self.dataset} training set has {len(self.train_set)} images, fewer "
                    f"than one batch (batch_size {self.batch_size} × {processes} processes); "
                    "lower data.batch_size or add images."
                )
        if self.val_set is None:
            self.val_set = self._subset(
                self.build("val", self.eval_transform), self.hparams.val_subset
            )
        rank_zero_info(
            f"MINCDataModule: {self.dataset}, "
            f"{len(self.train_set) if self.train_set is not None else 0} training and "
            f"{len(self.val_set) if self.val_set is not None else 0} validation images"
        )

    def _loader(self, dataset: Dataset, train: bool, sampler=None) -> DataLoader:
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            sampler=sampler,
            drop_last=train and self.drop_last,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            persistent_workers=self.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        # (seed, epoch, position) fix every batch and augmentation: a mid-epoch resume is exact
        sampler = SeededSampler(
            self.train_set, self.batch_size, seed=self.hparams.seed, batches_done=self._batches_done
        )
        return self._loader(SeededDataset(self.train_set), train=True, sampler=sampler)

    def _batches_done(self) -> int:
        """Batches of the current epoch already trained on (asked as the epoch starts: non-zero
        only when Lightning resumes mid-epoch)."""
        if self.trainer is None:
            return 0
        return self.trainer.fit_loop.epoch_loop.batch_progress.current.completed

    def normalize(self, images: Tensor) -> Tensor:
        """uint8 images (B, C, H, W) as float32, normalised with the dataset's mean and std."""
        shift, scale = self._shift.to(images.device), self._scale.to(images.device)
        return images.float().sub_(shift).div_(scale)

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """Normalise uint8 training views on the device the Trainer moved them to (validation
        batches are float already and pass through). Outside a Trainer, call it on each batch
        of ``train_dataloader()``: ``dm.on_after_batch_transfer(batch, 0)``."""
        views = batch[0] if isinstance(batch, (list, tuple)) and batch else None
        if isinstance(views, (list, tuple)) and all(
            isinstance(v, Tensor) and v.dtype == torch.uint8 for v in views
        ):
            batch = type(batch)([type(views)(self.normalize(v) for v in views), *batch[1:]])
        return batch

    def val_dataloader(self) -> DataLoader | list:
        return self._loader(self.val_set, train=False) if self.val_set is not None else []

    def predict_dataloader(self) -> DataLoader | list:
        return self.val_dataloader()

    def eval_dataloader(self, split: Literal["train", "val"]) -> DataLoader:
        """A split under the deterministic eval transform, in order (for offline evaluation)."""
        subset = self.hparams.train_subset if split == "train" else self.hparams.val_subset
        dataset = self.build(split, self.eval_transform)
        if dataset is None:
            raise FileNotFoundError(f"{self.dataset} at {self.root} has no {split} split")
        return self._loader(self._subset(dataset, subset), train=False)
