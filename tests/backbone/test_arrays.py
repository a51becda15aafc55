"""The backbone's array code against the per-feature and networkx-copy code it replaced
(``tests/backbone/_reference.py``): the same road graph (nodes, edges, attributes, geometries and
the order of each node's neighbours, which breaks the Steiner heuristic's ties), the same
snapped sites, the same Steiner problems and trees, and each Shapley coalition solved once."""

from __future__ import annotations

import itertools
import math

import geopandas as gpd
import networkx as nx
import numpy as np
import pytest
import shapely
from shapely.geometry import LineString, MultiLineString, Point

from telcoplan.backbone import _network
from telcoplan.backbone.graph import _round_cm, build_graph, operator_costs, snap_sites
from telcoplan.backbone.plans import plan_backbone, shapley_shares
from telcoplan.backbone.steiner import _Net, steiner_tree, steiner_tree_csr
from tests.backbone import _reference as ref
from tests.backbone.test_plans import _random_city
from tests.conftest import UTM49, X0, Y0

OPS = ["MobiFone", "VinaPhone", "Viettel"]


def _random_roads(seed: int) -> tuple[gpd.GeoDataFrame, gpd.GeoDataFrame]:
    """Roads made to trip a builder: bent polylines crossing each other without shared
    vertices, exact duplicates (one of another class: the cheaper piece must win), closed
    loops, multi-part lines, ends a few millimetres apart (one node after cm rounding) and
    T-junctions stopping short of the other road; fiber of three operators along parts of some
    roads (cut where the cables end) and across others."""
    rng = np.random.default_rng(seed)
    classes = ["primary", "secondary", "residential", "track"]
    lines, cls = [], []

    def add(geom, c=None):
        lines.append(geom)
        cls.append(c or str(rng.choice(classes)))

    for _ in range(25):
        k = int(rng.integers(2, 6))
        xy = np.cumsum(rng.uniform(-400, 400, (k, 2)), axis=0) + np.array([X0, Y0]) + 2000
        add(LineString(xy))
    for i in rng.choice(len(lines), 4, replace=False):
        add(lines[i], "track")  # a duplicate, cheaper
        add(lines[i], "primary")  # a duplicate, dearer
    x, y = X0 + float(rng.uniform(500, 3500)), Y0 + float(rng.uniform(500, 3500))
    add(LineString([(x, y), (x + 300, y), (x + 300, y + 300), (x, y)]))  # a closed loop
    add(MultiLineString([[(x, y - 900), (x + 600, y - 500)], [(x + 700, y - 400), (x + 900, y)]]))
    # ends 3 mm apart (the same node after rounding) and a T-junction 0.4 m short
    a = (X0 + float(rng.uniform(0, 4000)), Y0 + float(rng.uniform(0, 4000)))
    add(LineString([(a[0] - 700, a[1]), a]))
    add(LineString([(a[0] + 0.003, a[1] + 0.001), (a[0] + 500, a[1] + 600)]))
    add(LineString([(a[0] - 350, a[1] - 400), (a[0] - 350, a[1] - 0.4)]))
    roads = gpd.GeoDataFrame(
        {"road_id": [f"r{i}" for i in range(len(lines))], "road_class": cls},
        geometry=lines,
        crs=UTM49,
    ).set_index("road_id")
    cables = []
    for i in rng.choice(25, 6, replace=False):
        line = lines[i]
        lo, hi = sorted(rng.uniform(0, line.length, 2))
        cables.append(shapely.ops.substring(line, lo, hi))  # part of a road
    cables.append(LineString([(X0, Y0), (X0 + 4000, Y0 + 4000)]))  # across the roads
    fiber = gpd.GeoDataFrame(
        {"operator": [OPS[k % 3] for k in range(len(cables))]}, geometry=cables, crs=UTM49
    )
    return roads, fiber


def _edge_rows(G: nx.Graph) -> list:
    return [
        (u, v, {k: (x.wkb if k == "geometry" else x) for k, x in d.items()})
        for u, v, d in G.edges(data=True)
    ]


def assert_same_graph(A: nx.Graph, B: nx.Graph) -> None:
    """Equal nodes (in order, with attributes), edges (attributes, exact geometries) and the
    order of every node's neighbours."""
    assert list(A.nodes(data=True)) == list(B.nodes(data=True))
    assert [list(A.adj[n]) for n in A] == [list(B.adj[n]) for n in B]
    assert _edge_rows(A) == _edge_rows(B)
    assert A.graph == B.graph


