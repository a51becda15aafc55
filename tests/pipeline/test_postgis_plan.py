"""Plan layers read from PostGIS: how a plan names them (a table or a query, never a
password), what it refuses, problems named by primary key, and the run's provenance (the
connection without password and a digest of the rows), against the ``postgis`` cluster."""

from __future__ import annotations

import json
import logging

import pytest
import yaml

from telcoplan.errors import PlanError
from telcoplan.gis.vector import write_vector
from telcoplan.pipeline import load_inputs, parse_plan, read_plan, run_plan
from telcoplan.pipeline.validate import validate_files

SECRET = "hunter2-secret"
URL = "postgresql://planner@gis.example/city"


def test_a_plan_names_a_table_or_a_query(tmp_path):
    (tmp_path / "areas.gpkg").touch()
    plan = parse_plan(
        {
            "layers": {
                "areas": "areas.gpkg",
                "towers": {"path": URL, "layer": "vt.tram_bts", "crs": "EPSG:4326"},
                "roads": {"path": URL, "sql": "SELECT * FROM gt.duong WHERE cap <= 3", "ids": "generate"},
                "population": {"path": URL, "layer": "ds.phuong", "column": "dan_so"},
            }
        },
        base=tmp_path,
    )  # fmt: skip
    towers, roads = plan.layers["towers"], plan.layers["roads"]
    assert towers.is_database
    assert towers.path == URL
    assert (towers.layer, towers.sql, towers.crs) == ("vt.tram_bts", None, "EPSG:4326")
    assert (roads.layer, roads.sql) == (None, "SELECT * FROM gt.duong WHERE cap <= 3")
    assert not plan.layers["population"].is_raster
    assert not plan.layers["areas"].is_database


def test_every_problem_of_database_layers_is_reported_and_no_password(tmp_path):
    (tmp_path / "areas.gpkg").touch()
    (tmp_path / "towers.gpkg").touch()
    doc = {
        "layers": {
            "areas": "areas.gpkg",
            "towers": {"path": "towers.gpkg", "sql": "SELECT 1"},
            "roads": {"path": f"postgresql://planner:{SECRET}@gis/city", "layer": "gt.duong"},
            "fiber": {"path": URL, "layer": "a.b", "sql": "SELECT * FROM a.b"},
            "pois": {"path": URL},
            "candidates": {"path": URL, "layer": "a.b.c"},
            "dem": {"path": URL, "layer": "dh.dem", "sql": "SELECT rast FROM dh.dem"},
            "population": {"path": URL, "layer": "ds.phuong", "weights": {"path": URL}},
            "measurements": {"path": f"{URL}?password={SECRET}", "sql": "SELECT * FROM do_song"},
        }
    }
    with pytest.raises(PlanError) as err:
        parse_plan(doc, base=tmp_path)
    text = str(err.value)
    assert SECRET not in text
    for expected in (
        "layers.towers.sql: a query reads from a database",
        "layers.roads.path: the connection URL holds a password",
        "layers.fiber: give the table (`layer:`) or a query (`sql:`), not both",
        "layers.pois: a database layer needs its table (`layer: schema.table`) or a query",
        "layers.candidates.layer: 'a.b.c' is not a table name",
        "layers.dem: give the table (`layer:`) or a query (`sql:`), not both",
        "layers.population.weights: a database layer needs its table",
        "layers.measurements.path: the connection URL holds a password (`password=`)",
    ):
        assert expected in text, expected


@pytest.fixture
def pg(postgis, monkeypatch):
    """The cluster, with planner's password in PGPASSWORD."""
    monkeypatch.setenv("PGPASSWORD", postgis.password)
    return postgis


def _plan(tmp_path, layers, **stages):
    doc = {"name": "from PostGIS", "resolution_m": 100, "layers": layers, "stages": stages}
    path = tmp_path / "plan.yml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    return path


def test_problems_of_a_plan_layer_name_rows_by_primary_key(pg, tmp_path, areas4, towers5):
    bad = towers5.copy()
    bad.loc[2, "frequency_mhz"] = -1.0
    pg.load_table("plan_test.towers", bad)
    write_vector(tmp_path / "areas.gpkg", areas4)
    path = _plan(
        tmp_path,
        {"areas": "areas.gpkg", "towers": {"path": pg.url, "layer": "plan_test.towers"}},
    )
    with pytest.raises(PlanError) as err:
        load_inputs(read_plan(path))
    text = str(err.value)
    assert "table plan_test.towers: towers layer has 1 problem" in text
    assert "primary key gid=3, id 'VNP-1', column 'frequency_mhz'" in text
    assert pg.password not in text
    reports = validate_files([path])
    assert not reports[0].ok
    assert "primary key gid=3" in reports[0].message


