"""The map's faster paths give the same results as the plain calls they replace: part-by-part
topology-preserving simplification against GEOS on whole multipolygons, co-located operators
against a per-tower loop, signal images quantised by bands against the whole image, and the
thread helpers."""

from __future__ import annotations

import base64

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from scipy.ndimage import binary_dilation
from shapely.geometry import Point, box

from telcoplan.maps._raster import encode_png_palette, level_values, palette, png_uri, quantise
from telcoplan.maps._simplify import PARTS_FROM, simplify_polygons
from telcoplan.maps._style import operators_at_location
from telcoplan.maps._threads import balanced_chunks, map_chunks, thread_map


def _coverage_like(seed: int, size: int = 160, cell: float = 100.0) -> shapely.MultiPolygon:
    """A multipolygon as the coverage stage makes them: the union of the cells of a random
    blobby mask, with holes, islands in holes and parts that touch at corners (staircase
    edges of ``cell`` m)."""
    rng = np.random.default_rng(seed)
    mask = rng.random((size, size)) < 0.035
    mask = binary_dilation(mask, iterations=int(rng.integers(1, 4)))
    mask ^= rng.random((size, size)) < 0.04  # specks and pinholes
    r, c = np.nonzero(mask)
    x0, y0 = 500_000.0, 1_800_000.0
    cells = shapely.box(x0 + c * cell, y0 - (r + 1) * cell, x0 + (c + 1) * cell, y0 - r * cell)
    merged = shapely.coverage_union_all(cells)
    assert merged.geom_type == "MultiPolygon"
    assert len(merged.geoms) >= PARTS_FROM
    return merged


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("tolerance", [60.0, 200.0, 450.0])
def test_part_by_part_simplification_is_geos_vertex_for_vertex(seed: int, tolerance: float) -> None:
    geom = _coverage_like(seed)
    want = shapely.simplify(geom, tolerance, preserve_topology=True)
    # the case needs the grouping: some parts simplified alone differ from the whole's
    alone = shapely.simplify(shapely.get_parts(geom), tolerance, preserve_topology=True)
    assert any(not a.equals_exact(b, 0.0) for a, b in zip(alone, want.geoms, strict=True))
    got = simplify_polygons(np.array([geom, box(0, 0, 1, 1), None], dtype=object), tolerance)
    assert got[0].wkb == want.wkb
    assert got[1].wkb == shapely.simplify(box(0, 0, 1, 1), tolerance, preserve_topology=True).wkb
    assert got[2] is None


def test_few_parts_z_and_empty_parts_go_to_geos_as_they_are() -> None:
    few = shapely.MultiPolygon([box(0, 0, 10, 10), box(20, 0, 30, 10)])
    z = shapely.force_3d(_coverage_like(5))
    for geom in (few, z):
        got = simplify_polygons(np.array([geom], dtype=object), 150.0)[0]
        assert got.wkb == shapely.simplify(geom, 150.0, preserve_topology=True).wkb


def _colocated_reference(towers: gpd.GeoDataFrame, tolerance_m: float) -> pd.Series:
    """The per-tower loop operators_at_location replaced."""
    key = pd.Series(
        [
            None
            if g is None or g.is_empty
            else (round(g.x / tolerance_m), round(g.y / tolerance_m))
            for g in towers.geometry
        ],
        index=towers.index,
    )
    frame = pd.DataFrame({"key": key, "op": towers["operator"].astype(str)})
    counts = frame.dropna(subset=["key"]).groupby("key")["op"].nunique()
    return key.map(counts).fillna(1).astype(int)


def test_operators_at_location_matches_the_per_tower_loop() -> None:
    rng = np.random.default_rng(3)
    n = 3_000
    xy = rng.integers(0, 40, size=(n, 2)) * 1.0 + rng.choice([0.0, 0.5, 0.49, 1.5], size=(n, 2))
    geoms = [Point(x, y) for x, y in xy]
    geoms[5] = None
    geoms[9] = Point()
    index = pd.Index([f"S{i}" for i in range(n)], name="site_id")
    towers = gpd.GeoDataFrame(
        {"operator": rng.choice(["A", "B", "C", None], size=n)},
        geometry=gpd.GeoSeries(geoms, index=index, crs="EPSG:32648"),
        index=index,
    )
    for tolerance in (1.0, 2.0):
        got = operators_at_location(towers, tolerance)
        want = _colocated_reference(towers, tolerance)
        pd.testing.assert_series_equal(got, want, check_names=False)
        assert got.max() >= 3


def test_balanced_chunks_cover_every_position_once() -> None:
    weights = np.array([100.0, 1, 1, 1, 50, 50, 3, 0])
    chunks = balanced_chunks(weights, 3)
    assert sorted(np.concatenate(chunks).tolist()) == list(range(len(weights)))
    assert all(len(c) and (np.diff(c) > 0).all() for c in chunks)
    assert max(weights[c].sum() for c in chunks) == 100.0  # the heaviest item alone
    assert balanced_chunks(np.array([])) == []
    assert [c.tolist() for c in balanced_chunks(np.ones(3), 1)] == [[0, 1, 2]]


def test_thread_helpers_keep_the_order_of_the_items() -> None:
    assert thread_map(lambda x: x * x, range(50)) == [x * x for x in range(50)]
    lines = np.array(
        [shapely.LineString([(0, k), (1, k), (2, k)]) for k in range(40)] + [None], dtype=object
    )
    got = map_chunks(shapely.line_merge, lines, shapely.get_num_coordinates(lines))
    want = shapely.line_merge(lines)
    assert all(
        (a is None and b is None) or a.equals_exact(b, 0.0) for a, b in zip(got, want, strict=True)
    )


def test_png_uri_quantises_by_bands_as_the_whole_image() -> None:
    rng = np.random.default_rng(11)
    warped = rng.uniform(-130.0, -40.0, size=(600, 37)).astype(np.float32)
    warped[rng.random(warped.shape) < 0.2] = np.nan
    vmin, vmax, step = -120.0, -50.0, 1.0
    n = len(level_values(vmin, vmax, step)) - 1
    rgb = np.vstack([np.zeros((1, 3), np.uint8), palette(n)])
    alpha = np.full(n + 1, 255, dtype=np.uint8)
    alpha[0] = 0
    png = encode_png_palette(quantise(warped, vmin, vmax, step), rgb, alpha)
    want = "data:image/png;base64," + base64.b64encode(png).decode("ascii")
    assert png_uri(warped, vmin, vmax, step) == want
