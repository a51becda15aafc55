"""Ring protection: every protected site survives any single cut (brute force), cost against a
brute-force optimum, reasons for unprotectable sites, inputs unchanged, determinism."""

from __future__ import annotations

import copy
import itertools
import math

import geopandas as gpd
import networkx as nx
import numpy as np
import pytest
from shapely.geometry import LineString, Point

from telcoplan.backbone.graph import build_graph, operator_costs, snap_sites
from telcoplan.backbone.plans import plan_backbone
from telcoplan.backbone.rings import (
    RingResult,
    fiber_nodes,
    nearest_sites,
    protect_sites,
    ring_links,
    sites_to_protect,
)
from telcoplan.errors import CRSError, PlanError
from tests.conftest import UTM49, X0, Y0

ROOT = ("virtual-root",)


# ---------------------------------------------------------------------------------------------
# independent references


def _with_root(edges, roots) -> nx.MultiGraph:
    """The network as a multigraph with a virtual root joined to every fiber node."""
    K = nx.MultiGraph()
    K.add_edges_from((u, v, "net") for u, v in edges)
    K.add_edges_from((ROOT, r, "virtual") for r in roots)
    return K


def survives_every_cut(G, edges, site_node, roots, *, exempt_access=True) -> bool:
    """Brute force: remove each physical link in turn; is the site still connected to fiber?"""
    K = _with_root(edges, roots)
    if site_node not in K:
        return False
    for u, v, k in list(K.edges(keys=True)):
        if k == "virtual":
            continue
        if exempt_access and site_node in (u, v) and G.edges[u, v].get("road_class") == "access":
            continue  # the site's own drop to its road cannot be doubled
        K.remove_edge(u, v, k)
        ok = nx.has_path(K, site_node, ROOT)
        K.add_edge(u, v, k)
        if not ok:
            return False
    return True


def two_edge_connected(edges, node, roots) -> bool:
    """Node and fiber in one 2-edge-connected component: still joined once every bridge
    (networkx's, parallel links are no bridges) is removed."""
    K = _with_root(edges, roots)
    if node not in K:
        return False
    K.remove_edges_from([e for e in nx.bridges(K) if ROOT not in e])  # fiber joins: no cut
    return nx.has_path(K, node, ROOT)


def optimum(G, network, nodes, roots, weight="cost_joint") -> float:
    """Brute force: the cheapest set of extra edges making every node survive any single cut."""
    have = {frozenset(e) for e in network}
    extra = [
        (u, v)
        for u, v, w in G.edges(data=weight)
        if frozenset((u, v)) not in have and w is not None and math.isfinite(w)
    ]
    best = math.inf
    for k in range(len(extra) + 1):
        for combo in itertools.combinations(extra, k):
            c = sum(G.edges[e][weight] for e in combo)
            if c < best and all(two_edge_connected([*network, *combo], n, roots) for n in nodes):
                best = c
    return best


def road_grid(rows, cols, *, seed, drop=0.2, n_sites=3, n_roots=1):
    """A jittered street grid with random costs, some streets removed, sites on access drops,
    fiber at ``n_roots`` junctions and the cheapest-path tree from every site to the fiber."""
    rng = np.random.default_rng(seed)
    G = nx.Graph(crs=UTM49)
    for i, j in itertools.product(range(rows), range(cols)):
        G.add_node((i, j), x=X0 + 100 * i, y=Y0 + 100 * j)
    for i, j in itertools.product(range(rows), range(cols)):
        for b in ((i + 1, j), (i, j + 1)):
            if b in G and rng.random() >= drop:
                length = float(rng.uniform(50, 150))
                G.add_edge(
                    (i, j),
                    b,
                    length_m=length,
                    road_class="residential",
                    road_id=f"r{i}{j}-{b[0]}{b[1]}",
                    cost_joint=30.0 * length,
                )
    G = G.subgraph(max(nx.connected_components(G), key=len)).copy()
    junctions = sorted(G)
    roots = [junctions[k] for k in rng.choice(len(junctions), n_roots, replace=False)]
    sites = {}
    for k in rng.choice(len(junctions), n_sites, replace=False).tolist():
        sid, road = f"s{k}", junctions[k]
        G.add_node(("site", sid), x=G.nodes[road]["x"] + 10, y=G.nodes[road]["y"])
        G.add_edge(
            ("site", sid), road, length_m=10.0, road_class="access", road_id="", cost_joint=300.0
        )
        sites[sid] = ("site", sid)
    paths = nx.multi_source_dijkstra_path(G, set(roots), weight="cost_joint")
    tree = {frozenset(e) for s in sites.values() for e in itertools.pairwise(paths[s])}
    return G, sorted((tuple(sorted(e, key=repr)) for e in tree), key=repr), sites, roots


