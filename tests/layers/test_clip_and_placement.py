"""Clipping to the study area, keeping features within a reach of it, generated ids, and one
message for a layer in the wrong CRS (layers/_loader.py, layers/_schema.py)."""

from __future__ import annotations

import logging

import geopandas as gpd
import pytest
import shapely
from shapely.geometry import LineString, Point, box

from telcoplan.errors import LayerValidationError
from telcoplan.gis.vector import write_vector
from telcoplan.layers.areas import load_areas
from telcoplan.layers.roads import load_roads
from telcoplan.layers.schemas import TOWERS
from telcoplan.layers.towers import load_towers
from tests.conftest import UTM49, X0, Y0


def _roads(lines, ids=None, crs=UTM49):
    ids = ids or [f"r{i}" for i in range(1, len(lines) + 1)]
    return gpd.GeoDataFrame(
        {"road_id": ids, "road_class": "primary"}, geometry=list(lines), crs=crs
    )


def test_clip_cuts_lines_at_the_study_area(tmp_path, areas4, caplog):
    """Lines crossing the (buffered) study area are cut at its edge: each kept length equals
    shapely's own intersection length; a line inside stays as it is, a line wholly outside is
    left out, one touching the edge at a point only is left out too; all counted."""
    study = areas4.geometry.buffer(200.0)  # the study area plus a 200 m margin
    lines = [
        LineString([(X0 + 100, Y0 + 100), (X0 + 900, Y0 + 100)]),  # inside
        LineString([(X0 + 500, Y0 + 500), (X0 + 400_000, Y0 + 500)]),  # 400 km east
        LineString([(X0 - 50_000, Y0 + 300), (X0 + 50_000, Y0 + 700)]),  # right across
        LineString([(X0 + 20_000, Y0), (X0 + 30_000, Y0)]),  # wholly outside
        LineString([(X0 + 1200, Y0 + 500), (X0 + 5000, Y0 + 500)]),  # starts on the edge
    ]
    write_vector(tmp_path / "roads.gpkg", _roads(lines))
    with caplog.at_level(logging.WARNING):
        roads = load_roads(tmp_path / "roads.gpkg", study_area=study, clip=True)
    assert list(roads.index) == ["r1", "r2", "r3"]
    area = shapely.union_all(study.to_numpy())
    for rid, line in zip(["r1", "r2", "r3"], lines, strict=False):
        assert roads.loc[rid].geometry.length == pytest.approx(
            shapely.intersection(line, area).length, rel=1e-12
        )
    assert roads.loc["r1"].geometry.equals_exact(lines[0], 0.0)  # inside: untouched
    assert roads.loc["r2"].geometry.length == pytest.approx(700.0, abs=0.01)  # to x0 + 1200
    assert roads.total_bounds[2] <= X0 + 1200 + 1e-6
    assert "1 of 5 roads features lie outside the study area and are left out" in caplog.text
    assert "2 roads features crossing the study area's edge are cut at it" in caplog.text
    assert "1 roads features only touch the study area's edge" in caplog.text


def test_clip_keeps_file_row_numbers_and_cuts_polygons(tmp_path, areas4):
    """A problem on a kept feature names its row in the file; polygons are cut too."""
    lines = [
        LineString([(X0 + 20_000, Y0), (X0 + 30_000, Y0)]),  # row 1: left out
        LineString([(X0 + 100, Y0 + 100), (X0 + 5000, Y0 + 100)]),  # row 2: kept, cut
    ]
    roads = _roads(lines)
    roads.loc[1, "road_class"] = "highway-ish"
    write_vector(tmp_path / "roads.gpkg", roads)
    with pytest.raises(LayerValidationError, match=r"row 2, id 'r2', column 'road_class'"):
        load_roads(tmp_path / "roads.gpkg", study_area=areas4, clip=True)
    big = gpd.GeoDataFrame(
        {"name": ["in", "across", "out"]},
        geometry=[
            box(X0 + 10, Y0 + 10, X0 + 90, Y0 + 90),
            box(X0 + 800, Y0 + 800, X0 + 3000, Y0 + 1500),
            box(X0 + 5000, Y0, X0 + 6000, Y0 + 1000),
        ],
        crs=UTM49,
    )
    write_vector(tmp_path / "zones.gpkg", big)
    cut = load_areas(tmp_path / "zones.gpkg", study_area=areas4, clip=True)
    assert list(cut.index) == ["in", "across"]
    assert cut.loc["across"].geometry.area == pytest.approx(200.0 * 200.0)


