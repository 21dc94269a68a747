"""Estimators inside one network (issue 35, item 2): what MINC's Λ adds to the network it trains.

At the quickstart's budget (``configs/quickstart.yaml``: Fashion-MNIST, the small ConvNet, 3
epochs), at batches 32, 64 and 256, four estimators:

* ``minc``: the EMA of tril(Λ), the package's MINC;
* ``batch_moment``: the same network with the batch's own moment (``alpha = 1``, full Λ): SCL's
  pair-term gradient inside the BYOL network (docs/method.md §2 item 5);
* ``byol``: the same network with no Λ term;
* ``scl``: the spectral contrastive loss in its own network (no predictor, no target), the
  paper's baseline.

The first three differ only in the Λ term, so their differences are differences of estimators.

Tuning, on a selection seed that is never reported, cell by cell (estimator × batch):

1. lr (per 256 images, scaled linearly) over factors of 2 from {1, 2, 4} at batch 64, and at
   the other batches from batch 64's tuned rate and its two neighbours (at batch 64's mu and
   alpha: the search then need not climb from lr 1 again), extended by another factor of 2
   whenever the best rate is at an end of the grid, so that the chosen rate always lies inside
   its grid (a tie goes to the smaller rate);
2. ``mu`` (1 or 16) where the loss reads it, at that rate;
3. ``alpha`` (0.01, 0.1, 1) for ``minc``, at that rate and ``mu``;
4. when 2 or 3 moved the setting, lr is bracketed again at the new setting.

The reported runs use fresh seeds (0, 1, 2 unless told), two ways: every batch at the setting
tuned at batch 64, carried by the package's rules (linear lr, the EMA rule for alpha and the
target's momentum), trained first; then each cell at its own tuned setting. Seeds 3 and 4 are
added at a batch whose first seeds leave MINC against SCL or BYOL undecided (``undecided``).
Runs that the older comparison (``tuned_quickstart.json``) made at exactly these settings are
taken over, marked ``from``.

    python -m benchmarks.estimators   # 158 runs of its own, 2.5 minutes each alone: 9.4 hours

Writes ``docs/data/estimators.json`` after every run; an interrupted script continues where it
stopped (``run_missing``). ``benchmarks/report.py`` judges it. Once batch 64 is tuned, the other
batches may be tuned at once, one process per core sharing the file:

    OMP_NUM_THREADS=1 python -m benchmarks.estimators --batch_sizes 64 256 &
    OMP_NUM_THREADS=1 python -m benchmarks.estimators --batch_sizes 64 32
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from benchmarks.common import CLI_HELP, DATA, ROOT
from benchmarks.runner import final_point, run_missing
from benchmarks.verdicts import (
    BYOL_MARGIN,
    DIFFERENT,
    EQUIVALENT,
    Sample,
    compare,
    equivalence_by_seed,
)

CONFIG = ROOT / "configs" / "quickstart.yaml"
SELECTION_SEED = 100
DEFAULT = {"alpha": 0.1, "mu": 1.0}  # the quickstart's
LR_START = (1.0, 2.0, 4.0)
LR_BOUNDS = (1 / 16, 256.0)  # a rate beyond these is not tried: the grid's end is then said
MUS = (1.0, 16.0)
ALPHAS = (0.01, 0.1, 1.0)
MORE_SEEDS = (3, 4)  # added where a comparison is still undecided on the first seeds
CARRY_FROM = 64  # the batch tuned from the defaults; the others start from its setting

# estimator → (the model's settings, which of alpha and mu are tuned)
ESTIMATORS: dict[str, tuple[dict, tuple[str, ...]]] = {
    "minc": ({"objective": "minc", "triangular": True}, ("mu", "alpha")),
    "batch_moment": ({"objective": "minc", "triangular": False, "alpha": 1.0}, ("mu",)),
    "byol": ({"objective": "byol"}, ()),
    "scl": ({"objective": "spectral"}, ("mu",)),
}


def setting(estimator: str, batch: int, seed: int, lr: float, **tuned: float) -> dict:
    """A run's setting: every value that is tuned for the estimator is named (defaults filled)."""
    names = ESTIMATORS[estimator][1]
    values = {k: tuned.get(k, DEFAULT[k]) for k in names}
    return {"estimator": estimator, "batch_size": batch, "seed": seed, "lr": lr} | values


