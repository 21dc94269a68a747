"""docs/results.md and its plots, from the raw results in docs/data/.

    python -m benchmarks.report      # redraw from the JSON files in docs/data/

Three parts, each in one place: the rules (``verdicts.py``), the claims and their verdicts
(``claims.py``, judged once on uniform rows from ``rows.py``), and the prose
(``docs/data/results.template.md``). This module computes each section's tables and plots and
fills the template; a section appears only when its benchmark has results.
"""

from __future__ import annotations

import json
import math
import re
from collections import defaultdict
from pathlib import Path
from string import Template

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import torch

from benchmarks import rankme_section, streaming_section, where_lambda_section
from benchmarks.claims import (
    EXACT_ONE_SETTING,
    TUNED,
    Evidence,
    Verdict,
    baselines,
    better_local_predictor,
    default_local_predictor,
    finals_by_rate,
    find,
    judge_all,
    judge_prediction,
    lambda_groups,
    multicrop_evidence,
    multicrop_groups,
    pm,
    spectrum_runs,
    tuned_rows,
)
from benchmarks.common import DATA, ROOT
from benchmarks.objectives_at_budget import chosen_lrs
from benchmarks.rows import SHORT, Row, accuracy_rows, budget, cells, exact_rows, sweep_rows, values
from benchmarks.verdicts import BYOL_MARGIN, CHANCE, VARIANCE_FACTOR
from minc_lightning.objectives import OBJECTIVES

matplotlib.use("Agg")  # files, never a window
TEMPLATE = DATA / "results.template.md"
EXACT_OBJECTIVES = {"minc_tril": "MINC, tril(Λ)", "minc_full": "MINC, full Λ", "scl": "SCL"}
RULES = (
    'Rules: the t rule of section 1; "close to BYOL" holds when every MINC mean is above '
    f"twice chance ({200 * CHANCE:.0f}%) and, at every batch size, the equivalence test puts "
    f"MINC within {100 * BYOL_MARGIN:g} point of BYOL; the pixel baseline is one deterministic "
    "number (no spread)."
)


# --- the template -------------------------------------------------------------------------------
def sections(template: Path = TEMPLATE) -> dict[str, Template]:
    """The template's sections by name: the text after each ``<!-- section: name -->`` line."""
    parts = re.split(r"^<!-- section: (\w+) -->\n", template.read_text(), flags=re.M)
    return {name: Template(text[:-1]) for name, text in zip(parts[1::2], parts[2::2], strict=True)}


def table(header: list[str], align: str, rows: list[list[str]]) -> str:
    """A markdown table; ``align`` holds one of "l" / "r" per column."""
    rule = "|" + "".join("---|" if a == "l" else "---:|" for a in align)
    return "\n".join(
        ["| " + " | ".join(header) + " |", rule] + ["| " + " | ".join(r) + " |" for r in rows]
    )


def bullets(verdicts: list[Verdict], prefix: bool = False) -> str:
    return "\n".join(f"- {v.metric + ': ' if prefix else ''}{v.line()}" for v in verdicts)


def saved(fig, docs: Path, name: str) -> str:
    fig.tight_layout()
    fig.savefig(docs / name, dpi=110)
    plt.close(fig)
    return f"![{name[:-4].replace('_', ' ')}]({name})"


# --- 1. the exact benchmark ---------------------------------------------------------------------
def exact_numbers(rows: list[Row]) -> dict[str, dict[tuple[str, int], list[float]]]:
    """final J/J*, mean alignment and largest principal angle per (objective, batch)."""
    out: dict = {key: defaultdict(list) for key in ("final", "align", "angle")}
    for r in rows:
        for key in out:
            if key in r:
                out[key][(r["objective"], r["batch"])].append(r[key])
    return out


