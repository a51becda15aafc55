"""steiner_tree: valid trees, exact optima on small graphs, SteinLib's B and C series, errors."""

from __future__ import annotations

import itertools
import math
import random
from pathlib import Path

import networkx as nx
import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.optimize import Bounds, LinearConstraint, milp

from telcoplan.backbone.steiner import steiner_tree
from telcoplan.errors import PlanError, TelcoplanError

DATA = Path(__file__).parent / "data" / "steinlib_b"

#: Optimal values of SteinLib's B series (Beasley's OR-Library "steinb"), as published on the
#: SteinLib site; checked against the "Optimal" line of each stored file.
B_OPTIMA = {
    "b01": 82,
    "b02": 83,
    "b03": 138,
    "b04": 59,
    "b05": 61,
    "b06": 122,
    "b07": 111,
    "b08": 104,
    "b09": 220,
    "b10": 86,
    "b11": 88,
    "b12": 174,
    "b13": 165,
    "b14": 235,
    "b15": 318,
    "b16": 127,
    "b17": 131,
    "b18": 218,
}

#: Optimal values of SteinLib's C series instances stored here (c01–c05: 500 nodes, 625 edges,
#: 5–250 terminals), as published on the SteinLib site; checked against each file's "Optimal".
C_OPTIMA = {"c01": 85, "c02": 144, "c03": 754, "c04": 1079, "c05": 1579}

#: The quality reached on those series (default arguments), enforced below: every instance
#: within WORST_GAP of its optimum, the mean gap within MEAN_GAP.
WORST_GAP = 0.005
MEAN_GAP = 0.001


def read_stp(path: Path) -> tuple[nx.Graph, list[int], float | None]:
    """A SteinLib .stp file: the graph (weights in ``weight``), terminals, and the optimum when
    the file states it."""
    G = nx.Graph()
    terminals: list[int] = []
    optimum = None
    for line in path.read_text().splitlines():
        parts = line.split()
        if not parts:
            continue
        if parts[0] == "Nodes":
            G.add_nodes_from(range(1, int(parts[1]) + 1))
        elif parts[0] == "E":
            G.add_edge(int(parts[1]), int(parts[2]), weight=float(parts[3]))
        elif parts[0] == "T":
            terminals.append(int(parts[1]))
        elif parts[0] == "Optimal":
            optimum = float(parts[1])
    return G, terminals, optimum


def exact_cost(G: nx.Graph, terminals, weight: str = "weight") -> float:
    """Brute force: the cheapest minimum spanning tree of the subgraph induced by terminals ∪ S,
    over every set S of other nodes (Kruskal, written out to keep it fast)."""
    index = {n: i for i, n in enumerate(G)}
    term = {index[t] for t in terminals}
    others = [i for i in range(len(index)) if i not in term]
    edges = sorted((d[weight], index[u], index[v]) for u, v, d in G.edges(data=True) if u != v)
    best = math.inf
    for k in range(len(others) + 1):
        for extra in itertools.combinations(others, k):
            keep = term.union(extra)
            parent = {i: i for i in keep}
            cost, joined = 0.0, 1
            for w, u, v in edges:
                if u in keep and v in keep:
                    while parent[u] != u:
                        u = parent[u]
                    while parent[v] != v:
                        v = parent[v]
                    if u != v:
                        parent[u] = v
                        cost += w
                        joined += 1
            if joined == len(keep):
                best = min(best, cost)
    return best


def exact_milp_cost(G: nx.Graph, terminals, weight: str = "weight") -> float:
    """The optimum by an exact MILP (scipy's HiGHS): the directed multi-commodity flow
    formulation, whose LP bound equals the directed cut relaxation's. Arc variables y_a ∈ {0,1}
    (both directions of each edge), one unit of flow f_k from the first terminal to each other
    terminal k, f_k(a) ≤ y_a; minimise Σ w_a y_a."""
    terminals = list(dict.fromkeys(terminals))
    index = {n: i for i, n in enumerate(G)}
    edges = [(index[u], index[v], d[weight]) for u, v, d in G.edges(data=True) if u != v]
    tail = np.array([u for u, v, _ in edges] + [v for u, v, _ in edges])
    head = np.array([v for u, v, _ in edges] + [u for u, v, _ in edges])
    w = np.array([x for *_, x in edges] * 2, dtype=float)
    n, arcs, k = len(index), len(tail), len(terminals) - 1
    if k < 1:
        return 0.0
    cols = np.arange(arcs)
    incidence = sp.csr_array(
        (np.r_[np.ones(arcs), -np.ones(arcs)], (np.r_[head, tail], np.r_[cols, cols])),
        shape=(n, arcs),
    )
    flow = sp.hstack([sp.csr_array((k * n, arcs)), sp.kron(sp.identity(k), incidence)])
    supply = np.zeros((k, n))
    supply[:, index[terminals[0]]] = -1
    supply[np.arange(k), [index[t] for t in terminals[1:]]] = 1
    capacity = sp.hstack([-sp.vstack([sp.identity(arcs)] * k), sp.identity(k * arcs)])
    result = milp(
        np.r_[w, np.zeros(k * arcs)],
        constraints=[
            LinearConstraint(flow, supply.ravel(), supply.ravel()),
            LinearConstraint(capacity, -np.inf, 0),
        ],
        integrality=np.r_[np.ones(arcs), np.zeros(k * arcs)],
        bounds=Bounds(0, 1),
    )
    assert result.success, result.message
    return float(result.fun)


