"""Accuracy against training time for one recipe, against the raw pixels and a random network.

Trains a recipe through the ``minc-lightning`` CLI and, after chosen epochs, evaluates the
frozen online backbone offline with the protocol of ``minc-lightning-eval`` (weighted kNN,
k=200, T=0.1; a linear classifier, 100 epochs, on standardised features), on the recipe's own
training and validation splits under the eval transform. The same protocol scores the raw
pixels and the randomly initialised network. Evaluation time is not counted as training time.

    python -m benchmarks.recipe_curve --config configs/fashion_mnist.yaml   # about 70 minutes
    python -m benchmarks.recipe_curve --config configs/quickstart.yaml --eval_epochs 1 3

Writes ``docs/data/recipe_<config name>.json``; ``benchmarks/report.py`` draws it.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from benchmarks.common import CLI_HELP, DATA, ROOT
from benchmarks.runner import Curve, fit_with_curve


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], epilog=CLI_HELP)
    p.add_argument("--config", type=Path, default=ROOT / "configs" / "fashion_mnist.yaml")
    p.add_argument("--eval_epochs", type=int, nargs="+", default=[1, 2, 4, 8, 12])
    p.add_argument("--out", type=Path, default=DATA)
    p.add_argument("--run_dir", type=Path, default=ROOT / "runs" / "recipe_curve")
    args, cli_args = p.parse_known_args()  # the CLI checks the rest, e.g. --trainer.max_epochs=4
    args.out.mkdir(parents=True, exist_ok=True)
    out = args.out / f"recipe_{args.config.stem}.json"
    meta = {
        "config": args.config.read_text(),
        "cli_args": cli_args,
        "threads": torch.get_num_threads(),
    }
    fit_with_curve(Curve(args.eval_epochs, out, meta), args.config, args.run_dir, cli_args)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
