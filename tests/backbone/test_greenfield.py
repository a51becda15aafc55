"""Greenfield backbones (no fiber: every link a new trench, sites joined to each other) and the
rule that the joint and the separate plans serve the same sites (with and without fiber)."""

from __future__ import annotations

import itertools

import geopandas as gpd
import networkx as nx
import numpy as np
import pytest
from networkx.algorithms.approximation import steiner_tree as nx_steiner_tree
from shapely.geometry import LineString, Point

from telcoplan.backbone.graph import build_graph, operator_costs, snap_sites
from telcoplan.backbone.plans import plan_backbone, plan_links
from tests.backbone.test_plans import _random_city, exact_steiner
from tests.conftest import UTM49, X0, Y0

PER_M = 30.0  # residential trench (and access drop) cost, USD/m


def _city(roads, sites, site_ops, fiber=None, lease_factor=0.3):
    """Costed graph and site nodes of hand-made residential roads and sites."""
    roads = gpd.GeoDataFrame(
        {"road_class": ["residential"] * len(roads)},
        geometry=[LineString(r) for r in roads],
        crs=UTM49,
    )
    pts = gpd.GeoDataFrame(
        {"site_id": list(sites)}, geometry=[Point(p) for p in sites.values()], crs=UTM49
    ).set_index("site_id")
    G, nodes = snap_sites(build_graph(roads, fiber=fiber), pts)
    ops = sorted({o for lst in site_ops.values() for o in lst})
    return operator_costs(G, ops, lease_factor=lease_factor), nodes


# a street A–B–C–D of 1 km pieces and a side road C–E
A, B, C, D, E = [(X0 + 1000 * i, Y0) for i in range(4)] + [(X0 + 2000, Y0 + 1000)]
STREET = [[A, B], [B, C], [C, D], [C, E]]


def test_greenfield_plan_by_hand():
    """Viettel beside A, D and E (shared with MobiFone), MobiFone beside C: exact values.

    Viettel alone joins A, D, E: A–B–C–D, C–E and three 10 m drops (4,030 m); MobiFone alone
    joins C and E: C–E and two drops (1,020 m); jointly one network: 4,040 m. Shapley:
    φ_V = ½·4030 + ½·(4040 − 1020) = 3525, φ_M = ½·1020 + ½·(4040 − 4030) = 515 (× 30 USD/m).
    """
    sites = {
        "v2": (X0, Y0 + 10),
        "v1": (X0 + 3000, Y0 + 10),
        "m1": (X0 + 2000, Y0 - 10),
        "s1": (X0 + 2000, Y0 + 1010),
    }
    ops = {"v2": ["Viettel"], "v1": ["Viettel"], "m1": ["MobiFone"], "s1": ["Viettel", "MobiFone"]}
    G, nodes = _city(STREET, sites, ops)
    for steiner in (None, exact_steiner):
        plan = plan_backbone(G, nodes, ops, steiner=steiner)
        assert plan.mode == "greenfield"
        assert plan.left_out == {}
        assert plan.separate["Viettel"].cost == pytest.approx(4030 * PER_M)
        assert plan.separate["MobiFone"].cost == pytest.approx(1020 * PER_M)
        assert plan.joint.cost == pytest.approx(4040 * PER_M)
        assert plan.joint.length_m == pytest.approx(4040)
        assert plan.savings_pct == pytest.approx(100 * (1 - 4040 / 5050))
        assert plan.share_shapley == pytest.approx(
            {"Viettel": 3525 * PER_M, "MobiFone": 515 * PER_M}
        )
        assert sum(plan.share_proportional.values()) == pytest.approx(plan.joint.cost)
        assert plan.joint.attach == ()
    links = plan_links(G, plan)
    assert set(links["status"]) == {"new"}  # every link is a new trench
    by_road = {G.edges[e]["road_id"]: who for e, who in plan.users.items() if G.edges[e]["road_id"]}
    assert by_road == {
        "0": {"Viettel"},
        "1": {"Viettel"},
        "2": {"Viettel"},
        "3": {"Viettel", "MobiFone"},
    }