def check_tree(G: nx.Graph, terminals, T: nx.Graph, weight: str = "weight") -> None:
    """The invariants of every result: a tree spanning the terminals, no non-terminal leaf,
    edges of G with copies of their data, cost = sum of the edge weights."""
    terminals = set(terminals)
    assert terminals <= set(T)
    if len(terminals) >= 2:
        assert nx.is_tree(T)
        assert all(T.degree(n) > 1 or n in terminals for n in T)
    for u, v, d in T.edges(data=True):
        assert G.has_edge(u, v)
        assert d == G.edges[u, v]
        assert d is not G.edges[u, v]
    for n, d in T.nodes(data=True):
        assert d == G.nodes[n]
    assert T.graph["cost"] == pytest.approx(T.size(weight=weight), rel=1e-12, abs=1e-12)


def random_instance(rng: random.Random, n: int, p: float, k: int, wmax: int = 10):
    """A connected random graph with integer weights 1..wmax and k terminals."""
    while True:
        G = nx.gnp_random_graph(n, p, seed=rng.randrange(2**32))
        if nx.is_connected(G):
            break
    for _, _, d in G.edges(data=True):
        d["weight"] = rng.randint(1, wmax)
    return G, rng.sample(sorted(G), k)


# -------------------------------------------------------------------------------------------
# small cases by hand


def test_star_beats_terminal_mst():
    """Four terminals on a square's corners (sides 1.9), a hub 1 from each: the optimum is the
    star through the hub (4), not a spanning tree of the terminals (3 × 1.9 = 5.7)."""
    G = nx.Graph()
    corners = ["a", "b", "c", "d"]
    for x, y in itertools.pairwise([*corners, "a"]):
        G.add_edge(x, y, weight=1.9)
    for x in corners:
        G.add_edge("hub", x, weight=1.0)
    T = steiner_tree(G, corners)
    check_tree(G, corners, T)
    assert T.graph["cost"] == pytest.approx(4.0)
    assert set(T.edges("hub")) == {("hub", x) for x in corners}


def test_path_through_steiner_nodes():
    """Two terminals at the ends of a cheap 4-edge path and a costly direct edge."""
    G = nx.path_graph(5)
    nx.set_edge_attributes(G, 1.0, "weight")
    G.add_edge(0, 4, weight=10.0)
    T = steiner_tree(G, [0, 4])
    check_tree(G, [0, 4], T)
    assert sorted(T.edges) == [(0, 1), (1, 2), (2, 3), (3, 4)]
    assert T.graph["cost"] == 4.0


def test_trivial_terminal_sets():
    G = nx.Graph(crs="EPSG:32649")
    G.add_node("s", kind="site")
    G.add_edge("s", "t", weight=3.0)
    T0 = steiner_tree(G, [])
    assert T0.number_of_nodes() == 0
    assert T0.graph == {"crs": "EPSG:32649", "cost": 0.0}
    T1 = steiner_tree(G, ["s", "s"])
    assert list(T1.nodes(data=True)) == [("s", {"kind": "site"})]
    assert T1.number_of_edges() == 0
    assert T1.graph["cost"] == 0.0
    T2 = steiner_tree(G, ["t", "s", "t"])
    check_tree(G, ["s", "t"], T2)
    assert T2.graph["cost"] == 3.0


def snapshot(G: nx.Graph):
    """A deep copy of G's structure and attributes, for "the input is unchanged" checks."""
    return (
        dict(G.graph),
        {n: dict(d) for n, d in G.nodes(data=True)},
        {(u, v): dict(d) for u, v, d in G.edges(data=True)},
    )