def exact_figure(exact: dict, runs: list[dict], n: dict, batches: list[int]) -> plt.Figure:
    """Final J/J* against batch, J/J* during training at the extreme batches, and each
    dimension's alignment with its eigenfunction at the smallest batch."""
    fig, axes = plt.subplots(1, 3, figsize=(15, 3.8))
    for (o, label), color in zip(EXACT_OBJECTIVES.items(), ("C0", "C1", "C2"), strict=True):
        vals = [np.asarray(n["final"][(o, b)]) for b in batches]
        axes[0].errorbar(
            batches,
            [v.mean() for v in vals],
            yerr=[v.std() for v in vals],
            marker="o",
            capsize=3,
            label=label,
            color=color,
        )
        for b, style in ((batches[0], "-"), (batches[-1], "--")):
            curves = [
                r["curve"]
                for r in runs
                if (r["objective"], r["batch"]) == (o, b) and r["diverged_at"] is None
            ]
            if curves:
                xs = [c[0] for c in curves[0]]
                ys = np.mean([[c[1] for c in cv] for cv in curves], axis=0)
                axes[1].plot(xs, ys, style, color=color, label=f"{label}, batch {b}")
        al = [
            r["alignment"]
            for r in runs
            if (r["objective"], r["batch"]) == (o, batches[0]) and r["alignment"]
        ]
        if al:
            axes[2].plot(
                range(1, exact["config"]["k"] + 1),
                np.mean(al, axis=0),
                marker="o",
                color=color,
                label=label,
            )
    axes[0].set(
        xscale="log", xlabel="batch size", ylabel="final J/J*", title="population objective reached"
    )
    axes[0].set_xticks(batches, [str(b) for b in batches])
    axes[1].set(
        xlabel="positive pairs seen", ylabel="J/J*", title="J/J* during training", ylim=(0, 1.02)
    )
    axes[2].set(
        xlabel="embedding dimension j",
        ylabel="|cos(dimension j, eigenfunction j)|",
        title=f"ordering at batch {batches[0]}",
        ylim=(0, 1.02),
    )
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    return fig


def final_table(n: dict, batches: list[int], lr: dict) -> str:
    """Final J/J* per batch and objective, with the base lr it ran at in brackets."""
    return table(
        ["batch", *EXACT_OBJECTIVES.values()],
        "r" * (1 + len(EXACT_OBJECTIVES)),
        [
            [str(b)]
            + [f"{pm(n['final'][(o, b)], 1, 4)} [{lr[o][str(b)]:g}]" for o in EXACT_OBJECTIVES]
            for b in batches
        ],
    )


def ordering_table(n: dict, batches: list[int]) -> str:
    names = list(EXACT_OBJECTIVES.values())
    return table(
        ["batch", *(f"{v} alignment" for v in names), *(f"{v} angle" for v in names)],
        "r" * (1 + 2 * len(names)),
        [
            [str(b)]
            + [pm(n["align"].get((o, b), [math.nan]), 1, 3) for o in EXACT_OBJECTIVES]
            + [pm(n["angle"].get((o, b), [math.nan]), 1, 1) for o in EXACT_OBJECTIVES]
            for b in batches
        ],
    )


def grid_table(exact: dict) -> str:
    cfg, groups = exact["config"], defaultdict(list)
    for r in exact["selection"]:
        groups[(r["objective"], r["batch"], r["base_lr"])].append(r)
    rows = []
    for o, label in EXACT_OBJECTIVES.items():
        for b in cfg["batches"]:
            rows.append([label, str(b), *(cell(groups[(o, b, lr)]) for lr in cfg["lrs"])])
    return table(
        ["objective", "batch", *(f"{lr:g}" for lr in cfg["lrs"])],
        "lr" + "r" * len(cfg["lrs"]),
        rows,
    )


def exact_context(exact: dict, verdicts: list[Verdict], docs: Path) -> dict:
    cfg = exact["config"]
    n = exact_numbers(exact_rows(exact["runs"]))
    batches = sorted({b for _, b in n["final"]})
    alpha = (
        f"MINC's alpha = {cfg['alpha']}"
        if "alpha" in cfg
        else "MINC's alpha per 256 pairs (tuned at batch {}: tril(Λ) {:g}, full Λ {:g}), scaled "
        "to each batch by the EMA rule".format(
            exact["one_setting"]["batch"],
            *(exact["alpha_per_256"][o] for o in ("minc_tril", "minc_full")),
        )
    )
    diverged = [r for r in exact["selection"] + exact["runs"] if r["diverged_at"] is not None]
    return {
        "minutes": f"{exact['seconds'] / 60:.1f}",
        "workers": cfg["workers"],
        "nodes": cfg["graph"]["nodes"],
        "clusters": cfg["graph"]["clusters"],
        "spectrum": ", ".join(f"{v:.3f}" for v in exact["spectrum"]),
        "k": cfg["k"],
        "j_star": f"{exact['j_star']:.4f}",
        "samples": f"{cfg['samples']:,}",
        "alpha_text": alpha,
        "seeds": cfg["seeds"],
        "final_table": final_table(n, batches, exact["chosen"]),
        "ordering_table": ordering_table(n, batches),
        "figure": saved(
            exact_figure(exact, exact["runs"], n, batches), docs, "exact_objective.png"
        ),
        "verdicts": bullets([v for v in verdicts if v.evidence == "exact objective"]),
        "select_seeds": cfg["select_seeds"],
        "grid_table": grid_table(exact),
        "diverged": len(diverged),
        "runs": len(exact["selection"]) + len(exact["runs"]),
        "diverged_reported": sum(r in exact["runs"] for r in diverged),
    }