def _key(run: dict) -> tuple:
    return (run["linear"], -run["lr"])  # the higher accuracy; on a tie the smaller rate


def best(runs: list[dict]) -> dict | None:
    return max(runs, key=_key, default=None)


def lr_to_try(runs: list[dict], start: tuple[float, ...] = LR_START) -> list[float]:
    """The rates still to train for one setting whose only free value is lr: ``start``, then one
    factor of 2 beyond whichever end holds the best rate (none once it is inside, or at
    ``LR_BOUNDS``)."""
    tried = sorted({r["lr"] for r in runs})
    low, high = LR_BOUNDS
    missing = [lr for lr in start if lr not in tried and low <= lr <= high]
    if missing:
        return missing
    chosen = best(runs)["lr"]
    if chosen == tried[-1] and chosen * 2 <= high:
        return [chosen * 2]
    if chosen == tried[0] and chosen / 2 >= low:
        return [chosen / 2]
    return []


def _at(runs: list[dict], **values) -> list[dict]:
    return [r for r in runs if all(r.get(k) == v for k, v in values.items())]


def selection(
    runs: list[dict], estimator: str, batch: int, carry_from: int = CARRY_FROM
) -> tuple[list[dict], dict | None]:
    """Where tuning one cell stands, from the selection seed's runs so far: the settings still
    to train and, once there are none, the chosen setting (lr, and mu and alpha where tuned);
    None before. lr first, then mu, then alpha at that lr, then lr bracketed again around it
    where they moved. At ``carry_from`` the search starts at the defaults and ``LR_START``; at
    another batch, once ``carry_from`` is tuned, at its setting and its lr's two neighbours
    (nothing to train before). Pure: the tests feed it invented accuracies."""
    names = ESTIMATORS[estimator][1]
    mine = _at(runs, estimator=estimator, batch_size=batch, seed=SELECTION_SEED)
    chosen, start = {k: DEFAULT[k] for k in names}, LR_START
    if batch != carry_from:
        carried = selection(runs, estimator, carry_from, carry_from)[1]
        if carried is None:
            return [], None
        lr = carried.pop("lr")
        chosen, start = carried, (lr / 2, lr, lr * 2)

    def todo(values: dict, lrs: list[float]) -> tuple[list[dict], None]:
        return [setting(estimator, batch, SELECTION_SEED, r, **values) for r in lrs], None

    if lrs := lr_to_try(_at(mine, **chosen), start):
        return todo(chosen, lrs)
    lr = best(_at(mine, **chosen))["lr"]
    for name, grid in (("mu", MUS), ("alpha", ALPHAS)):
        if name not in names:
            continue
        for value in grid:
            if not _at(mine, lr=lr, **(chosen | {name: value})):
                return todo(chosen | {name: value}, [lr])
        others = {k: v for k, v in chosen.items() if k != name}
        chosen[name] = best(_at(mine, lr=lr, **others))[name]
    if lrs := lr_to_try(_at(mine, **chosen), (lr / 2, lr, lr * 2)):
        return todo(chosen, lrs)
    return [], {"lr": best(_at(mine, **chosen))["lr"]} | chosen


def scores(runs: list[dict], estimator: str, batch: int, chosen: dict) -> Sample:
    """Linear top-1 of the reported (fresh-seed) runs at ``chosen``, with their seeds."""
    mine = [
        r
        for r in runs
        if (r["estimator"], r["batch_size"]) == (estimator, batch)
        and r["seed"] != SELECTION_SEED
        and all(r.get(k) == v for k, v in chosen.items())
    ]
    return Sample([r["linear"] for r in mine], [r["seed"] for r in mine])


def undecided(runs: list[dict], batch: int, chosen: dict[str, dict], batches: int = 3) -> bool:
    """Whether the seeds so far leave a comparison at ``batch`` open, by the rules that judge the
    claims over ``batches`` batch sizes (each test at ALPHA / ``batches``): MINC against SCL
    ties, or MINC − BYOL is neither equivalent within ``BYOL_MARGIN`` nor beyond it.
    ``chosen``: each estimator's setting."""
    minc, scl, byol = (scores(runs, e, batch, chosen[e]) for e in ("minc", "scl", "byol"))
    if min(len(minc), len(scl), len(byol)) < 2:
        return False  # nothing to judge yet
    verdict, _ = equivalence_by_seed(minc, byol, BYOL_MARGIN, tests=batches)
    return compare(minc, scl, tests=batches) == "tie" or verdict not in (EQUIVALENT, DIFFERENT)


