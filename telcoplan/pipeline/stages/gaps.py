"""The gaps stage: :data:`~telcoplan.outputs.GAPS` with layers ``gaps`` (ranked), ``single_operator`` and ``pois``.

Besides the ranked gaps, the stage accounts for every person no operator covers
(``summary["gaps"]["not_covered"]``): not covered = in the ranked gaps + scattered, where the
scattered persons live in uncovered pockets smaller than ``min_population`` or in cells sparser
than ``min_density_per_km2``, so the report's totals reconcile. The POI layer gets each POI's
best level in its serving technology's own metric (RSRP for 4G, …) beside its requirement in
the same metric, and the margin between them.
"""

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
    from telcoplan.gis.grid import GridSpec
    from telcoplan.pipeline.inputs import PlanInputs

__all__ = ["DEFAULTS", "GapsParams", "parse", "run"]

log = logging.getLogger(__name__)

#: Parameters of the gaps stage with their defaults.
DEFAULTS: dict[str, Any] = {
    "min_population": 10.0,
    "min_density_per_km2": 10.0,
    "technology": None,
}
#: The metric each technology's level is stated in (see :mod:`telcoplan.coverage.thresholds`).


@dataclass(frozen=True)
class GapsParams:
    """Checked gaps parameters."""

    #: persons a gap must hold to be reported
    min_population: float = 10.0
    #: cells sparser than this (persons/km²) count as unpopulated
    min_density_per_km2: float = 10.0
    #: gaps in this generation's coverage or better ("4G": 2G and 3G do not count as service);
    #: None: in any operator's coverage of any technology
    technology: str | None = None


def parse(raw: Mapping[str, Any] | None, *, base: Path | None = None) -> GapsParams:
    """Checked gaps-stage parameters (defaults filled in); all problems raised at once."""
    params, errs = merge_defaults("gaps", raw, DEFAULTS)
    v = params["min_population"]
    if not is_number(v) or v < 0:
        errs.append(
            f"stages.gaps.min_population must be a non-negative number of persons, got {v!r}"
        )
    d = params["min_density_per_km2"]
    if not is_number(d) or d < 0:
        errs.append(
            f"stages.gaps.min_density_per_km2 must be a non-negative number of persons per km², "
            f"got {d!r}"
        )
    from telcoplan.layers.schemas import TECHNOLOGIES

    t = params["technology"]
    if t is not None and t not in TECHNOLOGIES:
        errs.append(
            f"stages.gaps.technology must be one of {', '.join(TECHNOLOGIES)} (gaps in that "
            f"generation's coverage or better) or null (any technology), got {t!r}"
        )
    if errs:
        raise ParameterError("gaps", errs)
    return GapsParams(**params)


def _area_names(geoms: np.ndarray, areas, cell_area_m2: float) -> list[str]:
    """Each gap's areas (the study area's: wards, districts…), the most of it first, joined
    with "; " — those a planner calls about it; areas it touches by less than half a cell are
    left out (the gap's cells and the areas' edges do not follow each other exactly)."""
    import shapely

    names = [str(n) for n in areas.index]
    shapes = areas.geometry.to_numpy()
    gap, area = shapely.STRtree(shapes).query(geoms, predicate="intersects")
    shared = shapely.area(shapely.intersection(geoms[gap], shapes[area]))
    out: list[list[tuple[float, str]]] = [[] for _ in range(len(geoms))]
    for g, a, m2 in zip(gap.tolist(), area.tolist(), shared.tolist(), strict=True):
        if m2 >= 0.5 * cell_area_m2:
            out[g].append((-m2, names[a]))
    return ["; ".join(name for _, name in sorted(found)) for found in out]


def _uncovered(cov, params: GapsParams) -> np.ndarray:
    """The cells without service: no operator covers them (with ``technology``: none at that
    generation or better)."""
    from telcoplan.layers.schemas import TECHNOLOGIES

    if params.technology is None:
        return ~cov.covered_any
    return cov.best_technology < TECHNOLOGIES.index(params.technology)


