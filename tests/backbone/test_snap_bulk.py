"""Snapping sites in bulk against snapping them edge after edge, in place (the code it replaced,
issue 12): the same graph — nodes in the same order with the same attributes, every node's
neighbours in the same order (they break the Steiner heuristic's ties), the same edge attributes
and geometries (WKB) — on random road networks with sites at edge ends, on vertices, several on
one edge and several at one point; and the array substrings against :func:`shapely.ops.substring`.
"""

from __future__ import annotations

import itertools

import geopandas as gpd
import networkx as nx
import numpy as np
import pandas as pd
import pytest
import shapely
import shapely.ops
from shapely.geometry import LineString, Point

from telcoplan.backbone import graph as graph_mod
from telcoplan.backbone.graph import (
    DEFAULT_TRENCH_COST_PER_M,
    _substrings,
    build_graph,
    coalition_cost,
    mark_fiber_network,
    nearest_roads,
    operator_costs,
    snap_sites,
)
from tests.backbone.test_arrays import _random_roads, _sites_on
from tests.conftest import UTM49, X0, Y0


def _key(x: float, y: float) -> tuple[float, float]:
    return (round(float(x), 2), round(float(y), 2))


def snap_edge_by_edge(H: nx.Graph, sites: gpd.GeoDataFrame) -> dict:
    """Each site on its nearest edge, in place, one edge after the other (in order of each
    edge's first site), along it by distance, id and position: a site's road point becomes a
    node, the edge's pieces between the road points replace it (``shapely.ops.substring``,
    the edge's attributes with their own length and cost) and a drop joins the site."""
    costs = H.graph.get("cost_per_m", DEFAULT_TRENCH_COST_PER_M)
    edges = list(H.edges(data="geometry"))
    nearest, _ = nearest_roads(H, sites)
    pts = sites.geometry.to_numpy()
    split_at: dict[int, list] = {}
    for i, site_id in enumerate(sites.index):
        geom = edges[nearest[i]][2]
        split_at.setdefault(int(nearest[i]), []).append((geom.project(pts[i]), str(site_id), i))
    mapping = {}
    for e, items in split_at.items():
        u, v, geom = edges[e]
        data = dict(H.edges[u, v])
        a, b = (u, v) if _key(*geom.coords[0]) == u else (v, u)
        H.remove_edge(u, v)
        per_m = data["trench_cost"] / data["length_m"] if data["length_m"] > 0 else 0.0

        def piece(n1, n2, start, end, data=data, per_m=per_m, geom=geom):
            part = shapely.ops.substring(geom, start, end)
            ln = float(part.length)
            H.add_edge(n1, n2, **{**data, "length_m": ln, "trench_cost": ln * per_m,
                                  "geometry": part})  # fmt: skip

        prev_node, prev_pos = a, 0.0
        for pos, _, i in sorted(items):
            site_id = sites.index[i]
            p = geom.interpolate(pos)
            node = _key(p.x, p.y)
            if node not in H:
                H.add_node(node, x=node[0], y=node[1], kind="road_point")
            if pos > prev_pos and node != prev_node:
                piece(prev_node, node, prev_pos, pos)
            prev_node, prev_pos = node, max(pos, prev_pos)
            sx, sy = pts[i].x, pts[i].y
            H.add_node(("site", site_id), x=sx, y=sy, kind="site", site_id=str(site_id))
            drop = LineString([(sx, sy), (p.x, p.y)])
            H.add_edge(("site", site_id), node, length_m=drop.length, road_class="access",
                       road_id="", fiber=frozenset(), trench_cost=drop.length * costs["access"],
                       geometry=drop)  # fmt: skip
            mapping[site_id] = ("site", site_id)
        if prev_node != b:
            piece(prev_node, b, prev_pos, geom.length)
    return mapping


def _rows(G: nx.Graph) -> list:
    def value(x):
        return x.wkb if isinstance(x, shapely.Geometry) else x

    return [(u, v, [(k, value(x)) for k, x in d.items()]) for u, v, d in G.edges(data=True)]


def assert_identical(A: nx.Graph, B: nx.Graph) -> None:
    """The same nodes in the same order (attributes in the same order too), the same
    neighbours of each node in the same order, the same edges with the same attributes."""
    assert [(n, list(d.items())) for n, d in A.nodes(data=True)] == [
        (n, list(d.items())) for n, d in B.nodes(data=True)
    ]
    assert [list(A.adj[n]) for n in A] == [list(B.adj[n]) for n in B]
    assert _rows(A) == _rows(B)
    assert A.graph == B.graph


