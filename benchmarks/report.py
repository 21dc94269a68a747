"""docs/results.md and its plots, from the raw results in docs/data/.

    python benchmarks/report.py      # redraw from the JSON files in docs/data/

Every sentence with a finding is a verdict computed here from the numbers, by a rule stated
next to it. The rule shared by all comparisons of seeds (``compare``): a difference of means
within two standard errors (√(se_a² + se_b²), se = sd/√n) is a tie, so the verdict is
"inconclusive"; a group holding one number contributes no spread, and two single numbers
cannot be told apart.
"""

from __future__ import annotations

import json
import math
import platform
from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from common import DATA, ROOT  # noqa: E402

from minc_lightning.objectives import OBJECTIVES  # noqa: E402

EXACT_OBJECTIVES = {"minc_tril": "MINC, tril(Λ)", "minc_full": "MINC, full Λ", "scl": "SCL"}
HOLDS, FAILS, UNSURE = "holds", "does not hold", "inconclusive"
CHANCE = 0.1  # ten classes
VARIANCE_FACTOR = 1.5  # "lower variance" needs MINC's below SCL's by this factor at every batch


# --- verdict rules (pure functions of the numbers; tests/test_report.py feeds them) -------------
def mean_se(values: list[float]) -> tuple[float, float]:
    a = np.asarray(values, dtype=float)
    se = a.std(ddof=1) / math.sqrt(len(a)) if len(a) > 1 else 0.0
    return float(a.mean()), float(se)


def compare(a: list[float], b: list[float]) -> str:
    """ "ahead" (a's mean above b's by more than 2 SE), "behind", or "tie"."""
    (ma, sa), (mb, sb) = mean_se(a), mean_se(b)
    if len(a) < 2 and len(b) < 2:
        return "tie"
    margin = 2 * math.hypot(sa, sb)
    return "ahead" if ma - mb > margin else "behind" if mb - ma > margin else "tie"


def every(results: dict[int, str]) -> str:
    """A claim made at every batch size: holds if "ahead" at all, fails if "behind" at any."""
    if results and all(r == "ahead" for r in results.values()):
        return HOLDS
    return FAILS if any(r == "behind" for r in results.values()) else UNSURE


def one(result: str) -> str:
    return {"ahead": HOLDS, "behind": FAILS}.get(result, UNSURE)


def claim_every_batch(a: dict[int, list[float]], b: dict[int, list[float]]) -> tuple[str, dict]:
    """a ≥ b at every batch size both were run at."""
    per = {n: compare(a[n], b[n]) for n in sorted(set(a) & set(b))}
    return every(per), per


def claim_small_vs_large(a: dict[int, list[float]], b: dict[int, list[float]]) -> str:
    """a at its smallest batch size ≥ b at its largest."""
    return one(compare(a[min(a)], b[max(b)]))


def claim_lower_variance(minc: dict[int, float], scl: dict[int, float]) -> str:
    """MINC's gradient variance below SCL's by ``VARIANCE_FACTOR`` at every batch size: holds;
    at or above SCL's at any: does not hold; otherwise inconclusive (one measurement each)."""
    sizes = sorted(set(minc) & set(scl))
    if sizes and all(minc[n] * VARIANCE_FACTOR < scl[n] for n in sizes):
        return HOLDS
    return FAILS if any(minc[n] >= scl[n] for n in sizes) else UNSURE


def claim_close_to_byol(minc: dict[int, list[float]], byol: dict[int, list[float]]) -> str:
    """No collapse (every MINC mean above twice chance) and BYOL not ahead beyond 2 SE at any
    batch size."""
    if any(mean_se(v)[0] <= 2 * CHANCE for v in minc.values()):
        return FAILS
    ahead = {n: compare(byol[n], minc[n]) for n in sorted(set(minc) & set(byol))}
    return FAILS if any(r == "ahead" for r in ahead.values()) else HOLDS


def claim_ordering(tril: dict[int, list[float]], full: dict[int, list[float]]) -> tuple[str, dict]:
    """Each dimension's alignment with its own eigenvector: tril(Λ) above full Λ beyond 2 SE at
    every batch size."""
    return claim_every_batch(tril, full)


def claim_lambda_diagonal(on: dict, off: dict) -> str:
    """Real data, one run each: tril(Λ) leaves under half of full Λ's off-diagonal energy and a
    more ordered diagonal: holds; at least as much off-diagonal energy: does not hold."""
    if on["offdiag_ratio"] < 0.5 * off["offdiag_ratio"] and on["diag_sorted"] > off["diag_sorted"]:
        return HOLDS
    return FAILS if on["offdiag_ratio"] >= off["offdiag_ratio"] else UNSURE


def claim_lambda_seeds(tril: dict[str, list[float]], full: dict[str, list[float]]) -> str:
    """Several seeds each: tril(Λ)'s off-diagonal energy below full Λ's beyond 2 SE and under half
    of it, and a more ordered diagonal beyond 2 SE: holds; either comparison the other way
    beyond 2 SE: does not hold; otherwise inconclusive."""
    lower = compare(full["offdiag_ratio"], tril["offdiag_ratio"])
    ordered = compare(tril["diag_sorted"], full["diag_sorted"])
    half = mean_se(tril["offdiag_ratio"])[0] < 0.5 * mean_se(full["offdiag_ratio"])[0]
    if lower == ordered == "ahead" and half:
        return HOLDS
    return FAILS if "behind" in (lower, ordered) else UNSURE


