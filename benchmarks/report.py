"""docs/results.md and its plots, from the raw results in docs/data/.

    python -m benchmarks.report      # redraw from the JSON files in docs/data/

Three parts, each in one place: the rules (``verdicts.py``), the claims and their verdicts
(``claims.py``, judged once on uniform rows from ``rows.py``), and the prose
(``docs/data/results.template.md``). This module computes each section's tables and plots and
fills the template; a section appears only when its benchmark has results.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch

from benchmarks import (
    estimators_section,
    exact_alpha_section,
    noise_section,
    rankme_section,
    streaming_section,
    where_lambda_section,
)
from benchmarks.accuracy_section import comparison_context, tuned_context
from benchmarks.claims import (
    EXACT_ONE_SETTING,
    EXACT_PER_CELL,
    LONG_RUN,
    SHARDS_EVIDENCE,
    TUNED,
    Evidence,
    Verdict,
    judge_all,
    multicrop_evidence,
)
from benchmarks.common import DATA, ROOT
from benchmarks.exact_alpha import ALPHAS
from benchmarks.exact_section import exact_context, one_setting_context, sensitivity_context
from benchmarks.lambda_section import lambda_context
from benchmarks.multicrop_section import multicrop_context, recipe_context
from benchmarks.page import load, load_named, saved, sections
from benchmarks.rows import SHORT, budget
from benchmarks.verdicts import FAILS, HOLDS, UNSURE

# --- the page -----------------------------------------------------------------------------------
LR_TUNED = f"{budget('quickstart')}, {TUNED}"
# one row per claim, in this order: the evidence that decides it, the most controlled first
ESTIMATORS = tuple(estimators_section.WAYS.values())  # tuned per cell decides before carried
DECIDERS: dict[str, tuple[str, ...]] = {
    "every": (*ESTIMATORS, EXACT_PER_CELL, LR_TUNED),
    "small_vs_large": (*ESTIMATORS, EXACT_PER_CELL, LR_TUNED),
    "noise": (noise_section.EXACT, noise_section.REAL),
    "byol": (*ESTIMATORS, LR_TUNED),
    "lambda_acts": (*ESTIMATORS, where_lambda_section.EVIDENCE),
    "ordering": (EXACT_PER_CELL, EXACT_ONE_SETTING),
    "diagonal": (where_lambda_section.EVIDENCE, budget("quickstart")),
    "predicts": (exact_alpha_section.EVIDENCE, EXACT_ONE_SETTING),
    "recipe": (),
    "multicrop": (),
    "separate": (),
    "shards": (),
}
GENERAL = {  # the claim of a row whose evidence judges several variants of it
    "recipe": "(baseline) a 60-minute recipe beats the raw pixels",
    "multicrop": "(multi-crop) local views with one shared predictor beat two views",
    "separate": "(multi-crop) separate local predictors beat a shared one",
}
SECTIONS = {  # evidence → the section that shows it
    EXACT_PER_CELL: "exact",
    EXACT_ONE_SETTING: "one_setting",
    exact_alpha_section.EVIDENCE: "exact_alpha",
    **dict.fromkeys(ESTIMATORS, "estimators"),
    budget("quickstart"): "comparison",
    LR_TUNED: "tuned",
    LONG_RUN: "recipe",
    noise_section.EXACT: "gradient_noise",
    noise_section.REAL: "gradient_noise",
    where_lambda_section.EVIDENCE: "where_lambda",
    SHARDS_EVIDENCE: "streaming",
    multicrop_evidence("quickstart"): "multicrop",
}


def combined(found: list[Verdict]) -> str:
    """Several variants judged on one evidence: holds if all hold, does not hold if all fail,
    else inconclusive."""
    verdicts = {v.verdict for v in found}
    return HOLDS if verdicts == {HOLDS} else FAILS if verdicts == {FAILS} else UNSURE


def slug(heading: str) -> str:
    """A markdown heading's anchor, as GitHub makes it."""
    return re.sub(r"[^\w\- ]", "", heading.lstrip("#").strip().lower()).replace(" ", "-")


def claims_context(verdicts: list[Verdict], anchors: dict[str, str]) -> dict | None:
    """One row per claim of ``DECIDERS``: the deciding evidence's verdict and numbers, and the
    other evidence's verdicts, each linked to its section. Retired evidence never appears."""

    def link(evidence: str) -> str:
        anchor = anchors.get(SECTIONS.get(evidence, ""))
        return f"[{evidence}](#{anchor})" if anchor else evidence

    rows = []
    for key, preferred in DECIDERS.items():
        found = [v for v in verdicts if v.claim.key == key and v.in_table and v.evidence != SHORT]
        by_evidence: dict[str, list[Verdict]] = {}
        for v in found:
            by_evidence.setdefault(v.evidence, []).append(v)
        if not by_evidence:
            continue
        decider = next((e for e in preferred if e in by_evidence), next(iter(by_evidence)))
        mine = by_evidence[decider]
        if len(mine) == 1:
            claim, verdict, numbers = mine[0].claim.table, mine[0].verdict, mine[0].numbers
        else:
            claim, verdict = GENERAL.get(key, mine[0].claim.table), combined(mine)
            numbers = "; ".join(f"{v.claim.table}: {v.verdict}" for v in mine)
        others = "; ".join(
            f"{link(e)}: {combined(vs)}" for e, vs in by_evidence.items() if e != decider
        )
        rows.append(f"| {claim} | {link(decider)} | **{verdict}** | {numbers} | {others} |")
    return {"rows": "\n".join(rows)} if rows else None