def _awkward_sites(G: nx.Graph, seed: int) -> gpd.GeoDataFrame:
    """Sites beside random edges (several on one edge), three at one spot, at both ends of an
    edge, on every inner vertex of a bent edge, and one beside each of those."""
    rng = np.random.default_rng(100 + seed)
    base = _sites_on(G, seed)
    edges = list(G.edges(data="geometry"))
    pts = list(base.geometry)
    geom = edges[int(rng.integers(len(edges)))][2]
    pts += [geom.interpolate(float(x)) for x in rng.uniform(0, geom.length, 5)]  # one edge
    pts += [Point(geom.coords[0]), Point(geom.coords[-1])]  # both its ends
    bent = max((g for _, _, g in edges), key=lambda g: len(g.coords))
    for x, y in bent.coords[1:-1]:
        pts += [Point(x, y), Point(x + 7.0, y - 3.0)]
    pts += [pts[3]] * 2
    index = pd.Index([f"t{k:03d}" for k in rng.permutation(len(pts))], name="site_id")
    return gpd.GeoDataFrame(geometry=pts, index=index, crs=UTM49)


@pytest.mark.parametrize("seed", range(8))
def test_bulk_snapping_equals_edge_by_edge_in_place(seed):
    roads, fiber = _random_roads(seed)
    sites = _awkward_sites(build_graph(roads, fiber=fiber), seed)
    graphs = [build_graph(roads, fiber=fiber) for _ in range(3)]
    H, nodes = snap_sites(graphs[0], sites, copy=False)
    assert H is graphs[0]
    expected = snap_edge_by_edge(graphs[1], sites)
    assert list(nodes.items()) == list(expected.items())  # in the order they were connected
    assert_identical(H, graphs[1])
    # on a copy: the input graph unchanged, the result as snapping the copy in place
    H2, nodes2 = snap_sites(graphs[2], sites)
    assert_identical(graphs[2], build_graph(roads, fiber=fiber))
    R2 = graphs[2].copy()
    snap_edge_by_edge(R2, sites)
    assert list(nodes2.items()) == list(nodes.items())
    assert_identical(H2, R2)


@pytest.mark.parametrize("seed", range(3))
def test_edge_by_edge_path_equals_the_bulk_one(seed, monkeypatch):
    """Forced edge by edge (as when a piece joins the ends of an edge split later), the same
    graph as in bulk."""
    roads, fiber = _random_roads(seed)
    sites = _awkward_sites(build_graph(roads, fiber=fiber), seed)
    bulk, _ = snap_sites(build_graph(roads, fiber=fiber), sites, copy=False)
    monkeypatch.setattr(graph_mod._Split, "collides", lambda self: True)
    one_by_one, _ = snap_sites(build_graph(roads, fiber=fiber), sites, copy=False)
    assert_identical(bulk, one_by_one)


def test_a_piece_onto_an_edge_split_later(monkeypatch):
    """A road point 4 mm from the end c of another road (the same node after rounding): the
    piece from a to that point joins a and c, the two ends of the road a–c, which a later site
    splits. Edge by edge, the piece takes that road's place (its attributes), and the road is
    then split with them: the bulk snapping does the same."""
    roads = gpd.GeoDataFrame(
        {"road_id": ["ab", "ac", "cd"], "road_class": ["primary", "track", "residential"]},
        geometry=[
            LineString([(X0, Y0), (X0 + 100, Y0)]),
            LineString([(X0, Y0), (X0 + 50, Y0 + 0.004)]),
            LineString([(X0 + 50, Y0 + 0.004), (X0 + 50, Y0 + 100)]),
        ],
        crs=UTM49,
    ).set_index("road_id")
    sites = gpd.GeoDataFrame(
        {"site_id": ["s1", "s2", "s3"]},
        geometry=[Point(X0 + 50, Y0 - 10), Point(X0 + 25, Y0 + 5), Point(X0 + 80, Y0 - 3)],
        crs=UTM49,
    ).set_index("site_id")
    seen = []
    collides = graph_mod._Split.collides
    monkeypatch.setattr(
        graph_mod._Split, "collides", lambda self: seen.append(collides(self)) or seen[-1]
    )
    G = build_graph(roads)
    H, nodes = snap_sites(G, sites, copy=False)
    assert seen == [True]
    R = build_graph(roads)
    assert nodes == snap_edge_by_edge(R, sites)
    assert_identical(H, R)
    # the road a–c was replaced by the piece of a–b before it was split
    assert {d["road_id"] for _, _, d in H.edges(data=True)} == {"ab", "cd", ""}


