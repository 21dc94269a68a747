"""What the benchmarks that train share: a fit through the ``minc-lightning`` CLI with callbacks
added, the score of its end (``final_point``) by ``minc-lightning-eval``'s protocol, and
``run_missing``, which trains only the settings a results file lacks and saves after each run.
"""

from __future__ import annotations

import copy
import fcntl
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

import torch
from lightning.pytorch import Callback

from benchmarks.common import score
from minc_lightning.commands.fit import run_cli
from minc_lightning.diagnostics import lambda_diagnostics
from minc_lightning.errors import Diverged
from minc_lightning.loss import MINCLoss
from minc_lightning.scoring import Pixels, reinitialise

DIVERGED = {"knn": float("-inf"), "linear": float("-inf")}  # the scores of a diverged fit

__all__ = ["Curve", "Pixels", "final_point", "fit_with_curve", "protocol_score", "run_missing"]


def protocol_score(backbone: torch.nn.Module, dm) -> dict[str, float]:
    """kNN (k=200) and linear (100 epochs) top-1, as ``minc-lightning-eval`` scores by default,
    on the device the backbone is on: scoring moves it there, and a backbone moved to the CPU
    in the middle of a GPU run would stop its next training step."""
    device = next(backbone.parameters(), torch.empty(0)).device  # the pixels have no weights
    return score(backbone, dm, device, knn_k=200, linear_epochs=100)


class Curve(Callback):
    """Offline accuracy after the epochs in ``epochs``; training seconds exclude evaluation."""

    def __init__(self, epochs: list[int], out: Path, meta: dict, baselines: bool = True) -> None:
        self.epochs = set(epochs)
        self.out = out
        self.baselines = baselines
        self.result = {**meta, "points": [], "baselines": {}}
        self.train_seconds = 0.0
        self.started = 0.0

    def save(self) -> None:
        self.out.write_text(json.dumps(self.result, indent=1))

    def on_train_start(self, trainer, pl_module) -> None:
        dm = trainer.datamodule
        if self.baselines:
            for name, net in (("pixels", Pixels()), ("random_init", self.random(pl_module))):
                self.result["baselines"][name] = protocol_score(net, dm)
                print(f"baseline {name}: {self.result['baselines'][name]}", flush=True)
        self.save()
        self.started = time.time()

    @staticmethod
    def random(pl_module) -> torch.nn.Module:
        """A copy of the recipe's backbone (before training) with every weight re-initialised."""
        torch.manual_seed(0)
        return reinitialise(copy.deepcopy(pl_module.backbone))

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self.train_seconds += time.time() - self.started
        epoch = trainer.current_epoch + 1
        if epoch in self.epochs or epoch == trainer.max_epochs:
            dm = trainer.datamodule
            point = {"epoch": epoch, "train_seconds": self.train_seconds}
            point |= protocol_score(pl_module.backbone, dm)
            # where Λ stands (the fourth claim of docs/method.md §6) and how hard it pulls
            if isinstance(pl_module.criterion, MINCLoss):
                point |= lambda_state(pl_module.criterion)
            self.result["points"].append(point)
            print(f"epoch {epoch}: {point}", flush=True)
            self.save()
        self.started = time.time()


def lambda_state(loss: MINCLoss) -> dict:
    """Λ's diagnostics (``lambda_diagnostics``), its diagonal in index order and the last
    training batch's pull of the Λ term against the alignment term (``MINCLoss.pull_ratio``)."""
    stats = lambda_diagnostics(loss.second_moment, top_k=4)
    stats["diagonal"] = loss.second_moment.diagonal().tolist()
    if loss.pull_ratio is not None:
        stats["pull_ratio"] = loss.pull_ratio.item()
    return stats


def fit_with_curve(
    curve: Curve,
    config: Path,
    run_dir: Path,
    cli_args: list[str],
    extra_callbacks: list[Callback] = (),
) -> None:
    """``minc-lightning fit --config config`` with the curve's callback (and any others) added."""
    sys.argv = sys.argv[:1]  # the CLI below reads its own arguments, not this script's
    cli = run_cli(  # built, not run: fit is called here with the curve callback added
        [
            f"--config={config}",
            f"--trainer.default_root_dir={run_dir}",
            f"--trainer.logger.init_args.save_dir={run_dir}",
            "--trainer.enable_progress_bar=false",
            *cli_args,
        ],
        run=False,
    )
    cli.trainer.callbacks.extend([*extra_callbacks, curve])
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)


def final_point(
    config: Path,
    run_dir: Path,
    cli_args: list[str],
    baselines: bool = False,
    extra_callbacks: list[Callback] = (),
) -> dict:
    """Train ``config`` and score the end of training as the curve does: the wall seconds of the
    whole fit, then the epoch, training seconds, kNN and linear accuracy (and, with
    ``baselines``, the pixels' and the random network's scores under ``"baselines"``).

    A fit that diverges is a result, not a crash of the study that asked for it (a rate past the
    top of a tuning grid often does): its accuracies are −∞, so it is never chosen, and
    ``"diverged"`` holds the reason."""
    with tempfile.TemporaryDirectory() as tmp:
        curve = Curve([], Path(tmp) / "curve.json", {}, baselines=baselines)
        started = time.time()
        try:
            fit_with_curve(curve, config, run_dir, cli_args, extra_callbacks)
        except Diverged as error:
            return {"wall_seconds": time.time() - started, "diverged": str(error)} | DIVERGED
        wall_seconds = time.time() - started
    point = {"wall_seconds": wall_seconds} | curve.result["points"][-1]
    return point | ({"baselines": curve.result["baselines"]} if baselines else {})


def _read(out: Path) -> dict:
    try:
        return json.loads(out.read_text()) if out.exists() else {"runs": []}
    except json.JSONDecodeError as error:  # the runs it holds took hours: never overwrite them
        raise SystemExit(f"{out} is not valid JSON ({error}); mend or move it") from error


@contextmanager
def _locked(out: Path):
    """Holds a lock on ``out``'s folder (no lock file is left behind): two studies writing one
    file keep each other's runs."""
    folder = os.open(out.parent, os.O_RDONLY)
    try:
        fcntl.flock(folder, fcntl.LOCK_EX)
        yield
    finally:
        os.close(folder)  # closing releases the lock


def run_missing(out: Path, settings: list[dict], train: Callable[[dict], dict]) -> list[dict]:
    """``train(setting)`` for each setting that ``out`` (a JSON file of ``{"runs": [...]}``)
    does not hold yet, saving after every run so that an interrupted script resumes; returns
    every run. A run holds a setting when it has each of the setting's keys and values.

    The file is read again before each setting and under a lock before each save, so that
    processes sharing the file (one tuning batch 32, another batch 256, each on its own core)
    neither train a setting another has saved, nor save one twice, nor drop another's runs."""
    out.parent.mkdir(parents=True, exist_ok=True)  # before hours of training, not after

    def held(setting: dict, runs: list[dict]) -> bool:
        return any(setting.items() <= run.items() for run in runs)

    for setting in settings:
        if held(setting, _read(out)["runs"]):
            continue
        run = setting | train(setting)
        with _locked(out):
            result = _read(out)
            if held(setting, result["runs"]):  # another process trained it meanwhile: keep one
                continue
            result["runs"].append(run)
            partial = out.with_name(out.name + ".partial")  # a kill mid-write keeps the old file
            partial.write_text(json.dumps(result, indent=1))
            partial.replace(out)
        print(json.dumps(run), flush=True)
    return _read(out)["runs"]