def test_attributes_are_copied_and_input_unchanged():
    G = nx.Graph(crs="EPSG:32649", name="roads")
    G.add_edge(1, 2, weight=1.0, road_class="primary", length_m=100.0)
    G.add_edge(2, 3, weight=2.0, road_class="residential", length_m=200.0)
    G.add_edge(1, 3, weight=5.0)
    G.nodes[2]["x"] = 10.0
    before = snapshot(G)
    T = steiner_tree(G, [1, 3])
    check_tree(G, [1, 3], T)
    assert T.graph == {"crs": "EPSG:32649", "name": "roads", "cost": 3.0}
    assert T.edges[1, 2] == {"weight": 1.0, "road_class": "primary", "length_m": 100.0}
    assert T.nodes[2] == {"x": 10.0}
    T.edges[1, 2]["weight"] = 99.0
    T.nodes[2]["x"] = -1.0
    T.graph["crs"] = "changed"
    assert snapshot(G) == before


def test_other_weight_attribute_and_infinite_edges():
    """``weight=`` picks the attribute; an infinite weight marks an edge as unusable (a lease
    forbidden by the plan)."""
    G = nx.Graph()
    G.add_edge("a", "b", cost_x=1.0, cost_y=math.inf)
    G.add_edge("b", "c", cost_x=1.0, cost_y=1.0)
    G.add_edge("a", "c", cost_x=5.0, cost_y=4.0)
    Tx = steiner_tree(G, ["a", "c"], weight="cost_x")
    assert Tx.graph["cost"] == 2.0
    assert set(map(frozenset, Tx.edges)) == {frozenset("ab"), frozenset("bc")}
    Ty = steiner_tree(G, ["a", "c"], weight="cost_y")
    assert Ty.graph["cost"] == 4.0
    assert list(Ty.edges) == [("a", "c")]


def test_zero_weight_edges_and_virtual_root():
    """plans.py's pattern: a virtual root joined at zero cost to every fiber node is one
    terminal standing for the whole fiber network."""
    G = nx.grid_2d_graph(4, 3)
    for i, (u, v) in enumerate(sorted(G.edges)):
        G.edges[u, v]["weight"] = 10.0 + i % 4
    root = ("fiber-root",)
    for n in [(0, 0), (0, 1), (0, 2)]:  # fiber along the first column
        G.add_edge(root, n, weight=0.0, virtual=True)
    G.add_edge((3, 0), (3, 1), weight=0.0)  # a free link
    sites = [(3, 0), (3, 2), (2, 1)]
    T = steiner_tree(G, [root, *sites])
    check_tree(G, [root, *sites], T)
    assert T.graph["cost"] == pytest.approx(exact_cost(G, [root, *sites]))
    assert any(d.get("virtual") for _, _, d in T.edges(data=True))


def test_mixed_type_tuple_labels():
    """Labels that cannot be sorted together (tuples of mixed types, ints, strings)."""
    H = nx.cycle_graph(7)
    H.add_edge(0, 3)
    labels = {0: ("a", 1), 1: (2, "b"), 2: 3, 3: "x", 4: (None, 2.5), 5: frozenset({1}), 6: 7.5}
    G = nx.relabel_nodes(H, labels)
    for i, (u, v) in enumerate(G.edges):
        G.edges[u, v]["weight"] = 1.0 + (i % 3)
    terminals = [("a", 1), "x", (None, 2.5), 7.5]
    T = steiner_tree(G, terminals)
    check_tree(G, terminals, T)
    assert T.graph["cost"] == pytest.approx(exact_cost(G, terminals))


def test_self_loops_and_graph_views_are_accepted():
    G = nx.cycle_graph(6)
    nx.set_edge_attributes(G, 1.0, "weight")
    G.add_edge(2, 2, weight=0.5)
    G.add_edge(0, 3, weight=1.5)
    T = steiner_tree(G, [0, 2, 3])
    check_tree(G, [0, 2, 3], T)
    assert T.graph["cost"] == pytest.approx(2.5)
    view = nx.subgraph_view(G, filter_edge=lambda u, v: (u, v) != (0, 3))
    Tv = steiner_tree(view, [0, 2, 3])
    check_tree(view, [0, 2, 3], Tv)
    assert Tv.graph["cost"] == pytest.approx(3.0)


