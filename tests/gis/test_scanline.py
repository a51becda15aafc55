"""Polygon labels by scanlines against GDAL's rasteriser (rasterio.features.rasterize), cell for
cell, and against point-in-polygon on the cell centres."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pytest
import shapely
from rasterio import features
from shapely.geometry import MultiPolygon, Point, Polygon, box

from telcoplan.gis.grid import GridSpec
from telcoplan.gis.zonal import label_polygons

UTM49 = "EPSG:32649"
X0, Y0 = 500_000.0, 1_700_000.0


def gdal_labels(geoms, grid):
    shapes = [(g, i) for i, g in enumerate(geoms) if g is not None and not g.is_empty]
    return features.rasterize(
        shapes, out_shape=grid.shape, transform=grid.transform, fill=-1, dtype="int32"
    )


def random_shapes(rng, grid, n):
    """Stars, polygons with holes, multipolygons, slivers, overlapping and off-grid shapes."""
    xmin, ymin, xmax, ymax = grid.bounds
    w = xmax - xmin
    out = []
    for _ in range(n):
        cx, cy = rng.uniform(xmin - 0.1 * w, xmax + 0.1 * w), rng.uniform(ymin, ymax)
        k = rng.integers(3, 40)
        ang = np.sort(rng.uniform(0, 2 * np.pi, k))
        rad = rng.uniform(0.02, 0.3, k) * w
        star = Polygon(np.column_stack([cx + rad * np.cos(ang), cy + rad * np.sin(ang)])).buffer(0)
        kind = rng.integers(0, 4)
        if kind == 1:  # a hole
            star = star.difference(Point(cx, cy).buffer(0.02 * w))
        elif kind == 2:  # a multipolygon
            star = MultiPolygon(
                [star.buffer(0), box(cx, cy - 0.3 * w, cx + 0.05 * w, cy - 0.2 * w)]
            )
        elif kind == 3:  # a sliver thinner than a cell
            star = box(cx, cy, cx + 0.4 * w, cy + 0.3 * grid.resolution)
        out.append(star)
    return out


@pytest.mark.parametrize("seed", range(6))
def test_labels_equal_gdal_rasterize_cell_for_cell(seed):
    rng = np.random.default_rng(seed)
    grid = GridSpec.from_bounds((X0, Y0, X0 + 7_130, Y0 + 4_870), 37.0, UTM49)
    geoms = random_shapes(rng, grid, 25)
    geoms.insert(3, None)
    geoms.insert(7, Polygon())
    series = gpd.GeoSeries(geoms, crs=UTM49)
    got = label_polygons(series, grid)
    np.testing.assert_array_equal(got, gdal_labels(geoms, grid))


def test_a_voronoi_partition_labels_every_cell_once_like_gdal():
    rng = np.random.default_rng(1)
    grid = GridSpec.from_bounds((X0, Y0, X0 + 20_000, Y0 + 15_000), 50.0, UTM49)
    frame = box(*grid.bounds)
    pts = shapely.points(rng.uniform(X0, X0 + 20_000, 60), rng.uniform(Y0, Y0 + 15_000, 60))
    cells = shapely.voronoi_polygons(shapely.multipoints(pts), extend_to=frame)
    polys = [c.intersection(frame) for c in shapely.get_parts(cells)]
    got = label_polygons(gpd.GeoSeries(polys, crs=UTM49), grid)
    assert (got >= 0).all()
    np.testing.assert_array_equal(got, gdal_labels(polys, grid))


def test_labels_are_the_polygon_containing_each_cell_centre():
    rng = np.random.default_rng(5)
    grid = GridSpec.from_bounds((X0, Y0, X0 + 3_000, Y0 + 2_000), 25.0, UTM49)
    # valid shapes only: point-in-polygon is undefined on overlapping multipolygon parts (GDAL and
    # the scanlines fill each part: the test above)
    geoms = [g for g in random_shapes(rng, grid, 12) if g.is_valid]
    assert len(geoms) >= 6
    got = label_polygons(gpd.GeoSeries(geoms, crs=UTM49), grid)
    X, Y = grid.cell_centres()
    want = np.full(grid.shape, -1)
    for i, g in enumerate(geoms):  # later polygons win
        want[shapely.contains_xy(g, X, Y)] = i
    # a centre exactly on an edge is a matter of convention: none in random shapes
    np.testing.assert_array_equal(got, want)
