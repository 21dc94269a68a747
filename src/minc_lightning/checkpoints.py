"""Reading checkpoints, finding a run's latest one, and saying why one does not fit.

Shared by the CLI (resume), MINCModule (incompatible configurations) and evaluation, so every
one of them names the file and the problem in the same words.
"""

from __future__ import annotations

import math
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


def incompatibility(own: dict[str, Tensor], theirs: dict[str, Tensor]) -> ValueError | None:
    """The error for a checkpoint whose weights do not fit the model (None when they do)."""
    problems = state_dict_differences(own, theirs)
    if not problems:
        return None
    more = f" (and {len(problems) - 6} more)" if len(problems) > 6 else ""
    return ValueError(
        "the checkpoint was written by an incompatible configuration (another backbone, head "
        "width, objective or number of classes); load it with the configuration it was trained "
        f"with. Differences: {'; '.join(problems[:6])}{more}"
    )


class ResumeRecord:
    """The learning rate and global batch a checkpoint was trained with, and what a resumed run
    does about a change: a changed lr is applied (and said), a changed batch size refused."""

    KEY = "minc_lightning"

    def __init__(self) -> None:
        self.before: dict[str, Any] = {}

    def save(self, checkpoint: dict[str, Any], lr: float, global_batch: int) -> None:
        checkpoint[self.KEY] = {"lr": lr, "global_batch": global_batch}

    def load(self, checkpoint: dict[str, Any]) -> None:
        self.before = dict(checkpoint.get(self.KEY, {}))

    def check(self, lr: float, global_batch: int) -> str | None:
        """Raise on a changed batch size; return the message for a changed lr (None if same)."""
        before = self.before
        if before.get("global_batch", global_batch) != global_batch:
            raise ValueError(
                f"MINCModule: the checkpoint was trained with a global batch of "
                f"{before['global_batch']}, this run has {global_batch}. A resumed run keeps its "
                "batch size: its step count, the schedules' horizon and its place inside the "
                "epoch are counted in batches. Resume with the original data.batch_size "
                "(and devices, accumulate_grad_batches), or start a new run."
            )
        if math.isclose(before.get("lr", lr), lr, rel_tol=1e-9):
            return None
        return (
            f"MINCModule: resuming with lr {lr:.4g} instead of the checkpoint's "
            f"{before['lr']:.4g}; the schedule continues from the restored step with it."
        )
