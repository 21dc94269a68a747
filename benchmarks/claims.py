"""The claims the results page judges, declared once and judged once.

Each ``Claim`` names what is claimed (the wording of the claims table and of its section's
list) and how it is judged from uniform rows (``rows.py``) by a rule of ``verdicts.py``.
``judge_all`` judges every claim on every evidence that has numbers for it and returns the
verdicts in the order the claims table prints them; the sections print the same verdicts, so
the table and the sections cannot disagree.
"""

from __future__ import annotations

import inspect
import math
from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np

from benchmarks.rows import (
    SHORT,
    Row,
    accuracy_rows,
    budget,
    exact_rows,
    reached,
    sweep_rows,
    values,
)
from benchmarks.verdicts import (
    FAILS,
    HOLDS,
    PIXEL_MARGIN,
    UNSURE,
    claim_beats_pixels,
    claim_close_to_byol,
    claim_every_batch,
    claim_lambda_diagonal,
    claim_lambda_seeds,
    claim_lower_variance,
    claim_ordering,
    claim_small_vs_large,
    compare,
    difference,
    minutes_to_reach,
    one,
)
from minc_lightning.module import MINCModule
from minc_lightning.objectives import OBJECTIVES

Judged = tuple[str, str]  # (verdict, the numbers it was judged on)


@dataclass(frozen=True)
class Claim:
    key: str
    table: str  # as the claims table states it
    section: str  # as its section's list states it


@dataclass(frozen=True)
class Verdict:
    claim: Claim
    evidence: str
    verdict: str
    numbers: str
    metric: str | None = None
    in_table: bool = True
    source: str = ""  # what a section finds it by, where the evidence's name is not unique

    def line(self, numbers: bool = True) -> str:
        """The sentence its section lists: the claim, the verdict and (with ``numbers``) the
        numbers it was judged on."""
        tail = f" ({self.numbers})" if numbers else ""
        return f"{self.claim.section}: **{self.verdict}**{tail}."


EVERY = Claim("every", "MINC beats SCL at every batch size", "MINC ≥ SCL at every batch size")
SMALL_VS_LARGE = Claim(
    "small_vs_large",
    "MINC at the smallest batch beats SCL at the largest",
    "MINC at the smallest batch ≥ SCL at the largest",
)
ORDERING = Claim(
    "ordering",
    "tril(Λ) gives ordered eigenfunctions (full Λ a rotation)",
    "tril(Λ) orders the eigenfunctions and full Λ does not",
)
BYOL = Claim(
    "byol",
    "MINC does not collapse and is close to BYOL",
    "MINC does not collapse and is close to BYOL",
)
PIXELS = Claim(
    "pixels",
    "(baseline) MINC's features beat the raw pixels",
    "MINC's features beat the raw pixels at every batch size",
)
VARIANCE = Claim(
    "variance",
    "MINC's gradient has lower variance than SCL's",
    "MINC's gradient variance is lower than SCL's",
)
DIAGONAL = Claim(
    "diagonal",
    "tril(Λ) drives Λ towards an ordered diagonal",
    "tril(Λ) drives Λ towards a diagonal with ordered entries",
)
NOISE = Claim(
    "noise",
    "MINC's gradient is less noisy than SCL's, relative to its size",
    "MINC's relative gradient noise is below SCL's at every batch size",
)
LAMBDA_ACTS = Claim(
    "lambda_acts",
    "Λ's term makes MINC differ from BYOL in the same network",
    "MINC differs from BYOL in the same network",
)
RECIPE_MINUTES = 60
RECIPE = Claim(
    "recipe",
    "(baseline) `configs/{name}.yaml` beats the raw pixels in 60 minutes, {metric}",
    f"MINC beats the raw pixels within {RECIPE_MINUTES} training minutes",
)
PREDICTS = Claim(
    "predicts",
    "(rule) the EMA scaling rule's alpha loses nothing to the best alpha at every batch",
    "At the rate the EMA rule predicts, MINC reaches the best rate's J/J* at every batch",
)
MULTICROP = Claim(
    "multicrop",
    "(multi-crop) {n} local views with {head} beat two views, {budget}",
    "{n} local views with {head} beat two views at {budget}",
)
SEPARATE = Claim(
    "separate",
    "(multi-crop) separate local predictors beat a shared one, {n} local views",
    "A separate local predictor beats a shared one with {n} local views",
)
SHARDS = Claim(
    "shards",
    "(shards) the quickstart trained from shards reaches its accuracy from files, {metric}",
    "The quickstart trained from shards reaches its accuracy from the files",
)
CLAIMS = (
    EVERY,
    SMALL_VS_LARGE,
    ORDERING,
    BYOL,
    PIXELS,
    VARIANCE,
    DIAGONAL,
    RECIPE,
    PREDICTS,
    MULTICROP,
    SEPARATE,
    SHARDS,
)
EXACT_PER_CELL = "exact objective"
EXACT_ONE_SETTING = "exact objective, one setting"
TUNED = "lr per objective"
LONG_RUN = "Fashion-MNIST, one long run"  # recipe_curve.py's


