"""Road pieces that do not meet, joined by the shortest off-road trenches.

:func:`gap_links` against a brute force (every pair of points of every pair of pieces, then a
minimum spanning tree of the pieces by networkx); the triangulated search against the
pair-by-pair one; the graph and the plan built on roads in two pieces.
"""

from __future__ import annotations

import itertools

import geopandas as gpd
import networkx as nx
import numpy as np
import pytest
import shapely
import shapely.affinity
from shapely.geometry import LineString, Point

from telcoplan.backbone import _pieces
from telcoplan.backbone._pieces import gap_links
from telcoplan.backbone.choices import OFF_ROAD
from telcoplan.backbone.graph import (
    DEFAULT_TRENCH_COST_PER_M,
    build_graph,
    operator_costs,
    snap_sites,
)
from telcoplan.backbone.plans import plan_backbone

CRS = "EPSG:32649"


def _pieces_of(rng: np.random.Generator, k: int, per_piece: int) -> tuple[list, list, list]:
    """``k`` random road pieces (each a chain of ``per_piece`` edges), as edges and end nodes."""
    geoms, u, v = [], [], []
    node = 0
    for _ in range(k):
        start = rng.uniform(0, 20_000, 2)
        pts = start + np.cumsum(rng.normal(0, 400, (per_piece + 1, 2)), axis=0)
        for a, b in itertools.pairwise(pts):
            geoms.append(LineString([a, (a + b) / 2 + rng.normal(0, 50, 2), b]))
            u.append(node)
            v.append(node + 1)
            node += 1
        node += 1
    return geoms, u, v


def _brute_force(geoms, u, v, max_gap_m, spacing_m=100.0) -> tuple[float, float, int]:
    """The minimum spanning forest of the pieces by every pair of points (``spacing_m`` apart
    along the roads; gaps ≤ max_gap_m): its total length and how many pieces stay apart; and
    the same forest's total with each gap measured exactly between the pieces' roads."""
    g = nx.Graph()
    g.add_edges_from(zip(u, v, strict=True))
    piece_of = {n: i for i, c in enumerate(nx.connected_components(g)) for n in c}
    points: dict[int, list] = {}
    lines: dict[int, list] = {}
    for geom, a in zip(geoms, u, strict=True):
        dense = shapely.segmentize(geom, spacing_m)
        points.setdefault(piece_of[a], []).extend(dense.coords)
        lines.setdefault(piece_of[a], []).append(geom)
    pieces = nx.Graph()
    pieces.add_nodes_from(points)
    for a, b in itertools.combinations(sorted(points), 2):
        pa, pb = np.asarray(points[a]), np.asarray(points[b])
        d = float(np.sqrt(((pa[:, None, :] - pb[None, :, :]) ** 2).sum(-1)).min())
        if d <= max_gap_m:
            exact = shapely.distance(shapely.union_all(lines[a]), shapely.union_all(lines[b]))
            pieces.add_edge(a, b, weight=d, exact=exact)
    forest = nx.minimum_spanning_tree(pieces)
    return (
        forest.size(weight="weight"),
        forest.size(weight="exact"),
        nx.number_connected_components(forest),
    )


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("max_gap_m", [1_500.0, 1e9])
def test_gap_links_is_the_minimum_spanning_forest_of_the_pieces(seed, max_gap_m):
    """The forest chosen on the sampled points, each link then between the two roads' nearest
    points: no longer than the brute force's sampled gaps, no shorter than its exact ones."""
    rng = np.random.default_rng(seed)
    geoms, u, v = _pieces_of(rng, k=int(rng.integers(2, 7)), per_piece=4)
    got = gap_links(np.array(geoms, dtype=object), np.array(u), np.array(v), max_gap_m)
    sampled, exact, want_apart = _brute_force(geoms, u, v, max_gap_m)
    assert exact - 1e-6 <= got.length_m.sum() <= sampled + 1e-6
    assert got.apart == want_apart
    assert got.pieces - len(got.lines) == got.apart
    assert np.all(got.length_m <= max_gap_m)
    # each link's length is its line's; each end lies on a road
    assert np.allclose(shapely.length(got.lines), got.length_m)
    roads = shapely.union_all(geoms)
    for line in got.lines:
        assert shapely.distance(roads, Point(line.coords[0])) < 1e-6
        assert shapely.distance(roads, Point(line.coords[-1])) < 1e-6


@pytest.mark.parametrize("seed", range(30))
def test_the_joined_graph_is_connected_at_real_coordinates(seed):
    """At UTM coordinates (x ≈ 8e5, y ≈ 1.8e6 m), where a link's end computed on a road lies
    off it by rounding, every link still joins its pieces: the graph built has as many pieces
    as the joining left apart (a review found 3 of 40 such cases left a link hanging)."""
    rng = np.random.default_rng(seed)
    geoms, _, _ = _pieces_of(rng, k=int(rng.integers(2, 8)), per_piece=3)
    roads = gpd.GeoDataFrame(
        {"road_class": "residential"},
        index=[f"r{i}" for i in range(len(geoms))],
        geometry=[shapely.affinity.translate(g, 800_000.123, 1_750_000.456) for g in geoms],
        crs=CRS,
    )
    G = build_graph(roads, join_pieces_m=3_000.0)
    assert nx.number_connected_components(G) == G.graph["pieces"]["apart"]
    assert G.graph["pieces"]["links"] == G.graph["pieces"]["before"] - G.graph["pieces"]["apart"]


