"""A run's life on disk: its identity, checkpoints written atomically and read back, finding
its latest one, and saying why one does not fit (the resume checks).

Shared by the CLI (resume), the checkpoint callback, MINCModule (incompatible configurations)
and evaluation, so every one of them names the file and the problem in the same words.
"""

from __future__ import annotations

import math
import os
import re
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from minc_lightning.errors import (
    BadCheckpoint,
    IsAFolder,
    MissingPath,
    NoSpace,
    ResumeRefused,
    out_of_space,
)

LAST = re.compile(r"^last(-v\d+)?\.ckpt$")  # the run's resumable state: last, last-v1, ...
HPC = re.compile(r"^hpc_ckpt_\d+\.ckpt$")  # Lightning's SLURM auto-requeue saves (root folder)
RUN_KEY = "minc_lightning_run"  # a checkpoint's run identity (ResumableCheckpoint)
PARTIAL = ".partial"  # suffix of a file being written; never a checkpoint


def atomic_save(obj: Any, path: str | Path) -> Path:
    """``torch.save`` that never leaves a partial file at ``path``: written to a temporary file
    in the same folder, flushed and fsynced, then renamed over ``path`` (atomic within a
    filesystem), and the folder fsynced. Errors name the path."""
    path = Path(path)
    if path.is_dir():
        raise IsAFolder(f"cannot write {path}: it is a directory; give a file name")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=PARTIAL)
    except OSError as err:
        raise OSError(f"cannot write {path} ({err.strerror or err})") from err
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp's 0600 would hide it from the group
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as err:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(err, Exception) and out_of_space(err):
            # torch reports a full disk as "unexpected pos ..."; the cause is said here
            raise NoSpace(
                f"no space left in {path.parent} to write {path.name} (a file of that name "
                "there is unchanged); free space there, or write elsewhere"
            ) from None
        raise
    try:
        folder = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)
    except OSError:  # some filesystems cannot fsync a folder; the rename is done
        pass
    for stale in path.parent.glob(f".{path.name}.*{PARTIAL}"):  # left by a killed writer
        stale.unlink(missing_ok=True)
    return path


def load_checkpoint(
    path: str | Path, minc: bool = True, flag: str | None = "--ckpt_path"
) -> dict[str, Any]:
    """A checkpoint as a dict of tensors and plain values (``weights_only``: a checkpoint is
    data, never code). With ``minc``, it must also be one that ``minc-lightning fit`` wrote.
    Errors name the file, its size and what is wrong, and ``flag``: the option that named it."""
    path = Path(path)
    instead = f"pass another {flag}" if flag else "load another checkpoint"
    if path.is_dir():
        raise IsAFolder(
            f"checkpoint {path} is a directory; pass a checkpoint file in it (e.g. "
            f"{flag or 'path'} {path / 'last.ckpt'})"
            + (" or --ckpt_path last" if flag == "--ckpt_path" else "")
        )
    if not path.is_file():
        raise MissingPath(f"checkpoint {path} does not exist; {instead}")
    size = path.stat().st_size
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types here, some with advice that misleads
        raise BadCheckpoint(
            f"checkpoint {path} ({size} bytes) cannot be read: {unreadable_because(path, err)}. "
            f"{instead.capitalize()}, or move it away to start afresh"
        ) from None  # torch's own text advises weights_only=False: never shown
    if minc:
        hparams = ckpt.get("hyper_parameters", {}) if isinstance(ckpt, dict) else {}
        if not isinstance(ckpt, dict) or "state_dict" not in ckpt or "objective" not in hparams:
            raise BadCheckpoint(
                f"{path} ({size} bytes) is not a minc-lightning checkpoint (expected "
                "'state_dict' and MINCModule hyper-parameters; was it written by "
                f"`minc-lightning fit`?); {instead}"
            )
    return ckpt


