"""OnlineKNN: weighted kNN accuracy of the backbone during training, as ``minc-lightning-eval``."""

from __future__ import annotations

from lightning.pytorch import Callback, LightningModule, Trainer

from minc_lightning.errors import BadInput
from minc_lightning.scoring import knn_accuracy, split_features


class OnlineKNN(Callback):
    """After every ``every_n_epochs``-th validation, the weighted kNN top-1 of the online
    backbone's features on the validation split against a bank of the training split, both
    under the deterministic eval transform, logged as ``val/knn_top1``: the same features and
    the same kNN code as ``minc-lightning-eval knn``, so the two agree on a checkpoint.

    Off by default (``--trainer.callbacks+=minc_lightning.callbacks.knn.OnlineKNN``). Its cost: one
    forward pass over both splits per evaluation, and the bank in host memory, N_train × F
    float32 (ImageNet with a ResNet-50: 1.28M × 2048 × 4 B ≈ 10.5 GB; a training subset,
    ``data.train_subset``, shrinks it). Every process computes it alike. Needs
    ``MINCDataModule`` (its ``eval_dataloader``).

    Args:
        k: neighbours that vote.
        temperature: similarity temperature of the vote weights (as ``minc-lightning-eval``).
        every_n_epochs: evaluate after every n-th validation epoch.
    """

    def __init__(self, k: int = 200, temperature: float = 0.1, every_n_epochs: int = 1) -> None:
        self.k = k
        self.temperature = temperature
        self.every_n_epochs = every_n_epochs
        self.loaders: tuple | None = None

    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        dm = trainer.datamodule
        if dm is None or not hasattr(dm, "eval_dataloader"):
            raise BadInput("OnlineKNN needs a MINCDataModule (eval_dataloader of both splits)")
        self.loaders = (dm.eval_dataloader("train"), dm.eval_dataloader("val"))

    def on_validation_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.sanity_checking or (trainer.current_epoch + 1) % self.every_n_epochs:
            return
        classes = trainer.datamodule.num_classes
        features = split_features(
            pl_module.backbone, *self.loaders, pl_module.device, classes, progress=False
        )
        top1 = knn_accuracy(features, k=self.k, temperature=self.temperature)["top1"]
        pl_module.log("val/knn_top1", top1)
