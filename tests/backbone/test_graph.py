"""The backbone graph: noding, fiber marking, site snapping, costs, GeoDataFrame round trip."""

from __future__ import annotations

import geopandas as gpd
import networkx as nx
import pytest
from shapely.geometry import LineString, Point

from telcoplan.backbone.graph import (
    DEFAULT_TRENCH_COST_PER_M,
    build_graph,
    graph_from_gdfs,
    graph_to_gdfs,
    operator_costs,
    snap_sites,
)
from telcoplan.errors import CRSError, PlanError
from tests.conftest import UTM49, X0, Y0, assert_unchanged


@pytest.fixture
def cross_roads():
    """Two roads crossing at (X0+500, Y0+500) without a shared vertex, and a spur."""
    return gpd.GeoDataFrame(
        {"road_id": ["h", "v", "s"], "road_class": ["primary", "residential", "track"]},
        geometry=[
            LineString([(X0, Y0 + 500), (X0 + 1000, Y0 + 500)]),
            LineString([(X0 + 500, Y0), (X0 + 500, Y0 + 1000)]),
            LineString([(X0 + 1000, Y0 + 500), (X0 + 1000, Y0 + 900)]),
        ],
        crs=UTM49,
    ).set_index("road_id")


def test_roads_are_noded_at_crossings(cross_roads):
    before = cross_roads.copy()
    G = build_graph(cross_roads)
    assert G.graph["crs"] == "EPSG:32649"
    assert (X0 + 500, Y0 + 500) in G
    assert G.degree[(X0 + 500, Y0 + 500)] == 4
    assert G.number_of_edges() == 5
    assert nx.is_connected(G)
    total = sum(d["length_m"] for *_, d in G.edges(data=True))
    assert total == pytest.approx(2400.0)
    e = G.edges[(X0, Y0 + 500), (X0 + 500, Y0 + 500)]
    assert e["road_class"] == "primary"
    assert e["trench_cost"] == pytest.approx(500 * DEFAULT_TRENCH_COST_PER_M["primary"])
    assert_unchanged(before, cross_roads)


def test_fiber_marked_on_the_pieces_it_follows(cross_roads):
    fiber = gpd.GeoDataFrame(
        {"fiber_id": ["f1"], "operator": ["Viettel"]},
        geometry=[LineString([(X0, Y0 + 501), (X0 + 1000, Y0 + 501)])],  # along road h, 1 m off
        crs=UTM49,
    )
    G = build_graph(cross_roads, fiber=fiber)
    carried = {frozenset(d["road_id"] for *_, d in G.edges(data=True) if d["fiber"])}
    assert carried == {frozenset({"h"})}
    H = operator_costs(G, ["Viettel", "MobiFone"], own_fiber_factor=0.02, lease_factor=0.3)
    e = H.edges[(X0, Y0 + 500), (X0 + 500, Y0 + 500)]
    assert e["cost_Viettel"] == pytest.approx(0.02 * e["trench_cost"])
    assert e["cost_MobiFone"] == pytest.approx(0.3 * e["trench_cost"])
    assert e["cost_joint"] == pytest.approx(0.02 * e["trench_cost"])
    assert e["cost_Viettel_fiber"]
    assert e["cost_MobiFone_fiber"]
    assert e["cost_joint_fiber"]
    # leasing forbidden: MobiFone digs its own trench beside Viettel's cable
    forbidden = operator_costs(G, ["MobiFone"], lease_factor=None)
    f = forbidden.edges[(X0, Y0 + 500), (X0 + 500, Y0 + 500)]
    assert f["cost_MobiFone"] == f["trench_cost"]
    assert not f["cost_MobiFone_fiber"]
    plain = H.edges[(X0 + 500, Y0), (X0 + 500, Y0 + 500)]
    assert plain["cost_MobiFone"] == plain["trench_cost"] == plain["cost_joint"]


def test_snap_sites_splits_edges_and_keeps_length(cross_roads):
    G = build_graph(cross_roads)
    sites = gpd.GeoDataFrame(
        {"site_id": ["a", "b", "c"]},
        geometry=[Point(X0 + 200, Y0 + 560), Point(X0 + 200, Y0 + 440), Point(X0 + 1100, Y0 + 700)],
        crs=UTM49,
    ).set_index("site_id")
    H, mapping = snap_sites(G, sites)
    assert set(mapping) == {"a", "b", "c"}
    assert nx.is_connected(H)
    road = sum(d["length_m"] for *_, d in H.edges(data=True) if d["road_class"] != "access")
    assert road == pytest.approx(2400.0)
    # a and b snap to the same road point; their drops are 60 m
    assert H.edges[("site", "a"), (X0 + 200, Y0 + 500)]["length_m"] == pytest.approx(60.0)
    assert H.edges[("site", "b"), (X0 + 200, Y0 + 500)]["length_m"] == pytest.approx(60.0)
    assert H.edges[("site", "c"), (X0 + 1000, Y0 + 700)]["length_m"] == pytest.approx(100.0)
    assert G.number_of_nodes() == 6  # input graph unchanged
    far = sites.copy()
    far.loc["c", "geometry"] = Point(X0 + 50_000, Y0)
    with pytest.raises(PlanError, match="from any road: c"):
        snap_sites(G, far)
    with pytest.raises(CRSError):
        snap_sites(G, sites.to_crs("EPSG:4326"))


