"""PostGIS: connection URLs without passwords, reading tables and queries (primary keys, SRIDs,
a digest of the rows), layers whose problems name rows by primary key, and writing tables in
one transaction, against a throw-away cluster (the ``postgis`` fixture)."""

from __future__ import annotations

import re

import numpy as np
import pytest
from shapely.geometry import LineString, Point

from telcoplan.errors import DatabaseError, LayerValidationError
from telcoplan.gis import postgis
from telcoplan.gis.postgis import (
    OUTPUT_MARK,
    is_database_url,
    parse_table_name,
    read_postgis,
    redact,
    rows_sha256,
    url_problem,
    write_tables,
)
from telcoplan.layers.roads import load_roads
from telcoplan.layers.towers import load_towers
from tests.conftest import UTM49, X0, Y0

SECRET = "hunter2-secret"


# ------------------------------------------------------------------------------ URLs
@pytest.mark.parametrize(
    "url",
    [
        f"postgresql://planner:{SECRET}@gis.example/city",
        f"postgres://planner:{SECRET}@/city?host=/run/postgresql",
        f"postgresql://gis.example/city?user=planner&password={SECRET}",
        "postgresql://planner:@gis.example/city",  # an empty password is a password too
    ],
)
def test_a_password_in_the_url_is_refused_without_repeating_it(url):
    problem = url_problem(url)
    assert problem is not None
    assert "password" in problem
    assert "PGPASSWORD" in problem
    assert ".pgpass" in problem
    assert SECRET not in problem
    assert SECRET not in redact(url)
    assert "gis.example" in redact(url) or "/run/postgresql" in redact(url)


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://planner@gis.example:5433/city",
        "postgresql:///city?host=/run/postgresql",
        "POSTGRES://planner@gis.example/city?sslmode=require",
    ],
)
def test_urls_without_password_are_accepted(url):
    assert is_database_url(url)
    assert url_problem(url) is None
    assert redact(url).lower() == url.lower()


def test_files_are_not_database_urls(tmp_path):
    assert not is_database_url(str(tmp_path / "towers.gpkg"))
    assert not is_database_url(tmp_path / "postgresql:")
    assert url_problem("towers.gpkg") is not None


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("public.towers", ("public", "towers")),
        ("Towers", (None, "towers")),  # unquoted names fold to lower case, as in PostgreSQL
        ('"Hạ tầng"."Trạm BTS"', ("Hạ tầng", "Trạm BTS")),
        ('vt."a""b"', ("vt", 'a"b')),
    ],
)
def test_table_names_read_as_postgresql_reads_them(name, expected):
    assert parse_table_name(name) == expected


@pytest.mark.parametrize("name", ["a.b.c", "", "public.", "two words"])
def test_bad_table_names(name):
    with pytest.raises(ValueError, match=r"schema\.table"):
        parse_table_name(name)


def test_the_rows_digest_ignores_their_order_but_not_their_values():
    rows = [(1, "a", "0101"), (2, "b", "0102")]
    assert rows_sha256(["id", "n", "geom"], rows) == rows_sha256(["id", "n", "geom"], rows[::-1])
    assert rows_sha256(["id", "n", "geom"], rows) != rows_sha256(["id", "n", "geom"], rows[:1])
    assert rows_sha256(["id", "n", "geom"], rows) != rows_sha256(["id", "m", "geom"], rows)


# ------------------------------------------------------------------------------ reading
@pytest.fixture
def pg(postgis, monkeypatch):
    """The cluster, with planner's password in PGPASSWORD (as a user would give it)."""
    monkeypatch.setenv("PGPASSWORD", postgis.password)
    monkeypatch.delenv("PGPASSFILE", raising=False)
    return postgis


@pytest.fixture
def towers_table(pg, towers5):
    """towers5 as table ``gis_test.towers`` with a serial key ``gid`` (1…5 in towers5's order)."""
    pg.load_table("gis_test.towers", towers5)
    return "gis_test.towers"


def test_a_table_is_read_in_key_order_with_its_crs(pg, towers_table, towers5):
    gdf = read_postgis(pg.url, table=towers_table)
    assert list(gdf["site_id"]) == list(towers5["site_id"])
    assert list(gdf["gid"]) == [1, 2, 3, 4, 5]
    assert gdf.crs == UTM49
    assert gdf.geometry.name == "geometry"  # as read_vector names it, whatever the table says
    assert gdf.attrs["postgis"]["geometry_column"] == "geom"
    assert np.all(gdf.geometry.geom_equals_exact(towers5.geometry, 0.0))
    np.testing.assert_allclose(gdf["height_m"], towers5["height_m"])
    record = gdf.attrs["postgis"]
    assert record["primary_key"] == ["gid"]
    assert record["table"] == "gis_test.towers"
    assert record["connection"] == pg.url  # no password to take out
    assert re.fullmatch(r"[0-9a-f]{64}", record["sha256"])


