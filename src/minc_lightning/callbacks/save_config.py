"""The CLI's config saver: the resolved config next to the run, and sent to W&B as its config."""

from __future__ import annotations

from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.cli import SaveConfigCallback
from lightning.pytorch.loggers import WandbLogger


class LoggerSaveConfigCallback(SaveConfigCallback):
    """Saves the resolved config next to the run (overwriting, so W&B's files never clash) and
    sends it to W&B as the run's config."""

    def save_config(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if isinstance(trainer.logger, WandbLogger):
            trainer.logger.log_hyperparams({"cli": self.config.as_dict()})
