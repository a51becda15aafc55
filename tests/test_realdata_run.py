"""A Đà Nẵng planner's own files through every stage, as a new user runs them (issue 10).

Real wards with the 2019 census (EPSG:4326 GeoJSON), SRTM, OpenStreetMap land use as
dasymetric weights, Vietnam's national road file with ``clip`` and generated ids, a small tower
file written by ``telcoplan import-cells`` from an OpenCelliD-style CSV, and no fiber: ``telcoplan
run`` completes every stage, the backbone greenfield. Skipped when ../shared/data/danang-real is
absent (its licences forbid copying it into the repository).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from telcoplan.cli import cli
from telcoplan.gis.vector import read_vector
from telcoplan.gis.zonal import zonal_sum
from telcoplan.layers.opencellid import OPENCELLID_COLUMNS
from telcoplan.pipeline import load_inputs, read_plan

REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "danang-real"
WARDS = REAL / "population" / "danang_wards_pop2019.geojson"
SRTM = REAL / "terrain" / "danang_srtm_gl1_30m.tif"
LANDUSE = REAL / "landuse" / "danang_osm_landuse.geojson"
ROADS = REAL / "transport" / "vietnam_national_roads_rail.geojson"

pytestmark = [
    pytest.mark.realdata,
    pytest.mark.slow,
    pytest.mark.skipif(
        not all(p.exists() for p in (WARDS, SRTM, LANDUSE, ROADS)),
        reason="real Đà Nẵng data not available (../shared/data/danang-real)",
    ),
]
MARGIN_M = 2_000.0
#: MNC of the operators in Vietnam (MCC 452) and their number of sites here (market shares)
OPERATORS = {4: 56, 2: 21, 1: 18}  # Viettel, VinaPhone, MobiFone


def _where_people_live(n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` (lon, lat) points on OpenStreetMap's residential land inside the city, as operators
    build: polygons drawn in proportion to their area, a uniform point in each."""
    import shapely

    land = read_vector(LANDUSE)
    wards = read_vector(WARDS).union_all()
    homes = land[(land["landuse"] == "residential") & land.intersects(wards)].to_crs("EPSG:32649")
    homes = homes[homes.area > 5_000]
    picked = rng.choice(len(homes), size=n, p=(homes.area / homes.area.sum()).to_numpy())
    points = []
    for geom in homes.geometry.to_numpy()[picked]:
        x0, y0, x1, y1 = geom.bounds
        while True:
            pt = shapely.Point(rng.uniform(x0, x1), rng.uniform(y0, y1))
            if geom.contains(pt):
                points.append(pt)
                break
    import geopandas as gpd

    lonlat = gpd.GeoSeries(points, crs="EPSG:32649").to_crs("EPSG:4326")
    return np.column_stack([lonlat.x, lonlat.y])


def _cells_csv(path: Path) -> Path:
    """An OpenCelliD-style CSV: LTE cells of three operators where people live (seeded), three
    positions shared by all three, two sites a few km out at sea (they serve the coast) and one
    about 150 km away (left out)."""
    rng = np.random.default_rng(2019)
    rows, cell = [], 1
    shared = [(108.2208, 16.0544), (108.1700, 16.0700), (108.2400, 16.0100)]
    for net, n in OPERATORS.items():
        where = _where_people_live(n, rng)
        where[:3] = shared
        for x, y in where:
            rows.append(("LTE", 452, net, 10521, cell, 0, float(x), float(y)))
            cell += 1
    rows.append(("LTE", 452, 4, 10521, cell, 0, 108.34, 16.06))  # at sea, ~4 km off the coast
    rows.append(("LTE", 452, 2, 10521, cell + 1, 0, 108.33, 16.03))
    rows.append(("LTE", 452, 1, 10521, cell + 2, 0, 106.60, 16.80))  # ~150 km away
    lines = [",".join(OPENCELLID_COLUMNS)]
    for radio, mcc, net, area, cid, unit, x, y in rows:
        rest = [1000, 5, 1, 1459813904, 1611843125, 0]
        lines.append(",".join(map(str, [radio, mcc, net, area, cid, unit, x, y, *rest])))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _plan(folder: Path, *, weights: bool) -> Path:
    population = {"path": str(WARDS), "column": "pop2019_total"}
    if weights:
        population["weights"] = str(LANDUSE)
    doc = {
        "name": "Đà Nẵng, real wards" + (" (OSM land use)" if weights else " (uniform)"),
        "resolution_m": 200,
        "study_area_margin_m": MARGIN_M,
        "layers": {
            "areas": {"path": str(WARDS), "columns": {"name": "commune_vn"}},
            "population": population,
            "towers": "towers.gpkg",
            "dem": str(SRTM),
            "roads": {
                "path": str(ROADS),
                "clip": True,
                "ids": "generate",
                "columns": {"road_class": "loai_duong", "name": "ten"},
                "values": {
                    "road_class": {
                        "Đường chính": "trunk",
                        "Đường thứ cấp": "secondary",
                        "Đường sắt": "track",
                    }
                },
            },
        },
        "stages": {"coverage": {"terrain": True}, "map": {"tiles": "none"}},
    }
    path = folder / f"plan-{'osm' if weights else 'uniform'}.yml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def real_run(tmp_path_factory):
    """``import-cells`` then ``run`` of the plan with OSM weights and of the uniform one."""
    folder = tmp_path_factory.mktemp("danang-real")
    runner = CliRunner()
    res = runner.invoke(
        cli,
        ["import-cells", str(_cells_csv(folder / "cells.csv")), "-o", str(folder / "towers.gpkg")],
    )
    assert res.exit_code == 0, res.output
    outs = {}
    for weights in (True, False):
        plan = _plan(folder, weights=weights)
        out = folder / ("out-osm" if weights else "out-uniform")
        res = runner.invoke(cli, ["run", str(plan), "--out", str(out)])
        assert res.exit_code == 0, res.output
        outs[weights] = (
            plan,
            out,
            json.loads((out / "summary.json").read_text("utf-8")),
            res.output,
        )
    return outs


