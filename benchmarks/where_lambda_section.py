"""docs/results.md's section on where Λ acts on real data (``benchmarks/lambda_settings.py``).

One run per setting (seed 0): MINC over ``mu``, the predictor, ``alpha`` and tril(Λ) against
full Λ, beside BYOL. The rules, stated on the page:

* tril(Λ) **orders** Λ at a setting when, against full Λ at the same setting, it leaves under
  half the off-diagonal energy and a more ordered diagonal (``verdicts.claim_lambda_diagonal``);
* a setting **differs from BYOL** when its linear top-1 is more than ``ONE_RUN_MARGIN`` away
  from BYOL's; within it, one run a side cannot tell them apart;
* a setting **becomes the default** when tril(Λ) orders Λ there and its linear top-1 is at
  least the shipped setting's. ``report.py`` fills the template's ``where_lambda`` section.
"""

from __future__ import annotations

import math

import matplotlib.pyplot as plt

from benchmarks.claims import DIAGONAL, LAMBDA_ACTS, Verdict
from benchmarks.lambda_settings import QUICKSTART
from benchmarks.verdicts import FAILS, HOLDS, UNSURE, claim_lambda_diagonal

ONE_RUN_MARGIN = 0.01  # a point of top-1; seeds of one quickstart setting spread 0.2-0.3 points
SHIPPED = {k: v for k, v in QUICKSTART.items() if k != "lr"}  # the loss settings shipped
SETTING_KEYS = ("mu", "alpha", "use_predictor")


def label(run: dict) -> str:
    if run["objective"] != "minc":
        return run["objective"]
    mu = "none" if run["mu"] is None else f"{run['mu']:g}"
    text = f"mu {mu}, alpha {run['alpha']:g}"
    return text + ("" if run["use_predictor"] else ", no predictor")


def pairs(runs: list[dict]) -> list[tuple[dict, dict | None]]:
    """Each tril(Λ) run with the full-Λ run of the same setting (None where there is none)."""
    minc = [r for r in runs if r["objective"] == "minc"]
    out = []
    for tril in (r for r in minc if r["triangular"]):
        same = [
            r
            for r in minc
            if not r["triangular"] and all(r[k] == tril[k] for k in SETTING_KEYS + ("seed",))
        ]
        out.append((tril, same[0] if same else None))
    return out


def orders(tril: dict, full: dict | None) -> str:
    """The ordering verdict of one setting ("n/a" without a full-Λ run or after divergence)."""
    if full is None or tril["diverged"] or full["diverged"]:
        return "n/a"
    return claim_lambda_diagonal(tril, full)


def gaps(run: dict, byol: dict) -> tuple[float, float]:
    """(linear, kNN) top-1 of ``run`` minus BYOL's."""
    return run["linear"] - byol["linear"], run["knn"] - byol["knn"]


def versus_byol(run: dict, byol: dict | None) -> str:
    """ "better" / "worse" when linear or kNN top-1 is more than the margin from BYOL's (both
    ways: "mixed"), else "not told apart"."""
    if byol is None:
        return "n/a"
    if run["diverged"]:
        return "diverged"
    beyond = [g for g in gaps(run, byol) if abs(g) > ONE_RUN_MARGIN]
    if not beyond:
        return "not told apart"
    return "better" if min(beyond) > 0 else "worse" if max(beyond) < 0 else "mixed"


def decision(runs: list[dict]) -> str:
    """Which setting the rule makes the default and how MINC stands against BYOL, computed."""
    shipped = next(r for r in runs if r["objective"] == "minc" and SHIPPED.items() <= r.items())
    byol = next((r for r in runs if r["objective"] == "byol"), None)
    winners = [
        tril
        for tril, full in pairs(runs)
        if orders(tril, full) == HOLDS and tril["linear"] >= shipped["linear"]
    ]
    if winners:
        best = max(winners, key=lambda r: r["linear"])
        text = (
            f"tril(Λ) orders Λ at **{label(best)}** with linear top-1 {100 * best['linear']:.2f}% "
            f"(the shipped setting: {100 * shipped['linear']:.2f}%): by the rule it becomes the "
            "default."
        )
    else:
        ordered = [label(t) for t, f in pairs(runs) if orders(t, f) == HOLDS]
        where = (
            f"tril(Λ) orders Λ only at {', '.join(ordered)}, less accurately than shipped"
            if ordered
            else "no setting tried makes tril(Λ) order Λ"
        )
        text = f"**At the quickstart's budget {where}: by the rule the defaults stay.**"
    if byol is None:
        return text
    minc = [r for r in runs if r["objective"] == "minc"]
    verdicts = {
        label(r) + (" tril" if r["triangular"] else " full"): versus_byol(r, byol) for r in minc
    }
    counts = {
        v: sum(1 for x in verdicts.values() if x == v) for v in sorted(set(verdicts.values()))
    }
    linear_gap, knn_gap = gaps(shipped, byol)
    return (
        f"{text} Against BYOL (one run each), the shipped setting is "
        f"**{versus_byol(shipped, byol)}** (linear {100 * linear_gap:+.2f}, kNN "
        f"{100 * knn_gap:+.2f} points; the Λ term's pull {shipped['pull_ratio']:.2f} of the "
        f"alignment term's). Over the {len(minc)} MINC runs: "
        + ", ".join(f"{n} {v}" for v, n in counts.items())
        + "."
    )


