"""The backbone plan stage and the ``telcoplan backbone`` command, end to end on small layers."""

from __future__ import annotations

import json

import geopandas as gpd
import pandas as pd
import pyogrio
import pytest
import yaml
from click.testing import CliRunner
from shapely.geometry import LineString, Point

from telcoplan.backbone.choices import OFF_ROAD
from telcoplan.cli import cli
from telcoplan.errors import PlanError
from telcoplan.gis.vector import write_vector
from telcoplan.maps._assets import external_references
from telcoplan.pipeline import read_plan, run_plan
from tests.conftest import UTM49, X0, Y0


@pytest.fixture
def fiber1() -> gpd.GeoDataFrame:
    """Viettel fiber along the bottom road (r1), MobiFone fiber on the right road (r2)."""
    return gpd.GeoDataFrame(
        {"fiber_id": ["f1", "f2"], "operator": ["Viettel", "MobiFone"]},
        geometry=[
            LineString([(X0 + 50, Y0 + 50), (X0 + 500, Y0 + 50)]),
            LineString([(X0 + 950, Y0 + 50), (X0 + 950, Y0 + 500)]),
        ],
        crs=UTM49,
    )


@pytest.fixture
def backbone_plan(tmp_path, areas4, towers5, roads3, fiber1):
    inputs = tmp_path / "inputs"
    # no population anywhere: the backbone alone does not need it
    write_vector(inputs / "areas.gpkg", areas4.drop(columns="population"))
    write_vector(inputs / "towers.gpkg", towers5)
    write_vector(inputs / "roads.gpkg", roads3)
    write_vector(inputs / "fiber.gpkg", fiber1)
    doc = {
        "name": "backbone",
        "resolution_m": 100,
        "layers": {k: f"inputs/{k}.gpkg" for k in ("areas", "towers", "roads", "fiber")},
        "stages": {"coverage": False, "gaps": False, "backbone": {"lease_factor": 0.5}},
    }
    path = tmp_path / "plan.yml"
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    return path


def test_backbone_stage_outputs_and_invariants(backbone_plan, tmp_path):
    out = tmp_path / "out"
    summary = run_plan(read_plan(backbone_plan), out)
    bb = summary["backbone"]
    on_disk = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert on_disk["backbone"] == bb
    for key in ("length_km_joint", "length_km_separate", "cost_joint", "cost_separate"):
        assert bb[key] > 0, key
    # one shared trench network never costs more than everyone digging alone
    assert bb["cost_joint"] <= bb["cost_separate"] + 1e-6
    assert bb["savings_pct"] == pytest.approx(
        100 * (bb["cost_separate"] - bb["cost_joint"]) / bb["cost_separate"], abs=0.01
    )
    # cost shares are a split of the joint cost
    assert sum(bb["share_shapley"].values()) == pytest.approx(bb["cost_joint"], abs=0.05)
    assert sum(bb["share_proportional"].values()) == pytest.approx(bb["cost_joint"], abs=0.05)
    assert set(bb["share_shapley"]) == {"Viettel", "VinaPhone", "MobiFone"}
    # four physical sites: VT-2 and VNP-1 share a mast
    assert bb["sites"] == 4
    assert bb["shared_sites"] == 1

    assert "links" in dict(pyogrio.list_layers(out / "backbone.gpkg"))
    links = gpd.read_file(out / "backbone.gpkg", layer="links")
    assert links.crs.equals(UTM49)
    joint = links[links["plan"] == "joint"]
    separate = links[links["plan"] == "separate"]
    assert joint["cost"].sum() == pytest.approx(bb["cost_joint"], abs=0.05)
    assert separate["cost"].sum() == pytest.approx(bb["cost_separate"], abs=0.05)
    assert joint["length_m"].sum() / 1000 == pytest.approx(bb["length_km_joint"], abs=1e-3)
    new = joint[joint["status"] == "new"]
    assert new["length_m"].sum() / 1000 == pytest.approx(bb["trench_km_joint"], abs=1e-3)
    assert 0 < bb["trench_km_joint"] <= bb["length_km_joint"]
    # geometry follows the roads: every link but the site drops lies on the road network
    roads = gpd.read_file(tmp_path / "inputs" / "roads.gpkg").union_all()
    on_road = links[links["road_class"] != "access"]
    assert len(on_road) > 0
    assert all(roads.buffer(0.01).contains(g) for g in on_road.geometry)
    drops = links[links["road_class"] == "access"]
    towers = gpd.read_file(tmp_path / "inputs" / "towers.gpkg")
    assert all(towers.distance(g.boundary).min() < 0.01 for g in drops.geometry)
    assert set(links["status"]) <= {"new", "reused", "leased"}
    assert summary["population_total"] is None  # no population layer: left out, not zero
    # the map and the report show the backbone
    report = (out / "report.html").read_text(encoding="utf-8")
    assert "Backbone" in report
    assert "Shapley" in report
    html = (out / "map.html").read_text(encoding="utf-8")
    assert "Backbone" in html


