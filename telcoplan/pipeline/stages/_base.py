"""What every stage module shares: the stage record, its result and the staging area."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from telcoplan.pipeline.inputs import PlanInputs

__all__ = ["Stage", "StageResult", "Staging"]


@dataclass
class Staging:
    """Where a run's stages write (``folder``: the staging folder, moved into place at the end)
    and what the stages before have produced: their part of ``summary`` and their results."""

    folder: Path
    summary: dict[str, Any] = field(default_factory=dict)
    results: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class StageResult:
    """A stage's part of :data:`~telcoplan.outputs.SUMMARY` (None: no part) and its in-memory result for the
    stages after it (the coverage rasters for gaps, …)."""

    summary: Mapping[str, Any] | None
    value: Any = None


@dataclass(frozen=True)
class Stage:
    """One stage of the pipeline, as the registry lists it.

    Attributes
    ----------
    name
        The key under ``stages:`` in a plan file and in :data:`~telcoplan.outputs.SUMMARY`.
    parse
        ``parse(mapping, base=folder) -> Params``: the checked parameters (defaults filled
        in); every problem is raised at once as a :class:`ParameterError`.
    run
        ``run(inputs, params, staging) -> StageResult``: writes into ``staging.folder``.
    layers
        Input layers the stage needs; without them it is skipped.
    strict
        A plan that configures the stage (a mapping under ``stages:``) must give ``layers``.
    after
        Stages whose results it needs; it is skipped when one of them did not run.
    presents
        It draws on every output before it (map, report): it runs after the run's provenance
        is in the summary.
    """

    name: str
    parse: Callable[..., Any]
    run: Callable[..., StageResult]
    layers: tuple[str, ...] = ()
    strict: bool = False
    after: tuple[str, ...] = ()
    presents: bool = False

    def skip_reason(self, inputs: PlanInputs, staging: Staging) -> str | None:
        """Why the stage does not run on these inputs (None: it runs)."""
        lacking = [k for k in self.layers if k not in inputs.vectors]
        if lacking:
            return "no " + ", ".join(f"layers.{k}" for k in lacking)
        missing = [s for s in self.after if s not in staging.results]
        if missing:
            return "needs the " + ", ".join(missing) + " stage"
        return None
