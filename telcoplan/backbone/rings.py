"""Ring protection: keep designated sites connected to the fiber network after any single cut.

A backbone tree connects every site to the existing fiber, but one cut trench anywhere on a
site's path isolates it. :func:`protect_sites` adds a low-cost set of road links so that each
designated site is *2-edge-connected* to the fiber network: it stays connected after the loss
of any one link of the network (planned links and the added ones). The existing fiber network
counts as one robust super-node (a virtual root joined to every node on fiber): protecting the
route *to* the fiber is the plan's job, the fiber itself is not.

Sites that cannot be protected (a dead-end road is their only access, or the network does not
reach them) are listed with a reason a planner can act on.
"""

from __future__ import annotations

import functools
import heapq
import logging
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import SimpleNamespace

import geopandas as gpd
import networkx as nx
import numpy as np
import scipy.sparse as sp
import shapely
from scipy.sparse.csgraph import connected_components, dijkstra
from shapely.geometry import LineString

from telcoplan.backbone.choices import PROTECT_CHOICES
from telcoplan.errors import CRSError, PlanError
from telcoplan.gis.crs import crs_name, same_crs

__all__ = [
    "PROTECT_CHOICES",
    "RingResult",
    "fiber_nodes",
    "nearest_sites",
    "protect_sites",
    "ring_links",
    "sites_to_protect",
]

log = logging.getLogger(__name__)

#: Road class of a site's drop to its road point (see :func:`telcoplan.backbone.graph.snap_sites`).
ACCESS_CLASS = "access"


@dataclass(frozen=True)
class RingResult:
    """Links added to protect sites, and which sites are protected.

    Attributes
    ----------
    edges : tuple of (node, node)
        Added road-graph edges, in the order they were added; none of them is in the network.
    cost : float
        Sum of the added edges' ``weight`` attribute (currency units).
    length_m : float
        Sum of the added edges' ``length_m`` (m).
    protected : tuple
        Site ids that stay connected to the fiber network after any single link cut, in input
        order (including sites that already were and need nothing).
    unprotected : Mapping
        ``{site id: reason}`` for the other sites, in input order.
    added_for : Mapping
        ``{site id: edges}``: the added edges found while protecting that site. One ring
        protects every site along it, so sites protected by an earlier ring add nothing.
    weight : str
        The cost attribute the links were chosen by.
    """

    edges: tuple[tuple, ...]
    cost: float
    length_m: float
    protected: tuple = ()
    unprotected: Mapping[Hashable, str] = field(default_factory=dict)
    added_for: Mapping[Hashable, tuple[tuple, ...]] = field(default_factory=dict)
    weight: str = "cost_joint"


def sites_to_protect(
    site_operators: Mapping[str, Sequence[str]],
    *,
    poi_sites: Iterable[str] = (),
    shared: bool = True,
) -> list[str]:
    """The sites worth a ring: shared sites (more than one operator) and sites serving POIs.

    Parameters
    ----------
    site_operators
        ``{site id: [operators]}`` (as given to :func:`telcoplan.backbone.plans.plan_backbone`).
    poi_sites
        Sites that serve points of interest (e.g. from :func:`nearest_sites`); ids not in
        ``site_operators`` are ignored.
    shared
        Include every site used by more than one operator (an outage there hits several
        networks at once).

    Returns
    -------
    list of str
        Site ids in ``site_operators`` order, each once.
    """
    wanted = {str(s) for s in poi_sites}
    return [
        sid
        for sid, ops in site_operators.items()
        if (shared and len(set(ops)) > 1) or str(sid) in wanted
    ]


def fiber_nodes(G: nx.Graph, weight: str = "cost_joint") -> list:
    """Nodes on the fiber network of the build costed by ``weight`` (``<weight>_fiber`` from
    :func:`~telcoplan.backbone.graph.operator_costs`, else any fiber; finite cost), in graph
    order: the network the rings lead back to (the plans' virtual root joins the same nodes)."""
    found: dict = {}
    for u, v, d in G.edges(data=True):
        w = d.get(weight)
        on_network = d.get(f"{weight}_fiber", bool(d.get("fiber")))
        if on_network and w is not None and np.isfinite(w):
            found[u] = found[v] = None
    return list(found)