def one_setting_context(exact: dict, verdicts: list[Verdict], docs: Path) -> dict:
    """Report B: (lr, alpha) tuned at one batch and carried to every batch by the rules."""
    cfg, part = exact["config"], exact["one_setting"]
    n = exact_numbers(exact_rows(part["runs"]))
    batches = sorted({b for _, b in n["final"]})
    rate = {(r["objective"], r["batch"]): r["alpha"] for r in part["runs"]}
    body = [
        [str(b)]
        + [
            pm(n["final"][(o, b)], 1, 4) + (f" [{rate[(o, b)]:.3g}]" if o != "scl" else "")
            for o in EXACT_OBJECTIVES
        ]
        for b in batches
    ]
    chosen = "; ".join(
        f"{label}: lr {part['setting'][o]['lr']:g}"
        + (f", alpha {part['setting'][o]['alpha']:g} per 256" if o != "scl" else "")
        for o, label in EXACT_OBJECTIVES.items()
    )
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for r in part["tuning"]:
        groups[(r["objective"], r["base_lr"], r["alpha_per_256"])].append(r)
    lrs = [f"{lr:g}" for lr in cfg["lrs"]]
    grid_rows = [
        [label, "–" if a is None else f"{a:g}"]
        + [cell(groups[(o, lr, a)]) if groups[(o, lr, a)] else "" for lr in cfg["lrs"]]
        for o, label in EXACT_OBJECTIVES.items()
        for a in (cfg["alphas"] if o != "scl" else [None])
    ]
    fig, ax = plt.subplots(figsize=(6, 3.8))
    per_cell = exact_numbers(exact_rows(exact["runs"]))
    for (o, label), color in zip(EXACT_OBJECTIVES.items(), ("C0", "C1", "C2"), strict=True):
        for numbers, style, what in ((n, "-", "one setting"), (per_cell, ":", "lr per cell")):
            vals = [np.asarray(numbers["final"][(o, b)]) for b in batches]
            finished = [v[np.isfinite(v)] for v in vals]  # diverged runs are marked, not drawn
            ax.errorbar(
                batches,
                [f.mean() if len(f) else np.nan for f in finished],
                yerr=[f.std() if len(f) else np.nan for f in finished],
                ls=style,
                marker="o",
                capsize=3,
                color=color,
                label=f"{label}, {what}",
            )
            for b, v, f in zip(batches, vals, finished, strict=True):
                if len(f) < len(v):
                    y = f.mean() if len(f) else ax.get_ylim()[0]
                    ax.annotate(
                        f"{len(v) - len(f)}/{len(v)} diverged",
                        (b, y),
                        fontsize=7,
                        color=color,
                        xytext=(4, -10),
                        textcoords="offset points",
                    )
    ax.set(
        xscale="log",
        xlabel="batch size",
        ylabel="final J/J*",
        title="one setting against lr per cell",
    )
    ax.set_xticks(batches, [str(b) for b in batches])
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return {
        "batch": part["batch"],
        "lrs": ", ".join(lrs),
        "alphas": ", ".join(f"{a:g}" for a in cfg["alphas"]),
        "chosen": chosen,
        "seeds": cfg["seeds"],
        "final_table": table(["batch", *EXACT_OBJECTIVES.values()], "r" * 4, body),
        "select_seeds": cfg["select_seeds"],
        "grid_table": table(["objective", "alpha per 256", *lrs], "ll" + "r" * len(lrs), grid_rows),
        "figure": saved(fig, docs, "exact_one_setting.png"),
        "verdicts": bullets(
            [v for v in verdicts if v.evidence == EXACT_ONE_SETTING and v.claim.key != "predicts"]
        ),
    }


