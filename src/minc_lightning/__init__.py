"""minc-lightning: the MINC loss (Guo et al., AISTATS 2025) as a PyTorch Lightning plug-in."""

from minc_lightning.backbones import ConvNet, ResNet
from minc_lightning.data import MINCDataModule
from minc_lightning.diagnostics import effective_rank, embedding_std, lambda_diagnostics
from minc_lightning.loss import (
    BYOLLoss,
    MINCLoss,
    SpectralContrastiveLoss,
    byol_loss,
    minc_loss,
    spectral_contrastive_loss,
)
from minc_lightning.module import MINCModule

__all__ = [
    "BYOLLoss",
    "ConvNet",
    "MINCDataModule",
    "MINCLoss",
    "MINCModule",
    "ResNet",
    "SpectralContrastiveLoss",
    "byol_loss",
    "effective_rank",
    "embedding_std",
    "lambda_diagnostics",
    "minc_loss",
    "spectral_contrastive_loss",
]
__version__ = "0.1.0"
