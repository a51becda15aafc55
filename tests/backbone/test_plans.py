"""Backbone plans: separate vs joint, edge users, cost shares (with an exact Steiner solver)."""

from __future__ import annotations

import itertools

import geopandas as gpd
import networkx as nx
import numpy as np
import pytest
from shapely.geometry import LineString, Point

from telcoplan.backbone.graph import build_graph, operator_costs, snap_sites
from telcoplan.backbone.plans import plan_backbone, plan_links, shapley_shares
from tests.conftest import UTM49, X0, Y0


def exact_steiner(G, terminals, *, weight="weight"):
    """Brute force: the cheapest MST over terminals ∪ S for every subset S of the other nodes."""
    others = [n for n in G if n not in terminals]
    best, best_tree = float("inf"), None
    for k in range(len(others) + 1):
        for extra in itertools.combinations(others, k):
            sub = G.subgraph([*terminals, *extra])
            if not nx.is_connected(sub):
                continue
            T = nx.minimum_spanning_tree(sub, weight=weight)
            cost = T.size(weight=weight)
            if cost < best - 1e-9:
                best, best_tree = cost, T
    return best_tree


@pytest.fixture
def street():
    """A street A–B–C–D (1 km pieces, residential), Viettel fiber on A–B; a side road C–E.

    Sites: v1 (Viettel) beside D, m1 (MobiFone) beside C, s1 shared (both) beside E.
    """
    A, B, C, D, E = [(X0 + 1000 * i, Y0) for i in range(4)] + [(X0 + 2000, Y0 + 1000)]
    roads = gpd.GeoDataFrame(
        {"road_id": ["ab", "bc", "cd", "ce"], "road_class": ["residential"] * 4},
        geometry=[LineString([A, B]), LineString([B, C]), LineString([C, D]), LineString([C, E])],
        crs=UTM49,
    ).set_index("road_id")
    fiber = gpd.GeoDataFrame(
        {"fiber_id": ["f"], "operator": ["Viettel"]}, geometry=[LineString([A, B])], crs=UTM49
    )
    sites = gpd.GeoDataFrame(
        {"site_id": ["v1", "m1", "s1"]},
        geometry=[
            Point(X0 + 3000, Y0 + 10),
            Point(X0 + 2000, Y0 - 10),
            Point(X0 + 2000, Y0 + 1010),
        ],
        crs=UTM49,
    ).set_index("site_id")
    operators = {"v1": ["Viettel"], "m1": ["MobiFone"], "s1": ["Viettel", "MobiFone"]}
    G = build_graph(roads, fiber=fiber)
    H, nodes = snap_sites(G, sites)
    H = operator_costs(H, ["Viettel", "MobiFone"], own_fiber_factor=0.02, lease_factor=0.3)
    return H, nodes, operators


def test_plans_by_hand(street):
    G, nodes, operators = street
    plan = plan_backbone(G, nodes, operators, steiner=exact_steiner)
    per_m = 30.0  # residential trench, and access drops of 10 m
    # Viettel alone: from its fiber at B: B–C, C–D, C–E and two drops (v1, s1)
    assert plan.separate["Viettel"].length_m == pytest.approx(3000 + 20)
    assert plan.separate["Viettel"].cost == pytest.approx(3020 * per_m)
    # MobiFone alone leases Viettel's A–B (0.3) or not at all: B is where the fiber is; it must
    # reach B: B–C, C–E, drops m1 and s1
    assert plan.separate["MobiFone"].cost == pytest.approx((2000 + 20) * per_m)
    # jointly: B–C, C–D, C–E and three drops, dug once
    assert plan.joint.cost == pytest.approx((3000 + 30) * per_m)
    assert plan.joint.cost <= plan.cost_separate
    assert plan.savings_pct == pytest.approx(100 * (1 - 3030 / 5040))
    users = {G.edges[e]["road_id"]: who for e, who in plan.users.items() if G.edges[e]["road_id"]}
    assert users == {
        "bc": {"Viettel", "MobiFone"},
        "cd": {"Viettel"},
        "ce": {"Viettel", "MobiFone"},
    }
    assert sum(plan.share_proportional.values()) == pytest.approx(plan.joint.cost)
    assert sum(plan.share_shapley.values()) == pytest.approx(plan.joint.cost)
    links = plan_links(G, plan)
    assert set(links["plan"]) == {"joint", "separate"}
    assert links.crs == G.graph["crs"]
    assert links.loc[links["plan"] == "joint", "cost"].sum() == pytest.approx(plan.joint.cost)


def test_shapley_textbook():
    """Airport game: costs 1, 2, 3 with v(S) = max cost in S -> shares 1/3, 5/6, 11/6."""
    cost = {"a": 1.0, "b": 2.0, "c": 3.0}
    shares = shapley_shares(["a", "b", "c"], lambda s: max(cost[p] for p in s))
    assert shares == pytest.approx({"a": 1 / 3, "b": 1 / 3 + 1 / 2, "c": 1 / 3 + 1 / 2 + 1})
    assert sum(shares.values()) == pytest.approx(3.0)


