"""docs/results.md's sections on Λ on real data (``reproduce.py``'s spectrum and ablations,
``lambda_at_budget.py``)."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from benchmarks.claims import (
    Verdict,
    find,
    lambda_groups,
    pm,
    spectrum_runs,
)
from benchmarks.page import bullets, saved, table
from benchmarks.rows import SHORT, budget
from benchmarks.verdicts import VARIANCE_FACTOR


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
