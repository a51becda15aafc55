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
            "dem": {"path": URL, "layer": "dh.dem"},
            "land_use": {"path": URL, "layer": "qh.sdd", "column": "loai"},
            "population": {"path": URL, "layer": "ds.phuong", "weights": URL},
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
        "layers.dem: the terrain is a raster",
        "layers.land_use: land use is read from a raster or a polygon file",
        "layers.population.weights: dasymetric weights are read from a file",
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
