"""docs/results.md's comparison of estimators inside one network (``benchmarks/estimators.py``).

Per estimator and batch, linear top-1 over the fresh seeds at the cell's tuned setting and at
the setting carried from batch 64; verdicts by the rules of ``verdicts.py`` once every cell of a
comparison has at least two seeds: MINC against SCL (at every batch; smallest against largest),
MINC close to BYOL, and whether Λ's term makes MINC differ from BYOL (an equivalence test
within ``BYOL_MARGIN``, the level shared among the batches).
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from benchmarks import estimators as study
from benchmarks.claims import BYOL, EVERY, LAMBDA_ACTS, SMALL_VS_LARGE, Verdict, pm
from benchmarks.verdicts import (
    BYOL_MARGIN,
    DIFFERENT,
    EQUIVALENT,
    FAILS,
    HOLDS,
    UNSURE,
    Sample,
    claim_close_to_byol,
    claim_every_batch,
    claim_small_vs_large,
    compare,
    equivalence_per_batch,
)

EVIDENCE = "Fashion-MNIST, estimators in one network, tuned per cell"
CARRIED = "Fashion-MNIST, estimators in one network, batch 64's setting carried"
WAYS = {"tuned": EVIDENCE, "carried": CARRIED}  # how a cell's setting is chosen → its evidence
NAMES = {"minc": "MINC", "batch_moment": "batch moment", "byol": "BYOL", "scl": "SCL"}


def settings(runs: list[dict]) -> dict[tuple[str, int], dict]:
    """(estimator, batch) → its tuned setting, for the cells whose tuning has ended."""
    out = {}
    for estimator in study.ESTIMATORS:
        for batch in sorted({r["batch_size"] for r in runs}):
            chosen = study.selection(runs, estimator, batch)[1]
            if chosen is not None:
                out[estimator, batch] = chosen
    return out


def grid(runs: list[dict], how: str) -> dict[str, dict[int, Sample]]:
    """estimator → batch → scores, at each cell's own setting (``how="tuned"``, once the cell is
    tuned) or at batch 64's (``"carried"``, at every batch as soon as 64 is tuned)."""
    chosen = settings(runs)
    out: dict[str, dict[int, Sample]] = {}
    batches = sorted({r["batch_size"] for r in runs})
    for estimator in study.ESTIMATORS:
        for batch in batches:
            source = chosen.get((estimator, batch if how == "tuned" else 64))
            if source is not None:
                out.setdefault(estimator, {})[batch] = study.scores(runs, estimator, batch, source)
    return out


def ready(batches: set[int], *groups: dict[int, Sample]) -> bool:
    """Every group has every batch of the study (there are some), each with two seeds or more."""
    return bool(batches) and all(
        set(g) == batches and all(len(s) >= 2 for s in g.values()) for g in groups
    )


def differs(minc: dict[int, Sample], byol: dict[int, Sample]) -> tuple[str, list[str]]:
    """Λ's term makes a difference: MINC and BYOL different beyond ``BYOL_MARGIN`` at some batch
    (holds), equivalent within it at every batch (does not hold), else inconclusive."""
    per = equivalence_per_batch(minc, byol, BYOL_MARGIN)
    found = [verdict for verdict, _ in per.values()]
    parts = [
        f"{n}: {100 * ci.value:+.2f} [{100 * ci.low:+.2f}, {100 * ci.high:+.2f}]"
        for n, (_, ci) in per.items()
    ]
    if DIFFERENT in found:
        return HOLDS, parts
    return (FAILS if all(v == EQUIVALENT for v in found) else UNSURE), parts


def worse_than_carried(
    tuned: dict[str, dict[int, Sample]], carried: dict[str, dict[int, Sample]]
) -> list[str]:
    """The cells whose own setting, chosen on the one selection seed, is behind batch 64's
    carried setting on the fresh seeds (paired, by ``compare``): where a per-cell verdict rests
    partly on a selection seed's luck."""
    out = []
    for estimator, cells in tuned.items():
        for batch, mine in sorted(cells.items()):
            other = carried.get(estimator, {}).get(batch)
            if len(mine) >= 2 and other and len(other) >= 2 and compare(mine, other) == "behind":
                out.append(f"{NAMES[estimator]} at {batch} ({pm(mine)}% against {pm(other)}%)")
    return out


def verdicts(result: dict) -> list[Verdict]:
    """Each claim judged both ways a cell's setting is chosen (``WAYS``), where ready."""
    runs = result.get("runs", [])
    batches = {r["batch_size"] for r in runs}  # "every batch" means every batch of the study
    return [v for how, ev in WAYS.items() for v in judged(grid(runs, how), ev, batches)]


def judged(cells: dict[str, dict[int, Sample]], evidence: str, batches: set[int]) -> list[Verdict]:
    minc, scl, byol = (cells.get(k, {}) for k in ("minc", "scl", "byol"))
    out = []
    if ready(batches, minc, scl):
        verdict, per = claim_every_batch(minc, scl)
        numbers = ", ".join(f"{n}: {r}" for n, r in per.items())
        out.append(Verdict(EVERY, evidence, verdict, f"MINC vs SCL per batch: {numbers}"))
        small, large = min(minc), max(scl)
        numbers = f"MINC at {small} {pm(minc[small])}%; SCL at {large} {pm(scl[large])}%"
        out.append(Verdict(SMALL_VS_LARGE, evidence, claim_small_vs_large(minc, scl), numbers))
    if ready(batches, minc, byol):
        numbers = "; ".join(f"{n}: MINC {pm(minc[n])}, BYOL {pm(byol[n])}" for n in sorted(minc))
        out.append(Verdict(BYOL, evidence, claim_close_to_byol(minc, byol), numbers))
        verdict, parts = differs(minc, byol)
        numbers = "MINC − BYOL, points [interval]: " + ", ".join(parts)
        out.append(Verdict(LAMBDA_ACTS, evidence, verdict, numbers))
    return out