# --- how each claim is judged -------------------------------------------------------------------
def pm(values: list[float], scale: float = 100.0, digits: int = 2) -> str:
    """Mean ± sd of ``values`` × ``scale`` (one value alone: it has no sd to show); diverged runs
    (−∞) are counted, not averaged."""
    failed = sum(math.isinf(v) and v < 0 for v in values)
    if failed:
        rest = [v for v in values if not math.isinf(v)]
        return f"div ({failed}/{len(values)})" + (
            f", others {pm(rest, scale, digits)}" if rest else ""
        )
    a = scale * np.asarray(values, dtype=float)
    if len(a) == 1:
        return f"{a[0]:.{digits}f}"
    return f"{a.mean():.{digits}f} ± {a.std(ddof=1):.{digits}f}"


def per_batch(per: dict) -> str:
    return ", ".join(f"{b}: {r}" for b, r in per.items())


def judge_exact(rows: list[Row]) -> dict[str, Judged]:
    """The exact objective's three claims."""
    minc, scl = values(rows, "final", objective="minc_tril"), values(rows, "final", objective="scl")
    every_verdict, per = claim_every_batch(minc, scl)
    small, large = min(minc), max(scl)
    order_verdict, order_per = claim_ordering(
        values(rows, "align", objective="minc_tril"), values(rows, "align", objective="minc_full")
    )
    return {
        "every": (every_verdict, f"MINC vs SCL per batch: {per_batch(per)}"),
        "small_vs_large": (
            one(compare(minc[small], scl[large])),
            f"MINC at {small}: {pm(minc[small], 1, 4)}; SCL at {large}: {pm(scl[large], 1, 4)}",
        ),
        "ordering": (order_verdict, f"tril vs full alignment per batch: {per_batch(order_per)}"),
    }


def finals_by_rate(runs: list[dict], batch: int) -> dict[float, list[float]]:
    """The sensitivity grid at one batch: per-step rate → final J/J* of each seed."""
    finals: dict[float, list[float]] = defaultdict(list)
    for r in runs:
        if r["batch"] == batch:
            finals[r["alpha"]].append(reached(r))
    return dict(finals)


def judge_prediction(sensitivity: dict) -> tuple[Judged, dict[int, dict]]:
    """Per batch, the grid rate nearest (in log) the rule's prediction against the grid rate
    with the best mean final J/J*, by the t rule: the nearest "behind" the best at any batch
    does not hold, otherwise holds. Also returns each batch's best, nearest and outcome."""
    per: dict[int, dict] = {}
    for b_text, predicted in sensitivity["predicted"].items():
        b = int(b_text)
        finals = finals_by_rate(sensitivity["runs"], b)
        best = max(finals, key=lambda a: np.mean(finals[a]))
        nearest = min(finals, key=lambda a: abs(math.log(a / predicted)))
        outcome = (
            "the best"
            if nearest == best
            else {"behind": "worse"}.get(compare(finals[nearest], finals[best]), "within noise")
        )
        per[b] = {"best": best, "nearest": nearest, "predicted": predicted, "outcome": outcome}
    verdict = FAILS if any(v["outcome"] == "worse" for v in per.values()) else HOLDS
    numbers = "; ".join(
        f"batch {b}: predicted {v['predicted']:.3g}, nearest {v['nearest']:g} ({v['outcome']}), "
        f"best {v['best']:g}"
        for b, v in per.items()
    )
    return (verdict, numbers), per


def judge_objectives(
    rows: list[Row], pixels: dict | None, metric: str = "linear"
) -> dict[str, Judged]:
    """The paper's claims on real data, MINC against SCL and BYOL (and every objective against
    the raw pixels); none until every objective has runs."""
    acc = {o: values(rows, metric, objective=o) for o in OBJECTIVES}
    if not all(acc.values()):  # a partial run: no verdict until every objective has numbers
        return {}
    verdict, per = claim_every_batch(acc["minc"], acc["spectral"])
    small, large = min(acc["minc"]), max(acc["spectral"])
    out = {
        "every": (verdict, f"{metric}, MINC vs SCL per batch: {per_batch(per)}"),
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
            + ", ".join(f"{o} {v} ({per_batch(per)})" for o, (v, per) in beats.items()),
        )
    return out


