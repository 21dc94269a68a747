"""The end of a run: where its checkpoint is (read back first), the final probe accuracy and how
to go on; and the W&B run id kept in every checkpoint, so a resumed run continues the same W&B
run."""

from __future__ import annotations

from typing import Any

from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.loggers import WandbLogger
from lightning.pytorch.utilities import rank_zero_only

from minc_lightning.callbacks.checkpoint import ResumableCheckpoint
from minc_lightning.callbacks.lambda_pictures import LambdaPictures
from minc_lightning.checkpoint_files import load_checkpoint

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
        """Read back the checkpoint the summary names (a run never reports one that is not
        there), then print the summary."""
        last = checked_checkpoint(trainer)
        failed = [c.failed for c in trainer.callbacks if getattr(c, "failed", None)]
        if failed:
            raise RuntimeError(
                f"minc-lightning: the training finished and its checkpoint {last} is safe (read "
                f"back), but {failed[0]}."
            )
        print("\n".join(summary(trainer, last)))


def checked_checkpoint(trainer: Trainer) -> str:
    """The run's last checkpoint, read back; an error where there is none or it does not load."""
    if trainer.fast_dev_run:
        return "(none: a fast_dev_run smoke test writes no checkpoint)"
    last = getattr(trainer.checkpoint_callback, "last_model_path", "")
    savers = [c for c in trainer.callbacks if isinstance(c, ResumableCheckpoint)]
    if not last and savers:  # it saves after any step: nothing was trained
        raise RuntimeError(
            f"minc-lightning: the run trained zero optimizer steps (it stopped at step "
            f"{trainer.global_step}, epoch {trainer.current_epoch}; max_epochs "
            f"{trainer.max_epochs}, max_steps {trainer.max_steps}, "
            f"{trainer.num_training_batches} training batches per epoch), so it has no "
            "result to save. To train more, raise --trainer.max_epochs."
        )
    if not last:
        raise RuntimeError(
            "minc-lightning: training finished but no checkpoint was saved: "
            "the Trainer has no ResumableCheckpoint callback."
        )
    try:
        load_checkpoint(last)
    except (FileNotFoundError, ValueError) as err:
        raise RuntimeError(
            f"minc-lightning: training finished but its checkpoint {last} was not "
            f"written or does not load back ({err}); the run's result is lost."
        ) from err
    return last


def summary(trainer: Trainer, last: str) -> list[str]:
    """The lines printed at the end of a run."""
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val/")}
    accuracy = ", ".join(f"{k} = {100 * v:.2f}%" for k, v in sorted(metrics.items()))
    pictures = [c.last_path for c in trainer.callbacks if isinstance(c, LambdaPictures)]
    picture = [f"  Λ picture  : {pictures[0]}"] if pictures and pictures[0] else []
    return [
        "",
        "=" * 72,
        f"minc-lightning: finished {trainer.global_step} optimizer steps "
        f"({trainer.current_epoch} epochs).",
        f"  checkpoint : {last}",
        f"  online linear probe (validation): {accuracy or 'no validation data'}",
        *picture,
        "  continue   : minc-lightning fit --config <same config> --ckpt_path last "
        "--trainer.max_epochs <more>",
        f"  evaluate   : minc-lightning-eval knn --ckpt {last}",
        "=" * 72,
    ]
