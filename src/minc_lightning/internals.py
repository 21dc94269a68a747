"""The two places minc-lightning reads Lightning internals, each because a public API is missing.

Both are tested (tests/test_module.py::test_internals_*, and the mid-epoch resume of
tests/test_faults.py); an upgrade that breaks one fails those tests, not a user's run.
"""

from __future__ import annotations

from lightning.pytorch import Trainer
from lightning.pytorch.core.mixins.hparams_mixin import _given_hyperparameters


def built_by_cli() -> bool:
    """Whether the LightningModule being constructed is instantiated by LightningCLI (which then
    lets ``save_hyperparameters`` store each argument's config, a backbone's class path and
    init args, instead of the object). Missing public API: a documented way to ask whether a
    module is being built from a config."""
    return _given_hyperparameters.get() is not None


def batches_done_this_epoch(trainer: Trainer) -> int:
    """Training batches of the current epoch already run (non-zero only when resuming mid-epoch),
    asked as the epoch starts. Missing public API: the restored position inside the epoch is
    not exposed to the data side (``LightningDataModule.load_state_dict`` gets only what the
    data module saved itself)."""
    return trainer.fit_loop.epoch_loop.batch_progress.current.completed