def test_a_run_from_postgis_records_the_source_without_password(
    pg, tmp_path, areas4, towers5, roads3, caplog, monkeypatch
):
    pg.load_table("plan_test.areas", areas4)
    pg.load_table("plan_test.towers", towers5, key="site_id")
    pg.load_table("plan_test.roads", roads3)
    query = "SELECT road_id, road_class, geom FROM plan_test.roads"
    path = _plan(
        tmp_path,
        {
            "areas": {"path": pg.url, "layer": "plan_test.areas"},
            "towers": {"path": pg.url, "layer": "plan_test.towers"},
            "roads": {"path": pg.url, "sql": query},
        },
        gaps=False, sites=False, map=False, report=False,
    )  # fmt: skip
    for name in ("telcoplan", "psycopg"):  # propagated to caplog even after the CLI's set-up
        monkeypatch.setattr(logging.getLogger(name), "propagate", True)
        caplog.set_level(logging.DEBUG, logger=name)
    summary = run_plan(read_plan(path), tmp_path / "out")
    inputs = summary["provenance"]["inputs"]
    assert inputs["towers"]["path"] == pg.url
    assert inputs["towers"]["table"] == "plan_test.towers"
    assert inputs["roads"]["sql"] == query
    assert summary["layers"] == {"towers": 5, "roads": 3}
    assert summary["population_total"] == pytest.approx(10_000.0)
    from telcoplan.gis.postgis import read_postgis

    for name, table in (("areas", "plan_test.areas"), ("towers", "plan_test.towers")):
        expected = read_postgis(pg.url, table=table).attrs["postgis"]["sha256"]
        assert inputs[name]["sha256"] == expected
    # the password is nowhere: not in the logs, the summary or any output
    assert "plan_test.towers" in caplog.text  # the probe works
    assert pg.password not in caplog.text
    text = (tmp_path / "out" / "summary.json").read_text(encoding="utf-8")
    assert json.loads(text)["provenance"]["inputs"]["areas"]["table"] == "plan_test.areas"
    for f in (tmp_path / "out").iterdir():
        assert pg.password.encode() not in f.read_bytes(), f


def test_validate_points_a_database_to_a_plan_without_repeating_it():
    (report,) = validate_files([f"postgresql://planner:{SECRET}@gis/city"])
    assert not report.ok
    assert "checked through a plan" in report.message
    assert SECRET not in report.message


