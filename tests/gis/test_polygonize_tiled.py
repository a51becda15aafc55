"""Tiled labelling and polygonizing (chunk by chunk, in-process and on a 2-worker Dask cluster).

References: :func:`scipy.ndimage.label` on the whole mask for the labels (numbering included),
``np.bincount`` on the whole label raster for counts and sums, and rasterio's polygons of the
whole grid unioned by shapely (the whole-grid :func:`polygonize_labels`) for the geometries.
"""

from __future__ import annotations

import numpy as np
import pytest
import shapely
from affine import Affine
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from scipy import ndimage

from telcoplan.gis.grid import GridSpec
from telcoplan.gis.polygonize import (
    label_regions,
    polygonize_labels,
    polygonize_mask,
    tiled_regions,
)


def _grid(shape, res=100.0, x0=830_000.0, y0=1_780_000.0) -> GridSpec:
    """A north-up grid of ``shape`` cells in UTM 49N with its upper-left corner at (x0, y0)."""
    return GridSpec(
        crs="EPSG:32649",
        transform=Affine(res, 0.0, x0, 0.0, -res, y0),
        width=int(shape[1]),
        height=int(shape[0]),
    )


def _scipy(mask, diagonal):
    structure = np.ones((3, 3), dtype=bool) if diagonal else None
    return ndimage.label(mask, structure=structure)


def _straight_vertices(geom) -> int:
    """Vertices in the middle of a straight (axis-parallel) edge, over all rings."""
    count = 0
    for ring in shapely.get_rings(shapely.get_parts(geom)):
        xy = shapely.get_coordinates(ring)[:-1]
        b, a = np.roll(xy, 1, axis=0), np.roll(xy, -1, axis=0)
        same_x = (b[:, 0] == xy[:, 0]) & (xy[:, 0] == a[:, 0])
        same_y = (b[:, 1] == xy[:, 1]) & (xy[:, 1] == a[:, 1])
        count += int((same_x | same_y).sum())
    return count


def _assert_same_polygons(whole, tiled, cells=None, cell_area=None):
    """Tiled geometries equal the whole-grid ones: topologically, in area, and vertex for
    vertex once both are normalized; valid; no vertex left on a straight edge."""
    assert len(whole) == len(tiled)
    for k, (a, b) in enumerate(zip(whole, tiled, strict=True)):
        assert shapely.equals(a, b) or (a.is_empty and b.is_empty), k
        assert b.is_valid, k
        assert b.area == pytest.approx(a.area, rel=1e-12, abs=0.0)
        if cells is not None:
            assert b.area == pytest.approx(cells[k] * cell_area, rel=1e-12)
        assert shapely.equals_exact(shapely.normalize(a), b, tolerance=0.0), k
        assert _straight_vertices(b) == 0, k


def _snake(h, w):
    """One 4-connected serpentine region: full rows joined at alternating ends."""
    m = np.zeros((h, w), dtype=bool)
    m[::2] = True
    m[1::4, -1] = True
    m[3::4, 0] = True
    return m


def _spiral(n):
    """A square spiral path (one 4-connected region, a gap of one cell between its turns)."""
    m = np.zeros((n, n), dtype=bool)
    top, left, bottom, right = 0, 0, n - 1, n - 1
    while top <= bottom and left <= right:
        m[top, left : right + 1] = True
        m[top : bottom + 1, right] = True
        if bottom - top >= 2:
            m[bottom, left : right + 1] = True
        if right - left >= 2 and bottom - top >= 4:
            m[top + 2 : bottom + 1, left] = True
            m[top + 2, left : left + 3] = True
        top, left, bottom, right = top + 2, left + 2, bottom - 2, right - 2
    return m