def cell(runs: list[dict]) -> str:
    """Mean final J/J* of a grid cell's runs, or how many of them diverged."""
    div = sum(r["diverged_at"] is not None for r in runs)
    ok = [r["final"] for r in runs if r["diverged_at"] is None]
    return f"{np.mean(ok):.3f}" if not div else f"div ({div}/{len(runs)})"


def sensitivity_context(exact: dict, verdicts: list[Verdict], docs: Path) -> dict:
    """Final J/J* over per-step rates of Λ at a few batches, beside the rule's prediction."""
    part, cfg = exact["sensitivity"], exact["config"]
    _, per = judge_prediction(part)
    rates = sorted({r["alpha"] for r in part["runs"]})
    finals = {(b, a): v for b in per for a, v in finals_by_rate(part["runs"], b).items()}
    body = []
    for rate in rates:
        row = [f"{rate:g}"]
        for b, v in per.items():
            mark = (" (best)" if rate == v["best"] else "") + (
                " (rule)" if rate == v["nearest"] else ""
            )
            row.append(pm(finals[(b, rate)], 1, 4) + mark)
        body.append(row)
    fig, ax = plt.subplots(figsize=(6, 3.8))
    for (b, v), color in zip(per.items(), ("C0", "C1", "C2", "C3", "C4"), strict=False):
        ys = [np.mean(finals[(b, rate)]) for rate in rates]
        ax.plot(rates, ys, marker="o", color=color, label=f"batch {b}")
        ax.axvline(v["predicted"], color=color, ls="--", lw=1)
    ax.set(
        xscale="log",
        xlabel="per-step rate of Λ's EMA",
        ylabel="final J/J*",
        title="dashed: the rule's prediction from batch " + str(exact["one_setting"]["batch"]),
    )
    reached_means = [np.mean(f) for f in finals.values() if np.isfinite(np.mean(f))]
    ax.set_ylim(bottom=max(0.0, min(min(reached_means), 1) - 0.05))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    header = ["per-step rate", *(f"batch {b} (rule: {v['predicted']:.3g})" for b, v in per.items())]
    return {
        "lr": f"{part['lr']:g}",
        "seeds": cfg["sensitivity_seeds"],
        "alpha": f"{exact['alpha_per_256']['minc_tril']:g}",
        "batch": exact["one_setting"]["batch"],
        "table": table(header, "r" * len(header), body),
        "figure": saved(fig, docs, "exact_sensitivity.png"),
        "verdicts": bullets([v for v in verdicts if v.claim.key == "predicts"]),
    }


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


def real_setting(store: dict) -> str:
    args = store.get("budget", {}).get("args", {})
    if not args:
        return ""
    seconds = store["budget"].get("seconds", 0)
    return (
        f"`python -m benchmarks.reproduce --batch_sizes {args.get('batch_sizes', '?')} "
        f"--seeds {args.get('seeds', '?')} --skip {args.get('skip', '[]')}` "
        f"({seconds / 60:.0f} minutes on {machine(store['budget'])}): Fashion-MNIST, "
        f"{args.get('train_images', '?')} training images (fixed random subset) and "
        f"{args.get('val_images', '?')} validation images, backbone {args.get('backbone', '?')} "
        f"(width {args.get('width', '?')}), {args.get('epochs', '?')} epochs, LARS with base lr "
        f"{args.get('lr', '?')} × batch/256, the same augmentations and heads for every "
        f"objective. Evaluation: kNN (k={args.get('knn_k', '?')}, T=0.1, cosine) and a linear "
        f"classifier ({args.get('linear_epochs', '?')} epochs) on frozen features of the online "
        "backbone in eval mode.\n"
    )


def batch_context(store: dict, verdicts: list[Verdict], docs: Path) -> dict | None:
    rows = sweep_rows(store)
    if not rows:
        return None
    floor = [r for k, r in store.items() if k.startswith("baseline/random_init")]
    pixels = store.get("baseline/pixels")
    base = []
    if pixels:
        base.append(
            (
                "raw pixels (784 values)",
                f"{100 * pixels['knn']:.2f}",
                f"{100 * pixels['linear']:.2f}",
            )
        )
    if floor:
        base.append(
            (
                f"the network, randomly initialised ({len(floor)} seeds)",
                pm([r["knn"] for r in floor]),
                pm([r["linear"] for r in floor]),
            )
        )
    floor_mean = (
        {m: float(np.mean([r[m] for r in floor])) for m in ("knn", "linear")} if floor else None
    )
    return {
        "setting": real_setting(store),
        "table": accuracy_table(rows, base, minutes=False),
        "figure": saved(accuracy_figure(rows, pixels, floor_mean), docs, "accuracy_vs_batch.png"),
        "verdicts": real_bullets(verdicts, SHORT),
        "rules": RULES,
    }


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


