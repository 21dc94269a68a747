"""MINC, the spectral contrastive loss (SCL) and BYOL at one recipe's budget, each at its own
learning rate: batch 64 and 256, scored against the raw pixels and the random network.

Every run is the recipe's config with only the objective, the batch size, the learning rate and
the seed changed, so every objective sees the same images, augmentations, heads, schedule and
number of samples. The moving averages follow the EMA scaling rule (``ema_scaling``, the
module's default): at batch 64 Λ's rate and the target's momentum are the config's per-256
values carried to 64 images per update.

The learning rate is chosen per objective and batch size, on a selection seed that is not
reported: each factor of ``--lr_factors`` times the config's ``lr`` (per 256 images) is trained
once, and the one with the highest linear top-1 is kept. The fresh ``--seeds`` are then trained
at the chosen rate and are what the report shows. Each run is scored as ``minc-lightning-eval``
scores (kNN k=200 and linear, 100 epochs, on the config's training images as the bank and the
validation images); the first run also scores the two baselines. Training seconds exclude
evaluation; the load average at the end of each run is kept beside them, since a timing taken
while the machine did other work is not a timing of the run alone.

    python -m benchmarks.objectives_at_budget      # the quickstart: 36 runs, about 2.5 hours

The figures in docs/data/objectives_quickstart.json (one rate for every objective, the rate
chosen for MINC, EMAs per step) come from the same script as

    python -m benchmarks.objectives_at_budget --name objectives --lr_factors 1 \\
        --model.ema_scaling=false

Writes ``docs/data/<name>_<config name>.json`` after every run (runs already there are kept,
not repeated, so an interrupted script continues where it stopped); ``benchmarks/report.py``
turns it into verdicts in docs/results.md.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import yaml

from benchmarks.common import CLI_HELP, DATA, ROOT
from benchmarks.runner import final_point, run_missing
from minc_lightning.objectives import OBJECTIVES

SELECTION_SEED = 100  # never one of the reported seeds


def chosen_lrs(runs: list[dict], seed: int) -> dict[tuple[str, int], float]:
    """(objective, batch) → the lr of the selection seed's run with the highest linear top-1;
    a tie goes to the smaller lr."""
    best: dict[tuple[str, int], dict] = {}
    for run in (r for r in runs if r["seed"] == seed):
        key = (run["objective"], run["batch_size"])
        if key not in best or (run["linear"], -run["lr"]) > (best[key]["linear"], -best[key]["lr"]):
            best[key] = run
    return {key: run["lr"] for key, run in best.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], epilog=CLI_HELP)
    parser.add_argument("--config", type=Path, default=ROOT / "configs" / "quickstart.yaml")
    names = list(OBJECTIVES)  # minc, spectral, byol: the package's registry
    parser.add_argument("--objectives", nargs="+", default=names, choices=names)
    parser.add_argument("--batch_sizes", type=int, nargs="+", default=[256, 64])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--lr_factors", type=float, nargs="+", default=[0.5, 1.0, 2.0])
    parser.add_argument("--selection_seed", type=int, default=SELECTION_SEED)
    parser.add_argument("--name", default="tuned", help="the file: <name>_<config name>.json")
    parser.add_argument("--out", type=Path, default=DATA)
    args, cli_args = parser.parse_known_args()  # the CLI checks the rest: --trainer.devices=2
    if args.selection_seed in args.seeds:
        parser.error(f"--selection_seed {args.selection_seed} is one of the reported --seeds")
    base_lr = float(yaml.safe_load(args.config.read_text())["model"]["lr"])
    out = args.out / f"{args.name}_{args.config.stem}.json"
    first = True

    def train(setting: dict) -> dict:
        nonlocal first
        objective, batch, seed = setting["objective"], setting["batch_size"], setting["seed"]
        run_dir = f"{args.name}_{objective}_{batch}_{setting['lr']:g}_{seed}"
        point = final_point(
            args.config,
            ROOT / "runs" / "objectives" / args.config.stem / run_dir,
            [
                f"--model.objective={objective}",
                f"--model.lr={setting['lr']}",
                f"--data.batch_size={batch}",
                f"--seed_everything={seed}",
                *cli_args,
            ],
            baselines=first,
        )
        first = False
        return point | {"load_average": os.getloadavg()[0], "cpus": os.cpu_count()}

    cells = [(objective, batch) for batch in args.batch_sizes for objective in args.objectives]
    if len(args.lr_factors) > 1:
        selection = [
            {"objective": o, "batch_size": b, "seed": args.selection_seed, "lr": base_lr * f}
            for o, b in cells
            for f in args.lr_factors
        ]
        lrs = chosen_lrs(run_missing(out, selection, train), args.selection_seed)
        print("chosen lr per 256:", {f"{o} at {b}": lr for (o, b), lr in lrs.items()}, flush=True)
    else:
        lrs = {cell: base_lr * args.lr_factors[0] for cell in cells}
    reported = [
        {"objective": o, "batch_size": b, "seed": seed, "lr": lrs[o, b]}
        for seed in args.seeds  # seed by seed: an interrupted run leaves every cell comparable
        for o, b in cells
    ]
    run_missing(out, reported, train)
    print(f"wrote {out}; python -m benchmarks.report draws it")


if __name__ == "__main__":
    main()
