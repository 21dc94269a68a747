"""Offline evaluation of a checkpoint's frozen backbone: weighted kNN and linear classification.

    minc-lightning-eval knn --ckpt runs/quickstart/checkpoints/last.ckpt
    minc-lightning-eval linear --ckpt ... --network target

Features come from the backbone in eval mode (batch-norm running statistics, no dropout) on the
deterministic eval transform of both splits, so no augmentation leaks into the evaluation. The
online (student) backbone is evaluated by default; ``--network target`` takes the EMA target's.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import TypedDict

import torch
from lightning.pytorch.utilities import rank_zero_info
from typing_extensions import Unpack  # typing's from Python 3.11

from minc_lightning.checkpoint_files import load_checkpoint
from minc_lightning.data.module import MINCDataModule, saved_settings
from minc_lightning.errors import BadCheckpoint, reports_user_errors
from minc_lightning.loading import Network, device_named, load_backbone
from minc_lightning.scoring import (
    Pixels,
    SplitFeatures,
    knn_accuracy,
    linear_accuracy,
    reinitialise,
    split_features,
)
from minc_lightning.validation import check, non_negative_int, one_of, positive, positive_int


def request_features(request: Request) -> SplitFeatures:
    """The frozen features of both splits of the checkpoint's data that ``request`` names."""
    checkpoint = load_checkpoint(request.ckpt, flag="--ckpt")  # read once: weights and data
    backbone = load_backbone(request.ckpt, request.network, flag="--ckpt", checkpoint=checkpoint)
    if request.random_init:  # the same architecture, freshly initialised: the baseline to beat
        with torch.random.fork_rng(devices=[]):  # the caller's random state is left as it was
            torch.manual_seed(0)
            backbone = reinitialise(backbone)
    if request.pixels:  # no network at all: the raw pixels of the eval transform
        backbone = Pixels()
    data_hp = dict(checkpoint.get("datamodule_hyper_parameters", {}))
    if not data_hp:
        raise BadCheckpoint(
            f"{request.ckpt} has no data configuration; evaluate checkpoints of "
            "`minc-lightning fit`"
        )
    data_hp = saved_settings(data_hp)
    data_hp.update(batch_size=request.batch_size, num_workers=request.num_workers)
    if request.root is not None:
        data_hp["root"] = request.root
    dm = MINCDataModule(**data_hp)
    loaders = dm.eval_dataloader("train"), dm.eval_dataloader("val")
    return split_features(backbone, *loaders, device_named(request.device), dm.num_classes)


class Features(TypedDict, total=False):
    """Which frozen features a protocol scores, of which network, computed where: the options
    ``knn`` and ``linear`` share (``Request``'s defaults where not given).

    Attributes:
        network: "online" (student) or "target" (EMA) backbone; default online.
        random_init: evaluate the same architecture freshly initialised instead (baseline).
        pixels: evaluate the raw pixels of the eval images instead (baseline).
        root: override the data root stored in the checkpoint.
        batch_size: images per forward pass; default 256.
        num_workers: loader processes; default 4.
        device: "auto" (a GPU when there is one; the default), "cpu", "cuda", "cuda:1", ...
    """

    network: Network
    random_init: bool
    pixels: bool
    root: str | None
    batch_size: int
    num_workers: int
    device: str


def knn(
    ckpt: str, k: int = 200, temperature: float = 0.1, **features: Unpack[Features]
) -> dict[str, float]:
    """Weighted kNN accuracy of a checkpoint's frozen backbone on its validation split.

    Args:
        ckpt: checkpoint written by ``minc-lightning fit``.
        k: neighbours that vote.
        temperature: similarity temperature of the vote weights.
    """
    check("minc-lightning-eval knn", k=(k, positive_int), temperature=(temperature, positive))
    score = partial(knn_accuracy, k=k, temperature=temperature)
    return _evaluate("knn", f"kNN (k={k}, T={temperature}", score, Request(ckpt, **features))


def linear(
    ckpt: str, epochs: int = 100, lr: float = 0.1, **features: Unpack[Features]
) -> dict[str, float]:
    """Linear-evaluation accuracy of a checkpoint's frozen backbone on its validation split.

    Args:
        ckpt: checkpoint written by ``minc-lightning fit``.
        epochs: training epochs of the linear head on frozen features.
        lr: learning rate of the linear head.
    """
    check("minc-lightning-eval linear", epochs=(epochs, positive_int), lr=(lr, positive))
    score = partial(linear_accuracy, epochs=epochs, lr=lr)
    return _evaluate("linear", f"linear ({epochs} epochs", score, Request(ckpt, **features))


@dataclass(frozen=True)
class Request:
    """What both evaluation commands read: which features (``Features``), of which checkpoint,
    where; an option it does not have is a TypeError that names it."""

    ckpt: str
    network: Network = "online"
    random_init: bool = False
    pixels: bool = False
    root: str | None = None
    batch_size: int = 256
    num_workers: int = 4
    device: str = "auto"


def _evaluate(command: str, label: str, score, request: Request) -> dict[str, float]:
    """Features of both splits, ``score`` of them, a log line."""
    check(
        f"minc-lightning-eval {command}",
        network=(request.network, one_of(("online", "target"))),
        batch_size=(request.batch_size, positive_int),
        num_workers=(request.num_workers, non_negative_int),
    )
    result = score(request_features(request))
    what = f"{request.network} backbone{', random init' if request.random_init else ''}"
    rank_zero_info(
        f"{label}, {'raw pixels' if request.pixels else what}): top-1 "
        f"{100 * result['top1']:.2f}%, top-5 {100 * result['top5']:.2f}%"
    )
    return result


@reports_user_errors("minc-lightning-eval")
def main() -> None:
    from jsonargparse import CLI

    result = CLI([knn, linear], as_positional=False)
    print({k: round(100 * v, 2) for k, v in result.items()})
