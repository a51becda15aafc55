"""The stages of a run, in running order: one registry read by the plan parser, by
:func:`telcoplan.pipeline.run_plan` and by the command line.

Each stage is one module with a frozen parameters dataclass, ``parse(mapping, base=…)`` that
returns the parameters or raises every problem at once (:class:`ParameterError`), and
``run(inputs, params, staging)`` that writes its outputs into the staging folder and returns a
:class:`StageResult`. Adding a stage is adding a module and a line below.
"""

from __future__ import annotations

from telcoplan.pipeline.checks import ParameterError
from telcoplan.pipeline.stages import backbone, coverage, gaps, report, sites
from telcoplan.pipeline.stages import map as map_stage
from telcoplan.pipeline.stages._base import Stage, StageResult, Staging

__all__ = ["STAGES", "ParameterError", "Stage", "StageResult", "Staging", "stage"]

#: The stages in running order, by name.
STAGES: dict[str, Stage] = {
    s.name: s
    for s in (
        Stage("coverage", coverage.parse, coverage.run, layers=("towers",)),
        Stage("gaps", gaps.parse, gaps.run, layers=("towers",), after=("coverage",)),
        Stage("sites", sites.parse, sites.run, layers=("towers",), after=("coverage",)),
        Stage(
            "backbone",
            backbone.parse,
            backbone.run,
            layers=("roads", "towers"),  # without fiber: a greenfield backbone
            strict=True,
            separate=True,
        ),
        Stage("map", map_stage.parse, map_stage.run, presents=True),
        Stage("report", report.parse, report.run, presents=True, separate=True),
    )
}


def stage(name: str) -> Stage:
    """The registered stage ``name`` (KeyError naming the known ones otherwise)."""
    try:
        return STAGES[name]
    except KeyError:
        raise KeyError(f"unknown stage {name!r}; known: {', '.join(STAGES)}") from None
