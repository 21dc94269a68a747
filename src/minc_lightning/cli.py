"""The ``minc-lightning`` command: LightningCLI over MINCModule and MINCDataModule.

    minc-lightning fit --config configs/imagenet.yaml
    minc-lightning fit --config configs/imagenet.yaml --ckpt_path last   # resume
    minc-lightning fit --config configs/imagenet.yaml --ckpt_path last_if_present  # preemptible

On top of LightningCLI: ``model.num_classes`` follows ``data.num_classes``; checkpoints go to
``<trainer.default_root_dir>/checkpoints`` (``last.ckpt`` always kept); ``--ckpt_path last``
resumes the run's latest checkpoint and is an error when there is none, ``last_if_present``
starts afresh then (a preemptible job's restart); a ``fast_dev_run`` smoke test writes no
checkpoint; before training the checkpoint to resume is read and the output folders are
checked writable, after it the checkpoint the summary names is read back; a picture of Λ goes
to the logger and the run folder every ``lambda_pictures.every_n_epochs`` (10) epochs and at the
end; the resolved config
is saved with each run and sent to W&B; a W&B run resumed from a checkpoint reuses its run id;
without W&B credentials, or when W&B's server cannot be reached within seconds, the W&B logger
runs offline instead of failing; a run ends with a short summary.
"""

from __future__ import annotations

import os
import socket
import sys
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.cli import LightningCLI, SaveConfigCallback
from lightning.pytorch.loggers import WandbLogger
from lightning.pytorch.utilities import rank_zero_info, rank_zero_only, rank_zero_warn

from minc_lightning.checkpoints import find_last, load_checkpoint
from minc_lightning.data import MINCDataModule
from minc_lightning.module import MINCModule
from minc_lightning.pictures import LambdaPictures
from minc_lightning.progress import LineProgress

