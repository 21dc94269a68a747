"""ResumableCheckpoint: the run's resumable state in ``last.ckpt``, at every epoch end, every N
optimizer steps, when the run stops early, and when a scheduler asks it to stop.

Lightning's ``ModelCheckpoint`` with ``save_top_k=0`` writes ``last`` only when training ends, so
a run killed after an epoch lost everything; a run stopped by ``max_time`` or ``max_steps`` in
the middle of an epoch was saved as if the epoch had ended, and its resume skipped the rest of
the epoch; SIGTERM made Lightning exit 0 without a checkpoint. Here:

* a checkpoint is written at the end of every ``every_n_epochs``-th epoch and, with
  ``every_n_train_steps``, after every N-th optimizer step;
* a run that stops before its epoch ends (``max_time``, ``max_steps``, ``trainer.should_stop``) is
  saved at the batch where it stops, so its resume continues that epoch;
* SIGTERM and SIGUSR1 (SLURM's warning before the time limit) are caught: at the next optimizer
  step boundary, on every process at once, the exact position is saved and the run exits with
  ``PREEMPTED_EXIT`` (75, ``EX_TEMPFAIL``: "try again"), so ``fit && eval`` or a scheduler's
  ``afterok`` never takes a preempted run for a finished one;
* every write goes to a temporary file in the checkpoint folder, is flushed and fsynced, and
  is renamed over the old file (``AtomicCheckpointIO``): a kill during a write leaves the
  previous checkpoint whole;
* the checkpoint records the run's identity, which the callback computes from the module's and
  the data module's settings (``run_identity``), so that ``--ckpt_path last`` never resumes
  another run's checkpoint from the same folder.
"""

from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path
from typing import Any

from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import Checkpoint
from lightning.pytorch.plugins import TorchCheckpointIO
from lightning.pytorch.utilities import rank_zero_info, rank_zero_only

from minc_lightning.checkpoint_files import RUN_KEY, atomic_save, next_last_name, run_identity
from minc_lightning.errors import BadInput

PREEMPTED_EXIT = 75  # sysexits.h EX_TEMPFAIL: a temporary failure, the job may be retried
STOP_SIGNALS = ("SIGTERM", "SIGUSR1")


def checkpoint_folder(dirpath: str | None, default_root_dir: str | Path | None) -> Path:
    """Where the run's checkpoints go: ``dirpath``, else ``<default_root_dir>/checkpoints``."""
    return Path(dirpath) if dirpath else Path(default_root_dir or ".") / "checkpoints"