def write_report(
    store: dict,
    docs: Path,
    exact: dict | None = None,
    recipes: dict | None = None,
    comparisons: dict | None = None,
    lambdas: dict | None = None,
    tuned: dict | None = None,
    multicrop: dict | None = None,
    streaming: dict | None = None,
    order: dict | None = None,
    rankme: dict | None = None,
    where_lambda: dict | None = None,
    estimators: dict | None = None,
    noise: dict | None = None,
    exact_alpha: dict | None = None,
) -> None:
    """docs/results.md and its plots into ``docs``; a result not given is read from DATA."""
    docs.mkdir(parents=True, exist_ok=True)

    def given(value: dict | None, name: str) -> dict:
        return load(DATA / name) if value is None else value

    ev = Evidence(
        store,
        exact,
        recipes if recipes is not None else load_named("recipe"),
        comparisons if comparisons is not None else load_named("objectives"),
        lambdas if lambdas is not None else load_named("lambda"),
        tuned if tuned is not None else load_named("tuned"),
        multicrop if multicrop is not None else load_named("multicrop"),
        given(streaming, "streaming.json"),
    )
    where_lambda = given(where_lambda, "where_lambda_acts.json")
    estimators, noise = given(estimators, "estimators.json"), given(noise, "gradient_noise.json")
    exact_alpha = given(exact_alpha, "exact_alpha.json")
    verdicts = judge_all(ev)
    verdicts += estimators_section.verdicts(estimators) + noise_section.verdicts(noise)
    verdicts += where_lambda_section.verdicts(where_lambda)
    if exact:
        verdicts += exact_alpha_section.verdicts(exact_alpha, exact)

    def draw(fig, name: str) -> str:
        return saved(fig, docs, name)

    filled: list[tuple[str, dict | None]] = [
        ("header", {"torch": torch.__version__}),
        ("exact", exact_context(exact, verdicts, docs) if exact else None),
        *(
            (name, context(exact, verdicts, docs))
            for name, context in (
                ("one_setting", one_setting_context),
                ("sensitivity", sensitivity_context),
            )
            if exact and "one_setting" in exact
        ),
        ("exact_alpha", exact_alpha_section.context(exact_alpha, exact or {}, ALPHAS)),
        ("real", {}),
        ("estimators", estimators_section.context(estimators, draw)),
        *(
            ("comparison", comparison_context(c, n, verdicts, docs))
            for n, c in ev.comparisons.items()
        ),
        *(("tuned", tuned_context(c, n, verdicts, docs)) for n, c in ev.tuned.items()),
        *(("recipe", recipe_context(r, n, verdicts, docs)) for n, r in ev.recipes.items()),
        *(("multicrop", multicrop_context(r, n, verdicts, docs)) for n, r in ev.multicrop.items()),
        (
            "streaming",
            streaming_section.context(
                ev.streaming, given(order, "streaming_order.json"), verdicts, docs, draw
            ),
        ),
        ("rankme", rankme_section.context(given(rankme, "rankme_selection.json"), draw)),
        ("gradient_noise", noise_section.context(noise, draw)),
        ("lambda_heading", {}),
        ("where_lambda", where_lambda_section.context(where_lambda, draw)),
        *(("lambda", lambda_context(r, n, verdicts, docs)) for n, r in ev.lambdas.items()),
        ("sources", {}),
    ]
    page = sections()
    rendered = [(name, page[name].substitute(ctx)) for name, ctx in filled if ctx is not None]
    anchors: dict[str, str] = {}
    for name, text in rendered:
        heading = next((line for line in text.splitlines() if line.startswith("#")), None)
        if heading and name not in anchors:
            anchors[name] = slug(heading)
    claims = claims_context(verdicts, anchors)
    if claims is not None:
        rendered.insert(1, ("claims", page["claims"].substitute(claims)))
    (docs / "results.md").write_text("\n".join(text for _, text in rendered) + "\n")
    print(f"wrote {docs / 'results.md'}")


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
        load_named("tuned", a.data),
        load_named("multicrop", a.data),
        load(a.data / "streaming.json"),
        load(a.data / "streaming_order.json"),
    )
