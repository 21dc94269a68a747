"""MINC, the spectral contrastive loss (SCL) and BYOL at one recipe's budget: batch 64 and 256,
three seeds each, scored against the raw pixels and the random network.

Every run is the recipe's config with only the objective, the batch size and the seed changed,
so every objective sees the same images, augmentations, heads, schedule and number of samples.
The learning rate is the config's (chosen for MINC: for the quickstart by
``quickstart_search.py``); SCL and BYOL run at it untuned, an advantage to MINC if anything.
Each run is scored as ``minc-lightning-eval`` scores (kNN k=200 and linear, 100 epochs, on the
config's training images as the bank and the validation images); the first run also scores the
two baselines under the same protocol. Training seconds exclude evaluation.

    python benchmarks/objectives_at_budget.py      # the quickstart: 18 runs, about 80 minutes
    python benchmarks/objectives_at_budget.py --config configs/fashion_mnist.yaml  # 18 hours

Writes ``docs/data/objectives_<config name>.json`` (runs already there are kept, not
repeated); ``benchmarks/report.py`` turns it into verdicts in docs/results.md.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from common import CLI_HELP, DATA, ROOT
from recipe_curve import final_point, run_missing

from minc_lightning.objectives import OBJECTIVES


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], epilog=CLI_HELP)
    parser.add_argument("--config", type=Path, default=ROOT / "configs" / "quickstart.yaml")
    names = list(OBJECTIVES)  # minc, spectral, byol: the package's registry
    parser.add_argument("--objectives", nargs="+", default=names, choices=names)
    parser.add_argument("--batch_sizes", type=int, nargs="+", default=[256, 64])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", type=Path, default=DATA)
    args, cli_args = parser.parse_known_args()  # the CLI checks the rest: --trainer.devices=2
    settings = [
        {"objective": objective, "batch_size": batch, "seed": seed}
        for seed in args.seeds  # seed by seed: an interrupted run leaves every cell comparable
        for batch in args.batch_sizes
        for objective in args.objectives
    ]

    def train(setting: dict) -> dict:
        objective, batch, seed = setting["objective"], setting["batch_size"], setting["seed"]
        return final_point(
            args.config,
            ROOT / "runs" / "objectives" / args.config.stem / f"{objective}_{batch}_{seed}",
            [
                f"--model.objective={objective}",
                f"--data.batch_size={batch}",
                f"--seed_everything={seed}",
                *cli_args,
            ],
            baselines=setting == settings[0],
        )

    out = args.out / f"objectives_{args.config.stem}.json"
    run_missing(out, settings, train)
    print(f"wrote {out}; python benchmarks/report.py draws it")


if __name__ == "__main__":
    main()
