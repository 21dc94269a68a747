"""Backbones that map images (B, C, H, W) to features (B, num_features)."""

from __future__ import annotations

from typing import Any, Literal

import torch
import torchvision
from torch import Tensor, nn

from minc_lightning.errors import BadInput, MissingExtra

ResNetName = Literal["resnet18", "resnet34", "resnet50", "resnet101", "resnet152"]


class ResNet(nn.Module):
    """A randomly initialised torchvision ResNet with its classifier removed.

    Args:
        name: torchvision architecture.
        cifar_stem: replace the 7×7/2 convolution and max-pool by one 3×3/1 convolution, the usual
            stem for 32 px images (CIFAR, and what solo-learn and lightly use there).
        in_channels: input channels (3 for RGB).
        zero_init_residual: start every residual branch at zero (torchvision's option).
    """

    def __init__(
        self,
        name: ResNetName = "resnet18",
        cifar_stem: bool = False,
        in_channels: int = 3,
        zero_init_residual: bool = False,
    ) -> None:
        super().__init__()
        net = getattr(torchvision.models, name)(weights=None, zero_init_residual=zero_init_residual)
        if cifar_stem or in_channels != 3:
            kernel, stride, padding = (3, 1, 1) if cifar_stem else (7, 2, 3)
            net.conv1 = nn.Conv2d(in_channels, 64, kernel, stride, padding, bias=False)
        if cifar_stem:
            net.maxpool = nn.Identity()
        self.num_features: int = net.fc.in_features
        net.fc = nn.Identity()
        self.net = net

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class ConvNet(nn.Module):
    """A small VGG-style CNN for 28-32 px images: four 3×3 conv-BN-ReLU blocks (the last three
    with stride 2) and global average pooling. Fast enough to pre-train on a CPU.

    Args:
        in_channels: input channels.
        width: channels of the first block; they double at each stride.
    """

    def __init__(self, in_channels: int = 3, width: int = 32) -> None:
        super().__init__()
        chans = [in_channels, width, 2 * width, 4 * width, 8 * width]
        layers: list[nn.Module] = []
        for i in range(4):
            stride = 1 if i == 0 else 2
            layers += [
                nn.Conv2d(chans[i], chans[i + 1], 3, stride, 1, bias=False),
                nn.BatchNorm2d(chans[i + 1]),
                nn.ReLU(inplace=True),
            ]
        self.features = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.num_features: int = chans[-1]

    def forward(self, x: Tensor) -> Tensor:
        return self.features(x)


class Timm(nn.Module):
    """Any timm model as a feature extractor (``num_classes=0``: pooled features, no classifier),
    randomly initialised (nothing is downloaded).

    Args:
        name: a timm model name, e.g. ``"vit_small_patch16_224"`` or ``"resnet50"``.
        model_args: more arguments of ``timm.create_model`` (``img_size``, ``drop_path_rate``,
            ...); the way to give them in a config, where ``**kwargs`` cannot be checked.
        **kwargs: the same, from Python: ``Timm("vit_small_patch16_224", img_size=96)``.

    Needs the optional extra: ``pip install "minc-lightning[timm]"``.
    """

    def __init__(self, name: str, model_args: dict[str, Any] | None = None, **kwargs: Any) -> None:
        super().__init__()
        try:
            import timm
        except ImportError as err:
            raise MissingExtra(
                "minc_lightning.backbones.Timm needs timm: pip install 'minc-lightning[timm]'"
            ) from err
        args = {**(model_args or {}), **kwargs}
        self.net = timm.create_model(name, pretrained=False, num_classes=0, **args)
        self.num_features: int = self.net.num_features

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


def infer_feature_dim(backbone: nn.Module) -> int:
    """The width F of ``backbone``'s (B, F) output: its ``num_features`` attribute, or a probe
    forward pass on a small RGB image."""
    if isinstance(getattr(backbone, "num_features", None), int):
        return backbone.num_features
    was_training = backbone.training
    try:
        with torch.no_grad():
            out = backbone.eval()(torch.zeros(2, 3, 64, 64))
    except Exception as err:  # any failure means we cannot guess: ask the user
        raise BadInput(
            "MINCModule could not infer the backbone's feature width by running it on a "
            f"(2, 3, 64, 64) image ({type(err).__name__}: {err}); pass feature_dim=<F>."
        ) from err
    finally:
        backbone.train(was_training)
    if out.ndim != 2:
        raise BadInput(
            f"MINCModule: the backbone must return (B, F) features, it returned "
            f"{tuple(out.shape)}; flatten its output or pass a backbone ending in pooling."
        )
    return out.shape[1]
