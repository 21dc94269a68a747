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

import signal
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import torch
import torchvision.transforms as T
import torchvision.transforms.v2 as T2
from lightly.transforms import BYOLView1Transform, BYOLView2Transform
from lightly.transforms import ToTensor as LightlyToTensor
from lightly.transforms.multi_view_transform import MultiViewTransform
from lightning.pytorch import LightningDataModule
from lightning.pytorch.utilities import rank_zero_info
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Subset

from minc_lightning._distributed import rank, world_size
from minc_lightning.arguments import check, non_negative_int, one_of, optional, positive_int
from minc_lightning.checkpoint_io import resume_refused
from minc_lightning.data.augment import DeviceViews, LoaderViews, ViewRecipe, augment_batch
from minc_lightning.data.presets import DATASETS, PRESETS, Preset, Source, shard_entry
from minc_lightning.data.sampling import ChunkOrder, ResumableLoader, SeededDataset, SeededSampler
from minc_lightning.data.shards import ShardImages, written_order
from minc_lightning.errors import BadInput, MissingPath

__all__ = [
    "DATASETS",
    "PRESETS",
    "MINCDataModule",
    "default_augmentation",
    "default_views",
    "uint8_output",
]

# Where the views are made when training on the CPU (GPU: "device"); see README, "Augmentation
# on the device", for the measurement (benchmarks/data_throughput.py) that chose it.
CPU_AUGMENT_ON = "device"


def uint8_output(view: BYOLView1Transform | BYOLView2Transform) -> T.Compose:
    """lightly's view transform, ending in a uint8 tensor instead of a float one (the same
    augmentations, the same random draws): a quarter of the bytes to collate, pin and copy, and
    no float image per sample. Reads the view's public torchvision ``Compose``; lightly has no
    option for integer output (the public API that is missing)."""
    steps = view.transform.transforms
    if not isinstance(steps[-1], LightlyToTensor):  # lightly changed its transform: fail loudly
        raise RuntimeError(f"expected lightly's view transform to end in ToTensor: {steps}")
    return T.Compose([*steps[:-1], T.PILToTensor()])


def default_views(
    preset: Preset,
    image_size: int,
    local_views: int = 0,
    local_size: int | None = None,
    local_scale: tuple[float, float] | None = None,
) -> tuple[BYOLView1Transform | BYOLView2Transform, ...]:
    """BYOL's two asymmetric views with the preset's settings and lightly's other defaults,
    then ``local_views`` local views (multi-crop): BYOL's second view's colour jitter, blur and
    solarisation with their own crop, ``local_size`` px over ``local_scale`` of the image (None:
    the preset's)."""
    common = dict(
        cj_strength=preset.cj_strength,
        normalize=None,  # on whole batches, on the device: on_after_batch_transfer
    )
    blur, solarize = preset.gaussian_blur, preset.solarization_prob
    view_1 = BYOLView1Transform(
        **common,
        input_size=image_size,
        min_scale=preset.min_scale,
        gaussian_blur=blur[0],
        solarization_prob=solarize[0],
    )
    view_2 = BYOLView2Transform(
        **common,
        input_size=image_size,
        min_scale=preset.min_scale,
        gaussian_blur=blur[1],
        solarization_prob=solarize[1],
    )
    if not local_views:
        return view_1, view_2
    size = local_size or local_size_for(preset, image_size)
    scale = tuple(local_scale or preset.local_scale)
    local = BYOLView2Transform(
        **common,
        input_size=size,
        min_scale=scale[0],
        gaussian_blur=blur[1],
        solarization_prob=solarize[1],
    )
    # lightly's views crop over (min_scale, 1) and have no upper bound: the local view's crop
    # is the same class over the local scale
    steps = local.transform.transforms
    if not hasattr(steps[0], "scale"):  # lightly changed its transform: fail loudly
        raise RuntimeError(f"expected lightly's view transform to start with its crop: {steps}")
    local.transform = type(local.transform)([type(steps[0])(size, scale=scale), *steps[1:]])
    return (view_1, view_2, *[local] * local_views)


