"""Polygon labelling on the grid and zonal sums.

Cells belong to the polygon that contains their centre (centre-of-cell assignment), the same
rule as exactextract's and rasterstats' default ``all_touched=False``; the polygons are filled
by :mod:`telcoplan.gis._scanline` (GDAL's scanline rule, without GDAL's per-call overhead).
"""

from __future__ import annotations

import logging

import geopandas as gpd
import numpy as np
import shapely

from telcoplan._readonly import readonly_arrays
from telcoplan.errors import CRSError
from telcoplan.gis.crs import crs_name, same_crs
from telcoplan.gis.grid import GridSpec

__all__ = ["label_polygons", "warn_overlaps", "zonal_sum", "zonal_sum_labels", "zonal_sum_masks"]

log = logging.getLogger(__name__)


def label_polygons(polygons: gpd.GeoSeries | gpd.GeoDataFrame, grid: GridSpec) -> np.ndarray:
    """Label raster: cell = position (0..n-1) of the polygon containing its centre, -1 elsewhere.

    Where polygons overlap, the later one wins (polygons of a partition do not overlap).
    """
    geoms = polygons.geometry if isinstance(polygons, gpd.GeoDataFrame) else polygons
    if geoms.crs is None or not same_crs(geoms.crs, grid.crs):
        raise CRSError(
            f"polygons are in {crs_name(geoms.crs)} but the grid is in {crs_name(grid.crs)}; "
            "reproject them with .to_crs(grid.crs) first"
        )
    from telcoplan.gis._scanline import fill_polygons

    px, py, ring_start, part_start, owner = _rings_in_pixels(geoms.to_numpy(), grid)
    out = np.full(grid.shape, -1, dtype=np.int32)
    return fill_polygons(px, py, ring_start, part_start, owner.astype(np.int32), out)


def _rings_in_pixels(geoms: np.ndarray, grid: GridSpec):
    """Every polygon's rings as closed vertex runs in pixel coordinates (column, row from the
    grid's top-left corner), with the ring and polygon-part offsets :func:`fill_polygons` reads
    and each part's feature. The parts of a multipolygon are filled one by one, as GDAL does
    (parts that overlap, in an invalid multipolygon, are all filled). Missing and empty
    geometries, and parts that are not polygons, have no rings."""
    import shapely

    parts, owner = shapely.get_parts(geoms, return_index=True)
    keep = shapely.get_type_id(parts) == 3  # polygons (a multipolygon's parts are polygons)
    parts, owner = parts[keep], owner[keep]
    rings, ring_part = shapely.get_rings(parts, return_index=True)
    coords, ring_of = shapely.get_coordinates(rings, return_index=True)
    t = grid.transform
    px = (coords[:, 0] - t.c) / t.a
    py = (coords[:, 1] - t.f) / t.e
    ring_start = np.searchsorted(ring_of, np.arange(len(rings) + 1)).astype(np.int64)
    part_start = np.searchsorted(ring_part, np.arange(len(parts) + 1)).astype(np.int64)
    return px, py, ring_start, part_start, owner


def zonal_sum_labels(values: np.ndarray, labels: np.ndarray, n: int) -> np.ndarray:
    """Sum of ``values`` per label 0..n-1 (NaN values count as 0), float64, shape (n,)."""
    if values.shape != labels.shape:
        raise ValueError(f"values shape {values.shape} != labels shape {labels.shape}")
    v = np.asarray(values, dtype=np.float64).ravel()
    lab = np.asarray(labels).ravel()
    if lab.dtype != np.int32:
        lab = lab.astype(np.int32)
    # one pass, no masked copies; the sums are added in cell order, as numpy.bincount adds
    # them, so the results are the same to the last bit
    return _sum_by_label()(*readonly_arrays((v, lab, int(n))))


def _sum_by_label():
    """The compiled one-pass kernel (numba is imported on first use)."""
    global _KERNEL
    if _KERNEL is None:
        import numba as nb

        @nb.njit(cache=True, nogil=True)
        def kernel(v, lab, n):
            out = np.zeros(n, dtype=np.float64)
            for i in range(v.size):
                k = lab[i]
                if k >= 0 and k < n and np.isfinite(v[i]):
                    out[k] += v[i]
            return out

        _KERNEL = kernel
    return _KERNEL


_KERNEL = None