def nearest_sites(
    sites: gpd.GeoDataFrame, points: gpd.GeoDataFrame, *, max_distance_m: float = 1_000.0
) -> list:
    """The site nearest to each point: to a first approximation, the site serving a POI.

    Points with no site within ``max_distance_m`` (m) pick none. Both layers must share one
    projected CRS. Returns the chosen site ids (the ``sites`` index), sorted, each once.
    """
    if sites.crs is None or not sites.crs.is_projected:
        raise CRSError(f"sites must be in a projected CRS (metres), got {crs_name(sites.crs)}")
    if not same_crs(sites.crs, points.crs):
        raise CRSError(
            f"points are in {crs_name(points.crs)} but sites in {crs_name(sites.crs)}; reproject first"
        )
    if len(sites) == 0 or len(points) == 0:
        return []
    tree = shapely.STRtree(sites.geometry.to_numpy())
    (_, hit), dist = tree.query_nearest(
        points.geometry.to_numpy(), return_distance=True, all_matches=False
    )
    chosen = {
        sites.index[h]
        for h, d in zip(hit.tolist(), dist.tolist(), strict=True)
        if d <= max_distance_m
    }
    return sorted(chosen, key=str)


# ---------------------------------------------------------------------------------------------
# graph machinery: CSR adjacency with edge ids, bridges, incremental 2-edge-connectivity, and a
# Dijkstra search that stops on reaching the fiber side. The kernels are plain Python compiled
# by numba on first use (cached on disk).


class _Csr:
    """Symmetric CSR adjacency of an edge list; each undirected edge has an id and two slots."""

    def __init__(self, nv: int, eu: np.ndarray, ev: np.ndarray):
        m = len(eu)
        src = np.concatenate([eu, ev])
        dst = np.concatenate([ev, eu])
        order = np.lexsort((dst, src))  # rows sorted, columns sorted within each row
        self.indices = dst[order].astype(np.int64)
        self.indptr = np.zeros(nv + 1, dtype=np.int64)
        np.cumsum(np.bincount(src, minlength=nv), out=self.indptr[1:])
        self.eid_at = np.concatenate([np.arange(m), np.arange(m)])[order].astype(np.int64)
        slot = np.empty(2 * m, dtype=np.int64)
        slot[order] = np.arange(2 * m)
        self.slots = np.stack([slot[:m], slot[m:]], axis=1)  # (m, 2)


def _bridges_py(indptr, indices, eid_at, alive):  # pragma: no cover - compiled by numba
    """Bridges of an undirected multigraph in CSR form (edge ids ``eid_at``; edges with
    ``alive`` False are left out; parallel edges are never bridges). Tarjan's lowlink
    depth-first search, iterative, O(V + E)."""
    m = alive.shape[0]
    n = indptr.shape[0] - 1
    disc = np.full(n, -1, np.int64)
    low = np.zeros(n, np.int64)
    bridge = np.zeros(m, np.bool_)
    stack_v = np.empty(n, np.int64)
    stack_e = np.empty(n, np.int64)
    stack_j = np.empty(n, np.int64)
    clock = 0
    for s in range(n):
        if disc[s] >= 0 or indptr[s] == indptr[s + 1]:
            continue
        top = 0
        stack_v[0], stack_e[0], stack_j[0] = s, -1, indptr[s]
        disc[s] = low[s] = clock
        clock += 1
        while top >= 0:
            v = stack_v[top]
            j = stack_j[top]
            if j < indptr[v + 1]:
                stack_j[top] = j + 1
                e = eid_at[j]
                if e == stack_e[top] or not alive[e]:
                    continue
                u = indices[j]
                if disc[u] < 0:
                    disc[u] = low[u] = clock
                    clock += 1
                    top += 1
                    stack_v[top], stack_e[top], stack_j[top] = u, e, indptr[u]
                elif disc[u] < low[v]:
                    low[v] = disc[u]
            else:
                top -= 1
                if top >= 0:
                    p = stack_v[top]
                    if low[v] < low[p]:
                        low[p] = low[v]
                    if low[v] > disc[p]:
                        bridge[stack_e[top + 1]] = True
    return bridge


