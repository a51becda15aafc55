"""Backbone plans: connect every site to fiber, per operator alone and jointly; share the cost.

Each operator's sites that its fiber does not already reach are connected to its fiber network
by a Steiner tree on the road graph (the fiber network is one super-terminal: a virtual root
joined at zero cost to every node its fiber touches). The *separate* plan is one tree per
operator on its own costs; the *joint* plan is one tree for all sites on the shared-build costs
(one trench, every operator's fiber usable). Each joint link lists the operators whose sites'
paths to the fiber use it, and the joint cost is shared among operators in proportion to use and
by Shapley value (exact: one Steiner tree per coalition, 2^n of them).
"""

from __future__ import annotations

import itertools
import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import geopandas as gpd
import networkx as nx
import numpy as np
from shapely.geometry import LineString

from telcoplan.errors import PlanError

__all__ = ["BackbonePlan", "OperatorTree", "plan_backbone", "shapley_shares"]

log = logging.getLogger(__name__)

_ROOT = ("fiber-root",)


@dataclass(frozen=True)
class OperatorTree:
    """One connection network: its edges (road-graph node pairs), cost and length."""

    edges: tuple[tuple, ...]
    cost: float
    length_m: float
    sites: tuple[str, ...]
    attach: tuple = ()  # nodes where the tree joins existing fiber
    unreachable: tuple = ()  # site nodes with no road path to the fiber (left out)


@dataclass(frozen=True)
class BackbonePlan:
    """Separate and joint plans, their costs, and the joint cost's sharing."""

    separate: Mapping[str, OperatorTree]
    joint: OperatorTree
    users: Mapping[tuple, frozenset]  # joint edge -> operators using it
    share_proportional: Mapping[str, float]
    share_shapley: Mapping[str, float] = field(default_factory=dict)

    @property
    def cost_separate(self) -> float:
        return float(sum(t.cost for t in self.separate.values()))

    @property
    def length_km_separate(self) -> float:
        return float(sum(t.length_m for t in self.separate.values())) / 1000.0

    @property
    def savings_pct(self) -> float:
        sep = self.cost_separate
        return 100.0 * (sep - self.joint.cost) / sep if sep > 0 else 0.0


def _with_root(G: nx.Graph, weight: str) -> nx.Graph:
    """G plus a root joined at zero cost to every node of a fiber edge usable at ``weight``.

    For one operator that is its own fiber, and other operators' fiber when leasing is allowed
    (finite cost); for the joint build, every operator's fiber.
    """
    H = G.copy()
    H.add_node(_ROOT, x=math.nan, y=math.nan, kind="root")
    for u, v, d in G.edges(data=True):
        if d.get(f"{weight}_fiber", bool(d.get("fiber"))) and np.isfinite(d.get(weight, np.inf)):
            for n in (u, v):
                if not H.has_edge(_ROOT, n):
                    H.add_edge(_ROOT, n, **{weight: 0.0, "length_m": 0.0, "virtual": True})
    return H


def _tree(
    G: nx.Graph,
    site_nodes: Sequence,
    weight: str,
    steiner: Callable,
    sites: Sequence[str],
) -> OperatorTree:
    H = _with_root(G, weight)
    # only finite-cost edges are usable
    usable = [(u, v) for u, v, w in H.edges(data=weight) if w is not None and np.isfinite(w)]
    H = H.edge_subgraph(usable).copy()
    terminals = list(dict.fromkeys(site_nodes))
    if H.has_node(_ROOT):
        terminals = [_ROOT, *terminals]
    elif terminals:
        log.warning(
            "%s: no usable fiber to connect to; the sites are only connected to each other", weight
        )
    # sites the road graph does not link to the fiber (a road piece apart from the network)
    # are left out and reported, rather than failing the whole plan
    reach = nx.node_connected_component(H, terminals[0]) if terminals[0] in H else set()
    cut_off = tuple(t for t in terminals if t not in reach)
    if cut_off:
        log.warning(
            "backbone (%s): %d site(s) have no road path to %s and are left out: %s",
            weight,
            len(cut_off),
            "the fiber network" if terminals[0] == _ROOT else "the other sites",
            ", ".join(_site_name(t) for t in cut_off[:10]),
        )
        terminals = [t for t in terminals if t in reach]
    if len(terminals) <= 1:
        return OperatorTree((), 0.0, 0.0, tuple(sites), (), cut_off)
    if len(reach) < H.number_of_nodes():
        H = H.subgraph(reach).copy()
    T = steiner(H, terminals, weight=weight)
    edges = tuple(sorted(((u, v) for u, v in T.edges if _ROOT not in (u, v)), key=repr))
    attach = tuple(
        sorted((v if u == _ROOT else u for u, v in T.edges if _ROOT in (u, v)), key=repr)
    )
    cost = float(sum(G.edges[e][weight] for e in edges))
    length = float(sum(G.edges[e]["length_m"] for e in edges))
    return OperatorTree(edges, cost, length, tuple(sites), attach, cut_off)