def arguments(run: dict) -> list[str]:
    """The CLI arguments that make ``run``'s setting of the quickstart."""
    model, _ = ESTIMATORS[run["estimator"]]
    values = model | {k: run[k] for k in ("lr", "mu", "alpha") if k in run}
    args = [f"--data.batch_size={run['batch_size']}", f"--seed_everything={run['seed']}"]
    return args + [f"--model.{k}={str(v).lower()}" for k, v in values.items()]


OLD_NAMES = {"minc": "minc", "spectral": "scl", "byol": "byol"}


def taken_over(path: Path) -> list[dict]:
    """The runs of the older comparison, which trained the config's defaults (alpha 0.1, mu 1)
    with only the objective, batch, lr and seed changed: as settings of this study."""
    if not path.exists():
        return []
    runs = []
    for old in json.loads(path.read_text())["runs"]:
        run = setting(OLD_NAMES[old["objective"]], old["batch_size"], old["seed"], old["lr"])
        runs.append(run | {k: v for k, v in old.items() if k not in run and k != "objective"})
        runs[-1]["from"] = path.name
    return runs


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], epilog=CLI_HELP)
    p.add_argument("--batch_sizes", type=int, nargs="+", default=[64, 256, 32])  # 64 first
    p.add_argument("--estimators", nargs="+", default=list(ESTIMATORS), choices=list(ESTIMATORS))
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--carry_from", type=int, default=CARRY_FROM, help="the batch tuned first")
    p.add_argument("--out", type=Path, default=DATA / "estimators.json")
    p.add_argument("--take_over", type=Path, default=DATA / "tuned_quickstart.json")
    p.add_argument("--run_dir", type=Path, default=ROOT / "runs" / "estimators")
    args, cli_args = p.parse_known_args()  # the CLI checks the rest
    if SELECTION_SEED in args.seeds:
        p.error(f"seed {SELECTION_SEED} selects the settings; it cannot be reported")
    if not args.out.exists():
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"runs": taken_over(args.take_over)}, indent=1))

    def train(run: dict) -> dict:
        name = "_".join(f"{k}{v}" for k, v in run.items())
        point = final_point(CONFIG, args.run_dir / name, arguments(run) + cli_args)
        return point | {"load_average": os.getloadavg()[0]}

    def select(batch: int) -> list[dict]:
        while True:
            runs = run_missing(args.out, [], train)
            todo = [
                s for e in args.estimators for s in selection(runs, e, batch, args.carry_from)[0]
            ]
            if not todo:
                return runs
            run_missing(args.out, todo, train)

    def report(batch: int, label: str, source: int, close_only: bool = False) -> None:
        """The fresh seeds at ``source``'s settings; with ``close_only``, ``MORE_SEEDS`` where
        the first ones leave a comparison open (and nothing elsewhere)."""
        runs = run_missing(args.out, [], train)
        chosen = {e: selection(runs, e, source, args.carry_from)[1] for e in args.estimators}
        seeds = args.seeds
        if close_only:
            close = set(ESTIMATORS) <= set(chosen) and undecided(runs, batch, chosen, len(batches))
            seeds = [seed for seed in MORE_SEEDS if close and seed not in args.seeds]
        reported = [
            setting(e, batch, seed, **chosen[e])
            for seed in seeds  # seed by seed: an interrupted study stays comparable
            for e in args.estimators
        ]
        print(f"batch {batch}, {label}: {len(reported)} reported settings", flush=True)
        run_missing(args.out, reported, train)

    # the carried setting first at every batch (it needs only batch 64's tuning), so that an
    # interrupted study already compares the estimators at each batch; then more seeds where a
    # comparison is close; then each cell's own setting
    select(args.carry_from)
    batches = [args.carry_from] + [b for b in args.batch_sizes if b != args.carry_from]
    for close_only in (False, True):
        for batch in batches:
            report(batch, "carried", args.carry_from, close_only)
    for batch in batches[1:]:
        select(batch)
        for close_only in (False, True):
            report(batch, "tuned", batch, close_only)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
