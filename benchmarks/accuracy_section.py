"""docs/results.md's real-data comparisons of the objectives (``reproduce.py``'s batch sweep,
``objectives_at_budget.py``): accuracy tables and plots beside the pixels and a random network."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from benchmarks.claims import (
    TUNED,
    Verdict,
    baselines,
    pm,
    tuned_rows,
)
from benchmarks.objectives_at_budget import chosen_lrs
from benchmarks.page import bullets, saved, table
from benchmarks.rows import Row, accuracy_rows, budget, cells, values
from benchmarks.verdicts import BYOL_MARGIN, CHANCE
from minc_lightning.objectives import OBJECTIVES

RULES = (
    'Rules: the t rule of section 1; "close to BYOL" holds when every MINC mean is above '
    f"twice chance ({200 * CHANCE:.0f}%) and, at every batch size, the equivalence test puts "
    f"MINC within {100 * BYOL_MARGIN:g} point of BYOL; the pixel baseline is one deterministic "
    "number (no spread)."
)


# --- 2. real data -------------------------------------------------------------------------------
def accuracy_table(
    rows: list[Row], baseline_rows: list[tuple[str, str, str]], minutes: bool
) -> str:
    """Mean ± sd over seeds per objective and batch, under rows of (name, kNN, linear)
    baselines; with ``minutes``, each cell's mean training minutes too."""
    by = cells(rows)
    header = [
        "features",
        "batch",
        *(["training minutes"] if minutes else []),
        "kNN top-1 (%)",
        "linear top-1 (%)",
    ]
    out = [[n, "–", *(["–"] if minutes else []), k, li] for n, k, li in baseline_rows]
    for o in OBJECTIVES:
        for b in sorted({b for _, b in by}):
            rs = by.get((o, b), [])
            if rs:
                cost = [f"{np.mean([r['train_seconds'] for r in rs]) / 60:.1f}"] if minutes else []
                out.append(
                    [o, str(b), *cost, pm([r["knn"] for r in rs]), pm([r["linear"] for r in rs])]
                )
    return table(header, "lr" + "r" * (len(header) - 2), out)