def _corner_diagonals(n, k):
    """Cells on the diagonal and the anti-diagonal of an n × n grid: with chunks of k × k
    (k dividing n) they cross the chunk borders exactly at the chunks' corners, where the
    regions hold together only through diagonal contacts."""
    m = np.zeros((n, n), dtype=bool)
    i = np.arange(n)
    m[i, i] = True
    m[i, n - 1 - i] = True
    m[0, n // 2] = True  # a lone cell
    return m


STRUCTURED = {
    "snake": _snake(23, 17),
    "spiral": _spiral(25),
    "corner_diagonals": _corner_diagonals(24, 4),
    "checkerboard": (np.add.outer(np.arange(18), np.arange(21)) % 2 == 0),
    "empty": np.zeros((7, 9), dtype=bool),
    "full": np.ones((7, 9), dtype=bool),
}
CHUNKS = [1, (1, 5), (5, 1), (2, 3), 4, (7, 5), (100, 3), 1000]


@pytest.mark.parametrize("name", sorted(STRUCTURED))
@pytest.mark.parametrize("chunks", CHUNKS)
@pytest.mark.parametrize("diagonal", [False, True])
def test_tiled_labels_equal_whole_grid_labels(name, chunks, diagonal):
    mask = STRUCTURED[name]
    before = mask.copy()
    ref, n_ref = _scipy(mask, diagonal)
    labels, n = label_regions(mask, diagonal=diagonal, chunks=chunks)
    assert n == n_ref
    np.testing.assert_array_equal(labels, ref)
    assert labels.dtype == np.int32
    np.testing.assert_array_equal(mask, before)  # input unmodified


def test_structured_masks_cross_borders_as_meant():
    """The structured cases do what their names say (else the tests above prove little)."""
    assert _scipy(STRUCTURED["snake"], False)[1] == 1
    assert _scipy(STRUCTURED["spiral"], False)[1] == 1
    diag = STRUCTURED["corner_diagonals"]
    assert _scipy(diag, True)[1] == 2  # the crossing diagonals, and the lone cell
    # no two cells share an edge but the 2 x 2 block where the diagonals cross
    assert _scipy(diag, False)[1] == int(diag.sum()) - 3
    # the diagonal passes each chunk corner (4k-1, 4k-1) -> (4k, 4k) of 4 x 4 chunks
    assert diag[3, 3]
    assert diag[4, 4]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    mask=hnp.arrays(bool, hnp.array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=24)),
    rows=st.integers(1, 9),
    cols=st.integers(1, 9),
    diagonal=st.booleans(),
)
def test_tiled_labels_property(mask, rows, cols, diagonal):
    ref, n_ref = _scipy(mask, diagonal)
    labels, n = label_regions(mask, diagonal=diagonal, chunks=(rows, cols))
    assert n == n_ref
    np.testing.assert_array_equal(labels, ref)


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    density=st.floats(0.2, 0.8),
    rows=st.integers(1, 8),
    cols=st.integers(1, 8),
)
def test_tiled_counts_sums_and_labels_property(seed, density, rows, cols):
    """Random masks of realistic density with random weights: counts exact, sums to 1e-12."""
    rng = np.random.default_rng(seed)
    shape = tuple(rng.integers(1, 30, size=2))
    mask = rng.random(shape) < density
    weights = rng.gamma(0.5, 40.0, size=shape)
    ref, n = _scipy(mask, True)
    regions = tiled_regions(
        mask, weights=weights, diagonal=True, chunks=(rows, cols), with_labels=True
    )
    assert regions.n == n
    np.testing.assert_array_equal(regions.labels, ref)
    np.testing.assert_array_equal(regions.cells, np.bincount(ref.ravel(), minlength=n + 1)[1:])
    expected = np.bincount(ref.ravel(), weights=weights.ravel(), minlength=n + 1)[1:]
    np.testing.assert_allclose(regions.weights, expected, rtol=1e-12, atol=0.0)


