"""A few training steps of two-view runs on both data paths, the record that multi-crop with
``local_views=0`` changes nothing: ``tests/data/two_view_steps.pt`` holds the weights these
steps gave before multi-crop existed (written by ``python tests/two_view_steps.py`` at the
commit before it), and ``test_multicrop.py`` trains them again and compares bit for bit."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import torch
from dataset_files import write_fashion_mnist, write_image_folder
from helpers import tiny_module, trainer

from minc_lightning.data import MINCDataModule

RECORD = Path(__file__).parent / "data" / "two_view_steps.pt"
RUNS = {  # name: (dataset, augment_on): fixed-size images and image folders (crops in the loader)
    "fashion_mnist_device": ("fashion_mnist", "device"),
    "fashion_mnist_loader": ("fashion_mnist", "loader"),
    "folder_device": ("folder", "device"),
    "folder_loader": ("folder", "loader"),
}


def train_steps(name: str, root: Path, steps: int = 3) -> dict[str, torch.Tensor]:
    """The state after ``steps`` optimizer steps of run ``name``, its data written under root."""
    dataset, augment_on = RUNS[name]
    if dataset == "fashion_mnist":
        write_fashion_mnist(root, n_train=16, n_test=4)
        classes, size = 10, None
    else:
        write_image_folder(root, ["a", "b"], per_class=8, size=20)
        classes, size = 2, 16
    dm = MINCDataModule(
        dataset, str(root), batch_size=4, num_workers=0, image_size=size, augment_on=augment_on
    )
    model = tiny_module(batch_size=4, num_classes=classes)
    trainer(max_steps=steps, limit_val_batches=0).fit(model, datamodule=dm)
    return {k: v.clone() for k, v in model.state_dict().items()}


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as folder:
        record = {name: train_steps(name, Path(folder) / name) for name in RUNS}
    torch.save(record, sys.argv[1] if len(sys.argv) > 1 else RECORD)
