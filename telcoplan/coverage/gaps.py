"""Coverage gaps, single-operator areas and the service check of points of interest.

- A **gap** is a connected region (8-connected cells) of populated cells that no operator covers
  (the GSMA *coverage gap*). Gaps are ranked by population.
- A **single-operator area** is where exactly one operator covers: no competition, no fallback.
- The **POI service check** reads, at each POI's cell, every operator's serving signal and says
  which operators meet the POI's required level.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from telcoplan.coverage.analysis import CoverageResult
from telcoplan.coverage.thresholds import METRIC_OFFSET_DB
from telcoplan.gis.grid import GridSpec
from telcoplan.gis.polygonize import (
    Regions,
    label_regions,
    polygonize_labels,
    polygonize_mask,
    tiled_regions,
)

__all__ = ["GapRegions", "find_gaps", "gap_regions", "poi_service", "single_operator_areas"]


def _nearest_distance(geoms: gpd.GeoSeries, targets: gpd.GeoSeries | None) -> np.ndarray:
    """Distance (m) from each geometry to the nearest target geometry (NaN without targets)."""
    out = np.full(len(geoms), np.nan)
    if targets is None or len(targets) == 0 or len(geoms) == 0:
        return out
    tree = shapely.STRtree(targets.to_crs(geoms.crs).geometry.to_numpy())
    (src, _), dist = tree.query_nearest(geoms.to_numpy(), return_distance=True, all_matches=False)
    out[src] = dist
    return out


def _ranked(persons: np.ndarray, min_population: float) -> np.ndarray:
    """Indexes of the regions with at least ``min_population`` persons, most populated first
    (ties in region order)."""
    keep = np.flatnonzero(persons >= min_population)
    return keep[np.argsort(-persons[keep], kind="stable")]


@dataclass(frozen=True, eq=False)
class GapRegions:
    """The regions :func:`find_gaps` ranks, before ranking (:func:`gap_regions`): every
    8-connected region of uncovered cells with people (at the minimum density or above).

    Attributes
    ----------
    persons
        Persons per region (``persons[k]`` for region ``k + 1``), float64.
    cells
        Cells per region, int64.
    """

    grid: GridSpec
    persons: np.ndarray
    cells: np.ndarray
    #: the label raster (regions found on the whole grid at once), else None
    labels: np.ndarray | None
    #: the regions found tile by tile (with their polygons), else None
    tiled: Regions | None

    def polygons(self, picks: np.ndarray) -> np.ndarray:
        """The (Multi)Polygon of each region in ``picks`` (1-based), in the grid's CRS."""
        picks = np.asarray(picks, dtype=np.int64)
        if self.tiled is not None:
            return self.tiled.polygons(picks, self.grid)
        remap = np.zeros(len(self.persons) + 1, dtype=np.int32)
        remap[picks] = np.arange(1, len(picks) + 1)
        return polygonize_labels(remap[self.labels], self.grid, len(picks)).geometry.to_numpy()


def gap_regions(
    coverage: CoverageResult,
    population: np.ndarray,
    *,
    min_density_per_km2: float = 0.0,
    client: Any = None,
    chunks: int | tuple[int, int] | None = None,
    uncovered: np.ndarray | None = None,
) -> GapRegions:
    """The uncovered populated regions of :func:`find_gaps` (all of them, unranked), with
    their persons and cells: once for the gaps and for the count of persons in the regions too
    small to be gaps.

    ``min_density_per_km2``, ``client`` and ``chunks`` are :func:`find_gaps`' arguments;
    ``uncovered``: the cells without service (default: those no operator covers; e.g. those
    without 4G or better, from ``coverage.best_technology``).
    """
    grid = coverage.grid
    min_cell = max(min_density_per_km2 * grid.cell_area_m2 / 1e6, 0.0)
    # (no zero-filled copy of the population: its non-finite cells are in no region, and the
    # regions' persons are read at their cells only)
    mask = np.isfinite(population) & (population > 0) & (population >= min_cell)
    mask &= ~coverage.covered_any if uncovered is None else uncovered
    if client is None and chunks is None:
        labels, n = label_regions(mask, diagonal=True)
        inside = labels[mask]  # the regions' cells, in raster order (all finite)
        persons = np.bincount(inside, weights=population[mask], minlength=n + 1)[1:]
        cells = np.bincount(inside, minlength=n + 1)[1:]
        return GapRegions(grid, persons, cells, labels, None)
    regions = tiled_regions(
        mask, weights=population, diagonal=True, chunks=chunks, client=client, polygons=True
    )
    return GapRegions(grid, regions.weights, regions.cells, None, regions)