@pytest.mark.parametrize("name", ["snake", "spiral", "corner_diagonals", "checkerboard", "full"])
@pytest.mark.parametrize("chunks", [1, (2, 3), (7, 5), (100, 4)])
def test_tiled_polygons_equal_whole_grid_polygons(name, chunks):
    mask = STRUCTURED[name]
    grid = _grid(mask.shape)
    labels, n = label_regions(mask, diagonal=True)
    whole = polygonize_labels(labels, grid, n)
    tiled = polygonize_labels(labels, grid, n, chunks=chunks)
    assert list(tiled["label"]) == list(range(1, n + 1))
    assert tiled.crs == whole.crs
    cells = np.bincount(labels.ravel(), minlength=n + 1)[1:]
    _assert_same_polygons(whole.geometry, tiled.geometry, cells, grid.cell_area_m2)
    m_whole = polygonize_mask(mask, grid)
    m_tiled = polygonize_mask(mask, grid, chunks=chunks)
    _assert_same_polygons([m_whole], [m_tiled], [int(mask.sum())], grid.cell_area_m2)


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    rows=st.integers(1, 10),
    cols=st.integers(1, 10),
    res=st.sampled_from([100.0, 30.0, 33.3, 0.7]),
)
def test_tiled_polygons_property(seed, rows, cols, res):
    """Random masks, chunkings and awkward cell sizes / origins: the same vertices."""
    rng = np.random.default_rng(seed)
    shape = tuple(rng.integers(1, 32, size=2))
    mask = rng.random(shape) < rng.uniform(0.2, 0.8)
    grid = _grid(shape, res=res, x0=212_345.678, y0=1_234_567.891)
    labels, n = label_regions(mask, diagonal=True)
    regions = tiled_regions(mask, diagonal=True, chunks=(rows, cols), polygons=True)
    tiled = regions.polygons(np.arange(1, n + 1), grid)
    whole = polygonize_labels(labels, grid, n).geometry
    _assert_same_polygons(whole, tiled)
    # a subset, in any order, is the same geometries
    pick = rng.permutation(n)[: n // 2] + 1
    _assert_same_polygons(whole.to_numpy()[pick - 1], regions.polygons(pick, grid))


def test_polygonize_labels_tiled_handles_labels_of_several_regions():
    """A label raster not made by label_regions: one label spread over separate blocks."""
    labels = np.zeros((12, 14), dtype=np.int32)
    labels[0:3, 0:3] = 1
    labels[8:12, 9:14] = 1
    labels[4:9, 2:10] = 2
    labels[5:7, 4:6] = 0  # a hole
    labels[5, 5] = 3  # inside the hole, touching nothing
    grid = _grid(labels.shape)
    whole = polygonize_labels(labels, grid, 4)  # label 4 has no cell: an empty polygon
    tiled = polygonize_labels(labels, grid, 4, chunks=(5, 4))
    _assert_same_polygons(whole.geometry, tiled.geometry)
    assert tiled.geometry.iloc[3].is_empty
    assert tiled.geometry.iloc[0].geom_type == "MultiPolygon"
    assert len(tiled.geometry.iloc[1].interiors) == 1


def test_bad_chunks_and_shapes_are_explained():
    mask = np.ones((4, 4), dtype=bool)
    for bad in (0, (2, 0), (2, 2.5), (1, 2, 3), True):
        with pytest.raises(ValueError, match="chunks must be a positive number"):
            label_regions(mask, chunks=bad)
    with pytest.raises(ValueError, match=r"weights shape \(3, 4\) does not match"):
        tiled_regions(mask, weights=np.ones((3, 4)))
    with pytest.raises(ValueError, match="without polygons"):
        tiled_regions(mask).polygons(np.array([1]), _grid(mask.shape))
    with pytest.raises(ValueError, match="does not match grid shape"):
        polygonize_labels(mask.astype(np.int32), _grid((5, 4)), 1, chunks=2)


# -- on a LocalCluster of 2 worker processes ------------------------------------------------


@pytest.mark.parametrize("chunks", [(16, 1), (7, 5), None])
def test_on_dask_equals_whole_grid(dask_client, chunks):
    rng = np.random.default_rng(7)
    mask = ndimage.binary_opening(rng.random((31, 23)) < 0.6) | _spiral(31)[:, :23]
    weights = rng.gamma(0.5, 40.0, size=mask.shape)
    grid = _grid(mask.shape)
    ref, n = _scipy(mask, True)
    regions = tiled_regions(
        mask,
        weights=weights,
        diagonal=True,
        chunks=chunks,
        client=dask_client,
        polygons=True,
        with_labels=True,
    )
    assert regions.n == n
    np.testing.assert_array_equal(regions.labels, ref)
    np.testing.assert_array_equal(regions.cells, np.bincount(ref.ravel(), minlength=n + 1)[1:])
    expected = np.bincount(ref.ravel(), weights=weights.ravel(), minlength=n + 1)[1:]
    np.testing.assert_allclose(regions.weights, expected, rtol=1e-12, atol=0.0)
    whole = polygonize_labels(ref.astype(np.int32), grid, n).geometry
    _assert_same_polygons(whole, regions.polygons(np.arange(1, n + 1), grid))
    m_tiled = polygonize_mask(mask, grid, chunks=chunks, client=dask_client)
    _assert_same_polygons([polygonize_mask(mask, grid)], [m_tiled])
    labels4, n4 = label_regions(mask, chunks=chunks, client=dask_client)
    ref4, n_ref4 = _scipy(mask, False)
    assert n4 == n_ref4
    np.testing.assert_array_equal(labels4, ref4)


def test_on_dask_and_in_process_agree_exactly(dask_client_both_ways):
    """The same chunking gives bit-identical sums on the cluster (data through files or
    scattered) and in-process."""
    rng = np.random.default_rng(11)
    mask = rng.random((40, 50)) < 0.55
    weights = rng.random(mask.shape) * 1e3
    here = tiled_regions(mask, weights=weights, diagonal=True, chunks=(9, 8))
    there = tiled_regions(
        mask, weights=weights, diagonal=True, chunks=(9, 8), client=dask_client_both_ways
    )
    np.testing.assert_array_equal(here.weights, there.weights)
    np.testing.assert_array_equal(here.cells, there.cells)


class _FailsOnce:
    """A client whose ``fail_at``-th gather fails (a result lost with its worker), once; it
    records the keys of the tasks submitted."""

    def __init__(self, client, fail_at):
        self._client = client
        self.fail_at = fail_at
        self.gathers = 0
        self.keys = []

    def submit(self, fn, *args, **kw):
        self.keys.append(kw["key"])
        return self._client.submit(fn, *args, **kw)

    def gather(self, futures, **kw):
        self.gathers += 1
        if self.gathers == self.fail_at:
            raise RuntimeError("the result was lost with its worker")
        return self._client.gather(futures, **kw)

    def __getattr__(self, name):
        return getattr(self._client, name)


def test_the_chunks_not_done_are_sent_again_when_the_cluster_fails(dask_client_both_ways, caplog):
    """Two chunks' results are back when the third is lost: the 33 others go again (a new
    attempt: new keys), not the two, and the regions are the in-process ones."""
    import logging
    from collections import Counter
    from pathlib import Path

    rng = np.random.default_rng(5)
    mask = rng.random((40, 50)) < 0.55
    weights = rng.random(mask.shape) * 1e3
    here = tiled_regions(mask, weights=weights, diagonal=True, chunks=(9, 8), with_labels=True)
    client = _FailsOnce(dask_client_both_ways, fail_at=3)
    with caplog.at_level(logging.INFO, logger="telcoplan"):
        there = tiled_regions(
            mask, weights=weights, diagonal=True, chunks=(9, 8), client=client, with_labels=True
        )
    np.testing.assert_array_equal(here.labels, there.labels)
    np.testing.assert_array_equal(here.weights, there.weights)
    attempts = Counter(name for name, _ in client.keys)
    assert sorted(attempts.values(), reverse=True) == [35, 33]  # 5 x 7 chunks, then 33
    first, again = (sorted(i for name, i in client.keys if name == n) for n in attempts)
    assert set(again) < set(first)
    assert any("chunks sent again to the cluster" in r.getMessage() for r in caplog.records)
    # an error of the chunks' function is raised after the attempts
    from telcoplan.gis import polygonize

    def broken(value, box, shape):
        raise ZeroDivisionError(f"chunk {box}")

    client.keys.clear()
    with pytest.raises(ZeroDivisionError, match="chunk"):
        polygonize._map_chunks(broken, [(1,), (2,)], [(0, 1, 0, 1), (1, 2, 0, 1)], (2, 1), client)
    assert len({name for name, _ in client.keys}) == polygonize._CLUSTER_ATTEMPTS == 3
    import os
    import tempfile

    left = Path(tempfile.gettempdir()).glob(f"telcoplan-exchange-{os.getpid()}-*")
    assert list(left) == []
