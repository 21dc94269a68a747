"""What MINCModule accepts: the batch contract."""

from __future__ import annotations

from typing import Any

from torch import Tensor

from minc_lightning.errors import BadInput

BATCH_CONTRACT = (
    "a training batch is (views, labels) or (views, labels, *anything), where views is a "
    "list/tuple of float tensors (B, C, H, W): two global views of one shape, then any local "
    "views (multi-crop) of one shape, and labels a (B,) integer tensor (-1 for unlabelled "
    "images), or (views,) with no labels"
)


def describe(x: Any) -> str:
    """A short description of a nested batch, for error messages."""
    if isinstance(x, Tensor):
        return f"Tensor{tuple(x.shape)}"
    if isinstance(x, (list, tuple)):
        return f"{type(x).__name__}({', '.join(describe(v) for v in x)})"
    return type(x).__name__


def unpack_views(batch: Any) -> tuple[list[Tensor], Tensor | None]:
    """A training batch's views (the two global views first, then any local views) and its
    labels (None when it has none)."""
    views = batch[0] if isinstance(batch, (list, tuple)) and len(batch) > 0 else None
    labels = batch[1] if isinstance(batch, (list, tuple)) and len(batch) > 1 else None
    ok = (
        isinstance(views, (list, tuple))
        and len(views) >= 2
        and all(isinstance(v, Tensor) and v.ndim == 4 for v in views)
        and views[0].shape == views[1].shape
        and len({v.shape for v in views[2:]}) <= 1
        and all(len(v) == len(views[0]) for v in views)
        and (labels is None or (isinstance(labels, Tensor) and labels.shape == views[0].shape[:1]))
    )
    if not ok:
        raise BadInput(f"MINCModule: {BATCH_CONTRACT}; received {describe(batch)}")
    if not views[0].is_floating_point():
        raise BadInput(
            f"MINCModule: the views are {views[0].dtype} images; it needs normalised float ones. "
            "MINCDataModule's loader yields uint8 views and normalises them on the device in "
            "on_after_batch_transfer: pass it to the Trainer as datamodule=..., or call "
            "dm.on_after_batch_transfer(batch, 0) yourself."
        )
    return list(views), labels