def accuracy_figure(rows: list[Row], pixels: dict | None, floor: dict | None) -> plt.Figure:
    """kNN and linear accuracy against batch size per objective (mean ± sd over seeds), with
    the pixels and the random network as horizontal lines."""
    sizes = sorted({r["batch"] for r in rows})
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for ax, metric in zip(axes, ("knn", "linear"), strict=True):
        if pixels:
            ax.axhline(100 * pixels[metric], color="black", ls=":", label="raw pixels")
        if floor:
            ax.axhline(100 * floor[metric], color="gray", ls="--", label="random init")
        for o in OBJECTIVES:
            acc = values(rows, metric, objective=o)
            vals = [100 * np.array(v) for v in acc.values()]
            ax.errorbar(
                list(acc),
                [v.mean() for v in vals],
                yerr=[v.std() for v in vals],
                marker="o",
                capsize=3,
                label=o,
            )
        ax.set_xscale("log", base=2)
        ax.set_xticks(sizes, [str(s) for s in sizes])
        ax.set(xlabel="batch size", ylabel=f"{metric} top-1 (%)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    return fig


def real_bullets(verdicts: list[Verdict], evidence: str) -> str:
    """Each metric's verdicts on one real-data evidence, linear first."""
    keys = ("every", "small_vs_large", "byol", "pixels")
    mine = [v for v in verdicts if v.evidence == evidence and v.claim.key in keys]
    ordered = sorted(mine, key=lambda v: (v.metric != "linear", keys.index(v.claim.key)))
    return bullets(ordered, prefix=True)


def machine(budget: dict) -> str:
    """The machine the runs were made on, as reproduce.py recorded it (never this process's)."""
    args, ran_on = budget.get("args", {}), budget.get("machine")
    if args.get("device", "cpu") != "cpu":
        return f"one {args['device']} device"
    if ran_on is None:  # recorded before reproduce.py kept the machine
        return "a CPU (its threads were not recorded)"
    return f"{ran_on['arch']} CPU ({ran_on['threads']} threads)"


BASELINE_NAMES = {
    "pixels": "raw pixels (784 values)",
    "random_init": "the network, randomly initialised",
}


def comparison_context(
    comparison: dict, name: str, verdicts: list[Verdict], docs: Path
) -> dict | None:
    """benchmarks/objectives_at_budget.py: the three objectives at one config's budget."""
    rows = accuracy_rows(comparison.get("runs", []), budget(name))
    if not rows:
        return None
    base = baselines(comparison)
    base_rows = [
        (BASELINE_NAMES[k], f"{100 * v['knn']:.2f}", f"{100 * v['linear']:.2f}")
        for k, v in base.items()
    ]
    fig = accuracy_figure(rows, base.get("pixels"), base.get("random_init"))
    return {
        "name": name,
        "runs": len(comparison["runs"]),
        "hours": f"{sum(r['wall_seconds'] for r in comparison['runs']) / 3600:.1f}",
        "table": accuracy_table(rows, base_rows, minutes=True),
        "figure": saved(fig, docs, f"objectives_{name}.png"),
        "verdicts": real_bullets(verdicts, budget(name)),
        "rules": RULES,
    }


def tuned_context(comparison: dict, name: str, verdicts: list[Verdict], docs: Path) -> dict | None:
    """benchmarks/objectives_at_budget.py with the lr chosen per objective and batch size."""
    from benchmarks.objectives_at_budget import SELECTION_SEED

    evidence = f"{budget(name)}, {TUNED}"
    rows = tuned_rows(comparison, evidence)
    runs = comparison.get("runs", [])
    if not runs:
        return None
    selection = [r for r in runs if r["seed"] == SELECTION_SEED]
    lrs = sorted({r["lr"] for r in selection})
    chosen = chosen_lrs(selection, SELECTION_SEED)
    lr_rows = []
    for o in OBJECTIVES:
        for b in sorted({r["batch_size"] for r in selection}, reverse=True):
            mine = {
                r["lr"]: r["linear"]
                for r in selection
                if (r["objective"], r["batch_size"]) == (o, b)
            }
            if mine:
                lr_rows.append(
                    [o, str(b)]
                    + [
                        ("**{:.2f}**" if chosen.get((o, b)) == lr else "{:.2f}").format(
                            100 * mine[lr]
                        )
                        if lr in mine
                        else "–"
                        for lr in lrs
                    ]
                )
    base = baselines(comparison)
    base_rows = [
        (BASELINE_NAMES[k], f"{100 * v['knn']:.2f}", f"{100 * v['linear']:.2f}")
        for k, v in base.items()
    ]
    load = load_note(runs)
    at_edge = [cell for cell, lr in chosen.items() if lrs and lr in (lrs[0], lrs[-1])]
    edge = (
        f"\nThe chosen lr lies at an end of the grid in {len(at_edge)} of {len(chosen)} cells "
        "(objective, batch): the best rate may lie beyond it."
        if at_edge
        else ""
    )
    context = {
        "edge": edge,
        "name": name,
        "runs": len(runs),
        "hours": f"{sum(r['wall_seconds'] for r in runs) / 3600:.1f}",
        "grid": ", ".join(f"{lr:g}" for lr in lrs),
        "selection_seed": SELECTION_SEED,
        "seeds": ", ".join(str(s) for s in sorted({r["seed"] for r in rows})) or "none yet",
        "load": load,
        "lr_table": table(
            ["objective", "batch", *(f"lr {lr:g}" for lr in lrs)], "lr" + "r" * len(lrs), lr_rows
        ),
        "table": accuracy_table(rows, base_rows, minutes=True)
        if rows
        else "No reported seed has finished yet.",
        "figure": saved(
            accuracy_figure(rows, base.get("pixels"), base.get("random_init")),
            docs,
            f"tuned_{name}.png",
        )
        if rows
        else "",
        "verdicts": real_bullets(verdicts, evidence)
        or "No verdict until every objective has a reported seed.",
        "rules": RULES,
    }
    return context


def load_note(runs: list[dict]) -> str:
    """What the load average says about the timings (rule: above 1.5 per CPU, they include other
    work)."""
    loads = [r["load_average"] / r["cpus"] for r in runs if "load_average" in r]
    if loads and max(loads) > 1.5:
        return (
            f"The load average at the end of the runs was up to {max(loads):.1f} per CPU, so the "
            "training minutes include time the machine spent on other work (rule: above 1.5 per "
            "CPU)."
        )
    highest = max(loads, default=0)
    return f"The load average at the end of the runs stayed at or below {highest:.1f} per CPU."