# ---------------------------------------------------------------------------------------------
# truth on random instances


@pytest.mark.parametrize("seed", range(40))
def test_every_protected_site_survives_every_single_cut(seed):
    G, tree, sites, roots = road_grid(5, 6, seed=seed, n_sites=5, n_roots=1 + seed % 3)
    res = protect_sites(G, tree, sites, roots)
    network = [*tree, *res.edges]
    assert not {frozenset(e) for e in res.edges} & {frozenset(e) for e in tree}
    assert len({frozenset(e) for e in res.edges}) == len(res.edges)
    assert set(res.protected) | set(res.unprotected) == set(sites)
    assert not set(res.protected) & set(res.unprotected)
    for sid in res.protected:
        assert survives_every_cut(G, network, sites[sid], roots), sid
    # an unprotected site really cannot be protected: some single road link (in the whole
    # graph, not just the network) separates it from the fiber
    for sid in res.unprotected:
        road_point = next(iter(G.adj[sites[sid]]))
        assert not two_edge_connected(list(G.edges), road_point, roots), sid
    assert res.cost == pytest.approx(sum(G.edges[e]["cost_joint"] for e in res.edges))
    assert res.length_m == pytest.approx(sum(G.edges[e]["length_m"] for e in res.edges))
    assert {frozenset(e) for es in res.added_for.values() for e in es} == {
        frozenset(e) for e in res.edges
    }


def test_cost_against_the_brute_force_optimum_for_one_site():
    """Never below the optimum (sanity: the result is feasible) and equal to it on most small
    grids (one ring is usually optimal; where it is not, the heuristic stays close)."""
    ratios = []
    for seed in range(80):
        G, tree, sites, roots = road_grid(3, 3 + seed % 2, seed=100 + seed, drop=0.1, n_sites=1)
        if G.number_of_edges() - len(tree) > 10:
            continue  # keep the enumeration (2^extra edges) quick
        (sid,) = sites
        res = protect_sites(G, tree, sites, roots)
        road_point = next(iter(G.adj[sites[sid]]))
        best = optimum(G, tree, [road_point], roots)
        if sid in res.unprotected:
            assert best == math.inf
            continue
        assert math.isfinite(best)
        assert res.cost >= best - 1e-6
        if best > 0:
            ratios.append(res.cost / best)
    assert len(ratios) >= 20
    assert np.mean(np.isclose(ratios, 1.0)) >= 0.9
    assert max(ratios) <= 1.25


def test_cost_against_the_brute_force_optimum_for_several_sites():
    """Three sites sharing rings: the optimum over all sets of extra edges that protect the
    same sites is never beaten, and matched on most small grids."""
    ratios = []
    for seed in range(40):
        G, tree, sites, roots = road_grid(3, 4, seed=500 + seed, drop=0.1, n_sites=3)
        if G.number_of_edges() - len(tree) > 10:
            continue
        res = protect_sites(G, tree, sites, roots)
        points = [next(iter(G.adj[sites[s]])) for s in res.protected]
        best = optimum(G, tree, points, roots)
        assert res.cost >= best - 1e-6
        if best > 0:
            ratios.append(res.cost / best)
    assert len(ratios) >= 10
    assert np.mean(np.isclose(ratios, 1.0)) >= 0.9
    assert max(ratios) <= 1.25


def test_ring_closure_on_a_cycle_is_optimal():
    """A 6-node ring road; the tree runs the long way round, the short way closes the ring."""
    G = nx.cycle_graph(6)
    for u, v in G.edges:
        G.edges[u, v].update(cost_joint=10.0, length_m=100.0, road_class="residential")
    G.edges[5, 0]["cost_joint"] = 3.0
    G.add_edge(2, 6, cost_joint=50.0, length_m=500.0, road_class="residential")  # a spur
    tree = [(0, 1), (1, 2), (2, 3), (3, 4), (4, 5)]
    res = protect_sites(G, tree, {"a": 5, "b": 3}, [0])
    assert res.edges == ((0, 5),)  # oriented as G lists its edges
    assert res.cost == pytest.approx(3.0)
    assert res.cost == pytest.approx(optimum(G, tree, [5], [0]))
    assert res.protected == ("a", "b")
    assert res.added_for == {"a": ((0, 5),)}


