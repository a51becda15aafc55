"""The sites stage on a small city with a known gap: co-location chosen where it serves, the
gain equal to a recomputed coverage difference, zoning respected, the backbone connecting the
planned sites."""

from __future__ import annotations

import json

import geopandas as gpd
import pandas as pd
import pytest
import yaml
from shapely.geometry import Point, box

from telcoplan.errors import PlanError
from telcoplan.gis.vector import write_vector
from telcoplan.pipeline import load_inputs, read_plan, run_plan
from tests.conftest import X0, Y0
from tests.pipeline.town import H, W, town_plan


@pytest.fixture
def gap_plan(tmp_path):
    """The test town (:mod:`tests.pipeline.town`): Alpha lacks service in the east, where Beta's
    mast B2 could host it; the sites stage co-locating one site per operator."""
    return town_plan(
        tmp_path,
        stages={"sites": {"mode": "per_operator", "budget": 1, "sources": ["colocation"]}},
    )


def _doc(path):
    return yaml.safe_load(path.read_text())


def _write(path, doc):
    path.write_text(yaml.safe_dump(doc))


def test_colocation_on_the_other_operators_mast_and_its_gain(gap_plan, tmp_path):
    """Alpha's one site is Beta's eastern mast; its gain equals the coverage difference the
    coverage engine computes with that tower added (an independent rerun)."""
    from telcoplan.coverage.analysis import compute_coverage

    summary = run_plan(read_plan(gap_plan), tmp_path / "out")["sites"]
    sites = gpd.read_file(tmp_path / "out" / "sites.gpkg", layer="sites")
    alpha = sites[sites["new_operators"].str.contains("Alpha")]
    assert len(alpha) == 1
    assert alpha["kind"].item() == "existing_tower"
    assert alpha.geometry.item().distance(Point(X0 + 5500, Y0 + 1500)) < 1.0
    # independent: rerun coverage with Alpha on that mast
    inputs = load_inputs(read_plan(gap_plan))
    towers = inputs.vectors["towers"]
    before = compute_coverage(towers, inputs.grid, model="hata", validity="ignore")
    added = towers.loc[["B2"]].assign(operator="Alpha").rename(index={"B2": "A-new"})
    after = compute_coverage(
        gpd.GeoDataFrame(pd.concat([towers, added]), crs=towers.crs),
        inputs.grid,
        model="hata",
        validity="ignore",
    )
    k = list(before.operators).index("Alpha")
    gain = float(inputs.population[after.covered[k] & ~before.covered[k]].sum())
    assert summary["operators"]["Alpha"]["population_gain"] == pytest.approx(gain, abs=1.0)
    assert summary["operators"]["Alpha"]["optimality_gap_pct"] == 0.0


def test_zoning_exclusion_is_never_violated(gap_plan, tmp_path):
    exclusion = gpd.GeoDataFrame(
        geometry=[box(X0 + 3000, Y0, X0 + W, Y0 + H)], crs="EPSG:32649"
    ).to_crs("EPSG:4326")
    write_vector(tmp_path / "heritage.geojson", exclusion)
    doc = _doc(gap_plan)
    doc["stages"]["sites"] = {
        "mode": "joint",
        "budget": 3,
        "sources": ["gaps"],
        "gap_candidates": 80,
        "zoning": {"exclude": "heritage.geojson"},
    }
    _write(gap_plan, doc)
    summary = run_plan(read_plan(gap_plan), tmp_path / "out")["sites"]
    cands = gpd.read_file(tmp_path / "out" / "sites.gpkg", layer="candidates")
    inside = cands.geometry.x > X0 + 3000
    assert inside.any()
    assert not cands.loc[inside, "allowed"].any()
    assert cands.loc[inside, "reason"].str.len().gt(0).all()
    sites = gpd.read_file(tmp_path / "out" / "sites.gpkg", layer="sites")
    assert summary["new_builds"] > 0
    assert (sites.geometry.x <= X0 + 3000).all()
    assert (sites["tenants"] <= 4).all()