def unreadable_because(path: Path, error: Exception) -> str:
    """Why ``torch.load(path, weights_only=True)`` failed, in the user's terms."""
    with open(path, "rb") as f:
        head = f.read(4)
    if not head:
        return "it is empty"
    if "Unsupported global" in str(error):  # a class or function to call: code
        return (
            "it holds objects other than tensors and plain values, which could run code when "
            "loaded; it was not loaded"
        )
    if head == b"PK\x03\x04":  # a zip archive: torch's format, cut short or damaged
        return "it is truncated or damaged"
    return f"it is not a PyTorch checkpoint ({type(error).__name__})"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def last_candidates(directory: str | Path) -> list[Path]:
    """The resumable checkpoints in ``directory``, newest first: ``last.ckpt``/``last-vN.ckpt``
    and Lightning's SLURM ``hpc_ckpt_N.ckpt`` (in the run folder above ``checkpoints/``), so
    that "last" is the newest state whichever wrote it. Files being written never count."""
    directory = Path(directory)
    found = []
    if directory.is_dir():
        found += [p for p in directory.iterdir() if LAST.match(p.name) and p.is_file()]
    parent = directory.parent
    if parent.is_dir():
        found += [p for p in parent.iterdir() if HPC.match(p.name) and p.is_file()]
    return sorted(found, key=lambda p: (p.stat().st_mtime_ns, p.name), reverse=True)


def run_identity_of(path: Path) -> dict[str, Any] | None:
    """The run identity a checkpoint records (None: none recorded, or unreadable)."""
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:  # an unreadable file is reported when it is resumed, not here
        return None
    return ckpt.get(RUN_KEY) if isinstance(ckpt, dict) else None


# Settings that change nothing while another setting has a given value: the local views'
# predictor without local views (no local predictor is built), whatever either side's default.
INERT_UNLESS: dict[str, tuple[str, Any]] = {"model.local_predictor": ("model.local_views", 0)}


def identity_differences(theirs: dict[str, Any], ours: dict[str, Any]) -> list[str]:
    """The keys whose values differ between two run identities, with both values, less the
    stream's (``STREAM``: the data module checks those) and a setting that is inert on both
    sides (``INERT_UNLESS``). A checkpoint of another 0.x version may lack a setting this one
    has: it is then another run."""

    def inert(key: str) -> bool:
        other, value = INERT_UNLESS.get(key, (None, None))
        return other is not None and theirs.get(other) == ours.get(other) == value

    keys = sorted(k for k in set(theirs) | set(ours) if not under(k, STREAM))
    return [
        f"{k}: {theirs.get(k, '(unset)')!r} there, {ours.get(k, '(unset)')!r} here"
        for k in keys
        if theirs.get(k) != ours.get(k) and not inert(k)
    ]


def resume_refused(path: str | Path | None, differences: list[str]) -> ResumeRefused:
    """The one refusal of a resume that changes what a resumed run keeps, on every route
    (``--ckpt_path last``, ``last_if_present``, a file) and from every check that finds it."""
    return ResumeRefused(
        f"cannot resume {path or 'the checkpoint'}: a resumed run keeps the settings that fix "
        f"its model and its stream of batches, and this run changes them: "
        f"{'; '.join(differences)}. Resume with the checkpoint's values, or start a new run "
        "in another --trainer.default_root_dir"
    )


def find_last(
    directory: str | Path, identity: dict[str, Any] | None = None
) -> tuple[Path | None, list[tuple[Path, list[str]]]]:
    """The run's latest checkpoint in ``directory`` (None: there is none), and the newer ones
    that belong to other runs (each with how its identity differs). With ``identity``, a
    checkpoint whose recorded identity differs is another run's and is passed over."""
    others = []
    for path in last_candidates(directory):
        recorded = run_identity_of(path) if identity is not None else None
        if identity is None or recorded is None:
            return path, others
        differences = identity_differences(recorded, identity)
        if not differences:
            return path, others
        others.append((path, differences))
    return None, others


