"""Old module paths, kept working for configs and checkpoints written before the package took
its current layout (``minc_lightning.monitor.OnlineKNN`` in a config, a pickled object of
``minc_lightning.datasets`` in a checkpoint). Importing one gives a module whose names come from
the new place, each with a ``FutureWarning`` (shown by default, unlike ``DeprecationWarning``)
naming the path to use. Plumbing: not API.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import types
import warnings
from typing import Any

PACKAGE = "minc_lightning"
REMOVED_IN = "0.3"
# old module → the modules its names now live in, looked up in this order
MOVED: dict[str, tuple[str, ...]] = {
    "monitor": ("callbacks.knn",),
    "pictures": ("callbacks.lambda_pictures",),
    "fastpath": ("callbacks.speed",),
    "progress": ("callbacks.progress",),
    "run_checkpoint": ("callbacks.checkpoint",),
    "datasets": ("data.formats", "data.images", "data.presets"),
    "augment": ("data.augment",),
    "sampling": ("data.sampling",),
    "contract": ("data.batch",),
    "guard": ("nonfinite",),
    "checks": ("arguments",),
    "checkpoints": ("checkpoint_io",),
    "internals": ("_cli_build",),
    "distributed": ("_distributed",),
}


class MovedModule(types.ModuleType):
    """A stand-in for an old module: each name is the new module's, with a warning."""

    def __init__(self, old: str, new: tuple[str, ...]) -> None:
        super().__init__(f"{PACKAGE}.{old}")
        self._new = tuple(f"{PACKAGE}.{n}" for n in new)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        for path in self._new:
            module = importlib.import_module(path)
            if hasattr(module, name):
                warnings.warn(
                    f"{self.__name__}.{name} moved to {path}.{name}; the old path will be "
                    f"removed in minc-lightning {REMOVED_IN}.",
                    FutureWarning,
                    stacklevel=2,
                )
                return getattr(module, name)
        raise AttributeError(f"module {self.__name__!r} has no attribute {name!r}")


class MovedFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds the old module paths (and only those) and builds their stand-ins."""

    def find_spec(self, fullname: str, path: Any = None, target: Any = None):
        package, _, old = fullname.rpartition(".")
        if package == PACKAGE and old in MOVED:
            return importlib.machinery.ModuleSpec(fullname, self)
        return None

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        old = spec.name.rpartition(".")[2]
        return MovedModule(old, MOVED[old])

    def exec_module(self, module: types.ModuleType) -> None:
        pass


def install() -> None:
    if not any(isinstance(f, MovedFinder) for f in sys.meta_path):
        sys.meta_path.append(MovedFinder())