def test_undirected_view_of_a_digraph():
    """Arcs both ways with their own attribute dicts (the generic label-hashing path)."""
    D = nx.DiGraph()
    D.add_edge("a", "b", weight=1.0)
    D.add_edge("b", "a", weight=1.0)
    D.add_edge("b", "c", weight=2.0)
    D.add_edge("a", "c", weight=5.0)
    U = D.to_undirected(as_view=True)
    T = steiner_tree(U, ["a", "c"])
    check_tree(U, ["a", "c"], T)
    assert T.graph["cost"] == 3.0


# -------------------------------------------------------------------------------------------
# errors


def test_missing_terminals_are_named():
    G = nx.path_graph(3)
    nx.set_edge_attributes(G, 1.0, "weight")
    with pytest.raises(PlanError, match=r"2 terminal\(s\) not in the graph: 'x', \(9, 9\)"):
        steiner_tree(G, [0, "x", (9, 9)])


def test_disconnected_terminals_are_named():
    G = nx.Graph()
    G.add_edge("a", "b", weight=1.0)
    G.add_edge("c", "d", weight=1.0)
    G.add_edge("d", "e", weight=math.inf)  # unusable, so "e" is cut off too
    with pytest.raises(PlanError, match="terminal 'c' cannot be reached from terminal 'a'") as e:
        steiner_tree(G, ["a", "b", "c", "e"])
    assert "different connected components" in str(e.value)
    assert isinstance(e.value, ValueError)
    assert isinstance(e.value, TelcoplanError)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (-1.0, r"\(1, 2\) has 'weight' = -1.0"),
        (math.nan, r"\(1, 2\) has 'weight' = nan"),
        ("cheap", r"\(1, 2\) has a non-numeric \('cheap'\) 'weight'"),
        (None, r"\(1, 2\) has no 'weight'"),
    ],
)
def test_bad_weights_are_named(value, message):
    G = nx.path_graph(4)
    nx.set_edge_attributes(G, 1.0, "weight")
    if value is None:
        del G.edges[1, 2]["weight"]
    else:
        G.edges[1, 2]["weight"] = value
    with pytest.raises(PlanError, match=message):
        steiner_tree(G, [0, 3])


def test_missing_weight_attribute_everywhere_suggests_the_fix():
    G = nx.path_graph(3)
    with pytest.raises(PlanError, match=r"2 edge\(s\).*pass weight="):
        steiner_tree(G, [0, 2])


@pytest.mark.parametrize("cls", [nx.DiGraph, nx.MultiGraph])
def test_directed_and_multigraphs_are_refused(cls):
    G = cls()
    G.add_edge(0, 1, weight=1.0)
    with pytest.raises(nx.NetworkXNotImplemented):
        steiner_tree(G, [0, 1])


# -------------------------------------------------------------------------------------------
# determinism


def test_pass_budget():
    """max_passes=0 is Mehlhorn's tree; on a small graph the default budget runs the search to
    its end, like an explicit large cap."""
    G, terminals, _ = read_stp(DATA / "b16.stp")
    construction = steiner_tree(G, terminals, max_passes=0)
    default = steiner_tree(G, terminals)
    assert default.graph["cost"] < construction.graph["cost"]
    assert list(steiner_tree(G, terminals, max_passes=25).edges) == list(default.edges)


def test_same_input_same_tree():
    G, terminals, _ = read_stp(DATA / "b13.stp")
    before = snapshot(G)
    first = steiner_tree(G, terminals)
    assert snapshot(G) == before
    again = steiner_tree(G, terminals)
    assert list(first.edges) == list(again.edges)
    assert list(first.nodes) == list(again.nodes)
    assert first.graph["cost"] == again.graph["cost"]
    shuffled = steiner_tree(G, list(reversed(terminals)))  # terminal order does not matter
    assert list(shuffled.edges) == list(first.edges)


@pytest.mark.parametrize("name", ["b05", "b11", "b16"])
def test_relabelled_and_reordered_graph_same_cost(name):
    G, terminals, _ = read_stp(DATA / f"{name}.stp")
    rng = random.Random(7)
    nodes = list(G)
    rng.shuffle(nodes)
    mapping = {n: ("node", str(n), n % 3) for n in nodes}
    H = nx.Graph()
    H.add_nodes_from(mapping[n] for n in nodes)
    edges = list(G.edges(data="weight"))
    rng.shuffle(edges)
    H.add_weighted_edges_from((mapping[v], mapping[u], w) for u, v, w in edges)
    T = steiner_tree(G, terminals)
    TH = steiner_tree(H, [mapping[t] for t in terminals])
    check_tree(H, [mapping[t] for t in terminals], TH)
    assert TH.graph["cost"] == pytest.approx(T.graph["cost"])


