"""A planner's own files through a plan: `clip` cuts at the study area plus its margin, towers
outside serve the edge within their radius, `ids: generate`, `columns:` on the areas,
coverage without population, one message for a CRS mistake (issue 10)."""

from __future__ import annotations

import logging
from pathlib import Path

import geopandas as gpd
import pytest
import shapely
import yaml
from shapely.geometry import LineString, Point

from telcoplan.errors import PlanError
from telcoplan.gis.vector import write_vector
from telcoplan.pipeline import load_inputs, read_plan, run_plan
from tests.conftest import UTM49, X0, Y0


def _edit(plan: Path, **changes) -> None:
    doc = yaml.safe_load(plan.read_text())
    for key, value in changes.items():
        if key == "layers":
            doc["layers"].update(value)
        else:
            doc[key] = value
    plan.write_text(yaml.safe_dump(doc, allow_unicode=True))


def test_clip_cuts_roads_at_the_margin(small_plan, tmp_path, roads3, caplog):
    """A 400 km road leaving the area is cut `study_area_margin_m` beyond it: every kept length
    is shapely's intersection length with the areas buffered by the margin; the cross-country
    road ends 300 m east of the area (by hand)."""
    long = [
        LineString([(X0 + 500, Y0 + 500), (X0 + 400_000, Y0 + 500)]),  # east, 400 km
        LineString([(X0 - 80_000, Y0 - 80_000), (X0 + 80_000, Y0 + 80_000)]),  # diagonal
        LineString([(X0 + 50_000, Y0), (X0 + 60_000, Y0)]),  # outside
    ]
    roads = gpd.GeoDataFrame(
        {"road_id": [*roads3["road_id"], "east", "diag", "far"],
         "road_class": [*roads3["road_class"], "trunk", "trunk", "trunk"]},
        geometry=[*roads3.geometry, *long], crs=roads3.crs,
    )  # fmt: skip
    write_vector(tmp_path / "inputs" / "roads.geojson", roads, overwrite=True)
    _edit(
        small_plan,
        study_area_margin_m=300,
        layers={"roads": {"path": "inputs/roads.geojson", "clip": True}},
    )
    with caplog.at_level(logging.WARNING):
        inputs = load_inputs(read_plan(small_plan))
    got = inputs.vectors["roads"]
    assert list(got.index) == ["r1", "r2", "r3", "east", "diag"]
    study = shapely.union_all(inputs.areas.geometry.buffer(300.0).to_numpy())
    for rid, line in zip(roads["road_id"], roads.geometry, strict=False):
        if rid in got.index:
            expected = shapely.intersection(line, study).length
            assert got.loc[rid].geometry.length == pytest.approx(expected, rel=1e-9), rid
    assert got.loc["east"].geometry.length == pytest.approx(800.0, abs=0.01)  # 500 + 300
    assert got.total_bounds[2] == pytest.approx(X0 + 1300, abs=0.01)
    assert "1 of 6 roads features lie outside the study area and are left out" in caplog.text
    assert "2 roads features crossing the study area's edge are cut at it" in caplog.text


def _towers(points, freqs):
    n = len(points)
    return gpd.GeoDataFrame(
        {"site_id": [f"T{i}" for i in range(1, n + 1)], "operator": "Viettel",
         "technology": "4G", "frequency_mhz": freqs, "height_m": 30.0, "eirp_dbm": 60.0},
        geometry=list(points), crs=UTM49,
    )  # fmt: skip


#: Towers east of the areas (east edge x0 + 1000): distance (m) and frequency (MHz).
_EAST = [(0, 1800.0), (2_000, 3500.0), (6_000, 3500.0), (9_500, 2100.0), (11_000, 2100.0),
         (14_000, 900.0), (16_000, 900.0), (7_500, 2600.0), (200_000, 900.0)]  # fmt: skip


@pytest.mark.parametrize(
    ("stages", "margin", "kept"),
    [
        # default radius by band: 900 MHz 15 km, 2100 MHz 10 km, 2600 MHz 8 km, 3500 MHz 5 km
        ({}, 0, ["T1", "T2", "T4", "T6", "T8"]),
        ({"coverage": {"max_radius_km": 3}}, 0, ["T1", "T2"]),
        ({"coverage": {"max_radius_km": 3}}, 7_000, ["T1", "T2", "T3"]),  # the margin counts
        ({"coverage": False}, 0, ["T1", "T2", "T4", "T6", "T8"]),
    ],
)
def test_towers_outside_are_kept_within_their_radius(
    small_plan, tmp_path, caplog, stages, margin, kept
):
    """Counts of kept and left-out towers, against the hand table above."""
    points = [Point(X0 + 1000 + d if d else X0 + 500, Y0 + 500) for d, _ in _EAST]
    write_vector(
        tmp_path / "inputs" / "towers.csv", _towers(points, [f for _, f in _EAST]), overwrite=True
    )
    _edit(small_plan, stages=stages, study_area_margin_m=margin)
    with caplog.at_level(logging.WARNING):
        inputs = load_inputs(read_plan(small_plan))
    assert list(inputs.vectors["towers"].index) == kept
    outside = len(kept) - 1
    dropped = len(_EAST) - len(kept)
    assert (
        f"{outside} of 9 towers features lie outside the study area but within their "
        "coverage radius" in caplog.text
    )
    assert (
        f"{dropped} of 9 towers features lie farther from the study area than their "
        "coverage radius" in caplog.text
    )
    assert "200,000 m away) and are left out" in caplog.text


