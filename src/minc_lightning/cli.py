"""The ``minc-lightning`` command: LightningCLI over MINCModule and MINCDataModule.

    minc-lightning fit --config configs/imagenet.yaml
    minc-lightning fit --config configs/imagenet.yaml --ckpt_path last   # resume

On top of LightningCLI: ``model.num_classes`` follows ``data.num_classes``; checkpoints go to
``<trainer.default_root_dir>/checkpoints`` (``last.ckpt`` always kept, so ``--ckpt_path last``
finds the latest run); the resolved config is saved with each run and sent to W&B; a W&B run
resumed from a checkpoint reuses its run id; without W&B credentials the W&B logger runs offline
instead of failing; a run ends with a short summary.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.cli import LightningCLI, SaveConfigCallback
from lightning.pytorch.loggers import WandbLogger
from lightning.pytorch.utilities import rank_zero_info, rank_zero_only, rank_zero_warn

from minc_lightning.data import MINCDataModule
from minc_lightning.module import MINCModule

WANDB_ID_KEY = "wandb_run_id"


class RunSummary(Callback):
    """Prints where the checkpoint is, the final probe accuracy and how to go on; keeps the W&B
    run id in every checkpoint so a resumed run continues the same W&B run."""

    def on_save_checkpoint(
        self, trainer: Trainer, pl_module: LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        if isinstance(trainer.logger, WandbLogger):
            checkpoint[WANDB_ID_KEY] = trainer.logger.version

    @rank_zero_only
    def on_fit_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        ckpt = trainer.checkpoint_callback
        last = getattr(ckpt, "last_model_path", "") or "(none saved)"
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val/")}
        accuracy = ", ".join(f"{k} = {100 * v:.2f}%" for k, v in sorted(metrics.items()))
        print(
            "\n".join(
                [
                    "",
                    "=" * 72,
                    f"minc-lightning: finished {trainer.global_step} optimizer steps "
                    f"({trainer.current_epoch} epochs).",
                    f"  checkpoint : {last}",
                    f"  online linear probe (validation): {accuracy or 'no validation data'}",
                    "  continue   : minc-lightning fit --config <same config> --ckpt_path last "
                    "--trainer.max_epochs <more>",
                    f"  evaluate   : minc-lightning-eval knn --ckpt {last}",
                    "=" * 72,
                ]
            )
        )


class LoggerSaveConfigCallback(SaveConfigCallback):
    """Saves the resolved config next to the run (overwriting, so W&B's files never clash) and
    sends it to W&B as the run's config."""

    def save_config(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if isinstance(trainer.logger, WandbLogger):
            trainer.logger.log_hyperparams({"cli": self.config.as_dict()})


def _wandb_credentials() -> bool:
    if os.environ.get("WANDB_API_KEY") or os.environ.get("WANDB_MODE") in ("offline", "disabled"):
        return True
    netrc = Path(os.environ.get("NETRC", Path.home() / ".netrc"))
    return netrc.is_file() and "api.wandb.ai" in netrc.read_text(errors="ignore")


class MINCLightningCLI(LightningCLI):
    def add_arguments_to_parser(self, parser) -> None:
        parser.link_arguments("data.num_classes", "model.num_classes", apply_on="instantiate")
        parser.add_lightning_class_args(ModelCheckpoint, "checkpoint")
        parser.set_defaults({"checkpoint.save_last": True, "checkpoint.save_top_k": 0})
        parser.link_arguments(
            "trainer.default_root_dir",
            "checkpoint.dirpath",
            compute_fn=lambda root: str(Path(root or ".") / "checkpoints"),
        )

    def before_instantiate_classes(self) -> None:
        config = self.config.get(self.subcommand, self.config) if self.subcommand else self.config
        logger = config.get("trainer", {}).get("logger")
        loggers = logger if isinstance(logger, list) else [logger]
        wandb_logger = next(
            (lg for lg in loggers if "WandbLogger" in str(getattr(lg, "class_path", ""))), None
        )
        if wandb_logger is None:
            return
        if not _wandb_credentials():
            rank_zero_warn(
                "No W&B credentials found (WANDB_API_KEY or `wandb login`): "
                "logging to W&B offline; `wandb sync` uploads the run later."
            )
            os.environ["WANDB_MODE"] = "offline"
        ckpt_path = config.get("ckpt_path")
        if ckpt_path == "last":
            root = config.get("trainer", {}).get("default_root_dir") or "."
            ckpt_path = Path(root) / "checkpoints" / "last.ckpt"
        if ckpt_path and Path(ckpt_path).is_file():
            run_id = torch.load(ckpt_path, map_location="cpu", weights_only=True).get(WANDB_ID_KEY)
            if run_id:
                wandb_logger.init_args.id = run_id  # WandbLogger resumes a given id
                rank_zero_info(f"minc-lightning: resuming W&B run {run_id}")


def run_cli(args: list[str] | None = None, run: bool = True) -> MINCLightningCLI:
    """Build (and with ``run``, execute) the CLI on ``args`` (None: the command line)."""
    torch.set_float32_matmul_precision("high")
    return MINCLightningCLI(
        MINCModule,
        MINCDataModule,
        save_config_callback=LoggerSaveConfigCallback,
        save_config_kwargs={"overwrite": True},
        trainer_defaults={"callbacks": [RunSummary()]},
        args=args,
        run=run,
    )


def main() -> None:
    run_cli()


if __name__ == "__main__":
    main()