# --- formatting ---------------------------------------------------------------------------------
def pm(values: list[float], scale: float = 100.0, digits: int = 2) -> str:
    a = scale * np.asarray(values, dtype=float)
    sd = a.std(ddof=1) if len(a) > 1 else 0.0
    return f"{a.mean():.{digits}f} ± {sd:.{digits}f}"


def bold(verdict: str) -> str:
    return f"**{verdict}**"


def saved(fig, docs: Path, name: str) -> str:
    fig.tight_layout()
    fig.savefig(docs / name, dpi=110)
    plt.close(fig)
    return f"![{name[:-4].replace('_', ' ')}]({name})"


# --- 1. the exact benchmark ---------------------------------------------------------------------
def exact_numbers(exact: dict) -> dict:
    """final J/J*, mean alignment and largest principal angle per (objective, batch)."""
    out: dict = {key: defaultdict(list) for key in ("final", "align", "angle")}
    for r in exact["runs"]:
        key = (r["objective"], r["batch"])
        out["final"][key].append(r["final"] if r["diverged_at"] is None else float("-inf"))
        if r["alignment"]:
            out["align"][key].append(float(np.mean(r["alignment"])))
            out["angle"][key].append(max(r["angles"]))
    return out


def by_batch(table: dict, objective: str) -> dict[int, list[float]]:
    return {b: v for (o, b), v in table.items() if o == objective}


def exact_verdicts(exact: dict) -> dict[str, tuple[str, str]]:
    n = exact_numbers(exact)
    minc, scl = by_batch(n["final"], "minc_tril"), by_batch(n["final"], "scl")
    every_verdict, per = claim_every_batch(minc, scl)
    small, large = min(minc), max(scl)
    order_verdict, order_per = claim_ordering(
        by_batch(n["align"], "minc_tril"), by_batch(n["align"], "minc_full")
    )
    return {
        "every": (
            every_verdict,
            "MINC vs SCL per batch: " + ", ".join(f"{b}: {r}" for b, r in per.items()),
        ),
        "small_vs_large": (
            one(compare(minc[small], scl[large])),
            f"MINC at {small}: {pm(minc[small], 1, 4)}; SCL at {large}: {pm(scl[large], 1, 4)}",
        ),
        "ordering": (
            order_verdict,
            "tril vs full alignment per batch: "
            + ", ".join(f"{b}: {r}" for b, r in order_per.items()),
        ),
    }