MULTICROP_VARIANTS = {
    ("epochs", 0, "none"): "two views",
    ("epochs", 2, "shared"): "2 local, shared predictor",
    ("epochs", 4, "shared"): "4 local, shared predictor",
    ("epochs", 2, "separate"): "2 local, separate predictors",
    ("epochs", 4, "separate"): "4 local, separate predictors",
    ("time of 2 local views", 0, "none"): "two views, the time of 2 local",
    ("time of 4 local views", 0, "none"): "two views, the time of 4 local",
}


def multicrop_context(result: dict, name: str, verdicts: list[Verdict], docs: Path) -> dict | None:
    """benchmarks/multicrop.py: accuracy, pace and memory of each variant, and the verdicts."""
    groups = multicrop_groups(result)
    if not groups:
        return None
    rows = []
    for key, label in MULTICROP_VARIANTS.items():
        if runs := groups.get(key):
            rows.append(
                [
                    label,
                    str(len(runs)),
                    pm([r["knn"] for r in runs]),
                    pm([r["linear"] for r in runs]),
                    f"{np.mean([r['train_seconds'] for r in runs]) / 60:.1f}",
                    f"{np.mean([r['images_per_s'] for r in runs]):.0f}",
                    f"{max(r['peak_rss_mib'] for r in runs):.0f}",
                ]
            )
    header = ["variant", "seeds", "kNN top-1 (%)", "linear top-1 (%)", "train min"]
    header += ["images/s", "peak MiB"]
    everything = [r for runs in groups.values() for r in runs]
    evidence = multicrop_evidence(name)
    mine = sorted(
        (v for v in verdicts if v.evidence == evidence),
        key=lambda v: (v.metric != "linear", v.claim.key),
    )
    return {
        "name": name,
        "runs": len(everything),
        "hours": f"{sum(r['wall_seconds'] for r in everything) / 3600:.1f}",
        "load": load_note(everything),
        "table": table(header, "lrrrrrr", rows),
        "figure": saved(multicrop_figure(groups), docs, f"multicrop_{name}.png"),
        "verdicts": bullets(mine, prefix=True) or "No verdict until a comparison has both groups.",
        "default": default_predictor_note(result),
    }


def default_predictor_note(result: dict) -> str:
    """Which predictor the runs measure better (``claims.better_local_predictor``'s rule) and
    whether the module's default is that one."""
    default = default_local_predictor()
    measured = better_local_predictor(result)
    if measured is None:
        return f"`MINCModule`'s default `local_predictor` is `{default}`; not yet measured."
    better, means = measured
    numbers = ", ".join(f"{head} {100 * m:.2f}" for head, m in means.items())
    agrees = "is that one" if default == better else f"is `{default}`, not that one"
    return (
        f"Rule for the default: the predictor with the higher mean linear top-1 over every "
        f"multi-crop run at equal epochs ({numbers}) is `{better}`; `MINCModule`'s default "
        f"`local_predictor` {agrees}. Whether the difference exceeds seed noise is the t "
        "verdict above."
    )


def multicrop_figure(groups: dict) -> plt.Figure:
    """Linear top-1 of each variant (mean and sd over seeds), and its training images/s."""
    fig, axes = plt.subplots(1, 2, figsize=(12, 3.8))
    present = [(k, label) for k, label in MULTICROP_VARIANTS.items() if k in groups]
    ys = range(len(present))
    for ax, metric, scale, title in (
        (axes[0], "linear", 100, "linear top-1 (%)"),
        (axes[1], "images_per_s", 1, "training images per second"),
    ):
        means = [scale * np.mean([r[metric] for r in groups[k]]) for k, _ in present]
        sds = [scale * np.std([r[metric] for r in groups[k]]) for k, _ in present]
        colors = ["C7" if k[1] == 0 else "C0" if k[2] == "shared" else "C1" for k, _ in present]
        ax.barh(list(ys), means, xerr=sds, color=colors, capsize=3)
        ax.set(title=title)
        ax.set_yticks(list(ys), [label for _, label in present] if ax is axes[0] else [])
        if metric == "linear":
            low = min(m - s for m, s in zip(means, sds, strict=True))
            ax.set_xlim(max(0.0, low - 2), None)
    axes[0].invert_yaxis()
    axes[1].invert_yaxis()
    return fig


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


