"""docs/results.md's section on label-free model selection (``benchmarks/rankme_selection.py``).

Over the runs (settings × seeds), Spearman's rho between each run's final ``val/rankme`` and its
linear top-1, with the verdict of ``verdicts.rank_agreement``; the same within each objective
(does RankMe pick the better setting of one method?) and between the objectives' means (does it
tell the methods apart?). ``report.py`` fills the template's ``rankme`` section with ``context``.
"""

from __future__ import annotations

from collections import defaultdict

import matplotlib.pyplot as plt
import numpy as np

from benchmarks.verdicts import RANK_AGREEMENT, rank_agreement, rank_correlation


def label(run: dict) -> str:
    text = f"{run['objective']}, lr {run['lr']:g}"
    return text + (f", mu {run['mu']:g}" if "mu" in run else "")


def context(result: dict, draw) -> dict | None:
    """The section's fields (None before the benchmark has run); ``draw(fig, name)`` saves a
    figure beside the page and returns its markdown."""
    runs = result.get("runs", [])
    if len(runs) < 2:
        return None
    rows = [
        [label(r), str(r["seed"]), f"{r['rankme']:.1f}", f"{100 * r['linear']:.2f}"]
        + [f"{100 * r['knn']:.2f}"]
        for r in sorted(runs, key=lambda r: -r["linear"])
    ]
    header = ["setting", "seed", "val/rankme", "linear top-1 (%)", "kNN top-1 (%)"]
    return {
        "count": str(len(runs)),
        "table": "\n".join(
            ["| " + " | ".join(header) + " |", "|---|---:|---:|---:|---:|"]
            + ["| " + " | ".join(r) + " |" for r in rows]
        ),
        "figure": draw(figure(runs), "rankme_selection.png"),
        "verdicts": "\n".join(f"- {line}" for line in lines(runs)),
    }


def lines(runs: list[dict]) -> list[str]:
    """The verdict over all runs, then rho within each objective and between their means."""
    rankme = [r["rankme"] for r in runs]
    verdict, ci = rank_agreement(rankme, [r["linear"] for r in runs])
    out = [
        f"RankMe ranks the runs as linear top-1 does: **{verdict}** (Spearman's rho "
        f"{ci.value:+.2f} over {len(runs)} runs, 90% interval [{ci.low:+.2f}, {ci.high:+.2f}]; "
        f"rule: the interval above {RANK_AGREEMENT}, holds; below it, does not hold). Against "
        f"kNN top-1: rho {rank_correlation(rankme, [r['knn'] for r in runs]).value:+.2f}."
    ]
    by_objective: dict[str, list[dict]] = defaultdict(list)
    for r in runs:
        by_objective[r["objective"]].append(r)
    within = []
    for objective, group in sorted(by_objective.items()):
        if len(group) >= 3:
            ci = rank_correlation([r["rankme"] for r in group], [r["linear"] for r in group])
            within.append(f"{objective} {ci.value:+.2f} ({len(group)} runs)")
    if within:
        out.append(f"Within one objective, rho: {', '.join(within)}.")
    means = {
        o: (np.mean([r["rankme"] for r in g]), np.mean([r["linear"] for r in g]))
        for o, g in by_objective.items()
    }
    by_rankme = sorted(means, key=lambda o: -means[o][0])
    by_linear = sorted(means, key=lambda o: -means[o][1])
    agree = "the same order" if by_rankme == by_linear else "another order"
    out.append(
        f"Between objectives (means over their runs): RankMe orders them {' > '.join(by_rankme)},"
        f" linear top-1 {' > '.join(by_linear)}: {agree}"
        + ("." if agree == "the same order" else "; RankMe does not tell these methods apart.")
    )
    return out


def figure(runs: list[dict]) -> plt.Figure:
    """val/rankme against linear top-1, one colour per objective."""
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    for objective in sorted({r["objective"] for r in runs}):
        mine = [r for r in runs if r["objective"] == objective]
        ax.scatter(
            [r["rankme"] for r in mine], [100 * r["linear"] for r in mine], label=objective, s=30
        )
    ax.set(xlabel="val/rankme (no labels)", ylabel="linear top-1 (%)")
    ax.set_title("Label-free RankMe against the linear probe, one point a run")
    ax.legend()
    return fig
