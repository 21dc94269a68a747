"""The scoring protocols of frozen features: weighted kNN (the InstDisc protocol, lightly's
``knn_predict``) and a linear classifier on standardised features, with the features of a
loader's images taken in eval mode; and the two baselines every pre-training must beat, the raw
pixels and the same network untrained. ``minc-lightning-eval``, the online kNN callback and the
benchmarks all score with these."""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from lightly.utils.benchmarking.knn import knn_predict
from torch import Tensor, nn
from torch.utils.data import DataLoader
from tqdm import tqdm


class SplitFeatures(NamedTuple):
    """What every score takes: frozen features and labels of the training split (the bank, or
    the head's data) and of the split it is scored on, and the number of classes."""

    train: Tensor  # (N, F)
    train_labels: Tensor  # (N,)
    test: Tensor  # (M, F)
    test_labels: Tensor  # (M,)
    num_classes: int


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


def top_accuracies(ranked: Tensor, data: SplitFeatures) -> dict[str, float]:
    """Top-1 and top-5 (top-C below 5 classes) accuracy of ``ranked`` on the scored split."""
    labels, classes = data.test_labels, data.num_classes
    return {
        "top1": topk_accuracy(ranked, labels, 1),
        "top5": topk_accuracy(ranked, labels, min(5, classes)),
    }


def knn_accuracy(
    data: SplitFeatures, k: int = 200, temperature: float = 0.1, chunk: int = 1024
) -> dict[str, float]:
    """Weighted kNN (Wu et al. 2018) on cosine similarity: top-1 and top-5 accuracy."""
    bank = F.normalize(data.train, dim=1).T.contiguous()  # (F, N)
    k = min(k, data.train.shape[0])
    ranked = torch.cat(
        [
            knn_predict(
                F.normalize(q, dim=1), bank, data.train_labels, data.num_classes, k, temperature
            )
            for q in data.test.split(chunk)
        ]
    )
    return top_accuracies(ranked, data)


def linear_accuracy(
    data: SplitFeatures, epochs: int = 100, lr: float = 0.1, batch_size: int = 256, seed: int = 0
) -> dict[str, float]:
    """A linear classifier trained on frozen (standardised) features with SGD + cosine decay."""
    with torch.random.fork_rng(devices=[]):  # seeded here; the caller's state is kept
        torch.manual_seed(seed)
        mean, std = data.train.mean(0), data.train.std(0).clamp_min(1e-6)
        xtr, xte = (data.train - mean) / std, (data.test - mean) / std
        head = nn.Linear(xtr.shape[1], data.num_classes)
        opt = torch.optim.SGD(head.parameters(), lr=lr, momentum=0.9)
        steps = epochs * math.ceil(len(xtr) / batch_size)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
        for _ in tqdm(range(epochs), desc="linear", leave=False):
            for idx in torch.randperm(len(xtr)).split(batch_size):
                loss = F.cross_entropy(head(xtr[idx]), data.train_labels[idx])
                opt.zero_grad()
                loss.backward()
                opt.step()
                sched.step()
    with torch.no_grad():
        ranked = head(xte).argsort(dim=1, descending=True)
    return top_accuracies(ranked, data)


class Pixels(nn.Module):
    """The baseline "backbone" that returns the image itself: (B, C, H, W) → (B, C·H·W), one
    channel only when all channels are equal (a grayscale image shown as RGB)."""

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[1] > 1 and all(torch.equal(x[:, 0], x[:, c]) for c in range(1, x.shape[1])):
            x = x[:, :1]
        return x.flatten(1)


def split_features(
    backbone: nn.Module,
    train: DataLoader,
    val: DataLoader,
    device: torch.device,
    classes: int,
    progress: bool = True,
) -> SplitFeatures:
    """The features of both splits, scored on ``val``; the training split's unlabelled images
    (STL-10's, label -1) are left out, as they cannot vote."""
    xtr, ytr = extract_features(backbone, train, device, "train features", progress)
    xte, yte = extract_features(backbone, val, device, "val features", progress)
    labelled = ytr >= 0
    return SplitFeatures(xtr[labelled], ytr[labelled], xte, yte, classes)


def reinitialise(module: nn.Module) -> nn.Module:
    """``module`` with every parameter and normalisation statistic freshly initialised (in
    place): the untrained baseline of the same architecture."""
    for child in module.modules():
        if child is not module and hasattr(child, "reset_parameters"):
            child.reset_parameters()
        if hasattr(child, "reset_running_stats"):  # batch norm: running mean and variance too
            child.reset_running_stats()
    return module