def _random_city(seed: int):
    """A jittered 9 x 9 street grid with some streets missing, fiber of three operators on
    random streets, and 12 sites (some shared) beside random streets."""
    rng = np.random.default_rng(seed)
    n = 9
    pts = {
        (i, j): (X0 + 300 * i + rng.uniform(-40, 40), Y0 + 300 * j + rng.uniform(-40, 40))
        for i in range(n)
        for j in range(n)
    }
    lines, classes = [], []
    for (i, j), p in pts.items():
        for q in ((i + 1, j), (i, j + 1)):
            if q in pts and rng.random() > 0.15:
                lines.append(LineString([p, pts[q]]))
                classes.append(str(rng.choice(["primary", "residential", "tertiary"])))
    roads = gpd.GeoDataFrame({"road_class": classes}, geometry=lines, crs=UTM49)
    ops = ["Viettel", "VinaPhone", "MobiFone"]
    pick = rng.choice(len(lines), size=12, replace=False)
    fiber = gpd.GeoDataFrame(
        {"operator": [ops[k % 3] for k in range(len(pick))]},
        geometry=[lines[i] for i in pick],
        crs=UTM49,
    )
    where = rng.choice(len(lines), size=12, replace=False)
    sites = gpd.GeoDataFrame(
        {"site_id": [f"s{k}" for k in range(12)]},
        geometry=[
            Point(lines[i].interpolate(0.5, normalized=True).x + 15, lines[i].centroid.y + 15)
            for i in where
        ],
        crs=UTM49,
    ).set_index("site_id")
    site_ops = {
        s: sorted({ops[int(rng.integers(3))] for _ in range(int(rng.integers(1, 3)))})
        for s in sites.index
    }
    G = build_graph(roads, fiber=fiber)
    G, nodes = snap_sites(G, sites)
    return operator_costs(G, ops), nodes, site_ops


@pytest.mark.parametrize("seed", range(30))
def test_plan_invariants_with_the_real_solver(seed):
    """With telcoplan's own Steiner solver: every site reaches the fiber in each plan, the
    joint plan never costs more than building separately, shares sum to the joint cost."""
    G, nodes, site_ops = _random_city(seed)
    plan = plan_backbone(G, nodes, site_ops)
    assert plan.joint.cost <= plan.cost_separate + 1e-6
    # one shared network is not longer than the separate ones laid side by side (plans minimise
    # cost, so a longer route on cheaper roads is possible in principle; on these mixed-class
    # cities it never happens)
    assert plan.joint.length_m <= plan.length_km_separate * 1000 + 1e-6
    assert sum(plan.share_shapley.values()) == pytest.approx(plan.joint.cost)
    assert sum(plan.share_proportional.values()) == pytest.approx(plan.joint.cost)
    for tree, sites in [(plan.joint, list(site_ops))] + [
        (plan.separate[op], [s for s in site_ops if op in site_ops[s]]) for op in plan.separate
    ]:
        T = nx.Graph()
        T.add_edges_from(tree.edges)
        T.add_edges_from(("root", a) for a in tree.attach)
        assert nx.is_forest(T)
        for s in sites:
            assert nodes[s] in T
            assert nx.has_path(T, nodes[s], "root"), s
        assert tree.cost == pytest.approx(
            sum(G.edges[e][tree_weight(plan, tree)] for e in tree.edges)
        )


def tree_weight(plan, tree) -> str:
    if tree is plan.joint:
        return "cost_joint"
    (op,) = [o for o, t in plan.separate.items() if t is tree]
    return f"cost_{op}"


@pytest.mark.parametrize(
    ("lease", "route_cost", "status"),
    [(0.3, 0.3 * 30 * 2000, "leased"), (5.0, 30 * 2000, "new"), (None, 30 * 2000, "new")],
)
def test_lease_factor_prices_another_operators_fiber(lease, route_cost, status):
    """MobiFone's fiber ends at B; its site is beside D; Viettel's cable runs B–C–D. Alone,
    MobiFone leases Viettel's cable at lease_factor x trench, or digs beside it when leasing is
    dearer than a trench or forbidden."""
    A, B, C, D = [(X0 + 1000 * i, Y0) for i in range(4)]
    roads = gpd.GeoDataFrame(
        {"road_class": ["residential"] * 3},
        geometry=[LineString([A, B]), LineString([B, C]), LineString([C, D])],
        crs=UTM49,
    )
    fiber = gpd.GeoDataFrame(
        {"operator": ["MobiFone", "Viettel"]},
        geometry=[LineString([A, B]), LineString([B, D])],
        crs=UTM49,
    )
    sites = gpd.GeoDataFrame(
        {"site_id": ["m1"]}, geometry=[Point(X0 + 3000, Y0 + 10)], crs=UTM49
    ).set_index("site_id")
    G, nodes = snap_sites(build_graph(roads, fiber=fiber), sites)
    G = operator_costs(G, ["MobiFone"], lease_factor=lease)
    plan = plan_backbone(G, nodes, {"m1": ["MobiFone"]}, steiner=exact_steiner)
    drop = 10 * 30  # the 10 m access drop, dug
    assert plan.separate["MobiFone"].cost == pytest.approx(route_cost + drop)
    links = plan_links(G, plan)
    road = links[(links["plan"] == "separate") & (links["road_class"] != "access")]
    assert set(road["status"]) == {status}
    assert road["length_m"].sum() == pytest.approx(2000)