def test_greenfield_operators_without_a_shared_site_share_trenches_but_are_not_joined():
    """Viettel beside A and C, MobiFone beside B and D, no shared site: each operator needs only
    its own sites joined, so the joint plan is the union A–D (B–C dug once), 3,040 m, not more."""
    sites = {
        "v1": (X0, Y0 + 10),
        "v2": (X0 + 2000, Y0 - 10),
        "m1": (X0 + 1000, Y0 - 10),
        "m2": (X0 + 3000, Y0 - 10),
    }
    ops = {"v1": ["Viettel"], "v2": ["Viettel"], "m1": ["MobiFone"], "m2": ["MobiFone"]}
    G, nodes = _city(STREET, sites, ops)
    plan = plan_backbone(G, nodes, ops, steiner=exact_steiner)
    assert plan.cost_separate == pytest.approx(2 * 2020 * PER_M)
    assert plan.joint.cost == pytest.approx(3040 * PER_M)
    assert sum(plan.share_shapley.values()) == pytest.approx(plan.joint.cost)
    assert sum(plan.share_proportional.values()) == pytest.approx(plan.joint.cost)
    assert not any(G.edges[e]["road_id"] == "3" for e in plan.joint.edges)  # C–E: no one's


def _served(G, nodes, site_ops, plan) -> tuple[set, set]:
    """The sites each side really serves, read from the plans' edges: with fiber, a site whose
    tree path reaches a join to the fiber; greenfield, a site joined to every other site its
    operator has in the plans (by its separate tree; by the joint network)."""

    def forest(tree):
        F = nx.Graph()
        F.add_nodes_from(nodes[s] for s in site_ops)
        F.add_edges_from(tree.edges)
        F.add_edges_from(("root", a) for a in tree.attach)
        assert nx.is_forest(F)
        return F

    planned = set(plan.joint.sites)
    joint = forest(plan.joint)
    if not plan.greenfield:
        in_joint = {s for s in planned if nx.has_path(joint, nodes[s], "root")}
        in_separate = set()
        for op, tree in plan.separate.items():
            F = forest(tree)
            root = "root" if tree.attach else None
            mine = [s for s in tree.sites if op in site_ops[s]]
            for s in mine:
                target = root or nodes[mine[0]]
                if nx.has_path(F, nodes[s], target):
                    in_separate.add(s)
        return in_joint, in_separate

    def joined(F, op, s):
        return all(nx.has_path(F, nodes[s], nodes[t]) for t in planned if op in site_ops[t])

    in_joint = {s for s in planned if all(joined(joint, op, s) for op in site_ops[s])}
    in_separate = {
        s for s in planned if all(joined(forest(plan.separate[op]), op, s) for op in site_ops[s])
    }
    return in_joint, in_separate


def _island_city(with_fiber: bool, lease_factor=0.3):
    """The street plus an island road (not joined to it) carrying a Viettel site and the only
    site of Gmobile; with fiber, Viettel's cable on A–B and MobiFone's on C–D and the island."""
    island = [(X0 + 500, Y0 + 3000), (X0 + 1500, Y0 + 3000)]
    sites = {
        "v1": (X0 + 3000, Y0 + 10),
        "m1": (X0 + 2000, Y0 - 10),
        "s1": (X0 + 2000, Y0 + 1010),
        "v9": (X0 + 1000, Y0 + 3010),
        "g1": (X0 + 700, Y0 + 2990),
    }
    ops = {
        "v1": ["Viettel"],
        "m1": ["MobiFone"],
        "s1": ["Viettel", "MobiFone"],
        "v9": ["Viettel"],
        "g1": ["Gmobile"],
    }
    fiber = None
    if with_fiber:
        fiber = gpd.GeoDataFrame(
            {"operator": ["Viettel", "MobiFone", "MobiFone"]},
            geometry=[LineString([A, B]), LineString([C, D]), LineString(island)],
            crs=UTM49,
        )
    G, nodes = _city([*STREET, island], sites, ops, fiber=fiber, lease_factor=lease_factor)
    return G, nodes, ops


