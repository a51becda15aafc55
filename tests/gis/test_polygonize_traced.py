"""The traced polygonizer (the whole grid at once, :mod:`telcoplan.gis._trace`) against rasterio.

The reference is the whole-grid path of :mod:`telcoplan.gis.polygonize` (no chunks, no client):
rasterio's (GDAL's) 4-connected polygons unioned by GEOS. The traced polygons must be equal to
them topologically (:func:`shapely.equals`), with the same area, valid and without vertices in
the middle of straight edges — and, once the reference is normalized, the same WKB bytes: the
traced path is what a tiled call in this process returns, and it returns the bytes the tiled
rasterio path returned (checked too, with that path's functions called chunk by chunk).
The bytes hold in every case below: masks, label rasters of several values touching one
another, and regions.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import ndimage

from telcoplan.gis import polygonize
from telcoplan.gis._trace import find_runs, label_runs, trace_rings
from telcoplan.gis.grid import GridSpec
from telcoplan.gis.polygonize import (
    label_regions,
    polygonize_labels,
    polygonize_mask,
    tiled_regions,
)
from tests.gis.test_polygonize_tiled import _grid as tiled_grid
from tests.gis.test_polygonize_tiled import _straight_vertices


def _grid(shape, res=100.0, x0=512_345.5, y0=1_700_000.25) -> GridSpec:
    return tiled_grid(shape, res=res, x0=x0, y0=y0)


def _assert_same(reference, traced, area=None):
    """``traced`` equals the rasterio path's ``reference`` polygon: topologically, in area, the
    same bytes once ``reference`` is normalized; valid; corners only."""
    assert traced.is_valid, shapely.is_valid_reason(traced)
    if reference.is_empty:
        assert traced.is_empty
        assert traced.geom_type == "Polygon"
        return
    assert shapely.equals(reference, traced)
    assert traced.area == pytest.approx(reference.area, rel=1e-12, abs=0.0)
    if area is not None:
        # (shoelace sums of large coordinates: ~1e-11 relative for small cells)
        assert traced.area == pytest.approx(area, rel=1e-9)
    assert shapely.to_wkb(traced) == shapely.to_wkb(shapely.normalize(reference))
    assert _straight_vertices(traced) == 0


def _rasterio_tiled_mask(mask, grid, chunks):
    """The tiled rasterio path of :func:`polygonize_mask` (what a Dask client runs), chunk by
    chunk in this process: rasterio per chunk, the pieces on a border unioned by GEOS."""
    boxes = polygonize._chunk_boxes(mask.shape, chunks)
    found = [
        polygonize._chunk_mask_pieces(np.packbits(mask[r0:r1, c0:c1], axis=None), b, mask.shape)
        for b in boxes
        for r0, r1, c0, c1 in [b]
    ]
    geoms = np.concatenate([p[0] for p in found])
    if not len(geoms):
        return shapely.Polygon()
    on_border = np.concatenate([p[1] for p in found])
    pieces = polygonize._Pieces(np.ones(len(geoms), dtype=np.int64), geoms, on_border)
    parts = shapely.get_parts(pieces.geometries(np.ones(1, dtype=np.int64), grid))
    return shapely.normalize(parts[0] if len(parts) == 1 else shapely.MultiPolygon(parts))


def _ring_with_leak():
    """A ring of cells whose hole touches the outside at one corner: the hole (2, 2) and the
    outside cell (3, 3) meet diagonally, so the shell touches its hole at a point."""
    m = np.zeros((6, 6), dtype=bool)
    m[1:4, 1:4] = True
    m[2, 2] = False
    m[3, 3] = False
    return m


def _holes_touching():
    """Two holes of one region touching at a corner, and an island inside a hole."""
    m = np.ones((9, 9), dtype=bool)
    m[2, 2] = m[3, 3] = False  # two holes meeting diagonally
    m[5:8, 5:8] = False
    m[6, 6] = True  # an island in the second hole
    return m


def _island_touching_its_hole():
    """An island cell (3, 3) in a hole, touching the region around at one corner only."""
    m = np.ones((7, 7), dtype=bool)
    m[2:5, 2:5] = False
    m[2, 2] = True  # a notch of the region into the hole
    m[3, 3] = True  # the island: meets the notch at the point (3, 3)
    return m


HANDMADE = {
    "single_cell": np.array([[True]]),
    "single_cell_inside": np.pad(np.array([[True]]), 2),
    "two_cells_diagonal": np.array([[True, False], [False, True]]),
    "checkerboard": np.add.outer(np.arange(11), np.arange(13)) % 2 == 0,
    "checkerboard_odd": np.add.outer(np.arange(12), np.arange(9)) % 2 == 1,
    "ring_with_leak": _ring_with_leak(),
    "holes_touching": _holes_touching(),
    "island_touching_its_hole": _island_touching_its_hole(),
    "full": np.ones((5, 7), dtype=bool),
    "empty": np.zeros((5, 7), dtype=bool),
    "frame": np.pad(np.zeros((3, 4), dtype=bool), 1, constant_values=True),
    "row": np.array([[True, True, False, True, True, True]]),
    "column": np.array([[True], [False], [True], [True]]),
}


@pytest.mark.parametrize("name", sorted(HANDMADE))
def test_handmade_masks_equal_rasterio(name):
    mask = HANDMADE[name]
    grid = _grid(mask.shape)
    traced = polygonize_mask(mask, grid, chunks=2)
    _assert_same(polygonize_mask(mask, grid), traced, mask.sum() * grid.cell_area_m2)
    assert shapely.to_wkb(traced) == shapely.to_wkb(_rasterio_tiled_mask(mask, grid, (2, 3)))


def test_handmade_cases_are_what_their_names_say():
    def traced(name):
        mask = HANDMADE[name]
        return polygonize_mask(mask, _grid(mask.shape), chunks=4)

    leak = traced("ring_with_leak")
    assert leak.geom_type == "Polygon"
    assert len(leak.interiors) == 1
    assert leak.exterior.intersection(leak.interiors[0]).geom_type == "Point"
    holes = traced("holes_touching")
    assert holes.geom_type == "MultiPolygon"  # the island
    assert sorted(len(p.interiors) for p in holes.geoms) == [0, 3]
    checker = traced("checkerboard")
    assert len(checker.geoms) == HANDMADE["checkerboard"].sum()  # corners do not join cells
    island = traced("island_touching_its_hole")
    assert island.geom_type == "MultiPolygon"
    assert sorted(len(p.interiors) for p in island.geoms) == [0, 1]
    assert island.geoms[0].touches(island.geoms[1])


@settings(max_examples=120, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    density=st.floats(0.1, 0.9),
    res=st.sampled_from([100.0, 30.0, 33.3, 0.7]),
)
def test_random_masks_equal_rasterio(seed, density, res):
    """Random masks: many saddles, holes, islands in holes, cells on the grid's edges."""
    rng = np.random.default_rng(seed)
    shape = tuple(rng.integers(1, 45, size=2))
    mask = rng.random(shape) < density
    grid = _grid(shape, res=res, x0=212_345.678, y0=1_234_567.891)
    traced = polygonize_mask(mask, grid, chunks=(7, 5))
    _assert_same(polygonize_mask(mask, grid), traced, mask.sum() * grid.cell_area_m2)
    chunks = tuple(int(c) for c in rng.integers(1, 10, size=2))
    assert shapely.to_wkb(traced) == shapely.to_wkb(_rasterio_tiled_mask(mask, grid, chunks))