def test_the_triangulated_search_finds_what_the_pair_by_pair_one_does(monkeypatch):
    rng = np.random.default_rng(11)
    geoms, u, v = _pieces_of(rng, k=12, per_piece=30)  # several thousand points
    args = (np.array(geoms, dtype=object), np.array(u), np.array(v), 5_000.0)
    fast = gap_links(*args)
    assert shapely.get_num_coordinates(shapely.segmentize(args[0], 100.0)).sum() > (
        _pieces._ALL_PAIRS_MAX_POINTS
    )
    monkeypatch.setattr(_pieces, "_ALL_PAIRS_MAX_POINTS", 10**9)
    slow = gap_links(*args)
    assert fast.length_m.sum() == pytest.approx(slow.length_m.sum(), rel=1e-12)
    assert fast.apart == slow.apart


def test_one_piece_needs_no_link():
    geoms = np.array([LineString([(0, 0), (100, 0)]), LineString([(100, 0), (100, 50)])])
    got = gap_links(geoms, np.array([0, 1]), np.array([1, 2]), 1e9)
    assert (len(got.lines), got.pieces, got.apart) == (0, 1, 1)


def _two_pieces(far_m: float = 800.0) -> gpd.GeoDataFrame:
    """A main road network and, ``far_m`` north of the middle of its east-west road, a
    separate road running north."""
    return gpd.GeoDataFrame(
        {"road_class": ["primary", "residential", "secondary"]},
        index=["main", "spur", "island"],
        geometry=[
            LineString([(0, 0), (10_000, 0)]),
            LineString([(0, 0), (0, 3_000)]),
            LineString([(5_000, far_m), (5_000, far_m + 4_000)]),
        ],
        crs=CRS,
    )


def test_build_graph_joins_the_pieces_with_an_off_road_trench():
    roads = _two_pieces()
    before = roads.copy()
    apart = build_graph(roads)
    assert nx.number_connected_components(apart) == 2
    G = build_graph(roads, join_pieces_m=10_000.0)
    assert roads.equals(before), "the roads layer is unchanged"
    assert nx.is_connected(G)
    links = [d for _, _, d in G.edges(data=True) if d["road_class"] == OFF_ROAD]
    assert len(links) == 1
    (link,) = links
    # the shortest gap: straight down from the island's end to the middle of the main road
    assert link["length_m"] == pytest.approx(800.0)
    assert link["trench_cost"] == pytest.approx(800.0 * DEFAULT_TRENCH_COST_PER_M[OFF_ROAD])
    assert link["road_id"] == f"({OFF_ROAD} 1)"
    assert G.has_node((5_000.0, 0.0)), "the main road is split where the trench meets it"
    assert G.graph["pieces"] == {
        "before": 2,
        "apart": 1,
        "links": 1,
        "length_m": pytest.approx(800.0),
        "longest_m": pytest.approx(800.0),
    }
    # the roads themselves are all there, in the same lengths
    road_m = sum(d["length_m"] for _, _, d in G.edges(data=True) if d["road_class"] != OFF_ROAD)
    assert road_m == pytest.approx(before.length.sum())


def test_pieces_farther_apart_than_allowed_stay_apart():
    G = build_graph(_two_pieces(far_m=3_000.0), join_pieces_m=2_000.0)
    assert nx.number_connected_components(G) == 2
    assert G.graph["pieces"]["apart"] == 2
    assert G.graph["pieces"]["links"] == 0


def test_a_site_on_the_smaller_piece_is_planned_not_left_out():
    roads = _two_pieces()
    sites = gpd.GeoDataFrame(
        index=["a1", "a2", "a3"],
        geometry=[Point(9_000, 100), Point(100, 2_500), Point(5_100, 4_000)],  # a3: the island
        crs=CRS,
    )
    ops = {"a1": ["Viettel"], "a2": ["Viettel"], "a3": ["Viettel"]}
    G, nodes = snap_sites(build_graph(roads), sites)
    plan = plan_backbone(operator_costs(G, ["Viettel"]), nodes, ops, shapley=False)
    assert plan.left_out == {"a3": "no road path to Viettel's other sites"}
    G, nodes = snap_sites(build_graph(roads, join_pieces_m=10_000.0), sites)
    plan = plan_backbone(operator_costs(G, ["Viettel"]), nodes, ops, shapley=False)
    assert plan.left_out == {}
    # the tree reaches a3 through the 800 m trench: 9 km of main road to x = 0 … (a1 at 9 km,
    # a2 on the spur at 2.5 km), the island 3.2 km up to a3, and the three drops
    drops = 100 + 100 + 100
    assert plan.joint.length_m == pytest.approx(9_000 + 2_500 + 800 + 3_200 + drops)