@pytest.mark.parametrize("seed", range(8))
def test_road_graph_equals_the_per_feature_builder(seed):
    roads, fiber = _random_roads(seed)
    G = build_graph(roads, fiber=fiber)
    assert G.number_of_edges() > 40
    assert any(d["fiber"] for _, _, d in G.edges(data=True))
    assert_same_graph(G, ref.build_graph(roads, fiber=fiber))
    assert_same_graph(build_graph(roads), ref.build_graph(roads))


def test_the_cheaper_duplicate_wins_and_close_ends_share_a_node():
    """Two roads between the same two junctions (the dearer first) give one edge, the cheaper
    one's; ends 3 mm apart one node; a closed loop no edge."""
    roads = gpd.GeoDataFrame(
        {"road_id": ["a", "b", "c", "loop"], "road_class": ["primary", "track", "track", "track"]},
        geometry=[
            LineString([(X0, Y0), (X0 + 100, Y0)]),
            LineString([(X0, Y0), (X0 + 50, Y0 - 50), (X0 + 100, Y0)]),
            LineString([(X0 + 100.003, Y0 + 0.001), (X0 + 100, Y0 + 100)]),
            LineString([(X0, Y0 + 500), (X0 + 50, Y0 + 550), (X0, Y0 + 600), (X0, Y0 + 500)]),
        ],
        crs=UTM49,
    ).set_index("road_id")
    G = build_graph(roads)
    assert G.number_of_nodes() == 3
    assert G.number_of_edges() == 2
    assert G.edges[(X0, Y0), (X0 + 100, Y0)]["road_id"] == "b"
    assert G.edges[(X0, Y0), (X0 + 100, Y0)]["trench_cost"] == pytest.approx(2**0.5 * 100 * 20)
    assert_same_graph(G, ref.build_graph(roads))


def test_cm_rounding_is_pythons_round():
    """Values at and within an ulp of half a centimetre (where scaling by 100 first can tip
    the rounding) round as Python's correctly rounded ``round(x, 2)``."""
    rng = np.random.default_rng(3)
    k = rng.integers(0, 10**10, 4000)
    half = (k + 0.5) / 100.0
    xs = np.concatenate(
        [half, np.nextafter(half, 0), np.nextafter(half, np.inf), rng.uniform(-1e6, 2e6, 4000)]
    )
    got = _round_cm(xs.reshape(-1, 2)).reshape(-1)
    assert got.tolist() == [round(float(x), 2) for x in xs]


def _sites_on(G: nx.Graph, seed: int) -> gpd.GeoDataFrame:
    """Sites beside random edges, two on one edge at the same distance, one on a vertex of a
    bent edge, one at an edge's end."""
    rng = np.random.default_rng(seed)
    edges = list(G.edges(data="geometry"))
    pts = []
    for i in rng.choice(len(edges), 12, replace=False):
        geom = edges[i][2]
        p = geom.interpolate(float(rng.uniform(0, geom.length)))
        pts.append(Point(p.x + float(rng.uniform(-30, 30)), p.y + float(rng.uniform(-30, 30))))
    pts += [pts[0], pts[0]]  # the same spot twice (and thrice)
    bent = [g for _, _, g in edges if len(g.coords) > 2]
    if bent:
        pts.append(Point(bent[0].coords[1]))  # on a vertex: a piece ends there
    pts.append(Point(edges[0][2].coords[-1]))  # at an edge's end
    ids = [f"s{k:02d}" for k in rng.permutation(len(pts))]
    return gpd.GeoDataFrame({"site_id": ids}, geometry=pts, crs=UTM49).set_index("site_id")


@pytest.mark.parametrize("seed", range(6))
def test_snapping_equals_the_per_site_snapper(seed):
    roads, fiber = _random_roads(seed)
    G = build_graph(roads, fiber=fiber)
    sites = _sites_on(G, seed)
    H, nodes = snap_sites(G, sites)
    H_ref, nodes_ref = ref.snap_sites(G, sites)
    assert nodes == nodes_ref
    assert_same_graph(H, H_ref)
    # in place: the same graph, up to the order of neighbours that a copy normalises
    G2 = build_graph(roads, fiber=fiber)
    H2, nodes2 = snap_sites(G2, sites, copy=False)
    assert H2 is G2
    assert nodes2 == nodes
    assert_same_graph(H2.copy(), H_ref.copy())


