"""Does tril(Λ) drive Λ towards a diagonal with decreasing entries (docs/method.md §6, the fourth
claim) at one recipe's budget? MINC with ``triangular`` on and off, three seeds each.

Every run is the config (the quickstart's by default) with only ``model.triangular`` and the
seed changed. At the end of training it records Λ's off-diagonal energy ‖Λ - diag Λ‖²/‖Λ‖² (0
for a diagonal) and the share of adjacent diagonal entries in decreasing order (1 for ordered),
next to kNN and linear accuracy scored as ``minc-lightning-eval`` scores.

    python -m benchmarks.lambda_at_budget      # the quickstart: 6 runs, about 20 minutes

Writes ``docs/data/lambda_<config name>.json`` (runs already there are kept, not repeated);
``benchmarks/report.py`` turns it into a verdict in docs/results.md.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from benchmarks.common import CLI_HELP, DATA, ROOT
from benchmarks.runner import final_point, run_missing


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], epilog=CLI_HELP)
    parser.add_argument("--config", type=Path, default=ROOT / "configs" / "quickstart.yaml")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", type=Path, default=DATA)
    args, cli_args = parser.parse_known_args()  # the CLI checks the rest

    def train(setting: dict) -> dict:
        triangular, seed = setting["triangular"], setting["seed"]
        name = f"{'tril' if triangular else 'full'}_{seed}"
        return final_point(
            args.config,
            ROOT / "runs" / "lambda" / args.config.stem / name,
            [
                "--model.objective=minc",
                f"--model.triangular={str(triangular).lower()}",
                f"--seed_everything={seed}",
                *cli_args,
            ],
        )

    out = args.out / f"lambda_{args.config.stem}.json"
    settings = [{"triangular": t, "seed": s} for s in args.seeds for t in (True, False)]
    run_missing(out, settings, train)
    print(f"wrote {out}; python -m benchmarks.report draws it")


if __name__ == "__main__":
    main()
