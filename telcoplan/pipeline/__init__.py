"""The pipeline: the plan file, loading its inputs, and running its stages.

=================  ===================================================================
``model``          :class:`Plan` and :class:`LayerRef` (values only)
``parse``          :func:`read_plan` (YAML, checked: every problem at once)
``inputs``         :func:`load_inputs` → :class:`PlanInputs` (validated, one CRS, one grid)
``stages``         one module per stage and the registry :data:`STAGES`
``run``            :func:`run_plan`: stages into a staging folder, outputs published at once
``validate``       ``telcoplan validate``
``calibrate``      ``telcoplan calibrate``
=================  ===================================================================

The output folder's file names and :data:`~telcoplan.outputs.SUMMARY` belong to :mod:`telcoplan.outputs`.
"""

from __future__ import annotations

from telcoplan.pipeline.inputs import PlanInputs, load_inputs
from telcoplan.pipeline.model import LAYER_NAMES, LayerRef, Plan
from telcoplan.pipeline.parse import parse_plan, plan_from_layers, read_plan, write_plan
from telcoplan.pipeline.run import batch_targets, population_summary, run_plan
from telcoplan.pipeline.stages import STAGES

__all__ = [
    "LAYER_NAMES",
    "STAGES",
    "LayerRef",
    "Plan",
    "PlanInputs",
    "batch_targets",
    "load_inputs",
    "parse_plan",
    "plan_from_layers",
    "population_summary",
    "read_plan",
    "run_plan",
    "write_plan",
]
