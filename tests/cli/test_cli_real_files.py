"""The one-stage commands on files as they come (--name-column, --population-column,
--margin, no population) and `validate` refusing an unknown --crs (issue 10)."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from shapely.geometry import Point

from telcoplan.cli import cli
from telcoplan.gis.vector import write_vector
from tests.conftest import X0, Y0


@pytest.fixture
def ward_files(tmp_path, areas4, towers5):
    """The quadrant areas with a ward file's column names, and the five towers plus one
    2 km east of the areas (2100 MHz: within its 10 km radius)."""
    wards = areas4.rename(columns={"name": "commune_vn", "population": "pop2019_total"})
    write_vector(tmp_path / "wards.geojson", wards)
    towers = towers5.copy()
    towers.loc[5] = towers.loc[2]
    towers.loc[5, "site_id"] = "VNP-EAST"
    towers.loc[5, "geometry"] = Point(X0 + 3000, Y0 + 500)
    write_vector(tmp_path / "towers.csv", towers)
    return tmp_path


def _args(d):
    return ["--towers", str(d / "towers.csv"), "--area", str(d / "wards.geojson"),
            "--name-column", "commune_vn", "--resolution", "50", "--max-radius-km", "3"]  # fmt: skip


def test_coverage_takes_the_ward_files_columns_and_margin(runner, ward_files):
    d = ward_files
    res = runner.invoke(
        cli,
        ["coverage", *_args(d), "--population-column", "pop2019_total", "--margin", "500",
         "--out", str(d / "cov")],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    summary = json.loads((d / "cov" / "summary.json").read_text())
    assert summary["population_total"] == pytest.approx(10_000.0)
    assert [a["name"] for a in summary["areas"]] == ["SW", "SE", "NW", "NE"]
    assert summary["provenance"]["parameters"]["study_area_margin_m"] == 500.0
    assert "1 of 6 towers features lie outside the study area but within" in res.output
    assert "% of 10,000 persons covered" in res.output


def test_coverage_without_population_and_gaps_needing_it(runner, ward_files):
    """No population at all: coverage runs (figures null), gaps says what it needs."""
    d = ward_files
    res = runner.invoke(cli, ["coverage", *_args(d), "--out", str(d / "cov")])
    assert res.exit_code == 0, res.output
    summary = json.loads((d / "cov" / "summary.json").read_text())
    assert summary["population_total"] is None
    assert summary["coverage"]["any"]["population_pct"] is None
    assert "km² covered by at least one operator (no population given)" in res.output
    res = runner.invoke(cli, ["gaps", *_args(d), "--out", str(d / "gaps")])
    assert res.exit_code == 1
    assert "the gaps stage needs population" in res.output
    assert "--population-column" in res.output
    assert "Traceback" not in res.output
    assert not (d / "gaps" / "summary.json").exists()
    res = runner.invoke(
        cli,
        ["gaps", *_args(d), "--population-column", "pop2019_total", "--out", str(d / "gaps")],
    )
    assert res.exit_code == 0, res.output


def test_validate_refuses_an_unknown_crs(runner, ward_files):
    res = runner.invoke(cli, ["validate", "--crs", "EPSG:999999", str(ward_files / "towers.csv")])
    assert res.exit_code == 1
    assert "'EPSG:999999' is not a CRS pyproj knows" in res.output
    assert "Traceback" not in res.output


def test_validate_towers_outside_the_area(runner, tmp_path, areas4, towers5):
    """As in a plan: a tower 2 km outside is kept (warned), one 300 km away is left out."""
    write_vector(tmp_path / "areas.gpkg", areas4)
    towers = towers5.copy()
    towers.loc[0, "geometry"] = Point(X0 + 3000, Y0 + 500)
    towers.loc[1, "geometry"] = Point(X0 + 301_000, Y0 + 500)
    write_vector(tmp_path / "towers.gpkg", towers)
    res = runner.invoke(
        cli, ["validate", str(tmp_path / "towers.gpkg"), "--area", str(tmp_path / "areas.gpkg")]
    )
    assert res.exit_code == 0, res.output
    assert "1 of 5 towers features lie outside the study area but within" in res.output
    assert "1 of 5 towers features lie farther" in res.output
    assert "(300,000 m away)" in res.output
    assert "towers, 4 features kept" in res.output


def test_validate_area_needs_only_shapes(tmp_path, towers5, areas4):
    """A ward export without a ``name`` column is a study area as it is (``--area``)."""
    write_vector(tmp_path / "wards.geojson", areas4.drop(columns="name"))
    write_vector(tmp_path / "towers.gpkg", towers5)
    res = CliRunner().invoke(
        cli, ["validate", str(tmp_path / "towers.gpkg"), "--area", str(tmp_path / "wards.geojson")]
    )
    assert res.exit_code == 0, res.output
    assert "OK" in res.output
