"""The plans' array helpers against the straightforward code they replaced: the table relabel
(``np.unique``), left-to-right sums (Python's ``sum``), shared edge pairs (``zip`` of labels),
the sites left out (per-site loops and a Counter), a problem's terminals given by position, and
the links table read from the network's arrays (the edges looked up one by one)."""

from __future__ import annotations

import dataclasses
import functools
import operator
from collections import Counter

import networkx as nx
import numpy as np
import pytest
import shapely

from telcoplan.backbone import _network
from telcoplan.backbone.graph import operator_costs
from telcoplan.backbone.plans import _total, left_out_sites, plan_backbone, plan_links
from tests.backbone.test_plans import _random_city


def test_relabel_equals_np_unique():
    rng = np.random.default_rng(0)
    for _ in range(200):
        a = rng.integers(0, int(rng.integers(1, 60)), int(rng.integers(0, 80)))
        values, place = _network.relabel(a)
        want_values, want_place = np.unique(a, return_inverse=True)
        assert values.tolist() == want_values.tolist()
        assert place.tolist() == want_place.tolist()


def test_total_adds_left_to_right():
    rng = np.random.default_rng(1)
    for _ in range(200):
        x = rng.random(int(rng.integers(0, 300))) * 10.0 ** rng.integers(-3, 9)
        assert _total(x) == functools.reduce(operator.add, x.tolist(), 0.0)
    assert _total(np.array([1e16, 1.0, -1e16])) == 0.0  # not pairwise (that would give 1.0)


def _left_out_reference(G, site_nodes, site_operators) -> dict[str, str]:
    """left_out_sites as it was written before (per-site loops, a Counter)."""
    net = _network.RoadNetwork(G)
    comp = net.components()
    order = sorted(site_operators)
    reasons: dict[str, str] = {}

    def label(s):
        return int(comp[net.index[site_nodes[s]]])

    def on_fiber(weight):
        return set(comp[net.fiber_nodes(net.build(weight))].tolist())

    joint = on_fiber("cost_joint")
    if joint:
        for s in order:
            if label(s) not in joint:
                reasons[s] = "no road path to the operators' fiber"
    ops = sorted({op for lst in site_operators.values() for op in lst})
    _, carriers = net.carriers()
    for op in ops:
        sids = [s for s in order if op in site_operators[s]]
        reach = on_fiber(f"cost_{op}")
        if reach:
            own = any(op in c for c in carriers)
            why = (
                f"no road path to {op}'s fiber" if own else f"no road path to fiber {op} can lease"
            )
        else:
            counts = Counter(label(s) for s in sids)
            first = {}
            for s in sids:
                first.setdefault(label(s), len(first))
            reach = {max(counts, key=lambda c: (counts[c], -first[c]))} if counts else set()
            why = f"no road path to {op}'s other sites"
        for s in sids:
            if label(s) not in reach:
                reasons.setdefault(s, why)
    return {s: reasons[s] for s in order if s in reasons}


def _with_islands(seed: int, lease):
    """A random city, its fiber-less fourth operator, and sites on road pieces apart from it
    (the second piece with VinaPhone's fiber: the joint plan reaches it, others may not)."""
    G, nodes, site_ops = _random_city(seed)
    rng = np.random.default_rng(seed)
    ops = ["Viettel", "VinaPhone", "MobiFone", "Gmobile"]
    plain = next(d for _, _, d in G.edges(data=True) if not d["fiber"])
    for k in range(int(rng.integers(1, 4))):  # islands of 1-3 sites
        road = [("island", k, 0), ("island", k, 1)]
        carriers = frozenset({"VinaPhone"}) if k % 2 else frozenset()  # reached jointly
        G.add_edge(*road, **{**plain, "fiber": carriers})
        for j in range(int(rng.integers(1, 4))):
            sid = f"i{k}_{j}"
            G.add_edge(("site", sid), road[j % 2], **{**plain, "fiber": frozenset()})
            nodes[sid] = ("site", sid)
            site_ops[sid] = sorted({ops[int(x)] for x in rng.integers(0, 4, 2)})
    for s in list(site_ops)[:5]:
        site_ops[s] = sorted({*site_ops[s], "Gmobile"})
    return operator_costs(G, ops, lease_factor=lease), nodes, site_ops


def _checked_left_out(seed: int, lease) -> set[str]:
    """left_out_sites on an island city checked against the reference; the reasons given."""
    G, nodes, site_ops = _with_islands(seed, lease)
    got = left_out_sites(G, nodes, site_ops)
    assert got == _left_out_reference(G, nodes, site_ops)
    assert list(got) == sorted(got)
    assert any(s.startswith("i") for s in got)  # the islands are left out
    return set(got.values())


@pytest.mark.parametrize(("seed", "lease"), [(s, [0.3, None][s % 2]) for s in range(8)])
def test_left_out_sites_equal_the_reference(seed, lease):
    _checked_left_out(seed, lease)