def _builds(G: nx.Graph):
    """The costed graph's builds: each operator, the joint build, every coalition of two."""
    net = _network.RoadNetwork(G)
    own, lease = G.graph["own_fiber_factor"], G.graph["lease_factor"]
    for w in [*(f"cost_{op}" for op in OPS), "cost_joint"]:
        yield net, net.build(w), G
    for pair in itertools.combinations(OPS, 2):
        coalition = frozenset(pair)
        yield net, net.coalition(coalition, own, lease), ref.coalition_graph(G, coalition)


def _costed(seed: int, in_place: bool) -> tuple[nx.Graph, dict]:
    roads, fiber = _random_roads(seed)
    G = build_graph(roads, fiber=fiber)
    G, nodes = snap_sites(G, _sites_on(G, seed), copy=not in_place)
    lease = [0.3, None, 2.0][seed % 3]
    return operator_costs(G, OPS, lease_factor=lease, copy=not in_place), nodes


@pytest.mark.parametrize(("seed", "in_place"), [(s, s % 2 == 1) for s in range(6)])
def test_steiner_problems_equal_the_networkx_copies(seed, in_place):
    """The root, the usable edges and the first terminal's component as arrays: the same nodes
    in the same order, each node's neighbours in the same order, the same weights, and the same
    tree (also on a graph snapped and costed in place, whose neighbour order no copy fixed)."""
    G, nodes = _costed(seed, in_place)
    sites = sorted(nodes)
    for net, build, H in _builds(G):
        # the sites are terminals in several components: a piece of road away from the rest
        terminals = [nodes[s] for s in sites]
        if net.fiber_nodes(build).size:
            terminals = [_network.ROOT, *terminals]
        problem = net.problem(build, terminals)
        H_ref, t_ref = ref.steiner_problem(H, build.weight, [nodes[s] for s in sites])
        assert net.labels(problem.keep) == list(H_ref)
        assert set(problem.cut_off) == set(terminals) - set(t_ref)
        expected = _Net.from_graph(H_ref, build.weight)
        assert problem.indptr.tolist() == expected.indptr.tolist()
        assert problem.col.tolist() == expected.col.tolist()
        assert problem.weight.tolist() == expected.wq.tolist()
        if len(t_ref) < 2:
            continue
        u, v, cost = steiner_tree_csr(
            problem.indptr, problem.col, problem.weight, problem.terminals
        )
        T = steiner_tree(H_ref, t_ref, weight=build.weight)
        labels = net.labels(problem.keep)
        assert sorted(map(repr, T.edges)) == sorted(
            repr((labels[a], labels[b])) for a, b in zip(u, v, strict=True)
        )
        assert cost == T.graph["cost"]


@pytest.mark.parametrize("seed", range(6))
def test_steiner_tree_csr_equals_steiner_tree(seed):
    """Random graphs on both sides of the compiled search's size limit (3,000 nodes + edges),
    rows in a random order, some edges unusable (infinite weight)."""
    rng = np.random.default_rng(seed)
    n = [60, 400, 2500][seed % 3]
    G = nx.gnm_random_graph(n, 3 * n, seed=seed)
    for u, v in G.edges:
        G.edges[u, v]["w"] = math.inf if rng.random() < 0.05 else float(rng.integers(1, 30))
    order = rng.permutation(n).tolist()
    R = nx.Graph()
    R.add_nodes_from(order)
    R.add_edges_from(
        (u, v, d) for u, v, d in sorted(G.edges(data=True), key=lambda _: rng.random())
    )
    comp = max(nx.connected_components(R.edge_subgraph(
        [(u, v) for u, v, w in R.edges(data="w") if w < math.inf])), key=len)  # fmt: skip
    terms = rng.choice(sorted(comp), size=min(25, len(comp)), replace=False).tolist()
    T = steiner_tree(R, terms, weight="w")
    pos = {x: i for i, x in enumerate(R)}
    indptr = np.cumsum([0, *(len(R.adj[x]) for x in R)])
    col = [pos[y] for x in R for y in R.adj[x]]
    w = [d["w"] for x in R for d in R.adj[x].values()]
    u, v, cost = steiner_tree_csr(indptr, col, w, [pos[t] for t in terms])
    assert sorted(tuple(sorted((pos[a], pos[b]))) for a, b in T.edges) == list(
        zip(u.tolist(), v.tolist(), strict=True)
    )
    assert cost == T.graph["cost"]
    assert T.number_of_edges() >= len(terms) - 1


