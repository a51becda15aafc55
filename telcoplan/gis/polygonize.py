"""Polygons from raster masks (coverage areas, gaps)."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import shapely
from rasterio import features

from telcoplan.gis.grid import GridSpec

__all__ = ["label_regions", "polygonize_labels", "polygonize_mask"]


def polygonize_mask(mask: np.ndarray, grid: GridSpec) -> shapely.Geometry:
    """Union of the cells where ``mask`` is true, as one (Multi)Polygon (empty if none)."""
    if mask.shape != grid.shape:
        raise ValueError(f"mask shape {mask.shape} does not match grid shape {grid.shape}")
    m = mask.astype(np.uint8)
    polys = [
        shapely.geometry.shape(g)
        for g, v in features.shapes(m, mask=m.astype(bool), transform=grid.transform)
        if v == 1
    ]
    if not polys:
        return shapely.Polygon()
    return shapely.union_all(polys)


def label_regions(mask: np.ndarray, *, diagonal: bool = False) -> tuple[np.ndarray, int]:
    """Connected regions of ``mask`` (4-connected, or 8 with ``diagonal``): labels 1..n, 0 outside."""
    from scipy import ndimage

    structure = np.ones((3, 3), dtype=bool) if diagonal else None
    labels, n = ndimage.label(mask, structure=structure)
    return labels.astype(np.int32), int(n)


def polygonize_labels(labels: np.ndarray, grid: GridSpec, n: int) -> gpd.GeoDataFrame:
    """One (Multi)Polygon per label 1..n, in label order (column ``label``)."""
    geoms: list[list] = [[] for _ in range(n + 1)]
    lab = labels.astype(np.int32)
    for g, v in features.shapes(lab, mask=lab > 0, transform=grid.transform):
        geoms[int(v)].append(shapely.geometry.shape(g))
    out = [shapely.union_all(g) if g else shapely.Polygon() for g in geoms[1:]]
    return gpd.GeoDataFrame({"label": np.arange(1, n + 1)}, geometry=out, crs=grid.crs)