def recipe_context(recipe: dict, name: str, verdicts: list[Verdict], docs: Path) -> dict | None:
    points, base = recipe["points"], recipe["baselines"]
    if not points:
        return None
    rows = [
        [
            "raw pixels",
            "–",
            f"{100 * base['pixels']['knn']:.2f}",
            f"{100 * base['pixels']['linear']:.2f}",
        ],
        [
            "the network, randomly initialised",
            "–",
            f"{100 * base['random_init']['knn']:.2f}",
            f"{100 * base['random_init']['linear']:.2f}",
        ],
    ] + [
        [
            f"MINC, epoch {p['epoch']}",
            f"{p['train_seconds'] / 60:.1f}",
            f"{100 * p['knn']:.2f}",
            f"{100 * p['linear']:.2f}",
        ]
        for p in points
    ]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for ax, metric in zip(axes, ("linear", "knn"), strict=True):
        ax.plot(
            [p["train_seconds"] / 60 for p in points],
            [100 * p[metric] for p in points],
            marker="o",
            label="MINC",
        )
        ax.axhline(100 * base["pixels"][metric], color="black", ls=":", label="raw pixels")
        ax.axhline(100 * base["random_init"][metric], color="gray", ls="--", label="random init")
        ax.set(xlabel="training minutes", ylabel=f"{metric} top-1 (%)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    mine = [find(verdicts, name, "recipe", metric) for metric in ("linear", "knn")]
    return {
        "name": name,
        "threads": recipe["threads"],
        "table": table(
            ["features", "training minutes", "kNN top-1 (%)", "linear top-1 (%)"], "lrrr", rows
        ),
        "figure": saved(fig, docs, f"recipe_{name}.png"),
        "verdicts": bullets(mine, prefix=True),
    }


# --- 3.-5. the gradient, Λ and the ablations ----------------------------------------------------
def variance_context(store: dict, verdicts: list[Verdict], docs: Path) -> dict | None:
    rows = [r for k, r in store.items() if k.startswith("variance/")]
    if not rows:
        return None
    sizes = sorted({r["batch_size"] for r in rows})
    by = {(r["objective"], r["batch_size"]): r for r in rows}
    body = [
        [
            str(b),
            f"{by[('minc', b)]['total_variance']:.3e}",
            f"{by[('spectral', b)]['total_variance']:.3e}",
            f"{by[('minc', b)]['relative_variance']:.3f}",
            f"{by[('spectral', b)]['relative_variance']:.3f}",
        ]
        for b in sizes
    ]
    fig, ax = plt.subplots(figsize=(5, 3.6))
    for o in ("minc", "spectral"):
        ax.plot(sizes, [by[(o, b)]["total_variance"] for b in sizes], marker="o", label=o)
    ax.set(xscale="log", yscale="log", xlabel="batch size", ylabel="total gradient variance")
    ax.set_xticks(sizes, [str(s) for s in sizes])
    ax.grid(alpha=0.3)
    ax.legend()
    header = ["batch", "minc total", "spectral total", "minc relative", "spectral relative"]
    return {
        "table": table(header, "rrrrr", body),
        "figure": saved(fig, docs, "gradient_variance.png"),
        "total": f"**{find(verdicts, SHORT, 'variance', 'total_variance').verdict}**",
        "relative": f"**{find(verdicts, SHORT, 'variance', 'relative_variance').verdict}**",
        "factor": VARIANCE_FACTOR,
    }


def spectrum_context(store: dict, verdicts: list[Verdict], docs: Path) -> dict | None:
    runs = spectrum_runs(store)
    if not runs:
        return None
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.8))
    body = []
    for name, r in sorted(runs.items(), reverse=True):
        trace = r["lambda_trace"]
        axes[0].plot(
            [t["step"] for t in trace],
            [t["offdiag_ratio"] for t in trace],
            label=f"triangular={name}",
        )
        axes[1].plot(trace[-1]["diag"], marker=".", label=f"triangular={name}")
        axes[2].semilogy(np.clip(trace[-1]["eig"], 1e-8, None), label=f"triangular={name}")
        body.append(
            [
                name,
                f"{trace[-1]['offdiag_ratio']:.3f}",
                f"{100 * trace[-1]['diag_sorted']:.0f}%",
                f"{100 * r['knn']:.2f}%",
                f"{100 * r['linear']:.2f}%",
            ]
        )
    axes[0].set(
        xlabel="optimizer step", ylabel="‖Λ − diag Λ‖²_F / ‖Λ‖²_F", title="off-diagonal energy of Λ"
    )
    axes[1].set(xlabel="embedding dimension", ylabel="Λ_ii", title="diagonal of Λ (end)")
    axes[2].set(xlabel="rank", ylabel="eigenvalue", title="eigenvalues of Λ (end)")
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend()
    header = [
        "triangular",
        "final off-diagonal energy",
        "adjacent diagonal entries in decreasing order",
        "kNN",
        "linear",
    ]
    mine = [v for v in verdicts if v.evidence == SHORT and v.claim.key == "diagonal"]
    lines = [
        f"- {v.claim.section} (one run each): **{v.verdict}**. Rule: holds when tril(Λ) leaves "
        "under half of full Λ's off-diagonal energy and a larger share of ordered adjacent "
        "diagonal entries; does not hold when it leaves at least as much.\n"
        for v in mine
    ]
    return {
        "table": table(header, "lrrrr", body),
        "figure": saved(fig, docs, "lambda_spectrum.png"),
        "verdicts": "".join(lines),
    }


