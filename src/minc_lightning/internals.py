"""The one place minc-lightning reads a Lightning internal, because a public API is missing.

It is tested (tests/test_module.py::test_internals_*); an upgrade that breaks it fails that
test, not a user's run.
"""

from __future__ import annotations

from lightning.pytorch.core.mixins.hparams_mixin import _given_hyperparameters


def built_by_cli() -> bool:
    """Whether the LightningModule being constructed is instantiated by LightningCLI (which then
    lets ``save_hyperparameters`` store each argument's config, a backbone's class path and
    init args, instead of the object). Missing public API: a documented way to ask whether a
    module is being built from a config."""
    return _given_hyperparameters.get() is not None