WANDB_ID_KEY = "wandb_run_id"
RESUME_IF_PRESENT = "last_if_present"  # --ckpt_path value: resume when a checkpoint exists


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
        if trainer.fast_dev_run:
            last = "(none: a fast_dev_run smoke test writes no checkpoint)"
        else:
            last = getattr(trainer.checkpoint_callback, "last_model_path", "")
            if not last:
                raise RuntimeError(
                    "minc-lightning: training finished but no checkpoint was saved; keep "
                    "checkpoint.save_last=true (the default) so the run's result is kept."
                )
            try:
                load_checkpoint(last)
            except (FileNotFoundError, ValueError) as err:
                raise RuntimeError(
                    f"minc-lightning: training finished but its checkpoint {last} was not "
                    f"written or does not load back ({err}); the run's result is lost."
                ) from err
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val/")}
        accuracy = ", ".join(f"{k} = {100 * v:.2f}%" for k, v in sorted(metrics.items()))
        pictures = [c.last_path for c in trainer.callbacks if isinstance(c, LambdaPictures)]
        picture = [f"  Λ picture  : {pictures[0]}"] if pictures and pictures[0] else []
        print(
            "\n".join(
                [
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


def _wandb_reachable(timeout: float = 5.0) -> bool:
    """Whether W&B's server (``WANDB_BASE_URL``, default api.wandb.ai) accepts a connection
    within ``timeout`` seconds; wandb itself would wait about 100 s before failing."""
    url = urlparse(os.environ.get("WANDB_BASE_URL") or "https://api.wandb.ai")
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        socket.create_connection((url.hostname, port), timeout=timeout).close()
    except OSError:
        return False
    return True


def check_writable(directory: str | Path, what: str) -> None:
    """Create ``directory`` if needed and write a file in it, or say which folder and why not."""
    directory = Path(directory)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=directory, prefix=".write-check-"):
            pass
    except OSError as err:
        raise PermissionError(
            f"minc-lightning: cannot write the {what} to {directory} ({err.strerror or err}); "
            "choose another --trainer.default_root_dir (and logger save_dir) before training."
        ) from err


class MINCLightningCLI(LightningCLI):
    def add_arguments_to_parser(self, parser) -> None:
        parser.link_arguments("data.num_classes", "model.num_classes", apply_on="instantiate")
        parser.link_arguments("data.batch_size", "model.batch_size")  # the lr scales with it
        parser.add_lightning_class_args(ModelCheckpoint, "checkpoint")
        parser.add_lightning_class_args(LambdaPictures, "lambda_pictures")  # every_n_epochs
        parser.set_defaults({"checkpoint.save_last": True, "checkpoint.save_top_k": 0})
        parser.link_arguments(
            "trainer.default_root_dir",
            "checkpoint.dirpath",
            compute_fn=lambda root: str(Path(root or ".") / "checkpoints"),
        )

    def before_instantiate_classes(self) -> None:
        config = self.config.get(self.subcommand, self.config) if self.subcommand else self.config
        trainer = config.get("trainer", {})
        if trainer.get("fast_dev_run") and "checkpoint" in config:
            # Lightning's ModelCheckpoint still saves `last` at the end of a fast_dev_run, and
            # that 1-step file would then be the newest one `--ckpt_path last` finds.
            config["checkpoint"]["save_last"] = False
        if trainer.get("enable_progress_bar") is not False and not sys.stdout.isatty():
            # a log file, not a terminal: plain lines instead of carriage-return bar updates
            callbacks = self.trainer_defaults["callbacks"]
            self.trainer_defaults["callbacks"] = [*callbacks, LineProgress()]
        resumed: dict = {}
        if self.subcommand == "fit":
            root = Path(trainer.get("default_root_dir") or ".")
            config["ckpt_path"] = self.resolve_ckpt_path(config.get("ckpt_path"), root)
            # read once, now: a damaged checkpoint is named before anything starts
            resumed = load_checkpoint(config["ckpt_path"]) if config["ckpt_path"] else {}
        self.configure_wandb(config, resumed.get(WANDB_ID_KEY))

    @staticmethod
    def resolve_ckpt_path(ckpt_path: str | None, root: Path) -> str | None:
        """``last``: the run's latest checkpoint, an error when there is none;
        ``last_if_present``: the same, or None (start afresh)."""
        if ckpt_path in ("last", RESUME_IF_PRESENT):
            found = find_last(root / "checkpoints")
            if found is None and ckpt_path == "last":
                raise FileNotFoundError(
                    f"--ckpt_path last: no checkpoint in {root / 'checkpoints'} to resume. Check "
                    "--trainer.default_root_dir, or pass --ckpt_path last_if_present to start "
                    "afresh when there is none (a preemptible job's restart)."
                )
            if found is None:
                rank_zero_info(f"minc-lightning: no checkpoint in {root / 'checkpoints'} yet")
            ckpt_path = str(found) if found else None
        if ckpt_path:
            rank_zero_info(f"minc-lightning: resuming from {ckpt_path}")
        return ckpt_path

    def configure_wandb(self, config, run_id: str | None) -> None:
        """Offline W&B without credentials or server; a resumed run keeps its W&B ``run_id``."""
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
        elif os.environ.get("WANDB_MODE") not in ("offline", "disabled") and not _wandb_reachable():
            rank_zero_warn(
                "W&B's server cannot be reached: logging to W&B offline; `wandb sync` uploads "
                "the run later."
            )
            os.environ["WANDB_MODE"] = "offline"
        if run_id:
            wandb_logger.init_args.id = run_id  # WandbLogger resumes a given id
            rank_zero_info(f"minc-lightning: resuming W&B run {run_id}")

    def before_fit(self) -> None:
        """Every folder the run writes to is writable before any step is taken."""
        trainer = self.trainer
        if trainer.checkpoint_callback is not None and not trainer.fast_dev_run:
            check_writable(trainer.checkpoint_callback.dirpath, "checkpoints")
        for logger in trainer.loggers:
            if logger.save_dir:
                check_writable(logger.save_dir, f"{type(logger).__name__} logs")


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