def find_gaps(
    coverage: CoverageResult,
    population: np.ndarray,
    *,
    min_population: float = 1.0,
    min_density_per_km2: float = 0.0,
    towers: gpd.GeoDataFrame | None = None,
    fiber: gpd.GeoDataFrame | None = None,
    client: Any = None,
    chunks: int | tuple[int, int] | None = None,
    regions: GapRegions | None = None,
) -> gpd.GeoDataFrame:
    """Uncovered populated regions as polygons, ranked by population (largest first).

    Parameters
    ----------
    coverage
        Result of :func:`telcoplan.coverage.analysis.compute_coverage`.
    population
        Persons per cell on the coverage grid.
    min_population
        Regions with fewer persons are dropped (persons).
    min_density_per_km2
        Cells with a lower population density (persons/km²) count as unpopulated, so that gaps
        follow settlements rather than sprawl over sparsely peopled mountains.
    towers, fiber
        Optional layers for the distance columns.
    client, chunks
        With a Dask ``distributed.Client`` (duck-typed: ``scatter``, ``submit``, ``gather``) or
        a chunk shape (rows, columns), the regions are labelled and counted tile by tile — on
        the client's workers, else in this process — and merged across the chunk borders
        (:func:`telcoplan.gis.polygonize.tiled_regions`; their polygons are traced on the whole
        grid in this process, or made tile by tile on the workers): the same gaps, ranks, cells
        and polygons (topologically, normalized), persons to rounding (~1e-15 relative).
        Without either the whole grid is processed at once.
    regions
        The regions of :func:`gap_regions`, when already found (with the same
        ``min_density_per_km2``, ``client`` and ``chunks``: those are then not used).

    Returns
    -------
    geopandas.GeoDataFrame
        Index ``gap_id`` (1 = most populated); columns ``rank``, ``population`` (persons),
        ``area_km2``, ``cells``, ``dist_tower_m`` and ``dist_fiber_m`` (edge to edge, m), in the
        grid's CRS. Gaps never overlap any operator's coverage (they are made of uncovered cells).
    """
    grid = coverage.grid
    if regions is None:
        regions = gap_regions(
            coverage,
            population,
            min_density_per_km2=min_density_per_km2,
            client=client,
            chunks=chunks,
        )
    persons, cells = regions.persons, regions.cells
    order = _ranked(persons, min_population)
    gaps = gpd.GeoDataFrame(
        {"label": np.arange(1, len(order) + 1)},
        geometry=regions.polygons(order + 1),
        crs=grid.crs,
    )
    gaps["rank"] = np.arange(1, len(order) + 1)
    gaps["population"] = persons[order]
    gaps["cells"] = cells[order]
    gaps["area_km2"] = cells[order] * grid.cell_area_m2 / 1e6
    gaps["dist_tower_m"] = _nearest_distance(
        gaps.geometry, None if towers is None else towers.geometry
    )
    gaps["dist_fiber_m"] = _nearest_distance(
        gaps.geometry, None if fiber is None else fiber.geometry
    )
    gaps = gaps.drop(columns="label")
    gaps.index = pd.Index(gaps["rank"].to_numpy(), name="gap_id")
    return gaps


