"""Offline evaluation of a checkpoint's frozen backbone: weighted kNN and linear classification.

    minc-lightning-eval knn --ckpt runs/quickstart/checkpoints/last.ckpt
    minc-lightning-eval linear --ckpt ... --network target

Features come from the backbone in eval mode (batch-norm running statistics, no dropout) on the
deterministic eval transform of both splits, so no augmentation leaks into the evaluation. The
online (student) backbone is evaluated by default; ``--network target`` takes the EMA target's.
"""

from __future__ import annotations

import math
from dataclasses import astuple, dataclass
from functools import partial
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
from lightly.utils.benchmarking.knn import knn_predict
from lightning.pytorch.utilities import rank_zero_info
from torch import Tensor, nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from minc_lightning.checkpoints import incompatibility, load_checkpoint
from minc_lightning.checks import check, non_negative_int, one_of, positive, positive_int
from minc_lightning.data import MINCDataModule
from minc_lightning.module import MINCModule

Network = Literal["online", "target"]


def model_from_checkpoint(
    path: str | Path, backbone: nn.Module | None = None, ckpt: dict | None = None
) -> MINCModule:
    """Rebuild MINCModule from a checkpoint (its saved config, or ``backbone`` when the module was
    built in Python) with a clear error when the weights do not fit that config. ``ckpt``: the
    checkpoint already loaded from ``path``."""
    ckpt = load_checkpoint(path) if ckpt is None else ckpt
    hparams = dict(ckpt["hyper_parameters"])
    hparams.pop("_instantiator", None)
    hparams.pop("_class_path", None)
    if backbone is not None:
        hparams["backbone"] = backbone
    elif isinstance(hparams.get("backbone"), dict):
        from jsonargparse import ArgumentParser

        parser = ArgumentParser()
        parser.add_argument("--backbone", type=nn.Module)
        cfg = parser.parse_object({"backbone": hparams["backbone"]})
        hparams["backbone"] = parser.instantiate_classes(cfg).backbone
    model = MINCModule(**hparams)
    if error := incompatibility(model.state_dict(), ckpt["state_dict"]):
        raise ValueError(f"{path}: {error}")
    model.load_state_dict(ckpt["state_dict"])
    return model


@torch.no_grad()
def extract_features(
    backbone: nn.Module,
    loader: DataLoader,
    device: torch.device,
    desc: str = "features",
    progress: bool = True,
) -> tuple[Tensor, Tensor]:
    """Backbone features (N, F) and labels (N,) of a loader, in eval mode."""
    was_training = backbone.training
    backbone.eval().to(device)
    feats, labels = [], []
    for x, y in tqdm(loader, desc=desc, leave=False, disable=not progress):
        feats.append(backbone(x.to(device)).float().cpu())
        labels.append(y)
    backbone.train(was_training)
    return torch.cat(feats), torch.cat(labels)


def topk_accuracy(ranked: Tensor, labels: Tensor, k: int) -> float:
    """Fraction of rows whose label is among the first ``k`` ranked classes."""
    return (ranked[:, :k] == labels[:, None]).any(dim=1).float().mean().item()


def knn_accuracy(
    train_feats: Tensor,
    train_labels: Tensor,
    test_feats: Tensor,
    test_labels: Tensor,
    num_classes: int,
    k: int = 200,
    temperature: float = 0.1,
    chunk: int = 1024,
) -> dict[str, float]:
    """Weighted kNN (Wu et al. 2018) on cosine similarity: top-1 and top-5 accuracy."""
    bank = F.normalize(train_feats, dim=1).T.contiguous()  # (F, N)
    k = min(k, train_feats.shape[0])
    ranked = torch.cat(
        [
            knn_predict(F.normalize(q, dim=1), bank, train_labels, num_classes, k, temperature)
            for q in test_feats.split(chunk)
        ]
    )
    return {
        "top1": topk_accuracy(ranked, test_labels, 1),
        "top5": topk_accuracy(ranked, test_labels, min(5, num_classes)),
    }


