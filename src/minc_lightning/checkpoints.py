"""Reading checkpoints, finding a run's latest one, and saying why one does not fit.

Shared by the CLI (resume), MINCModule (incompatible configurations) and evaluation, so every
one of them names the file and the problem in the same words.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

LAST = re.compile(r"^last(-v\d+)?\.ckpt$")  # ModelCheckpoint's save_last names


def load_checkpoint(path: str | Path, minc: bool = True) -> dict[str, Any]:
    """A checkpoint as a dict of tensors and plain values (``weights_only``: a checkpoint is
    data, never code). With ``minc``, it must also be one that ``minc-lightning fit`` wrote."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    size = path.stat().st_size
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types here, some with advice that misleads
        raise ValueError(
            f"checkpoint {path} ({size} bytes) cannot be read: it is empty, truncated, not a "
            f"PyTorch checkpoint, or holds objects other than tensors and plain values "
            f"({type(err).__name__}). Pass another --ckpt_path, or move it away to start afresh."
        ) from err
    if minc:
        hparams = ckpt.get("hyper_parameters", {}) if isinstance(ckpt, dict) else {}
        if "state_dict" not in ckpt or "objective" not in hparams:
            raise ValueError(
                f"{path} is not a minc-lightning checkpoint (expected 'state_dict' and "
                "MINCModule hyper-parameters; was it written by `minc-lightning fit`?)"
            )
    return ckpt


def find_last(directory: str | Path) -> Path | None:
    """The run's latest checkpoint in ``directory``: the newest ``last.ckpt`` or
    ``last-vN.ckpt`` (a new run in a used directory writes the next version)."""
    directory = Path(directory)
    if not directory.is_dir():
        return None
    found = [p for p in directory.iterdir() if LAST.match(p.name) and p.is_file()]
    return max(found, key=lambda p: (p.stat().st_mtime_ns, p.name)) if found else None


def state_dict_differences(own: dict[str, Tensor], theirs: dict[str, Tensor]) -> list[str]:
    """What keeps ``theirs`` from loading into a model whose state dict is ``own``."""
    problems = [
        f"{k}: checkpoint {tuple(v.shape)}, model {tuple(own[k].shape)}"
        for k, v in theirs.items()
        if k in own and own[k].shape != v.shape
    ]
    problems += [f"{k}: missing in checkpoint" for k in sorted(set(own) - set(theirs))]
    problems += [f"{k}: not in this model" for k in sorted(set(theirs) - set(own))]
    return problems