@pytest.mark.parametrize(
    ("with_fiber", "lease", "left_out"),
    [
        # greenfield: v9 is apart from Viettel's other sites; g1 is Gmobile's only site
        (False, 0.3, {"v9": "no road path to Viettel's other sites"}),
        # fiber: the island has MobiFone's cable only: jointly v9 connects there, but Viettel
        # alone cannot reach its fiber from v9; Gmobile leases MobiFone's cable: g1 is served
        (True, 0.3, {"v9": "no road path to Viettel's fiber"}),
        # no leasing: Gmobile, without fiber, joins its (one) site to nothing: served; v9 as above
        (True, None, {"v9": "no road path to Viettel's fiber"}),
    ],
)
def test_joint_and_separate_serve_the_same_sites(with_fiber, lease, left_out):
    G, nodes, ops = _island_city(with_fiber, lease)
    plan = plan_backbone(G, nodes, ops)
    assert plan.mode == ("existing fiber" if with_fiber else "greenfield")
    assert dict(plan.left_out) == left_out
    kept = set(ops) - set(left_out)
    in_joint, in_separate = _served(G, nodes, ops, plan)
    assert in_joint == in_separate == kept
    assert set(plan.joint.sites) == kept
    assert set().union(*(t.sites for t in plan.separate.values())) == kept
    assert plan.joint.cost <= plan.cost_separate + 1e-6
    # the left-out site truly has no road path to what it would need
    island = nx.node_connected_component(G, nodes["v9"])
    assert nodes["v1"] not in island
    if with_fiber:
        assert not any("Viettel" in d["fiber"] for u, _, d in G.edges(data=True) if u in island)


def test_a_site_without_any_fiber_on_its_road_is_left_out_of_both():
    """Without MobiFone's cables only Viettel's on A–B is left: the island's sites reach no
    fiber of the operators at all."""
    G, nodes, ops = _island_city(True)
    H = G.copy()
    for _, _, d in H.edges(data=True):
        if d["fiber"] == frozenset({"MobiFone"}):
            d["fiber"] = frozenset()
    H = operator_costs(H, ["Gmobile", "MobiFone", "Viettel"])
    plan = plan_backbone(H, nodes, ops)
    assert plan.left_out == {
        "g1": "no road path to the operators' fiber",
        "v9": "no road path to the operators' fiber",
    }
    in_joint, in_separate = _served(H, nodes, ops, plan)
    assert in_joint == in_separate == {"v1", "m1", "s1"}


@pytest.mark.parametrize("seed", range(12))
def test_greenfield_invariants_and_reference_bound(seed):
    """Random street grids without fiber: every operator's sites joined in each plan, joint cost
    ≤ separate total, shares sum to the joint cost, and the joint network costs no more than
    networkx's Steiner approximation over every site (when one group joins them all)."""
    G, nodes, site_ops = _random_city(seed)
    for _, _, d in G.edges(data=True):
        d["fiber"] = frozenset()
    ops = sorted({o for lst in site_ops.values() for o in lst})
    G = operator_costs(G, ops)
    plan = plan_backbone(G, nodes, site_ops)
    assert plan.greenfield
    in_joint, in_separate = _served(G, nodes, site_ops, plan)
    assert in_joint == in_separate == set(site_ops) - set(plan.left_out)
    assert plan.joint.cost <= plan.cost_separate + 1e-6
    assert sum(plan.share_shapley.values()) == pytest.approx(plan.joint.cost)
    assert sum(plan.share_proportional.values()) == pytest.approx(plan.joint.cost)
    assert plan.joint.cost == pytest.approx(sum(G.edges[e]["cost_joint"] for e in plan.joint.edges))
    for op, tree in plan.separate.items():
        mine = [nodes[s] for s in tree.sites if op in site_ops[s]]
        if len(mine) > 1:
            ref = nx_steiner_tree(G, mine, weight=f"cost_{op}", method="mehlhorn")
            assert tree.cost <= ref.size(weight=f"cost_{op}") + 1e-6
    groups = nx.utils.UnionFind()
    for op in ops:
        groups.union(*[nodes[s] for s in plan.joint.sites if op in site_ops[s]])
    if len(list(groups.to_sets())) == 1:
        every = [nodes[s] for s in plan.joint.sites]
        ref = nx_steiner_tree(G, every, weight="cost_joint", method="mehlhorn")
        assert plan.joint.cost <= ref.size(weight="cost_joint") + 1e-6