def test_gdf_round_trip(cross_roads):
    G = build_graph(cross_roads)
    H, _ = snap_sites(
        G, gpd.GeoDataFrame(geometry=[Point(X0 + 250, Y0 + 520)], index=["s1"], crs=UTM49)
    )
    nodes, edges = graph_to_gdfs(H)
    assert nodes.crs == edges.crs == H.graph["crs"]
    back = graph_from_gdfs(nodes, edges)
    assert back.number_of_nodes() == H.number_of_nodes()
    assert back.number_of_edges() == H.number_of_edges()
    assert sum(d["trench_cost"] for *_, d in back.edges(data=True)) == pytest.approx(
        sum(d["trench_cost"] for *_, d in H.edges(data=True))
    )
    assert back.graph["crs"] == H.graph["crs"]


def test_unknown_road_class_cost(cross_roads):
    odd = cross_roads.copy()
    odd.loc["s", "road_class"] = "ferry"
    with pytest.raises(PlanError, match="ferry"):
        build_graph(odd)
    with pytest.raises(CRSError):
        build_graph(cross_roads.to_crs("EPSG:4326"))


def test_fiber_along_part_of_a_road_marks_that_part():
    """A 2 km street with fiber along its first 700 m: the street is split where the cable
    ends, the covered part carries the fiber, the rest does not, and total length is kept."""
    roads = gpd.GeoDataFrame(
        {"road_class": ["primary"]},
        geometry=[LineString([(X0, Y0), (X0 + 2000, Y0)])],
        crs=UTM49,
    )
    fiber = gpd.GeoDataFrame(
        {"operator": ["Viettel"]},
        geometry=[LineString([(X0, Y0 + 2), (X0 + 700, Y0 + 2)])],
        crs=UTM49,
    )
    G = build_graph(roads, fiber=fiber)
    assert G.number_of_edges() == 2
    by_fiber = {bool(d["fiber"]): d["length_m"] for _, _, d in G.edges(data=True)}
    assert by_fiber[True] == pytest.approx(700, abs=0.01)
    assert by_fiber[False] == pytest.approx(1300, abs=0.01)
    assert sum(d["length_m"] for _, _, d in G.edges(data=True)) == pytest.approx(2000)


def test_fiber_turning_off_the_road_marks_only_the_shared_stretch():
    """Fiber along a 6 km road from 2.5 km to 4 km, then off across the fields: the road is
    split at both points where the cable meets and leaves it."""
    roads = gpd.GeoDataFrame(
        {"road_class": ["primary"]}, geometry=[LineString([(X0, Y0), (X0 + 6000, Y0)])], crs=UTM49
    )
    fiber = gpd.GeoDataFrame(
        {"operator": ["Viettel"]},
        geometry=[LineString([(X0 + 2500, Y0 + 1), (X0 + 4000, Y0 + 1), (X0 + 4000, Y0 + 900)])],
        crs=UTM49,
    )
    G = build_graph(roads, fiber=fiber)
    carried = sorted(d["length_m"] for _, _, d in G.edges(data=True) if d["fiber"])
    assert carried == [pytest.approx(1500, abs=5.1)]
    assert sum(d["length_m"] for _, _, d in G.edges(data=True)) == pytest.approx(6000)


def test_road_ends_a_hair_short_of_another_road_join_it():
    """Real road files digitise junctions a few mm to dm short: a T-junction 5 mm and 30 cm
    short, and two roads whose ends miss each other by 5 mm, are joined; a road ending 2 m
    short is not (the gap may be real). Lengths grow by at most the gap (+1 cm)."""
    main = LineString([(X0, Y0), (X0 + 1000, Y0)])
    roads = gpd.GeoDataFrame(
        {
            "road_id": ["main", "t5mm", "t30cm", "far", "next"],
            "road_class": ["primary", "residential", "residential", "residential", "primary"],
        },
        geometry=[
            main,
            LineString([(X0 + 200, Y0 + 500), (X0 + 200, Y0 + 0.005)]),
            LineString([(X0 + 500, Y0 - 400), (X0 + 500.1, Y0 - 0.3)]),
            LineString([(X0 + 800, Y0 + 300), (X0 + 800, Y0 + 2.0)]),
            LineString([(X0 + 1000.003, Y0 + 0.004), (X0 + 1600, Y0)]),
        ],
        crs=UTM49,
    ).set_index("road_id")
    G = build_graph(roads)
    comp = {
        d["road_id"]: k
        for k, c in enumerate(nx.connected_components(G))
        for _, _, d in G.subgraph(c).edges(data=True)
    }
    assert comp["t5mm"] == comp["t30cm"] == comp["main"] == comp["next"]
    assert comp["far"] != comp["main"]
    total = dict.fromkeys(roads.index, 0.0)
    for _, _, d in G.edges(data=True):
        total[d["road_id"]] += d["length_m"]
    for r, geom in roads.geometry.items():
        assert geom.length - 1e-6 <= total[r] <= geom.length + 0.32, r
