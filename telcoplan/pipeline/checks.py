"""Checks of plan values shared by the plan parser and the stage modules: problems are
collected as data (strings naming the key) and raised once."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from telcoplan.errors import PlanError, did_you_mean

__all__ = ["ParameterError", "in_range", "is_number", "merge_defaults", "suggest"]


class ParameterError(PlanError):
    """A stage's parameters have problems; ``problems`` lists each one (``stages.<stage>.…``)."""

    def __init__(self, stage: str, problems: Iterable[str], source: str | None = None):
        self.stage = stage
        self.problems = tuple(problems)
        head = f"{source}: " if source else ""
        super().__init__(
            f"{head}{len(self.problems)} problem(s) in the {stage} parameters:\n"
            + "\n".join(f"  - {p}" for p in self.problems)
        )


def suggest(key: str, choices: Iterable[str]) -> str:
    """'; did you mean …?' for a mistyped key, else the list of known ones."""
    choices = tuple(choices)
    return did_you_mean(key, choices) or f"; expected one of {', '.join(choices)}"


def merge_defaults(
    stage: str, raw: Mapping[str, Any] | None, defaults: Mapping[str, Any]
) -> tuple[dict[str, Any], list[str]]:
    """The defaults updated with the known keys of ``raw``, and a problem per unknown key."""
    raw = dict(raw or {})
    problems = [
        f"stages.{stage}: unknown parameter {k!r}; known: {', '.join(defaults)}"
        for k in raw
        if k not in defaults
    ]
    return {**defaults, **{k: v for k, v in raw.items() if k in defaults}}, problems


def is_number(v: object) -> bool:
    """An int or float that is not a bool."""
    return isinstance(v, int | float) and not isinstance(v, bool)


def in_range(v: object, lo: float, hi: float) -> bool:
    """A number (not a bool) in ``lo``…``hi``."""
    return is_number(v) and lo <= v <= hi
