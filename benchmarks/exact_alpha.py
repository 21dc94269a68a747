"""Λ's rate tuned per cell on the exact benchmark (issue 35, item 4), as lr is.

``spectral_exact.py`` tunes MINC's alpha (per 256 pairs) once, at batch 64, and carries it to
every batch by the EMA rule, 1 − (1 − alpha)^(batch/256); only lr is chosen per cell. Here
(lr, alpha) are chosen per cell (objective × batch) on the same selection seeds, over alpha per
256 in ``ALPHAS`` and lr in the three rates around the cell's chosen one (extended by a factor
of 2 while the best is at an end), then the same fresh seeds are run at the cell's choice. The
report sets each cell's tuned alpha (per 256 and per step) and final J/J* beside the carried
value's, paired by seed.

    python -m benchmarks.exact_alpha     # about 500 runs of the exact benchmark, ~1 CPU-hour

Reads the graph, the lr choices and the carried runs from ``docs/data/spectral_exact.json``;
writes ``docs/data/exact_alpha.json`` after every cell (an interrupted script continues).
"""

from __future__ import annotations

import argparse
import json
import os
from multiprocessing import get_context
from pathlib import Path

from benchmarks import spectral_exact as exact
from benchmarks.common import DATA

ALPHAS = (0.1, 0.3, 0.5, 0.7, 0.9, 1.0)
MINC = ("minc_tril", "minc_full")
SELECT_SEEDS = (1000, 1001)  # spectral_exact.py's selection seeds


def job(store: dict, objective: str, batch: int, lr: float, alpha: float, seed: int) -> tuple:
    config = store["config"]
    rate = exact.rate_at(alpha, objective, batch)
    return (
        objective,
        batch,
        lr,
        seed,
        config["samples"],
        config["k"],
        rate,
        config["evals"],
        alpha,
    )


def todo(runs: list[dict], objective: str, batch: int, centre: float) -> list[tuple]:
    """(lr, alpha) still to train for one cell: every alpha at the three rates around
    ``centre``, then a factor of 2 beyond an end of the lr grid that holds the best pair."""
    mine = [r for r in runs if (r["objective"], r["batch"]) == (objective, batch)]
    tried = {(r["base_lr"], r["alpha_per_256"]) for r in mine}
    wanted = [(lr, a) for lr in (centre / 2, centre, centre * 2) for a in ALPHAS]
    missing = [pair for pair in wanted if pair not in tried]
    if missing:
        return missing
    lr, alpha = exact.best(mine, ("base_lr", "alpha_per_256"))
    lrs = sorted({r["base_lr"] for r in mine if r["alpha_per_256"] == alpha})
    beyond = lr * 2 if lr == lrs[-1] else lr / 2 if lr == lrs[0] else None
    return [] if beyond is None else [(beyond, alpha)]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=DATA / "exact_alpha.json")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = p.parse_args()
    store = json.loads((DATA / "spectral_exact.json").read_text())
    config = store["config"]
    result = (
        json.loads(args.out.read_text()) if args.out.exists() else {"selection": [], "runs": []}
    )
    # the carried value's selection runs are the older script's: the same seeds and pairs
    carried = [r for r in store["selection"] if r["objective"] in MINC]
    graph = dict(nodes=config["nodes"], clusters=config["clusters"], seed=config["graph_seed"])

    def save() -> None:
        args.out.write_text(json.dumps(result))

    with get_context("spawn").Pool(args.workers, exact._init, (graph,)) as pool:
        for objective in MINC:
            for batch in config["batches"]:
                centre = store["chosen"][objective][str(batch)]
                while pairs := todo(carried + result["selection"], objective, batch, centre):
                    jobs = [
                        job(store, objective, batch, *pair, s)
                        for pair in pairs
                        for s in SELECT_SEEDS
                    ]
                    ran = pool.map(exact._run, jobs, chunksize=1)
                    result["selection"] += [
                        {k: v for k, v in r.items() if k != "curve"} for r in ran
                    ]
                    save()
                cell = [
                    r
                    for r in carried + result["selection"]
                    if (r["objective"], r["batch"]) == (objective, batch)
                ]
                lr, alpha = exact.best(cell, ("base_lr", "alpha_per_256"))
                done = {(r["objective"], r["batch"], r["seed"]) for r in result["runs"]}
                fresh = [
                    job(store, objective, batch, lr, alpha, s)
                    for s in range(config["seeds"])
                    if (objective, batch, s) not in done
                ]
                result["runs"] += pool.map(exact._run, fresh, chunksize=1)
                save()
                print(f"{objective} at {batch}: lr {lr}, alpha per 256 {alpha}", flush=True)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