def local_size_for(preset: Preset, image_size: int) -> int:
    """The preset's local size at ``image_size``, in the preset's ratio to its image size
    (ImageNet's 96/224 where the preset gives none)."""
    side = preset.local_size or preset.image_size * 96 / 224
    return max(1, round(side * image_size / preset.image_size))


def default_augmentation(
    preset: Preset,
    image_size: int,
    local_views: int = 0,
    local_size: int | None = None,
    local_scale: tuple[float, float] | None = None,
) -> MultiViewTransform:
    """The loader path's transform: ``default_views`` yielding uint8."""
    views = default_views(preset, image_size, local_views, local_size, local_scale)
    return MultiViewTransform([uint8_output(v) for v in views])


def crop_size(view: Any) -> tuple[int, int] | None:
    """The output size of a view transform's random resized crop, where it has one to read."""
    steps = getattr(getattr(view, "transform", view), "transforms", ())
    sizes = [
        tuple(s.size) for s in steps if isinstance(s, (T.RandomResizedCrop, T2.RandomResizedCrop))
    ]
    return sizes[0] if sizes else None


def check_view_sizes(views: list[Any], local_views: int) -> None:
    """A user's augmentation has 2 + ``local_views`` views: two global views of one size, then
    the local views, of one size."""
    if len(views) != 2 + local_views:
        raise BadInput(
            f"MINCDataModule: the augmentation makes {len(views)} views, but local_views is "
            f"{local_views}: a training batch is two global views and local_views local ones; "
            f"set data.local_views={max(len(views) - 2, 0)}"
            + (" (the augmentation needs at least two views)" if len(views) < 2 else "")
        )
    sizes = [crop_size(v) for v in views]
    if None in sizes:
        return  # sizes not readable here; MINCModule checks the batch's shapes
    if sizes[0] != sizes[1] or len(set(sizes[2:])) > 1:
        raise BadInput(
            f"MINCDataModule: the augmentation's views crop to {sizes}; the first two (the "
            "global views) must share one size, and the local views after them another"
        )


def subset_indices(size: int, n: int | None) -> tuple[int, ...] | None:
    """The fixed random subset of ``n`` of ``size`` images that ``train_subset`` and
    ``val_subset`` take, in its order (None: all of them). ``minc-lightning-prepare
    --train_subset`` writes the same one."""
    if n is None or n >= size:
        return None
    return tuple(written_order(size, n).tolist())