EVIDENCE = "Fashion-MNIST, where Λ acts"


def verdicts(result: dict) -> list[Verdict]:
    """tril(Λ) orders Λ at some setting tried (holds), at none with a failed comparison (does
    not hold); some MINC setting is better or worse than BYOL (holds), none (inconclusive: one
    run each cannot show two methods equal)."""
    runs = result.get("runs", [])
    found = [(label(t), orders(t, f)) for t, f in pairs(runs)]
    judged = [v for _, v in found if v != "n/a"]
    if not judged:
        return []
    ordered = [name for name, v in found if v == HOLDS]
    verdict = HOLDS if ordered else FAILS if FAILS in judged else UNSURE
    numbers = f"tril(Λ) orders Λ at {len(ordered)} of {len(judged)} settings compared with full Λ"
    out = [Verdict(DIAGONAL, EVIDENCE, verdict, numbers)]
    byol = next((r for r in runs if r["objective"] == "byol"), None)
    if byol is not None:
        minc = [r for r in runs if r["objective"] == "minc" and not r["diverged"]]
        told = {r_id: versus_byol(r, byol) for r_id, r in enumerate(minc)}
        apart = [v for v in told.values() if v in ("better", "worse", "mixed")]
        counts = ", ".join(f"{apart.count(v)} {v}" for v in ("better", "worse", "mixed"))
        shipped = next(r for r in minc if SHIPPED.items() <= r.items())
        numbers = (
            f"one run each: {len(apart)} of {len(minc)} settings told apart from BYOL ({counts}); "
            f"the shipped setting {versus_byol(shipped, byol)}"
        )
        out.append(Verdict(LAMBDA_ACTS, EVIDENCE, HOLDS if apart else UNSURE, numbers))
    return out


def context(result: dict, draw) -> dict | None:
    """The section's fields (None before the benchmark has run); ``draw(fig, name)`` saves a
    figure beside the page and returns its markdown."""
    runs = result.get("runs", [])
    byols = [r for r in runs if r["objective"] == "byol"]
    if not any(r["objective"] == "minc" for r in runs):
        return None
    byol = byols[0] if byols else None
    header = [
        "setting", "Λ", "linear (%)", "kNN (%)", "Δ linear, kNN vs BYOL", "against BYOL",
        "pull ratio", "participation", "top-4 share", "off-diagonal", "diag sorted", "tril orders",
    ]  # fmt: skip
    rows = []
    if byol is not None:
        rows.append(["byol", "", *percent(byol), "", "", *[""] * 6])
    for tril, full in pairs(runs):
        verdict = orders(tril, full)
        for run in (tril, full) if full else (tril,):
            gap = "" if byol is None else ", ".join(f"{100 * g:+.2f}" for g in gaps(run, byol))
            rows.append(
                [label(run), "tril" if run["triangular"] else "full", *percent(run), gap]
                + [versus_byol(run, byol), *state(run), verdict if run is tril else ""]
            )
    lines = ["| " + " | ".join(header) + " |", "|---|---|" + "---:|" * 9 + "---|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return {
        "count": str(len(runs)),
        "table": "\n".join(lines),
        "figure": draw(figure(pairs(runs)), "where_lambda_acts.png"),
        "decision": decision(runs),
        "margin": f"{100 * ONE_RUN_MARGIN:g}",
    }


def percent(run: dict) -> list[str]:
    tail = " (diverged)" if run["diverged"] else ""
    return [f"{100 * run['linear']:.2f}{tail}", f"{100 * run['knn']:.2f}"]


def state(run: dict) -> list[str]:
    pull = run.get("pull_ratio", math.nan)
    pull_text = "inf" if math.isinf(pull) else f"{pull:.2g}" if pull > 100 else f"{pull:.2f}"
    return [pull_text] + [
        f"{run[k]:.2f}" for k in ("participation", "top4_share", "offdiag_ratio", "diag_sorted")
    ]


def figure(settings: list[tuple[dict, dict | None]]) -> plt.Figure:
    """Λ's diagonal over its trace, in index order, tril(Λ) against full Λ at each setting: an
    ordered Λ falls from left to right under tril and not under full."""
    shown = [(t, f) for t, f in settings if f is not None][:6]
    fig, axes = plt.subplots(2, 3, figsize=(11, 6), sharex=True, squeeze=False)
    for ax, (tril, full) in zip(axes.flat, shown, strict=False):
        for run, colour in ((tril, "C0"), (full, "C1")):
            diagonal = [v / sum(run["diagonal"]) for v in run["diagonal"]]
            name = "tril(Λ)" if run["triangular"] else "full Λ"
            ax.plot(diagonal, color=colour, lw=1, label=name)
        ax.set_title(label(tril) + (" (diverged)" if tril["diverged"] else ""), fontsize=9)
    for ax in axes.flat[len(shown) :]:
        ax.axis("off")
    axes[0, 0].legend(fontsize=8)
    for ax in axes[-1]:
        ax.set_xlabel("dimension of Λ")
    for ax in axes[:, 0]:
        ax.set_ylabel("diagonal / trace")
    fig.suptitle("Λ's diagonal at the end of the quickstart: ordered would fall left to right")
    return fig
