"""Drop MINCModule into an existing Lightning project.

The project below already has its own LightningDataModule and a torchvision ResNet. Pre-training
it with MINC takes three changes, marked ★: the data module yields two augmented views per image
(lightly's BYOLTransform), the model is MINCModule around the ResNet, and Trainer.fit runs as
before. Run it:  python examples/drop_in.py --max_steps 20
"""

from __future__ import annotations

import argparse

import lightning as L
import torch
import torchvision
from lightly.transforms import BYOLTransform, BYOLView1Transform, BYOLView2Transform
from torch import nn
from torch.utils.data import DataLoader, Dataset

from minc_lightning import MINCModule


class ShapesDataset(Dataset):
    """The project's own data: small synthetic RGB images of 4 classes (a stand-in for yours)."""

    def __init__(self, n: int, transform=None) -> None:
        self.n, self.transform = n, transform

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int):
        g = torch.Generator().manual_seed(i)
        label = i % 4
        image = torch.rand(3, 32, 32, generator=g) * 0.5
        image[label % 3, 8 * label : 8 * label + 12, :] += 0.5  # a class-dependent stripe
        pil = torchvision.transforms.functional.to_pil_image(image.clamp(0, 1))
        return (self.transform(pil) if self.transform else pil), label


class ProjectDataModule(L.LightningDataModule):
    def __init__(self, batch_size: int = 32) -> None:
        super().__init__()
        self.batch_size = batch_size
        # ★ 1. two BYOL views per training image
        self.train_transform = BYOLTransform(
            BYOLView1Transform(input_size=32, gaussian_blur=0.0),
            BYOLView2Transform(input_size=32, gaussian_blur=0.0),
        )
        self.val_transform = torchvision.transforms.ToTensor()

    def train_dataloader(self) -> DataLoader:
        data = ShapesDataset(512, self.train_transform)
        return DataLoader(data, batch_size=self.batch_size, shuffle=True, drop_last=True)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(ShapesDataset(128, self.val_transform), batch_size=self.batch_size)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max_steps", type=int, default=20)
    args = parser.parse_args()

    resnet = torchvision.models.resnet18(weights=None)
    resnet.fc = nn.Identity()  # the project's ResNet, classifier removed: (B, 512) features
    # ★ 2. MINCModule wraps it; the feature width is found by a probe forward pass
    data = ProjectDataModule()
    model = MINCModule(
        backbone=resnet,
        batch_size=data.batch_size,  # the learning rate is scaled by the global batch
        projection_hidden_dim=512,
        prediction_hidden_dim=512,
        projection_dim=128,
        num_classes=4,  # online linear probe on the project's labels
        optimizer="sgd",
        lr=0.05,
        warmup_epochs=0,
    )
    # ★ 3. train as any Lightning model
    trainer = L.Trainer(
        max_steps=args.max_steps,
        accelerator="auto",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        limit_val_batches=2,
        val_check_interval=10,
    )
    trainer.fit(model, datamodule=data)
    loss = trainer.callback_metrics["train/loss"]
    print(
        f"MINC loss after {trainer.global_step} steps: {loss:.4f}; "
        f"trace of Λ: {model.criterion.second_moment.trace():.3f}"
    )


if __name__ == "__main__":
    main()