def _route_py(
    indptr, indices, eid_at, w, src, rep, present, uf, parent, stop, mark, side, stamp
):  # pragma: no cover - compiled by numba
    """Cheapest route from ``src`` to the fiber side of the network (Dijkstra, early exit).

    ``w`` is the cost per CSR slot (0 on network edges, ``inf`` for removed or unusable edges).
    A settled vertex ends the search when it is in the network (``present`` after contracting
    the fiber with ``rep``) and its path up the bridge tree (union-find ``uf``, ``parent``)
    reaches the root without passing the component ``stop``: from there the network leads to
    the fiber without the removed bridges. Verdicts per component are memoised in ``mark`` /
    ``side`` under ``stamp``. Returns the route's vertices and edge ids, from the fiber side to
    ``src`` (empty when there is none).
    """
    n = indptr.shape[0] - 1
    dist = np.full(n, np.inf)
    pred = np.full(n, -1, np.int64)
    pslot = np.full(n, -1, np.int64)
    done = np.zeros(n, np.bool_)
    walk = np.empty(n, np.int64)
    heap = [(0.0, src)]
    dist[src] = 0.0
    end = -1
    while len(heap) > 0:
        d, v = heapq.heappop(heap)
        if done[v]:
            continue
        done[v] = True
        c = rep[v]
        if present[c]:
            r = c
            while uf[r] != r:
                r = uf[r]
            while uf[c] != r:
                nxt = uf[c]
                uf[c] = r
                c = nxt
            c = r
            k = 0
            verdict = False
            while True:
                if c == stop:
                    verdict = False
                    break
                if mark[c] == stamp:
                    verdict = side[c]
                    break
                if parent[c] < 0:
                    verdict = True
                    break
                walk[k] = c
                k += 1
                r = parent[c]
                while uf[r] != r:
                    r = uf[r]
                c = r
            for i in range(k):
                mark[walk[i]] = stamp
                side[walk[i]] = verdict
            if verdict:
                end = v
                break
        for j in range(indptr[v], indptr[v + 1]):
            u = indices[j]
            if done[u]:
                continue
            nd = d + w[j]
            if nd < dist[u]:
                dist[u] = nd
                pred[u] = v
                pslot[u] = j
                heapq.heappush(heap, (nd, u))
    if end < 0:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    count = 1
    v = end
    while v != src:
        v = pred[v]
        count += 1
    verts = np.empty(count, np.int64)
    eids = np.empty(count - 1, np.int64)
    v = end
    for i in range(count - 1):
        verts[i] = v
        eids[i] = eid_at[pslot[v]]
        v = pred[v]
    verts[count - 1] = src
    return verts, eids


def _reach_py(indptr, indices, eid_at, usable, src):  # pragma: no cover - compiled by numba
    """Vertices reachable from ``src`` over the edges with ``usable`` True."""
    n = indptr.shape[0] - 1
    seen = np.zeros(n, np.bool_)
    stack = np.empty(n, np.int64)
    seen[src] = True
    stack[0] = src
    top = 1
    while top > 0:
        top -= 1
        v = stack[top]
        for j in range(indptr[v], indptr[v + 1]):
            u = indices[j]
            if usable[eid_at[j]] and not seen[u]:
                seen[u] = True
                stack[top] = u
                top += 1
    return seen


@functools.cache
def _kernels() -> SimpleNamespace:
    import numba as nb

    return SimpleNamespace(
        bridges=nb.njit(cache=True)(_bridges_py),
        route=nb.njit(cache=True)(_route_py),
        reach=nb.njit(cache=True)(_reach_py),
    )


def _bridge_tree(
    nv: int, eu: np.ndarray, ev: np.ndarray, root: int
) -> tuple[np.ndarray, dict[int, tuple[int, int]]]:
    """2-edge-connected components and the tree of bridges between them, rooted at ``root``.

    Returns the component label of each vertex and ``{label: (parent label, bridge edge)}``
    for every component reachable from ``root``'s (edge positions index ``eu``/``ev``).
    """
    csr = _Csr(nv, eu, ev)
    is_bridge = _kernels().bridges(csr.indptr, csr.indices, csr.eid_at, np.ones(len(eu), bool))
    keep = ~is_bridge
    g = sp.csr_array(
        (np.ones(int(keep.sum()), dtype=np.float32), (eu[keep], ev[keep])), shape=(nv, nv)
    )
    _, label = connected_components(g, directed=False)
    adj: dict[int, list[tuple[int, int]]] = {}
    for e in np.flatnonzero(is_bridge).tolist():
        a, b = int(label[eu[e]]), int(label[ev[e]])
        adj.setdefault(a, []).append((b, e))
        adj.setdefault(b, []).append((a, e))
    r = int(label[root])
    tree: dict[int, tuple[int, int]] = {r: (-1, -1)}
    todo = [r]
    while todo:
        nxt = []
        for c in todo:
            for d, e in adj.get(c, ()):
                if d not in tree:
                    tree[d] = (c, e)
                    nxt.append(d)
        todo = nxt
    return label, tree


