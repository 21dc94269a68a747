"""MINC, the spectral contrastive loss (SCL) and BYOL at the quickstart's budget, where MINC's
features beat the raw pixels on linear accuracy: batch 64 and 256, three seeds each.

Every run is ``configs/quickstart.yaml`` (3 epochs over a fixed 20k-image subset of
Fashion-MNIST, ConvNet width 32, LARS at base lr 2.0 × batch/256) with only the objective, the
batch size and the seed changed, so every objective sees the same images, augmentations, heads,
schedule and number of samples. The learning rate is the one ``quickstart_search.py`` chose for
MINC; SCL and BYOL get the same, untuned (an advantage to MINC, if anything). Each run is scored
as ``minc-lightning-eval`` scores (kNN k=200 and linear, 100 epochs; the 20k images as the bank,
the 10k validation images), next to the raw pixels and the random network under the same
protocol. Training seconds exclude evaluation.

    python benchmarks/objectives_quickstart.py     # 18 runs of 3-5 minutes (about 80 minutes)

Writes ``docs/data/objectives_quickstart.json`` (runs already there are kept, not repeated);
``benchmarks/report.py`` turns it into verdicts in docs/results.md.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from common import DATA, ROOT
from recipe_curve import final_point, run_missing

OBJECTIVES = ("minc", "spectral", "byol")


def train(setting: dict) -> dict:
    """One quickstart run with ``setting``'s objective, batch size and seed; the first run
    (MINC, batch 256, seed 0: the quickstart itself) also scores the two baselines."""
    objective, batch, seed = setting["objective"], setting["batch_size"], setting["seed"]
    return final_point(
        ROOT / "configs" / "quickstart.yaml",
        ROOT / "runs" / "objectives_quickstart" / f"{objective}_{batch}_{seed}",
        [
            f"--model.objective={objective}",
            f"--data.batch_size={batch}",
            f"--seed_everything={seed}",
        ],
        baselines=(objective, batch, seed) == ("minc", 256, 0),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objectives", nargs="+", default=list(OBJECTIVES), choices=OBJECTIVES)
    parser.add_argument("--batch_sizes", type=int, nargs="+", default=[256, 64])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", type=Path, default=DATA / "objectives_quickstart.json")
    args = parser.parse_args()
    settings = [
        {"objective": objective, "batch_size": batch, "seed": seed}
        for seed in args.seeds  # seed by seed: an interrupted run leaves every cell comparable
        for batch in args.batch_sizes
        for objective in args.objectives
    ]
    run_missing(args.out, settings, train)
    print(f"wrote {args.out}; python benchmarks/report.py draws it")


if __name__ == "__main__":
    main()