def test_two_bridges_that_no_single_route_avoids():
    """Tree s–a–b–fiber; the extra roads s–b and a–fiber each bypass two tree links but no
    route from s avoids all three: both are needed (the optimum) and found."""
    G = nx.Graph()
    for u, v, c in [("s", "a", 1), ("a", "b", 1), ("b", "f", 1), ("s", "b", 4), ("a", "f", 5)]:
        G.add_edge(u, v, cost_joint=float(c), length_m=10.0 * c)
    tree = [("s", "a"), ("a", "b"), ("b", "f")]
    res = protect_sites(G, tree, {"x": "s"}, ["f"])
    assert res.protected == ("x",)
    assert {frozenset(e) for e in res.edges} == {frozenset(("s", "b")), frozenset(("a", "f"))}
    assert res.cost == pytest.approx(optimum(G, tree, ["s"], ["f"]))
    assert survives_every_cut(G, [*tree, *res.edges], "s", ["f"])


# ---------------------------------------------------------------------------------------------
# reasons, edge cases, contract


@pytest.fixture
def ladder():
    """A 2 x 5 ladder of streets (fiber at corner (0, 0)) with a dead-end street (2, 4)–(3, 4)
    and sites: p at (1, 4) (protectable), d at the dead end's tip (3, 4)."""
    G = nx.Graph(crs=UTM49)
    for i, j in itertools.product(range(2), range(5)):
        G.add_node((i, j), x=X0 + 100 * i, y=Y0 + 100 * j)
    G.add_node((2, 4), x=X0 + 200, y=Y0 + 400)
    G.add_node((3, 4), x=X0 + 300, y=Y0 + 400)
    for i, j in itertools.product(range(2), range(5)):
        for b in ((i + 1, j), (i, j + 1)):
            if b in G and b[0] < 2:
                G.add_edge((i, j), b, road_class="residential", road_id=f"r{i}{j}{b[0]}{b[1]}")
    G.add_edge((1, 4), (2, 4), road_class="residential", road_id="lane")
    G.add_edge((2, 4), (3, 4), road_class="track", road_id="dead-end")
    for site, road in (("p", (1, 4)), ("d", (3, 4))):
        G.add_node(("site", site), x=G.nodes[road]["x"] + 10, y=G.nodes[road]["y"])
        G.add_edge(("site", site), road, road_class="access", road_id="")
    for u, v, d in G.edges(data=True):
        pu, pv = G.nodes[u], G.nodes[v]
        d["length_m"] = math.hypot(pu["x"] - pv["x"], pu["y"] - pv["y"])
        d["cost_joint"] = 30.0 * d["length_m"]
        d["geometry"] = LineString([(pu["x"], pu["y"]), (pv["x"], pv["y"])])
    tree = [((0, j), (0, j + 1)) for j in range(4)]
    tree += [((0, 4), (1, 4)), ((1, 4), (2, 4)), ((2, 4), (3, 4))]
    tree += [(("site", "p"), (1, 4)), (("site", "d"), (3, 4))]
    return G, tree, {"p": ("site", "p"), "d": ("site", "d")}


def test_dead_end_site_is_reported_with_the_road_to_blame(ladder):
    G, tree, sites = ladder
    res = protect_sites(G, tree, sites, [(0, 0)])
    assert res.protected == ("p",)
    reason = res.unprotected["d"]
    assert "dead end" in reason
    assert "road 'dead-end'" in reason
    assert "track" in reason
    assert "no second route" in reason
    assert "2 such links" in reason  # the lane to it is a single link too
    # p's ring runs up the far side of the ladder: (0,0)–(1,0)–…–(1,4), 500 m
    assert res.cost == pytest.approx(30.0 * 500)
    assert res.cost == pytest.approx(optimum(G, tree, [(1, 4)], [(0, 0)]))
    assert survives_every_cut(G, [*tree, *res.edges], sites["p"], [(0, 0)])


def test_without_the_access_exemption_the_drop_is_the_reason(ladder):
    G, tree, sites = ladder
    res = protect_sites(G, tree, sites, [(0, 0)], exempt_access=False)
    assert res.protected == ()
    assert "its own access drop (10 m)" in res.unprotected["p"]