def run(inputs: PlanInputs, params: GapsParams, staging: Staging) -> StageResult:
    """Gaps of the coverage stage's result (``staging.results["coverage"]``)."""
    from telcoplan.coverage.gaps import (
        find_gaps,
        gap_regions,
        poi_service,
        single_operator_areas,
    )
    from telcoplan.gis.vector import write_vector_layers

    cov = staging.results["coverage"]
    towers = inputs.vectors["towers"]
    client = staging.client  # on a Dask cluster: regions labelled and polygonized tile by tile
    chunks = _chunks(cov.grid)
    # the regions once: ranked as gaps, and counted as pockets (see _not_covered)
    uncovered = _uncovered(cov, params)
    regions = gap_regions(
        cov,
        inputs.population,
        min_density_per_km2=float(params.min_density_per_km2),
        client=client,
        chunks=chunks,
        uncovered=uncovered,
    )
    gaps = find_gaps(
        cov,
        inputs.population,
        min_population=float(params.min_population),
        towers=towers,
        fiber=inputs.vectors.get("fiber"),
        regions=regions,
    )
    gaps["areas"] = _area_names(gaps.geometry.to_numpy(), inputs.areas, cov.grid.cell_area_m2)
    single = single_operator_areas(cov, inputs.population, client=client, chunks=chunks)
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
                "areas": r["areas"].split("; ") if r["areas"] else [],
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
        "not_covered": _not_covered(
            cov, inputs.population, gaps, params, regions.persons, uncovered
        ),
    }
    if params.technology is not None:
        summary["technology"] = params.technology  # gaps in this generation's coverage
    if "pois" in inputs.vectors:
        service = _poi_levels(cov, poi_service(cov, inputs.vectors["pois"], towers), towers)
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


def _chunks(grid: GridSpec) -> tuple[int, int] | None:
    """The chunks the stage finds its regions in: the gaps (and the pockets of
    :func:`_not_covered`, the same regions) and the single-operator areas.

    A grid larger than 4 chunks of :data:`~telcoplan.gis.polygonize.DEFAULT_CHUNKS` is
    labelled chunk by chunk, also without a cluster: no label raster of the whole grid and its
    bincount copy (0.4 GB on a national grid); the same regions. Their polygons, and the
    single-operator areas, are then normalized: traced on the whole grid at once in this
    process, made tile by tile on a cluster. A smaller grid is done at once (None), or tile by
    tile in the default chunks on a cluster.
    """
    from telcoplan.gis.polygonize import DEFAULT_CHUNKS

    rows, cols = DEFAULT_CHUNKS
    return DEFAULT_CHUNKS if grid.width * grid.height > 4 * rows * cols else None


def _not_covered(
    cov,
    population: np.ndarray,
    gaps,
    params: GapsParams,
    persons: np.ndarray,
    without_service: np.ndarray,
) -> dict[str, Any]:
    """Every person no operator covers, split as the report states it: in the ranked gaps,
    and scattered — in uncovered pockets under ``min_population`` persons, or in cells
    sparser than ``min_density_per_km2`` (the two rules of :func:`find_gaps`).

    Persons are those of the plan's population grid (the same the areas' figures sum). The
    pockets are the regions of :func:`~telcoplan.coverage.gaps.gap_regions` the gaps are
    ranked from (``persons``: per region), so that their persons are the same sums.
    """
    grid = cov.grid
    uncovered = np.isfinite(population) & (population > 0)
    uncovered &= without_service
    # the persons of the uncovered cells in raster order (not a zero-filled copy of the grid)
    pop = population[uncovered]
    pop = np.where(np.isfinite(pop), pop, 0.0)  # (the dtype the whole grid's copy had)
    del uncovered
    min_cell = max(float(params.min_density_per_km2) * grid.cell_area_m2 / 1e6, 0.0)
    sparse = pop < min_cell
    small = persons < float(params.min_population)
    km2 = grid.cell_area_m2 / 1e6
    return {
        "population": round(float(pop.sum()), 1),
        "in_gaps": {
            "count": len(gaps),
            "population": round(float(gaps["population"].sum()), 1),
        },
        "small_pockets": {
            "count": int(small.sum()),
            "population": round(float(persons[small].sum()), 1),
            "below_persons": float(params.min_population),
        },
        "sparse_cells": {
            "count": int(sparse.sum()),
            "population": round(float(pop[sparse].sum()), 1),
            "area_km2": round(float(sparse.sum()) * km2, 3),
            "below_persons_per_km2": float(params.min_density_per_km2),
        },
    }