class _TwoEdgeForest:
    """Incremental 2-edge-connected components of a growing connected graph.

    Components are union-find sets (``uf``) arranged in a tree of bridges (``parent``: a
    vertex of the parent component, -1 at the root; ``bridge``: the edge id to it). Vertices
    join as leaves (:meth:`add_leaf`); an edge between two present vertices (:meth:`add_edge`)
    merges every component on the tree path between them, found by walking both ends up
    alternately until they meet (cf. "Finding bridges online", cp-algorithms).
    """

    def __init__(self, nv: int):
        self.uf = np.arange(nv, dtype=np.int64)
        self.parent = np.full(nv, -1, dtype=np.int64)
        self.bridge = np.full(nv, -1, dtype=np.int64)
        self.present = np.zeros(nv, dtype=np.bool_)
        self.mark = np.zeros(nv, dtype=np.int64)  # scratch for the searches
        self.side = np.zeros(nv, dtype=np.bool_)
        self.stamp = 0

    def find(self, v: int) -> int:
        uf = self.uf
        r = v
        while uf[r] != r:
            r = int(uf[r])
        while uf[v] != r:
            uf[v], v = r, int(uf[v])
        return r

    def add_leaf(self, v: int, to: int, e: int) -> None:
        self.present[v] = True
        self.uf[v] = v
        self.parent[v] = self.find(to)
        self.bridge[v] = e

    def add_edge(self, a: int, b: int) -> None:
        a, b = self.find(a), self.find(b)
        if a == b:
            return
        seen: set[int] = set()
        walks: tuple[list[int], list[int]] = ([], [])
        ends = [a, b]
        lca = -1
        while lca < 0:
            for k in (0, 1):
                if ends[k] < 0:
                    continue
                c = self.find(ends[k])
                walks[k].append(c)
                if c in seen:
                    lca = c
                    break
                seen.add(c)
                ends[k] = int(self.parent[c])
        for walk in walks:
            for c in walk:
                if c == lca:
                    break
                self.uf[c] = lca

    def bridges_to_root(self, v: int) -> tuple[list[int], list[int]]:
        """Bridges between ``v`` and the root component (edge ids, nearest ``v`` first) and
        the component below each."""
        bridges, comps = [], []
        c = self.find(v)
        while self.parent[c] >= 0:
            bridges.append(int(self.bridge[c]))
            comps.append(c)
            c = self.find(int(self.parent[c]))
        return bridges, comps


# ---------------------------------------------------------------------------------------------