def test_the_digest_follows_the_rows(pg, towers_table):
    first = read_postgis(pg.url, table=towers_table).attrs["postgis"]["sha256"]
    assert read_postgis(pg.url, table=towers_table).attrs["postgis"]["sha256"] == first
    pg.execute("UPDATE gis_test.towers SET height_m = 31 WHERE gid = 1")
    assert read_postgis(pg.url, table=towers_table).attrs["postgis"]["sha256"] != first


def test_a_query_keeps_the_key_of_the_table_it_selects_from(pg, towers_table):
    gdf = read_postgis(
        pg.url, sql=f"SELECT * FROM {towers_table} WHERE operator = 'Viettel' ORDER BY gid;"
    )
    assert list(gdf["site_id"]) == ["VT-1", "VT-2", "VT-3"]
    assert gdf.attrs["postgis"]["primary_key"] == ["gid"]
    assert gdf.attrs["postgis"]["table"] is None
    renamed = read_postgis(pg.url, sql=f"SELECT gid AS id, geom FROM {towers_table}")
    assert renamed.attrs["postgis"]["primary_key"] == ["id"]
    computed = read_postgis(
        pg.url, sql=f"SELECT site_id, ST_Buffer(geom, 10) AS area FROM {towers_table}"
    )
    assert computed.attrs["postgis"]["primary_key"] == []
    assert computed.geometry.name == "geometry"
    assert computed.attrs["postgis"]["geometry_column"] == "area"
    assert set(computed.geom_type) == {"Polygon"}


def test_a_table_reads_as_the_same_file_reads(pg, towers_table, towers5, tmp_path):
    """A frame from PostGIS is shaped as read_vector's from a GeoPackage of the same features
    (columns in order, geometry ``geometry`` last; the table's key ``gid`` added), so code
    joining it with frames made in the run (the backbone adds the sites stage's new masts to
    the towers) keeps every geometry: with ``geom`` the added rows had none, and the Đà Nẵng
    backbone from PostGIS left 88 planned tenancies out as "no road within max_snap_m"."""
    import geopandas as gpd
    import pandas as pd

    from telcoplan.gis.vector import read_vector

    towers5.to_file(tmp_path / "towers.gpkg")
    from_file = read_vector(tmp_path / "towers.gpkg")
    from_db = read_postgis(pg.url, table=towers_table)
    assert list(from_db.columns) == ["gid", *from_file.columns]
    assert from_db.geometry.name == from_file.geometry.name == "geometry"
    pd.testing.assert_frame_equal(
        pd.DataFrame(from_db.drop(columns=["gid", "geometry"])),
        pd.DataFrame(from_file.drop(columns="geometry")),
    )
    assert np.all(from_db.geometry.geom_equals_exact(from_file.geometry, 0.0))
    added = gpd.GeoDataFrame(
        {"operator": ["Viettel"]}, geometry=[Point(X0, Y0)], crs=UTM49, index=["NEW-1"]
    )
    for towers in (from_file, load_towers(pg.url, layer=towers_table)):
        joined = pd.concat([towers[["operator", towers.geometry.name]], added])
        assert list(joined.columns) == ["operator", "geometry"]
        assert joined.geometry.notna().all()
        assert not joined.geometry.is_empty.any()


def test_a_column_named_geometry_beside_the_geometry_is_refused(pg, towers_table):
    with pytest.raises(DatabaseError, match=r"column named geometry .*AS geometry_text") as err:
        read_postgis(pg.url, sql=f"SELECT gid, site_id AS geometry, geom FROM {towers_table}")
    assert "query" in str(err.value)
    same = read_postgis(pg.url, sql=f"SELECT gid, geom AS geometry FROM {towers_table}")
    assert list(same.columns) == ["gid", "geometry"]
    assert same.attrs["postgis"]["geometry_column"] == "geometry"


def test_a_query_cannot_change_the_database(pg, towers_table):
    with pytest.raises(DatabaseError, match="read-only"):
        read_postgis(pg.url, sql=f"DELETE FROM {towers_table} RETURNING *")
    assert pg.execute(f"SELECT count(*) FROM {towers_table}") == [(5,)]