def judge_recipe(points: list[dict], pixels: float, metric: str) -> Judged:
    """Beating the pixels within ``RECIPE_MINUTES``, with the point it was judged on and either
    when the curve first passed the pixels or where its trend would reach them."""
    verdict = claim_beats_pixels(points, pixels, metric, RECIPE_MINUTES)
    within = [p for p in points if p["train_seconds"] <= 60 * RECIPE_MINUTES]
    judged = (
        f"{100 * within[-1][metric]:.2f}% after {within[-1]['train_seconds'] / 60:.0f} minutes "
        f"(epoch {within[-1]['epoch']})"
        if within
        else "no evaluation within the budget"
    )
    above = [p for p in points if p[metric] > pixels + PIXEL_MARGIN]
    reach = minutes_to_reach(points, pixels + PIXEL_MARGIN, metric)
    if above:
        more = f"first ahead by over a point after {above[0]['train_seconds'] / 60:.0f} minutes"
    elif reach is not None:
        more = f"the trend of the last points is a point ahead at about {reach:.0f} minutes"
    else:
        more = "the last points do not rise"
    return verdict, f"{judged} vs {100 * pixels:.2f}%; {more}"


LAMBDA_KEYS = ("offdiag_ratio", "diag_sorted", "knn", "linear")


def lambda_groups(result: dict) -> dict[bool, dict[str, list[float]]]:
    """lambda_at_budget.py's runs: each measure's values over the seeds, by ``triangular``."""
    groups: dict[bool, dict[str, list[float]]] = {True: defaultdict(list), False: defaultdict(list)}
    for r in result.get("runs", []):
        for key in LAMBDA_KEYS:
            groups[r["triangular"]][key].append(r[key])
    return groups


def judge_lambda(result: dict) -> Judged | None:
    tril, full = (lambda_groups(result)[t] for t in (True, False))
    if not (tril and full):
        return None
    numbers = (
        f"off-diagonal energy {pm(tril['offdiag_ratio'], 1, 3)} (tril) vs "
        f"{pm(full['offdiag_ratio'], 1, 3)}; ordered adjacent diagonal entries "
        f"{pm(tril['diag_sorted'], 100, 0)}% vs {pm(full['diag_sorted'], 100, 0)}%"
    )
    return claim_lambda_seeds(tril, full), numbers


def variance_by_batch(store: dict, measure: str) -> dict[str, dict[int, float]]:
    rows = [r for k, r in store.items() if k.startswith("variance/")]
    return {
        o: {r["batch_size"]: r[measure] for r in rows if r["objective"] == o}
        for o in ("minc", "spectral")
    }


def spectrum_runs(store: dict) -> dict[str, dict]:
    return {k.split("=")[1]: r for k, r in store.items() if k.startswith("spectrum/")}


# --- the evidence and the verdicts --------------------------------------------------------------
@dataclass
class Evidence:
    """Every benchmark's results: reproduce.py's store, spectral_exact.py's file, and the
    per-config files of objectives_at_budget.py (one lr, and tuned), recipe_curve.py and
    lambda_at_budget.py."""

    store: dict = field(default_factory=dict)
    exact: dict | None = None
    recipes: dict[str, dict] = field(default_factory=dict)
    comparisons: dict[str, dict] = field(default_factory=dict)
    lambdas: dict[str, dict] = field(default_factory=dict)
    tuned: dict[str, dict] = field(default_factory=dict)  # objectives_at_budget.py, lr tuned
    multicrop: dict[str, dict] = field(default_factory=dict)  # multicrop.py
    streaming: dict = field(default_factory=dict)  # streaming.py

    def accuracy(self) -> list[tuple[str, list[Row], dict | None]]:
        """(evidence, rows, pixel baseline) of each real-data comparison of the objectives."""
        out = [(SHORT, sweep_rows(self.store), self.store.get("baseline/pixels"))]
        for name, c in self.comparisons.items():
            out.append(
                (
                    budget(name),
                    accuracy_rows(c.get("runs", []), budget(name)),
                    baselines(c).get("pixels"),
                )
            )
        for name, c in self.tuned.items():
            evidence = f"{budget(name)}, {TUNED}"
            out.append((evidence, tuned_rows(c, evidence), baselines(c).get("pixels")))
        return out


