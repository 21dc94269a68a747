"""docs/results.md's exact-benchmark sections (``spectral_exact.py``): per cell, one setting
carried by the rules, and how much Λ's rate matters."""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from benchmarks.claims import (
    EXACT_ONE_SETTING,
    Verdict,
    finals_by_rate,
    judge_prediction,
    pm,
)
from benchmarks.page import bullets, saved, table
from benchmarks.rows import Row, exact_rows

EXACT_OBJECTIVES = {"minc_tril": "MINC, tril(Λ)", "minc_full": "MINC, full Λ", "scl": "SCL"}


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