def test_srid_zero_takes_the_given_crs_and_mixed_srids_are_refused(pg, towers5):
    pg.load_table("gis_test.nosrid", towers5, srid=0)
    with pytest.raises(DatabaseError, match="ST_Transform"):
        read_postgis(
            pg.url,
            sql="SELECT gid, ST_SetSRID(geom, 32649) AS geom FROM gis_test.nosrid WHERE gid < 3 "
            "UNION ALL SELECT gid, ST_SetSRID(geom, 32648) FROM gis_test.nosrid WHERE gid >= 3",
        )
    assert read_postgis(pg.url, table="gis_test.nosrid").crs is None
    assert read_postgis(pg.url, table="gis_test.nosrid", crs=UTM49).crs == UTM49


def test_reading_errors_are_clear_and_never_show_the_password(pg, towers_table):
    for table, columns in (
        ("two", "id int, a geometry(Point, 4326), b geometry"),
        ("flat", "id int, name text"),
        ("round", "id int, g geography"),
    ):
        pg.execute(f"CREATE TABLE gis_test.{table} ({columns})")
        pg.execute(f"ALTER TABLE gis_test.{table} OWNER TO planner")
    cases = {
        "gis_test.nope": "no table gis_test.nope; tables with geometry: .*gis_test.towers",
        "gis_test.two": "2 geometry columns \\(a, b\\)",
        "gis_test.flat": "no geometry column; its columns: id, name",
        "gis_test.round": "geography column .*::geometry",
    }
    for table, message in cases.items():
        with pytest.raises(DatabaseError, match=message) as err:
            read_postgis(pg.url, table=table)
        assert pg.password not in str(err.value)
    with pytest.raises(DatabaseError, match=r"query fails .*nope"):
        read_postgis(pg.url, sql="SELECT * FROM nope")


