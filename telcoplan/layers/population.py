"""The population layer: a raster of persons per cell, or polygons with counts.

Contract
--------
- **Raster**: one band, persons per cell (float), any CRS; it is warped onto the plan grid
  with a sum-preserving method (``read_population_raster``).
- **Polygons**: a ``population`` column (or another column named by the caller), persons per
  polygon; :func:`spread_population` spreads each count over the grid cells whose centres lie
  in the polygon, uniformly or in proportion to weights (dasymetric mapping with a
  residential / land-use mask), so that every polygon's total is conserved exactly.
- **Weights**: a raster, or land-use / building polygons (OpenStreetMap ``landuse``,
  ``natural``, ``building``) whose classes :func:`weights_from_polygons` turns into a weight per
  cell (:data:`CLASS_WEIGHTS`: residential 1, forest and water 0, …), area-weighted within
  each cell.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from telcoplan.errors import LayerValidationError, Problem
from telcoplan.gis.grid import GridSpec
from telcoplan.gis.raster import MemoryRaster
from telcoplan.gis.vector import has_shape
from telcoplan.gis.zonal import label_polygons, warn_overlaps, zonal_sum_labels

__all__ = [
    "CLASS_COLUMNS",
    "CLASS_WEIGHTS",
    "UNMAPPED_WEIGHT",
    "load_population_raster",
    "spread_population",
    "validate_population_raster",
    "weights_from_polygons",
]

log = logging.getLogger(__name__)

#: Relative density of residents by land-use class (OpenStreetMap ``landuse``, ``natural`` and
#: ``building`` values): where people sleep. Classes not listed, and land no polygon covers,
#: weigh :data:`UNMAPPED_WEIGHT` (OpenStreetMap's land use never covers everything).
CLASS_WEIGHTS: dict[str, float] = {
    # homes
    "residential": 1.0, "house": 1.0, "apartments": 1.0, "detached": 1.0, "terrace": 1.0,
    "dormitory": 1.0, "village_green": 0.3, "farmyard": 0.5, "allotments": 0.1,
    # mixed and work places (some residents above shops)
    "commercial": 0.3, "retail": 0.3, "yes": 0.5, "education": 0.05, "institutional": 0.05,
    "industrial": 0.02, "construction": 0.02, "port": 0.0, "railway": 0.0, "military": 0.02,
    "religious": 0.05, "cemetery": 0.0, "landfill": 0.0, "quarry": 0.0, "brownfield": 0.02,
    "greenfield": 0.02,
    # farms and green land
    "farmland": 0.05, "paddy": 0.05, "orchard": 0.05, "plant_nursery": 0.05, "vineyard": 0.05,
    "greenhouse_horticulture": 0.02, "depot": 0.0, "garages": 0.0,
    "meadow": 0.02, "grass": 0.02, "recreation_ground": 0.0, "park": 0.0, "flowerbed": 0.0,
    # nobody lives here
    "forest": 0.0, "wood": 0.0, "scrub": 0.0, "heath": 0.0, "grassland": 0.02,
    "water": 0.0, "wetland": 0.0, "basin": 0.0, "reservoir": 0.0, "salt_pond": 0.0,
    "aquaculture": 0.0, "bay": 0.0, "beach": 0.0, "sand": 0.0, "bare_rock": 0.0,
    "scree": 0.0, "cliff": 0.0, "mud": 0.0, "rock": 0.0,
}  # fmt: skip
#: Weight of land that no polygon covers, and of classes not in :data:`CLASS_WEIGHTS`.
UNMAPPED_WEIGHT = 0.1
#: Columns a polygon's class is read from when none is named: the first one with a value.
CLASS_COLUMNS = ("landuse", "natural", "building")


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
    warn_overlaps(
        polygons,
        grid.cell_area_m2,
        "population polygons",
        "a cell whose centre lies in an overlap takes the later polygon's people (each "
        "polygon's count is kept whole; only where its people are placed moves): fix the "
        "topology for the exact places",
    )
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


def load_population_raster(
    path: str | os.PathLike | MemoryRaster,
    grid: GridSpec,
    *,
    read: Callable[[], tuple[np.ndarray, Any, Any]] | None = None,
) -> np.ndarray:
    """Read a persons-per-cell raster (a file, or a :class:`~telcoplan.gis.raster.MemoryRaster`
    such as a PostGIS raster) onto ``grid``; ``read``: a call returning what
    :func:`~telcoplan.gis.raster.read_raster` returns for ``path`` (a read begun earlier).

    A raster already on ``grid`` (same CRS, transform and shape) is read as is. Otherwise it is
    warped with GDAL's ``sum`` resampling, which keeps totals when cells are aggregated; the
    change of total is logged.
    """
    from telcoplan.gis.raster import read_raster, read_raster_on_grid

    data, info, _ = read_raster(path) if read is None else read()
    data[np.isnan(data)] = 0.0  # nodata: nobody (in place: 35 M cells are 280 MB)
    validate_population_raster(data, source=str(path))
    before = float(data.sum())
    if info.same_grid(grid):
        return data  # read as is, and checked above
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


def weights_from_polygons(
    polygons: gpd.GeoDataFrame,
    grid: GridSpec,
    *,
    column: str | None = None,
    classes: dict[str, float] | None = None,
    default: float = UNMAPPED_WEIGHT,
    supersample: int = 5,
    source: str = "<weights>",
) -> np.ndarray:
    """Dasymetric weights on ``grid`` from land-use or building polygons.

    Each polygon weighs its class's weight (:data:`CLASS_WEIGHTS`, updated with ``classes``);
    a cell's weight is the area-weighted mean over the cell — measured on a sub-grid of
    ``supersample`` × ``supersample`` points per cell — of the weights of the polygons covering
    it, land no polygon covers weighing ``default``. Where polygons overlap, the smaller one
    counts (a residential block inside a forest polygon is residential).

    Parameters
    ----------
    polygons
        Polygons in ``grid.crs``. Their class is ``column``, or else the first of
        :data:`CLASS_COLUMNS` with a value; polygons without a class are left out.
    grid
        The plan grid.
    classes
        Weights (≥ 0) that replace or add to :data:`CLASS_WEIGHTS`, e.g. ``{"farmland": 0.2}``.
    default
        Weight of unmapped land and of classes without a weight.

    Returns
    -------
    numpy.ndarray
        float64 weights ≥ 0, shape ``grid.shape``.
    """
    from rasterio.features import rasterize

    table = {**CLASS_WEIGHTS, **{str(k): float(v) for k, v in (classes or {}).items()}}
    names = _polygon_classes(polygons, column, source)
    keep = names.notna().to_numpy() & has_shape(polygons.geometry)
    geoms = polygons.geometry.to_numpy()[keep]
    names = names.to_numpy()[keep]
    kinds = np.isin(shapely.get_type_id(geoms), (3, 6))  # Polygon, MultiPolygon
    geoms, names = geoms[kinds], names[kinds]
    unknown = sorted({str(n) for n in names} - set(table))
    if unknown:
        log.info(
            "%s: classes without a dasymetric weight count as unmapped land (%g): %s",
            source,
            default,
            ", ".join(unknown[:20]) + (" …" if len(unknown) > 20 else ""),
        )
    weights = np.array([table.get(str(n), default) for n in names], dtype=np.float64)
    order = np.argsort(-shapely.area(geoms), kind="stable")  # largest first: smaller win
    shapes = list(zip(geoms[order], weights[order], strict=True))
    from affine import Affine

    k = int(supersample)
    t = grid.transform
    out = np.empty(grid.shape, dtype=np.float64)
    rows = max(1, 4_000_000 // (grid.width * k * k))  # grid rows per chunk: ~4 M sub-cells
    for r0 in range(0, grid.height, rows):
        r1 = min(grid.height, r0 + rows)
        transform = Affine(t.a / k, 0.0, t.c, 0.0, t.e / k, t.f + t.e * r0)
        sub = (
            rasterize(
                shapes,
                out_shape=((r1 - r0) * k, grid.width * k),
                transform=transform,
                fill=default,
                dtype="float64",
            )
            if shapes
            else np.full(((r1 - r0) * k, grid.width * k), default)
        )
        out[r0:r1] = sub.reshape(r1 - r0, k, grid.width, k).mean(axis=(1, 3))
    return out


def _polygon_classes(polygons: gpd.GeoDataFrame, column: str | None, source: str) -> pd.Series:
    """The class of each polygon (None where it has none)."""
    if column is not None:
        if column not in polygons.columns:
            raise LayerValidationError(
                source,
                "weights",
                [
                    Problem(
                        None,
                        column,
                        f"class column {column!r} is missing; the file has "
                        f"{', '.join(map(str, polygons.columns.drop(polygons.geometry.name)))}",
                    )
                ],
            )
        values = polygons[column]
    else:
        present = [c for c in CLASS_COLUMNS if c in polygons.columns]
        if not present:
            raise LayerValidationError(
                source,
                "weights",
                [
                    Problem(
                        None,
                        None,
                        "no class column: name one (weights: {path: …, column: <class column>}); "
                        f"without it one of {', '.join(CLASS_COLUMNS)} is read",
                    )
                ],
            )
        values = polygons[present[0]].astype(object)
        for c in present[1:]:
            values = values.where(values.notna(), polygons[c].astype(object))
    return values.astype(object).where(values.notna() & (values.astype(str) != ""), None)