def _tiny_instance(seed: int):
    """Six junctions (a jittered 3 × 2 grid with one street missing at random), four sites of
    two operators (one shared at random), residential and primary roads."""
    rng = np.random.default_rng(seed)
    pts = {
        (i, j): (X0 + 500 * i + rng.uniform(-60, 60), Y0 + 500 * j + rng.uniform(-60, 60))
        for i in range(3)
        for j in range(2)
    }
    lines = [(p, pts[q]) for (i, j), p in pts.items() for q in ((i + 1, j), (i, j + 1)) if q in pts]
    drop = int(rng.integers(len(lines)))  # a 3 × 2 grid has no bridge: still connected
    lines = [ln for k, ln in enumerate(lines) if k != drop]
    roads = gpd.GeoDataFrame(
        {"road_class": [str(rng.choice(["primary", "residential"])) for _ in lines]},
        geometry=[LineString(ln) for ln in lines],
        crs=UTM49,
    )
    where = rng.choice(len(lines), size=4, replace=False)
    sites = gpd.GeoDataFrame(
        {"site_id": [f"s{k}" for k in range(4)]},
        geometry=[
            Point(
                LineString(lines[i]).interpolate(rng.uniform(0.2, 0.8), normalized=True).x + 12,
                LineString(lines[i]).interpolate(0.5, normalized=True).y + 12,
            )
            for i in where
        ],
        crs=UTM49,
    ).set_index("site_id")
    ops = {"s0": ["A"], "s1": ["A"], "s2": ["B"], "s3": ["B"]}
    ops[f"s{int(rng.integers(4))}"] = ["A", "B"]
    G, nodes = snap_sites(build_graph(roads), sites)
    return operator_costs(G, ["A", "B"]), nodes, ops


def _brute_force(G, terminals, weight) -> float:
    """Exact Steiner cost: the cheapest spanning tree over terminals ∪ S, every subset S."""
    others = [n for n in G if n not in terminals]
    best = np.inf
    for k in range(len(others) + 1):
        for extra in itertools.combinations(others, k):
            sub = G.subgraph([*terminals, *extra])
            if nx.is_connected(sub):
                best = min(best, nx.minimum_spanning_tree(sub, weight=weight).size(weight=weight))
    return best


@pytest.mark.parametrize("seed", range(8))
def test_greenfield_against_brute_force_on_tiny_graphs(seed):
    """On six junctions the joint network, which must join all four sites (a shared site links
    the two operators), costs the exact Steiner optimum; each operator's too."""
    G, nodes, ops = _tiny_instance(seed)
    plan = plan_backbone(G, nodes, ops)
    assert plan.left_out == {}
    exact = _brute_force(G, [nodes[s] for s in sorted(ops)], "cost_joint")
    assert plan.joint.cost == pytest.approx(exact)
    for op in ("A", "B"):
        mine = [nodes[s] for s in sorted(ops) if op in ops[s]]
        assert plan.separate[op].cost == pytest.approx(_brute_force(G, mine, f"cost_{op}"))
    assert plan.joint.cost <= plan.cost_separate + 1e-6