def test_credentials_come_from_pgpass(postgis, monkeypatch, tmp_path, towers_table):
    monkeypatch.delenv("PGPASSWORD", raising=False)
    monkeypatch.delenv("PGPASSFILE", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(DatabaseError, match="cannot connect") as err:
        read_postgis(postgis.url, table=towers_table)
    assert "password" in str(err.value)
    pgpass = tmp_path / ".pgpass"
    pgpass.write_text(f"*:*:*:planner:{postgis.password}\n")
    pgpass.chmod(0o600)
    assert len(read_postgis(postgis.url, table=towers_table)) == 5


def test_a_wrong_password_is_reported_without_it(postgis, monkeypatch, towers_table):
    monkeypatch.setenv("PGPASSWORD", SECRET)
    with pytest.raises(DatabaseError, match="password authentication failed") as err:
        read_postgis(postgis.url, table=towers_table)
    assert SECRET not in str(err.value)


def test_a_url_with_a_password_is_refused_before_connecting(pg, towers_table):
    url = pg.url.replace("planner@", f"planner:{SECRET}@")
    with pytest.raises(DatabaseError, match="holds a password") as err:
        read_postgis(url, table=towers_table)
    assert SECRET not in str(err.value)


# ------------------------------------------------------------------------------ layers
def test_layer_problems_name_rows_by_primary_key(pg, towers5):
    bad = towers5.copy()
    bad.loc[1, "height_m"] = -5.0
    bad.loc[3, "operator"] = None
    pg.load_table("gis_test.bad_towers", bad)
    with pytest.raises(LayerValidationError) as err:
        load_towers(pg.url, layer="gis_test.bad_towers")
    text = str(err.value)
    assert "table gis_test.bad_towers: towers layer has 2 problems" in text
    assert "primary key gid=2, id 'VT-2', column 'height_m'" in text
    assert "primary key gid=4, id 'MBF-1', column 'operator'" in text
    assert "row " not in text
    assert pg.password not in text
    # keyed by the id itself: the key says it, once
    pg.load_table("gis_test.bad_towers_by_id", bad, key="site_id")
    with pytest.raises(LayerValidationError) as err:
        load_towers(pg.url, layer="gis_test.bad_towers_by_id")
    assert "primary key site_id='VT-2', column 'height_m'" in str(err.value)
    # a query without the key: rows are numbered as the query returns them
    with pytest.raises(LayerValidationError) as err:
        load_towers(
            pg.url, sql="SELECT site_id, operator, technology, frequency_mhz, height_m, "
            "eirp_dbm, geom FROM gis_test.bad_towers ORDER BY gid"
        )  # fmt: skip
    assert "row 2, id 'VT-2', column 'height_m'" in str(err.value)


def test_layers_load_from_a_table_or_a_query(pg, towers_table, roads3):
    towers = load_towers(pg.url, layer=towers_table)
    assert list(towers.index) == ["VT-1", "VT-2", "VNP-1", "MBF-1", "VT-3"]
    assert towers.attrs["postgis"]["table"] == towers_table
    pg.load_table("gis_test.roads", roads3)
    roads = load_roads(
        pg.url,
        sql="SELECT road_id, road_class, geom FROM gis_test.roads WHERE road_class <> 'residential'",
    )
    assert list(roads.index) == ["r1", "r2"]
    assert roads.attrs["postgis"]["sql"].startswith("SELECT road_id")


# ------------------------------------------------------------------------------ writing
def _layers():
    points = postgis_frame(
        {"site_id": ["S1", "S2"], "n": [1, 2], "ok": [True, False], "cost": [1.5, np.nan]},
        [Point(X0, Y0), Point(X0 + 10, Y0)],
    )
    lines = postgis_frame(
        {"status": ["new", "ring"]},
        [LineString([(X0, Y0), (X0 + 5, Y0)]), LineString([(X0, Y0), (X0, Y0 + 5)])],
    )
    return {"sites": points.set_index("site_id"), "links": lines}


def postgis_frame(data, geoms):
    import geopandas as gpd

    return gpd.GeoDataFrame(data, geometry=geoms, crs=UTM49)


def test_tables_are_written_with_key_index_srid_and_a_run_row(pg):
    run_id = write_tables(pg.url, "w1", _layers(), run={"plan": "p", "summary": {"a": [1, 2]}})
    back = read_postgis(pg.url, table="w1.sites")
    assert list(back["site_id"]) == ["S1", "S2"]
    assert list(back["fid"]) == [1, 2]
    assert back.attrs["postgis"]["primary_key"] == ["fid"]
    assert list(back["ok"]) == [True, False]
    assert back["cost"].iloc[1] is None or np.isnan(back["cost"].iloc[1])
    assert back.crs == UTM49
    index = pg.execute(
        "SELECT indexdef FROM pg_indexes WHERE schemaname = 'w1' AND tablename = 'links'"
    )
    assert any("USING gist (geom)" in d for (d,) in index)
    assert pg.execute("SELECT Find_SRID('w1', 'links', 'geom')") == [(32649,)]
    assert pg.execute("SELECT GeometryType(geom) FROM w1.links LIMIT 1") == [("LINESTRING",)]
    (comment,) = pg.execute("SELECT obj_description('w1.sites'::regclass, 'pg_class')")[0]
    assert comment.startswith(OUTPUT_MARK)
    rows = pg.execute("SELECT id, plan, summary, tables FROM w1.runs")
    assert rows == [(run_id, "p", {"a": [1, 2]}, ["sites", "links"])]


def test_a_table_telcoplan_did_not_write_is_left_alone(pg):
    pg.execute("CREATE SCHEMA w2 AUTHORIZATION planner")
    pg.execute("CREATE TABLE w2.sites (id int)")
    pg.execute("ALTER TABLE w2.sites OWNER TO planner")
    with pytest.raises(DatabaseError, match=r"w2.sites exists and was not written by telcoplan"):
        write_tables(pg.url, "w2", _layers(), run={"plan": "p"})
    assert pg.execute("SELECT to_regclass('w2.links'), to_regclass('w2.runs')") == [(None, None)]


def test_a_failure_half_way_changes_nothing(pg, monkeypatch):
    write_tables(pg.url, "w3", _layers(), run={"plan": "first"})
    before = pg.execute("SELECT site_id, fid FROM w3.sites ORDER BY fid")
    calls = []
    real = postgis.write_table

    def failing(cur, schema, name, gdf, **kw):
        calls.append(name)
        real(cur, schema, name, gdf, **kw)
        if len(calls) == 2:
            cur.execute("SELECT 1 / 0")  # the database fails once two tables are rewritten

    monkeypatch.setattr(postgis, "write_table", failing)
    changed = _layers()
    changed["sites"] = changed["sites"].iloc[:1]
    with pytest.raises(DatabaseError, match=r"division by zero.*nothing was changed"):
        write_tables(pg.url, "w3", changed, run={"plan": "second"})
    assert calls == ["sites", "links"]
    assert pg.execute("SELECT site_id, fid FROM w3.sites ORDER BY fid") == before
    assert pg.execute("SELECT plan FROM w3.runs") == [("first",)]
