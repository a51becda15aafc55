"""Backbone plans: connect every site to fiber, per operator alone and jointly; share the cost.

Each operator's sites that its fiber does not already reach are connected to its fiber network
by a Steiner tree on the road graph (the fiber network is one super-terminal: a virtual root
joined at zero cost to every node its fiber touches). The *separate* plan is one tree per
operator on its own costs; the *joint* plan is one tree for all sites on the shared-build costs
(one trench, every operator's fiber usable). Each joint link lists the operators whose sites'
paths to the fiber use it, and the joint cost is shared among operators in proportion to use and
by Shapley value (exact: one Steiner tree per coalition, 2^n of them).

*Greenfield* (no fiber on the roads at all): every link is a new trench and a build's sites are
joined to each other — each operator's own sites when it builds alone; jointly, one Steiner tree
per group of operators linked by shared sites (usually all sites), the trench shared.

The joint and the separate plans serve the same sites: a site that one of them cannot connect
(no road path to the fiber, or to the other sites of its operator) is left out of all of them
and listed with the reason (:attr:`BackbonePlan.left_out`).
"""

from __future__ import annotations

import itertools
import logging
import math
from collections import Counter
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
    left_out: Mapping[str, str] = field(default_factory=dict)  # site id -> why (in no plan)
    greenfield: bool = False  # no fiber anywhere: every link is a new trench

    @property
    def mode(self) -> str:
        """``"greenfield"`` (no existing fiber) or ``"existing fiber"``."""
        return "greenfield" if self.greenfield else "existing fiber"

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
    elif terminals and any(d.get("fiber") for _, _, d in G.edges(data=True)):
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
    greenfield = not any(d.get("fiber") for _, _, d in G.edges(data=True))
    # the plans compare the same sites: one that a plan cannot connect is left out of all
    left_out = left_out_sites(G, site_nodes, site_operators)
    if left_out:
        log.warning(
            "backbone: %d site(s) cannot be connected in every plan and are left out of all of "
            "them: %s",
            len(left_out),
            "; ".join(f"{s} ({r})" for s, r in list(left_out.items())[:10]),
        )
    site_operators = {s: o for s, o in site_operators.items() if s not in left_out}
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
    if greenfield:
        joint, users = _greenfield_plan(
            G, site_nodes, site_operators, "cost_joint", steiner, list(separate.values())
        )
        union = None
    else:
        joint = _tree(G, [site_nodes[s] for s in all_sites], "cost_joint", steiner, all_sites)
        # the separate plans built as one shared network are a joint plan too: a heuristic
        # Steiner tree must never lose to it, so the joint plan never costs more than building
        # separately
        union = _union_tree(
            G, list(separate.values()), [site_nodes[s] for s in all_sites], all_sites
        )
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
    if not greenfield:
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
            if greenfield:  # the coalition's members' sites, each joined to its own
                members = {
                    s: [o for o in site_operators[s] if o in coalition]
                    for s in all_sites
                    if set(site_operators[s]) & coalition
                }
                trees = [separate[o] for o in sorted(coalition)]
                return _greenfield_plan(G, site_nodes, members, "cost_joint", steiner, trees)[
                    0
                ].cost
            H = G.copy()
            for _, _, d in H.edges(data=True):
                d["cost_coalition"] = coalition_cost(d, coalition, own, lease)
            mark_fiber_network(H, "cost_coalition", coalition, lease)
            sids = sorted(s for s in all_sites if set(site_operators[s]) & coalition)
            return _tree(H, [site_nodes[s] for s in sids], "cost_coalition", steiner, sids).cost

        shares = shapley_shares(ops, value)
    return BackbonePlan(separate, joint, users, proportional, shares, left_out, greenfield)


def left_out_sites(
    G: nx.Graph, site_nodes: Mapping[str, object], site_operators: Mapping[str, Sequence[str]]
) -> dict[str, str]:
    """Sites that the joint plan or one of their operators' separate plans cannot connect,
    with the reason: ``{site_id: reason}`` in site order.

    On the costed road graph ``G`` (from :func:`~telcoplan.backbone.graph.operator_costs`) a
    build connects its sites to its fiber network (``<weight>_fiber`` edges), so a site on a
    road piece that no such fiber touches cannot join it. A build without any fiber (an
    operator with none of its own when leasing is forbidden; every build in a greenfield plan)
    joins its operator's sites to each other: the sites on the road piece holding most of them
    (ties: the piece of the first site) can, the others cannot. Leaving these sites out of every
    plan makes the joint and the separate plans serve the same sites.
    """
    label: dict = {}
    for k, comp in enumerate(nx.connected_components(G)):
        label.update(dict.fromkeys(comp, k))
    order = sorted(site_operators)
    reasons: dict[str, str] = {}

    def on_fiber(weight: str) -> set[int]:
        return {
            label[n]
            for u, v, d in G.edges(data=True)
            if d.get(f"{weight}_fiber", bool(d.get("fiber"))) and np.isfinite(d.get(weight, np.inf))
            for n in (u, v)
        }

    joint = on_fiber("cost_joint")
    if joint:
        for s in order:
            if label[site_nodes[s]] not in joint:
                reasons[s] = "no road path to the operators' fiber"
    ops = sorted({op for lst in site_operators.values() for op in lst})
    for op in ops:
        sids = [s for s in order if op in site_operators[s]]
        reach = on_fiber(f"cost_{op}")
        if reach:
            own = any(op in d.get("fiber", ()) for _, _, d in G.edges(data=True))
            why = (
                f"no road path to {op}'s fiber" if own else f"no road path to fiber {op} can lease"
            )
        else:
            counts = Counter(label[site_nodes[s]] for s in sids)
            first = {}
            for s in sids:
                first.setdefault(label[site_nodes[s]], len(first))
            reach = {max(counts, key=lambda c: (counts[c], -first[c]))} if counts else set()
            why = f"no road path to {op}'s other sites"
        for s in sids:
            if label[site_nodes[s]] not in reach:
                reasons.setdefault(s, why)
    return {s: reasons[s] for s in order if s in reasons}


