"""docs/results.md's section on tril(Λ) against full Λ at a config's budget
(``lambda_at_budget.py``)."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt

from benchmarks.claims import (
    Verdict,
    lambda_groups,
    pm,
)
from benchmarks.page import bullets, saved, table
from benchmarks.rows import budget


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