def test_random_masks_have_what_the_cases_need():
    """The random masks above do make holes, islands in holes and saddles (else they prove
    little): counted on a few seeds of middling density."""
    holes = islands = saddles = 0
    for seed in range(10):
        mask = np.random.default_rng(seed).random((40, 40)) < 0.55
        g = polygonize_mask(mask, _grid(mask.shape), chunks=8)
        parts = shapely.get_parts(g)
        holes += int(shapely.get_num_interior_rings(parts).sum())
        shells = shapely.polygons(shapely.get_exterior_ring(parts))
        islands += int((shapely.STRtree(shells).query(shells, "contains_properly")[0]).size)
        m = mask.astype(int)
        nw, ne, sw, se = m[:-1, :-1], m[:-1, 1:], m[1:, :-1], m[1:, 1:]
        saddles += int(((nw == se) & (ne == sw) & (nw != ne)).sum())
    assert holes > 50
    assert islands > 5
    assert saddles > 100


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), values=st.integers(1, 5))
def test_random_label_rasters_equal_rasterio(seed, values):
    """Labels of several values touching one another, a label spread over several polygons,
    labels without cells, and values outside 1..n (ignored)."""
    rng = np.random.default_rng(seed)
    shape = tuple(rng.integers(1, 35, size=2))
    labels = (rng.random(shape) < rng.uniform(0.2, 0.9)) * rng.integers(1, values + 1, shape)
    labels[rng.random(shape) < 0.03] = values + 1  # not asked for
    labels[rng.random(shape) < 0.03] = -1
    labels = labels.astype(np.int32)
    grid = _grid(shape)
    asked = np.where((labels >= 1) & (labels <= values), labels, 0)  # (the reference's input)
    whole = polygonize_labels(asked, grid, values)
    traced = polygonize_labels(labels, grid, values, chunks=4)
    assert list(traced["label"]) == list(range(1, values + 1))
    assert traced.crs == whole.crs
    for k, (a, b) in enumerate(zip(whole.geometry, traced.geometry, strict=True)):
        _assert_same(a, b, (labels == k + 1).sum() * grid.cell_area_m2)


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), diagonal=st.booleans())
def test_regions_equal_rasterio_per_region(seed, diagonal):
    """Regions found chunk by chunk, their polygons traced on the whole mask: the rasterio
    polygons of each region of the whole-grid label raster (8-connected: a MultiPolygon of the
    4-connected polygons touching at corners)."""
    rng = np.random.default_rng(seed)
    shape = tuple(rng.integers(1, 40, size=2))
    mask = rng.random(shape) < rng.uniform(0.1, 0.9)
    grid = _grid(shape)
    labels, n = label_regions(mask, diagonal=diagonal)
    regions = tiled_regions(mask, diagonal=diagonal, chunks=(5, 6), polygons=True)
    assert regions.n == n
    whole = polygonize_labels(labels, grid, n).geometry
    cells = np.bincount(labels.ravel(), minlength=n + 1)[1:]
    traced = regions.polygons(np.arange(1, n + 1), grid)
    for k, (a, b) in enumerate(zip(whole, traced, strict=True)):
        _assert_same(a, b, cells[k] * grid.cell_area_m2)
    pick = rng.permutation(n)[: n // 2] + 1  # a subset, in any order
    assert list(shapely.to_wkb(regions.polygons(pick, grid))) == list(
        shapely.to_wkb(traced[pick - 1])
    )


def test_checkerboard_regions_are_multipolygons():
    mask = np.add.outer(np.arange(6), np.arange(6)) % 2 == 0
    regions = tiled_regions(mask, diagonal=True, chunks=4, polygons=True)
    (geom,) = regions.polygons(np.array([1]), _grid(mask.shape))
    assert regions.n == 1
    assert geom.geom_type == "MultiPolygon"
    assert len(geom.geoms) == 18


# -- the kernels --------------------------------------------------------------------------


def _runs(values):
    """Runs, their components, and the components painted back on the grid."""
    row_start, c0, c1, value = find_runs(values)
    comp = label_runs(row_start, c0, c1, value)
    painted = np.zeros(values.shape, dtype=np.int64)
    for r in range(values.shape[0]):
        for k in range(row_start[r], row_start[r + 1]):
            painted[r, c0[k] : c1[k]] = comp[k]
    return (row_start, c0, c1, comp), value, painted


@settings(max_examples=80, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), values=st.integers(1, 4))
def test_runs_and_their_components_are_scipy_per_value(seed, values):
    """The runs cover the non-zero cells with their values; the components of equal values are
    scipy's 4-connected labels of each value's mask, numbered in the order of their first
    cell."""
    rng = np.random.default_rng(seed)
    shape = tuple(rng.integers(1, 40, size=2))
    v = (rng.random(shape) < rng.uniform(0.1, 0.95)) * rng.integers(1, values + 1, shape)
    v = v.astype(np.int32)
    (_, c0, c1, comp), run_value, painted = _runs(v)
    assert comp.dtype == np.int32
    np.testing.assert_array_equal(painted == 0, v == 0)
    lengths = c1 - c0
    assert (lengths > 0).all()
    np.testing.assert_array_equal(np.repeat(run_value, lengths), v[v != 0])
    flat = painted.ravel()
    for value in range(1, values + 1):
        ref, n = ndimage.label(v == value)
        inside = ref.ravel() > 0
        pairs = np.unique(np.stack([ref.ravel()[inside], flat[inside]]), axis=1)
        assert pairs.shape[1] == n  # the same partition
    # numbered 1.. in the raster order of their first cell (each the index of its first run)
    _, first = np.unique(flat, return_index=True)
    seen = flat[np.sort(first)]
    seen = seen[seen > 0]
    assert (np.diff(seen) > 0).all()


