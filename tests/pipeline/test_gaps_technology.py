"""Gaps in one generation's coverage (``stages.gaps.technology``): with 2G masts all around and
one weak 4G site, the 4G gaps hold the persons without 4G, while the gaps of any technology are
empty. The persons without service reconcile with the coverage stage's own by-generation
figures (computed separately, from the areas' tables), and the report names them so."""

from __future__ import annotations

import pytest
import yaml

from telcoplan.errors import PlanError
from telcoplan.gis.vector import write_vector
from telcoplan.pipeline import read_plan, run_plan


def _plan(small_plan, tmp_path, towers5, technology):
    towers = towers5.copy()
    towers["technology"] = ["4G", "2G", "2G", "2G", "2G"]
    towers["frequency_mhz"] = [1800.0, 900.0, 900.0, 900.0, 900.0]
    towers["eirp_dbm"] = [25.0, 60.0, 60.0, 60.0, 60.0]  # the 4G site reaches a few cells
    towers["height_m"] = [30.0, 35.0, 30.0, 30.0, 30.0]  # (Okumura-Hata's range: 30 m up)
    write_vector(tmp_path / "inputs" / "towers.csv", towers, overwrite=True)
    doc = yaml.safe_load(small_plan.read_text(encoding="utf-8"))
    doc["stages"] = {"gaps": {"min_population": 0, "min_density_per_km2": 0}}
    if technology is not None:
        doc["stages"]["gaps"]["technology"] = technology
    small_plan.write_text(yaml.safe_dump(doc), encoding="utf-8")
    return read_plan(small_plan)


@pytest.mark.parametrize("technology", [None, "4G"])
def test_gaps_of_a_generation(small_plan, tmp_path, towers5, technology):
    out = tmp_path / f"out-{technology}"
    summary = run_plan(_plan(small_plan, tmp_path, towers5, technology), out)
    total = summary["population_total"]
    cov, gaps = summary["coverage"], summary["gaps"]
    served = cov["by_technology"]["4G_plus"] if technology else cov["any"]
    nc = gaps["not_covered"]
    # the gaps stage's persons without service = the coverage stage's, another computation
    assert nc["population"] == pytest.approx(total - served["population_covered"], abs=0.5)
    parts = nc["in_gaps"]["population"] + nc["small_pockets"]["population"]
    assert parts + nc["sparse_cells"]["population"] == pytest.approx(nc["population"], abs=0.5)
    report = (out / "report.html").read_text(encoding="utf-8")
    if technology is None:
        assert cov["any"]["population_pct"] > 99.0  # the 2G masts cover everyone
        assert gaps.get("technology") is None
        assert "Not covered by any operator" in report
    else:
        assert gaps["technology"] == "4G"
        assert 0.5 * total < nc["population"] < total  # the 4G site serves a few cells only
        assert gaps["count"] >= 1
        assert "Without 4G or better from any operator" in report
        assert "covers with 4G or better (older generations" in report
        assert "Why they are not covered" not in report  # (told of any technology only)
        # each gap names the areas it lies in, the most of it first (half a cell or more)
        import geopandas as gpd

        written = gpd.read_file(out / "gaps.gpkg", layer="gaps")
        areas = gpd.read_file(small_plan.parent / "inputs" / "areas.gpkg").to_crs(written.crs)
        for geom, listed in zip(written.geometry, written["areas"], strict=True):
            shares = sorted(  # the most first; ties by name
                (-geom.intersection(a).area, n)
                for a, n in zip(areas.geometry, areas["name"], strict=True)
            )
            assert listed.split("; ") == [n for m2, n in shares if -m2 >= 0.5 * 100 * 100]
        assert len(written["areas"].iloc[0].split("; ")) == 4  # the big gap spans every quadrant
        assert "In the areas (most of it first)" in report
        assert summary["gaps"]["largest"][0]["areas"] == written["areas"].iloc[0].split("; ")


def test_an_unknown_generation_is_refused(small_plan, tmp_path, towers5):
    with pytest.raises(PlanError, match=r"stages\.gaps\.technology must be one of 2G, 3G, 4G"):
        _plan(small_plan, tmp_path, towers5, "6G")