def test_already_protected_site_adds_nothing(ladder):
    G, tree, sites = ladder
    ring = [((0, 0), (1, 0)), *[((1, j), (1, j + 1)) for j in range(4)]]
    res = protect_sites(G, [*tree, *ring], {"p": sites["p"]}, [(0, 0)])
    assert res.edges == ()
    assert res.cost == 0.0
    assert res.protected == ("p",)
    assert res.added_for == {}


def test_site_on_the_fiber_is_protected():
    G = nx.path_graph(3)
    nx.set_edge_attributes(G, 1.0, "cost_joint")
    res = protect_sites(G, [(0, 1)], {"on": 1, "tip": 0}, [1])
    assert res.protected == ("on",)
    assert res.edges == ()
    assert "dead end" in res.unprotected["tip"]  # node 0 hangs off the fiber by one link


def test_sites_off_the_network_and_off_the_graph(ladder):
    G, tree, sites = ladder
    res = protect_sites(G, tree[:4], {"p": sites["p"], "ghost": ("site", "nowhere")}, [(0, 0)])
    assert "not connected to the network" in res.unprotected["p"]
    assert "not in the road graph" in res.unprotected["ghost"]
    assert res.edges == ()


def test_no_fiber_means_nothing_to_protect_towards(ladder):
    G, tree, sites = ladder
    res = protect_sites(G, tree, sites, [])
    assert res.protected == ()
    assert res.edges == ()
    assert res.unprotected == dict.fromkeys(
        ["p", "d"], "there is no existing fiber to protect a route to"
    )


def test_forbidden_links_are_never_added():
    checked = 0
    for seed in range(10):
        G, tree, sites, roots = road_grid(6, 6, seed=300 + seed, n_sites=4)
        first = protect_sites(G, tree, sites, roots)
        if not first.edges:
            continue
        H = G.copy()
        u, v = first.edges[0]
        H.edges[u, v]["cost_joint"] = math.inf  # e.g. another operator's fiber, no lease
        res = protect_sites(H, tree, sites, roots)
        assert frozenset((u, v)) not in {frozenset(e) for e in res.edges}
        for sid in res.protected:
            assert survives_every_cut(H, [*tree, *res.edges], sites[sid], roots)
        checked += len(res.protected)
    assert checked > 0


def test_forbidden_links_can_leave_a_dead_end(ladder):
    G, tree, sites = ladder
    H = G.copy()
    H.edges[(1, 0), (1, 1)]["cost_joint"] = math.inf  # the far side is closed: no ring
    res = protect_sites(H, tree, {"p": sites["p"]}, [(0, 0)])
    assert "dead end" in res.unprotected["p"]
    assert res.edges == ()
    H.edges[(1, 0), (1, 1)]["cost_joint"] = None  # a missing cost means the same
    assert protect_sites(H, tree, {"p": sites["p"]}, [(0, 0)]) == res


def test_inputs_unchanged_and_deterministic():
    G, tree, sites, roots = road_grid(6, 6, seed=7, n_sites=6, n_roots=2)
    G0, tree0, sites0 = copy.deepcopy(G), list(tree), dict(sites)
    a = protect_sites(G, tree, sites, roots)
    assert nx.utils.graphs_equal(G, G0)
    assert tree == tree0
    assert sites == sites0
    b = protect_sites(G, tuple(reversed(tree)), sites, roots)
    assert a == b
    assert a.edges  # the instance needs rings
    assert isinstance(a, RingResult)


def test_pruning_only_removes_cost():
    for seed in range(15):
        G, tree, sites, roots = road_grid(7, 7, seed=200 + seed, n_sites=8, n_roots=2)
        full = protect_sites(G, tree, sites, roots, prune=False)
        pruned = protect_sites(G, tree, sites, roots)
        assert pruned.protected == full.protected
        assert pruned.cost <= full.cost + 1e-9
        assert {frozenset(e) for e in pruned.edges} <= {frozenset(e) for e in full.edges}
        for sid in pruned.protected:
            assert survives_every_cut(G, [*tree, *pruned.edges], sites[sid], roots)


def test_bad_inputs_raise_with_what_is_wrong(ladder):
    G, tree, sites = ladder
    with pytest.raises(PlanError, match="not edges of the graph"):
        protect_sites(G, [*tree, ((0, 0), (1, 4))], sites, [(0, 0)])
    with pytest.raises(PlanError, match="roots are not nodes"):
        protect_sites(G, tree, sites, [(9, 9)])
    H = G.copy()
    H.edges[(0, 0), (1, 0)]["cost_joint"] = -1.0
    with pytest.raises(PlanError, match="negative 'cost_joint'"):
        protect_sites(H, tree, sites, [(0, 0)])
    with pytest.raises(PlanError, match="simple graph"):
        protect_sites(nx.MultiGraph(G), tree, sites, [(0, 0)])


