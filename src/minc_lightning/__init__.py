"""minc-lightning: the MINC loss (Guo et al., AISTATS 2025) as a PyTorch Lightning plug-in."""

from minc_lightning.backbones import ConvNet, ResNet
from minc_lightning.baselines import (
    BYOLLoss,
    SpectralContrastiveLoss,
    byol_loss,
    spectral_contrastive_loss,
)
from minc_lightning.data import MINCDataModule
from minc_lightning.diagnostics import effective_rank, embedding_std, lambda_diagnostics
from minc_lightning.loading import load_backbone
from minc_lightning.loss import MINCLoss, minc_loss
from minc_lightning.module import MINCModule
from minc_lightning.objectives import OBJECTIVES, Objective

__all__ = [
    "BYOLLoss",
    "ConvNet",
    "MINCDataModule",
    "MINCLoss",
    "MINCModule",
    "OBJECTIVES",
    "Objective",
    "ResNet",
    "SpectralContrastiveLoss",
    "byol_loss",
    "effective_rank",
    "embedding_std",
    "lambda_diagnostics",
    "load_backbone",
    "minc_loss",
    "spectral_contrastive_loss",
]
__version__ = "0.1.0"
