"""The basis of the report's figures: where the persons come from, which signal metric and
thresholds, which cost tables, and how the persons not covered split into gaps and the rest.

Every function reads the run's summary (and the options the report stage passes) and returns
plain text or numbers; the section builders escape the text.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import PurePath
from typing import Any

from telcoplan.coverage.thresholds import METRIC_NAMES
from telcoplan.report._format import is_missing, number

__all__ = [
    "NotCovered",
    "metric_name",
    "not_covered",
    "population_basis",
    "service_generation",
    "threshold_basis",
    "trench_cost_basis",
    "without_service",
]

_RASTER_SUFFIXES = (".tif", ".tiff", ".vrt", ".img", ".asc", ".nc")


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def metric_name(technology: object) -> str | None:
    """RxLev, RSCP, RSRP or SS-RSRP for 2G…5G; None for anything else."""
    return None if is_missing(technology) else METRIC_NAMES.get(str(technology).upper())


def population_basis(summary: Mapping[str, Any], label: str | None = None) -> str:
    """Where the run's persons come from, e.g. ``"population raster inputs/population.tif"``.

    ``label`` (the plan's ``stages.report.population_source``, e.g. ``"2019 census"``) comes
    first when given. The file is the plan's ``population`` input, else the areas'
    ``population`` column (spread uniformly over each area).
    """
    inputs = _mapping(_mapping(summary.get("provenance")).get("inputs"))
    pop = _mapping(inputs.get("population"))
    path = pop.get("path")
    if not is_missing(path):
        if PurePath(str(path)).suffix.lower() in _RASTER_SUFFIXES:
            text = f"population raster {path}"
        else:
            text = f"population polygons {path}, spread over the grid cells"
            if not is_missing(pop.get("weights_path")):
                text += f" by the dasymetric weights {pop['weights_path']}"
    elif not is_missing(_mapping(inputs.get("areas")).get("path")):
        text = (
            f"the population column of the areas ({inputs['areas']['path']}), "
            "spread evenly over each area"
        )
    else:
        text = ""
    if summary.get("synthetic") is True:
        text = f"{text}, synthetic data" if text else "synthetic population"
    if label:
        text = f"{label}: {text}" if text else label
    return text


def threshold_basis(summary: Mapping[str, Any]) -> list[tuple[str, str, float]]:
    """The coverage thresholds as (technology, metric, dBm), indoor margin included."""
    thr = _mapping(_mapping(_mapping(summary.get("coverage")).get("parameters")).get("thresholds"))
    levels = _mapping(thr.get("threshold_dbm"))
    margin = number(thr.get("indoor_margin_db")) if thr.get("indoor") else 0.0
    out = []
    for tech, level in levels.items():
        v, name = number(level), metric_name(tech)
        if v is not None and name is not None:
            out.append((str(tech), name, v + (margin or 0.0)))
    return out


def trench_cost_basis(summary: Mapping[str, Any]) -> tuple[dict[str, float], dict[str, float]]:
    """The backbone's trench cost per metre by road class, and the plan's overrides of it.

    Returns ``(table, overrides)``: the table actually used (telcoplan's defaults updated by
    ``stages.backbone.cost_per_m``) and the overridden entries alone.
    """
    from telcoplan.backbone.graph import DEFAULT_TRENCH_COST_PER_M

    params = _mapping(_mapping(summary.get("backbone")).get("parameters"))
    overrides = {
        str(k): float(v)
        for k, v in _mapping(params.get("cost_per_m")).items()
        if number(v) is not None
    }
    return {**DEFAULT_TRENCH_COST_PER_M, **overrides}, overrides


@dataclass(frozen=True)
class NotCovered:
    """Persons no operator covers, split as the report states it (whole persons, so the
    displayed parts add up exactly: ``total = in_gaps + scattered``,
    ``scattered = small + sparse`` when the split is known; see :func:`not_covered`)."""

    total: int
    in_gaps: int
    gap_count: int | None
    scattered: int
    small: int | None = None
    small_count: int | None = None
    small_below: float | None = None
    sparse: int | None = None
    sparse_cells: int | None = None
    sparse_km2: float | None = None
    sparse_below: float | None = None


def not_covered(summary: Mapping[str, Any]) -> NotCovered | None:
    """The split of the persons not covered, from ``summary["gaps"]["not_covered"]`` (written
    by the gaps stage), else from the coverage and gap totals of an older summary; None
    without gap figures, or when an older summary's totals do not add up.

    The parts are whole persons that add up to the rounded total (largest remainders), so the
    sums shown in the report are exact and each part is within one person of its value.
    """
    gaps = _mapping(summary.get("gaps"))
    nc = _mapping(gaps.get("not_covered"))
    in_gaps = number(_mapping(nc.get("in_gaps")).get("population"))
    if in_gaps is None:
        in_gaps = number(gaps.get("population"))
    count = number(_mapping(nc.get("in_gaps")).get("count"))
    if count is None:
        count = number(gaps.get("count"))
    total = number(nc.get("population"))
    if total is None:
        pop = number(summary.get("population_total"))
        covered = number(
            _mapping(_mapping(summary.get("coverage")).get("any")).get("population_covered")
        )
        total = pop - covered if pop is not None and covered is not None else None
    if total is None or in_gaps is None:
        return None
    small = _mapping(nc.get("small_pockets"))
    sparse = _mapping(nc.get("sparse_cells"))
    gap_count = None if count is None else int(count)
    if number(small.get("population")) is None or number(sparse.get("population")) is None:
        if not nc and in_gaps > total + 0.5:
            return None  # an older summary whose figures do not share one basis: no claim
        g, rest = _whole(total, [in_gaps, max(total - in_gaps, 0.0)])
        return NotCovered(round(total), g, gap_count, rest)
    g, s, p = _whole(
        total, [in_gaps, number(small["population"]) or 0.0, number(sparse["population"]) or 0.0]
    )
    return NotCovered(
        total=round(total),
        in_gaps=g,
        gap_count=gap_count,
        scattered=s + p,
        small=s,
        small_count=int(number(small.get("count")) or 0),
        small_below=number(small.get("below_persons")),
        sparse=p,
        sparse_cells=int(number(sparse.get("count")) or 0),
        sparse_km2=number(sparse.get("area_km2")),
        sparse_below=number(sparse.get("below_persons_per_km2")),
    )


def _whole(total: float, parts: list[float]) -> list[int]:
    """``parts`` as whole numbers that add up to ``round(total)``: each rounded down, then the
    units left over go to the largest remainders (each within one person of its value)."""
    target = round(total)
    floors = [math.floor(p) for p in parts]
    left = target - sum(floors)
    order = sorted(range(len(parts)), key=lambda i: -(parts[i] - floors[i]))
    out = list(floors)
    for k in range(abs(left)):
        i = order[k % len(parts)] if left > 0 else order[::-1][k % len(parts)]
        out[i] += 1 if left > 0 else -1
    return out


def service_generation(summary: Mapping[str, Any]) -> str | None:
    """The generation the gaps stage counted as service (``stages.gaps.technology``: "4G"
    counts 4G or better), or None: any technology."""
    t = _mapping(summary.get("gaps")).get("technology")
    return str(t) if t else None


def without_service(summary: Mapping[str, Any]) -> str:
    """How the report names the persons without service: by any operator, at the gaps'
    generation or better when the plan chose one."""
    t = service_generation(summary)
    return f"Without {t} or better from any operator" if t else "Not covered by any operator"