def test_left_out_reasons_cover_every_case():
    seen = set()
    for seed in range(8):
        seen |= _checked_left_out(seed, [0.3, None][seed % 2])
    kinds = {r.split()[-1] for r in seen}
    assert {"fiber", "sites"} <= kinds, seen  # (leasing reaches what the joint plan does)


@pytest.mark.parametrize("seed", range(4))
def test_problem_by_positions_equals_by_labels(seed):
    G, nodes, _ = _random_city(seed)
    net = _network.RoadNetwork(G)
    for w in ("cost_joint", "cost_Viettel"):
        build = net.build(w)
        terminals = [_network.ROOT, *(nodes[s] for s in sorted(nodes))]
        by_label = net.problem(build, terminals)
        pos = np.array([net.position(t) for t in terminals], dtype=np.int64)
        by_pos = net.problem(build, net.label_array(pos), pos)
        for f in dataclasses.fields(by_label):
            x, y = getattr(by_label, f.name), getattr(by_pos, f.name)
            assert (x == y) if isinstance(x, tuple) else np.array_equal(x, y), f.name


@pytest.mark.parametrize("seed", range(4))
def test_pairs_are_the_label_pairs_shared_between_calls(seed):
    G, _, _ = _random_city(seed)
    net = _network.RoadNetwork(G)
    rng = np.random.default_rng(seed)
    for _ in range(5):
        e = rng.choice(net.m, int(rng.integers(0, net.m)), replace=True)
        flip = rng.random(len(e)) < 0.5
        u = np.where(flip, net.ev[e], net.eu[e])
        v = np.where(flip, net.eu[e], net.ev[e])
        got = net.pairs(u, v) if rng.random() < 0.5 else net.pairs(u, v, e)
        assert got == tuple(zip(net.labels(u), net.labels(v), strict=True))
        assert all(g is h for g, h in zip(got, net.pairs(u, v), strict=True))  # made once
    with pytest.raises(ValueError, match="not an edge"):
        net.pairs(np.array([net.eu[0]]), np.array([net.eu[0]]))


@pytest.mark.parametrize("seed", range(6))
def test_links_from_the_arrays_equal_the_links_looked_up(seed):
    G, nodes, site_ops = _with_islands(seed, 0.3)
    plan = plan_backbone(G, nodes, site_ops, shapley=False)
    assert plan.arrays is not None
    fast = plan_links(G, plan)
    slow = plan_links(G, dataclasses.replace(plan, arrays=None))
    assert fast.drop(columns="geometry").equals(slow.drop(columns="geometry"))
    assert list(fast.dtypes) == list(slow.dtypes)
    assert (shapely.to_wkb(fast.geometry.values) == shapely.to_wkb(slow.geometry.values)).all()
    assert len(fast) == len(plan.joint.edges) + sum(len(t.edges) for t in plan.separate.values())


def _network_arrays(G) -> dict:
    net = _network.RoadNetwork(G)
    return {k: getattr(net, k) for k in ("row", "col", "eu", "ev", "key", "edge", "dicts")}


@pytest.mark.parametrize("seed", range(6))
def test_neighbours_by_identity_equal_the_labels_looked_up(seed, monkeypatch):
    """The network read by pairing each edge's attribute dict (held under both ends) equals the
    network read by looking every neighbour's label up; a graph whose dicts are not held that
    way (one dict for two edges) is read by the labels."""
    rng = np.random.default_rng(seed)
    G = nx.gnm_random_graph(60, 150, seed=seed)
    G = nx.relabel_nodes(G, {i: ("n", int(rng.integers(1000)), i) for i in G})  # tuple labels
    for u in list(G)[:5]:
        G.add_edge(u, u)  # self-loops
    G.add_edge(("n", -1, -1), ("n", -2, -2))
    got = _network_arrays(G)
    assert (
        _network.neighbours_by_identity(
            np.repeat(np.arange(len(G)), [len(r) for r in G._adj.values()]),
            np.fromiter((d for r in G._adj.values() for d in r.values()), object),
            G._adj,
        )
        is not None
    )
    monkeypatch.setattr(_network, "neighbours_by_identity", lambda *a: None)
    want = _network_arrays(G)
    for k in got:
        assert np.array_equal(got[k], want[k]), k
    monkeypatch.undo()
    a, b, c = list(G)[10:13]
    G.add_edge(a, b)
    G.add_edge(a, c)
    G._adj[a][c] = G._adj[c][a] = G._adj[a][b]  # one dict for two edges
    rows = np.repeat(np.arange(len(G)), [len(r) for r in G._adj.values()])
    dicts = np.fromiter((d for r in G._adj.values() for d in r.values()), object)
    assert _network.neighbours_by_identity(rows, dicts, G._adj) is None
    net = _network.RoadNetwork(G)  # read by the labels: every edge but the self-loops
    place = {x: i for i, x in enumerate(G)}
    assert {(net.nodes[u], net.nodes[v]) for u, v in zip(net.eu, net.ev, strict=True)} == {
        tuple(sorted(e, key=place.__getitem__)) for e in G.edges if e[0] != e[1]
    }
