"""Validation of user-facing values where they enter, with messages that name the key.

check("MINCModule", lr=(lr, positive))   # ValueError: MINCModule: lr must be a finite
                                         # number > 0, got inf
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

from minc_lightning.errors import BadInput

Rule = Callable[[Any], str | None]  # None when the value is fine, else what it must be


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def positive(value: Any) -> str | None:
    return None if _number(value) and value > 0 else "a finite number > 0"


def non_negative(value: Any) -> str | None:
    return None if _number(value) and value >= 0 else "a finite number >= 0"


def positive_int(value: Any) -> str | None:
    ok = isinstance(value, int) and not isinstance(value, bool) and value >= 1
    return None if ok else "an integer >= 1"


def non_negative_int(value: Any) -> str | None:
    ok = isinstance(value, int) and not isinstance(value, bool) and value >= 0
    return None if ok else "an integer >= 0"


def interval(low: float, high: float, open_low: bool = False) -> Rule:
    """A finite number in [low, high] (or (low, high] with ``open_low``)."""

    def rule(value: Any) -> str | None:
        ok = _number(value) and (value > low if open_low else value >= low) and value <= high
        return None if ok else f"a number in {'(' if open_low else '['}{low}, {high}]"

    return rule


probability = interval(0.0, 1.0)


def one_of(choices: Iterable[Any]) -> Rule:
    choices = tuple(choices)
    return lambda value: None if value in choices else f"one of {', '.join(map(repr, choices))}"


def optional(rule: Rule) -> Rule:
    """``rule``, or None."""
    return lambda value: None if value is None else rule(value)


def each(rule: Rule, length: int) -> Rule:
    """A sequence of ``length`` values, each satisfying ``rule``."""

    def check_all(value: Any) -> str | None:
        if not isinstance(value, (list, tuple)) or len(value) != length:
            return f"a sequence of {length} values"
        problems = [rule(v) for v in value]
        return next((f"{length} values, each {p}" for p in problems if p), None)

    return check_all


def check(owner: str, **values: tuple[Any, Rule]) -> None:
    """Raise one ValueError listing every ``key=(value, rule)`` whose value breaks its rule."""
    problems = [
        f"{key} must be {expected}, got {value!r}"
        for key, (value, rule) in values.items()
        if (expected := rule(value)) is not None
    ]
    if problems:
        raise BadInput(f"{owner}: {'; '.join(problems)}")