def tuned_rows(comparison: dict, evidence: str) -> list[Row]:
    """objectives_at_budget.py's reported runs: the selection seed chose the lr, and is left out."""
    from benchmarks.objectives_at_budget import SELECTION_SEED

    runs = [r for r in comparison.get("runs", []) if r["seed"] != SELECTION_SEED]
    return accuracy_rows(runs, evidence)


def baselines(comparison: dict) -> dict:
    """The pixels' and the random network's scores, stored with the run that measured them."""
    return next((r["baselines"] for r in comparison.get("runs", []) if "baselines" in r), {})


def judge_all(ev: Evidence) -> list[Verdict]:
    """Every declared claim on every evidence with numbers for it, in the table's order."""
    out: list[Verdict] = []
    if ev.exact:
        judged = judge_exact(exact_rows(ev.exact["runs"]))
        three = (EVERY, SMALL_VS_LARGE, ORDERING)
        out += [Verdict(c, EXACT_PER_CELL, *judged[c.key]) for c in three]
        if "one_setting" in ev.exact:
            judged = judge_exact(exact_rows(ev.exact["one_setting"]["runs"]))
            out += [Verdict(c, EXACT_ONE_SETTING, *judged[c.key]) for c in three]
            out.append(
                Verdict(PREDICTS, EXACT_ONE_SETTING, *judge_prediction(ev.exact["sensitivity"])[0])
            )
    real = {
        (evidence, metric): judge_objectives(rows, pixels, metric)
        for evidence, rows, pixels in ev.accuracy()
        for metric in ("linear", "knn")
    }
    for (evidence, metric), judged in real.items():
        for c in (EVERY, SMALL_VS_LARGE, BYOL):
            if c.key in judged:
                out.append(Verdict(c, evidence, *judged[c.key], metric, metric == "linear"))
    total, relative = (
        variance_by_batch(ev.store, m) for m in ("total_variance", "relative_variance")
    )
    if total["minc"]:
        sizes = sorted(set(total["minc"]) & set(total["spectral"]))
        ratios = ", ".join(f"{b}: {total['minc'][b] / total['spectral'][b]:.2f}×" for b in sizes)
        out.append(
            Verdict(
                VARIANCE,
                SHORT,
                claim_lower_variance(total["minc"], total["spectral"]),
                f"total variance, {ratios}",
                "total_variance",
            )
        )
        out.append(
            Verdict(
                VARIANCE,
                SHORT,
                claim_lower_variance(relative["minc"], relative["spectral"]),
                "",
                "relative_variance",
                False,
            )
        )
    spectrum = spectrum_runs(ev.store)
    if {"True", "False"} <= set(spectrum):
        on, off = (spectrum[k]["lambda_trace"][-1] for k in ("True", "False"))
        energy = (
            f"off-diagonal energy {on['offdiag_ratio']:.3f} (tril) vs {off['offdiag_ratio']:.3f}"
        )
        out.append(Verdict(DIAGONAL, SHORT, claim_lambda_diagonal(on, off), energy))
    for name, result in ev.lambdas.items():
        if (judged := judge_lambda(result)) is not None:
            out.append(Verdict(DIAGONAL, budget(name), *judged))
    for (evidence, metric), judged in real.items():
        if "pixels" in judged:
            out.append(Verdict(PIXELS, evidence, *judged["pixels"], metric, metric == "linear"))
    for name, recipe in ev.recipes.items():
        pixels, points = recipe["baselines"]["pixels"], recipe["points"]
        for metric in ("linear", "knn") if points else ():
            claim = Claim(RECIPE.key, RECIPE.table.format(name=name, metric=metric), RECIPE.section)
            judged = judge_recipe(points, pixels[metric], metric)
            out.append(Verdict(claim, LONG_RUN, *judged, metric, source=name))
    for name, result in ev.multicrop.items():
        out += judge_multicrop(result, name)
    out += judge_shards(ev.streaming)
    return out


SHARDS_EVIDENCE = "Fashion-MNIST, `quickstart.yaml`, from files and from shards"


