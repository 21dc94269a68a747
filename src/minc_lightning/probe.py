"""The online linear probe: a linear classifier on detached backbone features
(docs/method.md §4)."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn
from torchmetrics.classification import MulticlassAccuracy


class OnlineProbe(nn.Module):
    """Linear classifier of frozen features with torchmetrics top-1 / top-5 accuracy. Label -1
    marks an unlabelled image: it is left out of the loss and the metrics."""

    def __init__(self, feature_dim: int, num_classes: int) -> None:
        super().__init__()
        self.linear = nn.Linear(feature_dim, num_classes)
        self.top1 = MulticlassAccuracy(num_classes, top_k=1)
        self.top5 = MulticlassAccuracy(num_classes, top_k=min(5, num_classes))

    def loss(self, feats: Tensor, labels: Tensor) -> tuple[Tensor, int]:
        """Cross-entropy over the labelled rows, and their number. Always runs the linear layer,
        so every process touches its parameters (DDP needs that)."""
        mask = labels >= 0
        total = F.cross_entropy(self.linear(feats), labels.clamp_min(0), reduction="none")
        return (total * mask).sum() / mask.sum().clamp_min(1), int(mask.sum())

    def update(self, feats: Tensor, labels: Tensor) -> None:
        """Accumulate the accuracy of the labelled rows."""
        mask = labels >= 0
        logits = self.linear(feats)[mask]
        self.top1(logits, labels[mask])
        self.top5(logits, labels[mask])