class Preempted(SystemExit):
    """Raised on every process after a stop signal's checkpoint is written; exits with 75."""

    def __init__(self, path: str) -> None:
        super().__init__(PREEMPTED_EXIT)
        self.path = path


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's torch checkpoint IO with writes that cannot destroy the previous file.

    Lightning writes through fsspec, whose local "transaction" writes to the system temporary
    folder and then *copies* the file over when that folder is on another filesystem (the usual
    cluster layout: a node-local /tmp, checkpoints on shared storage): a kill during the copy
    leaves a truncated checkpoint in place of the good one. Here the temporary file sits in the
    destination folder, so the final rename is atomic.
    """

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: Any, storage_options: Any = None
    ) -> None:
        if storage_options is not None or "://" in str(path):  # remote storage: fsspec's way
            return super().save_checkpoint(checkpoint, path, storage_options)
        atomic_save(checkpoint, Path(path))


class ResumableCheckpoint(Checkpoint):
    """Keeps the run's newest resumable state in ``dirpath/last.ckpt``.

    Args:
        dirpath: the checkpoint folder (None: ``<trainer.default_root_dir>/checkpoints``).
        every_n_epochs: write a checkpoint at the end of every N-th epoch (and the last one).
        every_n_train_steps: also write one after every N-th optimizer step (None: never).
        on_signal: catch SIGTERM and SIGUSR1, write the exact position and exit with 75.
    """

    def __init__(
        self,
        dirpath: str | None = None,
        every_n_epochs: int = 1,
        every_n_train_steps: int | None = None,
        on_signal: bool = True,
    ) -> None:
        if every_n_epochs < 1:
            raise BadInput(f"checkpoint.every_n_epochs must be >= 1, got {every_n_epochs}")
        if every_n_train_steps is not None and every_n_train_steps < 1:
            raise BadInput(
                f"checkpoint.every_n_train_steps must be >= 1 or null, got {every_n_train_steps}"
            )
        self.dirpath = dirpath
        self.every_n_epochs = every_n_epochs
        self.every_n_train_steps = every_n_train_steps
        self.on_signal = on_signal
        self.run_identity: dict[str, Any] | None = None  # the run's, from what setup is given
        self.last_model_path = ""  # the file this run writes
        self.written = ""  # the newest checkpoint it has written (whole: written atomically)
        self.saved_step: int | None = None
        self.received: str | None = None  # the name of a stop signal received
        self._previous_handlers: dict[int, Any] = {}

    # --- where -------------------------------------------------------------------------------
    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if type(trainer.strategy.checkpoint_io) is TorchCheckpointIO:  # the default: atomic
            trainer.strategy.checkpoint_io = AtomicCheckpointIO()
        folder = checkpoint_folder(self.dirpath, trainer.default_root_dir)
        self.dirpath = trainer.strategy.broadcast(str(folder))
        data = getattr(trainer.datamodule, "hparams", {})
        self.run_identity = run_identity(pl_module.hparams, data)

    def path(self, trainer: Trainer) -> Path:
        """The file this run writes: the one it resumed from when that is in the folder,
        else ``last.ckpt``, or the next free ``last-vN.ckpt`` when another run's is there."""
        if not self.last_model_path:
            resumed = Path(trainer.ckpt_path) if trainer.ckpt_path else None
            folder = Path(self.dirpath)
            if resumed is not None and resumed.parent.resolve() == folder.resolve():
                name = resumed.name
            else:
                name = next_last_name(folder)
            self.last_model_path = str(folder / trainer.strategy.broadcast(name))
        return Path(self.last_model_path)

    def save(self, trainer: Trainer, why: str = "") -> None:
        if (
            trainer.fast_dev_run
            or trainer.sanity_checking
            or self.saved_step == trainer.global_step
        ):
            return
        path = self.path(trainer)
        trainer.save_checkpoint(path, weights_only=False)  # the whole state, said explicitly
        self.saved_step = trainer.global_step
        self.written = str(path)
        if why:
            rank_zero_info(f"minc-lightning: {why}: saved step {trainer.global_step} to {path}")

    @rank_zero_only
    def on_exception(
        self, trainer: Trainer, pl_module: LightningModule, exception: BaseException
    ) -> None:
        """A run that fails after writing a checkpoint says which one is safe, so a failed
        picture or log write is not taken for lost training (a stop by signal says it itself)."""
        if self.written and not isinstance(exception, (SystemExit, KeyboardInterrupt)):
            print(
                f"minc-lightning: the run failed after writing its checkpoint {self.written}, "
                "which is whole (written atomically) and resumable with --ckpt_path last.",
                file=sys.stderr,
            )

    def on_save_checkpoint(
        self, trainer: Trainer, pl_module: LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        if self.run_identity is not None:  # None: saved before setup, by hand
            checkpoint[RUN_KEY] = self.run_identity

    # --- when --------------------------------------------------------------------------------
    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.received = None
        if self.on_signal and threading.current_thread() is threading.main_thread():
            # after Lightning's own handlers (registered just before training): SIGTERM no
            # longer ends the run with exit 0 at Lightning's next check, it is answered here
            for name in STOP_SIGNALS:
                number = getattr(signal, name)
                self._previous_handlers[number] = signal.signal(number, self._note_signal)

    def _note_signal(self, number: int, frame: Any) -> None:
        self.received = signal.Signals(number).name  # only a flag: acted on between steps

    def on_train_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        last_of_epoch = batch_idx + 1 >= trainer.num_training_batches
        if (batch_idx + 1) % trainer.accumulate_grad_batches and not last_of_epoch:
            return  # inside an accumulation: no optimizer step was taken
        self.answer_signal(trainer)
        step = trainer.global_step
        ending = trainer.should_stop or 0 <= trainer.max_steps <= step
        if ending and not last_of_epoch:
            self.save(trainer, "stopping inside an epoch")  # the resume continues this epoch
        elif self.every_n_train_steps and step % self.every_n_train_steps == 0:
            self.save(trainer)

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        final = trainer.max_epochs is not None and trainer.current_epoch + 1 >= trainer.max_epochs
        if (trainer.current_epoch + 1) % self.every_n_epochs == 0 or final:
            self.save(trainer)
        self.answer_signal(trainer)

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.save(trainer)  # nothing is written when this step is saved already

    def teardown(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        for number, handler in self._previous_handlers.items():
            signal.signal(number, handler)
        self._previous_handlers = {}

    def answer_signal(self, trainer: Trainer) -> None:
        """When any process received a stop signal: save on all, then exit with 75 on all."""
        if not self.on_signal:
            return
        if not trainer.strategy.reduce_boolean_decision(self.received is not None, all=False):
            return
        self.save(trainer, f"{self.received or 'a stop signal'} received")
        rank_zero_info(
            f"minc-lightning: preempted at step {trainer.global_step}; exiting with "
            f"{PREEMPTED_EXIT}. Resume: the same command with --ckpt_path last_if_present"
        )
        raise Preempted(self.last_model_path)
