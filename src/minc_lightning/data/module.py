"""MINCDataModule: two BYOL views per image (lightly's transforms) for the usual SSL datasets.

Training batches are ``([view1, view2], labels)`` with label -1 for unlabelled images, once
``on_after_batch_transfer`` has run on the device. Where the views are made is ``augment_on``:

* ``"loader"``: lightly's view transforms run per image in the loader workers and yield uint8;
  the hook only normalises (a float view costs four times the bytes to collate, pin and copy);
* ``"device"``: the workers only draw the parameters, decode and (for images of varying size)
  crop; the hook applies the rest to the whole batch (``minc_lightning.data.augment``).

Validation batches are float ``(image, label)`` under
a deterministic eval transform (resize, centre crop, normalise). The datasets, their presets
and readers are the table ``minc_lightning.data.DATASETS``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import torch
from lightly.transforms.multi_view_transform import MultiViewTransform
from lightning.pytorch import LightningDataModule
from lightning.pytorch.utilities import rank_zero_info
from torch.utils.data import DataLoader, Dataset, Subset

from minc_lightning._distributed import rank, world_size
from minc_lightning.checkpoint_files import resume_refused
from minc_lightning.cli_context import built_by_cli
from minc_lightning.data.augment import LoaderViews, finish_batch
from minc_lightning.data.presets import DATASETS, DatasetEntry, Source, shard_entry
from minc_lightning.data.sampling import (
    ChunkOrder,
    ResumableLoader,
    SeededDataset,
    SeededSampler,
    ignore_stop_signals,
    subset_indices,
)
from minc_lightning.data.shards import ShardImages
from minc_lightning.data.views import (
    check_view_sizes,
    default_views,
    eval_transform,
    local_size_for,
    recipes_of,
    uint8_views,
)
from minc_lightning.errors import BadInput, MissingPath
from minc_lightning.validation import check, non_negative_int, one_of, optional, positive_int

__all__ = ["MINCDataModule"]

# Where the views are made when training on the CPU (GPU: "device"); docs/training.md,
# "Augmentation on the device", gives the measurement (benchmarks/data_throughput.py) behind it.
CPU_AUGMENT_ON = "device"


def check_arguments(args: dict[str, Any]) -> None:
    """Every number and choice of MINCDataModule that a user sets, checked."""
    check(
        "MINCDataModule",
        dataset=(args["dataset"], one_of(DATASETS)),
        batch_size=(args["batch_size"], positive_int),
        num_workers=(args["num_workers"], non_negative_int),
        image_size=(args["image_size"], optional(positive_int)),
        eval_resize=(args["eval_resize"], optional(positive_int)),
        train_subset=(args["train_subset"], optional(positive_int)),
        val_subset=(args["val_subset"], optional(positive_int)),
        on_corrupt=(args["on_corrupt"], one_of(("raise", "skip"))),
        augment_on=(args["augment_on"], optional(one_of(("device", "loader")))),
        seed=(args["seed"], non_negative_int),
        local_views=(args["local_views"], non_negative_int),
        local_size=(args["local_size"], optional(positive_int)),
        local_scale=(args["local_scale"], optional(scale_range)),
        order=(args["order"], optional(one_of(("chunks", "global")))),
        chunk_window=(args["chunk_window"], positive_int),
        cache_bytes=(args["cache_bytes"], optional(positive_int)),
        image_column=(args["image_column"], text),
        label_column=(args["label_column"], optional(text)),
        train_split=(args["train_split"], text),
        val_split=(args["val_split"], optional(text)),
    )
    if args["order"] == "chunks" and args["dataset"] != "streaming":
        raise BadInput(
            f"MINCDataModule: order 'chunks' reads shards a chunk at a time; dataset "
            f"{args['dataset']!r} is not sharded: leave data.order unset (or 'global')"
        )


def text(value: Any) -> str | None:
    return None if isinstance(value, str) and value else "a non-empty name"


def scale_range(value: Any) -> str | None:
    """A crop's (low, high) fraction of the image: 0 < low <= high <= 1."""
    ok = (
        isinstance(value, (list, tuple))
        and len(value) == 2
        and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
        and 0 < value[0] <= value[1] <= 1
    )
    return None if ok else "two numbers (low, high) with 0 < low <= high <= 1"