def test_substrings_equal_shapely_substring():
    """Random cuts of random bent lines (at vertices exactly, at 0 and the length, reversed,
    equal, beyond the ends) as :func:`shapely.ops.substring` cuts them, WKB for WKB."""
    rng = np.random.default_rng(7)
    lines = np.array(
        [
            LineString(np.cumsum(rng.uniform(-50, 50, (int(rng.integers(2, 9)), 2)), axis=0) + X0)
            for _ in range(60)
        ],
        dtype=object,
    )
    which, start, end = [], [], []
    for i, line in enumerate(lines):
        xy = list(line.coords)
        at_vertex = [0.0]
        for p1, p2 in itertools.pairwise(xy):  # the vertices' distances, as substring adds them
            at_vertex.append(at_vertex[-1] + ((p2[0] - p1[0]) ** 2 + (p2[1] - p1[1]) ** 2) ** 0.5)
        cuts = [*rng.uniform(0, line.length, 4), *at_vertex, line.length]
        for _ in range(12):
            a, b = (float(x) for x in rng.choice(cuts, 2))
            which.append(i)
            start.append(min(a, b))
            end.append(max(a, b))
        which += [i, i, i]
        start += [5.0, line.length + 1, -3.0]  # equal ends, beyond the end, before the start
        end += [5.0, line.length + 2, 4.0]
    # a segment whose length numpy's square root puts an ulp off substring's ``** 0.5``: cut
    # at its end vertex, the sum numpy adds up must be redone as substring adds it up
    while True:
        (x1, y1), (x2, y2) = rng.uniform(0, 5000, (2, 2)) + np.array([X0, Y0])
        py = ((x2 - x1) ** 2 + (y2 - y1) ** 2) ** 0.5
        if np.sqrt((x2 - x1) * (x2 - x1) + (y2 - y1) * (y2 - y1)) != py:
            break
    lines = np.append(lines, LineString([(x1, y1), (x2, y2), (x2 + 30.0, y2)]))
    which += [len(lines) - 1] * 3
    start += [py, 0.0, py / 2]
    end += [py + 10.0, py, py]
    which, start, end = np.array(which), np.array(start), np.array(end)
    p_start = shapely.get_coordinates(shapely.line_interpolate_point(lines[which], start))
    p_end = shapely.get_coordinates(shapely.line_interpolate_point(lines[which], end))
    got = _substrings(lines, which, start, end, p_start, p_end)
    want = [
        shapely.ops.substring(lines[i], a, b)
        for i, a, b in zip(which.tolist(), start.tolist(), end.tolist(), strict=True)
    ]
    assert [g.wkb for g in got] == [w.wkb for w in want]


def _costs_edge_by_edge(G: nx.Graph, operators: list, own: float, lease: float | None) -> None:
    """Each build's cost (``coalition_cost``) on every edge, then its fiber flags
    (``mark_fiber_network``), in place: the per-edge code ``operator_costs`` replaced."""
    builds = [(f"cost_{op}", frozenset({op})) for op in operators]
    builds.append(("cost_joint", frozenset(operators)))
    G.graph.update(own_fiber_factor=own, lease_factor=lease, operators=tuple(operators))
    for _, _, d in G.edges(data=True):
        d.update((name, coalition_cost(d, members, own, lease)) for name, members in builds)
    for name, members in builds:
        mark_fiber_network(G, name, members, lease)


@pytest.mark.parametrize(("seed", "lease"), [(0, 0.3), (1, None), (2, 2.0), (3, 0.3)])
def test_operator_costs_equal_edge_by_edge(seed, lease):
    """The same costs (the same numbers, and an integer trench cost kept an integer where the
    build pays it in full), the same flags, the attributes in the same order."""
    roads, fiber = _random_roads(seed)
    G = build_graph(roads, fiber=fiber)
    snap_sites(G, _awkward_sites(G, seed), copy=False)
    for k, (_, _, d) in enumerate(G.edges(data=True)):
        if k % 5 == 0:
            d["trench_cost"] = int(d["trench_cost"])
    ops = ["MobiFone", "VinaPhone", "Viettel"] if seed != 3 else ["Viettel", "Gtel"]
    R = G.copy()
    H = operator_costs(G, ops, own_fiber_factor=0.02, lease_factor=lease)
    _costs_edge_by_edge(R, ops, 0.02, lease)
    assert_identical(H, R)
    assert [type(d["cost_joint"]) for _, _, d in H.edges(data=True)] == [
        type(d["cost_joint"]) for _, _, d in R.edges(data=True)
    ]


def test_overlapping_gc_pauses_restore_the_collector_once_the_last_ends():
    """Two threads pausing the collector at once (``telcoplan run --concurrent``): it stays off
    until the last pause ends, then is on again, whatever order they end in."""
    import gc
    import threading

    from telcoplan.backbone.graph import _gc_paused

    assert gc.isenabled()
    first_in, second_in, first_out = threading.Event(), threading.Event(), threading.Event()
    seen: dict[str, bool] = {}

    def first() -> None:
        with _gc_paused():
            first_in.set()
            second_in.wait(5)
        first_out.set()

    def second() -> None:
        first_in.wait(5)
        with _gc_paused():
            second_in.set()
            first_out.wait(5)
            seen["inside after the first ended"] = gc.isenabled()

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert seen == {"inside after the first ended": False}
    assert gc.isenabled()
    gc.disable()  # a collector off before the pause stays off after it
    try:
        with _gc_paused():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()