# -------------------------------------------------------------------------------------------
# quality against exact optima


def _random_small_instances():
    rng = random.Random(2024)
    for _ in range(150):
        n = rng.randint(5, 12)
        yield random_instance(rng, n, rng.uniform(0.25, 0.6), rng.randint(2, min(6, n)))


def test_small_random_instances_against_brute_force():
    """≤ 12 nodes: optimum ≤ ours ≤ construction ≤ 2 · optimum (Mehlhorn's bound) always, and
    the optimum itself on (nearly) every instance."""
    exact = runs = 0
    for G, terminals in _random_small_instances():
        T = steiner_tree(G, terminals)
        check_tree(G, terminals, T)
        opt = exact_cost(G, terminals)
        assert opt - 1e-9 <= T.graph["cost"] <= 2 * opt + 1e-9
        construction = steiner_tree(G, terminals, max_passes=0)
        check_tree(G, terminals, construction)
        assert T.graph["cost"] <= construction.graph["cost"] + 1e-9  # never worse
        assert construction.graph["cost"] <= 2 * opt + 1e-9
        exact += math.isclose(T.graph["cost"], opt)
        runs += 1
    assert exact >= 0.98 * runs


def test_array_search_of_large_graphs_on_small_ones(monkeypatch):
    """The array local search (the one large graphs get) run on the small instances: valid
    trees, never worse than the construction, optimal in most cases."""
    from telcoplan.backbone import steiner

    monkeypatch.setattr(steiner, "_COMPILED_LIMIT", 0)
    exact = runs = 0
    for G, terminals in _random_small_instances():
        T = steiner_tree(G, terminals)
        check_tree(G, terminals, T)
        opt = exact_cost(G, terminals)
        construction = steiner_tree(G, terminals, max_passes=0).graph["cost"]
        assert opt - 1e-9 <= T.graph["cost"] <= construction + 1e-9
        exact += math.isclose(T.graph["cost"], opt)
        runs += 1
    assert exact >= 0.9 * runs


@st.composite
def instances(draw):
    n = draw(st.integers(2, 9))
    pairs = list(itertools.combinations(range(n), 2))
    chosen = draw(st.lists(st.sampled_from(pairs), min_size=1, max_size=len(pairs), unique=True))
    G = nx.Graph()
    G.add_nodes_from(range(n))
    for u, v in chosen:
        G.add_edge(u, v, weight=draw(st.integers(0, 6)))
    component = max(nx.connected_components(G), key=lambda c: (len(c), min(c)))
    terminals = draw(st.lists(st.sampled_from(sorted(component)), min_size=1, max_size=6))
    return G, terminals


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(instances())
def test_property_valid_and_within_twice_the_optimum(instance):
    """Any small graph (zero weights, parallel paths, unused nodes and components allowed)."""
    G, terminals = instance
    T = steiner_tree(G, terminals)
    check_tree(G, terminals, T)
    opt = exact_cost(G, terminals)
    assert opt - 1e-9 <= T.graph["cost"] <= 2 * opt + 1e-9


def test_exact_references_agree():
    """The MILP and the brute force agree (zero weights and unused nodes included)."""
    rng = random.Random(11)
    for _ in range(15):
        G, terminals = random_instance(rng, rng.randint(5, 10), 0.45, rng.randint(2, 5), wmax=4)
        for u, v in rng.sample(sorted(G.edges), 2):
            G.edges[u, v]["weight"] = 0
        assert exact_milp_cost(G, terminals) == pytest.approx(exact_cost(G, terminals))


def test_steinlib_b_series_against_the_optima():
    """SteinLib's B series (50–100 nodes, 9–50 terminals): never below the optimum, every gap
    within WORST_GAP, the mean within MEAN_GAP; the optima are the published ones, recomputed
    here by the exact MILP."""
    gaps = []
    for name, opt in B_OPTIMA.items():
        G, terminals, stated = read_stp(DATA / f"{name}.stp")
        assert stated == opt
        assert exact_milp_cost(G, terminals) == pytest.approx(opt)
        T = steiner_tree(G, terminals)
        check_tree(G, terminals, T)
        assert T.graph["cost"] >= opt  # never below the optimum: the data is intact
        gaps.append(T.graph["cost"] / opt - 1)
    assert max(gaps) <= WORST_GAP
    assert sum(gaps) / len(gaps) <= MEAN_GAP