def test_steiner_tree_csr_refuses_bad_input():
    from telcoplan.errors import PlanError

    with pytest.raises(PlanError, match="negative"):
        steiner_tree_csr([0, 1, 2], [1, 0], [-1.0, -1.0], [0, 1])
    with pytest.raises(PlanError, match="one direction"):
        steiner_tree_csr([0, 1, 1], [1], [1.0], [0, 1])


@pytest.mark.parametrize("seed", range(4))
def test_each_coalition_is_solved_once(seed):
    """Three operators: 3 separate trees (the Shapley singletons too), the joint tree and 3
    pairs: 7 Steiner trees, not 10; the shares equal every coalition solved from scratch on a
    networkx copy."""
    G, nodes, site_ops = _random_city(seed)
    calls = []

    def counting(H, terminals, *, weight):
        calls.append(weight)
        return steiner_tree(H, terminals, weight=weight)

    plan = plan_backbone(G, nodes, site_ops, steiner=counting)
    assert len(calls) == 7, calls
    default = plan_backbone(G, nodes, site_ops)
    assert default.share_shapley == plan.share_shapley
    assert default.joint == plan.joint
    assert default.separate == plan.separate
    kept = {s: o for s, o in site_ops.items() if s not in plan.left_out}
    ops = sorted({o for v in kept.values() for o in v})

    def value(coalition: frozenset) -> float:
        if coalition == frozenset(ops):
            return plan.joint.cost
        H = ref.coalition_graph(G, coalition)
        sids = sorted(s for s in kept if set(kept[s]) & coalition)
        sub, terms = ref.steiner_problem(H, "cost_coalition", [nodes[s] for s in sids])
        if len(terms) < 2:
            return 0.0
        T = steiner_tree(sub, terms, weight="cost_coalition")
        return float(sum(H.edges[e]["cost_coalition"] for e in T.edges if ref.ROOT not in e))

    expected = shapley_shares(ops, value)
    assert plan.share_shapley == pytest.approx(expected, rel=1e-12)
    assert sum(plan.share_shapley.values()) == pytest.approx(plan.joint.cost)


@pytest.mark.parametrize("seed", range(10))
def test_key_tree_equals_the_python_walk(seed):
    """The local search's key tree (compiled walk) against the walk in Python: spanning trees
    of random graphs, random terminals."""
    from telcoplan.backbone.steiner import _KeyTree

    rng = np.random.default_rng(seed)
    n = int(rng.integers(20, 2000))
    G = nx.gnm_random_graph(n, 3 * n, seed=seed)
    for u, v in G.edges:
        G.edges[u, v]["w"] = float(rng.integers(1, 50))
    G = G.subgraph(max(nx.connected_components(G), key=len)).copy()
    net = _Net.from_graph(G, "w")
    pos = {x: i for i, x in enumerate(G)}
    ends = [sorted((pos[a], pos[b])) for a, b in nx.minimum_spanning_tree(G, weight="w").edges]
    tree = np.sort(np.searchsorted(net.ekey, [a * net.n + b for a, b in ends]))
    is_term = rng.random(net.n) < [0.05, 0.3][seed % 2]
    kt = _KeyTree(net, is_term, tree)
    expected = ref.key_tree(net.eu, net.ev, net.ew, is_term, tree)
    for name in ("node_of", "parent_l", "depth_l"):
        assert getattr(kt, name) == expected[name], name
    for name in ("path_inner", "path_edges", "children"):
        assert [getattr(kt, name)[v] for v in range(kt.V)] == expected[name], name
    for name in ("cost", "tin", "tout"):
        assert getattr(kt, name).tolist() == expected[name], name


def test_steiner_kernels_release_the_gil():
    """The compiled Steiner kernels release the GIL: the run's other threads (the re-run
    cache's writer, a concurrent stage) keep going while a tree is solved."""
    from telcoplan.backbone import _steiner_kernels, _steiner_search, steiner

    kernels = [
        *(getattr(_steiner_kernels, name) for name in _steiner_kernels.__all__),
        *(getattr(_steiner_search, name) for name in _steiner_search.__all__),
        *vars(steiner._kernels()).values(),
    ]
    compiled = [k for k in kernels if hasattr(k, "targetoptions")]
    assert len(compiled) >= 10
    assert [k for k in compiled if not k.targetoptions.get("nogil")] == []
