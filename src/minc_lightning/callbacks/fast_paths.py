"""FastPaths: ``channels_last`` memory format and ``torch.compile`` for MINCModule's networks."""

from __future__ import annotations

import torch
from lightning.pytorch import Callback, LightningModule, Trainer

NETWORKS = ("backbone", "projector", "predictor", "target_backbone", "target_projector")


class FastPaths(Callback):
    """Speed switches, set before training starts:

    - ``channels_last``: every 4-D weight in NHWC order (faster convolutions on tensor cores:
      timm's published ResNet-50 training benchmark on an RTX 3090, 826 → 1,218 img/s);
    - ``compile``: ``nn.Module.compile`` on each network in place, so the parameter names, the
      checkpoints and the EMA target update stay as they are; Λ and the loss stay eager
      (MINC's loss is a few small matrix products, and its float32 guard must hold).

    ``--trainer.callbacks+=minc_lightning.callbacks.fast_paths.FastPaths`` (with ``init_args``), or
    ``Trainer(callbacks=[FastPaths(...)])``. Losses and gradients equal the eager ones within
    float rounding (tests/test_fastpath.py). Their speed-up on a GPU is not yet measured here.

    Args:
        channels_last: NHWC weights for every network.
        compile: compile every network.
        compile_backend: ``torch.compile``'s backend ("inductor": generated kernels; the tests
            use "aot_eager", which captures the same graphs without generating code).
    """

    def __init__(
        self, channels_last: bool = True, compile: bool = False, compile_backend: str = "inductor"
    ) -> None:
        self.channels_last = channels_last
        self.compile = compile
        self.compile_backend = compile_backend

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        networks = [getattr(pl_module, n) for n in NETWORKS if hasattr(pl_module, n)]
        for network in networks:
            if self.channels_last:
                network.to(memory_format=torch.channels_last)
            if self.compile:
                network.compile(backend=self.compile_backend)