def single_operator_areas(
    coverage: CoverageResult,
    population: np.ndarray,
    *,
    client: Any = None,
    chunks: int | tuple[int, int] | None = None,
) -> gpd.GeoDataFrame:
    """Per operator: the area only it covers (polygon), with its population and km².

    With ``chunks`` (in this process: traced on the whole grid at once) or a Dask ``client``
    (tile by tile) the areas are the polygons of
    :func:`telcoplan.gis.polygonize.polygonize_mask`: topologically the same, normalized.
    """
    only_one = coverage.operator_count == 1
    rows, geoms = [], []
    for i, op in enumerate(coverage.operators):
        m = only_one & coverage.covered[i]
        # the cells' persons, not a zero-filled copy of the whole grid: the same sum
        persons = population[m]
        persons = np.where(np.isfinite(persons), persons, 0.0)
        rows.append(
            {
                "operator": op,
                "population": float(persons.sum()),
                "area_km2": float(m.sum()) * coverage.grid.cell_area_m2 / 1e6,
            }
        )
        geoms.append(polygonize_mask(m, coverage.grid, chunks=chunks, client=client))
    return gpd.GeoDataFrame(rows, geometry=geoms, crs=coverage.grid.crs)


def poi_service(
    coverage: CoverageResult, pois: gpd.GeoDataFrame, towers: gpd.GeoDataFrame
) -> gpd.GeoDataFrame:
    """Service check of each POI: best signal, and which operators meet its required level.

    A POI's ``required_dbm`` (optional) is stated in the serving technology's own metric (RSRP
    for 4G, …, see :mod:`telcoplan.coverage.thresholds`); without it the operator's coverage
    threshold applies (margin ≥ 0).

    Returns a copy of ``pois`` (same index, in the grid's CRS) with ``best_operator``,
    ``best_power_dbm`` (total received power, dBm), ``operators_ok`` (``;``-separated),
    ``n_operators_ok`` and ``served``; POIs outside the grid get NaN / empty values.
    """
    grid = coverage.grid
    out = pois.to_crs(grid.crs).copy()
    r, c = grid.rowcol(out.geometry.x.to_numpy(), out.geometry.y.to_numpy())
    inside = grid.contains_rowcol(r, c)
    rr, cc = np.where(inside, r, 0), np.where(inside, c, 0)
    tech = towers["technology"].astype(str).str.upper().to_numpy()
    offsets = np.array([METRIC_OFFSET_DB[t] for t in tech]) if len(tech) else np.zeros(0)
    required = (
        pd.to_numeric(out["required_dbm"], errors="coerce").to_numpy(dtype=float)
        if "required_dbm" in out.columns
        else np.full(len(out), np.nan)
    )
    n_ops = len(coverage.operators)
    power = np.full((n_ops, len(out)), np.nan)
    ok = np.zeros((n_ops, len(out)), dtype=bool)
    for i in range(n_ops):
        p = coverage.power_dbm[i, rr, cc].astype(float)
        srv = coverage.server[i][rr, cc]
        p[~inside | (srv < 0)] = np.nan
        power[i] = p
        metric = p + np.where(
            srv >= 0, offsets[np.maximum(srv, 0)] if len(offsets) else 0.0, np.nan
        )
        by_threshold = coverage.covered[i][rr, cc] & inside
        ok[i] = np.where(
            np.isfinite(required), np.nan_to_num(metric, nan=-np.inf) >= required, by_threshold
        )
    any_signal = np.isfinite(power).any(axis=0)
    best = np.where(
        any_signal, np.nanargmax(np.where(np.isfinite(power), power, -np.inf), axis=0), -1
    )
    out["best_operator"] = [coverage.operators[b] if b >= 0 else None for b in best]
    out["best_power_dbm"] = np.where(
        any_signal, np.nanmax(np.where(np.isfinite(power), power, -np.inf), axis=0), np.nan
    )
    out["operators_ok"] = [
        ";".join(op for op, flag in zip(coverage.operators, ok[:, j], strict=True) if flag)
        for j in range(len(out))
    ]
    out["n_operators_ok"] = ok.sum(axis=0)
    out["served"] = out["n_operators_ok"] > 0
    return out