def lambda_context(result: dict, name: str, verdicts: list[Verdict], docs: Path) -> dict | None:
    """benchmarks/lambda_at_budget.py: Λ at the end of one config's budget, tril on and off."""
    mine = [v for v in verdicts if v.evidence == budget(name) and v.claim.key == "diagonal"]
    if not mine:
        return None
    groups = lambda_groups(result)
    body = []
    fig, axes = plt.subplots(1, 2, figsize=(8, 3.2))
    for triangular in (True, False):
        g = groups[triangular]
        body.append(
            [
                str(triangular),
                str(len(g["knn"])),
                pm(g["offdiag_ratio"], 1, 3),
                pm(g["diag_sorted"], 100, 0),
                pm(g["knn"]),
                pm(g["linear"]),
            ]
        )
        label = "tril(Λ)" if triangular else "full Λ"
        for ax, key in zip(axes, ("offdiag_ratio", "diag_sorted"), strict=True):
            ax.plot([label] * len(g[key]), g[key], "o", alpha=0.7)
    axes[0].set(ylabel="‖Λ − diag Λ‖²_F / ‖Λ‖²_F", title="off-diagonal energy (0: diagonal)")
    axes[1].set(ylabel="share", title="diagonal in decreasing order (1: ordered)")
    for ax in axes:
        ax.set(xlim=(-0.5, 1.5), ylim=(0, 1.05))
        ax.grid(alpha=0.3)
    header = [
        "triangular",
        "seeds",
        "off-diagonal energy",
        "adjacent diagonal entries in decreasing order (%)",
        "kNN top-1 (%)",
        "linear top-1 (%)",
    ]
    return {
        "name": name,
        "runs": len(result["runs"]),
        "hours": f"{sum(r['wall_seconds'] for r in result['runs']) / 3600:.1f}",
        "table": table(header, "lrrrrr", body),
        "figure": saved(fig, docs, f"lambda_{name}.png"),
        "verdicts": bullets(mine),
    }


def ablation_context(store: dict) -> dict | None:
    rows = {k.split("/", 1)[1]: r for k, r in store.items() if k.startswith("ablation/")}
    if not rows:
        return None
    body = [
        [name, f"{100 * r['knn']:.2f}%", f"{100 * r['linear']:.2f}%", f"{r['final_loss']:.3f}"]
        for name, r in rows.items()
    ]
    return {"table": table(["setting", "kNN", "linear", "final loss"], "lrrr", body)}


# --- the page -----------------------------------------------------------------------------------
def claims_context(verdicts: list[Verdict]) -> dict | None:
    rows = [
        f"| {v.claim.table} | {v.evidence} | **{v.verdict}** | {v.numbers} |"
        for v in verdicts
        if v.in_table
    ]
    return {"rows": "\n".join(rows)} if rows else None