def protect_sites(
    G: nx.Graph,
    network_edges: Iterable[tuple],
    protected_nodes: Mapping[Hashable, Hashable],
    roots: Iterable[Hashable],
    *,
    weight: str = "cost_joint",
    exempt_access: bool = True,
    prune: bool = True,
) -> RingResult:
    """Add low-cost road links so that designated sites survive any single link cut.

    Parameters
    ----------
    G
        Road graph with the costs (e.g. from :func:`~telcoplan.backbone.graph.snap_sites` then
        :func:`~telcoplan.backbone.graph.operator_costs`). Edges whose ``weight`` is missing,
        infinite or NaN cannot be added (a forbidden lease); negative costs are an error.
    network_edges
        The planned network: edges ``(u, v)`` of ``G`` (e.g. ``OperatorTree.edges``). Reusing
        them costs nothing. Parts of it that do not reach the fiber are ignored.
    protected_nodes
        ``{site id: node}`` of the sites to protect (from ``snap_sites``).
    roots
        Nodes on existing fiber (e.g. ``OperatorTree.attach``, or every node of a usable fiber
        edge). Together they are the fiber network: one super-node that cannot be cut.
    weight
        Edge attribute with the cost of building a link (currency units).
    exempt_access
        A site's own drop to its road (its only edge, road class ``access``) cannot be doubled
        on the road graph; when True the site counts as protected when its road point is.
    prune
        Afterwards, drop added links that no protected site needs (see Notes).

    Returns
    -------
    RingResult
        Added edges, their cost and length, and the protected / unprotected sites with reasons.

    Notes
    -----
    Let H be the network plus a virtual root joined to every fiber node (the fiber counts as
    one node). Sites are taken farthest (along the network) from the fiber first. For a site
    ``s`` not yet 2-edge-connected to the root in H, let B be the bridges of H on its path to
    the root. The cheapest route from ``s`` to the root is added to H, where edges of H are
    free and each bridge of B may be crossed only back towards ``s``, never towards the root.
    The route must then cross every bridge b of B towards the root on new links: such a
    crossing and the network on either side of b form a cycle through b, so no single cut
    separates ``s`` from the root afterwards (bridges not in B never separated it). Crossing
    back lets one route combine several cheap detours (one around the first bridges, one
    from the middle of the path around the last ones) where a route avoiding B altogether
    would need a second path all the way to the fiber. Such a route exists unless a bridge
    of G itself separates ``s`` from the fiber: then the site is unprotectable and the reason
    names that link.

    Each route is one Dijkstra search that stops at the first vertex from which the network
    reaches the fiber without crossing B (so it explores only around the site, not the whole
    network that is free to use); 2-edge-connected components are kept up to date
    incrementally (union-find over the tree of bridges), so sites already protected by an
    earlier ring cost nothing. With ``prune``, added links that end in a dead end are dropped,
    then every chain of added links (between junctions or protected sites, costliest first)
    whose removal keeps all protected sites 2-edge-connected to the fiber: a later ring may
    have made part of an earlier one redundant. This is a heuristic for the NP-hard
    minimum-cost 2-edge-connected augmentation (cf. Khuller & Thurimella, "Approximation
    algorithms for graph augmentation", J. Algorithms 14, 1993). The result is deterministic.
    """
    if G.is_multigraph() or G.is_directed():
        raise PlanError(
            f"protect_sites needs an undirected simple graph (networkx.Graph), got {type(G).__name__}"
        )
    nodes = list(G.nodes)
    index = {nd: i for i, nd in enumerate(nodes)}
    n = len(nodes)
    R = n  # the virtual fiber root
    nv = n + 1
    root_idx = _checked_nodes(roots, index, "roots")
    net_pairs = _checked_network(G, network_edges, index)
    if not root_idx:
        reason = "there is no existing fiber to protect a route to"
        return RingResult((), 0.0, 0.0, (), dict.fromkeys(protected_nodes, reason), {}, weight)

    eu, ev, cost, is_net, virtual = _edge_arrays(G, index, weight, net_pairs, root_idx, R)

    # contract the fiber network: every fiber node is the root for connectivity
    rep = np.arange(nv, dtype=np.int64)
    rep[root_idx] = R
    cu, cv = rep[eu], rep[ev]

    # H: the part of the network that reaches the fiber
    net_e = np.flatnonzero(is_net & (cu != cv))
    g = sp.csr_array(
        (np.ones(len(net_e), dtype=np.float32), (cu[net_e], cv[net_e])), shape=(nv, nv)
    )
    _, hlabel = connected_components(g, directed=False)
    in_h_vertex = hlabel == hlabel[R]
    in_h_edge = virtual | (is_net & in_h_vertex[cu] & in_h_vertex[cv])
    h_e = np.flatnonzero(in_h_edge & (cu != cv))

    forest = _TwoEdgeForest(nv)
    label, tree = _bridge_tree(nv, cu[h_e], cv[h_e], R)
    hv = np.flatnonzero(in_h_vertex)
    _, first = np.unique(label[hv], return_index=True)
    leader = np.full(int(label.max()) + 1, -1, dtype=np.int64)
    leader[label[hv[first]]] = hv[first]
    forest.uf[hv] = leader[label[hv]]
    forest.present[hv] = True
    for lab, (parent_lab, pos) in tree.items():
        if parent_lab >= 0:
            forest.parent[leader[lab]] = leader[parent_lab]
            forest.bridge[leader[lab]] = h_e[pos]

    # G's own bridges (fiber contracted): what no ring can ever avoid
    g_e = np.flatnonzero((cu != cv) & (np.isfinite(cost) | in_h_edge))
    glabel, gtree = _bridge_tree(nv, cu[g_e], cv[g_e], R)

    # search costs per CSR slot: network edges free, unusable ones infinite
    csr = _Csr(nv, eu, ev)
    w_edge = np.where(in_h_edge, 0.0, cost)
    w_slot = w_edge[csr.eid_at]
    route = _kernels().route

    targets, unprotected = _targets(G, protected_nodes, index, in_h_vertex, rep, exempt_access)
    order = _farthest_first(targets, nv, eu, ev, cost, in_h_edge, R)

    def search(src: int, removed: list[int], below: list[int]) -> tuple[np.ndarray, np.ndarray]:
        # a bridge may be crossed back towards the site (free), never forwards
        lower_is_u = [
            forest.find(int(rep[eu[e]])) == c for e, c in zip(removed, below, strict=True)
        ]
        slots = csr.slots[removed, np.where(lower_is_u, 0, 1)]
        w_slot[slots] = np.inf
        forest.stamp += 1
        stop = below[-1]
        try:
            return route(
                csr.indptr,
                csr.indices,
                csr.eid_at,
                w_slot,
                src,
                rep,
                forest.present,
                forest.uf,
                forest.parent,
                stop,
                forest.mark,
                forest.side,
                forest.stamp,
            )
        finally:
            w_slot[slots] = w_edge[csr.eid_at[slots]]

    added: list[int] = []
    added_for: dict[Hashable, list[int]] = {}
    protected: set = set()
    searches = 0
    for sid in order:
        src = targets[sid]
        t = int(rep[src])
        chain = _chain(glabel, gtree, t)
        if chain:
            unprotected[sid] = _dead_end_reason(G, nodes, eu, ev, g_e[chain])
            continue
        mine: list[int] = []
        removed, below = forest.bridges_to_root(t)
        if removed:
            verts, eids = search(src, removed, below)
            searches += 1
            for k, e in enumerate(eids.tolist()):
                if in_h_edge[e]:
                    continue
                cb, ca = int(rep[verts[k]]), int(rep[verts[k + 1]])  # cb is in H already
                if ca == cb:  # a link between two fiber nodes protects nothing
                    continue
                in_h_edge[e] = True
                w_edge[e] = 0.0
                w_slot[csr.slots[e]] = 0.0
                mine.append(e)
                if forest.present[ca]:
                    forest.add_edge(ca, cb)
                else:
                    forest.add_leaf(ca, cb, e)
            if forest.find(t) != forest.find(R):  # cannot happen: see the Notes
                raise AssertionError(f"site {sid!r} is still behind bridges after its ring")
        protected.add(sid)
        if mine:
            added.extend(mine)
            added_for[sid] = mine

    if prune and added:
        needed = {int(rep[targets[s]]) for s in protected}
        keep = _prune(nv, cu, cv, cost, in_h_edge, np.asarray(added), needed, R)
        added = [e for e in added if keep[e]]
        added_for = {s: kept for s, es in added_for.items() if (kept := [e for e in es if keep[e]])}

    def pair(e: int) -> tuple:
        return (nodes[eu[e]], nodes[ev[e]])

    edges = tuple(pair(e) for e in added)
    length = float(sum(float(G.edges[u, v].get("length_m", 0.0) or 0.0) for u, v in edges))
    result = RingResult(
        edges=edges,
        cost=float(cost[added].sum()) if added else 0.0,
        length_m=length,
        protected=tuple(s for s in protected_nodes if s in protected),
        unprotected={s: unprotected[s] for s in protected_nodes if s in unprotected},
        added_for={s: tuple(pair(e) for e in added_for[s]) for s in order if s in added_for},
        weight=weight,
    )
    log.info(
        "rings: %d of %d sites protected with %d searches: %d links added (%.1f km, cost %.0f)",
        len(result.protected),
        len(protected_nodes),
        searches,
        len(edges),
        length / 1000.0,
        result.cost,
    )
    return result


