"""Two gloo processes train one step on Fashion-MNIST files with ``augment_on="device"``; each
saves the augmentation parameters of its first batch (one file per process).

    python tests/ddp_augment_script.py DATA_DIR OUT_DIR [LOCAL_VIEWS]
"""

import sys
from pathlib import Path

import torch
from helpers import tiny_module, trainer

from minc_lightning.data import MINCDataModule


class Recording(MINCDataModule):
    def on_after_batch_transfer(self, batch, dataloader_idx):
        if not hasattr(self, "first"):
            self.first = batch[0].params.clone()
            rank = self.trainer.global_rank
            torch.save(self.first, Path(sys.argv[2]) / f"rank{rank}.pt")
        return super().on_after_batch_transfer(batch, dataloader_idx)


def main() -> None:
    local_views = int(sys.argv[3]) if len(sys.argv) > 3 else 0
    data = Recording(
        "fashion_mnist",
        sys.argv[1],
        batch_size=4,
        num_workers=0,
        augment_on="device",
        val_subset=4,
        local_views=local_views,
    )
    fit = trainer(devices=2, strategy="ddp", max_steps=1, limit_val_batches=0)
    fit.fit(tiny_module(batch_size=4, num_classes=10, local_views=local_views), data)


if __name__ == "__main__":
    main()