def judge_shards(result: dict) -> list[Verdict]:
    """streaming.py's quickstart runs from shards against the same runs from files, per metric.
    "Reaches" is not being behind: with seeds on both sides, the t rule's "behind" fails it
    and anything else holds; with one run a side there is no noise to allow, so an equal or
    higher score holds and a lower one is inconclusive."""
    runs = result.get("quickstart", {}).get("runs", [])
    out = []
    for metric in ("linear", "knn"):
        shards, files = ([r[metric] for r in runs if r["source"] == s] for s in ("shards", "files"))
        if not shards or not files:
            continue
        gap = difference(shards, files)
        if len(shards) < 2 or len(files) < 2:
            verdict = HOLDS if gap.value >= 0 else UNSURE
        else:
            verdict = FAILS if gap.result == "behind" else HOLDS
        claim = Claim(SHARDS.key, SHARDS.table.format(metric=metric), SHARDS.section)
        side = [pm(s) if len(s) > 1 else f"{100 * s[0]:.2f}" for s in (shards, files)]
        numbers = f"{side[0]} vs {side[1]}, {len(shards)} vs {len(files)} runs"
        out.append(Verdict(claim, SHARDS_EVIDENCE, verdict, numbers, metric, metric == "linear"))
    return out


def multicrop_groups(result: dict) -> dict[tuple[str, int, str], list[dict]]:
    """multicrop.py's runs by (budget, local views, predictor)."""
    groups: dict[tuple[str, int, str], list[dict]] = {}
    for run in result.get("runs", []):
        key = (run["budget"], run["local_views"], run["local_predictor"])
        groups.setdefault(key, []).append(run)
    return groups


HEADS = {"separate": "a separate local predictor", "shared": "one shared predictor"}


def default_local_predictor() -> str:
    """``MINCModule``'s default ``local_predictor``: what a user gets without choosing."""
    return inspect.signature(MINCModule).parameters["local_predictor"].default


def better_local_predictor(result: dict) -> tuple[str, dict[str, float]] | None:
    """The predictor the multi-crop runs measure better, by the stated rule: the higher mean
    linear top-1 over every multi-crop run at equal epochs (2 and 4 local views, every seed),
    with each predictor's mean; None until both predictors have runs."""
    groups = multicrop_groups(result)
    means = {}
    for head in HEADS:
        runs = [
            r for (b, n, h), rs in groups.items() if b == "epochs" and n and h == head for r in rs
        ]
        if not runs:
            return None
        means[head] = float(np.mean([r["linear"] for r in runs]))
    return max(means, key=means.get), means


def multicrop_evidence(name: str) -> str:
    return f"{budget(name)}, multi-crop"


def judge_multicrop(result: dict, name: str) -> list[Verdict]:
    """Each multi-crop variant against two views at equal epochs and at equal training time,
    and separate against shared predictors at equal epochs, by the t rule on each metric.
    The table shows the linear verdicts of the module's default predictor and the predictor
    comparison; a comparison lacking a group is left out (not measured yet)."""
    default = default_local_predictor()
    groups = multicrop_groups(result)
    evidence = multicrop_evidence(name)
    out = []

    def scores(key: tuple, metric: str) -> list[float]:
        return [r[metric] for r in groups.get(key, [])]

    sizes = sorted({n for _, n, _ in groups if n})
    for metric in ("linear", "knn"):
        two_view = scores(("epochs", 0, "none"), metric)
        for n in sizes:
            for head in ("separate", "shared"):
                mine = scores(("epochs", n, head), metric)
                matched = scores((f"time of {n} local views", 0, "none"), metric)
                for label, other in (("equal epochs", two_view), ("equal training time", matched)):
                    if not mine or not other:
                        continue
                    words = dict(n=n, head=HEADS[head], budget=label)
                    claim = Claim(
                        MULTICROP.key,
                        MULTICROP.table.format(**words),
                        MULTICROP.section.format(**words),
                    )
                    verdict = one(compare(mine, other))
                    numbers = f"{pm(mine)} vs {pm(other)}"
                    shown = metric == "linear" and head == default
                    out.append(Verdict(claim, evidence, verdict, numbers, metric, shown))
            separate, shared = (scores(("epochs", n, h), metric) for h in ("separate", "shared"))
            if separate and shared:
                claim = Claim(
                    SEPARATE.key, SEPARATE.table.format(n=n), SEPARATE.section.format(n=n)
                )
                verdict = one(compare(separate, shared))
                numbers = f"{pm(separate)} vs {pm(shared)}"
                out.append(Verdict(claim, evidence, verdict, numbers, metric, metric == "linear"))
    return out


def find(verdicts: list[Verdict], source: str, key: str, metric: str | None = None) -> Verdict:
    """The verdict on claim ``key`` from ``source`` (its evidence, or a recipe's name)."""
    return next(
        v
        for v in verdicts
        if v.claim.key == key and source in (v.source, v.evidence) and metric in (None, v.metric)
    )
