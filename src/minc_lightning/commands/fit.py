"""The ``minc-lightning`` command: LightningCLI over MINCModule and MINCDataModule.

    minc-lightning fit --config configs/imagenet.yaml
    minc-lightning fit --config configs/imagenet.yaml --ckpt_path last   # resume
    minc-lightning fit --config configs/imagenet.yaml --ckpt_path last_if_present  # preemptible

On top of LightningCLI: ``model.num_classes`` follows ``data.num_classes``; the run's resumable
state goes to ``<trainer.default_root_dir>/checkpoints/last.ckpt`` at every epoch end, every
``checkpoint.every_n_train_steps`` steps and on SIGTERM/SIGUSR1, after which the run exits with
75 (``ResumableCheckpoint``); a W&B sweep's run writes under ``<default_root_dir>/<run id>``;
``--ckpt_path last`` resumes this run's latest checkpoint (never another run's from the same
folder) and is an error when there is none, ``last_if_present`` starts afresh then (a
preemptible job's restart); on every route, a checkpoint file named by its path included, the
settings given win over the checkpoint's and those a resume cannot change are refused
(``resume_refused``); a ``fast_dev_run`` smoke test writes no
checkpoint; before training the checkpoint to resume is read and the output folders are checked
writable, after it the checkpoint the summary names is read back; a picture of Λ goes to the
logger and the run folder every ``lambda_pictures.every_n_epochs`` (10) epochs and at the end;
the resolved config is saved with each run and sent to W&B; a W&B run resumed from a checkpoint
reuses its run id; without W&B credentials, or when W&B's server cannot be reached within
seconds, the W&B logger runs offline instead of failing; a run ends with a short summary.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch
import yaml
from lightning.pytorch.cli import LightningCLI
from lightning.pytorch.utilities import rank_zero_info
from lightning.pytorch.utilities.exceptions import SIGTERMException

from minc_lightning.callbacks.checkpoint import (
    PREEMPTED_EXIT,
    Preempted,
    ResumableCheckpoint,
    checkpoint_folder,
)
from minc_lightning.callbacks.lambda_pictures import LambdaPictures
from minc_lightning.callbacks.progress import LineProgress
from minc_lightning.callbacks.save_config import LoggerSaveConfigCallback
from minc_lightning.callbacks.summary import WANDB_ID_KEY, RunSummary
from minc_lightning.checkpoint_files import (
    RUN_KEY,
    any_run_id,
    find_last,
    identity_differences,
    load_checkpoint,
    resume_refused,
    run_identity,
)
from minc_lightning.cli_context import cli_builds
from minc_lightning.data.module import MINCDataModule
from minc_lightning.errors import BadInput, MissingPath, NotWritable, reports_user_errors
from minc_lightning.module import MINCModule
from minc_lightning.wandb_setup import configure_wandb

RESUME_IF_PRESENT = "last_if_present"  # --ckpt_path value: resume when a checkpoint exists


def check_writable(directory: str | Path, what: str) -> None:
    """Create ``directory`` if needed and write a file in it, or say which folder and why not."""
    directory = Path(directory)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=directory, prefix=".write-check-"):
            pass
    except OSError as err:
        raise NotWritable(
            f"minc-lightning: cannot write the {what} to {directory} ({err.strerror or err}); "
            "choose another --trainer.default_root_dir (and logger save_dir) before training."
        ) from err


class MINCLightningCLI(LightningCLI):
    @staticmethod
    def subcommands() -> dict[str, set[str]]:
        """``fit`` and ``validate`` only: MINCModule has no ``test_step`` and no ``forward`` for
        ``predict``, so Lightning's ``test`` and ``predict`` could only fail after loading
        everything (and each subcommand's parser costs a quarter second to build)."""
        return {k: v for k, v in LightningCLI.subcommands().items() if k in ("fit", "validate")}

    def add_arguments_to_parser(self, parser) -> None:
        parser.link_arguments("data.num_classes", "model.num_classes", apply_on="instantiate")
        for target, source in LINKED.items():
            if target != "model.num_classes":
                parser.link_arguments(source, target)
        parser.add_lightning_class_args(ResumableCheckpoint, "checkpoint")
        parser.add_lightning_class_args(LambdaPictures, "lambda_pictures")  # every_n_epochs

    def parse_arguments(self, parser, args) -> None:
        refuse_linked_settings(sys.argv[1:] if args is None else args)
        super().parse_arguments(parser, args)
        # Right after this hook, Lightning's CLI replaces model.* by the hyper-parameters of a
        # checkpoint *file* named by ckpt_path, silently dropping the settings this run was
        # given, and reads the file with torch's own errors. fit takes the path from here and
        # reads it itself (before_instantiate_classes): the same settings and the same errors as
        # with --ckpt_path last. validate keeps Lightning's way, once the file reads.
        subcommand = self.config.get("subcommand")
        self.requested_ckpt: str | None = None
        if subcommand == "fit":
            self.requested_ckpt = self.config.fit.get("ckpt_path")
            self.config.fit.ckpt_path = None
        elif subcommand == "validate" and (path := self.config.validate.get("ckpt_path")):
            load_checkpoint(path)

    def instantiate_classes(self) -> None:
        with cli_builds():  # the module saves its backbone's config, not the object
            super().instantiate_classes()

    def before_instantiate_classes(self) -> None:
        """The config's preparation, one named step per job: a sweep run's own folder, the
        run's identity, plain progress lines for a log file, the checkpoint to resume (checked
        against the identity) and W&B's mode and run id."""
        config = self.config.get(self.subcommand, self.config) if self.subcommand else self.config
        trainer = config.get("trainer", {})
        fit = self.subcommand == "fit"
        if fit:
            place_sweep_run(trainer)
        # the identity ResumableCheckpoint will record, from the sections it builds from: it
        # picks this run's checkpoint before anything is built
        self.identity = run_identity(config["model"], config["data"]) if fit else None
        if trainer.get("enable_progress_bar") is not False and not sys.stdout.isatty():
            # a log file, not a terminal: plain lines instead of carriage-return bar updates
            callbacks = self.trainer_defaults["callbacks"]
            self.trainer_defaults["callbacks"] = [*callbacks, LineProgress()]
        resumed = self.checkpoint_to_resume(config, trainer) if fit else {}
        configure_wandb(config, resumed.get(WANDB_ID_KEY))

    def checkpoint_to_resume(self, config: Any, trainer: dict) -> dict:
        """Sets ``ckpt_path`` to the checkpoint this fit resumes (``last`` resolved) and returns
        it, read once now so that a damaged file is named before anything starts; one written
        with settings a resume cannot change is refused."""
        dirpath = (config.get("checkpoint") or {}).get("dirpath")
        folder = checkpoint_folder(dirpath, trainer.get("default_root_dir"))
        requested = getattr(self, "requested_ckpt", None) or config.get("ckpt_path")
        config["ckpt_path"] = self.resolve_ckpt_path(requested, folder, self.identity)
        resumed = load_checkpoint(config["ckpt_path"]) if config["ckpt_path"] else {}
        if config["ckpt_path"] and self.identity is not None and resumed.get(RUN_KEY):
            changed = identity_differences(resumed[RUN_KEY], self.identity)
            changed = [d for d in changed if not d.startswith("wandb.run_id:")]
            if changed:  # the same refusal as `last` gives for this run's folder
                raise resume_refused(config["ckpt_path"], changed)
        return resumed

    @staticmethod
    def resolve_ckpt_path(
        ckpt_path: str | None, folder: Path, identity: dict[str, Any] | None = None
    ) -> str | None:
        """``last``: this run's latest checkpoint in ``folder``, an error when there is none;
        ``last_if_present``: the same, or None (start afresh). Checkpoints whose recorded run
        identity differs from ``identity`` belong to another run and are never picked."""
        if ckpt_path in ("last", RESUME_IF_PRESENT):
            found, others = find_last(folder, identity)
            changed = [(p, d) for p, d in others if not any_run_id(d)]
            if found is None and changed:  # this run, with settings it cannot change
                raise resume_refused(*changed[0])
            foreign = "; ".join(
                f"{path.name}: it belongs to another run ({', '.join(diff[:3])})"
                for path, diff in others[:3]
            )
            if found is None and ckpt_path == "last":
                raise MissingPath(
                    f"--ckpt_path last: no checkpoint of this run in {folder} to resume"
                    + (f" ({foreign})" if foreign else "")
                    + ". Check --trainer.default_root_dir, or pass --ckpt_path last_if_present "
                    "to start afresh when there is none (a preemptible job's restart)."
                )
            if foreign:
                rank_zero_info(f"minc-lightning: not resuming {foreign}")
            if found is None:
                rank_zero_info(f"minc-lightning: no checkpoint of this run in {folder} yet")
            ckpt_path = str(found) if found else None
        if ckpt_path:
            rank_zero_info(f"minc-lightning: resuming from {ckpt_path}")
        return ckpt_path

    def before_fit(self) -> None:
        """Every folder the run writes to is writable before any step is taken."""
        trainer = self.trainer
        checkpoints = trainer.checkpoint_callback
        if checkpoints is not None and not trainer.fast_dev_run:
            dirpath = getattr(checkpoints, "dirpath", None)
            check_writable(checkpoint_folder(dirpath, trainer.default_root_dir), "checkpoints")
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


# Settings the CLI sets from another one: given by themselves, jsonargparse's error is about
# a "callable"; here it says where to set them.
LINKED = {
    "model.batch_size": "data.batch_size",  # the learning rate scales with it
    "model.num_classes": "data.num_classes",
    "model.local_views": "data.local_views",  # multi-crop's views
}


def place_sweep_run(trainer: dict) -> None:
    """Every run of a W&B sweep in its own folder under the configured one, so that a restarted
    run finds only its own state."""
    if sweep_run := os.environ.get("WANDB_SWEEP_ID"):
        run_id = os.environ.get("WANDB_RUN_ID") or sweep_run
        trainer["default_root_dir"] = str(Path(trainer.get("default_root_dir") or ".") / run_id)
        rank_zero_info(f"minc-lightning: W&B sweep run {run_id} in {trainer['default_root_dir']}")


def refuse_linked_settings(args: Any) -> None:
    """Stop, naming where to set it, when the command line or a ``--config`` file sets a
    setting of ``LINKED``."""
    if not isinstance(args, list):
        return
    given: list[str] = []
    for i, token in enumerate(args):
        name, _, value = str(token).partition("=")
        given += [k for k in LINKED if name in (f"--{k}", f"--{k.replace('.', '.init_args.')}")]
        if name == "--config":
            path = Path(value or (args[i + 1] if i + 1 < len(args) else ""))
            model = (yaml.safe_load(path.read_text()) or {}).get("model") if path.is_file() else {}
            if isinstance(model, dict):
                model = model.get("init_args", model)
                given += [k for k in LINKED if k.split(".")[1] in model]
    if given:
        key = given[0]
        raise BadInput(
            f"{key} is set from {LINKED[key]}, not by itself: set --{LINKED[key]} instead"
            + (" (the learning rate scales with it)" if key == "model.batch_size" else "")
        )


@reports_user_errors("minc-lightning")
def main() -> None:
    try:
        run_cli()
    except (Preempted, SIGTERMException) as stop:
        where = getattr(stop, "path", "") or "the previous checkpoint (none written since)"
        print(
            f"minc-lightning: stopped by a signal; resumable state: {where}. Exit "
            f"{PREEMPTED_EXIT}: run the same command with --ckpt_path last_if_present to go on.",
            file=sys.stderr,
        )
        sys.exit(PREEMPTED_EXIT)


if __name__ == "__main__":
    main()