def test_backbone_parameters_checked_when_the_plan_is_read(backbone_plan):
    doc = yaml.safe_load(backbone_plan.read_text(encoding="utf-8"))
    doc["stages"]["backbone"] = {"lease_factr": 1, "own_fiber_factor": 2, "protect": "some"}
    backbone_plan.write_text(yaml.safe_dump(doc), encoding="utf-8")
    with pytest.raises(PlanError) as err:
        read_plan(backbone_plan)
    msg = str(err.value)
    assert "lease_factr" in msg
    assert "own_fiber_factor" in msg
    assert "protect" in msg


def test_backbone_command(tmp_path, backbone_plan):
    inputs = tmp_path / "inputs"
    out = tmp_path / "cli-out"
    args = [
        "backbone",
        "--towers",
        str(inputs / "towers.gpkg"),
        "--roads",
        str(inputs / "roads.gpkg"),
        "--fiber",
        str(inputs / "fiber.gpkg"),
        "--area",
        str(inputs / "areas.gpkg"),
        "--out",
        str(out),
    ]
    runner = CliRunner()
    res = runner.invoke(cli, args)
    assert res.exit_code == 0, res.output
    assert "saved" in res.output
    assert (out / "backbone.gpkg").exists()
    bb = json.loads((out / "summary.json").read_text(encoding="utf-8"))["backbone"]
    assert bb["cost_joint"] <= bb["cost_separate"]
    # a second run refuses to overwrite, cleanly
    res = runner.invoke(cli, args)
    assert res.exit_code != 0
    assert "--overwrite" in res.output
    assert "Traceback" not in res.output
    assert bb["operators_without_fiber"] == ["VinaPhone"]  # it connects through leased fiber
    # forbidding leases: no separate link uses another operator's fiber, and VinaPhone, which
    # has none of its own, is reported
    res = runner.invoke(cli, [*args, "--overwrite", "--no-lease", "--no-shapley"])
    assert res.exit_code == 0, res.output
    strict = json.loads((out / "summary.json").read_text(encoding="utf-8"))["backbone"]
    assert strict["operators_without_fiber"] == ["VinaPhone"]
    assert strict["share_shapley"] == {}
    links = gpd.read_file(out / "backbone.gpkg", layer="links")
    assert "leased" not in set(links["status"])


