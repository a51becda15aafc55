"""``telcoplan run PLAN --publish URL``: the demo, read from PostGIS, published back as tables
with spatial indexes and a run row, published again over itself, and a publication that fails
half-way (nothing changes); no password anywhere. Against the ``postgis`` cluster."""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import sys

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from telcoplan import __version__, outputs
from telcoplan.cli import cli
from telcoplan.errors import DatabaseError, OutputExistsError, PlanError
from telcoplan.gis import postgis
from telcoplan.gis.postgis import read_postgis
from telcoplan.gis.vector import read_vector, write_vector
from telcoplan.pipeline.publish import PUBLISHED_LAYERS, publication, publish_run

#: The demo's layers put into the database (as a city's GIS department keeps them).
DB_LAYERS = {"areas": "gid", "towers": "site_id", "roads": "gid"}
ROADS_SQL = "SELECT road_id, road_class, name, geom FROM demo_in.roads ORDER BY gid"


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.fixture(scope="module")
def demo(postgis, tmp_path_factory):
    """The demo at 1000 m cells (map and report off) with its areas and towers read from
    tables of the cluster and its roads from a query; the run's output folder, the plan and
    every log line of the run (DEBUG, every logger)."""
    from telcoplan.demo import write_demo
    from telcoplan.pipeline import read_plan, run_plan

    folder = tmp_path_factory.mktemp("demo-postgis")
    plan_path = write_demo(folder, resolution_m=1000.0)
    for name, key in DB_LAYERS.items():
        postgis.load_table(
            f"demo_in.{name}", read_vector(folder / "inputs" / f"{name}.gpkg"), key=key
        )
    doc = yaml.safe_load(plan_path.read_text(encoding="utf-8"))
    doc["layers"]["areas"] = {"path": postgis.url, "layer": "demo_in.areas"}
    doc["layers"]["towers"] = {"path": postgis.url, "layer": "demo_in.towers"}
    doc["layers"]["roads"] = {"path": postgis.url, "sql": ROADS_SQL}
    doc["stages"].update(map=False, report=False)
    plan_path.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    logs = _Collect()
    loggers = [logging.getLogger(n) for n in ("telcoplan", "psycopg")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:  # whether they propagate or not (the CLI's logging may be set up)
        lg.addHandler(logs)
        lg.setLevel(logging.DEBUG)
    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("PGPASSWORD", postgis.password)
            run_plan(read_plan(plan_path), folder / "outputs")
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.removeHandler(logs)
            lg.setLevel(level)
    return {"out": folder / "outputs", "plan": plan_path, "logs": logs.lines, "folder": folder}


@pytest.fixture
def pg(postgis, monkeypatch):
    """The cluster, with planner's password in PGPASSWORD."""
    monkeypatch.setenv("PGPASSWORD", postgis.password)
    return postgis


def _snapshot(pg, schema: str) -> dict[str, tuple]:
    """Every table of ``schema``: its row count and a digest of its rows in key order."""
    tables = [t for (t,) in pg.execute(
        "SELECT tablename FROM pg_tables WHERE schemaname = %s ORDER BY 1", (schema,))]  # fmt: skip
    snap = {}
    for t in tables:
        order = "id" if t == "runs" else "fid"
        snap[t] = pg.execute(
            f"SELECT count(*), md5(string_agg(t::text, '|' ORDER BY {order})) FROM {schema}.{t} t"
        )[0]
    return snap


def test_the_demo_reads_its_layers_from_postgis(demo, pg):
    summary = outputs.read_summary(demo["out"])
    inputs = summary["provenance"]["inputs"]
    files = demo["folder"] / "inputs"
    assert summary["population_total"] == pytest.approx(1_134_310, rel=1e-6)
    assert summary["layers"]["towers"] == len(read_vector(files / "towers.gpkg"))
    assert summary["layers"]["roads"] == len(read_vector(files / "roads.gpkg"))
    assert inputs["towers"] == {
        "path": pg.url,
        "table": "demo_in.towers",
        "sha256": read_postgis(pg.url, table="demo_in.towers").attrs["postgis"]["sha256"],
    }
    assert inputs["roads"]["sql"] == ROADS_SQL
    assert (
        inputs["roads"]["sha256"] == read_postgis(pg.url, sql=ROADS_SQL).attrs["postgis"]["sha256"]
    )
    assert inputs["fiber"]["path"] == "inputs/fiber.gpkg"  # files keep their path and hash
    assert any("demo_in.towers" in line for line in demo["logs"])  # the probe works
    assert not [line for line in demo["logs"] if pg.password in line]


def test_publishing_writes_every_vector_output_with_index_and_run_row(demo, pg):
    out = demo["out"]
    target = publication(pg.url, "demo_pub")
    run_id = publish_run(out, target)
    summary = json.loads((out / outputs.SUMMARY).read_text(encoding="utf-8"))
    tables = {t for (t,) in pg.execute(
        "SELECT tablename FROM pg_tables WHERE schemaname = 'demo_pub'")}  # fmt: skip
    assert tables == {*PUBLISHED_LAYERS, "runs"}
    for name in PUBLISHED_LAYERS:
        layer = outputs.read_layer(out, name)
        back = read_postgis(pg.url, table=f"demo_pub.{name}")
        assert len(back) == len(layer), name
        assert back.crs == layer.crs, name
        assert np.all(back.geometry.normalize().geom_equals_exact(
            layer.geometry.reset_index(drop=True).normalize(), 0.0)), name  # fmt: skip
        (index,) = pg.execute(
            "SELECT count(*) FROM pg_indexes WHERE schemaname = 'demo_pub' AND tablename = %s "
            "AND indexdef LIKE '%%USING gist (geom)%%'",
            (name,),
        )[0]
        assert index == 1, name
    towers = read_postgis(pg.url, table="demo_pub.towers")
    assert set(towers["site_id"]) == set(outputs.read_layer(out, "towers").index)
    row = pg.execute(
        "SELECT id, plan, plan_file, telcoplan_version, output_folder, rasters, summary, tables, "
        "published_at IS NOT NULL FROM demo_pub.runs"
    )
    assert len(row) == 1
    rid, plan, plan_file, version, folder, rasters, stored, listed, timed = row[0]
    assert (rid, plan, plan_file, version) == (run_id, summary["plan"], "plan.yml", __version__)
    assert folder == str(out.resolve())
    assert stored == summary
    assert set(listed) == set(PUBLISHED_LAYERS)
    assert timed
    tifs = sorted(n for n in summary["outputs"] if n.endswith(".tif"))
    assert sorted(rasters) == tifs
    assert "signal_viettel.tif" in rasters
    assert all((out / n).samefile(p) for n, p in rasters.items())


def test_publishing_again_replaces_the_tables_and_adds_a_run(demo, pg):
    out = demo["out"]
    target = publication(pg.url, "demo_again")
    first = publish_run(out, target)
    before = _snapshot(pg, "demo_again")
    second = publish_run(out, target)
    after = _snapshot(pg, "demo_again")
    assert second > first
    assert pg.execute("SELECT id FROM demo_again.runs ORDER BY id") == [(first,), (second,)]
    assert {k: v for k, v in after.items() if k != "runs"} == {
        k: v for k, v in before.items() if k != "runs"
    }  # the same rows, not twice as many
    # a run without proposed sites: the previous run's sites table goes
    fewer = demo["folder"] / "fewer"
    shutil.copytree(out, fewer)
    (fewer / outputs.SITES).unlink()
    summary = json.loads((fewer / outputs.SUMMARY).read_text(encoding="utf-8"))
    summary["outputs"].remove(outputs.SITES)
    outputs.write_summary(fewer / outputs.SUMMARY, summary, overwrite=True)
    publish_run(fewer, target)
    assert pg.execute("SELECT to_regclass('demo_again.sites')") == [(None,)]
    assert pg.execute("SELECT 'sites' = ANY (tables) FROM demo_again.runs ORDER BY id") == [
        (True,),
        (True,),
        (False,),
    ]


def test_a_publication_failing_half_way_changes_nothing(demo, pg, monkeypatch):
    target = publication(pg.url, "demo_fail")
    publish_run(demo["out"], target)
    before = _snapshot(pg, "demo_fail")
    fewer = demo["folder"] / "fewer-fail"
    shutil.copytree(demo["out"], fewer)
    (fewer / outputs.SITES).unlink()  # this run would drop the sites table
    done = []
    real = postgis.write_table

    def failing(cur, schema, name, gdf, **kw):
        real(cur, schema, name, gdf, **kw)
        done.append(name)
        if len(done) == 4:
            cur.execute("SELECT 1 / 0")  # the database fails half-way through the tables

    monkeypatch.setattr(postgis, "write_table", failing)
    with pytest.raises(DatabaseError, match=r"division by zero.*nothing was changed") as err:
        publish_run(fewer, target)
    assert len(done) == 4
    assert pg.password not in str(err.value)
    assert _snapshot(pg, "demo_fail") == before  # sites still there, no new run row


def test_run_publish_on_the_command_line(pg, tmp_path, areas4, towers5):
    """A small plan (the four quadrants, towers from the database) run and published by
    ``telcoplan run --publish``."""
    pg.load_table("cli_in.towers", towers5, key="site_id")
    write_vector(tmp_path / "areas.gpkg", areas4)
    doc = {
        "name": "quadrants",
        "layers": {"areas": "areas.gpkg", "towers": {"path": pg.url, "layer": "cli_in.towers"}},
        "stages": {"sites": False, "backbone": False, "map": False, "report": False},
    }
    plan = tmp_path / "plan.yml"
    plan.write_text(yaml.safe_dump(doc), encoding="utf-8")
    out = tmp_path / "out"
    result = CliRunner().invoke(
        cli,
        ["run", str(plan), "--out", str(out), "--publish", pg.url, "--schema", "cli_out", "-v"],
    )
    assert result.exit_code == 0, result.output
    assert pg.password not in result.output
    assert pg.execute("SELECT count(*), min(output_folder) FROM cli_out.runs") == [
        (1, str(out.resolve()))
    ]
    assert pg.execute("SELECT count(*) FROM cli_out.towers") == [(5,)]
    assert pg.execute("SELECT sum(population) FROM cli_out.areas") == [(10_000.0,)]
    for f in out.iterdir():
        if f.is_file():
            assert pg.password.encode() not in f.read_bytes(), f


def test_publish_options_are_checked_before_any_run(demo, pg, tmp_path):
    runner = CliRunner()
    plan, out = str(demo["plan"]), tmp_path / "never"
    with_password = pg.url.replace("planner@", f"planner:{pg.password}@")
    cases = [
        (["--publish", with_password], "holds a password"),
        (["--schema", "x"], "give --publish URL too"),
        (["--publish", pg.url, "--schema", "Bad Name"], "plain schema name"),
        (["--publish", pg.url.replace("telcoplan_test", "nope")], "cannot connect"),
    ]
    for args, message in cases:
        result = runner.invoke(cli, ["run", plan, "--out", str(out), *args])
        assert result.exit_code == 1, (args, result.output)
        assert message in result.output, (args, result.output)
        assert pg.password not in result.output
        assert "Traceback" not in result.output
        assert not out.exists()


def test_publication_checks_the_schema_name_and_postgis(pg):
    assert publication(None) is None
    assert publication(pg.url).schema == "telcoplan"
    with pytest.raises(PlanError, match="pg_"):
        publication(pg.url, "pg_mine")
    pg.execute("DROP DATABASE IF EXISTS plain")
    pg.execute("CREATE DATABASE plain OWNER planner")
    with pytest.raises(DatabaseError, match="PostGIS is not installed"):
        publication(pg.url.replace("telcoplan_test", "plain"))


def test_psycopg_is_imported_only_for_a_database():
    """``telcoplan run --help`` (and everything that touches no database) loads no psycopg."""
    code = (  # checked in an exit handler: the entry point ends its process with os._exit
        "import atexit, sys, runpy\n"
        "def check():\n"
        "    import telcoplan.pipeline.parse, telcoplan.pipeline.inputs, telcoplan.pipeline.publish\n"
        "    print('PSYCOPG' if 'psycopg' in sys.modules else 'NONE', flush=True)\n"
        "atexit.register(check)\n"
        "sys.argv = ['telcoplan', 'run', '--help']\n"
        "try:\n    runpy.run_module('telcoplan', run_name='__main__')\n"
        "except SystemExit:\n    pass\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    ).stdout
    assert out.strip().endswith("NONE")


@pytest.mark.parametrize("overwrite", [False, True])
def test_an_output_never_replaces_an_input_of_the_plan(small_plan, tmp_path, overwrite, caplog):
    """The plan's towers file lies in the output folder under an output's name (the site
    review's table): the run is refused before anything is computed, even with --overwrite,
    and the file is left as it was; under another name it is not touched, and the run says
    it writes among the plan's inputs."""
    from telcoplan.pipeline import read_plan, run_plan

    doc = yaml.safe_load(small_plan.read_text(encoding="utf-8"))
    out = tmp_path / "outfolder"
    out.mkdir()
    moved = out / outputs.REVIEW_TABLE
    moved.write_bytes((small_plan.parent / doc["layers"]["towers"]).read_bytes())
    doc["layers"]["towers"] = str(moved)
    small_plan.write_text(yaml.safe_dump(doc), encoding="utf-8")
    before = moved.read_bytes()
    with pytest.raises(OutputExistsError, match=r"is an input of the plan \(layers\.towers\)"):
        run_plan(read_plan(small_plan), out, overwrite=overwrite)
    assert moved.read_bytes() == before
    assert sorted(p.name for p in out.iterdir()) == [moved.name]
    # the same file elsewhere in the folder's name space is fine: an input of another name
    other = out / "my_towers.csv"
    moved.rename(other)
    doc["layers"]["towers"] = str(other)
    small_plan.write_text(yaml.safe_dump(doc), encoding="utf-8")
    with caplog.at_level(logging.WARNING, logger="telcoplan"):
        run_plan(read_plan(small_plan), out, overwrite=overwrite)
    assert other.read_bytes() == before
    assert f"the output folder {out} holds the plan's inputs (layers.towers)" in caplog.text


def test_an_existing_output_is_found_before_anything_is_computed(small_plan, tmp_path, caplog):
    """A file the run will write already lies in the output folder (no summary.json there, so
    no earlier run): without --overwrite the run stops before loading its inputs, the file
    kept; with it, the run replaces it."""
    import logging

    from telcoplan.pipeline import read_plan, run_plan

    out = tmp_path / "out"
    out.mkdir()
    (out / outputs.GAPS).write_bytes(b"someone's file")
    with (
        caplog.at_level(logging.INFO, logger="telcoplan"),
        pytest.raises(OutputExistsError, match=r"gaps\.gpkg already exists.*nothing was computed"),
    ):
        run_plan(read_plan(small_plan), out)
    assert "coverage" not in caplog.text  # no stage started, no input loaded
    assert (out / outputs.GAPS).read_bytes() == b"someone's file"
    run_plan(read_plan(small_plan), out, overwrite=True)
    assert (out / outputs.GAPS).read_bytes() != b"someone's file"


def test_a_dem_over_part_of_the_grid_is_said_in_the_summary_and_report(
    small_plan, tmp_path, grid10
):
    """The DEM covers the west 300 m of the 1 km study area only: summary.json says what share
    of the grid has terrain and how many persons live where it has none (100 a cell: the
    other 7 columns' 7,000, give or take the column at the DEM's edge), and the report says
    terrain is not modelled there."""
    import rasterio

    from telcoplan.gis.grid import GridSpec
    from telcoplan.gis.raster import write_raster
    from telcoplan.pipeline import read_plan, run_plan

    x0, y0, _, y1 = grid10.bounds
    west = GridSpec.from_bounds((x0, y0, x0 + 300.0, y1), 100.0, grid10.crs)
    write_raster(small_plan.parent / "inputs" / "dem.tif", np.full(west.shape, 5.0), west)
    doc = yaml.safe_load(small_plan.read_text(encoding="utf-8"))
    doc["layers"]["dem"] = "inputs/dem.tif"
    small_plan.write_text(yaml.safe_dump(doc), encoding="utf-8")
    out = tmp_path / "out"
    summary = run_plan(read_plan(small_plan), out)
    with rasterio.open(out / outputs.OPERATORS_COUNT) as src:
        cells = src.width * src.height  # the run's grid (the study area and its margin)
    limit = summary["coverage"]["limit"]
    assert 100.0 * 3 * 10 / cells <= limit["dem_cells_pct"] <= 100.0 * 4 * 10 / cells
    assert 6_000 <= limit["population_without_dem"] <= 7_000
    report = (out / "report.html").read_text(encoding="utf-8")
    assert f"The DEM covers {limit['dem_cells_pct']:.0f}% of the grid" in report
    assert f"where {limit['population_without_dem']:,.0f} persons live" in report


def test_a_population_layer_of_zeros_is_said(small_plan, tmp_path, grid10, caplog):
    """A population raster that is all zeros (a wrong band or nodata): the run goes on (the
    coverage of the signal is still right) but warns that every population figure is 0."""
    import logging

    from telcoplan.gis.raster import write_raster
    from telcoplan.pipeline import read_plan, run_plan

    write_raster(
        small_plan.parent / "inputs" / "population.tif",
        np.zeros(grid10.shape),
        grid10,
        overwrite=True,
    )
    with caplog.at_level(logging.WARNING, logger="telcoplan"):
        summary = run_plan(read_plan(small_plan), tmp_path / "out")
    assert "population.tif: nobody lives in the study area by this population layer" in caplog.text
    assert summary["population_total"] == 0