def _prune(nv, cu, cv, cost, in_h_edge, added, needed, R) -> np.ndarray:
    """Which edges stay after dropping the added links no protected vertex needs.

    ``cu``/``cv`` are edge ends with the fiber contracted to ``R``; ``needed`` the protected
    vertices. Only the root's 2-edge-connected component matters (a simple path between two
    of its vertices never leaves it); its chains through unneeded degree-2 vertices are
    contracted to single edges, so each removal test is a bridge search on a small graph.
    Returns a mask over all edge ids.
    """
    kern = _kernels()
    h = np.flatnonzero(in_h_edge & (cu != cv))
    local = np.full(len(cu), -1, dtype=np.int64)
    local[h] = np.arange(len(h))
    hu, hv = cu[h], cv[h]
    csr = _Csr(nv, hu, hv)
    alive = np.ones(len(h), dtype=np.bool_)
    is_added = np.zeros(len(h), dtype=np.bool_)
    is_added[local[added]] = True
    need = np.fromiter(sorted(needed), dtype=np.int64)

    def core() -> np.ndarray:
        """Edges of the root's 2-edge-connected component (and bridges)."""
        br = kern.bridges(csr.indptr, csr.indices, csr.eid_at, alive)
        seen = kern.reach(csr.indptr, csr.indices, csr.eid_at, alive & ~br, R)
        return alive & ~br & seen[hu] & seen[hv], br

    inside, br = core()
    alive[br & is_added] = False  # dead ends protect nothing
    chains, ends = _chains(nv, csr, hu, hv, inside, need, R)
    removable = [k for k, c in enumerate(chains) if is_added[c].all()]
    if not removable:
        keep = np.zeros(len(cu), dtype=bool)
        keep[h[alive]] = True
        return keep
    # the contracted core: one edge per chain between its end vertices
    verts, ends_c = np.unique(np.asarray(ends, dtype=np.int64).reshape(-1, 2), return_inverse=True)
    ends_c = ends_c.reshape(-1, 2)
    small = _Csr(len(verts), ends_c[:, 0], ends_c[:, 1])
    chain_alive = np.ones(len(chains), dtype=np.bool_)
    root_c = int(np.searchsorted(verts, R))
    need_c = np.searchsorted(verts, need)

    def all_protected() -> bool:
        bri = kern.bridges(small.indptr, small.indices, small.eid_at, chain_alive)
        seen = kern.reach(small.indptr, small.indices, small.eid_at, chain_alive & ~bri, root_c)
        return bool(seen[need_c].all())

    for k in sorted(removable, key=lambda k: (-float(cost[h[chains[k]]].sum()), chains[k][0])):
        chain_alive[k] = False
        if all_protected():
            alive[chains[k]] = False
        else:
            chain_alive[k] = True
    br = kern.bridges(csr.indptr, csr.indices, csr.eid_at, alive)
    alive[br & is_added] = False  # and what the removals left hanging
    keep = np.zeros(len(cu), dtype=bool)
    keep[h[alive]] = True
    return keep