def exact_section(exact: dict, docs: Path) -> list[str]:
    cfg, n = exact["config"], exact_numbers(exact)
    batches = sorted({b for _, b in n["final"]})
    lam = ", ".join(f"{v:.3f}" for v in exact["spectrum"])
    lines = [
        "## 1. The exact benchmark: the population objective on a known graph",
        "",
        f"`python benchmarks/spectral_exact.py` ({exact['seconds'] / 60:.1f} minutes on "
        f"{cfg['workers']} CPU processes). Graph: {cfg['graph']['nodes']} nodes in "
        f"{cfg['graph']['clusters']} clusters along a chain; top eigenvalues of "
        f"D^-1/2 P D^-1/2: {lam}. Embedding width k = {cfg['k']}, J* = {exact['j_star']:.4f}. "
        f"Every run sees {cfg['samples']:,} positive pairs (the same ones for every objective "
        f"of a seed); SGD with momentum 0.9, lr = base × batch/256, cosine decay; MINC's "
        f"alpha = {cfg['alpha']}; no row normalisation. J, the principal angles and the "
        "alignments are computed over every node, exactly.",
        "",
        f"Final J/J* (mean ± sd over {cfg['seeds']} seeds, at the base lr chosen for each "
        "cell, in brackets):",
        "",
        "| batch | " + " | ".join(EXACT_OBJECTIVES.values()) + " |",
        "|---:|" + "---:|" * len(EXACT_OBJECTIVES),
    ]
    for b in batches:
        cells = [
            f"{pm(n['final'][(o, b)], 1, 4)} [{exact['chosen'][o][str(b)]:g}]"
            for o in EXACT_OBJECTIVES
        ]
        lines.append(f"| {b} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "Ordering: mean over dimensions of |cos| between dimension j and the j-th eigenfunction "
        "(1 = every dimension is its own eigenfunction, in order), and the largest principal "
        "angle to the top-k eigenspace (degrees):",
        "",
        "| batch | "
        + " | ".join(f"{v} alignment" for v in EXACT_OBJECTIVES.values())
        + " | "
        + " | ".join(f"{v} angle" for v in EXACT_OBJECTIVES.values())
        + " |",
        "|---:|" + "---:|" * (2 * len(EXACT_OBJECTIVES)),
    ]
    for b in batches:
        align = [pm(n["align"].get((o, b), [math.nan]), 1, 3) for o in EXACT_OBJECTIVES]
        angle = [pm(n["angle"].get((o, b), [math.nan]), 1, 1) for o in EXACT_OBJECTIVES]
        lines.append(f"| {b} | " + " | ".join(align + angle) + " |")

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
                for r in exact["runs"]
                if (r["objective"], r["batch"]) == (o, b) and r["diverged_at"] is None
            ]
            if curves:
                xs = [c[0] for c in curves[0]]
                ys = np.mean([[c[1] for c in cv] for cv in curves], axis=0)
                axes[1].plot(xs, ys, style, color=color, label=f"{label}, batch {b}")
        al = [
            r["alignment"]
            for r in exact["runs"]
            if (r["objective"], r["batch"]) == (o, batches[0]) and r["alignment"]
        ]
        if al:
            axes[2].plot(
                range(1, cfg["k"] + 1), np.mean(al, axis=0), marker="o", color=color, label=label
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
    lines += ["", saved(fig, docs, "exact_objective.png"), ""]

    v = exact_verdicts(exact)
    lines += [
        f"- MINC ≥ SCL at every batch size: {bold(v['every'][0])} ({v['every'][1]}).",
        f"- MINC at the smallest batch ≥ SCL at the largest: {bold(v['small_vs_large'][0])} "
        f"({v['small_vs_large'][1]}).",
        f"- tril(Λ) orders the eigenfunctions and full Λ does not: {bold(v['ordering'][0])} "
        f"({v['ordering'][1]}).",
        "",
        'Rule: per batch size, "ahead" / "behind" when the difference of means exceeds two '
        'standard errors of the seed spread, else "tie"; a claim made at every batch size '
        "holds when MINC is ahead at all, does not hold when it is behind at any, and is "
        "inconclusive otherwise.",
        "",
    ]
    return lines + grid_section(exact)


def grid_section(exact: dict) -> list[str]:
    cfg, rows = exact["config"], defaultdict(list)
    for r in exact["selection"]:
        rows[(r["objective"], r["batch"], r["base_lr"])].append(r)
    lines = [
        f"Learning-rate grid (base lr; mean final J/J* over {cfg['select_seeds']} selection "
        'seeds, not among the reported ones; "div" = diverged):',
        "",
        "| objective | batch | " + " | ".join(f"{lr:g}" for lr in cfg["lrs"]) + " |",
        "|---|---:|" + "---:|" * len(cfg["lrs"]),
    ]
    for o, label in EXACT_OBJECTIVES.items():
        for b in cfg["batches"]:
            cells = []
            for lr in cfg["lrs"]:
                runs = rows[(o, b, lr)]
                div = sum(r["diverged_at"] is not None for r in runs)
                ok = [r["final"] for r in runs if r["diverged_at"] is None]
                cells.append(f"{np.mean(ok):.3f}" if not div else f"div ({div}/{len(runs)})")
            lines.append(f"| {label} | {b} | " + " | ".join(cells) + " |")
    diverged = [r for r in exact["selection"] + exact["runs"] if r["diverged_at"] is not None]
    lines += [
        "",
        f"Diverged runs: {len(diverged)} of "
        f"{len(exact['selection']) + len(exact['runs'])} (all listed in the grid above; "
        f"{sum(r in exact['runs'] for r in diverged)} among the reported runs).",
        "",
    ]
    return lines


# --- 2. real data -------------------------------------------------------------------------------
def by_cell(runs) -> dict[tuple[str, int], list[dict]]:
    """Runs grouped by (objective, batch size)."""
    cells = defaultdict(list)
    for r in runs:
        cells[(r["objective"], r["batch_size"])].append(r)
    return cells


def accuracy_runs(store: dict) -> dict[tuple[str, int], list[dict]]:
    """reproduce.py's batch sweep."""
    return by_cell(r for key, r in store.items() if key.startswith("batch/"))


def real_verdicts(store: dict, metric: str = "linear") -> dict[str, tuple[str, str]]:
    """reproduce.py's batch sweep, judged against its pixel baseline."""
    return objective_verdicts(accuracy_runs(store), store.get("baseline/pixels"), metric)


def objective_verdicts(
    runs: dict[tuple[str, int], list[dict]], pixels: dict | None, metric: str = "linear"
) -> dict[str, tuple[str, str]]:
    """The paper's claims on real data, MINC against SCL and BYOL (and every objective against
    the raw pixels), each as (verdict, numbers); none until every objective has runs."""
    acc = {
        o: {b: [r[metric] for r in rs] for (oo, b), rs in sorted(runs.items()) if oo == o}
        for o in OBJECTIVES
    }
    if not all(acc.values()):  # a partial run: no verdict until every objective has numbers
        return {}
    verdict, per = claim_every_batch(acc["minc"], acc["spectral"])
    small, large = min(acc["minc"]), max(acc["spectral"])
    out = {
        "every": (
            verdict,
            f"{metric}, MINC vs SCL per batch: " + ", ".join(f"{b}: {r}" for b, r in per.items()),
        ),
        "small_vs_large": (
            claim_small_vs_large(acc["minc"], acc["spectral"]),
            f"{metric}: MINC at {small} {pm(acc['minc'][small])}%, SCL at {large} "
            f"{pm(acc['spectral'][large])}%",
        ),
        "byol": (
            claim_close_to_byol(acc["minc"], acc["byol"]),
            f"{metric}: MINC "
            + ", ".join(f"{b}: {pm(v)}%" for b, v in acc["minc"].items())
            + "; BYOL "
            + ", ".join(f"{b}: {pm(v)}%" for b, v in acc["byol"].items()),
        ),
    }
    if pixels:
        beats = {
            o: claim_every_batch(acc[o], {b: [pixels[metric]] for b in acc[o]}) for o in OBJECTIVES
        }
        out["pixels"] = (
            beats["minc"][0],
            f"{metric}: raw pixels {100 * pixels[metric]:.2f}%; "
            + ", ".join(
                f"{o} {v} ({', '.join(f'{b}: {r}' for b, r in per.items())})"
                for o, (v, per) in beats.items()
            ),
        )
    return out


def accuracy_table(
    runs: dict[tuple[str, int], list[dict]], baselines: list[tuple[str, str, str]], minutes: bool
) -> list[str]:
    """Mean ± sd over seeds per objective and batch, under rows of (name, kNN, linear)
    baselines; with ``minutes``, each cell's mean training minutes too."""
    time = " training minutes |" if minutes else ""
    lines = [
        f"| features | batch |{time} kNN top-1 (%) | linear top-1 (%) |",
        "|---|---:|" + ("---:|" if minutes else "") + "---:|---:|",
    ]
    lines += [f"| {n} | – |{' – |' if minutes else ''} {k} | {li} |" for n, k, li in baselines]
    for o in OBJECTIVES:
        for b in sorted({b for _, b in runs}):
            rs = runs.get((o, b), [])
            if rs:
                cost = f" {np.mean([r['train_seconds'] for r in rs]) / 60:.1f} |" if minutes else ""
                lines.append(
                    f"| {o} | {b} |{cost} {pm([r['knn'] for r in rs])} | "
                    f"{pm([r['linear'] for r in rs])} |"
                )
    return lines


def accuracy_figure(
    runs: dict[tuple[str, int], list[dict]], pixels: dict | None, floor: dict | None
) -> plt.Figure:
    """kNN and linear accuracy against batch size per objective (mean ± sd over seeds), with
    the pixels and the random network as horizontal lines."""
    sizes = sorted({b for _, b in runs})
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for ax, metric in zip(axes, ("knn", "linear"), strict=True):
        if pixels:
            ax.axhline(100 * pixels[metric], color="black", ls=":", label="raw pixels")
        if floor:
            ax.axhline(100 * floor[metric], color="gray", ls="--", label="random init")
        for o in OBJECTIVES:
            xs = [b for b in sizes if (o, b) in runs]
            vals = [100 * np.array([r[metric] for r in runs[(o, b)]]) for b in xs]
            ax.errorbar(
                xs,
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


def verdict_lines(runs: dict[tuple[str, int], list[dict]], pixels: dict | None) -> list[str]:
    lines = []
    for metric in ("linear", "knn"):
        v = objective_verdicts(runs, pixels, metric)
        if not v:
            continue
        lines += [
            f"- {metric}: MINC ≥ SCL at every batch size: {bold(v['every'][0])} ({v['every'][1]}).",
            f"- {metric}: MINC at the smallest batch ≥ SCL at the largest: "
            f"{bold(v['small_vs_large'][0])} ({v['small_vs_large'][1]}).",
            f"- {metric}: MINC does not collapse and is close to BYOL: {bold(v['byol'][0])} "
            f"({v['byol'][1]}).",
        ]
        if "pixels" in v:
            lines.append(
                f"- {metric}: MINC's features beat the raw pixels at every batch size: "
                f"{bold(v['pixels'][0])} ({v['pixels'][1]})."
            )
    return lines


RULES = (
    'Rules: the 2-SE rule of section 1; "close to BYOL" holds when every MINC mean is above '
    f"twice chance ({200 * CHANCE:.0f}%) and BYOL is nowhere ahead beyond 2 SE; the pixel "
    "baseline is one deterministic number (no spread)."
)


def batch_section(store: dict, docs: Path) -> list[str]:
    runs = accuracy_runs(store)
    if not runs:
        return []
    floor = [r for k, r in store.items() if k.startswith("baseline/random_init")]
    pixels = store.get("baseline/pixels")
    baselines = []
    if pixels:
        baselines.append(
            (
                "raw pixels (784 values)",
                f"{100 * pixels['knn']:.2f}",
                f"{100 * pixels['linear']:.2f}",
            )
        )
    if floor:
        baselines.append(
            (
                f"the network, randomly initialised ({len(floor)} seeds)",
                pm([r["knn"] for r in floor]),
                pm([r["linear"] for r in floor]),
            )
        )
    floor_mean = (
        {m: float(np.mean([r[m] for r in floor])) for m in ("knn", "linear")} if floor else None
    )
    fig = accuracy_figure(runs, pixels, floor_mean)
    return [
        "## 2. Real data: Fashion-MNIST, frozen features against raw pixels",
        "",
        *real_setting(store),
        "Accuracy on the validation images (mean ± sd over seeds), with the two baselines any "
        "pre-training has to beat under the same protocol.",
        "",
        *accuracy_table(runs, baselines, minutes=False),
        "",
        saved(fig, docs, "accuracy_vs_batch.png"),
        "",
        *verdict_lines(runs, pixels),
        "",
        RULES,
        "",
    ]


def comparison_baselines(comparison: dict) -> dict:
    """The pixels' and the random network's scores, stored with the run that measured them."""
    return next((r["baselines"] for r in comparison.get("runs", []) if "baselines" in r), {})


def comparison_section(comparison: dict, name: str, docs: Path) -> list[str]:
    """benchmarks/objectives_at_budget.py: the three objectives at one config's budget."""
    runs = by_cell(comparison.get("runs", []))
    if not runs:
        return []
    base = comparison_baselines(comparison)
    named = {
        "pixels": "raw pixels (784 values)",
        "random_init": "the network, randomly initialised",
    }
    baselines = [
        (named[k], f"{100 * v['knn']:.2f}", f"{100 * v['linear']:.2f}") for k, v in base.items()
    ]
    hours = sum(r["wall_seconds"] for r in comparison["runs"]) / 3600
    fig = accuracy_figure(runs, base.get("pixels"), base.get("random_init"))
    return [
        f"### MINC, SCL and BYOL at the budget of `configs/{name}.yaml`",
        "",
        f"`python benchmarks/objectives_at_budget.py --config configs/{name}.yaml` "
        f"({len(comparison['runs'])} runs, {hours:.1f} hours with evaluation): the config with "
        "only the objective, the batch size and the seed changed, so every objective sees the "
        "same images, augmentations, heads, schedule and number of samples. All train at the "
        "config's learning rate (× batch/256), which was chosen for MINC; SCL and BYOL run at it "
        "untuned. Scored like `minc-lightning-eval` (kNN k=200, T=0.1; linear 100 epochs) on the "
        "config's training images and the validation images; training minutes exclude "
        "evaluation.",
        "",
        *accuracy_table(runs, baselines, minutes=True),
        "",
        saved(fig, docs, f"objectives_{name}.png"),
        "",
        *verdict_lines(runs, base.get("pixels")),
        "",
        RULES,
        "",
    ]


def claim_beats_pixels(points: list[dict], pixels: float, metric: str, minutes: float) -> str:
    """One run: its last evaluation within ``minutes`` of training beats the pixels by more than
    one point (holds), falls short by more than one point (does not hold), else inconclusive."""
    within = [p for p in points if p["train_seconds"] <= 60 * minutes]
    if not within:
        return UNSURE
    margin = within[-1][metric] - pixels
    return HOLDS if margin > 0.01 else FAILS if margin < -0.01 else UNSURE


def minutes_to_reach(points: list[dict], target: float, metric: str) -> float | None:
    """Where a straight line through the last three points, accuracy against log(training
    time), reaches ``target`` (None when the trend does not rise)."""
    last = points[-3:]
    if len(last) < 2:
        return None
    x = np.log([p["train_seconds"] for p in last])
    slope, intercept = np.polyfit(x, [p[metric] for p in last], 1)
    if slope <= 1e-9:  # a flat curve fits a slope of ±1e-17, not 0: it does not rise
        return None
    return float(np.exp((target - intercept) / slope) / 60)


def recipe_sentence(points: list[dict], pixels: float, metric: str, minutes: float = 60) -> str:
    """The verdict on beating the pixels within ``minutes``, with the point it was judged on and
    either when the curve first passed the pixels or where its trend would reach them."""
    verdict = claim_beats_pixels(points, pixels, metric, minutes)
    within = [p for p in points if p["train_seconds"] <= 60 * minutes]
    judged = (
        f"{100 * within[-1][metric]:.2f}% after {within[-1]['train_seconds'] / 60:.0f} minutes "
        f"(epoch {within[-1]['epoch']})"
        if within
        else "no evaluation within the budget"
    )
    above = [p for p in points if p[metric] > pixels + 0.01]
    reach = minutes_to_reach(points, pixels + 0.01, metric)
    if above:
        more = f"first ahead by over a point after {above[0]['train_seconds'] / 60:.0f} minutes"
    elif reach is not None:
        more = f"the trend of the last points is a point ahead at about {reach:.0f} minutes"
    else:
        more = "the last points do not rise"
    return (
        f"MINC beats the raw pixels within {minutes:.0f} training minutes: {bold(verdict)} "
        f"({judged} vs {100 * pixels:.2f}%; {more})."
    )


def recipe_section(recipe: dict, name: str, docs: Path) -> list[str]:
    points, base = recipe["points"], recipe["baselines"]
    if not points:
        return []
    lines = [
        f"### A longer recipe against the raw pixels: `configs/{name}.yaml`",
        "",
        f"`python benchmarks/recipe_curve.py --config configs/{name}.yaml` (one run on "
        f"{recipe['threads']} CPU threads). Frozen online backbone after each listed epoch, "
        "scored like `minc-lightning-eval` (kNN k=200, T=0.1; linear 100 epochs) on the full "
        "training and validation splits; training time excludes these evaluations.",
        "",
        "| features | training minutes | kNN top-1 (%) | linear top-1 (%) |",
        "|---|---:|---:|---:|",
        f"| raw pixels | – | {100 * base['pixels']['knn']:.2f} | "
        f"{100 * base['pixels']['linear']:.2f} |",
        f"| the network, randomly initialised | – | {100 * base['random_init']['knn']:.2f} | "
        f"{100 * base['random_init']['linear']:.2f} |",
    ]
    for pt in points:
        lines.append(
            f"| MINC, epoch {pt['epoch']} | {pt['train_seconds'] / 60:.1f} | "
            f"{100 * pt['knn']:.2f} | {100 * pt['linear']:.2f} |"
        )
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
    lines += ["", saved(fig, docs, f"recipe_{name}.png"), ""]
    for metric in ("linear", "knn"):
        lines.append(f"- {metric}: {recipe_sentence(points, base['pixels'][metric], metric)}")
    return lines + [
        "",
        "Rule: one run, so a difference under one point is inconclusive; the trend is a straight "
        "line through the last three points against log(training time).",
        "",
    ]


def variance_section(store: dict, docs: Path) -> list[str]:
    rows = [r for k, r in store.items() if k.startswith("variance/")]
    if not rows:
        return []
    sizes = sorted({r["batch_size"] for r in rows})
    by = {(r["objective"], r["batch_size"]): r for r in rows}
    lines = [
        "## 3. Gradient variance against batch size",
        "",
        "Trace of the covariance of the backbone+projector gradient over repeated minibatches "
        "at fixed (initial) weights, and the same divided by the squared norm of the mean "
        "gradient. For MINC, Λ is first estimated from 5 batches, then held.",
        "",
        "| batch | minc total | spectral total | minc relative | spectral relative |",
        "|---:|---:|---:|---:|---:|",
    ]
    for b in sizes:
        m, s = by[("minc", b)], by[("spectral", b)]
        lines.append(
            f"| {b} | {m['total_variance']:.3e} | {s['total_variance']:.3e} | "
            f"{m['relative_variance']:.3f} | {s['relative_variance']:.3f} |"
        )
    fig, ax = plt.subplots(figsize=(5, 3.6))
    for o in ("minc", "spectral"):
        ax.plot(sizes, [by[(o, b)]["total_variance"] for b in sizes], marker="o", label=o)
    ax.set(xscale="log", yscale="log", xlabel="batch size", ylabel="total gradient variance")
    ax.set_xticks(sizes, [str(s) for s in sizes])
    ax.grid(alpha=0.3)
    ax.legend()
    verdicts = {
        field: claim_lower_variance(
            {b: by[("minc", b)][field] for b in sizes},
            {b: by[("spectral", b)][field] for b in sizes},
        )
        for field in ("total_variance", "relative_variance")
    }
    return lines + [
        "",
        saved(fig, docs, "gradient_variance.png"),
        "",
        f"- MINC's gradient variance is lower than SCL's: {bold(verdicts['total_variance'])} "
        f"(total variance); relative to the squared mean gradient: "
        f"{bold(verdicts['relative_variance'])}. Rule: below SCL's by a factor "
        f"{VARIANCE_FACTOR} at every batch size holds, at or above it at any does not hold "
        "(one measurement per cell, each over many minibatches).",
        "",
    ]


def spectrum_section(store: dict, docs: Path) -> list[str]:
    runs = {k.split("=")[1]: r for k, r in store.items() if k.startswith("spectrum/")}
    if not runs:
        return []
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.8))
    lines = [
        "## 4. The spectrum of Λ on real data, with and without tril(Λ)",
        "",
        "| triangular | final off-diagonal energy | adjacent diagonal entries in decreasing "
        "order | kNN | linear |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, r in sorted(runs.items(), reverse=True):
        trace = r["lambda_trace"]
        axes[0].plot(
            [t["step"] for t in trace],
            [t["offdiag_ratio"] for t in trace],
            label=f"triangular={name}",
        )
        axes[1].plot(trace[-1]["diag"], marker=".", label=f"triangular={name}")
        axes[2].semilogy(np.clip(trace[-1]["eig"], 1e-8, None), label=f"triangular={name}")
        lines.append(
            f"| {name} | {trace[-1]['offdiag_ratio']:.3f} | "
            f"{100 * trace[-1]['diag_sorted']:.0f}% | {100 * r['knn']:.2f}% | "
            f"{100 * r['linear']:.2f}% |"
        )
    axes[0].set(
        xlabel="optimizer step", ylabel="‖Λ − diag Λ‖²_F / ‖Λ‖²_F", title="off-diagonal energy of Λ"
    )
    axes[1].set(xlabel="embedding dimension", ylabel="Λ_ii", title="diagonal of Λ (end)")
    axes[2].set(xlabel="rank", ylabel="eigenvalue", title="eigenvalues of Λ (end)")
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend()
    lines += ["", saved(fig, docs, "lambda_spectrum.png"), ""]
    if "True" in runs and "False" in runs:
        on, off = runs["True"]["lambda_trace"][-1], runs["False"]["lambda_trace"][-1]
        lines += [
            f"- tril(Λ) drives Λ towards a diagonal with ordered entries (one run each): "
            f"{bold(claim_lambda_diagonal(on, off))}. Rule: holds when tril(Λ) leaves under "
            "half of full Λ's off-diagonal energy and a larger share of ordered adjacent "
            "diagonal entries; does not hold when it leaves at least as much.",
            "",
        ]
    return lines


LAMBDA_KEYS = ("offdiag_ratio", "diag_sorted", "knn", "linear")


def lambda_groups(result: dict) -> dict[bool, dict[str, list[float]]]:
    """lambda_at_budget.py's runs: each measure's values over the seeds, by ``triangular``."""
    groups = {True: defaultdict(list), False: defaultdict(list)}
    for r in result.get("runs", []):
        for key in LAMBDA_KEYS:
            groups[r["triangular"]][key].append(r[key])
    return groups


def lambda_verdict(result: dict) -> tuple[str, str] | None:
    tril, full = (lambda_groups(result)[t] for t in (True, False))
    if not (tril and full):
        return None
    numbers = (
        f"off-diagonal energy {pm(tril['offdiag_ratio'], 1, 3)} (tril) vs "
        f"{pm(full['offdiag_ratio'], 1, 3)}; ordered adjacent diagonal entries "
        f"{pm(tril['diag_sorted'], 100, 0)}% vs {pm(full['diag_sorted'], 100, 0)}%"
    )
    return claim_lambda_seeds(tril, full), numbers


def lambda_budget_section(result: dict, name: str, docs: Path) -> list[str]:
    """benchmarks/lambda_at_budget.py: Λ at the end of one config's budget, tril on and off."""
    verdict = lambda_verdict(result)
    if verdict is None:
        return []
    groups = lambda_groups(result)
    hours = sum(r["wall_seconds"] for r in result["runs"]) / 3600
    lines = [
        f"### tril(Λ) at the budget of `configs/{name}.yaml`",
        "",
        f"`python benchmarks/lambda_at_budget.py --config configs/{name}.yaml` "
        f"({len(result['runs'])} runs, {hours:.1f} hours with evaluation): MINC with "
        "`triangular` on and off, nothing else changed; Λ as it stands at the end of training.",
        "",
        "| triangular | seeds | off-diagonal energy | adjacent diagonal entries in decreasing "
        "order (%) | kNN top-1 (%) | linear top-1 (%) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    fig, axes = plt.subplots(1, 2, figsize=(8, 3.2))
    for triangular in (True, False):
        g = groups[triangular]
        lines.append(
            f"| {triangular} | {len(g['knn'])} | {pm(g['offdiag_ratio'], 1, 3)} | "
            f"{pm(g['diag_sorted'], 100, 0)} | {pm(g['knn'])} | {pm(g['linear'])} |"
        )
        label = "tril(Λ)" if triangular else "full Λ"
        for ax, key in zip(axes, ("offdiag_ratio", "diag_sorted"), strict=True):
            ax.plot([label] * len(g[key]), g[key], "o", alpha=0.7)
    axes[0].set(ylabel="‖Λ − diag Λ‖²_F / ‖Λ‖²_F", title="off-diagonal energy (0: diagonal)")
    axes[1].set(ylabel="share", title="diagonal in decreasing order (1: ordered)")
    for ax in axes:
        ax.set(xlim=(-0.5, 1.5), ylim=(0, 1.05))
        ax.grid(alpha=0.3)
    return lines + [
        "",
        saved(fig, docs, f"lambda_{name}.png"),
        "",
        f"- tril(Λ) drives Λ towards a diagonal with ordered entries: {bold(verdict[0])} "
        f"({verdict[1]}).",
        "",
        "Rule: holds when tril(Λ)'s off-diagonal energy is below full Λ's by more than 2 SE and "
        "under half of it, and its diagonal is more ordered by more than 2 SE; does not hold "
        "when either comparison goes the other way by more than 2 SE; otherwise inconclusive.",
        "",
    ]


def ablation_section(store: dict) -> list[str]:
    rows = {k.split("/", 1)[1]: r for k, r in store.items() if k.startswith("ablation/")}
    if not rows:
        return []
    lines = [
        "## 5. Ablations of the open choices (MINC, batch 128, seed 0)",
        "",
        "| setting | kNN | linear | final loss |",
        "|---|---:|---:|---:|",
    ]
    for name, r in rows.items():
        lines.append(
            f"| {name} | {100 * r['knn']:.2f}% | {100 * r['linear']:.2f}% | {r['final_loss']:.3f} |"
        )
    return lines + ["", "One seed per setting: no verdict is drawn from these.", ""]


# --- the page -----------------------------------------------------------------------------------
SHORT = "Fashion-MNIST, short runs"  # section 2's table: reproduce.py's batch sweep


def claims_table(
    store: dict,
    exact: dict | None,
    recipes: dict | None = None,
    comparisons: dict | None = None,
    lambdas: dict | None = None,
) -> list[str]:
    rows = []
    if exact:
        v = exact_verdicts(exact)
        rows += [
            ("MINC beats SCL at every batch size", "exact objective", *v["every"]),
            (
                "MINC at the smallest batch beats SCL at the largest",
                "exact objective",
                *v["small_vs_large"],
            ),
            (
                "tril(Λ) gives ordered eigenfunctions (full Λ a rotation)",
                "exact objective",
                *v["ordering"],
            ),
        ]
    rv = real_verdicts(store)
    judged = [(SHORT, rv)] + [
        (
            f"Fashion-MNIST, `{name}.yaml` budget",
            objective_verdicts(by_cell(c.get("runs", [])), comparison_baselines(c).get("pixels")),
        )
        for name, c in (comparisons or {}).items()
    ]
    for evidence, v in judged:
        if v:
            rows += [
                ("MINC beats SCL at every batch size", evidence, *v["every"]),
                (
                    "MINC at the smallest batch beats SCL at the largest",
                    evidence,
                    *v["small_vs_large"],
                ),
                ("MINC does not collapse and is close to BYOL", evidence, *v["byol"]),
            ]
    var = {
        (r["objective"], r["batch_size"]): r["total_variance"]
        for k, r in store.items()
        if k.startswith("variance/")
    }
    if var:
        sizes = sorted({b for _, b in var})
        rows.append(
            (
                "MINC's gradient has lower variance than SCL's",
                SHORT,
                claim_lower_variance(
                    {b: var[("minc", b)] for b in sizes}, {b: var[("spectral", b)] for b in sizes}
                ),
                "total variance, "
                + ", ".join(f"{b}: {var[('minc', b)] / var[('spectral', b)]:.2f}×" for b in sizes),
            )
        )
    spectrum = {k.split("=")[1]: r for k, r in store.items() if k.startswith("spectrum/")}
    if {"True", "False"} <= set(spectrum):
        on, off = (spectrum[k]["lambda_trace"][-1] for k in ("True", "False"))
        energy = (
            f"off-diagonal energy {on['offdiag_ratio']:.3f} (tril) vs {off['offdiag_ratio']:.3f}"
        )
        verdict = claim_lambda_diagonal(on, off)
        rows.append(("tril(Λ) drives Λ towards an ordered diagonal", SHORT, verdict, energy))
    for name, result in (lambdas or {}).items():
        if (judged_lambda := lambda_verdict(result)) is not None:
            claim = "tril(Λ) drives Λ towards an ordered diagonal"
            rows.append((claim, f"Fashion-MNIST, `{name}.yaml` budget", *judged_lambda))
    for evidence, v in judged:
        if "pixels" in v:
            rows.append(("(baseline) MINC's features beat the raw pixels", evidence, *v["pixels"]))
    for name, recipe in (recipes or {}).items():
        pixels, points = recipe["baselines"]["pixels"], recipe["points"]
        for metric in ("linear", "knn") if points else ():
            verdict = claim_beats_pixels(points, pixels[metric], metric, 60)
            numbers = recipe_sentence(points, pixels[metric], metric).split("(", 1)[1][:-2]
            claim = f"(baseline) `configs/{name}.yaml` beats the raw pixels in 60 minutes, {metric}"
            rows.append((claim, "Fashion-MNIST, one long run", verdict, numbers))
    if not rows:
        return []
    lines = [
        "## The paper's claims (SPEC section 5), verdicts from the numbers below",
        "",
        "| claim | evidence | verdict | numbers |",
        "|---|---|---|---|",
    ]
    lines += [f"| {c} | {e} | {bold(v)} | {n} |" for c, e, v, n in rows]
    return lines + [""]


def machine(args: dict) -> str:
    if args.get("device", "cpu") == "cpu":
        return f"{platform.machine()} CPU ({torch.get_num_threads()} threads)"
    return f"one {args['device']} device"


def real_setting(store: dict) -> list[str]:
    budget = store.get("budget", {})
    args = budget.get("args", {})
    if not args:
        return []
    return [
        f"`python benchmarks/reproduce.py --batch_sizes {args.get('batch_sizes', '?')} "
        f"--seeds {args.get('seeds', '?')} --skip {args.get('skip', '[]')}` "
        f"({budget.get('seconds', 0) / 60:.0f} minutes on {machine(args)}): Fashion-MNIST, "
        f"{args.get('train_images', '?')} training images (fixed random subset) and "
        f"{args.get('val_images', '?')} validation images, backbone {args.get('backbone', '?')} "
        f"(width {args.get('width', '?')}), {args.get('epochs', '?')} epochs, LARS with base lr "
        f"{args.get('lr', '?')} × batch/256, the same augmentations and heads for every "
        f"objective. Evaluation: kNN (k={args.get('knn_k', '?')}, T=0.1, cosine) and a linear "
        f"classifier ({args.get('linear_epochs', '?')} epochs) on frozen features of the online "
        "backbone in eval mode.",
        "",
    ]


def write_report(
    store: dict,
    docs: Path,
    exact: dict | None = None,
    recipes: dict | None = None,
    comparisons: dict | None = None,
    lambdas: dict | None = None,
) -> None:
    docs.mkdir(parents=True, exist_ok=True)
    lines = [
        "# Results: MINC against the spectral contrastive loss and BYOL",
        "",
        "Generated by `python benchmarks/report.py` from the raw results in `docs/data/`, "
        "which `benchmarks/spectral_exact.py`, `reproduce.py`, `objectives_at_budget.py`, "
        "`lambda_at_budget.py` and `recipe_curve.py` write; rerun those to reproduce every "
        f"number. torch {torch.__version__}.",
        "",
    ]
    recipes = recipes if recipes is not None else load_named("recipe")
    comparisons = comparisons if comparisons is not None else load_named("objectives")
    lambdas = lambdas if lambdas is not None else load_named("lambda")
    lines += claims_table(store, exact, recipes, comparisons, lambdas)
    if exact:
        lines += exact_section(exact, docs)
    lines += batch_section(store, docs)
    for name, comparison in comparisons.items():
        lines += comparison_section(comparison, name, docs)
    for name, recipe in recipes.items():
        lines += recipe_section(recipe, name, docs)
    lines += variance_section(store, docs)
    lines += spectrum_section(store, docs)
    for name, result in lambdas.items():
        lines += lambda_budget_section(result, name, docs)
    lines += ablation_section(store)
    (docs / "results.md").write_text("\n".join(lines) + "\n")
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
    )