def context(result: dict, draw) -> dict | None:
    runs = result.get("runs", [])
    if not runs:
        return None
    tuned, carried = grid(runs, "tuned"), grid(runs, "carried")
    batches = sorted({r["batch_size"] for r in runs})
    header = ["estimator", "setting"] + [f"batch {b}" for b in batches]
    rows = []
    for estimator, name in NAMES.items():
        for how, table in (("tuned per cell", tuned), ("carried from 64", carried)):
            cells = [
                pm(table[estimator][b]) + f" ({len(table[estimator][b])})"
                if b in table.get(estimator, {}) and table[estimator][b]
                else "not yet"
                for b in batches
            ]
            rows.append([name, how, *cells])
    lines = ["| " + " | ".join(header) + " |", "|---|---|" + "---:|" * len(batches)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    chosen = settings(runs)
    tuned_text = "; ".join(
        f"{NAMES[e]} at {b}: " + ", ".join(f"{k} {v:g}" for k, v in s.items())
        for (e, b), s in sorted(chosen.items())
    )
    reported = sum(r["seed"] != study.SELECTION_SEED for r in runs)
    own = [r for r in runs if not r.get("from")]  # the others: the older comparison's runs
    hours = sum(r.get("wall_seconds", 0.0) for r in own) / 3600
    cells = len(study.ESTIMATORS) * 3
    at_bound = [f"{NAMES[e]} at {b}" for (e, b), s in chosen.items() if s["lr"] in study.LR_BOUNDS]
    progress = (
        f"{'So far' if len(chosen) < cells else 'In all'}: {len(runs)} runs ({reported} "
        f"reported; {len(runs) - len(own)} taken over "
        f"from `tuned_quickstart.json`), {hours:.1f} hours of wall time summed over this "
        f"study's own (training and evaluation; a run that shared the cores, with another run "
        f"or other work, counts its whole wall time), {len(chosen)} of "
        f"{cells} cells tuned"
        + (f" ({tuned_text})" if tuned_text else "")
        + (
            f"; chosen at a bound of the lr grid, so not inside it: {', '.join(at_bound)}"
            if at_bound
            else ""
        )
        + "."
        + (
            " Tuned per cell yet behind batch 64's carried setting on the fresh seeds (the one "
            f"selection seed chose worse): {'; '.join(worse)}."
            if (worse := worse_than_carried(tuned, carried))
            else ""
        )
        + " Linear top-1 (%), mean ± sd over the fresh seeds (their count in brackets):"
    )
    found = verdicts(result)
    return {
        "batches": ", ".join(map(str, batches)),
        "progress": progress,
        "table": "\n".join(lines),
        "figure": draw(figure(tuned, carried), "estimators.png")
        if any_scores(tuned, carried)
        else "",
        "verdicts": "\n".join(f"- {v.line()}" for v in found)
        or f"- No verdict yet: {UNSURE} until every compared cell has two fresh seeds.",
    }


def any_scores(*grids: dict[str, dict[int, Sample]]) -> bool:
    """Whether any cell has fresh seeds to draw."""
    return any(sample for g in grids for cells in g.values() for sample in cells.values())


def figure(
    tuned: dict[str, dict[int, Sample]], carried: dict[str, dict[int, Sample]]
) -> plt.Figure:
    """Mean ± sd over the fresh seeds per estimator and batch: colour the estimator, the line
    how its setting was chosen; the estimators are spread a little along x to keep bars apart."""
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    drawn: set[int] = set()
    for i, ((estimator, name), colour) in enumerate(zip(NAMES.items(), colours, strict=False)):
        for table, style in ((tuned, "-"), (carried, "--")):
            cells = {b: s for b, s in table.get(estimator, {}).items() if s}
            if not cells:
                continue
            xs = sorted(cells)
            drawn.update(xs)
            means = [100 * np.mean(cells[b]) for b in xs]
            sds = [100 * np.std(cells[b], ddof=1) if len(cells[b]) > 1 else 0.0 for b in xs]
            spread = [b * 1.04 ** (i - 1.5) for b in xs]
            label = name if style == "-" else None
            ax.errorbar(spread, means, sds, fmt="o" + style, capsize=3, color=colour, label=label)
    ax.set(xscale="log", xlabel="batch size", ylabel="linear top-1 (%), mean ± sd over seeds")
    ax.set_xticks(sorted(drawn))
    ax.set_xlim(min(drawn) / 1.5, max(drawn) * 1.5)
    ax.get_xaxis().set_major_formatter(plt.ScalarFormatter())
    ax.get_xaxis().set_minor_locator(plt.NullLocator())
    ax.set_title("Estimators in one network\n(solid: tuned per cell; dashed: batch 64's setting)")
    ax.legend(fontsize="small")
    fig.tight_layout()
    return fig
