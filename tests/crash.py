"""Callbacks that end their own process the way a cluster does, after a given optimizer step:
SIGKILL (a node failure: no handler runs, no checkpoint on the way out), or a scheduler's
SIGTERM/SIGUSR1 sent to the whole process group (the training process and its loader workers),
on one process of a DDP job only when ``rank`` is given."""

import os
import signal
import time
from pathlib import Path

from lightning.pytorch import Callback


class KillAt(Callback):
    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step >= self.step:
            os.kill(os.getpid(), signal.SIGKILL)


class SignalAt(Callback):
    def __init__(self, step: int, name: str = "SIGTERM", rank: int | None = None) -> None:
        self.step, self.name, self.rank, self.sent = step, name, rank, False

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self.sent or trainer.global_step < self.step:
            return
        self.sent = True
        number = getattr(signal, self.name)
        if self.rank is None:
            os.killpg(os.getpgid(0), number)  # as `scancel --signal` or `kill -TERM -<pgid>`
        elif trainer.global_rank == self.rank:
            os.kill(os.getpid(), number)


class WaitAt(Callback):
    """After step ``step``, write ``<folder>/paused`` and wait until ``<folder>/go`` exists:
    the test does something to the world (stops a server) while the run is mid-epoch."""

    def __init__(self, step: int, folder: str) -> None:
        self.step, self.folder, self.done = step, folder, False

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self.done or trainer.global_step < self.step:
            return
        self.done = True
        (Path(self.folder) / "paused").touch()
        while not (Path(self.folder) / "go").exists():
            time.sleep(0.1)
