"""``telcoplan sites review``: the command as a user runs it — outputs, --overwrite, a clean
error for a bad proposals file, and proposal texts escaped in the map and the report."""

from __future__ import annotations

import geopandas as gpd
import pandas as pd
import pytest
from click.testing import CliRunner
from shapely.geometry import Point

from telcoplan.cli import cli
from telcoplan.pipeline import read_plan, run_plan
from tests.conftest import UTM49, X0, Y0
from tests.pipeline.test_review import write_proposals
from tests.pipeline.town import town_plan

EVIL = "<script>alert(1)</script>"


@pytest.fixture
def town_run(tmp_path):
    """The review town's plan and a finished run of it."""
    plan = town_plan(tmp_path)
    run_plan(read_plan(plan), tmp_path / "run")
    return plan, tmp_path / "run"


def _review(*args):
    return CliRunner().invoke(cli, ["sites", "review", *map(str, args)])


def test_review_writes_csv_and_gpkg_and_respects_overwrite(town_run, tmp_path):
    plan, run = town_run
    props = write_proposals(
        tmp_path / "p.gpkg", [("P1", "Alpha", 4500, 1500, {}), ("P2", "Beta", 5540, 1500, {})]
    )
    res = _review(props, "--plan", plan, "--run", run)
    assert res.exit_code == 0, res.output
    assert "2 proposals" in res.output
    assert "site_review.csv" in res.output
    table = pd.read_csv(run / "site_review.csv")
    assert table["candidate_id"].tolist() == ["P1", "P2"]
    assert table.loc[0, "population_new"] > 0
    assert table.loc[1, "nearest_host"] == "B2"
    before = (run / "site_review.gpkg").read_bytes()
    res = _review(props, "--plan", plan, "--run", run, "--operator", "Alpha")
    assert res.exit_code == 1
    assert "already exists; pass --overwrite" in res.output
    assert "Traceback" not in res.output
    assert (run / "site_review.gpkg").read_bytes() == before
    res = _review(props, "--plan", plan, "--run", run, "--operator", "Alpha", "--overwrite")
    assert res.exit_code == 0, res.output
    assert pd.read_csv(run / "site_review.csv")["operator"].tolist() == ["Alpha", "Alpha"]
    res = _review(props, "--plan", plan, "--run", run, "-o", tmp_path / "elsewhere")
    assert res.exit_code == 0, res.output
    assert (tmp_path / "elsewhere" / "site_review.gpkg").is_file()


def test_bad_proposals_file_is_one_clean_error(town_run, tmp_path):
    plan, run = town_run
    bad = tmp_path / "bad.csv"
    bad.write_text("candidate_id,operator,eirp_dbm\nP1,Alpha,60\n", encoding="utf-8")
    res = _review(bad, "--plan", plan, "--run", run)
    assert res.exit_code == 1
    assert "Traceback" not in res.output
    assert "'lon' and 'lat' columns" in res.output  # no coordinates: says which columns
    lon, lat = (
        gpd.GeoSeries([Point(X0 + 3000, Y0 + 1500)], crs=UTM49)
        .to_crs("EPSG:4326")
        .iloc[0]
        .coords[0]
    )
    bad.write_text(
        f"candidate_id,operator,eirp_dbm,lon,lat\nP1,Alpha,200,{lon},{lat}\n", encoding="utf-8"
    )
    res = _review(bad, "--plan", plan, "--run", run)
    assert res.exit_code == 1
    assert "Traceback" not in res.output
    assert f"{bad}: proposals layer has 1 problem" in res.output
    assert "row 1, id 'P1', column 'eirp_dbm': value 200 dBm is out of range" in res.output
    res = _review(tmp_path / "missing.gpkg", "--plan", plan, "--run", run)
    assert res.exit_code == 2  # click: the file does not exist
    res = _review(bad, "--plan", plan, "--run", tmp_path)
    assert res.exit_code == 1
    assert "no summary.json" in res.output


def test_proposal_texts_are_escaped_in_the_map_and_report(town_run, tmp_path):
    plan, run = town_run
    props = write_proposals(
        tmp_path / "p.gpkg",
        [(EVIL, "Alpha", 4500, 1500, {"name": EVIL}), ("P2", "Alpha", 3000, 2500, {})],
    )
    assert _review(props, "--plan", plan, "--run", run).exit_code == 0
    res = CliRunner().invoke(cli, ["map", str(run), "--plan", str(plan)])
    assert res.exit_code == 0, res.output
    page = (run / "map.html").read_text(encoding="utf-8")
    assert '"review": "Site review \\u2013 proposals"' in page  # window.telcoplan's layers
    assert '"review:footprint": "Site review \\u2013 newly covered (after)"' in page
    assert EVIL not in page
    assert "alert(1)" in page  # the text is there, escaped
    res = CliRunner().invoke(cli, ["report", str(run), "--no-figure"])
    assert res.exit_code == 0, res.output
    report = (run / "report.html").read_text(encoding="utf-8")
    assert '<section id="review">' in report
    assert EVIL not in report
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in report