def test_a_plan_from_postgis_rasters_and_polygons_equals_the_plan_from_files(
    pg, tmp_path, caplog, monkeypatch
):
    """The DEM (WGS 84, warped), a land-use raster with its class table, population polygons
    with land-use weight polygons, from PostGIS: the same inputs on the grid and the same
    outputs (rasters byte for byte, tables equal) as from the files; land-use polygons and a
    population raster from PostGIS equal their files too; the provenance names the tables,
    the cache key follows the rows."""
    import geopandas as gpd
    import numpy as np
    import rasterio
    from affine import Affine
    from shapely.geometry import box

    from tests.conftest import UTM49, X0, Y0
    from tests.gis.postgis_rasters import load_raster
    from tests.pipeline.town import town_plan

    plan_path = town_plan(tmp_path)
    rng = np.random.default_rng(11)
    lon0, lat0 = rasterio.warp.transform(UTM49, "EPSG:4326", [X0 - 300], [Y0 + 3300])
    dem = (rng.random((130, 230)) * 60.0).astype("float32")
    _tif(
        tmp_path / "dem.tif",
        dem,
        Affine(1 / 3600, 0, lon0[0], 0, -1 / 3600, lat0[0]),
        "EPSG:4326",
        -9999.0,
    )
    codes = rng.integers(1, 4, (70, 130)).astype("uint8")
    _tif(tmp_path / "lu.tif", codes, Affine(50, 0, X0 - 200, 0, -50, Y0 + 3200), UTM49, 0)
    (tmp_path / "lu.csv").write_text("code,name\n1,urban\n2,forest\n3,water\n", encoding="utf-8")
    wards = gpd.GeoDataFrame(
        {"ward": ["w", "e"], "dan_so": [100_000.0, 80_000.0]},
        geometry=[box(X0, Y0, X0 + 3000, Y0 + 3000), box(X0 + 3000, Y0, X0 + 6000, Y0 + 3000)],
        crs=UTM49,
    )
    land = gpd.GeoDataFrame(
        {"landuse": ["residential", "forest", "water"]},
        geometry=[box(X0, Y0, X0 + 2000, Y0 + 3000), box(X0 + 2500, Y0, X0 + 6000, Y0 + 1500),
                  box(X0 + 4000, Y0 + 2000, X0 + 4700, Y0 + 2600)],
        crs=UTM49,
    )  # fmt: skip
    write_vector(tmp_path / "wards.gpkg", wards)
    write_vector(tmp_path / "land.gpkg", land)
    load_raster(pg, "qh.dem", tmp_path / "dem.tif", tile=(40, 40))
    load_raster(pg, "qh.lu", tmp_path / "lu.tif", tile=(32, 32))
    pg.load_table("qh.wards", wards)
    pg.load_table("qh.land", land)

    doc = yaml.safe_load(plan_path.read_text(encoding="utf-8"))
    doc["stages"]["coverage"]["terrain"] = True
    files = {
        **doc["layers"],
        "dem": "dem.tif",
        "land_use": {"path": "lu.tif", "classes": "lu.csv"},
        "population": {"path": "wards.gpkg", "column": "dan_so",
                       "weights": {"path": "land.gpkg", "column": "landuse"}},
    }  # fmt: skip
    database = {
        **doc["layers"],
        "dem": {"path": pg.url, "layer": "qh.dem"},
        "land_use": {"path": pg.url, "sql": "SELECT rid, rast FROM qh.lu", "classes": "lu.csv"},
        "population": {"path": pg.url, "layer": "qh.wards", "column": "dan_so",
                       "weights": {"path": pg.url, "layer": "qh.land", "column": "landuse"}},
    }  # fmt: skip

    def plan(name, layers):
        path = tmp_path / f"{name}.yml"
        path.write_text(yaml.safe_dump({**doc, "layers": layers}), encoding="utf-8")
        return read_plan(path)

    a, b = load_inputs(plan("files", files)), load_inputs(plan("database", database))
    for name in ("dem", "land_use", "population"):
        assert getattr(a, name).tobytes() == getattr(b, name).tobytes(), name
    assert np.isfinite(a.dem).all()
    assert a.land_use_names == b.land_use_names
    # land-use polygons and a population raster from PostGIS equal their files
    write_vector(tmp_path / "land.gpkg", land, overwrite=True)
    pop = np.full((30, 60), 100.0)
    _tif(tmp_path / "pop.tif", pop, Affine(100, 0, X0, 0, -100, Y0 + 3000), UTM49, -1.0)
    load_raster(pg, "qh.pop", tmp_path / "pop.tif", tile=(16, 16))
    c = load_inputs(plan("files2", {**files, "land_use": {"path": "land.gpkg", "column": "landuse"},
                                    "population": "pop.tif"}))  # fmt: skip
    d = load_inputs(plan("database2", {**database, "land_use": {"path": pg.url, "layer": "qh.land",
                    "column": "landuse"}, "population": {"path": pg.url, "layer": "qh.pop"}}))  # fmt: skip
    for name in ("land_use", "population"):
        assert getattr(c, name).tobytes() == getattr(d, name).tobytes(), name
    assert c.land_use_names == d.land_use_names == {1.0: "forest", 2.0: "residential", 3.0: "water"}
    assert d.population.sum() == pytest.approx(180_000.0)

    ran = {}
    for name, layers in (("files", files), ("database", database)):
        ran[name] = run_plan(plan(name, layers), tmp_path / name, cache=True)
    assert ran["files"]["outputs"] == ran["database"]["outputs"]
    for f in ran["files"]["outputs"]:
        if f != "summary.json":  # rasters, GeoPackages, styles: the same bytes
            one, two = tmp_path / "files" / f, tmp_path / "database" / f
            assert one.read_bytes() == two.read_bytes(), f
    strip = ("provenance", "plan", "outputs")
    assert {k: v for k, v in ran["files"].items() if k not in strip} == {
        k: v for k, v in ran["database"].items() if k not in strip
    }
    inputs = ran["database"]["provenance"]["inputs"]
    assert inputs["dem"]["table"] == "qh.dem"
    assert inputs["land_use"]["sql"].startswith("SELECT")
    assert inputs["population"]["weights_table"] == "qh.land"
    assert inputs["land_use"]["classes_path"] == "lu.csv"
    assert all(len(inputs[n]["sha256"]) == 64 for n in ("dem", "land_use", "population"))
    assert len(inputs["population"]["weights_sha256"]) == 64
    text = (tmp_path / "database" / "summary.json").read_text(encoding="utf-8")
    assert pg.password not in text

    # run again: every stage reused; change one DEM cell in the database: the terrain's
    # coverage is computed again
    monkeypatch.setattr(logging.getLogger("telcoplan"), "propagate", True)
    caplog.set_level(logging.INFO, logger="telcoplan.pipeline.run")
    again = run_plan(plan("database", database), tmp_path / "database", overwrite=True, cache=True)
    assert again["provenance"] == ran["database"]["provenance"]
    assert "reused 1 of 1 stages" in caplog.text
    caplog.clear()
    # a DEM tile over the grid changes: its SHA-256 and so the coverage's key change
    pg.execute(
        "UPDATE qh.dem SET rast = ST_SetValue(rast, 1, 2, 2, 321) WHERE rid = (SELECT min(rid) "
        "FROM qh.dem WHERE ST_Intersects(rast, ST_Transform(ST_MakeEnvelope(%s, %s, %s, %s, "
        "32649), 4326)))",
        (X0, Y0, X0 + 6000, Y0 + 3000),
    )
    third = run_plan(plan("database", database), tmp_path / "database", overwrite=True, cache=True)
    assert third["provenance"]["inputs"]["dem"]["sha256"] != inputs["dem"]["sha256"]
    assert "reused 0 of 1 stages; computed coverage" in caplog.text


def _tif(path, data, transform, crs, nodata):
    import rasterio

    profile = {"driver": "GTiff", "width": data.shape[1], "height": data.shape[0], "count": 1,
               "dtype": data.dtype.name, "crs": crs, "transform": transform, "nodata": nodata}  # fmt: skip
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data, 1)
    return path