# ---------------------------------------------------------------------------------------------
# helpers and the pipeline


def test_sites_to_protect_picks_shared_and_poi_sites():
    ops = {"a": ["V"], "b": ["V", "M"], "c": ["M"], "d": ["M", "M"]}
    assert sites_to_protect(ops) == ["b"]
    assert sites_to_protect(ops, poi_sites=["c", "zz"]) == ["b", "c"]
    assert sites_to_protect(ops, poi_sites=["c"], shared=False) == ["c"]


def test_nearest_sites():
    sites = gpd.GeoDataFrame(
        geometry=[Point(X0, Y0), Point(X0 + 1000, Y0)], index=["w", "e"], crs=UTM49
    )
    pois = gpd.GeoDataFrame(
        geometry=[Point(X0 + 100, Y0), Point(X0 + 50, Y0 + 10), Point(X0 + 5000, Y0)], crs=UTM49
    )
    assert nearest_sites(sites, pois) == ["w"]
    assert nearest_sites(sites, pois, max_distance_m=10_000) == ["e", "w"]
    with pytest.raises(CRSError):
        nearest_sites(sites, pois.to_crs(4326))


def test_ring_links_frame(ladder):
    G, tree, sites = ladder
    res = protect_sites(G, tree, sites, [(0, 0)])
    links = ring_links(G, res)
    assert len(links) == len(res.edges)
    assert links.crs == G.graph["crs"]
    assert set(links["status"]) == {"ring"}
    assert set(links["protects"]) == {"p"}
    assert links["cost"].sum() == pytest.approx(res.cost)
    assert links["length_m"].sum() == pytest.approx(res.length_m)
    assert not links["reuses_fiber"].any()
    empty = ring_links(G, protect_sites(G, tree, {}, [(0, 0)]))
    assert len(empty) == 0
    assert "protects" in empty.columns


def test_protects_a_planned_backbone():
    """Roads, fiber and sites through the real pipeline: graph, snapping, costs, joint plan."""
    lines, ids = [], []
    for k in range(4):  # a 4 x 4 street grid, 300 m blocks
        lines += [
            LineString([(X0, Y0 + 300 * k), (X0 + 900, Y0 + 300 * k)]),
            LineString([(X0 + 300 * k, Y0), (X0 + 300 * k, Y0 + 900)]),
        ]
        ids += [f"h{k}", f"v{k}"]
    lines.append(LineString([(X0 + 900, Y0 + 900), (X0 + 1200, Y0 + 1200)]))  # a cul-de-sac
    ids.append("spur")
    roads = gpd.GeoDataFrame(
        {"road_id": ids, "road_class": ["residential"] * len(ids)}, geometry=lines, crs=UTM49
    ).set_index("road_id")
    fiber = gpd.GeoDataFrame(
        {"operator": ["V"]}, geometry=[LineString([(X0, Y0), (X0 + 300, Y0)])], crs=UTM49
    )
    sites = gpd.GeoDataFrame(
        geometry=[
            Point(X0 + 910, Y0 + 450),
            Point(X0 + 450, Y0 + 610),
            Point(X0 + 1200, Y0 + 1210),
        ],
        index=["east", "mid", "cul"],
        crs=UTM49,
    )
    G = build_graph(roads, fiber=fiber)
    G, nodes = snap_sites(G, sites)
    G = operator_costs(G, ["V", "M"])
    ops = {"east": ["V", "M"], "mid": ["M"], "cul": ["V", "M"]}
    steiner = nx.algorithms.approximation.steiner_tree
    plan = plan_backbone(G, nodes, ops, steiner=steiner, shapley=False)
    roots = fiber_nodes(G)
    want = sites_to_protect(ops)
    res = protect_sites(G, plan.joint.edges, {s: nodes[s] for s in want}, roots)
    assert res.protected == ("east",)
    assert "road 'spur'" in res.unprotected["cul"]
    assert survives_every_cut(G, [*plan.joint.edges, *res.edges], nodes["east"], roots)
    assert res.cost > 0
    links = ring_links(G, res)
    assert links.geometry.length.sum() == pytest.approx(res.length_m)