def test_map_and_report_commands_on_a_plan_output(backbone_plan, tmp_path):
    doc = yaml.safe_load(backbone_plan.read_text(encoding="utf-8"))
    doc["stages"]["report"] = {"currency": "VND"}
    backbone_plan.write_text(yaml.safe_dump(doc), encoding="utf-8")
    out = tmp_path / "out"
    run_plan(read_plan(backbone_plan), out)
    assert "VND" in (out / "report.html").read_text(encoding="utf-8")
    assert (out / "figure.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"  # on its own too
    runner = CliRunner()
    # both exist from the plan's own stages: drawn again from the run's data (no --overwrite)
    for cmd in ("map", "report"):
        before = (out / f"{cmd}.html").stat().st_mtime_ns
        res = runner.invoke(cli, [cmd, str(out), "--plan", str(backbone_plan)])
        assert res.exit_code == 0, res.output
        assert (out / f"{cmd}.html").stat().st_mtime_ns > before
    # without the plan a backbone-only output has no areas for a map: a clean error
    res = runner.invoke(cli, ["map", str(out)])
    assert res.exit_code == 1, res.output
    assert "areas" in res.output
    assert "Traceback" not in res.output
    res = runner.invoke(
        cli, ["map", str(out), "--plan", str(backbone_plan), "-o", str(tmp_path / "m.html")]
    )
    assert res.exit_code == 0, res.output
    html = (tmp_path / "m.html").read_text(encoding="utf-8")
    assert external_references(html) == []  # self-contained
    assert "Fiber" in html  # the plan's input fiber is drawn with --plan
    res = runner.invoke(
        cli, ["map", str(out), "--tiles", "ftp://x", "-o", str(tmp_path / "n.html")]
    )
    assert res.exit_code != 0
    assert "tiles" in res.output
    assert "Traceback" not in res.output
    assert not (tmp_path / "n.html").exists()
    # without the plan, a backbone-only output has no areas to draw: no figure, said so
    res = runner.invoke(cli, ["report", str(out), "-o", str(tmp_path / "r.html")])
    assert res.exit_code == 0, res.output
    assert "without the plan figure" in res.output
    text = (tmp_path / "r.html").read_text(encoding="utf-8")
    assert "data:image/png;base64," not in text
    assert "Backbone" in text
    res = runner.invoke(
        cli, ["report", str(out), "--plan", str(backbone_plan), "-o", str(tmp_path / "r2.html")]
    )
    assert res.exit_code == 0, res.output
    text = (tmp_path / "r2.html").read_text(encoding="utf-8")
    assert "data:image/png;base64," in text  # the plan figure is embedded
    assert "VND" in text  # the plan's report settings apply
    assert (tmp_path / "figure.png").exists()  # and written beside the report


def test_ring_protection_in_the_stage(backbone_plan, tmp_path):
    """protect: all — every site either survives any single link cut of the joint network plus
    its rings (checked by brute force), or is listed with a reason."""
    import networkx as nx

    # close a loop: r4 joins the spur's end to the right-hand road, so rings are possible
    roads = gpd.read_file(tmp_path / "inputs" / "roads.gpkg")
    r4 = gpd.GeoDataFrame(
        {"road_id": ["r4"], "road_class": ["residential"], "name": ["D"]},
        geometry=[LineString([(X0 + 500, Y0 + 500), (X0 + 950, Y0 + 500)])],
        crs=UTM49,
    )
    write_vector(tmp_path / "inputs" / "roads.gpkg", pd.concat([roads, r4]), overwrite=True)
    doc = yaml.safe_load(backbone_plan.read_text(encoding="utf-8"))
    doc["stages"]["backbone"]["protect"] = "all"
    backbone_plan.write_text(yaml.safe_dump(doc), encoding="utf-8")
    out = tmp_path / "rings"
    bb = run_plan(read_plan(backbone_plan), out)["backbone"]
    rings = bb["rings"]
    assert rings["sites"] == bb["sites"] == 4
    assert rings["protected"] + len(rings["unprotected"]) == rings["sites"]
    assert rings["cost"] > 0  # a ring link was needed
    assert "VT-3" in rings["unprotected"]  # at the end of a dead-end road
    assert all(isinstance(r, str) and r for r in rings["unprotected"].values())
    links = gpd.read_file(out / "backbone.gpkg", layer="links")
    ring = links[links["plan"] == "ring"]
    assert ring["length_m"].sum() / 1000 == pytest.approx(rings["length_km"], abs=1e-3)
    assert ring["cost"].sum() == pytest.approx(rings["cost"], abs=0.05)
    assert (ring["status"] == "ring").all()
    # brute force on the geometry: joint + ring links as a graph, fiber ends as one root
    fiber = gpd.read_file(tmp_path / "inputs" / "fiber.gpkg").union_all()
    net = links[links["plan"].isin(["joint", "ring"])]
    G = nx.Graph()
    key = lambda p: (round(p[0], 2), round(p[1], 2))  # noqa: E731
    for geom in net.geometry:
        a, b = key(geom.coords[0]), key(geom.coords[-1])
        G.add_edge(a, b)
    from shapely.geometry import Point

    for n in list(G):
        if fiber.distance(Point(n)) < 5.01:
            G.add_edge(n, "root")
    towers = gpd.read_file(tmp_path / "inputs" / "towers.gpkg").set_index("site_id")
    protected = [s for s in ("VT-1", "VT-2", "MBF-1", "VT-3") if s not in rings["unprotected"]]
    assert protected  # the fixture's sites sit on a road loop: some can be protected
    for sid in protected:
        node = key(towers.geometry.loc[sid].coords[0])
        # the site's access drop is exempt: protection starts at its road point
        (road_point,) = list(G.neighbors(node)) if G.degree(node) == 1 else [node]
        for e in list(G.edges):
            if (node in e and road_point != node) or "root" in e:
                continue  # the drop is exempt; the fiber itself is not cut
            H = G.copy()
            H.remove_edge(*e)
            assert nx.has_path(H, road_point, "root"), (sid, e)


@pytest.mark.parametrize("join_pieces_m", [None, 300.0, 0.0])
def test_a_road_piece_that_joins_nothing(backbone_plan, tmp_path, towers5, join_pieces_m):
    """A tower beside a road piece that joins nothing, ~450 m from the other roads: joined by
    an off-road trench up to join_pieces_m (5 km by default); farther (or 0: never), left out
    of the plans and listed."""
    far = gpd.GeoDataFrame(
        {"road_id": ["island"], "road_class": ["track"], "name": ["E"]},
        geometry=[LineString([(X0 + 100, Y0 + 900), (X0 + 300, Y0 + 900)])],
        crs=UTM49,
    )
    roads = gpd.read_file(tmp_path / "inputs" / "roads.gpkg")
    write_vector(tmp_path / "inputs" / "roads.gpkg", pd.concat([roads, far]), overwrite=True)
    lonely = towers5.iloc[[0]].copy()
    lonely.index = ["VT-9"]
    lonely["site_id"] = ["VT-9"]
    lonely.geometry = [Point(X0 + 200, Y0 + 920)]
    towers = pd.concat([towers5, lonely], ignore_index=True)
    write_vector(tmp_path / "inputs" / "towers.gpkg", towers, overwrite=True)
    if join_pieces_m is not None:
        doc = yaml.safe_load(backbone_plan.read_text(encoding="utf-8"))
        backbone = doc["stages"].get("backbone") or {}
        doc["stages"]["backbone"] = {**backbone, "join_pieces_m": join_pieces_m}
        backbone_plan.write_text(yaml.safe_dump(doc), encoding="utf-8")
    bb = run_plan(read_plan(backbone_plan), tmp_path / "out")["backbone"]
    assert bb["sites"] == 5
    assert bb["cost_joint"] <= bb["cost_separate"]
    pieces = bb["road_pieces"]
    if join_pieces_m == 0.0:
        assert pieces is None  # not looked for
        assert bb["unreachable_sites"] == ["VT-9"]
        return
    assert pieces["before"] == 2
    if join_pieces_m is None:
        assert bb["unreachable_sites"] == []
        assert (pieces["apart"], pieces["links"]) == (1, 1)
        # the trench: from the island's nearest point to the nearest other road's
        island = far.geometry.iloc[0]
        others = roads.geometry.union_all()
        assert pieces["length_m"] == pytest.approx(island.distance(others), abs=100.0)
        links = gpd.read_file(tmp_path / "out" / "backbone.gpkg", layer="links")
        assert OFF_ROAD in set(links.loc[links["plan"] == "joint", "road_class"])
        # the straight lines off the roads, summed from the links written
        for plan in ("joint", "separate"):
            mine = links[(links["plan"] == plan) & links["road_class"].isin(["access", OFF_ROAD])]
            assert bb[f"off_road_km_{plan}"] == pytest.approx(
                mine["length_m"].sum() / 1000.0, abs=1e-3
            )
        drops = links.loc[links["road_class"] == "access", "length_m"]
        assert bb["longest_access_m"] == pytest.approx(drops.max(), abs=0.05)
        report = (tmp_path / "out" / "report.html").read_text(encoding="utf-8")
        share = bb["off_road_km_joint"] / bb["length_km_joint"]
        assert ("of the joint route" in report) == (share >= 0.2), share
        # and on the headline card, beside the saving it qualifies
        card = report.split("Backbone: joint build saves", 1)[1].split('<div class="card">')[0]
        assert ("of the joint route are straight lines off the roads" in card) == (share >= 0.2)
        assert "The roads fall into 2 pieces that do not meet" in report
        assert "1 straight off-road trench (" in report
        assert "m) joins them" in report
    else:
        assert bb["unreachable_sites"] == ["VT-9"]
        assert (pieces["apart"], pieces["links"]) == (2, 0)
        report = (tmp_path / "out" / "report.html").read_text(encoding="utf-8")
        assert "2 pieces stay farther apart than" in report


def test_backbone_plan_checks(backbone_plan, tmp_path):
    doc = yaml.safe_load(backbone_plan.read_text(encoding="utf-8"))
    doc["stages"]["backbone"] = {"cost_per_m": {"primery": 45, "residential": float("inf")}}
    del doc["layers"]["fiber"]
    backbone_plan.write_text(yaml.safe_dump(doc), encoding="utf-8")
    with pytest.raises(PlanError) as err:
        read_plan(backbone_plan)
    msg = str(err.value)
    assert "'primery'" in msg
    assert "did you mean 'primary'" in msg
    assert "cost_per_m.residential must be a finite" in msg
    assert "layers.fiber" not in msg  # without fiber the backbone is planned greenfield
    # a configured backbone needs roads and towers
    roads = doc["layers"].pop("roads")
    backbone_plan.write_text(yaml.safe_dump(doc), encoding="utf-8")
    with pytest.raises(
        PlanError, match=r"stages.backbone needs the layers roads, towers; add layers.roads"
    ):
        read_plan(backbone_plan)
    # without fiber, the stage runs greenfield
    doc["layers"]["roads"] = roads
    del doc["stages"]["backbone"]
    backbone_plan.write_text(yaml.safe_dump(doc), encoding="utf-8")
    summary = run_plan(read_plan(backbone_plan), tmp_path / "nofiber")
    assert summary["backbone"]["mode"] == "greenfield"
    assert summary["backbone"]["trench_km_joint"] == summary["backbone"]["length_km_joint"]


def test_fiber_far_from_every_road_is_a_clear_error(backbone_plan, tmp_path, fiber1):
    away = fiber1.copy()
    away.geometry = [  # 250 m and more off every road
        LineString([(X0 + 200, Y0 + 300), (X0 + 400, Y0 + 300)]),
        LineString([(X0 + 700, Y0 + 700), (X0 + 800, Y0 + 700)]),
    ]
    write_vector(tmp_path / "inputs" / "fiber.gpkg", away, overwrite=True)
    out = tmp_path / "out"
    with pytest.raises(PlanError, match="no fiber runs along the roads"):
        run_plan(read_plan(backbone_plan), out)
    assert not (out / "summary.json").exists()


def test_physical_sites_cluster_by_distance(towers5):
    """Towers 2 cm apart across a 1 m grid line are one site; 1.5 m apart are two."""
    from telcoplan.layers.towers import physical_sites

    t = towers5.iloc[:3].copy()
    t.geometry = [Point(X0 + 100.49, Y0), Point(X0 + 100.51, Y0), Point(X0 + 102.0, Y0)]
    sites, ops = physical_sites(t.set_index("site_id"))
    assert list(sites.index) == ["VT-1", "VNP-1"]
    assert ops == {"VT-1": ["Viettel"], "VNP-1": ["VinaPhone"]}
    t.geometry = [Point(X0 + 100.49, Y0), Point(X0 + 100.51, Y0), Point(X0 + 101.2, Y0)]
    sites, ops = physical_sites(t.set_index("site_id"))
    assert list(sites.index) == ["VT-1"]
    assert ops == {"VT-1": ["Viettel", "VinaPhone"]}


def test_greenfield_backbone_without_fiber(backbone_plan, tmp_path, towers5, caplog):
    """No fiber layer: the backbone is planned greenfield (every link a new trench), and says so
    in the log, the summary and the report; a site on a road piece apart from its operator's
    other sites is left out of both plans, with the reason."""
    import logging

    far = gpd.GeoDataFrame(
        {"road_id": ["island"], "road_class": ["track"], "name": ["E"]},
        geometry=[LineString([(X0 + 100, Y0 + 900), (X0 + 300, Y0 + 900)])],
        crs=UTM49,
    )
    roads = gpd.read_file(tmp_path / "inputs" / "roads.gpkg")
    write_vector(tmp_path / "inputs" / "roads.gpkg", pd.concat([roads, far]), overwrite=True)
    lonely = towers5.iloc[[0]].copy()
    lonely["site_id"] = ["VT-<9>"]
    lonely.geometry = [Point(X0 + 200, Y0 + 920)]
    write_vector(
        tmp_path / "inputs" / "towers.gpkg",
        pd.concat([towers5, lonely], ignore_index=True),
        overwrite=True,
    )
    doc = yaml.safe_load(backbone_plan.read_text(encoding="utf-8"))
    del doc["layers"]["fiber"]
    # the island ~450 m away stays apart: off-road trenches no longer than 300 m
    doc["stages"]["backbone"] = {**(doc["stages"].get("backbone") or {}), "join_pieces_m": 300}
    backbone_plan.write_text(yaml.safe_dump(doc), encoding="utf-8")
    out = tmp_path / "out"
    with caplog.at_level(logging.INFO, logger="telcoplan"):  # (a forked stage's log is not here)
        run_plan(read_plan(backbone_plan), out, concurrent=False)
    assert "backbone: greenfield plan (no layers.fiber)" in caplog.text
    bb = json.loads((out / "summary.json").read_text(encoding="utf-8"))["backbone"]
    assert bb["mode"] == "greenfield"
    assert bb["sites"] == 5
    assert bb["left_out"] == [
        {"site_id": "VT-<9>", "reason": "no road path to Viettel's other sites"}
    ]
    assert bb["unreachable_sites"] == ["VT-<9>"]
    assert bb["trench_km_joint"] == bb["length_km_joint"] > 0  # all new trench
    assert bb["trench_km_separate"] == bb["length_km_separate"]
    assert bb["cost_joint"] <= bb["cost_separate"]
    links = gpd.read_file(out / "backbone.gpkg", layer="links")
    assert set(links["status"]) == {"new"}
    report = (out / "report.html").read_text(encoding="utf-8")
    assert "<strong>Greenfield plan</strong>: no existing fibre was given" in report
    assert "left out of both the joint and the separate plans" in report
    assert "VT-&lt;9&gt;" in report  # escaped
    assert "VT-<9>" not in report
    assert "Without any fibre to start from" not in report


def test_sites_beyond_max_snap_are_left_out_not_fatal(backbone_plan, tmp_path):
    """VT-3 lies 250 m from the nearest road: with max_snap_m 200 it is left out of every plan,
    with its distance, and the others are planned (before: the whole run stopped)."""
    doc = yaml.safe_load(backbone_plan.read_text(encoding="utf-8"))
    doc["stages"]["backbone"]["max_snap_m"] = 200
    backbone_plan.write_text(yaml.safe_dump(doc), encoding="utf-8")
    bb = run_plan(read_plan(backbone_plan), tmp_path / "out")["backbone"]
    assert bb["sites"] == 4  # VT-2 and VNP-1 share a mast
    reasons = {s["site_id"]: s["reason"] for s in bb["left_out"]}
    assert set(reasons) == {"VT-3"}
    assert "250 m" in reasons["VT-3"]
    assert "max_snap_m" in reasons["VT-3"]
    assert bb["cost_joint"] > 0
