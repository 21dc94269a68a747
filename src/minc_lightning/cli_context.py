"""Whether the ``minc-lightning`` CLI is building the module: the CLI says so itself, around its
``instantiate_classes`` (LightningCLI's public hook), instead of the module reading Lightning's
internal ``_given_hyperparameters``. Plumbing: not API.

Built by the CLI, ``MINCModule`` saves its backbone's config (a class path and init args) so a
checkpoint can rebuild it; built in Python, the backbone is an object and is not saved.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

_building: ContextVar[bool] = ContextVar("minc_lightning_cli_builds", default=False)


@contextmanager
def cli_builds() -> Iterator[None]:
    """Within: the modules being instantiated come from the CLI's config."""
    token = _building.set(True)
    try:
        yield
    finally:
        _building.reset(token)


def built_by_cli() -> bool:
    return _building.get()