def _poi_levels(cov, service, towers):
    """``service`` (from :func:`telcoplan.coverage.gaps.poi_service`) with each POI's level in
    the metric its requirement is stated in.

    Per operator, the serving tower's level is the total received power plus the offset of the
    tower's technology (:data:`~telcoplan.coverage.thresholds.METRIC_OFFSET_DB`: RSRP for 4G,
    RSCP for 3G, …), and the requirement is the POI's ``required_dbm`` in that metric, or,
    without one, the technology's coverage threshold (indoor margin included). The operator
    with the largest margin (level − requirement, dB) is reported: a POI is served exactly when
    that margin is ≥ 0.

    Added columns: ``level_operator``, ``level_technology`` (2G…5G), ``level_metric`` (RxLev,
    RSCP, RSRP, SS-RSRP), ``level_dbm``, ``required_level_dbm`` (both in that metric, dBm) and
    ``margin_db`` (negative: short by); NaN / empty without any signal.
    """
    import pandas as pd

    from telcoplan.coverage.thresholds import METRIC_NAMES, METRIC_OFFSET_DB

    out = service.copy()
    grid = cov.grid
    xy = out.geometry
    r, c = grid.rowcol(xy.x.to_numpy(), xy.y.to_numpy())
    inside = grid.contains_rowcol(r, c)
    rr, cc = np.where(inside, r, 0), np.where(inside, c, 0)
    tech_of = pd.Series(towers["technology"].astype(str).str.upper().to_numpy(), index=towers.index)
    site_tech = tech_of.reindex(cov.site_ids).fillna("").to_numpy(dtype=object)
    required = (
        pd.to_numeric(out["required_dbm"], errors="coerce").to_numpy(dtype=float)
        if "required_dbm" in out.columns
        else np.full(len(out), np.nan)
    )
    n_ops, n = len(cov.operators), len(out)
    level = np.full((n_ops, n), np.nan)
    need = np.full((n_ops, n), np.nan)
    margin = np.full((n_ops, n), np.nan)
    techs = np.full((n_ops, n), "", dtype=object)
    for i in range(n_ops):
        srv = cov.server[i][rr, cc]
        power = cov.power_dbm[i, rr, cc].astype(float)
        ok = inside & (srv >= 0) & np.isfinite(power)
        t = np.where(ok, site_tech[np.maximum(srv, 0)] if len(site_tech) else "", "")
        ok &= np.isin(t, list(METRIC_OFFSET_DB))
        offset = np.array([METRIC_OFFSET_DB.get(str(x), np.nan) for x in t], dtype=float)
        threshold = np.array(
            [
                cov.thresholds.metric_threshold(str(x)) if x in METRIC_OFFSET_DB else np.nan
                for x in t
            ],
            dtype=float,
        )
        level[i] = np.where(ok, power + offset, np.nan)
        need[i] = np.where(ok, np.where(np.isfinite(required), required, threshold), np.nan)
        # without a stated requirement the coverage margin itself (what `covered` is made of)
        cov_margin = cov.margin_db[i][rr, cc].astype(float)
        margin[i] = np.where(
            ok, np.where(np.isfinite(required), level[i] - required, cov_margin), np.nan
        )
        techs[i] = t
    has = np.isfinite(margin).any(axis=0)
    best = np.where(has, np.argmax(np.where(np.isfinite(margin), margin, -np.inf), axis=0), -1)
    cols = np.arange(n)
    pick = np.maximum(best, 0)
    out["level_operator"] = [cov.operators[b] if b >= 0 else None for b in best]
    out["level_technology"] = [techs[b, j] if b >= 0 else None for j, b in enumerate(best)]
    out["level_metric"] = [METRIC_NAMES.get(str(t)) if t else None for t in out["level_technology"]]
    out["level_dbm"] = np.where(has, level[pick, cols], np.nan)
    out["required_level_dbm"] = np.where(has, need[pick, cols], required)
    out["margin_db"] = np.where(has, margin[pick, cols], np.nan)
    return out
