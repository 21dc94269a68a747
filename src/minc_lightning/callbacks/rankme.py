"""RankMe: a label-free score of a representation, for choosing runs where there are no labels."""

from __future__ import annotations

from typing import Literal

from lightning.pytorch import Callback, LightningModule, Trainer

from minc_lightning.diagnostics import rankme
from minc_lightning.errors import BadInput
from minc_lightning.loading import network_of
from minc_lightning.scoring import extract_features
from minc_lightning.validation import check, one_of, positive_int


class RankMe(Callback):
    """RankMe (Garrido et al., ICML 2023) of the backbone's features of a fixed set of images,
    logged as ``<split>/rankme`` (``val/rankme`` by default) after every ``every_n_epochs``-th
    validation: the exponential of the entropy of the features' normalised singular values, a
    smooth rank, high when the representation uses many directions. Garrido et al. find it
    ranks runs of one method the way downstream accuracy does, with no label read; a W&B sweep
    over unlabelled data maximises it (``configs/sweep.yaml``). ``docs/results.md`` measures
    where it agrees with the linear probe here, and where it does not.

    Its cost: one forward pass over at most ``max_images`` images under the eval transform, and
    the singular values of an N × F matrix (25,600 × 2,048 for a ResNet-50: a few seconds on a
    CPU), on every process alike. The images are the split's first ``max_images`` of a fixed
    seeded permutation (``data.val_subset`` applies first), the same at every evaluation.

    LiDAR (Thilak et al., ICLR 2024) is not offered: it needs many augmented views of each image
    (50 per image for its ImageNet figures), 50 forward passes for RankMe's one.

    Args:
        every_n_epochs: score after every n-th validation epoch.
        max_images: the most images scored (RankMe's authors use 25,600 for ImageNet).
        split: "val" (after each validation), or "train" (after each training epoch, for data
            with no validation split; logged as ``train/rankme``).
        network: "online" or "target" backbone.
    """

    def __init__(
        self,
        every_n_epochs: int = 1,
        max_images: int = 25_600,
        split: Literal["train", "val"] = "val",
        network: Literal["online", "target"] = "online",
    ) -> None:
        check(
            "RankMe",
            split=(split, one_of(("train", "val"))),
            network=(network, one_of(("online", "target"))),
            every_n_epochs=(every_n_epochs, positive_int),
            max_images=(max_images, positive_int),
        )
        self.every_n_epochs, self.max_images = every_n_epochs, max_images
        self.split, self.network = split, network
        self.loader = None
        self.last: float | None = None  # the latest score

    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        dm = trainer.datamodule
        if dm is None or not hasattr(dm, "eval_dataloader"):
            raise BadInput("RankMe needs a MINCDataModule (its eval_dataloader)")
        if self.split == "val" and getattr(dm, "val_set", None) is None:
            raise BadInput(
                "RankMe: the data has no validation split to score; RankMe(split='train') "
                "scores a fixed set of training images after each epoch instead"
            )
        self.loader = dm.eval_dataloader(self.split, limit=self.max_images)

    def score(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.sanity_checking or (trainer.current_epoch + 1) % self.every_n_epochs:
            return
        backbone = network_of(pl_module, self.network)
        features, _ = extract_features(backbone, self.loader, pl_module.device, progress=False)
        self.last = rankme(features)
        pl_module.log(f"{self.split}/rankme", self.last)

    def on_validation_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self.split == "val":
            self.score(trainer, pl_module)

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self.split == "train":
            self.score(trainer, pl_module)