def _site_name(node: object) -> str:
    """A site's id from its graph node ``("site", id)``."""
    if isinstance(node, tuple) and len(node) == 2 and node[0] == "site":
        return str(node[1])
    return str(node)


def _union_tree(
    G: nx.Graph, trees: Sequence[OperatorTree], site_nodes: Sequence, sites: Sequence[str]
) -> OperatorTree | None:
    """The separate trees' edges as one network at joint costs: its minimum spanning tree with
    non-terminal leaves pruned (costs at most the union's joint cost, so at most the separate
    plans' total). None when the union does not span every site."""
    weight = "cost_joint"
    if not site_nodes:
        return None
    H = _with_root(G, weight)
    sub = nx.Graph()
    for t in trees:
        for u, v in t.edges:
            sub.add_edge(u, v, **{weight: H.edges[u, v][weight]})
        for n in t.attach:
            if H.has_edge(_ROOT, n):
                sub.add_edge(_ROOT, n, **{weight: 0.0})
    terminals = {*site_nodes, _ROOT} if sub.has_node(_ROOT) else set(site_nodes)
    if not terminals <= set(sub):
        return None
    comp = nx.node_connected_component(sub, site_nodes[0] if site_nodes else _ROOT)
    if not terminals <= comp:
        return None
    T = nx.minimum_spanning_tree(sub.subgraph(comp), weight=weight)
    leaves = [n for n in T if T.degree(n) == 1 and n not in terminals]
    while leaves:
        n = leaves.pop()
        (m,) = T.neighbors(n)
        T.remove_node(n)
        if T.degree(m) == 1 and m not in terminals:
            leaves.append(m)
    edges = tuple(sorted(((u, v) for u, v in T.edges if _ROOT not in (u, v)), key=repr))
    attach = tuple(
        sorted((v if u == _ROOT else u for u, v in T.edges if _ROOT in (u, v)), key=repr)
    )
    cost = float(sum(G.edges[e][weight] for e in edges))
    length = float(sum(G.edges[e]["length_m"] for e in edges))
    return OperatorTree(edges, cost, length, tuple(sites), attach)


def plan_backbone(
    G: nx.Graph,
    site_nodes: Mapping[str, object],
    site_operators: Mapping[str, Sequence[str]],
    *,
    steiner: Callable | None = None,
    shapley: bool = True,
) -> BackbonePlan:
    """Separate and joint backbone plans for the sites on the costed road graph ``G``.

    Parameters
    ----------
    G
        Graph from :func:`telcoplan.backbone.graph.snap_sites` then
        :func:`~telcoplan.backbone.graph.operator_costs` (attributes ``cost_<operator>`` and
        ``cost_joint``).
    site_nodes
        ``{site_id: node}`` from ``snap_sites``.
    site_operators
        ``{site_id: [operators]}``; a shared site lists several.
    steiner
        ``f(G, terminals, weight=...) -> nx.Graph``; default :func:`telcoplan.backbone.steiner.steiner_tree`.
    shapley
        Compute exact Shapley shares (2^n Steiner trees for n operators; refused above 10).
    """
    if steiner is None:
        from telcoplan.backbone.steiner import steiner_tree as steiner
    ops = sorted({op for lst in site_operators.values() for op in lst})
    by_op: dict[str, list[str]] = {op: [] for op in ops}
    for sid, lst in site_operators.items():
        for op in lst:
            by_op[op].append(sid)
    separate = {}
    for op in ops:
        sids = sorted(by_op[op])
        separate[op] = _tree(G, [site_nodes[s] for s in sids], f"cost_{op}", steiner, sids)
        log.info(
            "backbone: %s alone: %.1f km, cost %.0f",
            op,
            separate[op].length_m / 1000,
            separate[op].cost,
        )
    all_sites = sorted(site_operators)
    joint = _tree(G, [site_nodes[s] for s in all_sites], "cost_joint", steiner, all_sites)
    # the separate plans built as one shared network are a joint plan too: a heuristic Steiner
    # tree must never lose to it, so the joint plan never costs more than building separately
    union = _union_tree(G, list(separate.values()), [site_nodes[s] for s in all_sites], all_sites)
    # (a union that never reaches the fiber is no substitute for a joint tree that does)
    if (
        union is not None
        and (union.attach or not joint.attach)
        and set(union.unreachable) <= set(joint.unreachable)
        and union.cost < joint.cost - 1e-9
    ):
        log.info(
            "backbone: the separate plans' union (%.0f) beats the joint tree (%.0f)",
            union.cost,
            joint.cost,
        )
        joint = union
    users = _edge_users(joint, site_nodes, site_operators)
    proportional = dict.fromkeys(ops, 0.0)
    for e, who in users.items():
        if who:
            for op in who:
                proportional[op] += G.edges[e]["cost_joint"] / len(who)
    shares = {}
    if shapley:
        if len(ops) > 10:
            raise PlanError(
                f"exact Shapley shares need 2^n Steiner trees; {len(ops)} operators is too many (≤ 10)"
            )

        from telcoplan.backbone.graph import coalition_cost, mark_fiber_network

        own, lease = G.graph.get("own_fiber_factor", 0.02), G.graph.get("lease_factor", 0.3)

        def value(coalition: frozenset) -> float:
            # a coalition reuses its members' fiber and leases the others' (the grand
            # coalition's value is the joint plan's cost)
            if coalition == frozenset(ops):
                return joint.cost
            H = G.copy()
            for _, _, d in H.edges(data=True):
                d["cost_coalition"] = coalition_cost(d, coalition, own, lease)
            mark_fiber_network(H, "cost_coalition", coalition, lease)
            sids = sorted(s for s in all_sites if set(site_operators[s]) & coalition)
            return _tree(H, [site_nodes[s] for s in sids], "cost_coalition", steiner, sids).cost

        shares = shapley_shares(ops, value)
    return BackbonePlan(separate, joint, users, proportional, shares)


