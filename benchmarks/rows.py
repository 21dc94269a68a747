"""Every benchmark's results as one kind of row, the form the claims are judged on.

A row is a dict with ``source`` (which benchmark and config it came from), ``objective``,
``batch`` and ``seed``, and the measures that benchmark takes (``final``, ``align``, ``angle``
on the exact objective; ``knn``, ``linear``, ``train_seconds`` on real data). The benchmarks'
files keep the layout they were written in; one reader per file kind turns them into rows.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np

from benchmarks.verdicts import Sample

Row = dict[str, Any]
SHORT = "Fashion-MNIST, short runs"  # reproduce.py's batch sweep


def budget(name: str) -> str:
    """The evidence name of a benchmark run at one config's budget."""
    return f"Fashion-MNIST, `{name}.yaml` budget"


def reached(run: dict) -> float:
    """An exact run's final J/J*; −∞ for one that diverged (it reached nothing)."""
    return run["final"] if run["diverged_at"] is None else float("-inf")


def exact_rows(runs: list[dict], source: str = "exact objective") -> list[Row]:
    """spectral_exact.py's runs: a diverged run's final J/J* is −∞ (it reached nothing) and it
    has no alignment or angle."""
    rows = []
    for r in runs:
        row = {
            "source": source,
            "objective": r["objective"],
            "batch": r["batch"],
            "seed": r["seed"],
        }
        row["final"] = reached(r)
        if r["alignment"]:
            row |= {"align": float(np.mean(r["alignment"])), "angle": max(r["angles"])}
        rows.append(row)
    return rows


def accuracy_rows(runs: list[dict], source: str) -> list[Row]:
    """reproduce.py's and objectives_at_budget.py's runs (``batch_size`` is the batch)."""
    keep = ("knn", "linear", "train_seconds", "lr")
    return [
        {"source": source, "objective": r["objective"], "batch": r["batch_size"], "seed": r["seed"]}
        | {k: r[k] for k in keep if k in r}
        for r in runs
    ]


def sweep_rows(store: dict) -> list[Row]:
    """reproduce.py's batch sweep, from its store of runs."""
    return accuracy_rows([r for key, r in store.items() if key.startswith("batch/")], SHORT)


def values(rows: list[Row], measure: str, **where: Any) -> dict[int, Sample]:
    """``measure`` over the seeds, by batch, of the rows matching ``where``: each a ``Sample``
    that keeps its seeds, so that the verdicts pair runs of the same seed."""
    found: dict[int, list[tuple[int, float]]] = defaultdict(list)
    for row in rows:
        if measure in row and all(row.get(k) == v for k, v in where.items()):
            found[row["batch"]].append((row["seed"], row[measure]))
    return {
        batch: Sample([v for _, v in pairs], [s for s, _ in pairs])
        for batch, pairs in sorted(found.items())
    }


def cells(rows: list[Row]) -> dict[tuple[str, int], list[Row]]:
    """Rows grouped by (objective, batch)."""
    out: dict[tuple[str, int], list[Row]] = defaultdict(list)
    for row in rows:
        out[(row["objective"], row["batch"])].append(row)
    return out
