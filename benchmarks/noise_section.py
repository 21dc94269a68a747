"""docs/results.md's section on gradient noise relative to its size
(``benchmarks/gradient_noise.py``), which replaces the total-variance verdict.

Tables: the median relative noise E‖ĝ − ḡ‖²/‖ḡ‖² over seeds, per estimator, point of training
and batch. Verdict (per kind of evidence): MINC's relative noise below SCL's at every batch,
judged by the t rule on the log-ratios paired by (seed, point of training), the level shared
among the batches; above it by that rule at any batch: does not hold.
"""

from __future__ import annotations

import math
from statistics import median

import matplotlib.pyplot as plt

from benchmarks.claims import NOISE, Verdict
from benchmarks.gradient_noise import REAL_BATCHES
from benchmarks.verdicts import Sample, claim_every_batch

EXACT, REAL = "exact objective, gradient noise", "Fashion-MNIST, gradient noise"
NAMES = {"minc_tril": "MINC", "minc": "MINC", "batch_moment": "batch moment", "scl": "SCL"}


def records(result: dict) -> dict[str, list[dict]]:
    """Evidence → flat records of (estimator, batch, seed, fraction, relative)."""
    real = [
        {"estimator": r["estimator"], "batch": r["batch_size"], "seed": r["seed"]}
        | {"fraction": round(p["fraction"], 2), "relative": p["relative"]}
        for r in result.get("runs", [])
        for p in r.get("noise", [])
    ]
    return {EXACT: result.get("exact", []), REAL: real}


def quieter(found: list[dict], minc: str) -> tuple[dict[int, Sample], dict[int, Sample], list]:
    """batch → −log relative noise of ``minc`` and of SCL, paired by (seed, point), so that
    MINC "ahead" of SCL means less noisy; and the pairs left out because one side's mean
    gradient was not measurable (its unbiased squared norm not above 0: no relative noise)."""
    measured: dict[tuple, dict[str, float | None]] = {}
    for r in found:
        if r["estimator"] in (minc, "scl"):
            key = (r["batch"], r["seed"], r["fraction"])
            relative = r["relative"] if r["relative"] and r["relative"] > 0 else None
            measured.setdefault(key, {})[r["estimator"]] = relative
    out: dict[int, tuple[Sample, Sample]] = {}
    left_out = []
    for (batch, seed, fraction), pair in sorted(measured.items()):
        if len(pair) < 2:
            continue  # one side not run (yet)
        if None in pair.values():
            left_out.append(
                (batch, seed, fraction, [NAMES[e] for e, v in pair.items() if v is None])
            )
            continue
        a, b = out.setdefault(batch, (Sample([], []), Sample([], [])))
        for sample, name in ((a, minc), (b, "scl")):
            sample.append(-math.log(pair[name]))
            sample.seeds.append((seed, fraction))
    return {k: v[0] for k, v in out.items()}, {k: v[1] for k, v in out.items()}, left_out


def verdicts(result: dict) -> list[Verdict]:
    out = []
    for evidence, found in records(result).items():
        minc, scl, left_out = quieter(found, "minc_tril" if evidence == EXACT else "minc")
        if not minc or any(len(s) < 2 for s in minc.values()):
            continue
        verdict, per = claim_every_batch(minc, scl)
        ratios = ", ".join(f"{b}: {ratio(minc[b], scl[b]):.2f}×" for b in sorted(minc))
        numbers = f"MINC's relative noise over SCL's, geometric mean per batch: {ratios}"
        if left_out:
            numbers += "; left out, a mean gradient too small to measure: " + ", ".join(
                f"{' and '.join(names)} at batch {b}, seed {seed}, point {f:g}"
                for b, seed, f, names in left_out
            )
        out.append(Verdict(NOISE, evidence, verdict, numbers))
    return out


def ratio(minc: Sample, scl: Sample) -> float:
    """exp(mean log-ratio) of MINC's relative noise to SCL's (the Samples hold −log)."""
    return math.exp((sum(scl) - sum(minc)) / len(minc))  # paired: as many values each


def middle(rows: list[dict], estimator: str, batch: int, fraction: float) -> float:
    """The median relative noise of one cell over seeds (NaN where none was measured)."""
    mine = [
        r["relative"]
        for r in rows
        if (r["estimator"], r["batch"], r["fraction"]) == (estimator, batch, fraction)
        and r["relative"] is not None
    ]
    return median(mine) if mine else math.nan


def table(found: list[dict]) -> str:
    batches = sorted({r["batch"] for r in found})
    keys = sorted({(r["estimator"], r["fraction"]) for r in found}, key=lambda k: (k[0], k[1]))
    lines = [
        "| estimator | point of training | " + " | ".join(f"batch {b}" for b in batches) + " |",
        "|---|---:|" + "---:|" * len(batches),
    ]
    for estimator, fraction in keys:
        values = [middle(found, estimator, b, fraction) for b in batches]
        cells = ["not measurable" if math.isnan(v) else f"{v:.3g}" for v in values]
        name = NAMES.get(estimator, estimator)
        lines.append(f"| {name} | {fraction:g} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def real_batches(result: dict) -> str:
    """How many batches each real point was measured over: as the runs recorded it, else the
    script's default (no real run yet)."""
    counts = {
        p["batches"] for r in result.get("runs", []) for p in r.get("noise", []) if "batches" in p
    }
    return ", ".join(map(str, sorted(counts))) or str(REAL_BATCHES)


def context(result: dict, draw) -> dict | None:
    found = {k: v for k, v in records(result).items() if v}
    if not found:
        return None
    tables = "\n\n".join(f"{evidence}:\n\n{table(rows)}" for evidence, rows in found.items())
    lines = [f"- {v.evidence}: {v.line()}" for v in verdicts(result)]
    rule = (
        "Rule: per batch, the t interval of the log-ratio of MINC's relative noise to SCL's, "
        "paired by seed and point of training, at 5% shared among the batches: below 0 at "
        "every batch holds, above 0 at any does not hold. A point where either mean gradient "
        "is too small to measure over the batches taken (its unbiased squared norm is not "
        'above 0: the table\'s "not measurable") is left out of the pairs, and named.'
    )
    return {
        "real_batches": real_batches(result),
        "table": tables,
        "figure": draw(figure(found), "gradient_noise.png"),
        "verdicts": "\n".join(lines + [rule]),
    }


def figure(found: dict[str, list[dict]]) -> plt.Figure:
    """Median relative noise along training, one panel per evidence and batch."""
    batches = sorted({r["batch"] for rows in found.values() for r in rows})
    fig, axes = plt.subplots(
        len(found), len(batches), figsize=(3.3 * len(batches), 3 * len(found)), squeeze=False
    )
    for row, (evidence, rows) in zip(axes, found.items(), strict=True):
        for ax, b in zip(row, batches, strict=True):
            for estimator in sorted({r["estimator"] for r in rows}):
                points = sorted({r["fraction"] for r in rows if r["estimator"] == estimator})
                ys = [middle(rows, estimator, b, f) for f in points]
                ax.plot(points, ys, marker="o", label=NAMES.get(estimator, estimator))
            ax.set(yscale="log", title=f"{evidence.split(',')[0]}, batch {b}")
            ax.set_xlabel("fraction of training")
        row[0].set_ylabel("E‖ĝ − ḡ‖² / ‖ḡ‖²")
    axes[0, 0].legend(fontsize=8)
    return fig