def test_towers_with_clip_keep_only_the_study_area_and_margin(small_plan, tmp_path):
    points = [Point(X0 + 500, Y0 + 500), Point(X0 + 1400, Y0 + 500), Point(X0 + 3000, Y0 + 500)]
    write_vector(tmp_path / "inputs" / "towers.csv", _towers(points, [900.0] * 3), overwrite=True)
    _edit(
        small_plan,
        study_area_margin_m=500,
        layers={"towers": {"path": "inputs/towers.csv", "clip": True}},
    )
    assert list(load_inputs(read_plan(small_plan)).vectors["towers"].index) == ["T1", "T2"]


def test_towers_in_a_wrong_crs_are_one_message(small_plan, tmp_path, towers5):
    """UTM coordinates in a file that says WGS 84: one problem naming the likely CRS, not one
    line per tower; `crs:` for the layer fixes it."""
    bad = towers5.set_crs("EPSG:4326", allow_override=True)
    write_vector(tmp_path / "inputs" / "towers.gpkg", bad)
    _edit(small_plan, layers={"towers": "inputs/towers.gpkg"})
    with pytest.raises(PlanError) as info:
        load_inputs(read_plan(small_plan))
    msg = str(info.value)
    assert "1 problem in the input layers" in msg
    assert msg.count("\n  - ") == 1
    assert "read as EPSG:32649, they fall on the study area" in msg
    _edit(small_plan, layers={"towers": {"path": "inputs/towers.gpkg", "crs": "EPSG:32649"}})
    assert len(load_inputs(read_plan(small_plan)).vectors["towers"]) == 5


def test_ids_generate_in_a_plan(small_plan, tmp_path, roads3):
    """A road file whose id repeats: the error says how to accept it; `ids: generate` does."""
    roads = roads3.assign(road_id=["7", "7", "8"])
    write_vector(tmp_path / "inputs" / "roads.geojson", roads, overwrite=True)
    with pytest.raises(PlanError) as info:
        load_inputs(read_plan(small_plan))
    assert "row 2, id '7', column 'road_id': duplicate value '7'" in str(info.value)
    assert "set `ids: generate` for layers.roads" in str(info.value)
    _edit(small_plan, layers={"roads": {"path": "inputs/roads.geojson", "ids": "generate"}})
    roads_in = load_inputs(read_plan(small_plan)).vectors["roads"]
    assert list(roads_in.index) == ["roads-1", "roads-2", "roads-3"]
    assert list(roads_in["file_road_id"]) == ["7", "7", "8"]
    _edit(
        small_plan,
        layers={
            "towers": {"path": "inputs/towers.csv", "ids": "generate"},
            "roads": {"path": "inputs/roads.geojson", "ids": "auto"},
        },
    )
    with pytest.raises(PlanError) as info:
        read_plan(small_plan)
    assert "layers.towers.ids: only the layers roads, fiber" in str(info.value)
    assert "layers.roads.ids must be `file`" in str(info.value)


def test_areas_take_columns(small_plan, tmp_path, areas4):
    """A ward file as it comes: `columns:` names its name and population columns."""
    wards = areas4.rename(columns={"name": "commune_vn", "population": "pop2019_total"})
    write_vector(tmp_path / "inputs" / "wards.geojson", wards)
    doc = yaml.safe_load(small_plan.read_text())
    del doc["layers"]["population"]
    doc["layers"]["areas"] = {
        "path": "inputs/wards.geojson",
        "columns": {"name": "commune_vn", "population": "pop2019_total"},
    }
    doc["stages"] = {"map": False, "report": False}
    small_plan.write_text(yaml.safe_dump(doc))
    summary = run_plan(read_plan(small_plan), tmp_path / "out")
    assert [a["name"] for a in summary["areas"]] == ["SW", "SE", "NW", "NE"]
    assert [a["population"] for a in summary["areas"]] == pytest.approx([1000, 2000, 3000, 4000])
    doc["layers"]["areas"]["columns"] = {"name": "ward"}
    small_plan.write_text(yaml.safe_dump(doc))
    with pytest.raises(PlanError, match=r"column 'ward' \(given for 'name'\) is not in the file"):
        load_inputs(read_plan(small_plan))