def test_steinlib_c_series_against_the_optima():
    """SteinLib's C series, c01–c05 (500 nodes, 625 edges, 5–250 terminals): as above, with
    the published optima (too large for the MILP here)."""
    gaps = []
    for name, opt in C_OPTIMA.items():
        G, terminals, stated = read_stp(DATA.parent / "steinlib_c" / f"{name}.stp")
        assert stated == opt
        assert (G.number_of_nodes(), G.number_of_edges()) == (500, 625)
        T = steiner_tree(G, terminals)
        check_tree(G, terminals, T)
        assert T.graph["cost"] >= opt
        gaps.append(T.graph["cost"] / opt - 1)
    assert max(gaps) <= WORST_GAP
    assert sum(gaps) / len(gaps) <= MEAN_GAP


@pytest.mark.parametrize("name", ["b11", "b13", "b16"])
def test_restarts_only_improve_and_seed_is_deterministic(name):
    """More restarts never give a costlier tree than fewer (the best tree is kept, the first
    search is the same); a seed always gives the same tree; the local search never makes
    Mehlhorn's tree worse."""
    G, terminals, _ = read_stp(DATA / f"{name}.stp")
    construction = steiner_tree(G, terminals, max_passes=0).graph["cost"]
    costs = []
    for restarts in (0, 2, 8):
        T = steiner_tree(G, terminals, restarts=restarts, seed=3)
        check_tree(G, terminals, T)
        again = steiner_tree(G, terminals, restarts=restarts, seed=3)
        assert list(T.edges) == list(again.edges)
        costs.append(T.graph["cost"])
    assert construction >= costs[0] >= costs[1] >= costs[2]
    for seed in range(4):
        T = steiner_tree(G, terminals, restarts=3, seed=seed)
        check_tree(G, terminals, T)
        assert costs[0] >= T.graph["cost"]


def road_instance(rng: random.Random, side: int, k: int, fiber: int = 0):
    """A small street grid (10% of pieces removed) with trench-like costs, k terminal junctions
    and, with ``fiber`` > 0, a virtual fiber root joined at zero cost to that many junctions
    (as plans.py builds it)."""
    G = nx.grid_2d_graph(side, side)
    G.remove_edges_from([e for e in sorted(G.edges) if rng.random() < 0.1])
    G = G.subgraph(max(nx.connected_components(G), key=len)).copy()
    for _, _, d in sorted(G.edges(data=True)):
        d["weight"] = round(rng.uniform(50, 150))
    junctions = sorted(G)
    terminals = rng.sample(junctions, k)
    if fiber:
        root = ("fiber-root",)
        for n in rng.sample(junctions, fiber):
            G.add_edge(root, n, weight=0.0)
        terminals = [root, *terminals]
    return G, terminals


def test_generated_road_instances_against_exact_milp():
    """Street grids of 36–100 junctions, 6–12 terminals, some joined to fiber by a virtual
    root: never below the exact optimum, every gap within WORST_GAP, the mean within
    MEAN_GAP."""
    rng = random.Random(5)
    gaps = []
    for i in range(16):
        G, terminals = road_instance(rng, 6 + i % 5, 6 + i % 7, fiber=3 if i % 3 == 0 else 0)
        T = steiner_tree(G, terminals)
        check_tree(G, terminals, T)
        opt = exact_milp_cost(G, terminals)
        assert T.graph["cost"] >= opt - 1e-6
        gaps.append(T.graph["cost"] / opt - 1)
    assert max(gaps) <= WORST_GAP
    assert sum(gaps) / len(gaps) <= MEAN_GAP


def test_not_worse_than_networkx_mehlhorn_on_a_grid():
    """A 40 × 40 road-like grid with 30 terminals: never costlier than networkx's Mehlhorn."""
    from networkx.algorithms.approximation import steiner_tree as nx_steiner

    rng = random.Random(3)
    G = nx.grid_2d_graph(40, 40)
    G.remove_edges_from([e for e in list(G.edges) if rng.random() < 0.1])
    G = G.subgraph(max(nx.connected_components(G), key=len)).copy()
    for _, _, d in G.edges(data=True):
        d["weight"] = rng.uniform(50, 150)
    terminals = rng.sample(sorted(G), 30)
    T = steiner_tree(G, terminals)
    check_tree(G, terminals, T)
    theirs = nx_steiner(G, terminals, method="mehlhorn", weight="weight").size(weight="weight")
    assert T.graph["cost"] <= theirs + 1e-9
