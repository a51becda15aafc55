"""The population layer: a raster of persons per cell, or polygons with counts.

Contract
--------
- **Raster**: one band, persons per cell (float), any CRS; it is warped onto the plan grid
  with a sum-preserving method (``read_population_raster``).
- **Polygons**: a ``population`` column (or another column named by the caller), persons per
  polygon; :func:`spread_population` spreads each count over the grid cells whose centres lie
  in the polygon, uniformly or in proportion to a weight raster (dasymetric mapping with a
  residential / land-use mask), so that every polygon's total is conserved exactly.
"""

from __future__ import annotations

import logging
import os

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from telcoplan.errors import LayerValidationError, Problem
from telcoplan.gis.grid import GridSpec
from telcoplan.gis.zonal import label_polygons, zonal_sum_labels

__all__ = ["load_population_raster", "spread_population", "validate_population_raster"]

log = logging.getLogger(__name__)


def spread_population(
    polygons: gpd.GeoDataFrame,
    grid: GridSpec,
    *,
    column: str = "population",
    weights: np.ndarray | None = None,
) -> np.ndarray:
    """Spread polygon counts onto ``grid``; each polygon's total is conserved.

    Parameters
    ----------
    polygons
        Polygons in ``grid.crs`` with a count column (persons). They should not overlap.
    grid
        The plan grid.
    column
        Name of the count column.
    weights
        Optional non-negative weights on ``grid`` (e.g. 1 for residential land, 0.05 elsewhere).
        Within a polygon, persons are spread in proportion to the weights; a polygon whose
        cells all have zero weight falls back to a uniform spread.

    Returns
    -------
    numpy.ndarray
        float64 persons per cell, shape ``grid.shape``; 0 outside every polygon.

    Notes
    -----
    Cells belong to the polygon containing their centre. A polygon too small to contain any
    cell centre puts its whole count into the cell containing its representative point, so the
    grid total always equals the polygons' total (when that cell is on the grid).
    Dasymetric mapping: Mennis (2003), "Generating surface models of population using
    dasymetric mapping", The Professional Geographer 55(1).
    """
    if column not in polygons.columns:
        raise LayerValidationError(
            "<population>",
            "population",
            [Problem(None, column, f"count column {column!r} is missing")],
        )
    counts = pd.to_numeric(polygons[column], errors="coerce").to_numpy(dtype=float)
    bad = ~np.isfinite(counts) | (counts < 0)
    if bad.any():
        raise LayerValidationError(
            "<population>",
            "population",
            [
                Problem(
                    int(i) + 1,
                    column,
                    f"count {polygons[column].iloc[i]!r} is not a non-negative number",
                )
                for i in np.flatnonzero(bad)
            ],
        )
    n = len(polygons)
    _warn_overlaps(polygons, grid.cell_area_m2)
    labels = label_polygons(polygons, grid)
    if weights is None:
        w = np.ones(grid.shape, dtype=np.float64)
    else:
        w = np.asarray(weights, dtype=np.float64)
        if w.shape != grid.shape:
            raise ValueError(f"weights shape {w.shape} does not match grid shape {grid.shape}")
        if np.any(w < 0) or not np.all(np.isfinite(w)):
            raise ValueError("weights must be finite and non-negative")
    inside = labels >= 0
    wsum = zonal_sum_labels(np.where(inside, w, 0.0), labels, n)
    ncells = np.bincount(labels[inside], minlength=n)[:n]
    # polygons whose weights are all zero fall back to uniform weights
    zero_w = (wsum <= 0) & (ncells > 0)
    if zero_w.any():
        fallback = inside & zero_w[np.where(inside, labels, 0)]
        w = np.where(fallback, 1.0, w)
        wsum = zonal_sum_labels(np.where(inside, w, 0.0), labels, n)
    out = np.zeros(grid.shape, dtype=np.float64)
    lab = np.where(inside, labels, 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        share = np.where(inside, w / wsum[lab], 0.0)
    out[inside] = counts[lab[inside]] * share[inside]
    # polygons without any cell centre: everything into the representative point's cell
    for i in np.flatnonzero(ncells == 0):
        if counts[i] == 0:
            continue
        pt = polygons.geometry.iloc[i].representative_point()
        r, c = grid.rowcol(np.array([pt.x]), np.array([pt.y]))
        if grid.contains_rowcol(r, c)[0]:
            out[r[0], c[0]] += counts[i]
        else:
            log.warning(
                "population polygon %d (%g persons) lies outside the grid and is dropped",
                i,
                counts[i],
            )
    return out


def _warn_overlaps(polygons: gpd.GeoDataFrame, cell_area_m2: float) -> None:
    """Log overlapping count polygons: a cell in an overlap counts for the later polygon only."""
    geoms = polygons.geometry.to_numpy()
    tree = shapely.STRtree(geoms)
    left, right = tree.query(geoms, predicate="intersects")
    keep = left < right
    if not keep.any():
        return
    areas = shapely.area(shapely.intersection(geoms[left[keep]], geoms[right[keep]]))
    big = areas >= 0.25 * cell_area_m2
    if big.any():
        log.warning(
            "%d pairs of population polygons overlap (%.3f km² in all, largest %.3f km²); cells whose "
            "centre lies in an overlap take the later polygon's people: fix the topology for exact per-polygon results",
            int(big.sum()),
            float(areas[big].sum()) / 1e6,
            float(areas.max()) / 1e6,
        )


def load_population_raster(path: str | os.PathLike, grid: GridSpec) -> np.ndarray:
    """Read a persons-per-cell raster onto ``grid``.

    A raster already on ``grid`` (same CRS, transform and shape) is read as is. Otherwise it is
    warped with GDAL's ``sum`` resampling, which keeps totals when cells are aggregated; the
    change of total is logged.
    """
    from telcoplan.gis.raster import read_raster, read_raster_on_grid

    data, info, _ = read_raster(path)
    validate_population_raster(np.where(np.isnan(data), 0.0, data), source=str(path))
    before = float(np.nansum(data))
    if info.same_grid(grid):
        out = np.where(np.isnan(data), 0.0, data)
    else:
        warped = read_raster_on_grid(path, grid, resampling="sum")
        out = np.where(np.isnan(warped), 0.0, warped)
        if abs(float(out.sum()) - before) > 1e-6 * max(before, 1.0):
            log.warning(
                "%s: %.1f persons on the source raster, %.1f on the plan grid (cells outside the grid are dropped)",
                path,
                before,
                float(out.sum()),
            )
    if before > 0 and not out.sum() > 0:
        raise LayerValidationError(
            str(path),
            "population",
            [
                Problem(
                    None,
                    None,
                    f"none of its {before:,.0f} persons lie over the study area; check the "
                    "raster's extent and CRS",
                )
            ],
        )
    validate_population_raster(out, source=str(path))
    return out


def validate_population_raster(pop: np.ndarray, *, source: str = "<population>") -> None:
    """Raise :class:`LayerValidationError` if the raster has negative or non-finite counts."""
    problems = []
    if not np.all(np.isfinite(pop)):
        problems.append(
            Problem(None, None, "population raster has non-finite values; set them as nodata")
        )
    elif float(pop.sum()) > 1e10:
        problems.append(
            Problem(
                None,
                None,
                f"{float(pop.sum()):.3g} persons in all, more than live on Earth; check the "
                "raster's units (persons per cell) and its nodata value",
            )
        )
    neg = np.flatnonzero(pop.ravel() < 0)
    if neg.size:
        r, c = np.unravel_index(neg[0], pop.shape)
        problems.append(
            Problem(
                None,
                None,
                f"{neg.size} cells have negative counts (first at row {r}, col {c}); counts must be ≥ 0 persons",
            )
        )
    if problems:
        raise LayerValidationError(source, "population", problems)
