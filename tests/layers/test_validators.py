"""One test per validator problem class, plus 'every problem at once'."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pytest
from shapely.geometry import LineString, Point, Polygon

from telcoplan.errors import LayerValidationError
from telcoplan.layers import towers as towers_layer
from telcoplan.layers.schemas import AREAS, POIS, ROADS, SCHEMAS, TOWERS
from tests.conftest import UTM49, X0, Y0, assert_unchanged


def _one(problems, column):
    hits = [p for p in problems if p.column == column]
    assert hits, f"no problem reported for {column}: {problems}"
    return hits


def test_valid_towers_have_no_problems(towers5, areas4):
    assert TOWERS.problems(towers5, study_area=areas4) == []


def test_missing_column(towers5):
    probs = TOWERS.problems(towers5.drop(columns=["eirp_dbm"]))
    (p,) = _one(probs, "eirp_dbm")
    assert p.row is None
    assert "missing" in p.message


def test_wrong_type(towers5):
    bad = towers5.astype({"height_m": object})
    bad.loc[2, "height_m"] = "tall"
    (p,) = _one(TOWERS.problems(bad), "height_m")
    assert p.row == 3
    assert p.feature_id == "VNP-1"
    assert "not a number" in p.message


def test_nan_value(towers5):
    bad = towers5.copy()
    bad.loc[1, "frequency_mhz"] = np.nan
    (p,) = _one(TOWERS.problems(bad), "frequency_mhz")
    assert p.row == 2
    assert "missing" in p.message


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("height_m", 0.0),
        ("height_m", 501.0),
        ("frequency_mhz", 99.0),
        ("frequency_mhz", 100_001.0),
        ("eirp_dbm", -31.0),
        ("eirp_dbm", 91.0),
    ],
)
def test_out_of_range(towers5, column, value):
    bad = towers5.copy()
    bad.loc[4, column] = value
    (p,) = _one(TOWERS.problems(bad), column)
    assert p.row == 5
    assert "out of range" in p.message


@pytest.mark.parametrize(
    ("column", "value"), [("height_m", 500.0), ("frequency_mhz", 100.0), ("eirp_dbm", 90.0)]
)
def test_range_bounds_inclusive(towers5, column, value):
    ok = towers5.copy()
    ok.loc[0, column] = value
    assert TOWERS.problems(ok) == []


def test_bad_choice(towers5):
    bad = towers5.copy()
    bad.loc[0, "technology"] = "6G"
    (p,) = _one(TOWERS.problems(bad), "technology")
    assert "not allowed" in p.message


def test_duplicate_ids(towers5):
    bad = towers5.copy()
    bad.loc[3, "site_id"] = "VT-1"
    (p,) = _one(TOWERS.problems(bad), "site_id")
    assert p.row == 4
    assert "duplicate" in p.message
    assert "row 1" in p.message


def test_empty_and_missing_geometry(towers5):
    bad = towers5.copy()
    bad.loc[0, "geometry"] = Point()
    bad.loc[1, "geometry"] = None
    probs = _one(TOWERS.problems(bad), "geometry")
    assert {p.row for p in probs} == {1, 2}


def test_invalid_geometry():
    bowtie = Polygon([(X0, Y0), (X0 + 10, Y0 + 10), (X0 + 10, Y0), (X0, Y0 + 10)])
    gdf = gpd.GeoDataFrame({"name": ["bow"]}, geometry=[bowtie], crs=UTM49)
    (p,) = _one(AREAS.problems(gdf), "geometry")
    assert "invalid geometry" in p.message
    assert "Self-intersection" in p.message


def test_wrong_geometry_type(towers5):
    gdf = gpd.GeoDataFrame(
        {"road_id": ["a"], "road_class": ["primary"]}, geometry=[Point(X0, Y0)], crs=UTM49
    )
    (p,) = _one(ROADS.problems(gdf), "geometry")
    assert "Point" in p.message
    assert "LineString" in p.message
    assert POIS.problems(
        gpd.GeoDataFrame(
            {"poi_id": ["p"], "name": ["x"], "category": ["school"]},
            geometry=[LineString([(0, 0), (1, 1)])],
            crs=UTM49,
        )
    ), "a line is not a POI"


def test_missing_crs(towers5):
    probs = TOWERS.problems(towers5.set_crs(None, allow_override=True))
    assert any(p.row is None and "no CRS" in p.message for p in probs)


def test_swapped_lat_lon_geographic(towers5):
    ll = towers5.to_crs("EPSG:4326")
    ll.loc[2, "geometry"] = Point(ll.geometry.iloc[2].y, ll.geometry.iloc[2].x)
    (p,) = _one(TOWERS.problems(ll), "geometry")
    assert p.row == 3
    assert "swapped" in p.message


def test_swapped_easting_northing_against_study_area(towers5, areas4):
    """In a projected CRS only the study area reveals swapped x/y: the swapped point falls inside it."""
    bad = towers5.copy()
    g = bad.geometry.iloc[1]
    bad.loc[1, "geometry"] = Point(g.y, g.x)
    (p,) = _one(TOWERS.problems(bad, study_area=areas4), "geometry")
    assert p.row == 2
    assert "swapped" in p.message
    assert "outside" not in p.message  # reported once, as the likelier cause


def test_outside_study_area(towers5, areas4):
    bad = towers5.copy()
    bad.loc[3, "geometry"] = Point(X0 + 5000, Y0 + 5000)
    (p,) = _one(TOWERS.problems(bad, study_area=areas4), "geometry")
    assert p.row == 4
    assert "outside the study area" in p.message


def test_study_area_in_other_crs(towers5, areas4):
    assert TOWERS.problems(towers5.to_crs("EPSG:4326"), study_area=areas4) == []
    assert TOWERS.problems(towers5, study_area=areas4.to_crs("EPSG:4326")) == []


def test_five_problems_on_five_rows_all_reported(towers5, areas4):
    bad = towers5.copy()
    bad.loc[0, "height_m"] = -3.0  # out of range
    bad.loc[1, "technology"] = "7G"  # bad choice
    bad.loc[2, "eirp_dbm"] = np.nan  # NaN
    bad.loc[3, "site_id"] = "VT-1"  # duplicate
    bad.loc[4, "geometry"] = Point(X0 + 9000, Y0)  # outside
    before = bad.copy()
    with pytest.raises(LayerValidationError) as info:
        towers_layer.validate_towers(bad, source="towers.gpkg", study_area=areas4)
    err = info.value
    assert sorted(p.row for p in err.problems) == [1, 2, 3, 4, 5]
    for row in range(1, 6):
        assert f"row {row}" in str(err)
    assert str(err).startswith("towers.gpkg: towers layer has 5 problems")
    assert_unchanged(before, bad)


def test_validate_returns_indexed_copy(towers5):
    before = towers5.copy()
    out = towers_layer.validate_towers(towers5)
    assert out.index.name == "site_id"
    assert list(out.index) == list(towers5["site_id"])
    assert out["tenants"].dtype.name == "Int64"
    assert_unchanged(before, towers5)


def test_every_schema_documents_itself():
    for schema in SCHEMAS.values():
        table = schema.doc_table()
        for c in schema.columns:
            assert f"`{c.name}`" in table


def test_bool_column_type_checked():
    from telcoplan.layers.areas import validate_areas

    gdf = gpd.GeoDataFrame(
        {"name": ["a", "b", "c"], "urban": ["yes", "maybe", "0"]},
        geometry=[Point(0, 0).buffer(1)] * 3,
        crs=UTM49,
    )
    (p,) = _one(AREAS.problems(gdf), "urban")
    assert p.row == 2
    assert "true/false" in p.message
    ok = validate_areas(gdf.drop(index=1))
    assert list(ok["urban"]) == [True, False]


def test_longitude_out_of_range(towers5):
    ll = towers5.to_crs("EPSG:4326")
    ll.loc[0, "geometry"] = Point(200.0, 16.0)
    (p,) = _one(TOWERS.problems(ll), "geometry")
    assert "longitude 200" in p.message


def test_multipoint_refused_for_sites(towers5):
    from shapely.geometry import MultiPoint

    bad = towers5.copy()
    bad.loc[0, "geometry"] = MultiPoint([(X0, Y0), (X0 + 10, Y0)])
    (p,) = _one(TOWERS.problems(bad), "geometry")
    assert "MultiPoint" in p.message


def test_study_area_without_crs_is_reported(towers5, areas4):
    probs = TOWERS.problems(towers5, study_area=areas4.set_crs(None, allow_override=True))
    assert any("study area has no CRS" in p.message for p in probs)


def test_choices_normalised_on_loading(towers5):
    t = towers5.copy()
    t.loc[0, "technology"] = "4g"
    assert towers_layer.validate_towers(t)["technology"].iloc[0] == "4G"


def test_inf_message_is_readable(towers5):
    bad = towers5.copy()
    bad.loc[0, "height_m"] = np.inf
    (p,) = _one(TOWERS.problems(bad), "height_m")
    assert "value inf is not finite" in p.message
