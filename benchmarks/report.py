"""docs/results.md and its plots, from the raw results in docs/data/.

    python -m benchmarks.report      # redraw from the JSON files in docs/data/

Three parts, each in one place: the rules (``verdicts.py``), the claims and their verdicts
(``claims.py``, judged once on uniform rows from ``rows.py``), and the prose
(``docs/data/results.template.md``). This module computes each section's tables and plots and
fills the template; a section appears only when its benchmark has results.
"""

from __future__ import annotations

from pathlib import Path

import torch

from benchmarks import rankme_section, streaming_section, where_lambda_section
from benchmarks.accuracy_section import batch_context, comparison_context, tuned_context
from benchmarks.claims import Evidence, Verdict, judge_all
from benchmarks.common import DATA, ROOT
from benchmarks.exact_section import exact_context, one_setting_context, sensitivity_context
from benchmarks.lambda_section import (
    ablation_context,
    lambda_context,
    spectrum_context,
    variance_context,
)
from benchmarks.multicrop_section import multicrop_context, recipe_context
from benchmarks.page import load, load_named, saved, sections


# --- the page -----------------------------------------------------------------------------------
def claims_context(verdicts: list[Verdict]) -> dict | None:
    rows = [
        f"| {v.claim.table} | {v.evidence} | **{v.verdict}** | {v.numbers} |"
        for v in verdicts
        if v.in_table
    ]
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
) -> None:
    """docs/results.md and its plots into ``docs``."""
    docs.mkdir(parents=True, exist_ok=True)
    ev = Evidence(
        store,
        exact,
        recipes if recipes is not None else load_named("recipe"),
        comparisons if comparisons is not None else load_named("objectives"),
        lambdas if lambdas is not None else load_named("lambda"),
        tuned if tuned is not None else load_named("tuned"),
        multicrop if multicrop is not None else load_named("multicrop"),
        streaming if streaming is not None else load(DATA / "streaming.json"),
    )
    verdicts = judge_all(ev)
    filled: list[tuple[str, dict | None]] = [
        ("header", {"torch": torch.__version__}),
        ("claims", claims_context(verdicts)),
        ("exact", exact_context(exact, verdicts, docs) if exact else None),
        *(
            (name, context(exact, verdicts, docs))
            for name, context in (
                ("one_setting", one_setting_context),
                ("sensitivity", sensitivity_context),
            )
            if exact and "one_setting" in exact
        ),
        ("batch", batch_context(store, verdicts, docs)),
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
                ev.streaming,
                load(DATA / "streaming_order.json") if order is None else order,
                verdicts,
                docs,
                lambda fig, name: saved(fig, docs, name),
            ),
        ),
        (
            "rankme",
            rankme_section.context(
                load(DATA / "rankme_selection.json") if rankme is None else rankme,
                lambda fig, name: saved(fig, docs, name),
            ),
        ),
        (
            "where_lambda",
            where_lambda_section.context(
                load(DATA / "where_lambda_acts.json") if where_lambda is None else where_lambda,
                lambda fig, name: saved(fig, docs, name),
            ),
        ),
        ("variance", variance_context(store, verdicts, docs)),
        ("spectrum", spectrum_context(store, verdicts, docs)),
        *(("lambda", lambda_context(r, n, verdicts, docs)) for n, r in ev.lambdas.items()),
        ("ablation", ablation_context(store)),
        ("sources", {}),
    ]
    page = sections()
    text = "\n".join(page[name].substitute(ctx) for name, ctx in filled if ctx is not None)
    (docs / "results.md").write_text(text + "\n")
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
