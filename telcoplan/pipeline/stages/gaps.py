"""The gaps stage: :data:`~telcoplan.outputs.GAPS` with layers ``gaps`` (ranked), ``single_operator`` and ``pois``."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from telcoplan import outputs
from telcoplan.pipeline.checks import ParameterError, is_number, merge_defaults
from telcoplan.pipeline.stages._base import StageResult, Staging
from telcoplan.pipeline.stages.coverage import mark_synthetic

if TYPE_CHECKING:
    from telcoplan.pipeline.inputs import PlanInputs

__all__ = ["DEFAULTS", "GapsParams", "parse", "run"]

log = logging.getLogger(__name__)

#: Parameters of the gaps stage with their defaults.
DEFAULTS: dict[str, Any] = {"min_population": 10.0, "min_density_per_km2": 10.0}


@dataclass(frozen=True)
class GapsParams:
    """Checked gaps parameters."""

    #: persons a gap must hold to be reported
    min_population: float = 10.0
    #: cells sparser than this (persons/km²) count as unpopulated
    min_density_per_km2: float = 10.0


def parse(raw: Mapping[str, Any] | None, *, base: Path | None = None) -> GapsParams:
    """Checked gaps-stage parameters (defaults filled in); all problems raised at once."""
    params, errs = merge_defaults("gaps", raw, DEFAULTS)
    v = params["min_population"]
    if not is_number(v) or v < 0:
        errs.append(
            f"stages.gaps.min_population must be a non-negative number of persons, got {v!r}"
        )
    if errs:
        raise ParameterError("gaps", errs)
    return GapsParams(**params)


def run(inputs: PlanInputs, params: GapsParams, staging: Staging) -> StageResult:
    """Gaps of the coverage stage's result (``staging.results["coverage"]``)."""
    from telcoplan.coverage.gaps import find_gaps, poi_service, single_operator_areas
    from telcoplan.gis.vector import write_vector_layers

    cov = staging.results["coverage"]
    towers = inputs.vectors["towers"]
    gaps = find_gaps(
        cov,
        inputs.population,
        min_population=float(params.min_population),
        min_density_per_km2=float(params.min_density_per_km2),
        towers=towers,
        fiber=inputs.vectors.get("fiber"),
    )
    single = single_operator_areas(cov, inputs.population)
    layers = {"gaps": gaps, "single_operator": single}
    summary: dict[str, Any] = {
        "count": len(gaps),
        "population": round(float(gaps["population"].sum()), 1),
        "area_km2": round(float(gaps["area_km2"].sum()), 3),
        "largest": [
            {
                "gap_id": int(i),
                "population": round(float(r["population"]), 1),
                "area_km2": round(float(r["area_km2"]), 3),
                "dist_tower_m": round(float(r["dist_tower_m"]), 1),
                # null without a fiber layer
                "dist_fiber_m": round(float(r["dist_fiber_m"]), 1)
                if np.isfinite(r["dist_fiber_m"])
                else None,
            }
            for i, r in gaps.head(10).iterrows()
        ],
        "single_operator": {
            r["operator"]: round(float(r["population"]), 1) for _, r in single.iterrows()
        },
    }
    if "pois" in inputs.vectors:
        service = poi_service(cov, inputs.vectors["pois"], towers)
        layers["pois"] = service
        summary["pois"] = {
            "count": len(service),
            "served": int(service["served"].sum()),
            "unserved": sorted(map(str, service.index[~service["served"]]))[:50],
        }
    write_vector_layers(
        staging.folder / outputs.GAPS, mark_synthetic(layers, inputs), overwrite=True
    )
    log.info("gaps: %d gaps with %.0f persons", summary["count"], summary["population"])
    return StageResult(summary)