def zonal_sum_masks(
    values: np.ndarray,
    labels: np.ndarray,
    n: int,
    masks: np.ndarray,
    levels: np.ndarray | None = None,
    n_levels: int = 0,
) -> np.ndarray:
    """Sums of ``values`` per label 0..n-1 over several subsets of the cells, in one pass.

    Rows of the result (float64, (k + 3 + n_levels, n)) with k = ``len(masks)``: 0 every cell;
    1 … k the cells where each of the boolean ``masks`` (k, H, W) holds; k + 1 where any of
    them holds; k + 2 where none does; then k + 3 + j the cells whose ``levels`` (integers,
    (H, W)) are ≥ j, for j < ``n_levels``. NaN values count as 0.

    Each row is, to the bit, :func:`zonal_sum_labels` of the values with the other cells set
    to 0 (the same additions in cell order; adding 0 changes no sum), without a masked copy
    per row.
    """
    k = len(masks)
    if values.shape != labels.shape or masks.shape[1:] != labels.shape:
        raise ValueError(
            f"values {values.shape}, masks {masks.shape[1:]} and labels {labels.shape} must "
            "have the same shape"
        )
    if n_levels and (levels is None or levels.shape != labels.shape):
        raise ValueError(f"levels must have the labels' shape {labels.shape}")
    v = np.asarray(values, dtype=np.float64).ravel()
    lab = np.asarray(labels).ravel()
    if lab.dtype != np.int32:
        lab = lab.astype(np.int32)
    m = np.ascontiguousarray(masks, dtype=np.bool_).reshape(k, lab.size)
    lev = np.zeros(1, dtype=np.int64) if not n_levels else np.asarray(levels).ravel()
    return _sum_by_masks()(*readonly_arrays((v, lab, int(n), m, lev, int(n_levels))))


def _sum_by_masks():
    """The compiled one-pass kernel of :func:`zonal_sum_masks` (numba imported on first use)."""
    global _MASKS_KERNEL
    if _MASKS_KERNEL is None:
        import numba as nb

        @nb.njit(cache=True, nogil=True)
        def kernel(v, lab, n, masks, levels, n_levels):
            k = masks.shape[0]
            out = np.zeros((k + 3 + n_levels, n), dtype=np.float64)
            for i in range(v.size):
                a = lab[i]
                x = v[i]
                if a < 0 or a >= n or not np.isfinite(x):
                    continue
                out[0, a] += x
                hit = False
                for j in range(k):
                    if masks[j, i]:
                        out[1 + j, a] += x
                        hit = True
                out[k + 1 if hit else k + 2, a] += x
                for j in range(n_levels):
                    if levels[i] >= j:
                        out[k + 3 + j, a] += x
            return out

        _MASKS_KERNEL = kernel
    return _MASKS_KERNEL


_MASKS_KERNEL = None


def zonal_sum(
    values: np.ndarray,
    grid: GridSpec,
    polygons: gpd.GeoSeries | gpd.GeoDataFrame,
) -> np.ndarray:
    """Sum of raster ``values`` (on ``grid``) inside each polygon, in polygon order.

    Returns a float64 array of length ``len(polygons)``.
    """
    if values.shape != grid.shape:
        raise ValueError(f"raster shape {values.shape} does not match grid shape {grid.shape}")
    labels = label_polygons(polygons, grid)
    return zonal_sum_labels(values, labels, len(polygons))


def warn_overlaps(polygons: gpd.GeoDataFrame, cell_area_m2: float, what: str, effect: str) -> int:
    """Log the pairs of ``polygons`` that overlap by a quarter of a cell or more (``what``
    they are, ``effect`` what it does to the results); returns how many."""
    geoms = polygons.geometry.to_numpy()
    tree = shapely.STRtree(geoms)
    left, right = tree.query(geoms, predicate="intersects")
    keep = left < right
    if not keep.any():
        return 0
    left, right = left[keep], right[keep]
    areas = shapely.area(shapely.intersection(geoms[left], geoms[right]))
    big = areas >= 0.25 * cell_area_m2
    if big.any():
        k = int(np.argmax(areas))
        names = polygons.index
        named = names.inferred_type != "integer"  # names, not row numbers

        def which(i: int) -> str:
            return f"row {i + 1}" + (f" ({names[i]})" if named else "")

        log.warning(
            "%d pair%s of %s overlap (%.3f km² in all; the largest %.3f km², %s and %s); %s",
            int(big.sum()),
            "" if big.sum() == 1 else "s",
            what,
            float(areas[big].sum()) / 1e6,
            float(areas[k]) / 1e6,
            which(int(left[k])),
            which(int(right[k])),
            effect,
        )
    return int(big.sum())
