"""Where does Λ act on real data? MINC over ``mu`` (the rows' squared norm, or none), ``alpha``
and tril(Λ) against full Λ, beside BYOL, at the quickstart's budget (issue 35, item 1).

Every run is ``configs/quickstart.yaml`` (Fashion-MNIST, the small ConvNet, 3 epochs) with only
the setting's values changed: ``mu`` None (rows as the network makes them, as on the exact
benchmark, where Λ orders) or 1 to d = 128, with and without the predictor. At the end of
training it records what says whether Λ acts:

* linear and kNN top-1, scored as ``minc-lightning-eval`` scores;
* ``pull_ratio``: the Λ term's gradient in p against the alignment term's, in root mean square
  (``MINCLoss.pull_ratio``, the last training batch's; 0 trains as BYOL);
* how Λ's trace spreads: ``participation`` (Σλ)²/Σλ² and ``top4_share``;
* the ordering: off-diagonal energy, ``diag_sorted`` and the diagonal itself, tril against full.

A run that ends with a non-finite loss or Λ is recorded as diverged (its accuracy is that of the
network it left). Runs go to ``docs/data/where_lambda_acts.json`` as each ends; an interrupted
script continues where it stopped.

    python -m benchmarks.lambda_settings              # 15 runs of seed 0, about 80 minutes
    python -m benchmarks.lambda_settings --seeds 1 2  # the same grid again
"""

from __future__ import annotations

import argparse
import itertools
import math
from pathlib import Path

from benchmarks.common import CLI_HELP, DATA, ROOT
from benchmarks.runner import final_point, run_missing

CONFIG = ROOT / "configs" / "quickstart.yaml"
QUICKSTART = {"mu": 1.0, "triangular": True, "alpha": 0.1, "lr": 2.0, "use_predictor": True}


def minc(**changed) -> dict:
    """A MINC setting, every value named (a run holds a setting when it has all of them)."""
    return {"objective": "minc"} | QUICKSTART | changed


GRID = [  # the most telling first: an interrupted study has them
    {"objective": "byol", "lr": 2.0},
    *(minc(mu=mu, triangular=tril) for mu, tril in itertools.product((1.0, None), (True, False))),
    # without the predictor, whose freedom removes tril's ordering on the linear problem of
    # tests/test_gha.py: the loss then sees the projector the target is a copy of
    *(
        minc(mu=mu, triangular=tril, use_predictor=False)
        for mu, tril in itertools.product((1.0, None), (True, False))
    ),
    *(minc(mu=mu, triangular=tril) for mu, tril in itertools.product((16.0, 128.0), (True, False))),
    # the EMA rate of Λ where its pull is about twice the alignment's: slower, the batch's own
    *(minc(mu=16.0, alpha=alpha) for alpha in (0.01, 1.0)),
]


def arguments(setting: dict) -> list[str]:
    """The CLI arguments that make ``setting`` of the quickstart."""
    args = [f"--seed_everything={setting['seed']}"]
    for key, value in setting.items():
        if key != "seed":
            text = "null" if value is None else str(value).lower()  # JSON's, as the CLI reads
            args.append(f"--model.{key}={text}")
    return args


def name(setting: dict) -> str:
    return "_".join(f"{k}{v}" for k, v in setting.items())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], epilog=CLI_HELP)
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    # not lambda_<name>.json: report.py reads those as lambda_at_budget.py's
    p.add_argument("--out", type=Path, default=DATA / "where_lambda_acts.json")
    p.add_argument("--run_dir", type=Path, default=ROOT / "runs" / "lambda_settings")
    args, cli_args = p.parse_known_args()  # the CLI checks the rest

    def train(setting: dict) -> dict:
        point = final_point(CONFIG, args.run_dir / name(setting), arguments(setting) + cli_args)
        finite = all(math.isfinite(v) for v in point.values() if isinstance(v, float))
        return point | {"diverged": not finite}

    settings = [s | {"seed": seed} for seed, s in itertools.product(args.seeds, GRID)]
    runs = run_missing(args.out, settings, train)
    print(f"{len(runs)} runs in {args.out}")


if __name__ == "__main__":
    main()