def _greenfield_plan(
    G: nx.Graph,
    site_nodes: Mapping[str, object],
    site_operators: Mapping[str, Sequence[str]],
    weight: str,
    steiner: Callable,
    trees: Sequence[OperatorTree] = (),
) -> tuple[OperatorTree, dict[tuple, frozenset]]:
    """A shared trench network joining each operator's sites to each other (no fiber), and
    each edge's users.

    Operators linked by shared sites must all be joined (one Steiner tree over their sites; one
    group, every site, in the usual case). Candidates: those trees; one tree over every site
    when there are several groups; the union of ``trees`` (the separate plans, so that the joint
    plan never costs more than building separately). Each candidate is reduced to a minimum
    spanning forest of its edges, then to the edges some operator needs; the cheapest wins.
    """
    sites = sorted(site_operators)
    groups: dict[str, list] = {}
    for s in sites:
        for op in site_operators[s]:
            groups.setdefault(op, []).append(site_nodes[s])
    joined = nx.utils.UnionFind()  # every site has an operator, so every site is in it
    for nodes in groups.values():
        joined.union(*nodes)
    pos = {site_nodes[s]: i for i, s in enumerate(sites)}
    clusters = sorted(
        (sorted(c, key=pos.__getitem__) for c in joined.to_sets()), key=lambda c: pos[c[0]]
    )
    usable = [(u, v) for u, v, w in G.edges(data=weight) if w is not None and np.isfinite(w)]
    H = G.edge_subgraph(usable)
    candidates = [[e for c in clusters if len(c) > 1 for e in steiner(H, c, weight=weight).edges]]
    if len([c for c in clusters if len(c) > 1]) > 1:
        every = sorted(pos, key=pos.__getitem__)
        if set(every) <= nx.node_connected_component(H, every[0]):
            candidates.append(list(steiner(H, every, weight=weight).edges))
    if trees:
        candidates.append([e for t in trees for e in t.edges])
    best: tuple[OperatorTree, dict] | None = None
    for edges in candidates:
        found = _needed(G, edges, groups, weight)
        if found is None:
            continue
        used, users = found
        cost = float(sum(G.edges[e][weight] for e in used))
        if best is None or cost < best[0].cost - 1e-9:
            length = float(sum(G.edges[e]["length_m"] for e in used))
            best = (OperatorTree(tuple(used), cost, length, tuple(sites)), users)
    if best is None:  # cannot happen once left_out_sites has run
        raise PlanError("the greenfield backbone could not join every operator's sites")
    return best


def _needed(
    G: nx.Graph, edges: Sequence[tuple], groups: Mapping[str, Sequence], weight: str
) -> tuple[list[tuple], dict[tuple, frozenset]] | None:
    """The edges of a minimum spanning forest of ``edges`` that some group needs to join its
    nodes, sorted, with the groups (operators) using each; None when a group is not joined."""
    F = nx.Graph()
    F.add_edges_from((u, v, {weight: G.edges[u, v][weight]}) for u, v in edges)
    F = nx.minimum_spanning_tree(F, weight=weight)
    users: dict[frozenset, set] = {}
    for op, nodes in groups.items():
        want = set(nodes)
        if len(want) < 2:
            continue
        first = next(iter(want))
        if first not in F or not want <= nx.node_connected_component(F, first):
            return None
        S = F.subgraph(nx.node_connected_component(F, first)).copy()
        leaves = [n for n in S if S.degree(n) <= 1 and n not in want]
        while leaves:
            n = leaves.pop()
            if n not in S:
                continue
            around = list(S.neighbors(n))
            S.remove_node(n)
            leaves.extend(m for m in around if S.degree(m) <= 1 and m not in want)
        for u, v in S.edges:
            users.setdefault(frozenset((u, v)), set()).add(op)
    used = sorted((tuple(e) for e in F.edges if frozenset(e) in users), key=repr)
    return used, {e: frozenset(users[frozenset(e)]) for e in used}


def _edge_users(joint: OperatorTree, site_nodes, site_operators) -> dict[tuple, frozenset]:
    """Operators whose sites' tree paths to the fiber network use each joint edge.

    The path of a site to the root in a tree uses exactly the edges between it and the root,
    so an edge's users are the operators of the sites below it: one pass from the leaves up
    (O(tree); a path search per site had not finished after 13 minutes on the national demo's
    83,000 sites).
    """
    T = nx.Graph()
    T.add_edges_from(joint.edges)
    T.add_edges_from((_ROOT, n) for n in joint.attach)  # the tree plus its joins to fiber: a tree
    users: dict[tuple, set] = {e: set() for e in joint.edges}
    if _ROOT not in T:
        return {e: frozenset() for e in joint.edges}
    index = {frozenset(e): e for e in joint.edges}
    below: dict[object, set] = {}  # node -> operators of the sites in its subtree
    for sid, ops in site_operators.items():
        node = site_nodes[sid]
        if node in T:
            below.setdefault(node, set()).update(ops)
    order, parent = [], {}
    for u, v in nx.bfs_edges(T, _ROOT):  # parents before children
        parent[v] = u
        order.append(v)
    for v in reversed(order):  # children before parents
        ops = below.get(v)
        if not ops:
            continue
        u = parent[v]
        e = index.get(frozenset((u, v)))
        if e is not None:
            users[e] |= ops
        below.setdefault(u, set()).update(ops)
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