def _chains(nv, csr, hu, hv, inside, need, R) -> tuple[list[list[int]], list[tuple[int, int]]]:
    """Maximal paths of ``inside`` edges whose inner vertices have degree 2 and are not
    needed (nor the root), with their end vertices."""
    deg = np.bincount(hu[inside], minlength=nv) + np.bincount(hv[inside], minlength=nv)
    stop = deg != 2
    stop[need] = True
    stop[R] = True
    indptr, eid_at = csr.indptr, csr.eid_at
    used = np.zeros(len(hu), dtype=bool)
    chains, ends = [], []
    for e in np.flatnonzero(inside).tolist():
        if used[e]:
            continue
        used[e] = True
        halves = []
        for cur in (int(hu[e]), int(hv[e])):
            prev, half = e, []
            while not stop[cur]:
                nxt = next(
                    (
                        f
                        for f in eid_at[indptr[cur] : indptr[cur + 1]].tolist()
                        if f != prev and inside[f]
                    ),
                    -1,
                )
                if nxt < 0 or used[nxt]:
                    break
                used[nxt] = True
                half.append(nxt)
                cur = int(hu[nxt] + hv[nxt] - cur)
                prev = nxt
            halves.append((half, cur))
        (h0, a), (h1, b) = halves
        chains.append([*reversed(h0), e, *h1])
        ends.append((a, b))
    return chains, ends


def _edge_arrays(G: nx.Graph, index: Mapping, weight: str, net_pairs: set, root_idx: list, R: int):
    """Edge ends, cost, network flag and virtual flag of the usable road edges and the network
    edges (cost ``inf`` where unusable), then one virtual edge from each fiber node to ``R``."""
    eu, ev, cost, is_net, bad = [], [], [], [], []
    for u, v, w in G.edges(data=weight):
        i, j = index[u], index[v]
        if i == j:
            continue
        w = np.nan if w is None else float(w)
        if w < 0:
            bad.append((u, v, w))
            continue
        usable = bool(np.isfinite(w))
        in_net = ((i, j) if i < j else (j, i)) in net_pairs
        if usable or in_net:
            eu.append(i)
            ev.append(j)
            cost.append(w if usable else np.inf)
            is_net.append(in_net)
    if bad:
        u, v, w = bad[0]
        raise PlanError(
            f"{len(bad)} edges have a negative {weight!r}, e.g. {u!r}–{v!r}: {w:g}; "
            "building costs must be ≥ 0"
        )
    m, k = len(eu), len(root_idx)
    virtual = np.zeros(m + k, dtype=bool)
    virtual[m:] = True
    return (
        np.asarray(eu + root_idx, dtype=np.int64),
        np.asarray(ev + [R] * k, dtype=np.int64),
        np.asarray(cost + [0.0] * k, dtype=float),
        np.asarray(is_net + [False] * k, dtype=bool),
        virtual,
    )


def _checked_nodes(nodes: Iterable[Hashable], index: Mapping, what: str) -> list[int]:
    nodes = list(dict.fromkeys(nodes))
    missing = [nd for nd in nodes if nd not in index]
    if missing:
        raise PlanError(
            f"{len(missing)} {what} are not nodes of the graph, e.g. "
            + ", ".join(repr(nd) for nd in missing[:5])
        )
    return sorted(index[nd] for nd in nodes)


def _checked_network(G: nx.Graph, network_edges: Iterable[tuple], index: Mapping) -> set:
    pairs, missing = set(), []
    for e in network_edges:
        u, v = e[0], e[1]
        if not G.has_edge(u, v):
            missing.append((u, v))
            continue
        i, j = index[u], index[v]
        pairs.add((i, j) if i < j else (j, i))
    if missing:
        raise PlanError(
            f"{len(missing)} network edges are not edges of the graph, e.g. "
            + ", ".join(f"{u!r}–{v!r}" for u, v in missing[:5])
        )
    return pairs


def _targets(G, protected_nodes, index, in_h_vertex, rep, exempt_access):
    """``{site: vertex to protect}`` and ``{site: reason}`` for sites off the network."""
    targets, unprotected = {}, {}
    for sid, node in protected_nodes.items():
        if node not in index:
            unprotected[sid] = f"its node {node!r} is not in the road graph"
            continue
        if not in_h_vertex[rep[index[node]]]:
            unprotected[sid] = (
                "not connected to the network: no planned link or existing fiber reaches it"
            )
            continue
        t = index[node]
        if exempt_access and G.degree(node) == 1:
            (other,) = G.adj[node]
            if G.edges[node, other].get("road_class") == ACCESS_CLASS:
                t = index[other]
        targets[sid] = t
    return targets, unprotected


