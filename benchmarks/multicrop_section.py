"""docs/results.md's multi-crop section (``multicrop.py``) and the long recipe run
(``recipe_curve.py``)."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from benchmarks.accuracy_section import load_note
from benchmarks.claims import (
    Verdict,
    better_local_predictor,
    default_local_predictor,
    find,
    multicrop_evidence,
    multicrop_groups,
    pm,
)
from benchmarks.page import bullets, saved, table

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