@pytest.mark.parametrize(
    ("radius_m", "avoided"),
    [
        (None, 0),  # the default co-location radius (100 m / 500 m): every mast its own
        (1500.0, 2),  # both operators' new sites within 1.5 km of each other: 2 shared masts
    ],
)
def test_backbone_connects_the_planned_sites(gap_plan, tmp_path, radius_m, avoided):
    """The backbone reaches the existing and the new masts; the masts sharing avoids are the
    written sites' count: each new mast's tenants less the mast itself (the same demand, every
    operator building its own), recomputed from ``sites.gpkg``."""
    doc = _doc(gap_plan)
    doc["stages"]["sites"] = {"mode": "joint", "budget": 2, "sources": ["gaps"]}
    if radius_m is not None:
        doc["stages"]["sites"]["colocation_radius_m"] = {"urban": radius_m, "rural": radius_m}
    doc["stages"]["backbone"] = {}
    _write(gap_plan, doc)
    summary = run_plan(read_plan(gap_plan), tmp_path / "out")
    new_masts = summary["sites"]["new_builds"]
    assert new_masts > 0
    assert summary["backbone"]["sites"] == 3 + new_masts  # A1, B1, B2 and the new masts
    on_disk = json.loads((tmp_path / "out" / "summary.json").read_text())
    sites = gpd.read_file(tmp_path / "out" / "sites.gpkg", layer="sites")
    new = sites[sites["new_build"].astype(bool)]
    assert len(new) == new_masts
    # a new mast's tenants are its new operators (one planned site each)
    assert (new["tenants"] == new["new_operators"].str.split(";").str.len()).all()
    recomputed = int((new["tenants"] - 1).sum())
    assert on_disk["sites"]["towers_avoided"] == recomputed == avoided


def test_sites_parameters_problems_at_once(gap_plan):
    doc = _doc(gap_plan)
    doc["stages"]["sites"] = {
        "mode": "together",
        "budget": 2,
        "budget_usd": 5,
        "sources": ["gaps", "moon"],
        "max_tenants": 0,
        "method": "magic",
    }
    _write(gap_plan, doc)
    with pytest.raises(PlanError) as info:
        read_plan(gap_plan)
    msg = str(info.value)
    for needle in ("mode", "not both", "sources", "max_tenants", "method"):
        assert needle in msg, msg


def test_sites_plan_command(gap_plan, tmp_path):
    from click.testing import CliRunner

    from telcoplan.cli import cli

    res = CliRunner().invoke(
        cli,
        ["sites", "plan", str(gap_plan), "--out", str(tmp_path / "o"), "--budget", "1", "-q"],
    )
    assert res.exit_code == 0, res.output
    summary = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert summary["sites"]["selected"] >= 1
    assert summary["stages"]["backbone"]["skipped"].startswith("switched off")
    res = CliRunner().invoke(
        cli, ["sites", "plan", str(gap_plan), "--budget", "1", "--budget-usd", "9"]
    )
    assert res.exit_code == 2
    assert "not both" in res.output


def test_planned_masts_keep_the_zoning_spacing(gap_plan, tmp_path):
    """New masts of the plan (all operators together) are never closer than their type's
    minimum spacing: within an operator by the optimiser's conflicts, across operators by
    sharing one mast."""
    doc = _doc(gap_plan)
    doc["stages"]["sites"] = {
        "mode": "joint",
        "budget": 4,
        "sources": ["gaps"],
        "gap_candidates": 120,
        "zoning": {"min_spacing_m": {"A2a": 1500, "A2b": 1500, "A1": 1500}},
    }
    _write(gap_plan, doc)
    run_plan(read_plan(gap_plan), tmp_path / "out")
    sites = gpd.read_file(tmp_path / "out" / "sites.gpkg", layer="sites")
    masts = sites[sites["new_build"]].geometry.to_numpy()
    assert len(masts) >= 2
    for i in range(len(masts)):
        for j in range(i + 1, len(masts)):
            assert masts[i].distance(masts[j]) >= 1500 - 1e-6
    assert (sites["tenants"] <= 4).all()


def test_summary_records_the_zoning_rules(gap_plan, tmp_path):
    doc = _doc(gap_plan)
    rules = {"min_spacing_m": {"A2a": 900}, "max_tenants": 3}
    doc["stages"]["sites"] = {"budget": 1, "sources": ["gaps"], "zoning": rules}
    _write(gap_plan, doc)
    summary = run_plan(read_plan(gap_plan), tmp_path / "out")["sites"]
    assert summary["parameters"]["zoning"] == rules