def _farthest_first(targets, nv, eu, ev, cost, in_h_edge, R) -> list:
    """Sites by decreasing network distance from the fiber (ties by id): long rings first,
    so that one ring protects the sites along it."""
    if not targets:
        return []
    h = np.flatnonzero(in_h_edge)
    w = np.where(np.isfinite(cost[h]), cost[h], 0.0) + 1e-9  # csgraph drops explicit zeros
    g = sp.csr_array(
        (np.concatenate([w, w]), (np.concatenate([eu[h], ev[h]]), np.concatenate([ev[h], eu[h]]))),
        shape=(nv, nv),
    )
    dist = dijkstra(g, directed=True, indices=R)
    return sorted(targets, key=lambda s: (-dist[targets[s]], str(s)))


def _chain(label: np.ndarray, tree: Mapping, t: int) -> list[int]:
    """Positions of G's bridges between vertex ``t`` and the root, nearest ``t`` first."""
    c = int(label[t])
    out = []
    while c in tree and tree[c][0] >= 0:
        out.append(tree[c][1])
        c = tree[c][0]
    return out


def _describe(G: nx.Graph, u, v) -> str:
    """A link in a planner's terms: ``road 'r12' (residential, 230 m, (x, y)–(x, y))``."""
    d = G.edges[u, v]
    cls, rid, length = d.get("road_class"), d.get("road_id"), d.get("length_m")
    if cls == ACCESS_CLASS:
        return "its own access drop" + (f" ({float(length):.0f} m)" if length is not None else "")
    name = f"road {rid!r}" if rid else f"a {cls} road" if cls else "a road link"
    facts = [str(cls)] if rid and cls else []
    if length is not None:
        facts.append(f"{float(length):.0f} m")
    pu, pv = G.nodes[u], G.nodes[v]
    if all(k in p for p in (pu, pv) for k in ("x", "y")):
        facts.append(f"({pu['x']:.0f}, {pu['y']:.0f})–({pv['x']:.0f}, {pv['y']:.0f})")
    return f"{name} ({', '.join(facts)})" if facts else name


def _dead_end_reason(G, nodes, eu, ev, chain: np.ndarray) -> str:
    """Why no ring can protect a site: the bridges of G between it and the fiber."""
    first = int(chain[0])
    text = (
        f"its only road access is a dead end: {_describe(G, nodes[eu[first]], nodes[ev[first]])}"
        " is a single link with no second route to the fiber network"
    )
    if len(chain) > 1:
        total = sum(
            float(G.edges[nodes[eu[e]], nodes[ev[e]]].get("length_m", 0.0) or 0.0)
            for e in chain.tolist()
        )
        text += f" ({len(chain)} such links, {total:.0f} m in all, lie between it and the network)"
    return text


def ring_links(G: nx.Graph, result: RingResult) -> gpd.GeoDataFrame:
    """The added ring links as a GeoDataFrame (one row per link, ``G``'s CRS).

    Columns ``plan`` (``ring``), ``status`` (``ring``), ``length_m``, ``cost`` (the result's
    ``weight``), ``road_class``, ``reuses_fiber`` (the link runs along existing fiber) and
    ``protects`` (``;``-separated ids of the sites whose ring added it).
    """
    crs = G.graph.get("crs")
    if crs is None:
        raise CRSError("the graph has no G.graph['crs']")
    why: dict[frozenset, list[str]] = {}
    for sid, edges in result.added_for.items():
        for u, v in edges:
            why.setdefault(frozenset((u, v)), []).append(str(sid))
    rows, geoms = [], []
    for u, v in result.edges:
        d = G.edges[u, v]
        rows.append(
            {
                "plan": "ring",
                "status": "ring",
                "length_m": float(d.get("length_m", np.nan)),
                "cost": float(d[result.weight]),
                "road_class": d.get("road_class", ""),
                "reuses_fiber": bool(d.get("fiber")),
                "protects": ";".join(why.get(frozenset((u, v)), [])),
            }
        )
        geoms.append(
            d.get("geometry") or LineString([(G.nodes[w]["x"], G.nodes[w]["y"]) for w in (u, v)])
        )
    columns = ["plan", "status", "length_m", "cost", "road_class", "reuses_fiber", "protects"]
    return gpd.GeoDataFrame(rows, columns=columns, geometry=geoms, crs=crs)
