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
The names below load on first use, so that a command imports only the modules it needs.
"""

from __future__ import annotations

from telcoplan._lazy import lazy_names

_API = {
    "PlanInputs": "telcoplan.pipeline.inputs",
    "load_inputs": "telcoplan.pipeline.inputs",
    "population_summary": "telcoplan.pipeline.inputs",
    "LAYER_NAMES": "telcoplan.pipeline.model",
    "LayerRef": "telcoplan.pipeline.model",
    "Plan": "telcoplan.pipeline.model",
    "batch_targets": "telcoplan.pipeline.parse",
    "parse_plan": "telcoplan.pipeline.parse",
    "plan_from_layers": "telcoplan.pipeline.parse",
    "read_plan": "telcoplan.pipeline.parse",
    "write_plan": "telcoplan.pipeline.parse",
    "run_plan": "telcoplan.pipeline.run",
    "STAGES": "telcoplan.pipeline.stages",
}

__all__ = sorted(_API)

__getattr__, __dir__ = lazy_names(__name__, _API, __all__)