def test_trace_rings_of_a_ring_with_a_leak():
    """Ring by ring: the shell (first), its hole touching it at (3, 3), corners only, closed."""
    runs, _, painted = _runs(_ring_with_leak().view(np.uint8))
    x, y, starts, ring_comp, shell, contacts = trace_rings(*runs, 6, True)
    assert shell.tolist() == [True, False]
    assert ring_comp.tolist() == [painted[1, 1]] * 2
    rings = [list(zip(x[a:b], y[a:b], strict=True)) for a, b in itertools.pairwise(starts)]
    assert all(r[0] == r[-1] for r in rings)
    assert sorted(rings[0][:-1]) == sorted([(1, 1), (4, 1), (4, 3), (3, 3), (3, 4), (1, 4)])
    assert sorted(rings[1][:-1]) == sorted([(2, 2), (3, 2), (3, 3), (2, 3)])
    assert contacts.shape == (0, 2)


def test_trace_rings_reports_corner_contacts():
    mask = np.array([[1, 0, 0], [0, 1, 1], [1, 0, 0]], dtype=np.uint8)
    runs, _, painted = _runs(mask)
    contacts = trace_rings(*runs, 3, True)[5]
    pairs = {tuple(sorted(p)) for p in contacts.tolist()}
    assert pairs == {(painted[0, 0], painted[1, 1]), (painted[1, 1], painted[2, 0])}
    assert len(set(painted[mask > 0])) == 3
    assert trace_rings(*runs, 3, False)[5].shape == (0, 2)


def test_bad_chunks_are_explained_without_a_client_too():
    """The chunk shape is not used in this process, but still checked."""
    mask = np.ones((4, 4), dtype=bool)
    for bad in (0, (2, 0), (2, 2.5), True):
        with pytest.raises(ValueError, match="chunks must be a positive number"):
            polygonize_mask(mask, _grid(mask.shape), chunks=bad)
        with pytest.raises(ValueError, match="chunks must be a positive number"):
            polygonize_labels(mask.astype(np.int32), _grid(mask.shape), 1, chunks=bad)
