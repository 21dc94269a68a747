"""LambdaPictures: a figure of Λ (heat map) and its spectrum every N epochs and at the end."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display is needed or wanted
import matplotlib.pyplot as plt  # noqa: E402
from lightning.pytorch import Callback, LightningModule, Trainer  # noqa: E402
from lightning.pytorch.loggers import TensorBoardLogger, WandbLogger  # noqa: E402
from lightning.pytorch.utilities import rank_zero_only, rank_zero_warn  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from torch import Tensor  # noqa: E402

from minc_lightning.diagnostics import lambda_eigenvalues  # noqa: E402
from minc_lightning.errors import BadInput


def draw_lambda(second_moment: Tensor, title: str = "") -> Figure:
    """Λ as a heat map (symmetric colour scale) beside its eigenvalues and diagonal, in order.
    Under tril(Λ) the map should become diagonal with entries decreasing along it."""
    lam = second_moment.detach().float().cpu()
    eig = lambda_eigenvalues(lam).clamp_min(1e-12)
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.8))
    scale = lam.abs().max().item() or 1.0
    image = left.imshow(lam.numpy(), cmap="RdBu_r", vmin=-scale, vmax=scale)
    fig.colorbar(image, ax=left, fraction=0.046)
    left.set(title="Λ", xlabel="dimension", ylabel="dimension")
    right.semilogy(eig.numpy(), label="eigenvalues")
    right.semilogy(lam.diagonal().clamp_min(1e-12).numpy(), ".", label="diagonal")
    right.set(title="spectrum", xlabel="rank / dimension")
    right.grid(alpha=0.3)
    right.legend()
    fig.suptitle(title)
    # fixed margins that fit these labels: tight_layout measured every text and took about
    # as long as drawing the picture (0.2 s), once per picture of every run
    fig.subplots_adjust(left=0.07, right=0.97, bottom=0.13, top=0.84, wspace=0.32)
    return fig


class LambdaPictures(Callback):
    """Every ``every_n_epochs`` epochs and at the end of training, a figure of Λ goes to the run's
    logger (an image in W&B or TensorBoard) and to ``<default_root_dir>/lambda/`` as a PNG (what
    a CSV logger's run keeps). Objectives without Λ get none. ``last_path`` is the newest PNG.

    Args:
        every_n_epochs: draw after every n-th training epoch (and always at the end).
    """

    def __init__(self, every_n_epochs: int = 10) -> None:
        if every_n_epochs < 1:
            raise BadInput(f"LambdaPictures: every_n_epochs must be >= 1, got {every_n_epochs}")
        self.every_n_epochs = every_n_epochs
        self.last_path: Path | None = None
        self.failed: str | None = None  # why the last picture could not be written

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if (trainer.current_epoch + 1) % self.every_n_epochs == 0:
            self.save(trainer, pl_module)

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.save(trainer, pl_module, final=True)

    @rank_zero_only
    def save(self, trainer: Trainer, pl_module: LightningModule, final: bool = False) -> None:
        lam = getattr(pl_module.criterion, "second_moment", None)
        if lam is None:
            return
        name = "final" if final else f"epoch{trainer.current_epoch + 1}"
        fig = draw_lambda(lam, f"Λ after {trainer.global_step} steps")
        path = Path(trainer.default_root_dir) / "lambda" / f"lambda_{name}.png"
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fig.savefig(path, dpi=100)
            self.last_path = path
            for logger in trainer.loggers:
                if isinstance(logger, WandbLogger):
                    logger.log_image("lambda/picture", [str(path)], step=trainer.global_step)
                elif isinstance(logger, TensorBoardLogger):
                    logger.experiment.add_figure("lambda/picture", fig, trainer.global_step)
        except OSError as err:  # a full or read-only disk must not cost the training
            self.failed = f"the picture of Λ {path} could not be written ({err})"
            rank_zero_warn(f"LambdaPictures: {self.failed}; training goes on")
        finally:
            plt.close(fig)