def test_clip_in_a_geographic_layer(tmp_path, areas4):
    """A WGS 84 file is cut at the (projected) study area: the cut part, back in UTM, has the
    length shapely gives for the line and the area in the layer's CRS."""
    line = LineString([(X0 + 500, Y0 + 500), (X0 + 60_000, Y0 + 500)])
    roads = _roads([line]).to_crs("EPSG:4326")
    write_vector(tmp_path / "roads.geojson", roads)
    got = load_roads(tmp_path / "roads.geojson", study_area=areas4, clip=True)
    area = shapely.union_all(areas4.to_crs("EPSG:4326").geometry.to_numpy())
    expected = shapely.intersection(roads.geometry.iloc[0], area)
    assert got.geometry.iloc[0].equals_exact(expected, 1e-12)
    assert got.to_crs(UTM49).geometry.iloc[0].length == pytest.approx(500.0, abs=0.5)


def test_ids_generate_accepts_missing_and_duplicate_ids(tmp_path, areas4):
    """A road file whose id repeats: an error by default; with ids='generate' the ids are the
    row numbers and the file's own are kept beside them."""
    lines = [LineString([(X0 + 100 * k, Y0 + 100), (X0 + 100 * k, Y0 + 900)]) for k in (1, 2, 3)]
    write_vector(tmp_path / "roads.gpkg", _roads(lines, ids=["7", "7", "8"]))
    with pytest.raises(LayerValidationError, match=r"row 2, id '7', column 'road_id'"):
        load_roads(tmp_path / "roads.gpkg")
    roads = load_roads(tmp_path / "roads.gpkg", ids="generate")
    assert list(roads.index) == ["roads-1", "roads-2", "roads-3"]
    assert list(roads["file_road_id"]) == ["7", "7", "8"]
    no_id = _roads(lines).drop(columns="road_id")
    write_vector(tmp_path / "noid.gpkg", no_id)
    assert list(load_roads(tmp_path / "noid.gpkg", ids="generate").index) == [
        "roads-1",
        "roads-2",
        "roads-3",
    ]


def _towers(points, freqs, crs=UTM49):
    n = len(points)
    return gpd.GeoDataFrame(
        {
            "site_id": [f"T{i}" for i in range(1, n + 1)],
            "operator": "Viettel",
            "technology": "4G",
            "frequency_mhz": freqs,
            "height_m": 30.0,
            "eirp_dbm": 60.0,
        },
        geometry=list(points),
        crs=crs,
    )


def test_reach_keeps_near_towers_and_drops_far_ones(tmp_path, areas4, caplog):
    """Towers outside the area within their reach are kept, farther ones left out, both
    counted; distances in metres (the area's east edge is at x0 + 1000)."""
    points = [
        Point(X0 + 500, Y0 + 500),  # inside
        Point(X0 + 1000 + 4_000, Y0 + 500),  # 4 km east
        Point(X0 + 1000 + 9_000, Y0 + 500),  # 9 km east
        Point(X0 + 1000 + 12_000, Y0 + 500),  # 12 km east
        Point(X0 + 1000 + 200_000, Y0 + 500),  # 200 km east
    ]
    freqs = [1800.0, 3500.0, 900.0, 1800.0, 900.0]
    write_vector(tmp_path / "towers.csv", _towers(points, freqs))
    radius_m = {900.0: 15_000.0, 1800.0: 10_000.0, 3500.0: 5_000.0}  # by hand, per band

    def reach(gdf):
        return gdf["frequency_mhz"].astype(float).map(radius_m).to_numpy()

    with caplog.at_level(logging.WARNING):
        towers = load_towers(
            tmp_path / "towers.csv", study_area=areas4, reach_m=reach, reach_name="radius"
        )
    assert list(towers.index) == ["T1", "T2", "T3"]  # T4: 12 km > 10 km, T5: 200 km > 15 km
    assert "2 of 5 towers features lie outside the study area but within their radius" in (
        caplog.text
    )
    assert "(up to 9,000 m away)" in caplog.text
    assert "2 of 5 towers features lie farther from the study area than their radius" in (
        caplog.text
    )
    assert "(12,000 m to 200,000 m away)" in caplog.text