class MINCDataModule(LightningDataModule):
    """Two-view training data and a deterministic validation split.

    Args:
        dataset: a key of ``minc_lightning.data.DATASETS``: imagenet, imagenet100, cifar10,
            cifar100, stl10, fashion_mnist, folder, huggingface (a ``datasets`` dataset), or
            streaming (shards by ``minc-lightning-prepare``, with the prepared dataset's preset).
        root: ImageNet: ``root/{train,val}/<wnid>/*.JPEG``; folder: ``root/train/<class>/*``
            (and ``root/val/<class>/*``), or ``root/<class>/*``; streaming: the prepared folder
            or ``s3://bucket/prefix`` (endpoint ``AWS_ENDPOINT_URL``, credentials boto3's);
            huggingface: a ``save_to_disk`` folder, a folder of parquet files or a Hub name.
            Fashion-MNIST is also looked for in Debian's ``dataset-fashion-mnist`` location.
        batch_size: per process.
        num_workers: loader processes per training process.
        image_size: crop size of the views and the eval images (None: the dataset's preset).
        augmentation: the views' transform, e.g. lightly's ``BYOLTransform`` (None: BYOL's
            views with the preset, yielding uint8). uint8 views are normalised on the device,
            float ones used as they are; ``augment_on="device"`` reads and applies its views.
        augment_on: where the views are made: ``"loader"`` (per image, in the loader workers)
            or ``"device"`` (per batch, on the training device; the workers only decode and
            crop). None: "device" when training on a GPU, else ``CPU_AUGMENT_ON``.
        eval_resize: resize before the eval centre crop (None: preset).
        drop_last: drop the last incomplete training batch (keeps batch statistics and the
            spectral loss's negatives well defined).
        pin_memory: pin host memory for faster GPU transfer (None: when CUDA is available).
        train_subset: use a fixed random subset of this many training images (quick runs).
        val_subset: the same for the validation split.
        on_corrupt: an unreadable image either stops with its path ("raise") or is logged and
            skipped ("skip"). Applies to image folders.
        download: let torchvision download CIFAR, STL-10 or Fashion-MNIST into ``root`` when
            missing (off by default: a mistyped root is named, not created and filled).
        seed: fixes the order of every epoch and every image's augmentation (a function of
            seed, epoch and position), so a run resumed mid-epoch sees the same batches.
        local_views: multi-crop: local views per image after the two global ones (BYOL's second
            view's colour jitter, blur and solarisation, their own crop), so a batch is
            ``([global_1, global_2, local_1, ...], labels)``. ``MINCModule(local_views=...)``
            must match (the CLI links it).
        local_size: the local views' side in px, at most ``image_size`` (None: the preset's).
        local_scale: the local crops' (low, high) fraction of the image's area (None: the
            preset's, e.g. (0.05, 0.14) for ImageNet).
        order: shards only. "chunks" (their default): each epoch permutes the chunks, deals
            them to the processes and loader workers and shuffles records within windows of
            ``chunk_window`` chunks, so each worker reads whole chunks, downloaded ahead
            (docs/streaming.md). "global": one permutation of all records, as files are read.
        chunk_window: chunks whose records are shuffled together (order "chunks").
        cache_bytes: shards in object storage: the most bytes of chunks each reader holds on
            local disk (None: 12 of the largest chunk); ``chunk_window`` + 2 chunks let
            downloads run ahead of reading.
        image_column: huggingface only: the column of images (``datasets.Image``, bytes, paths).
        label_column: huggingface only: the labels (ClassLabel or integers; None: unlabelled).
        train_split: huggingface only: the split to train on.
        val_split: huggingface only: the split to validate on (None, or absent: no validation).
    """

    def __init__(
        self,
        dataset: str = "fashion_mnist",
        root: str | None = None,
        batch_size: int = 256,
        num_workers: int = 4,
        image_size: int | None = None,
        augmentation: MultiViewTransform | None = None,
        augment_on: Literal["device", "loader"] | None = None,
        eval_resize: int | None = None,
        drop_last: bool = True,
        pin_memory: bool | None = None,
        train_subset: int | None = None,
        val_subset: int | None = None,
        on_corrupt: Literal["raise", "skip"] = "raise",
        download: bool = False,
        seed: int = 0,
        local_views: int = 0,
        local_size: int | None = None,
        local_scale: tuple[float, float] | None = None,
        order: Literal["chunks", "global"] | None = None,
        chunk_window: int = 4,
        cache_bytes: int | None = None,
        image_column: str = "image",
        label_column: str | None = "label",
        train_split: str = "train",
        val_split: str | None = "validation",
    ) -> None:
        super().__init__()
        # an object is not a setting: the CLI's config of one is (it is part of the run's identity)
        self.save_hyperparameters(ignore=None if built_by_cli() else ["augmentation"])
        check_arguments(self.hparams)
        self.dataset, self.entry = dataset, entry_of(dataset, root)
        self.preset = self.entry.preset
        # a folder, or (shards) s3://bucket/prefix, which is not a path
        self.root = Path(root).expanduser() if root and "://" not in str(root) else root
        columns = (image_column, label_column, train_split, val_split)
        self.source = Source(self.root, download, on_corrupt, *columns, cache_bytes=cache_bytes)
        self.batch_size, self.num_workers, self.drop_last = batch_size, num_workers, drop_last
        self.pin_memory = torch.cuda.is_available() if pin_memory is None else pin_memory
        self.image_size, self.local_views = image_size or self.preset.image_size, local_views
        self.local_size = local_size or local_size_for(self.preset, self.image_size)
        self.local_scale = tuple(local_scale or self.preset.local_scale)
        self.view_sizes = (self.image_size, local_views, self.local_size, self.local_scale)
        check_views(augmentation, local_views, self.local_size, self.image_size)
        self.augmentation, self.augment_on = augmentation, augment_on
        # each view as the device applies it, read now so that a view it cannot make is named
        views = augmentation.transforms if augmentation is not None else None
        on_device = augment_on != "loader"  # or not yet known: None
        self.recipes = recipes_of(views, self.preset, self.view_sizes) if on_device else ()
        self.order = order or ("chunks" if dataset == "streaming" else "global")
        self.eval_transform = eval_transform(self.preset, self.image_size, eval_resize)
        # uint8 → float, minus mean, over std in one pass: (x - 255 m) / (255 s)
        self.shift = 255 * torch.tensor(self.preset.stats[0]).view(1, -1, 1, 1)
        self.scale = 255 * torch.tensor(self.preset.stats[1]).view(1, -1, 1, 1)
        self.train_set: Dataset | None = None  # both built by setup
        self.val_set: Dataset | None = None
        self._train_loader: ResumableLoader | None = None  # the one whose position is saved
        self._resume_position: dict[str, int] | None = None  # a checkpoint's, until loaded

    # --- what the data is --------------------------------------------------------------------
    @property
    def num_classes(self) -> int:
        """Number of label classes (read from the training folder for ``dataset="folder"``)."""
        if self.entry.classes is None:
            return self.preset.num_classes
        return count_classes(self.entry.classes(self.source), self.root)

    def build(self, split: Literal["train", "val"], transform) -> Dataset | None:
        """The dataset of a split under ``transform`` (None: no validation split)."""
        return self.entry.read(self.source, split, transform)

    @property
    def train_transform(self) -> MultiViewTransform | LoaderViews:
        """The loader's transform of a training image where the views are made."""
        if self.views_on() == "loader":
            return self.augmentation or uint8_views(default_views(self.preset, *self.view_sizes))
        return LoaderViews(self.recipes, crop=self.entry.varied_sizes)

    def views_on(self) -> Literal["device", "loader"]:
        """``augment_on``, or where the attached Trainer trains: "device" on a GPU."""
        if self.augment_on is not None:
            return self.augment_on
        on_gpu = self.trainer is not None and self.trainer.strategy.root_device.type != "cpu"
        return "device" if on_gpu else CPU_AUGMENT_ON

    # --- Lightning hooks ---------------------------------------------------------------------
    def setup(self, stage: str | None = None) -> None:
        if self.train_set is None and stage in (None, "fit"):
            train = self.build("train", self.train_transform)
            if isinstance(train, ShardImages) and self.order == "global":
                # as the files are read: image i is the source's i, one request per record
                train = train.in_source_order().per_record()
            self.train_set = subset(train, self.hparams.train_subset)
            where = "in the loader" if self.views_on() == "loader" else "on the device"
            rank_zero_info(f"MINCDataModule: views made {where}")
            check_one_batch(self, self.trainer.world_size if self.trainer else 1)
        if self.val_set is None:
            self.val_set = subset(self.build("val", self.eval_transform), self.hparams.val_subset)
        rank_zero_info(
            f"MINCDataModule: {self.dataset}, {len(self.train_set or ())} training and "
            f"{len(self.val_set or ())} validation images"
        )

    def _loader(self, dataset: Dataset, train: bool, sampler=None) -> DataLoader:
        return (ResumableLoader if train else DataLoader)(
            dataset,
            batch_size=self.batch_size,
            sampler=sampler,
            drop_last=train and self.drop_last,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            persistent_workers=self.num_workers > 0,
            worker_init_fn=ignore_stop_signals if self.num_workers > 0 else None,
        )

    def train_dataloader(self) -> DataLoader:
        # (seed, epoch, position) fix every batch and augmentation, and the loader's position
        # travels in the checkpoint: a mid-epoch resume is exact with any number of workers
        order = self.chunk_order()
        sampler = SeededSampler(
            self.train_set, self.batch_size, seed=self.hparams.seed, order=order
        )
        loader = self._loader(SeededDataset(self.train_set, order), train=True, sampler=sampler)
        if self._resume_position is not None:  # before any iterator exists (workers prefetch)
            loader.load_state_dict(self._resume_position)
            self._resume_position = None
        self._train_loader = loader
        return loader

    def chunk_order(self) -> ChunkOrder | None:
        """The epoch's order over shards read a chunk at a time (``order="chunks"``). Its
        readers are this run's loader workers at its first start, kept by a resume."""
        if self.order != "chunks":
            return None
        readers = (self._resume_position or {}).get("readers") or max(self.num_workers, 1)
        hp = self.hparams  # ChunkOrder's fields, in order
        fields = (hp.seed, world_size(), rank(), self.batch_size, hp.chunk_window, readers)
        return ChunkOrder(self.train_set.chunk_of, *fields)

    # --- the stream of batches a checkpoint belongs to ---------------------------------------
    def stream(self) -> dict[str, Any]:
        """What decides the training batches and their augmentations: a resume must match it."""
        return stream_of(self)

    def state_dict(self) -> dict[str, Any]:
        position = self._train_loader.state_dict() if self._train_loader is not None else None
        return {"stream": self.stream(), "views": self.views_made(), "position": position}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Refuse a resume whose batches would differ (``stream``), log a change in how they are
        made, keep the position in the epoch for the loader (Lightning restores a loader's state
        only inside an epoch). Outside ``fit`` no training batch is drawn: nothing to check."""
        if self.trainer is not None and self.trainer.state.fn != "fit":
            return
        self._resume_position = state.get("position")
        where = self.trainer.ckpt_path if self.trainer is not None else None
        refuse_changed(state.get("stream", {}), self.stream(), where)
        views, made = state.get("views", {}), self.views_made()
        for key in [k for k in views if k in made and views[k] != made[k]]:
            rank_zero_info(
                f"MINCDataModule: resuming with {key} {made[key]!r} instead of the checkpoint's "
                f"{views[key]!r} (the batches and their augmentations are the same)"
            )

    def views_made(self) -> dict[str, Any]:
        """Settings that change how fast the batches are made, not which they are."""
        return {"data.num_workers": self.num_workers, "data.augment_on": self.views_on()}

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """Make the device-side views (``augment_on="device"``) or normalise the loader's uint8
        views, on the device the Trainer moved them to (validation batches are float already
        and pass through). Outside a Trainer, call it on each batch of ``train_dataloader()``:
        ``dm.on_after_batch_transfer(batch, 0)``."""
        trainer = self.trainer
        if trainer is not None and trainer.training and self._train_loader is not None:
            self._train_loader.mark_trained()  # once per batch that reaches the model
        return finish_batch(batch, self.recipes, self.shift, self.scale)

    def val_dataloader(self) -> DataLoader | list:
        return self._loader(self.val_set, train=False) if self.val_set is not None else []

    predict_dataloader = val_dataloader

    def eval_dataloader(
        self, split: Literal["train", "val"], limit: int | None = None
    ) -> DataLoader:
        """A split under the deterministic eval transform, in order (for offline evaluation);
        ``limit``: at most that many of its images, a fixed seeded subset."""
        n = self.hparams.train_subset if split == "train" else self.hparams.val_subset
        dataset = self.build(split, self.eval_transform)
        if dataset is None:
            raise MissingPath(f"{self.dataset} at {self.root} has no {split} split")
        return self._loader(subset(dataset, n if limit is None else min(n or limit, limit)), False)


def saved_settings(hparams: Mapping[str, Any]) -> dict[str, Any]:
    """A data module's saved hyper-parameters as the arguments that build it again: less the
    CLI's bookkeeping (``_instantiator``) and the training views' config (``augmentation``, a
    class path and init args: it names the run, but the rebuilt module is handed no object and
    makes its preset's views; pass ``augmentation=`` to train on the same ones)."""
    return {k: v for k, v in hparams.items() if not k.startswith("_") and k != "augmentation"}


def count_classes(classes: list[str], root: Any) -> int:
    """The classes' count; the online probe needs at least 2."""
    if len(classes) == 1:
        raise BadInput(
            f"data.root {root} holds 1 class folder ({classes[0]}): the online linear probe "
            "needs at least 2 classes. Lay the images out as root/<class>/<image>, one folder "
            "per class."
        )
    return len(classes)


def entry_of(dataset: str, root: str | None) -> DatasetEntry:
    """The table's entry of ``dataset``; for shards, the prepared dataset's (its manifest's)."""
    if DATASETS[dataset].needs_root and root is None:
        raise BadInput(f"MINCDataModule: dataset {dataset!r} needs data.root")
    return shard_entry(str(root)) if dataset == "streaming" else DATASETS[dataset]


def check_views(augmentation: Any, local_views: int, local_size: int, image_size: int) -> None:
    """Local views are the smaller crops; a user's augmentation has the views the batch needs."""
    if local_views and local_size > image_size:
        raise BadInput(
            f"MINCDataModule: local_size must be at most image_size ({image_size}), "
            f"got {local_size}: local views are the smaller crops"
        )
    if augmentation is not None:
        check_view_sizes(list(augmentation.transforms), local_views)


def check_one_batch(dm: MINCDataModule, processes: int) -> None:
    """With ``drop_last``, the training set holds at least one batch on every process."""
    if dm.drop_last and len(dm.train_set) < dm.batch_size * processes:
        raise BadInput(
            f"The {dm.dataset} training set has {len(dm.train_set)} images, fewer than one batch "
            f"(batch_size {dm.batch_size} × {processes} processes); lower data.batch_size or add "
            "images."
        )


def stream_of(dm: MINCDataModule) -> dict[str, Any]:
    """``MINCDataModule.stream``: the settings each batch and augmentation follow from."""
    trainer, hp = dm.trainer, dm.hparams
    shards = {"data.order": dm.order, "data.chunk_window": hp.chunk_window}
    return {
        "data.dataset": dm.dataset,
        "training images (data.root's contents)": len(dm.train_set or ()),
        "data.seed": hp.seed,
        "data.train_subset": hp.train_subset,
        "data.batch_size (per device)": dm.batch_size,
        "data.local_views": dm.local_views,
        "data.drop_last": dm.drop_last,
        "trainer.accumulate_grad_batches": trainer.accumulate_grad_batches if trainer else 1,
        "processes (devices × nodes)": trainer.world_size if trainer else 1,
    } | (shards if dm.dataset == "streaming" else {})


def subset(dataset: Dataset | None, n: int | None) -> Dataset | None:
    """``train_subset``'s (or ``val_subset``'s) fixed random ``n`` images of ``dataset``."""
    indices = None if dataset is None else subset_indices(len(dataset), n)
    if indices is None:
        return dataset
    if isinstance(dataset, ShardImages):
        return dataset.subset(list(indices))
    return Subset(dataset, list(indices))


def refuse_changed(before: dict[str, Any], now: dict[str, Any], checkpoint: Any) -> None:
    """Refuse a resume whose stream of batches differs from the checkpoint's, naming each
    setting and both values."""
    changed = [k for k in before if k in now and before[k] != now[k]]
    if changed:
        lines = [f"{k}: {before[k]!r} there, {now[k]!r} here" for k in changed]
        raise resume_refused(checkpoint, lines)
