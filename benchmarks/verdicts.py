"""The rules every verdict in the benchmarks is computed by: pure functions of the numbers.

The one rule for comparing runs over seeds (``difference``): the difference of means with a
Student-t interval for the runs there are, paired by seed when both sides ran the same seeds
(``Sample`` carries them), Welch's otherwise; "ahead" when the interval's lower end is above 0,
"behind" when its upper end is below, else "tie". The interval is two-sided at 1 − 2·ALPHA (its
ends are one-sided tests at ALPHA); a claim made over several comparisons at once ("at every
batch size") divides ALPHA among them (Bonferroni). "Close to" is an equivalence test against a
stated margin (``equivalence``). ``tests/test_benchmarks.py`` feeds each rule invented numbers.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

HOLDS, FAILS, UNSURE = "holds", "does not hold", "inconclusive"
CHANCE = 0.1  # ten classes
VARIANCE_FACTOR = 1.5  # "lower variance" needs MINC's below SCL's by this factor at every batch
PIXEL_MARGIN = 0.01  # one run against the pixels: a point either way decides
BYOL_MARGIN = 0.01  # "close to BYOL": the mean top-1 within a point, at every batch size
ALPHA = 0.05


class Sample(list):
    """Values over seeds that remember the seeds (``seeds[i]`` ran ``self[i]``), so that two
    samples over the same seeds are compared pair by pair. Without seeds: a plain list."""

    def __init__(self, values, seeds=None) -> None:
        super().__init__(values)
        self.seeds = None if seeds is None else list(seeds)


def paired(a: list[float], b: list[float]) -> tuple[list[float], list[float]] | None:
    """``a`` and ``b`` aligned by seed when both are ``Sample``s over the same distinct seeds."""
    sa, sb = getattr(a, "seeds", None), getattr(b, "seeds", None)
    if sa is None or sb is None or len(set(sa)) != len(sa) or sorted(sa) != sorted(sb):
        return None
    order = {seed: i for i, seed in enumerate(sb)}
    return list(a), [b[order[seed]] for seed in sa]


class Difference(NamedTuple):
    """mean(a) − mean(b), the half-width of its t interval and what the rule makes of it."""

    value: float
    half: float
    result: str  # "ahead", "behind" or "tie"
    paired: bool = False


def mean_se(values: list[float]) -> tuple[float, float]:
    a = np.asarray(values, dtype=float)
    se = a.std(ddof=1) / math.sqrt(len(a)) if len(a) > 1 else 0.0
    return float(a.mean()), float(se)


def difference(a: list[float], b: list[float], tests: int = 1) -> Difference:
    """The rule: the (1 − 2·ALPHA/tests) t interval of mean(a) − mean(b), paired by seed where
    the seeds are shared; "ahead" above 0, "behind" below, else "tie". A single number facing
    several is a fixed baseline (a one-sample interval); two single numbers are always a tie. A
    run that diverged counts −∞ (it reached nothing): a group holding one is behind a group
    without, and two such groups tie."""
    failed_a, failed_b = (any(math.isinf(v) and v < 0 for v in g) for g in (a, b))
    if failed_a or failed_b:
        result = "tie" if failed_a == failed_b else "behind" if failed_a else "ahead"
        return Difference(-math.inf if failed_a else math.inf, math.nan, result)
    level = corrected(ALPHA, tests)
    pairs = paired(a, b)
    if pairs is not None:
        ci = interval(*pairs, paired=True, alpha=level)
    elif len(b) == 1 and len(a) > 1:  # against a fixed number
        ci = interval(list(a), [b[0]] * len(a), paired=True, alpha=level)
    elif len(a) == 1 and len(b) > 1:
        ci = interval([a[0]] * len(b), list(b), paired=True, alpha=level)
    else:
        ci = interval(list(a), list(b), paired=False, alpha=level)
    result = "ahead" if ci.low > 0 else "behind" if ci.high < 0 else "tie"
    return Difference(ci.value, ci.high - ci.value, result, pairs is not None)


def compare(a: list[float], b: list[float], tests: int = 1) -> str:
    """ "ahead", "behind" or "tie" by the rule of ``difference``."""
    return difference(a, b, tests).result


def every(results: dict[int, str]) -> str:
    """A claim made at every batch size: holds if "ahead" at all, fails if "behind" at any."""
    if results and all(r == "ahead" for r in results.values()):
        return HOLDS
    return FAILS if any(r == "behind" for r in results.values()) else UNSURE


def one(result: str) -> str:
    return {"ahead": HOLDS, "behind": FAILS}.get(result, UNSURE)


def claim_every_batch(a: dict[int, list[float]], b: dict[int, list[float]]) -> tuple[str, dict]:
    """a ahead of b at every batch size both were run at, each test at ALPHA / their number."""
    sizes = sorted(set(a) & set(b))
    per = {n: compare(a[n], b[n], tests=len(sizes)) for n in sizes}
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
    """No collapse (every MINC mean above twice chance) and, at every batch size, MINC's mean
    within ``BYOL_MARGIN`` of BYOL's by the equivalence test (ALPHA shared among the batch
    sizes): holds; collapse, or a difference beyond the margin at any batch: does not hold."""
    if any(mean_se(v)[0] <= 2 * CHANCE for v in minc.values()):
        return FAILS
    found = [verdict for verdict, _ in equivalence_per_batch(minc, byol, BYOL_MARGIN).values()]
    if found and all(v == EQUIVALENT for v in found):
        return HOLDS
    return FAILS if DIFFERENT in found else UNSURE


def claim_ordering(tril: dict[int, list[float]], full: dict[int, list[float]]) -> tuple[str, dict]:
    """Each dimension's alignment with its own eigenvector: tril(Λ) ahead of full Λ by the t rule at
    every batch size."""
    return claim_every_batch(tril, full)


def claim_lambda_diagonal(on: dict, off: dict) -> str:
    """Real data, one run each: tril(Λ) leaves under half of full Λ's off-diagonal energy and a
    more ordered diagonal: holds; at least as much off-diagonal energy: does not hold."""
    if on["offdiag_ratio"] < 0.5 * off["offdiag_ratio"] and on["diag_sorted"] > off["diag_sorted"]:
        return HOLDS
    return FAILS if on["offdiag_ratio"] >= off["offdiag_ratio"] else UNSURE


def claim_lambda_seeds(tril: dict[str, list[float]], full: dict[str, list[float]]) -> str:
    """Several seeds each: tril(Λ)'s off-diagonal energy below full Λ's by the t rule and under half
    of it, and a more ordered diagonal by the t rule: holds; either comparison the other way
    by it: does not hold; otherwise inconclusive."""
    lower = compare(full["offdiag_ratio"], tril["offdiag_ratio"])
    ordered = compare(tril["diag_sorted"], full["diag_sorted"])
    half = mean_se(tril["offdiag_ratio"])[0] < 0.5 * mean_se(full["offdiag_ratio"])[0]
    if lower == ordered == "ahead" and half:
        return HOLDS
    return FAILS if "behind" in (lower, ordered) else UNSURE


def claim_beats_pixels(points: list[dict], pixels: float, metric: str, minutes: float) -> str:
    """One run: its last evaluation within ``minutes`` of training beats the pixels by more than
    one point (holds), falls short by more than one point (does not hold), else inconclusive."""
    within = [p for p in points if p["train_seconds"] <= 60 * minutes]
    if not within:
        return UNSURE
    margin = within[-1][metric] - pixels
    return HOLDS if margin > PIXEL_MARGIN else FAILS if margin < -PIXEL_MARGIN else UNSURE


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


# --- intervals and equivalence ------------------------------------------------------------
EQUIVALENT, DIFFERENT = "equivalent", "different"


class Interval(NamedTuple):
    """mean(a − b) and its (1 − 2·alpha) confidence interval, with its degrees of freedom."""

    value: float
    low: float
    high: float
    dof: float


def interval(a: list[float], b: list[float], paired: bool, alpha: float = ALPHA) -> Interval:
    """The difference of means with a t interval: over the per-seed differences when paired
    (runs i of a and b share seed i), else Welch's. Two-sided at 1 − 2·alpha (alpha = 0.05:
    the 90% interval, whose ends are the one-sided 5% tests)."""
    from scipy import stats

    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if paired:
        if len(a) != len(b):
            raise ValueError(f"paired runs need equal counts, got {len(a)} and {len(b)}")
        d = a - b
        dof, se = len(d) - 1, d.std(ddof=1) / math.sqrt(len(d)) if len(d) > 1 else math.inf
    else:
        va = a.var(ddof=1) / len(a) if len(a) > 1 else math.inf
        vb = b.var(ddof=1) / len(b) if len(b) > 1 else math.inf
        se = math.sqrt(va + vb)
        dof = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1)) if se < math.inf else 0
    value = float(a.mean() - b.mean())
    if dof < 1 or not math.isfinite(se):
        return Interval(value, -math.inf, math.inf, dof)
    half = float(stats.t.ppf(1 - alpha, dof)) * se
    return Interval(value, value - half, value + half, dof)


def equivalence(
    a: list[float], b: list[float], margin: float, paired: bool, alpha: float = ALPHA
) -> tuple[str, Interval]:
    """Two one-sided tests against ``±margin``: "equivalent" when the 1 − 2·alpha interval of
    mean(a − b) lies inside (−margin, margin); "different" when it lies wholly outside that
    range (a difference beyond the margin, at level alpha); else inconclusive."""
    ci = interval(a, b, paired, alpha)
    if -margin < ci.low and ci.high < margin:
        return EQUIVALENT, ci
    if ci.low >= margin or ci.high <= -margin:
        return DIFFERENT, ci
    return UNSURE, ci


def equivalence_per_batch(
    a: dict[int, list[float]], b: dict[int, list[float]], margin: float
) -> dict[int, tuple[str, Interval]]:
    """``equivalence`` at each batch size both have, paired by seed where the seeds are shared,
    ALPHA shared among the batch sizes (a claim over all of them)."""
    sizes = sorted(set(a) & set(b))
    return {n: equivalence_by_seed(a[n], b[n], margin, tests=len(sizes)) for n in sizes}


def equivalence_by_seed(
    a: list[float], b: list[float], margin: float, tests: int = 1
) -> tuple[str, Interval]:
    """``equivalence``, paired by seed where the seeds are shared, at ALPHA / ``tests``."""
    pairs = paired(a, b)
    x, y = pairs if pairs else (a, b)
    return equivalence(x, y, margin, paired=pairs is not None, alpha=corrected(ALPHA, tests))


def corrected(alpha: float, claims: int) -> float:
    """Bonferroni: the level of each of ``claims`` tests that a claim over all of them ("at
    every batch size") keeps at ``alpha``."""
    return alpha / max(claims, 1)


# --- reading shards from object storage (benchmarks/streaming.py), one timing each ----------
FOLDER_PACE = 0.9  # samples/s from S3 at least this share of the JPEG folder's, in each mode
CORE_MS_BOUND = 1.2  # loader core-ms per sample from S3 at most this multiple of the folder's
LATENCY_HIDDEN = 0.8  # samples/s with added latency at least this share of none added
ORDER_MARGIN = 0.005  # the chunk-local order "unchanged": top-1 within half a point


def at_least(ratios: list[float], threshold: float) -> str:
    """Every ratio at or above ``threshold``: holds; any below: does not hold (timings of one
    run each, on a machine whose cores were otherwise idle)."""
    return UNSURE if not ratios else HOLDS if min(ratios) >= threshold else FAILS


def at_most(ratios: list[float], threshold: float) -> str:
    return UNSURE if not ratios else HOLDS if max(ratios) <= threshold else FAILS


def order_unchanged(chunks: list[float], global_: list[float]) -> tuple[str, Interval]:
    """The chunk-local order's accuracy against the global order's, runs paired by seed:
    holds when equivalent within ``ORDER_MARGIN``, fails when different beyond it."""
    verdict, ci = equivalence(chunks, global_, ORDER_MARGIN, paired=True)
    return {EQUIVALENT: HOLDS, DIFFERENT: FAILS}.get(verdict, UNSURE), ci


# --- label-free model selection (benchmarks/rankme_selection.py) ------------------------------
RANK_AGREEMENT = 0.5  # "ranks runs as the probe does": Spearman's rho above this


def rank_correlation(x: list[float], y: list[float], alpha: float = ALPHA) -> Interval:
    """Spearman's rho of ``x`` and ``y`` with its (1 − 2·alpha) interval by Fisher's z, whose
    standard error for Spearman's rho is √(1.06 / (n − 3)) (Fieller, Hartley & Pearson 1957);
    ``dof`` holds n − 2. Fewer than 4 pairs: the interval is [−1, 1]."""
    from scipy import stats

    rho = float(stats.spearmanr(x, y).statistic)
    n = len(x)
    if n < 4 or not math.isfinite(rho):
        return Interval(rho, -1.0, 1.0, n - 2)
    z = math.atanh(max(-0.999999, min(0.999999, rho)))
    half = float(stats.norm.ppf(1 - alpha)) * math.sqrt(1.06 / (n - 3))
    return Interval(rho, math.tanh(z - half), math.tanh(z + half), n - 2)


def rank_agreement(score: list[float], accuracy: list[float]) -> tuple[str, Interval]:
    """A label-free score ranks runs as accuracy does: holds when the 90% interval of Spearman's
    rho lies above ``RANK_AGREEMENT``, fails when it lies below it, else inconclusive."""
    ci = rank_correlation(score, accuracy)
    if ci.low > RANK_AGREEMENT:
        return HOLDS, ci
    if ci.high < RANK_AGREEMENT:
        return FAILS, ci
    return UNSURE, ci