def write_report(
    store: dict,
    docs: Path,
    exact: dict | None = None,
    recipes: dict | None = None,
    comparisons: dict | None = None,
    lambdas: dict | None = None,
    tuned: dict | None = None,
    multicrop: dict | None = None,
    streaming: dict | None = None,
    order: dict | None = None,
    rankme: dict | None = None,
    where_lambda: dict | None = None,
) -> None:
    """docs/results.md and its plots into ``docs``."""
    docs.mkdir(parents=True, exist_ok=True)
    ev = Evidence(
        store,
        exact,
        recipes if recipes is not None else load_named("recipe"),
        comparisons if comparisons is not None else load_named("objectives"),
        lambdas if lambdas is not None else load_named("lambda"),
        tuned if tuned is not None else load_named("tuned"),
        multicrop if multicrop is not None else load_named("multicrop"),
        streaming if streaming is not None else load(DATA / "streaming.json"),
    )
    verdicts = judge_all(ev)
    filled: list[tuple[str, dict | None]] = [
        ("header", {"torch": torch.__version__}),
        ("claims", claims_context(verdicts)),
        ("exact", exact_context(exact, verdicts, docs) if exact else None),
        *(
            (name, context(exact, verdicts, docs))
            for name, context in (
                ("one_setting", one_setting_context),
                ("sensitivity", sensitivity_context),
            )
            if exact and "one_setting" in exact
        ),
        ("batch", batch_context(store, verdicts, docs)),
        *(
            ("comparison", comparison_context(c, n, verdicts, docs))
            for n, c in ev.comparisons.items()
        ),
        *(("tuned", tuned_context(c, n, verdicts, docs)) for n, c in ev.tuned.items()),
        *(("recipe", recipe_context(r, n, verdicts, docs)) for n, r in ev.recipes.items()),
        *(("multicrop", multicrop_context(r, n, verdicts, docs)) for n, r in ev.multicrop.items()),
        (
            "streaming",
            streaming_section.context(
                ev.streaming,
                load(DATA / "streaming_order.json") if order is None else order,
                verdicts,
                docs,
                lambda fig, name: saved(fig, docs, name),
            ),
        ),
        (
            "rankme",
            rankme_section.context(
                load(DATA / "rankme_selection.json") if rankme is None else rankme,
                lambda fig, name: saved(fig, docs, name),
            ),
        ),
        (
            "where_lambda",
            where_lambda_section.context(
                load(DATA / "where_lambda_acts.json") if where_lambda is None else where_lambda,
                lambda fig, name: saved(fig, docs, name),
            ),
        ),
        ("variance", variance_context(store, verdicts, docs)),
        ("spectrum", spectrum_context(store, verdicts, docs)),
        *(("lambda", lambda_context(r, n, verdicts, docs)) for n, r in ev.lambdas.items()),
        ("ablation", ablation_context(store)),
        ("sources", {}),
    ]
    page = sections()
    text = "\n".join(page[name].substitute(ctx) for name, ctx in filled if ctx is not None)
    (docs / "results.md").write_text(text + "\n")
    print(f"wrote {docs / 'results.md'}")


def load(path: Path) -> dict:
    return json.loads(path.read_text()) if path.is_file() else {}


def load_named(kind: str, data: Path = DATA) -> dict[str, dict]:
    """``<kind>_<config name>.json`` files by config name: ``recipe`` for recipe_curve.py's
    curves, ``objectives`` for objectives_at_budget.py's, ``lambda`` for lambda_at_budget.py's."""
    return {p.stem[len(kind) + 1 :]: load(p) for p in sorted(data.glob(f"{kind}_*.json"))}


if __name__ == "__main__":
    import argparse

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=DATA)
    p.add_argument("--docs", type=Path, default=ROOT / "docs")
    a = p.parse_args()
    write_report(
        load(a.data / "runs.json"),
        a.docs,
        load(a.data / "spectral_exact.json") or None,
        load_named("recipe", a.data),
        load_named("objectives", a.data),
        load_named("lambda", a.data),
        load_named("tuned", a.data),
        load_named("multicrop", a.data),
        load(a.data / "streaming.json"),
        load(a.data / "streaming_order.json"),
    )