def test_every_stage_runs_and_the_backbone_is_greenfield(real_run):
    _, _, summary, log = real_run[True]
    for stage in ("coverage", "gaps", "sites", "backbone", "map", "report"):
        assert summary.get(stage), stage
    assert "stages" not in summary or not summary["stages"], summary.get("stages")
    backbone = summary["backbone"]
    assert backbone["mode"] == "greenfield"
    assert backbone["cost_joint"] <= backbone["cost_separate"]
    assert backbone["length_km_joint"] > 0
    assert "151,774 m away) and are left out" in log  # the far tower is dropped, said so


def test_ward_totals_are_exact(real_run):
    plan, *_ = real_run[True]
    inputs = load_inputs(read_plan(plan))
    wards = read_vector(WARDS).to_crs(inputs.crs)
    per_ward = zonal_sum(inputs.population, inputs.grid, wards)
    np.testing.assert_allclose(per_ward, wards["pop2019_total"].to_numpy(float), atol=0.5)
    assert abs(inputs.population.sum() - 1_134_310) <= 1


def test_fewer_people_in_gaps_than_with_uniform_spreading(real_run):
    with_osm = real_run[True][2]["gaps"]["population"]
    uniform = real_run[False][2]["gaps"]["population"]
    assert with_osm < uniform, (with_osm, uniform)


def test_joint_and_separate_plans_cover_the_same_sites(real_run):
    """Read from backbone.gpkg itself: the sites the joint plan's access drops reach are exactly
    those the separate plans' drops reach, and every site not listed as left out."""
    import geopandas as gpd
    import shapely

    plan, out, summary, _ = real_run[True]
    backbone = summary["backbone"]
    links = gpd.read_file(out / "backbone.gpkg", layer="links")
    towers = load_inputs(read_plan(plan)).vectors["towers"].to_crs(links.crs)  # far ones dropped
    sites = {}  # rounded position -> site ids there (co-located towers are one site)
    for sid, pt in zip(towers.index, towers.geometry, strict=True):
        sites.setdefault((round(pt.x), round(pt.y)), set()).add(sid)
    tree = shapely.STRtree([shapely.Point(x, y) for x, y in sites])
    keys = list(sites)

    def reached(which: str) -> set:
        drops = links[(links["plan"] == which) & (links["road_class"] == "access")]
        ends = [shapely.Point(c) for g in drops.geometry for c in (g.coords[0], g.coords[-1])]
        idx, dist = tree.query_nearest(ends, return_distance=True)
        return {keys[j] for j, d in zip(idx[1], dist, strict=True) if d < 1.0}

    joint, separate = reached("joint"), reached("separate")
    assert joint
    assert joint == separate
    left_out = {s["site_id"] for s in backbone.get("left_out", [])}
    assert left_out == set(backbone["unreachable_sites"])
    planned = {k for k in keys if not (sites[k] & left_out)}
    assert joint == planned


def test_map_stays_within_the_study_area_and_its_margin(real_run):
    _, out, _, _ = real_run[True]
    html = (out / "map.html").read_text("utf-8")
    bounds = [
        json.loads(m.group(1))
        for m in re.finditer(r"\.fitBounds\(\s*(\[\[[^\]]*\],\s*\[[^\]]*\]\])", html)
    ]
    (lat0, lon0), (lat1, lon1) = bounds[-1]
    w_lon0, w_lat0, w_lon1, w_lat1 = read_vector(WARDS).total_bounds
    pad = 1.5 * MARGIN_M / 111_000.0 + 0.01  # the margin in degrees, and half a 200 m cell
    assert w_lon0 - pad <= lon0, lon0
    assert lon1 <= w_lon1 + pad, lon1
    assert w_lat0 - pad <= lat0, lat0
    assert lat1 <= w_lat1 + pad, lat1