def next_last_name(directory: str | Path) -> str:
    """``last.ckpt``, or the first ``last-vN.ckpt`` not yet in ``directory``."""
    directory, name, n = Path(directory), "last.ckpt", 0
    while (directory / name).exists():
        n += 1
        name = f"last-v{n}.ckpt"
    return name


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
    does about a change: a changed lr is applied (and said), a changed global batch refused.
    Under ``MINCDataModule`` the data module's stream, restored first, has already refused any
    change of the per-device batch, processes or accumulation the global batch follows from;
    this is the check under any other data module."""

    KEY = "minc_lightning"

    def __init__(self) -> None:
        self.before: dict[str, Any] = {}

    def save(self, checkpoint: dict[str, Any], plan: Any) -> None:
        """Record the plan's lr, global batch and applied EMA values (``plan.RunPlan``)."""
        applied = {k: v.applied for k, v in plan.emas.items()}
        checkpoint[self.KEY] = {"lr": plan.lr, "global_batch": plan.global_batch, "emas": applied}

    def load(self, checkpoint: dict[str, Any]) -> None:
        self.before = dict(checkpoint.get(self.KEY, {}))

    def check(self, plan: Any, path: str | None = None) -> str | None:
        """Raise on a changed batch size (resuming ``path``); return the message for a changed
        lr or EMA value (None if the same)."""
        before, lr, global_batch = self.before, plan.lr, plan.global_batch
        if before.get("global_batch", global_batch) != global_batch:
            # its step count, the schedules' horizon and its place in the epoch are in batches
            batch = f"global batch: {before['global_batch']} there, {global_batch} here"
            raise resume_refused(path, [batch])
        changed = [
            f"{k} {v.applied:.6g} instead of the checkpoint's {before['emas'][k]:.6g}"
            for k, v in plan.emas.items()
            if k in before.get("emas", {}) and before["emas"][k] != v.applied
        ]
        if not math.isclose(before.get("lr", lr), lr, rel_tol=1e-9):
            changed.insert(0, f"lr {lr:.4g} instead of the checkpoint's {before['lr']:.4g}")
        if not changed:
            return None
        return (
            f"MINCModule: resuming with {', '.join(changed)}; the schedules continue from the "
            "restored step with them."
        )


# --- a run's identity --------------------------------------------------------------------------
# The settings that fix the stream of training batches: the data module records them
# (``MINCDataModule.stream``, with the processes and accumulation the global batch follows from)
# and refuses a resume that changes one. Each is checked there, once, with one message.
STREAM = (
    "data.dataset",
    "data.seed",
    "data.train_subset",
    "data.batch_size",
    "data.local_views",
    "data.drop_last",
    "data.order",
    "data.chunk_window",
    "model.batch_size",  # the CLI's copies of data.batch_size and data.local_views (cli.LINKED)
    "model.local_views",
)
# Settings that may change on resume without making it another run: how long it trains, how
# fast the batches are made, where it logs, and the learning rate (applied from the restored step).
NOT_IDENTITY = (
    "ckpt_path",
    "trainer",
    "checkpoint",
    "lambda_pictures",
    "model.lr",
    "model.num_classes",  # follows data.dataset (the CLI links it when it builds the module)
    "data.root",
    "data.num_workers",
    "data.augment_on",
    "data.cache_bytes",
    "data.pin_memory",
    "data.download",
    "config",
)


def under(key: str, names: tuple[str, ...]) -> bool:
    """Whether a flat config key (``data.seed``) is one of ``names`` or inside one."""
    return any(key == k or key.startswith(k + ".") for k in names)


def global_seed() -> int | bool:
    """The seed Lightning's ``seed_everything`` gave this process (``PL_GLOBAL_SEED``, which it
    documents), or False when none: the value the CLI's ``seed_everything`` resolves to."""
    seed = os.environ.get("PL_GLOBAL_SEED")
    return int(seed) if seed else False


def run_identity(model: Mapping[str, Any], data: Mapping[str, Any]) -> dict[str, Any]:
    """What makes a run this run: the process's global seed, the model's and the data's
    settings (less ``NOT_IDENTITY`` and private keys) and, in a W&B sweep, the W&B run id. Flat
    keys, plain values. A config's ``model`` and ``data`` sections give the same identity as the
    hyper-parameters the module and data module save from them."""
    flat: dict[str, Any] = {"seed_everything": global_seed()}

    def walk(prefix: str, value: Any) -> None:
        value = value.as_dict() if hasattr(value, "as_dict") else value  # a config Namespace
        if under(prefix, NOT_IDENTITY) or prefix.rpartition(".")[2].startswith("_"):
            return
        if isinstance(value, Mapping):
            for key, inner in value.items():
                walk(f"{prefix}.{key}", inner)
        else:
            flat[prefix] = list(value) if isinstance(value, tuple) else value

    walk("model", model)
    walk("data", data)
    flat = {
        k: v if isinstance(v, (int, float, str, bool, list, type(None))) else str(v)
        for k, v in flat.items()
    }
    if os.environ.get("WANDB_SWEEP_ID") and os.environ.get("WANDB_RUN_ID"):
        flat["wandb.run_id"] = os.environ["WANDB_RUN_ID"]
    return flat


def any_run_id(differences: list[str]) -> bool:
    """Whether two run identities differ in their W&B run id (another run of a sweep)."""
    return any(d.startswith("wandb.run_id:") for d in differences)