def _edge_users(joint: OperatorTree, site_nodes, site_operators) -> dict[tuple, frozenset]:
    """Operators whose sites' tree paths to the fiber network use each joint edge."""
    T = nx.Graph()
    T.add_edges_from(joint.edges)
    T.add_edges_from((_ROOT, n) for n in joint.attach)  # the tree plus its joins to fiber: a tree
    users: dict[tuple, set] = {e: set() for e in joint.edges}
    index = {frozenset(e): e for e in joint.edges}
    for sid, ops in site_operators.items():
        node = site_nodes[sid]
        if node not in T or _ROOT not in T:
            continue
        for a, b in itertools.pairwise(nx.shortest_path(T, node, _ROOT)):
            e = index.get(frozenset((a, b)))
            if e is not None:
                users[e] |= set(ops)
    return {e: frozenset(w) for e, w in users.items()}


def shapley_shares(players: Sequence[str], value: Callable[[frozenset], float]) -> dict[str, float]:
    """Exact Shapley values φ_i = Σ_{S ⊆ N∖{i}} |S|!(n−|S|−1)!/n! (v(S ∪ {i}) − v(S)).

    ``value`` is evaluated once per coalition (2^n calls, cached). The shares sum to v(N).
    """
    n = len(players)
    cache: dict[frozenset, float] = {}

    def v(s: frozenset) -> float:
        if s not in cache:
            cache[s] = 0.0 if not s else float(value(s))
        return cache[s]

    out = {}
    for p in players:
        others = [q for q in players if q != p]
        total = 0.0
        for k in range(n):
            weight = math.factorial(k) * math.factorial(n - k - 1) / math.factorial(n)
            for combo in itertools.combinations(others, k):
                s = frozenset(combo)
                total += weight * (v(s | {p}) - v(s))
        out[p] = total
    return out


def plan_links(G: nx.Graph, plan: BackbonePlan) -> gpd.GeoDataFrame:
    """The backbone links as a GeoDataFrame: joint links (with their users) and each operator's
    separate links; columns ``plan`` (joint/separate), ``operators``, ``length_m``, ``cost``,
    ``status`` (new: a trench is dug; reused: the builders' own fiber; leased: another
    operator's fiber, paid per metre)."""
    rows, geoms = [], []
    lease = G.graph.get("lease_factor", 0.3)
    leasing = lease is not None and lease < 1.0  # dearer leases are not taken
    players = set(G.graph.get("operators", plan.separate))
    for e in plan.joint.edges:
        d = G.edges[e]
        rows.append(
            {
                "plan": "joint",
                "operators": ";".join(sorted(plan.users.get(e, ()))),
                "length_m": d["length_m"],
                "cost": d["cost_joint"],
                "status": _status(d.get("fiber", frozenset()), players, leasing),
                "road_class": d.get("road_class", ""),
            }
        )
        geoms.append(
            d.get("geometry") or LineString([(G.nodes[n]["x"], G.nodes[n]["y"]) for n in e])
        )
    for op, tree in plan.separate.items():
        for e in tree.edges:
            d = G.edges[e]
            rows.append(
                {
                    "plan": "separate",
                    "operators": op,
                    "length_m": d["length_m"],
                    "cost": d[f"cost_{op}"],
                    "status": _status(d.get("fiber", frozenset()), {op}, leasing),
                    "road_class": d.get("road_class", ""),
                }
            )
            geoms.append(
                d.get("geometry") or LineString([(G.nodes[n]["x"], G.nodes[n]["y"]) for n in e])
            )
    columns = ["plan", "operators", "length_m", "cost", "status", "road_class"]
    return gpd.GeoDataFrame(rows, columns=columns, geometry=geoms, crs=G.graph["crs"]).astype(
        {"length_m": float, "cost": float}
    )


def _status(carriers: frozenset, members: set, leasing: bool) -> str:
    """new: a trench is dug; reused: the builders' own fiber; leased: another operator's."""
    if carriers & members:
        return "reused"
    return "leased" if carriers and leasing else "new"
