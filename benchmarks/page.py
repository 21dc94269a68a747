"""What every section of docs/results.md shares: the template's sections, markdown tables and
bullets, saved figures, and the raw results' files."""

from __future__ import annotations

import json
import re
from pathlib import Path
from string import Template

import matplotlib
import matplotlib.pyplot as plt

from benchmarks.claims import (
    Verdict,
)
from benchmarks.common import DATA

matplotlib.use("Agg")  # files, never a window
TEMPLATE = DATA / "results.template.md"


# --- the template -------------------------------------------------------------------------------
def sections(template: Path = TEMPLATE) -> dict[str, Template]:
    """The template's sections by name: the text after each ``<!-- section: name -->`` line."""
    parts = re.split(r"^<!-- section: (\w+) -->\n", template.read_text(), flags=re.M)
    return {name: Template(text[:-1]) for name, text in zip(parts[1::2], parts[2::2], strict=True)}


def table(header: list[str], align: str, rows: list[list[str]]) -> str:
    """A markdown table; ``align`` holds one of "l" / "r" per column."""
    rule = "|" + "".join("---|" if a == "l" else "---:|" for a in align)
    return "\n".join(
        ["| " + " | ".join(header) + " |", rule] + ["| " + " | ".join(r) + " |" for r in rows]
    )


def bullets(verdicts: list[Verdict], prefix: bool = False) -> str:
    return "\n".join(f"- {v.metric + ': ' if prefix else ''}{v.line()}" for v in verdicts)


def saved(fig, docs: Path, name: str) -> str:
    fig.tight_layout()
    fig.savefig(docs / name, dpi=110)
    plt.close(fig)
    return f"![{name[:-4].replace('_', ' ')}]({name})"


def load(path: Path) -> dict:
    return json.loads(path.read_text()) if path.is_file() else {}


def load_named(kind: str, data: Path = DATA) -> dict[str, dict]:
    """``<kind>_<config name>.json`` files by config name: ``recipe`` for recipe_curve.py's
    curves, ``objectives`` for objectives_at_budget.py's, ``lambda`` for lambda_at_budget.py's."""
    return {p.stem[len(kind) + 1 :]: load(p) for p in sorted(data.glob(f"{kind}_*.json"))}
