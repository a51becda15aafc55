"""The land-use layer as polygons: classes by name, nesting, edges, numbers, bad files."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pytest
from shapely.geometry import Point, box

from telcoplan.errors import CRSError, InputFileError, LayerValidationError
from telcoplan.gis.grid import GridSpec
from telcoplan.gis.raster import write_raster
from telcoplan.gis.vector import write_vector
from telcoplan.layers.land_use import land_use_at_points, land_use_on_grid
from tests.conftest import UTM49, X0, Y0

GRID = GridSpec.from_bounds((X0, Y0, X0 + 1000, Y0 + 1000), 100.0, UTM49)


def classes_of(codes, names):
    return np.array([names[c] if np.isfinite(c) else None for c in codes.ravel()]).reshape(
        codes.shape
    )


def write(tmp_path, classes, geoms, crs=UTM49, name="lu.gpkg"):
    path = tmp_path / name
    write_vector(
        path, gpd.GeoDataFrame({"landuse": classes}, geometry=geoms, crs=crs), overwrite=True
    )
    return path


def test_nested_polygons_the_smallest_wins_on_the_grid_and_at_points(tmp_path):
    """A park inside a residential area: listed first or last, the park keeps its cells."""
    big = box(X0, Y0, X0 + 1000, Y0 + 1000)
    park = box(X0 + 200, Y0 + 200, X0 + 400, Y0 + 400)
    for order in ([("park", park), ("residential", big)], [("residential", big), ("park", park)]):
        path = write(tmp_path, [c for c, _ in order], [g for _, g in order])
        codes, names = land_use_on_grid(path, GRID, column="landuse")
        got = classes_of(codes, names)
        assert (got[6:8, 2:4] == "park").all()  # rows from the north: y 200–400 m
        assert (got == "park").sum() == 4
        assert (got == "residential").sum() == 96
        pts = gpd.GeoDataFrame(
            geometry=[Point(X0 + 300, Y0 + 300), Point(X0 + 700, Y0 + 700)], crs=UTM49
        )
        at, names = land_use_at_points(path, pts, column="landuse")
        assert [names[c] for c in at] == ["park", "residential"]


def test_a_point_on_an_edge_is_classed_as_the_grid_classes_a_centre(tmp_path):
    """Two polygons sharing the edge x = X0 + 450 (a line of cell centres): the grid gives
    those centres the later (here: the smaller) polygon; a point there gets the same."""
    west = box(X0, Y0, X0 + 450, Y0 + 1000)
    east = box(X0 + 450, Y0, X0 + 1000, Y0 + 1000)
    path = write(tmp_path, ["open", "urban"], [east, west])  # west is smaller: it wins
    codes, names = land_use_on_grid(path, GRID, column="landuse")
    on_edge = classes_of(codes, names)[:, 4]
    pts = gpd.GeoDataFrame(geometry=[Point(X0 + 450, Y0 + 550)], crs=UTM49)
    at, names_at = land_use_at_points(path, pts, column="landuse")
    assert np.isfinite(at).all()
    assert names_at[at[0]] == on_edge[4]


def test_numeric_classes_are_named_like_raster_codes(tmp_path):
    path = tmp_path / "lu.gpkg"
    geoms = [
        box(X0, Y0, X0 + 500, Y0 + 1000),
        box(X0, Y0, X0 + 1000, Y0 + 1000),
        box(X0 + 500, Y0, X0 + 1000, Y0 + 1000),
    ]
    write_vector(path, gpd.GeoDataFrame({"code": [10.0, None, 20.0]}, geometry=geoms, crs=UTM49))
    codes, names = land_use_on_grid(path, GRID, column="code")
    assert sorted(names.values()) == ["10", "20"]
    assert np.isfinite(codes).all()


def test_bad_land_use_files_are_clean_errors(tmp_path):
    everywhere = box(X0, Y0, X0 + 1000, Y0 + 1000)
    # every class empty: no class over the study area
    path = write(tmp_path, [None, ""], [everywhere, everywhere])
    with pytest.raises(LayerValidationError, match="no class over the study area"):
        land_use_on_grid(path, GRID, column="landuse")
    # no CRS
    naive = tmp_path / "naive.geojson"
    naive.write_text(
        '{"type": "FeatureCollection", "features": [{"type": "Feature", "properties": '
        '{"landuse": "forest"}, "geometry": {"type": "Point", "coordinates": [1, 2]}}]}'
    )
    with pytest.raises((CRSError, LayerValidationError)):
        land_use_on_grid(naive, GRID, column="landuse")
    # classed points are refused; unclassed ones (OSM exports carry them) are left out
    path = write(tmp_path, ["forest", None], [everywhere, Point(X0, Y0)], name="mixed.gpkg")
    _, names = land_use_on_grid(path, GRID, column="landuse")
    assert set(names.values()) == {"forest"}
    path = write(tmp_path, ["forest", "pole"], [everywhere, Point(X0, Y0)], name="pts.gpkg")
    with pytest.raises(LayerValidationError, match="must be polygons, found Point, Polygon"):
        land_use_on_grid(path, GRID, column="landuse")
    # the geometry is not a class column; a raster takes no class column
    with pytest.raises(LayerValidationError, match="class column 'geometry' is missing"):
        land_use_on_grid(path, GRID, column="geometry")
    write_raster(tmp_path / "lu.tif", np.ones(GRID.shape), GRID)
    with pytest.raises(InputFileError, match="only applies to land-use polygons"):
        land_use_on_grid(tmp_path / "lu.tif", GRID, column="landuse")