def linear_accuracy(
    train_feats: Tensor,
    train_labels: Tensor,
    test_feats: Tensor,
    test_labels: Tensor,
    num_classes: int,
    epochs: int = 100,
    lr: float = 0.1,
    batch_size: int = 256,
    seed: int = 0,
) -> dict[str, float]:
    """A linear classifier trained on frozen (standardised) features with SGD + cosine decay."""
    torch.manual_seed(seed)
    mean, std = train_feats.mean(0), train_feats.std(0).clamp_min(1e-6)
    xtr, xte = (train_feats - mean) / std, (test_feats - mean) / std
    head = nn.Linear(xtr.shape[1], num_classes)
    opt = torch.optim.SGD(head.parameters(), lr=lr, momentum=0.9)
    steps = epochs * math.ceil(len(xtr) / batch_size)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    for _ in tqdm(range(epochs), desc="linear", leave=False):
        for idx in torch.randperm(len(xtr)).split(batch_size):
            loss = F.cross_entropy(head(xtr[idx]), train_labels[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    with torch.no_grad():
        ranked = head(xte).argsort(dim=1, descending=True)
    return {
        "top1": topk_accuracy(ranked, test_labels, 1),
        "top5": topk_accuracy(ranked, test_labels, min(5, num_classes)),
    }


class Pixels(nn.Module):
    """The baseline "backbone" that returns the image itself: (B, C, H, W) → (B, C·H·W), one
    channel only when all channels are equal (a grayscale image shown as RGB)."""

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[1] > 1 and all(torch.equal(x[:, 0], x[:, c]) for c in range(1, x.shape[1])):
            x = x[:, :1]
        return x.flatten(1)


def _features(
    ckpt: str,
    network: Network,
    random_init: bool,
    pixels: bool,
    root: str | None,
    batch_size: int,
    num_workers: int,
    device: str,
) -> tuple[Tensor, Tensor, Tensor, Tensor, int]:
    checkpoint = load_checkpoint(ckpt)  # read once: weights and data configuration
    model = model_from_checkpoint(ckpt, ckpt=checkpoint)
    if random_init:  # the same architecture, freshly initialised: the baseline to beat
        torch.manual_seed(0)
        model = reinitialise(model)
    backbone = model.target_backbone if network == "target" else model.backbone
    if pixels:  # no network at all: the raw pixels of the eval transform
        backbone = Pixels()
    data_hp = dict(checkpoint.get("datamodule_hyper_parameters", {}))
    if not data_hp:
        raise ValueError(
            f"{ckpt} has no data configuration; evaluate checkpoints of `minc-lightning fit`"
        )
    data_hp = {k: v for k, v in data_hp.items() if not k.startswith("_")}  # CLI bookkeeping
    data_hp.update(batch_size=batch_size, num_workers=num_workers)
    if root is not None:
        data_hp["root"] = root
    dm = MINCDataModule(**data_hp)
    dev = torch.device(
        "cuda"
        if device == "auto" and torch.cuda.is_available()
        else ("cpu" if device == "auto" else device)
    )
    loaders = dm.eval_dataloader("train"), dm.eval_dataloader("val")
    return split_features(backbone, *loaders, dev, dm.num_classes)


def split_features(
    backbone: nn.Module,
    train: DataLoader,
    val: DataLoader,
    device: torch.device,
    classes: int,
    progress: bool = True,
) -> tuple[Tensor, Tensor, Tensor, Tensor, int]:
    """(train features, labels, val features, labels, classes): what every score takes; the
    training split's unlabelled images (STL-10's, label -1) are left out, as they cannot vote."""
    xtr, ytr = extract_features(backbone, train, device, "train features", progress)
    xte, yte = extract_features(backbone, val, device, "val features", progress)
    labelled = ytr >= 0
    return xtr[labelled], ytr[labelled], xte, yte, classes


def reinitialise(module: nn.Module) -> nn.Module:
    """``module`` with every parameter and normalisation statistic freshly initialised (in
    place): the untrained baseline of the same architecture."""
    for child in module.modules():
        if child is not module and hasattr(child, "reset_parameters"):
            child.reset_parameters()
        if hasattr(child, "reset_running_stats"):  # batch norm: running mean and variance too
            child.reset_running_stats()
    return module


def knn(
    ckpt: str,
    network: Network = "online",
    k: int = 200,
    temperature: float = 0.1,
    random_init: bool = False,
    pixels: bool = False,
    root: str | None = None,
    batch_size: int = 256,
    num_workers: int = 4,
    device: str = "auto",
) -> dict[str, float]:
    """Weighted kNN accuracy of a checkpoint's frozen backbone on its validation split.

    Args:
        ckpt: checkpoint written by ``minc-lightning fit``.
        network: "online" (student) or "target" (EMA) backbone.
        k: neighbours; temperature: similarity temperature of the vote weights.
        random_init: evaluate the same architecture freshly initialised instead (baseline).
        pixels: evaluate the raw pixels of the eval images instead (baseline).
        root: override the data root stored in the checkpoint.
    """
    check("minc-lightning-eval knn", k=(k, positive_int), temperature=(temperature, positive))
    request = Request(ckpt, network, random_init, pixels, root, batch_size, num_workers, device)
    score = partial(knn_accuracy, k=k, temperature=temperature)
    return _evaluate("knn", f"kNN (k={k}, T={temperature}", score, request)


def linear(
    ckpt: str,
    network: Network = "online",
    epochs: int = 100,
    lr: float = 0.1,
    random_init: bool = False,
    pixels: bool = False,
    root: str | None = None,
    batch_size: int = 256,
    num_workers: int = 4,
    device: str = "auto",
) -> dict[str, float]:
    """Linear-evaluation accuracy of a checkpoint's frozen backbone on its validation split.

    Args:
        ckpt: checkpoint written by ``minc-lightning fit``.
        network: "online" (student) or "target" (EMA) backbone.
        epochs, lr: training of the linear head on frozen features.
        random_init: evaluate the same architecture freshly initialised instead (baseline).
        pixels: evaluate the raw pixels of the eval images instead (baseline).
        root: override the data root stored in the checkpoint.
    """
    check("minc-lightning-eval linear", epochs=(epochs, positive_int), lr=(lr, positive))
    request = Request(ckpt, network, random_init, pixels, root, batch_size, num_workers, device)
    score = partial(linear_accuracy, epochs=epochs, lr=lr)
    return _evaluate("linear", f"linear ({epochs} epochs", score, request)


@dataclass(frozen=True)
class Request:
    """What both evaluation commands read: which features, of which checkpoint, where."""

    ckpt: str
    network: Network
    random_init: bool
    pixels: bool
    root: str | None
    batch_size: int
    num_workers: int
    device: str


def _evaluate(command: str, label: str, score, request: Request) -> dict[str, float]:
    """Features of both splits, ``score(train_x, train_y, val_x, val_y, classes)``, a log line."""
    check(
        f"minc-lightning-eval {command}",
        network=(request.network, one_of(("online", "target"))),
        batch_size=(request.batch_size, positive_int),
        num_workers=(request.num_workers, non_negative_int),
    )
    result = score(*_features(*astuple(request)))
    what = f"{request.network} backbone{', random init' if request.random_init else ''}"
    rank_zero_info(
        f"{label}, {'raw pixels' if request.pixels else what}): top-1 "
        f"{100 * result['top1']:.2f}%, top-5 {100 * result['top5']:.2f}%"
    )
    return result


def main() -> None:
    from jsonargparse import CLI

    result = CLI([knn, linear], as_positional=False)
    print({k: round(100 * v, 2) for k, v in result.items()})
