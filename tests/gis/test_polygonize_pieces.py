"""The tiled polygonizer's building blocks against independent references.

- ``_first_cells`` (each label's first cell, searched in its bounding box's first row) against
  ``np.unique(..., return_index=True)`` on the flattened labels;
- ``_polygons_from_shapes`` (polygons built at once from rasterio's GeoJSON) against
  :func:`shapely.geometry.shape` polygon by polygon, vertex for vertex;
- :func:`polygonize_mask` tile by tile (the pieces crossing chunk borders unioned at once)
  against the region-by-region assembly of :meth:`Regions.polygons`, vertex for vertex.
"""

from __future__ import annotations

import numpy as np
import shapely
from affine import Affine
from hypothesis import given, settings
from hypothesis import strategies as st
from rasterio import features
from scipy import ndimage

from telcoplan.gis.grid import GridSpec
from telcoplan.gis.polygonize import (
    _first_cells,
    _polygons_from_shapes,
    polygonize_mask,
    tiled_regions,
)


def _grid(shape, res=100.0) -> GridSpec:
    return GridSpec(
        crs="EPSG:32648",
        transform=Affine(res, 0.0, 512_345.5, 0.0, -res, 1_700_000.25),
        width=int(shape[1]),
        height=int(shape[0]),
    )


def _unique_first(labels: np.ndarray, n: int) -> np.ndarray:
    flat = labels.ravel()
    nz = np.flatnonzero(flat)
    uniq, idx = np.unique(flat[nz], return_index=True)
    first = np.full(n, -1, dtype=np.int64)
    first[uniq - 1] = nz[idx]
    return first


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), diagonal=st.booleans(), shuffle=st.booleans())
def test_first_cells_equal_unique_reference(seed, diagonal, shuffle):
    """scipy's numbering, and labels numbered in any order (the fallback path)."""
    rng = np.random.default_rng(seed)
    shape = tuple(rng.integers(1, 40, size=2))
    mask = rng.random(shape) < rng.uniform(0.05, 0.9)
    structure = np.ones((3, 3), dtype=bool) if diagonal else None
    labels, n = ndimage.label(mask, structure=structure)
    labels = labels.astype(np.int32)
    if shuffle and n > 1:
        perm = np.concatenate([[0], rng.permutation(n) + 1]).astype(np.int32)
        labels = perm[labels]
    got = _first_cells(labels, int(n))
    assert got.dtype == np.int64
    np.testing.assert_array_equal(got, _unique_first(labels, int(n)))


def test_first_cells_of_an_empty_chunk():
    assert len(_first_cells(np.zeros((3, 4), dtype=np.int32), 0)) == 0


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_polygons_from_shapes_equal_shape_one_by_one(seed):
    rng = np.random.default_rng(seed)
    shape = tuple(rng.integers(1, 30, size=2))
    labels = (rng.random(shape) < 0.6) * rng.integers(1, 4, size=shape)
    labels = labels.astype(np.int32)
    transform = Affine(1, 0, int(rng.integers(0, 50)), 0, 1, int(rng.integers(0, 50)))
    shapes = list(features.shapes(labels, mask=labels > 0, transform=transform))
    vals, geoms = _polygons_from_shapes(iter(shapes))
    assert vals.dtype == np.int64
    assert vals.tolist() == [int(v) for _, v in shapes]
    ref = np.array([shapely.geometry.shape(g) for g, _ in shapes], dtype=object)
    assert len(geoms) == len(ref)
    if len(ref):  # holes included, ring for ring and vertex for vertex
        assert list(shapely.to_wkb(geoms)) == list(shapely.to_wkb(ref))


def test_polygons_from_no_shapes():
    vals, geoms = _polygons_from_shapes(iter([]))
    assert len(vals) == 0
    assert len(geoms) == 0


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    rows=st.integers(1, 9),
    cols=st.integers(1, 9),
)
def test_tiled_mask_polygon_equals_region_by_region_assembly(seed, rows, cols):
    """Unioning all border pieces at once gives the polygon that assembling the regions'
    polygons (each region's border pieces unioned) gives: the same bytes."""
    rng = np.random.default_rng(seed)
    shape = tuple(rng.integers(1, 36, size=2))
    mask = rng.random(shape) < rng.uniform(0.1, 0.9)
    grid = _grid(shape)
    got = polygonize_mask(mask, grid, chunks=(rows, cols))
    regions = tiled_regions(mask, diagonal=True, chunks=(rows, cols), polygons=True)
    parts = shapely.get_parts(regions.polygons(np.arange(1, regions.n + 1), grid))
    if len(parts) == 0:
        assert got.is_empty
        return
    want = shapely.normalize(parts[0] if len(parts) == 1 else shapely.MultiPolygon(parts))
    assert shapely.to_wkb(got) == shapely.to_wkb(want)
    assert got.area == mask.sum() * grid.cell_area_m2
