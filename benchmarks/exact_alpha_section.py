"""docs/results.md's section on Λ's rate tuned per cell on the exact benchmark
(``benchmarks/exact_alpha.py``), beside the value carried from batch 64 by the EMA rule.

Per MINC objective and batch: the tuned (lr, alpha per 256, the per-step rate it gives) and the
final J/J* over the fresh seeds, against ``spectral_exact.py``'s per-cell runs at the carried
alpha (the same seeds). Verdict: the carried alpha loses nothing to the tuned one when, every
cell having run, it is nowhere behind it by the t rule (paired by seed, the level shared among
the cells); behind at any cell: does not hold; otherwise inconclusive.
"""

from __future__ import annotations

from benchmarks.claims import PREDICTS, Claim, Verdict, pm
from benchmarks.exact_alpha import MINC
from benchmarks.rows import reached
from benchmarks.spectral_exact import rate_at
from benchmarks.verdicts import FAILS, HOLDS, UNSURE, Sample, compare

EVIDENCE = "exact objective, alpha per cell"
RULE = Claim(
    PREDICTS.key,
    "(rule) the EMA rule's carried alpha loses nothing to alpha tuned per cell",
    "The alpha carried by the EMA rule reaches the per-cell tuned alpha's J/J* at every cell",
)


def expected_cells(exact: dict) -> int:
    """The cells the study tunes: each MINC form at each batch of the exact benchmark."""
    return len(MINC) * len(exact.get("config", {}).get("batches", []))


def finals(runs: list[dict], objective: str, batch: int) -> Sample:
    mine = [r for r in runs if (r["objective"], r["batch"]) == (objective, batch)]
    return Sample([reached(r) for r in mine], [r["seed"] for r in mine])


def cells(result: dict, exact: dict) -> list[dict]:
    """Each cell whose fresh seeds have run: its tuned and carried settings and finals."""
    out = []
    carried_alpha = exact.get("alpha_per_256", {})
    for run in result.get("runs", []):
        key = (run["objective"], run["batch"])
        if any((c["objective"], c["batch"]) == key for c in out):
            continue
        carried = finals(exact.get("runs", []), *key)
        out.append(
            {
                "objective": key[0],
                "batch": key[1],
                "lr": run["base_lr"],
                "alpha": run["alpha_per_256"],
                "rate": run["alpha"],
                "tuned": finals(result["runs"], *key),
                "carried_alpha": carried_alpha.get(key[0]),
                "carried_lr": exact.get("chosen", {}).get(key[0], {}).get(str(key[1])),
                "carried": carried,
            }
        )
    return out


def verdicts(result: dict, exact: dict) -> list[Verdict]:
    found = [c for c in cells(result, exact) if len(c["tuned"]) >= 2 and len(c["carried"]) >= 2]
    if not found:
        return []
    per = {
        f"{c['objective']} {c['batch']}": compare(c["carried"], c["tuned"], tests=len(found))
        for c in found
    }
    expected = expected_cells(exact)
    complete = len(found) >= expected
    verdict = FAILS if "behind" in per.values() else HOLDS if complete else UNSURE
    behind = [k for k, r in per.items() if r == "behind"]
    numbers = (
        f"{len(found)} of {expected} cells; carried behind tuned at: {', '.join(behind) or 'none'}"
    )
    return [Verdict(RULE, EVIDENCE, verdict, numbers)]


def context(result: dict, exact: dict, alphas: tuple[float, ...]) -> dict | None:
    found = cells(result, exact) if exact.get("runs") else []  # nothing carried to set beside
    if not found:
        return None
    lines = [
        "| objective | batch | tuned lr | tuned alpha per 256 (per step) | tuned J/J* "
        "| carried lr, alpha per 256 (per step) | carried J/J* | carried vs tuned |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for c in found:
        carried_rate = rate_at(c["carried_alpha"], c["objective"], c["batch"])
        lines.append(
            f"| {c['objective']} | {c['batch']} | {c['lr']:g} | {c['alpha']:g} ({c['rate']:.3g})"
            f" | {pm(c['tuned'], 1, 4)} | {c['carried_lr']}, {c['carried_alpha']:g} "
            f"({carried_rate:.3g}) | {pm(c['carried'], 1, 4)} | "
            f"{compare(c['carried'], c['tuned'], tests=len(found))} |"
        )
    done = len(found)
    return {
        "alphas": ", ".join(f"{a:g}" for a in alphas),
        "carried": f"{exact.get('alpha_per_256', {}).get('minc_tril', float('nan')):g}",
        "progress": f"{done} of {expected_cells(exact)} cells have their fresh seeds so far.",
        "table": "\n".join(lines),
        "verdicts": "\n".join(f"- {v.line()}" for v in verdicts(result, exact))
        or "- No verdict yet.",
    }
