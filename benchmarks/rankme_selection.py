"""Does RankMe choose the runs the linear probe would? Label-free model selection, measured.

Trains the quickstart (``configs/quickstart.yaml``, Fashion-MNIST, the small ConvNet) at a
shorter budget over a grid of settings that changes the representation (the objective, the
learning rate, MINC's ``mu``) and seeds, and records after the last epoch each run's ``val/rankme``
(``minc_lightning.callbacks.RankMe``, on the validation images, no label read) and the frozen
backbone's linear top-1 and kNN top-1 (``minc-lightning-eval``'s protocol). Runs go to
``docs/data/rankme_selection.json`` as each ends; an interrupted script continues where it
stopped. ``benchmarks/report.py`` computes the rank correlations and their verdicts
(``verdicts.rank_agreement``) into docs/results.md.

    python -m benchmarks.rankme_selection          # 18 runs, about 40 minutes on 2 cores
"""

from __future__ import annotations

import argparse
import itertools
import tempfile
from pathlib import Path

from benchmarks.common import CLI_HELP, DATA, ROOT
from benchmarks.runner import Curve, fit_with_curve, run_missing
from minc_lightning.callbacks import RankMe

CONFIG = ROOT / "configs" / "quickstart.yaml"
BUDGET = [
    "--data.train_subset=5000",
    "--trainer.max_epochs=2",
    "--trainer.logger=false",
]
# objective, lr, mu: settings whose representations differ in accuracy and in spread
GRID = [
    *({"objective": "minc", "lr": lr, "mu": mu} for lr in (0.5, 2.0) for mu in (1.0, 16.0)),
    *({"objective": o, "lr": lr} for o in ("byol", "spectral") for lr in (0.5, 2.0)),
    {"objective": "minc", "lr": 8.0, "mu": 1.0},
]


def train(setting: dict) -> dict:
    """One run of ``setting``: its final val/rankme, linear and kNN top-1."""
    args = [f"--model.{key}={value}" for key, value in setting.items() if key != "seed"]
    args += [f"--seed_everything={setting['seed']}", *BUDGET]
    with tempfile.TemporaryDirectory() as tmp:
        curve = Curve([], Path(tmp) / "curve.json", {}, baselines=False)
        rankme = RankMe()
        fit_with_curve(curve, CONFIG, Path(tmp) / "run", args, extra_callbacks=[rankme])
        point = curve.result["points"][-1]
    result = {"rankme": rankme.last, "linear": point["linear"], "knn": point["knn"]}
    print(f"{setting}: {result}", flush=True)
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], epilog=CLI_HELP)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--out", type=Path, default=DATA / "rankme_selection.json")
    args = p.parse_args()
    settings = [s | {"seed": seed} for s, seed in itertools.product(GRID, args.seeds)]
    runs = run_missing(args.out, settings, train)
    print(f"{len(runs)} runs in {args.out}")


if __name__ == "__main__":
    main()
