"""Backbone plans: connect every site to fiber, per operator alone and jointly; share the cost.

Each operator's sites that its fiber does not already reach are connected to its fiber network
by a Steiner tree on the road graph (the fiber network is one super-terminal: a virtual root
joined at zero cost to every node its fiber touches). The *separate* plan is one tree per
operator on its own costs; the *joint* plan is one tree for all sites on the shared-build costs
(one trench, every operator's fiber usable). Each joint link lists the operators whose sites'
paths to the fiber use it, and the joint cost is shared among operators in proportion to use and
by Shapley value (exact: one Steiner tree per coalition, 2^n of them; a single operator's is its
separate plan's and the grand coalition's the joint plan's, so each is solved once).

The trees are solved on the road graph read once into arrays (:mod:`._network`: no graph
copies), giving the same trees as on the networkx graphs the plans used to copy out.

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
import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import geopandas as gpd
import networkx as nx
import numpy as np
import shapely
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import breadth_first_order, connected_components, minimum_spanning_tree
from shapely.geometry import LineString

from telcoplan.backbone._network import Build, RoadNetwork, prune_leaves, relabel, unique
from telcoplan.backbone.steiner import steiner_tree_csr
from telcoplan.errors import PlanError

__all__ = ["BackbonePlan", "OperatorTree", "plan_backbone", "shapley_shares"]

log = logging.getLogger(__name__)


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
class _PlanArrays:
    """The road network read as arrays for the plans, and each plan's edges in it (their edge
    numbers, in the order the plan lists the edges; key None: the joint plan)."""

    net: RoadNetwork
    eid: Mapping[str | None, np.ndarray]


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
    # the road network the plans were solved on and their edges in it (plan_links reads the
    # links' values from its arrays rather than looking every edge up again)
    arrays: _PlanArrays | None = field(default=None, repr=False, compare=False)

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


@dataclass(frozen=True)
class _Tree:
    """A plan's tree and its edges as positions in the road network (``u``, ``v`` as the
    edges are listed, ``eid`` the edge numbers) and its joins to the fiber (``attach``)."""

    plan: OperatorTree
    u: np.ndarray
    v: np.ndarray
    eid: np.ndarray
    attach: np.ndarray


def _listed(net: RoadNetwork, u, v, attach, build: Build, sites, cut_off=()) -> _Tree:
    """The tree of edges ``(u[i], v[i])`` and fiber joins ``attach`` (positions), listed in the
    order of their ``repr`` (edges as oriented), its cost at ``build`` and its length."""
    o = net.repr_order(u, v)
    u, v = np.asarray(u, np.int64)[o], np.asarray(v, np.int64)[o]
    attach = np.asarray(attach, np.int64)[net.repr_order(attach)]
    eid = net.edge_at(u, v)
    edges = net.pairs(u, v, eid)
    cost = _total(build.cost[eid])
    length = _total(net.attribute("length_m")[eid])
    plan = OperatorTree(edges, cost, length, tuple(sites), tuple(net.labels(attach)), cut_off)
    return _Tree(plan, u, v, eid, attach)


def _total(x: np.ndarray) -> float:
    """The sum of ``x`` added left to right, as Python's ``sum`` of the values (before 3.12)
    adds floats: the plans' costs to the last bit (numpy's ``sum`` adds pairwise)."""
    return float(np.cumsum(x)[-1]) if len(x) else 0.0


def _cost(net: RoadNetwork, build: Build, u: np.ndarray, v: np.ndarray) -> float:
    """The cost at ``build`` of the tree of edges ``(u[i], v[i])``, as :func:`_listed` adds
    it up (in the order it lists the edges)."""
    o = net.repr_order(u, v)
    return _total(build.cost[net.edge_at(u[o], v[o])])


def _tree(
    net: RoadNetwork,
    build: Build,
    site_pos: np.ndarray,
    steiner: Callable | None,
    sites: Sequence[str] | None,
) -> _Tree | float:
    """The build's Steiner tree joining the sites (their nodes' positions ``site_pos``) to its
    fiber network (a virtual root joined at zero cost to every node of a fiber edge the build
    may use: its own fiber, or others' when it has none and leasing is allowed), or to each
    other when it has no fiber; on the edges of finite cost. ``steiner``: a solver taking a
    networkx graph (None: the array solver). ``sites``: the sites' ids, for the tree's
    listing; None: only its cost."""
    site_pos = np.asarray(site_pos, dtype=np.int64)
    _, first = np.unique(site_pos, return_index=True)
    tpos = site_pos[np.sort(first)]  # each node once, in the sites' order
    fiber = len(net.fiber_nodes(build)) > 0
    if fiber:
        tpos = np.concatenate([[net.n], tpos])
    elif len(tpos) and net.has_fiber().any():
        log.warning(
            "%s: no usable fiber to connect to; the sites are only connected to each other",
            build.weight,
        )
    terminals = net.label_array(tpos)
    problem = net.problem(build, terminals, tpos)
    # sites the road graph does not link to the fiber (a road piece apart from the network)
    # are left out and reported, rather than failing the whole plan
    cut_off = problem.cut_off
    if cut_off:
        log.warning(
            "backbone (%s): %d site(s) have no road path to %s and are left out: %s",
            build.weight,
            len(cut_off),
            "the fiber network" if fiber else "the other sites",
            ", ".join(_site_name(t) for t in cut_off[:10]),
        )
    if len(terminals) - len(cut_off) <= 1:
        none = np.zeros(0, dtype=np.int64)
        return 0.0 if sites is None else _listed(net, none, none, none, build, sites, cut_off)
    if steiner is None:
        a, b, _ = steiner_tree_csr(
            problem.indptr,
            problem.col,
            problem.weight,
            problem.terminals,
            labels=net.label_array(problem.keep),
        )
        u, v = problem.keep[a], problem.keep[b]  # u < v: as the tree lists them
    else:
        lost = set(cut_off)
        terminals = [t for t in terminals.tolist() if t not in lost]
        pairs = steiner(net.subgraph(build, problem), terminals, weight=build.weight).edges
        u = np.array([net.position(x) for x, _ in pairs], dtype=np.int64)
        v = np.array([net.position(y) for _, y in pairs], dtype=np.int64)
    root = (u == net.n) | (v == net.n)
    if sites is None:
        return _cost(net, build, u[~root], v[~root])
    attach = np.where(u[root] == net.n, v[root], u[root])
    return _listed(net, u[~root], v[~root], attach, build, sites, cut_off)


def _site_name(node: object) -> str:
    """A site's id from its graph node ``("site", id)``."""
    if isinstance(node, tuple) and len(node) == 2 and node[0] == "site":
        return str(node[1])
    return str(node)


def _union_tree(
    net: RoadNetwork,
    joint: Build,
    trees: Sequence[_Tree],
    site_pos: np.ndarray,
    sites: Sequence[str],
) -> _Tree | None:
    """The separate trees' edges as one network at joint costs: its minimum spanning tree with
    non-terminal leaves pruned (costs at most the union's joint cost, so at most the separate
    plans' total). None when the union does not span every site.

    The network is the trees' edges and their joins to the joint build's fiber, taken tree by
    tree; the spanning tree is Kruskal's with ties in that order (networkx's
    ``minimum_spanning_tree`` on the network built edge by edge: the same tree)."""
    n = net.n
    if not len(site_pos):
        return None
    fiber = np.zeros(n + 1, dtype=bool)
    fiber[net.fiber_nodes(joint)] = True
    parts_a, parts_b = [], []
    for t in trees:
        at = t.attach[fiber[t.attach]]
        parts_a += [t.u, np.full(len(at), n)]
        parts_b += [t.v, at]
    a = np.concatenate([np.zeros(0, np.int64), *parts_a])
    b = np.concatenate([np.zeros(0, np.int64), *parts_b])
    # the network's nodes in order of first appearance, its edges in order of first addition
    flat = np.empty(2 * len(a), dtype=np.int64)
    flat[0::2], flat[1::2] = a, b
    nodes, first = np.unique(flat, return_index=True)
    nodes = nodes[np.argsort(first, kind="stable")]
    order_of = np.full(n + 1, -1, dtype=np.int64)
    order_of[nodes] = np.arange(len(nodes))
    terminals = unique(np.append(site_pos, n) if order_of[n] >= 0 else site_pos)
    if np.any(order_of[terminals] < 0):
        return None
    key = np.minimum(a, b) * (n + 1) + np.maximum(a, b)
    _, k = np.unique(key, return_index=True)
    k = np.sort(k)  # first addition of each edge
    a, b = a[k], b[k]
    la, lb = order_of[a], order_of[b]
    label = connected_components(
        coo_matrix((np.ones(len(k)), (la, lb)), shape=(len(nodes), len(nodes))), directed=False
    )[1]
    inside = label == label[order_of[site_pos[0]]]
    if not inside[order_of[terminals]].all():
        return None
    keep = inside[la]
    a, b, la, lb = a[keep], b[keep], la[keep], lb[keep]
    eid = net.edge_at(a, b)
    w = np.where(eid >= 0, joint.cost[np.maximum(eid, 0)], 0.0)
    # Kruskal's order: by cost, ties as networkx lists the edges (by the first end's place,
    # then by addition); distinct ranks make the minimum spanning tree that order's
    first_end = np.minimum(la, lb)
    rank = np.empty(len(a))
    rank[np.lexsort((np.arange(len(a)), first_end, w))] = np.arange(1, len(a) + 1)
    F = minimum_spanning_tree(
        coo_matrix((rank, (la, lb)), shape=(len(nodes), len(nodes))).tocsr()
    ).tocoo()
    chosen = np.sort(np.rint(F.data).astype(np.int64)) - 1
    by_rank = np.argsort(rank)
    sel = by_rank[chosen]
    a, b = np.where(la[sel] < lb[sel], a[sel], b[sel]), np.where(la[sel] < lb[sel], b[sel], a[sel])
    sel = prune_leaves(a, b, lambda nodes: np.isin(nodes, terminals))
    a, b = a[sel], b[sel]
    root = (a == n) | (b == n)
    attach = np.where(a[root] == n, b[root], a[root])
    return _listed(net, a[~root], b[~root], attach, joint, sites)


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
        ``f(G, terminals, weight=...) -> nx.Graph``; default (None)
        :func:`telcoplan.backbone.steiner.steiner_tree`, run on the graph's arrays
        (:func:`~telcoplan.backbone.steiner.steiner_tree_csr`: the same trees, no graph copies).
    shapley
        Compute exact Shapley shares (2^n Steiner trees for n operators; refused above 10).
    """
    net = RoadNetwork(G)
    sites = _Sites.read(net, site_nodes, site_operators)
    ops = sites.ops
    greenfield = not net.has_fiber().any()
    # the plans compare the same sites: one that a plan cannot connect is left out of all
    left_out = _left_out(net, sites)
    if left_out:
        log.warning(
            "backbone: %d site(s) cannot be connected in every plan and are left out of all of "
            "them: %s",
            len(left_out),
            "; ".join(f"{s} ({r})" for s, r in list(left_out.items())[:10]),
        )
    site_operators = {s: o for s, o in site_operators.items() if s not in left_out}
    # the sites in order (their nodes' positions, their operators as bits)
    kept = np.fromiter((s not in left_out for s in sites.order), bool, count=len(sites.order))
    names, site_pos, site_bits = sites.names[kept], sites.pos[kept], sites.bits[kept]
    all_sites = names.tolist()
    bit = {op: 1 << i for i, op in enumerate(ops)}
    # each build's tree once: the separate plans' trees are also the Shapley singletons
    solved: dict[bytes, list[tuple[Build, _Tree | float]]] = {}

    def solve(build: Build, members: int, listed: bool = True) -> _Tree | float:
        """The tree of the sites of any of the operators ``members`` (bits), in site order
        (not ``listed``: only its cost)."""
        mask = (site_bits & members) != 0
        same = solved.setdefault(np.packbits(mask).tobytes(), [])
        for b, tree in same:
            if np.array_equal(b.cost, build.cost) and np.array_equal(b.fiber, build.fiber):
                if isinstance(tree, _Tree):
                    return tree if listed else tree.plan.cost
                if not listed:
                    return tree
        ids = names[mask].tolist() if listed else None
        tree = _tree(net, build, site_pos[mask], steiner, ids)
        same.append((build, tree))
        return tree

    trees = {op: solve(net.build(f"cost_{op}"), bit[op]) for op in ops}
    separate = {op: t.plan for op, t in trees.items()}
    for op, t in separate.items():
        log.info("backbone: %s alone: %.1f km, cost %.0f", op, t.length_m / 1000, t.cost)
    joint_build = net.build("cost_joint")
    if greenfield:
        joint, users = _greenfield_plan(
            G,
            site_nodes,
            site_operators,
            "cost_joint",
            steiner or _default_steiner(),
            list(separate.values()),
        )
        union = None
    else:
        joint_tree = _tree(net, joint_build, site_pos, steiner, all_sites)
        joint = joint_tree.plan
        # the separate plans built as one shared network are a joint plan too: a heuristic
        # Steiner tree must never lose to it, so the joint plan never costs more than building
        # separately
        union = _union_tree(net, joint_build, list(trees.values()), site_pos, all_sites)
    # (a union that never reaches the fiber is no substitute for a joint tree that does)
    if (
        union is not None
        and (union.plan.attach or not joint.attach)
        and set(union.plan.unreachable) <= set(joint.unreachable)
        and union.plan.cost < joint.cost - 1e-9
    ):
        log.info(
            "backbone: the separate plans' union (%.0f) beats the joint tree (%.0f)",
            union.plan.cost,
            joint.cost,
        )
        joint, joint_tree = union.plan, union
    if not greenfield:
        users = _edge_users(net, joint_tree, site_pos, site_bits, ops)
    proportional = dict.fromkeys(ops, 0.0)
    if greenfield:
        cost_joint = {e: G.edges[e]["cost_joint"] for e in joint.edges}
    else:
        cost_joint = dict(zip(joint.edges, joint_build.cost[joint_tree.eid].tolist(), strict=True))
    for e, who in users.items():
        if who:
            for op in who:
                proportional[op] += cost_joint[e] / len(who)
    shares = {}
    if shapley:
        if len(ops) > 10:
            raise PlanError(
                f"exact Shapley shares need 2^n Steiner trees; {len(ops)} operators is too many (≤ 10)"
            )

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
                solver = steiner or _default_steiner()
                return _greenfield_plan(G, site_nodes, members, "cost_joint", solver, trees)[0].cost
            bits = sum(bit[op] for op in coalition)
            return solve(net.coalition(coalition, own, lease), bits, listed=False)

        shares = shapley_shares(ops, value)
    eid = {op: t.eid for op, t in trees.items()}
    if not greenfield:
        eid[None] = joint_tree.eid
    return BackbonePlan(
        separate, joint, users, proportional, shares, left_out, greenfield, _PlanArrays(net, eid)
    )


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
    net = RoadNetwork(G)
    return _left_out(net, _Sites.read(net, site_nodes, site_operators))


@dataclass(frozen=True)
class _Sites:
    """The sites read once: their ids in order, their nodes' positions in the road network and
    their operators (bit i: ``ops[i]``, the operators in order)."""

    order: list[str]
    names: np.ndarray  # the ids, as an object array
    pos: np.ndarray
    bits: np.ndarray
    ops: list[str]

    @classmethod
    def read(
        cls,
        net: RoadNetwork,
        site_nodes: Mapping[str, object],
        site_operators: Mapping[str, Sequence[str]],
    ) -> _Sites:
        order = sorted(site_operators)
        ops = sorted({op for lst in site_operators.values() for op in lst})
        bit = {op: 1 << i for i, op in enumerate(ops)}
        index, k = net.index, len(order)
        pos = np.fromiter((index[site_nodes[s]] for s in order), np.int64, count=k)
        bits = np.fromiter(
            (sum({bit[op] for op in site_operators[s]}) for s in order), np.int64, count=k
        )
        return cls(order, np.fromiter(order, object, count=k), pos, bits, ops)


def _left_out(net: RoadNetwork, sites: _Sites) -> dict[str, str]:
    """:func:`left_out_sites` on the graph read as arrays."""
    comp = net.components()
    label = comp[sites.pos]  # each site's road piece
    whys: list[str] = []
    why = np.full(len(label), -1, dtype=np.int64)  # the first reason found, of whys

    def on_fiber(weight: str) -> np.ndarray:
        return unique(comp[net.fiber_nodes(net.build(weight))])

    def cannot(mask: np.ndarray, reason: str) -> None:
        why[mask & (why < 0)] = len(whys)
        whys.append(reason)

    joint = on_fiber("cost_joint")
    if len(joint):
        cannot(~np.isin(label, joint), "no road path to the operators' fiber")
    _, carriers = net.carriers()
    for i, op in enumerate(sites.ops):
        mine = (sites.bits >> i) & 1 == 1
        reach = on_fiber(f"cost_{op}")
        if len(reach):
            own = any(op in c for c in carriers)
            reason = (
                f"no road path to {op}'s fiber" if own else f"no road path to fiber {op} can lease"
            )
        else:  # the piece holding most of the operator's sites (ties: the first site's)
            pieces, first, counts = np.unique(label[mine], return_index=True, return_counts=True)
            reach = pieces[np.lexsort((first, -counts))[:1]]
            reason = f"no road path to {op}'s other sites"
        cannot(mine & ~np.isin(label, reach), reason)
    return {s: whys[w] for s, w in zip(sites.order, why.tolist(), strict=True) if w >= 0}


def _default_steiner() -> Callable:
    from telcoplan.backbone.steiner import steiner_tree

    return steiner_tree


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
    # a copy holds each node's neighbours in one order whatever order G was built in (the
    # heuristic breaks ties by it; the backbone stage snaps and costs its graph in place)
    H = G.edge_subgraph(usable).copy()
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


def _edge_users(
    net: RoadNetwork, joint: _Tree, site_pos: np.ndarray, site_bits: np.ndarray, ops: list[str]
) -> dict[tuple, frozenset]:
    """Operators whose sites' tree paths to the fiber network use each joint edge (the sites
    at positions ``site_pos``, their operators as bits of ``site_bits``, bit i: ``ops[i]``).

    The path of a site to the root in a tree uses exactly the edges between it and the root,
    so an edge's users are the operators of the sites below it: an operator's edges are those
    above the nodes of its sites, found by one search up the tree from all of them (a path
    search per site had not finished after 13 minutes on the national demo's 83,000 sites).
    """
    edges = joint.plan.edges
    if not len(joint.attach):  # not joined to the fiber: no path to it
        return {e: frozenset() for e in edges}
    n = net.n
    a = np.concatenate([joint.u, np.full(len(joint.attach), n)])
    b = np.concatenate([joint.v, joint.attach])
    nodes, inv = relabel(np.concatenate([a, b]))
    la, lb = inv[: len(a)], inv[len(a) :]
    k = len(nodes)
    T = coo_matrix((np.ones(len(a)), (la, lb)), shape=(k, k)).tocsr()
    order, parent = breadth_first_order(T, k - 1, directed=False)  # root: last
    local = np.full(n + 1, -1, dtype=np.int64)
    local[nodes] = np.arange(k)
    at = local[site_pos]
    own = np.zeros(k, dtype=np.int64)  # the operators (bits) of the sites at each node
    np.bitwise_or.at(own, at[at >= 0], site_bits[at >= 0])
    # each node's ancestors: a search up the tree (child -> parent edges) from a source k
    # joined to the nodes with a site of the operator reaches the nodes whose subtree has one
    child = order[1:]
    below = np.zeros(k, dtype=np.int64)  # the operators (bits) of the sites in each subtree
    for i in range(len(ops)):
        start = np.flatnonzero((own >> i) & 1)
        up = coo_matrix(
            (
                np.ones(len(child) + len(start)),
                (
                    np.concatenate([child, np.full(len(start), k)]),
                    np.concatenate([parent[child], start]),
                ),
            ),
            shape=(k + 1, k + 1),
        ).tocsr()
        reached = breadth_first_order(up, k, directed=True, return_predecessors=False)
        below[reached[reached < k]] |= 1 << i
    x, y = la[: len(joint.u)], lb[: len(joint.u)]
    child = np.where(parent[y] == x, y, np.where(parent[x] == y, x, -1))
    bits = np.where(child >= 0, below[np.maximum(child, 0)], 0)
    names = {
        int(c): frozenset(op for i, op in enumerate(ops) if (c >> i) & 1) for c in unique(bits)
    }
    return dict(zip(edges, map(names.__getitem__, bits.tolist()), strict=True))


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
    operator's fiber, paid per metre). A plan of :func:`plan_backbone` on this very ``G`` (its
    edge attributes unchanged since) is read from the arrays it was solved on; any other, edge
    by edge."""
    lease = G.graph.get("lease_factor", 0.3)
    leasing = lease is not None and lease < 1.0  # dearer leases are not taken
    players = set(G.graph.get("operators", plan.separate))
    columns = ["plan", "operators", "length_m", "cost", "status", "road_class"]
    parts: dict[str, list] = {c: [] for c in [*columns, "geometry"]}
    builds = [("joint", None, plan.joint.edges, "cost_joint", players)]
    builds += [("separate", op, t.edges, f"cost_{op}", {op}) for op, t in plan.separate.items()]
    # the plans' edges as numbers in the network they were solved on, when it is G's
    arrays = plan.arrays if plan.arrays is not None and plan.arrays.net.G is G else None
    for which, op, edges, weight, members in builds:
        k = len(edges)
        if arrays is not None and op in arrays.eid:
            values = _edge_values(arrays.net, arrays.eid[op], weight, members, leasing)
        else:
            values = _looked_up_values(G, edges, weight, members, leasing)
        parts["plan"].append(np.full(k, which, dtype=object))
        parts["operators"].append(
            np.full(k, op, dtype=object) if op else _user_names(plan.users, edges)
        )
        for c, x in zip(_VALUES, values, strict=True):
            parts[c].append(x)
    table = {c: np.concatenate(x) for c, x in parts.items()}
    # an edge without a line (none, or empty) is drawn straight between its nodes
    lines = table.pop("geometry")
    missing = np.flatnonzero(shapely.is_missing(lines) | shapely.is_empty(lines))
    edges = [e for build in builds for e in build[2]]
    for i in missing.tolist():
        lines[i] = LineString([(G.nodes[n]["x"], G.nodes[n]["y"]) for n in edges[i]])
    return gpd.GeoDataFrame(table, columns=columns, geometry=lines, crs=G.graph["crs"]).astype(
        {"length_m": float, "cost": float}
    )


#: The links' values read from the edges (:func:`_edge_values`).
_VALUES = ("length_m", "cost", "status", "road_class", "geometry")


def _edge_values(
    net: RoadNetwork, eid: np.ndarray, weight: str, members: set, leasing: bool
) -> tuple[np.ndarray, ...]:
    """The links' :data:`_VALUES` on the network's edges ``eid`` (length, cost at ``weight``,
    status, road class, line), from its columns: each read once for all edges."""
    code, sets = net.carriers()
    status = np.array([_status(c, members, leasing) for c in sets] or [""], dtype=object)
    return (
        net.attribute("length_m")[eid],
        net.attribute(weight)[eid],
        status[code[eid]],
        net.objects("road_class", "")[eid],
        net.objects("geometry", None)[eid],
    )


def _looked_up_values(
    G: nx.Graph, edges: Sequence[tuple], weight: str, members: set, leasing: bool
) -> tuple[np.ndarray, ...]:
    """:func:`_edge_values` of edges given as node pairs of ``G`` (each looked up)."""
    adj = G._adj  # networkx's documented dict-of-dicts: G.edges[u, v] without the view
    ds = [adj[u][v] for u, v in edges]
    carriers = [frozenset(d.get("fiber", ())) for d in ds]
    status = {c: _status(c, members, leasing) for c in set(carriers)}
    k = len(ds)
    return (
        np.array([d["length_m"] for d in ds], dtype=float),
        np.array([d[weight] for d in ds], dtype=float),
        np.fromiter(map(status.__getitem__, carriers), object, count=k),
        np.fromiter((d.get("road_class", "") for d in ds), object, count=k),
        np.fromiter((d.get("geometry") for d in ds), object, count=k),
    )


def _user_names(users: Mapping[tuple, frozenset], edges: Sequence[tuple]) -> np.ndarray:
    """Each edge's users (none: none listed) as names joined by ``;``, sorted."""
    if len(users) == len(edges) and all(map(operator.is_, users, edges)):
        who = list(users.values())  # listed in the edges' order (the plans list them so)
    else:
        who = [users.get(e, ()) for e in edges]
    who = list(map(frozenset, who))
    names = {w: ";".join(sorted(w)) for w in set(who)}
    return np.fromiter(map(names.__getitem__, who), object, count=len(edges))


def _status(carriers: frozenset, members: set, leasing: bool) -> str:
    """new: a trench is dug; reused: the builders' own fiber; leased: another operator's."""
    if carriers & members:
        return "reused"
    return "leased" if carriers and leasing else "new"