def ignore_stop_signals(worker_id: int) -> None:
    """Loader workers ignore SIGTERM and SIGUSR1. A scheduler signals the whole process group;
    a worker that died of it would fail the training process before it writes the checkpoint
    the signal asks for. The workers end with their training process."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGUSR1, signal.SIG_IGN)


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
            streaming (shards written by ``minc-lightning-prepare``, with the prepared
            dataset's preset).
        root: where the data lives (ImageNet: ``root/{train,val}/<wnid>/*.JPEG``; folder:
            ``root/train/<class>/*`` and optionally ``root/val/<class>/*``, or ``root/<class>/*``;
            streaming: the prepared folder or ``s3://bucket/prefix``, its endpoint from
            ``AWS_ENDPOINT_URL`` and its credentials found by boto3; huggingface: a
            ``save_to_disk`` folder, a folder of parquet files or a Hub name). Fashion-MNIST is
            also looked for in Debian's ``dataset-fashion-mnist`` location.
        batch_size: per process.
        num_workers: loader processes per training process.
        image_size: crop size of the views and the eval images (None: the dataset's preset).
        augmentation: the two-view transform, e.g. lightly's ``BYOLTransform`` with its own
            views (None: BYOL's views with the dataset's preset, yielding uint8). Views it
            returns as uint8 are normalised on the device; float views are used as they are.
            With ``augment_on="device"`` its views' parameters are read and applied on the
            device instead.
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
        local_views: multi-crop: this many local views per image after the two global ones, so
            that a training batch is ``([global_1, global_2, local_1, ..., local_N], labels)``.
            They use BYOL's second view's colour jitter, blur and solarisation with their own
            crop. 0: the two views alone. ``MINCModule(local_views=...)`` must match (the CLI
            links it).
        local_size: the local views' side in px (None: the preset's, e.g. 96 for ImageNet); at
            most ``image_size``.
        local_scale: the local crops' (low, high) fraction of the image's area (None: the
            preset's, e.g. (0.05, 0.14) for ImageNet).
        order: shards only. "chunks" (their default): each epoch permutes the chunks, deals
            them out to the processes and loader workers, and shuffles the records within
            windows of ``chunk_window`` chunks, so each worker reads whole chunks, downloaded
            ahead of use (``sampling.ChunkOrder``). "global": one permutation of all records,
            as files are read (shards then train exactly as their source files do). None:
            "chunks" for shards, "global" otherwise.
        chunk_window: chunks whose records are shuffled together (order "chunks").
        cache_bytes: shards in object storage: the most bytes of chunks each reader (loader
            worker, or the process without workers) holds on local disk (None: 12 of the
            largest chunk). At least one chunk; ``chunk_window`` + 2 chunks let downloads run
            ahead of reading.
        image_column: huggingface only: the column of images (``datasets.Image``, bytes or
            paths).
        label_column: huggingface only: the column of labels (ClassLabel or integers); None
            for unlabelled images (no online probe).
        train_split: huggingface only: the split to train on.
        val_split: huggingface only: the split to validate on (None, or a dataset without it:
            no validation).
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
        self.save_hyperparameters(ignore=["augmentation"])
        check_arguments(self.hparams)
        entry = DATASETS[dataset]
        if entry.needs_root and root is None:
            raise BadInput(f"MINCDataModule: dataset {dataset!r} needs data.root")
        if dataset == "streaming":  # the prepared dataset's preset and classes
            entry = shard_entry(str(root))
        self.dataset = dataset
        self.entry = entry
        self.preset = entry.preset
        # a folder, or (shards) s3://bucket/prefix, which is not a path
        self.root = Path(root).expanduser() if root and "://" not in str(root) else root
        self.source = Source(
            self.root, download, on_corrupt, image_column, label_column, train_split, val_split
        )
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.drop_last = drop_last
        self.pin_memory = torch.cuda.is_available() if pin_memory is None else pin_memory
        self.image_size = image_size or self.preset.image_size
        self.local_views = local_views
        self.local_size = local_size or local_size_for(self.preset, self.image_size)
        self.local_scale = tuple(local_scale or self.preset.local_scale)
        if local_views and self.local_size > self.image_size:
            raise BadInput(
                f"MINCDataModule: local_size must be at most image_size ({self.image_size}), "
                f"got {self.local_size}: local views are the smaller crops"
            )
        if augmentation is not None:
            check_view_sizes(list(augmentation.transforms), local_views)
        self.augmentation = augmentation
        self.augment_on = augment_on
        self.order = order or ("chunks" if dataset == "streaming" else "global")
        self.eval_transform = self.build_eval_transform(eval_resize)
        # uint8 → float, minus mean, over std in one pass: (x - 255 m) / (255 s)
        self.shift = 255 * torch.tensor(self.preset.stats[0]).view(1, -1, 1, 1)
        self.scale = 255 * torch.tensor(self.preset.stats[1]).view(1, -1, 1, 1)
        self.train_set: Dataset | None = None
        self.val_set: Dataset | None = None
        self._train_loader: ResumableLoader | None = None
        self._resume_position: dict[str, int] | None = None

    def build_eval_transform(self, eval_resize: int | None) -> T.Compose:
        """Resize, centre crop and normalise; the resize keeps the preset's ratio to the crop."""
        preset = self.preset
        resize = eval_resize or round(self.image_size * preset.eval_resize / preset.image_size)
        return T.Compose(
            [
                T.Resize(resize),
                T.CenterCrop(self.image_size),
                T.ToTensor(),
                T.Normalize(*preset.stats),
            ]
        )

    # --- what the data is --------------------------------------------------------------------
    @property
    def num_classes(self) -> int:
        """Number of label classes (read from the training folder for ``dataset="folder"``)."""
        if self.entry.classes is None:
            return self.preset.num_classes
        classes = self.entry.classes(self.source)
        if len(classes) == 1:
            raise BadInput(
                f"data.root {self.root} holds 1 class folder ({classes[0]}): the online linear "
                "probe needs at least 2 classes. Lay the images out as root/<class>/<image>, "
                "one folder per class."
            )
        return len(classes)

    def build(self, split: Literal["train", "val"], transform) -> Dataset | None:
        """The dataset of a split under ``transform`` (None: no validation split)."""
        return self.entry.read(self.source, split, transform)

    def _subset(self, dataset: Dataset | None, n: int | None) -> Dataset | None:
        if isinstance(dataset, ShardImages):
            dataset.cache_bytes = self.hparams.cache_bytes
            if self.hparams.cache_bytes and self.hparams.cache_bytes < dataset.largest_chunk:
                raise BadInput(
                    f"MINCDataModule: cache_bytes {self.hparams.cache_bytes} cannot hold one "
                    f"chunk of {dataset.url} ({dataset.largest_chunk} bytes): raise "
                    f"data.cache_bytes to {dataset.largest_chunk} or more, better "
                    f"{(self.hparams.chunk_window + 2) * dataset.largest_chunk} (chunk_window "
                    "+ 2 chunks)"
                )
        indices = None if dataset is None else subset_indices(len(dataset), n)
        if indices is None:
            return dataset
        if isinstance(dataset, ShardImages):
            return dataset.subset(list(indices))
        return Subset(dataset, list(indices))

    @property
    def train_transform(self) -> MultiViewTransform | LoaderViews:
        """The loader's transform of a training image under the resolved ``augment_on``."""
        if self.resolve_augment_on() == "loader":
            return self.augmentation or default_augmentation(self.preset, *self.view_sizes)
        return LoaderViews(self.recipes, crop=self.entry.varied_sizes)

    @property
    def view_sizes(self) -> tuple[int, int, int, tuple[float, float]]:
        """(image_size, local_views, local_size, local_scale): what ``default_views`` reads."""
        return self.image_size, self.local_views, self.local_size, self.local_scale

    @cached_property
    def recipes(self) -> tuple[ViewRecipe, ...]:
        """Each view's augmentation as ``augment_on="device"`` applies it, read from the
        augmentation's views (or the preset's)."""
        views = (
            self.augmentation.transforms
            if self.augmentation is not None
            else default_views(self.preset, *self.view_sizes)
        )
        return tuple(ViewRecipe.of(v) for v in views)

    def resolve_augment_on(self) -> Literal["device", "loader"]:
        """``augment_on``, or where the attached Trainer trains: "device" on a GPU."""
        if self.augment_on is None:
            on_gpu = self.trainer is not None and self.trainer.strategy.root_device.type != "cpu"
            self.augment_on = "device" if on_gpu else CPU_AUGMENT_ON
        return self.augment_on

    # --- Lightning hooks ---------------------------------------------------------------------
    def setup(self, stage: str | None = None) -> None:
        if self.train_set is None and stage in (None, "fit"):
            train = self.build("train", self.train_transform)
            if isinstance(train, ShardImages) and self.order == "global":
                # as the files are read: image i is the source's i, one request per record
                train = train.in_source_order().per_record()
            self.train_set = self._subset(train, self.hparams.train_subset)
            where = {"loader": "in the loader", "device": "on the device"}
            rank_zero_info(f"MINCDataModule: views made {where[self.resolve_augment_on()]}")
            processes = self.trainer.world_size if self.trainer else 1
            if self.drop_last and len(self.train_set) < self.batch_size * processes:
                raise BadInput(
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
        return ChunkOrder(
            self.train_set.chunk_of,
            seed=self.hparams.seed,
            world=world_size(),
            rank=rank(),
            batch_size=self.batch_size,
            window=self.hparams.chunk_window,
            readers=readers,
        )

    # --- the stream of batches a checkpoint belongs to ---------------------------------------
    def stream(self) -> dict[str, Any]:
        """What decides the sequence of training batches and their augmentations: a resume that
        differs in any of it would train other batches than the interrupted run, and is refused.
        """
        trainer = self.trainer
        return {
            "data.dataset": self.dataset,
            "training images (data.root's contents)": len(self.train_set or ()),
            "data.seed": self.hparams.seed,
            "data.train_subset": self.hparams.train_subset,
            "data.batch_size (per device)": self.batch_size,
            "data.local_views": self.local_views,
            "data.drop_last": self.drop_last,
            "trainer.accumulate_grad_batches": trainer.accumulate_grad_batches if trainer else 1,
            "processes (devices × nodes)": trainer.world_size if trainer else 1,
        } | (
            {"data.order": self.order, "data.chunk_window": self.hparams.chunk_window}
            if self.dataset == "streaming"
            else {}
        )

    def state_dict(self) -> dict[str, Any]:
        position = self._train_loader.state_dict() if self._train_loader is not None else None
        return {"stream": self.stream(), "views": self.views_made(), "position": position}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Refuse, before training, a resume whose batches would differ from the checkpoint's
        (naming each key and both values); log what differs without changing them; keep the
        position in the epoch for the loader. (Lightning restores a loader's own state only
        when it resumes inside an epoch, not from a checkpoint written at the epoch's end.)
        Outside ``fit`` (``validate`` from a checkpoint) no training batch is drawn: nothing to
        keep or check."""
        if self.trainer is not None and self.trainer.state.fn != "fit":
            return
        self._resume_position = state.get("position")
        before, now = state.get("stream", {}), self.stream()
        changed = [k for k in before if k in now and before[k] != now[k]]
        if changed:
            where = self.trainer.ckpt_path if self.trainer is not None else None
            raise resume_refused(
                where, [f"{k}: {before[k]!r} there, {now[k]!r} here" for k in changed]
            )
        views, made = state.get("views", {}), self.views_made()
        for key in [k for k in views if k in made and views[k] != made[k]]:
            rank_zero_info(
                f"MINCDataModule: resuming with {key} {made[key]!r} instead of the checkpoint's "
                f"{views[key]!r} (the batches and their augmentations are the same)"
            )

    def views_made(self) -> dict[str, Any]:
        """Settings that change how fast the batches are made, not which they are."""
        return {"data.num_workers": self.num_workers, "data.augment_on": self.augment_on}

    def normalize(self, images: Tensor) -> Tensor:
        """Images (B, C, H, W), uint8 or float in [0, 1], as float32 normalised with the
        dataset's mean and std."""
        shift, scale = self.shift.to(images.device), self.scale.to(images.device)
        images = images.float() if images.dtype == torch.uint8 else images.mul(255)
        return images.sub_(shift).div_(scale)

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """Make the device-side views (``augment_on="device"``) or normalise the loader's uint8
        views, on the device the Trainer moved them to (validation batches are float already
        and pass through). Outside a Trainer, call it on each batch of ``train_dataloader()``:
        ``dm.on_after_batch_transfer(batch, 0)``."""
        trainer = self.trainer
        if trainer is not None and trainer.training and self._train_loader is not None:
            self._train_loader.mark_trained()  # once per batch that reaches the model
        views = batch[0] if isinstance(batch, (list, tuple)) and batch else None
        if isinstance(views, DeviceViews):
            made = augment_batch(views, self.recipes)
            return type(batch)([[self.normalize(v) for v in made], *batch[1:]])
        if isinstance(views, (list, tuple)) and all(
            isinstance(v, Tensor) and v.dtype == torch.uint8 for v in views
        ):
            batch = type(batch)([type(views)(self.normalize(v) for v in views), *batch[1:]])
        return batch

    def val_dataloader(self) -> DataLoader | list:
        return self._loader(self.val_set, train=False) if self.val_set is not None else []

    def predict_dataloader(self) -> DataLoader | list:
        return self.val_dataloader()

    def eval_dataloader(
        self, split: Literal["train", "val"], limit: int | None = None
    ) -> DataLoader:
        """A split under the deterministic eval transform, in order (for offline evaluation);
        ``limit``: at most that many of its images, a fixed seeded subset."""
        subset = self.hparams.train_subset if split == "train" else self.hparams.val_subset
        if limit is not None:
            subset = min(subset or limit, limit)
        dataset = self.build(split, self.eval_transform)
        if dataset is None:
            raise MissingPath(f"{self.dataset} at {self.root} has no {split} split")
        return self._loader(self._subset(dataset, subset), train=False)