def test_outside_distance_is_in_metres_in_a_geographic_layer(areas4):
    """'… outside the study area (N m away)' in metres, also for a lon/lat layer."""
    towers = _towers([Point(X0 + 500, Y0 + 500), Point(X0 + 1000 + 3000, Y0 + 500)], [1800.0] * 2)
    (p,) = TOWERS.problems(towers.to_crs("EPSG:4326"), study_area=areas4)
    assert p.row == 2
    assert "(3,000 m away)" in p.message
    assert "°" not in p.message


@pytest.mark.parametrize(
    ("mistake", "needle"),
    [
        ("utm_read_as_degrees", "read as EPSG:32649, they fall on the study area"),
        ("degrees_read_as_utm", "look like degrees (lon/lat), but the layer's CRS is EPSG:32649"),
        ("swapped", "look like swapped lat/lon"),
        ("far_away", "the nearest 1,"),
    ],
)
def test_a_crs_mistake_is_one_problem(tmp_path, areas4, mistake, needle):
    """Every feature in the wrong place (projected coordinates read as degrees, degrees read
    as metres, x and y swapped, another part of the world): exactly one problem line, which
    names the mistake; also when towers are loaded with a reach."""
    good = _towers([Point(X0 + 100 * k, Y0 + 100 * k) for k in range(1, 8)], [1800.0] * 7).to_crs(
        "EPSG:4326"
    )
    if mistake == "utm_read_as_degrees":
        bad = good.to_crs(UTM49).set_crs("EPSG:4326", allow_override=True)
    elif mistake == "degrees_read_as_utm":
        bad = good.set_crs(UTM49, allow_override=True)
    elif mistake == "swapped":
        bad = good.set_geometry(shapely.transform(good.geometry, lambda c: c[:, ::-1]))
    else:  # 1,000+ km away
        bad = good.set_geometry(good.geometry.translate(xoff=-12.0))
    problems = TOWERS.problems(bad, study_area=areas4)
    assert len(problems) == 1, problems
    assert problems[0].row is None
    assert needle in problems[0].message
    write_vector(tmp_path / "towers.gpkg", bad)
    with pytest.raises(LayerValidationError) as info:
        load_towers(tmp_path / "towers.gpkg", study_area=areas4, reach_m=15_000.0)
    assert str(info.value).count("\n  - ") == 1
    assert needle in str(info.value)


def test_the_crs_given_replaces_a_wrong_one_in_the_file(tmp_path, areas4, caplog):
    """The fix the message names works: `crs:` for the layer overrides the file's, warned."""
    good = _towers([Point(X0 + 100, Y0 + 100), Point(X0 + 900, Y0 + 900)], [1800.0] * 2)
    write_vector(tmp_path / "towers.gpkg", good.set_crs("EPSG:4326", allow_override=True))
    with caplog.at_level(logging.WARNING):
        towers = load_towers(tmp_path / "towers.gpkg", crs=UTM49, study_area=areas4)
    assert list(towers.index) == ["T1", "T2"]
    assert "the file says its CRS is EPSG:4326; it is read as EPSG:32649" in caplog.text