def test_coverage_without_population(small_plan, tmp_path):
    """Signal needs no people: without population the coverage stage runs, and every
    population figure of the summary is null (not 0); the gaps stage needs population."""
    doc = yaml.safe_load(small_plan.read_text())
    del doc["layers"]["population"]
    doc["layers"]["areas"] = "inputs/areas_nopop.gpkg"
    doc["stages"] = {"gaps": False, "backbone": False, "map": False, "report": False}
    small_plan.write_text(yaml.safe_dump(doc))
    areas = gpd.read_file(tmp_path / "inputs" / "areas.gpkg").drop(columns="population")
    write_vector(tmp_path / "inputs" / "areas_nopop.gpkg", areas)
    summary = run_plan(read_plan(small_plan), tmp_path / "out")
    cov = summary["coverage"]
    assert summary["population_total"] is None
    assert cov["any"]["population_covered"] is None
    assert cov["any"]["population_pct"] is None
    assert cov["any"]["area_km2"] > 0
    assert cov["best_single_operator"] == {
        "operator": None, "population_covered": None, "population_pct": None
    }  # fmt: skip
    assert all(a["population"] is None and a["covered_any"] is None for a in cov["areas"])
    assert (tmp_path / "out" / "signal_viettel.tif").exists()
    doc["stages"]["gaps"] = {}
    small_plan.write_text(yaml.safe_dump(doc))
    with pytest.raises(PlanError, match=r"the gaps stage needs population"):
        load_inputs(read_plan(small_plan))


REAL = Path(__file__).resolve().parents[3] / "shared" / "data" / "danang-real"
ROADS = REAL / "transport" / "vietnam_national_roads_rail.geojson"
WARDS = REAL / "population" / "danang_wards_pop2019.geojson"
#: the national file's road levels (cap_duong) as road classes
CLASSES = {"Quốc Gia": "trunk", "Cấp Tỉnh": "primary", "Cấp Huyện": "secondary", "Asean": "trunk"}


@pytest.mark.realdata
@pytest.mark.skipif(not ROADS.exists(), reason="real Đà Nẵng data not available")
def test_real_national_roads_clipped_to_the_wards(tmp_path):
    """The national road file (458 features, `gid` not unique) on the real wards: the 10
    features crossing the city are kept, cut 1 km outside it (shapely's own lengths)."""
    doc = {
        "name": "real roads",
        "resolution_m": 500,
        "study_area_margin_m": 1000,
        "layers": {
            "areas": {"path": str(WARDS), "columns": {"name": "commune_vn"}},
            "population": {"path": str(WARDS), "column": "pop2019_total"},
            "roads": {
                "path": str(ROADS),
                "clip": True,
                "ids": "generate",
                "columns": {"road_class": "cap_duong", "name": "ten"},
                "values": {"road_class": CLASSES},
            },
        },
    }
    (tmp_path / "plan.yml").write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    inputs = load_inputs(read_plan(tmp_path / "plan.yml"))
    roads = inputs.vectors["roads"]
    raw = gpd.read_file(ROADS).to_crs(inputs.crs)
    study = shapely.union_all(inputs.areas.geometry.buffer(1000.0).to_numpy())
    hit = raw[raw.intersects(study)]
    assert len(roads) == len(hit) == 10
    expected = shapely.intersection(hit.geometry.to_numpy(), study)
    assert roads.length.sum() == pytest.approx(shapely.length(expected).sum(), rel=1e-4)
    assert roads.length.sum() < 0.25 * hit.length.sum()  # 400 km roads no longer whole
    x0, y0, x1, y1 = roads.total_bounds
    a0, b0, a1, b1 = inputs.areas.total_bounds
    assert x0 >= a0 - 1001
    assert y0 >= b0 - 1001
    assert x1 <= a1 + 1001
    assert y1 <= b1 + 1001


def test_population_raster_is_read_beside_the_vector_layers(small_plan, tmp_path, monkeypatch):
    """The population raster is read in a thread while the vector layers load: the same
    persons as a read in turn; a file that cannot be read is one more problem in the one
    message that lists the vector layers' (the order of a read in turn)."""
    import threading

    import numpy as np

    import telcoplan.gis.raster as raster_mod
    from telcoplan.layers.population import load_population_raster
    from telcoplan.pipeline.inputs import _read_ahead

    threads = []
    read = raster_mod.read_raster

    def spy(path):
        threads.append(threading.current_thread().name)
        return read(path)

    monkeypatch.setattr(raster_mod, "read_raster", spy)
    plan = read_plan(small_plan)
    inputs = load_inputs(plan)
    assert len(threads) == 1  # read once, in the thread (not again here)
    assert threads[0].startswith("telcoplan-read")
    expected = load_population_raster(tmp_path / "inputs" / "population.tif", inputs.grid)
    np.testing.assert_array_equal(inputs.population, expected)
    assert float(inputs.population.sum()) == 100.0 * inputs.grid.width * inputs.grid.height
    # only a raster file is read ahead
    assert _read_ahead(None) is None
    assert _read_ahead(plan.layers["towers"]) is None

    (tmp_path / "inputs" / "population.tif").write_bytes(b"not a raster")
    (tmp_path / "inputs" / "towers.csv").write_text("name,operator\nT1,A\n")  # no coordinates
    with pytest.raises(PlanError) as info:
        load_inputs(read_plan(small_plan))
    msg = str(info.value)
    assert "2 problems in the input layers" in msg, msg
    assert msg.index("towers.csv") < msg.index("population.tif: not a readable raster")
