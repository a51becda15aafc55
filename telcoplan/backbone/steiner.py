"""Steiner trees in graphs: Mehlhorn's construction on a CSR graph, then local search.

:func:`steiner_tree` connects a set of terminal nodes of a weighted undirected graph at low total
edge weight. It copies the graph once into CSR form (nodes become the integers ``0 … n−1`` in
``G``'s node order; labels are never compared or sorted, so any hashable labels, tuples of mixed
types included, work) and then only runs numba kernels (compiled on first use and cached on
disk: the construction, the local search of small graphs with its restarts, Voronoi searches,
hash-table pairing and grouping, path walks), array code and scipy's C routines (Dijkstra and
minimum spanning trees in the local search of large graphs), plus small Python loops over the
tree itself.

Deterministic: ties are broken by node and edge positions in ``G``'s iteration order, never by
labels, hashes or memory addresses, and the restarts draw from a stream seeded by ``seed``. The
same graph built in the same order gives the same tree; a relabelled or reordered graph gives a
tree of the same cost unless equal-cost alternatives exist or lead the heuristic elsewhere.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import operator
from collections.abc import Iterable
from dataclasses import dataclass
from itertools import chain
from types import SimpleNamespace

import networkx as nx
import numpy as np
from scipy.sparse import coo_matrix, csr_matrix
from scipy.sparse.csgraph import connected_components, dijkstra, minimum_spanning_tree

from telcoplan.backbone._network import object_ids as _object_ids
from telcoplan.backbone._network import prune_leaves, relabel, setdiff, unique
from telcoplan.errors import PlanError

__all__ = ["steiner_tree", "steiner_tree_csr"]

log = logging.getLogger(__name__)

_NO_PRED = -9999  # scipy.sparse.csgraph's "no predecessor"
_MAX_LISTED = 5  # problems named in an error message
_MAX_PASSES = 25  # default cap on local-search passes ...
_SCAN_BUDGET = 200_000  # ... and on their work, in node and edge scans (array search)
_COMPILED_LIMIT = 3_000  # nodes + edges up to which the compiled search runs, with restarts
_RESTART_WORK = 1_500  # default restarts: this many node and edge scans' worth ...
_MAX_RESTARTS = 6  # ... and at most this many
_NOISE = 1.5  # a restart multiplies every weight by a random factor in [1, 1 + _NOISE]


@nx.utils.not_implemented_for("directed")
@nx.utils.not_implemented_for("multigraph")
def steiner_tree(
    G: nx.Graph,
    terminals: Iterable,
    *,
    weight: str = "weight",
    max_passes: int | None = None,
    restarts: int | None = None,
    seed: int = 0,
) -> nx.Graph:
    """A low-cost tree of ``G`` that connects every terminal.

    Parameters
    ----------
    G
        Undirected graph (not a multigraph). Every edge needs a numeric attribute ``weight`` ≥ 0
        (a cost, e.g. USD or m); an edge of infinite weight is treated as absent, self-loops
        are ignored.
    terminals
        Nodes of ``G`` to connect; duplicates are ignored, order does not matter.
    weight
        Name of the edge attribute holding the cost.
    max_passes
        Cap on the local-search passes; 0 returns Mehlhorn's tree as it is (and makes no
        restart). The search stops earlier, at the first pass that finds no improving move. By
        default (None): 25 on graphs of up to 3,000 nodes + edges (the compiled search, see
        Notes); above, where a pass scans every node and edge about once, about 200,000 scans:
        ``200_000 // (n + m)`` passes for n nodes and m edges, at least 1 and at most 25 (10 at
        20,000 nodes + edges, one above 100,000).
    restarts
        Randomised restarts of the compiled search (graphs of up to 3,000 nodes + edges; ignored
        above). By default (None) about 1,500 node and edge scans' worth, at most 6:
        ``min(6, 1_500 // (n + m))``, so 6 on graphs of up to 250 nodes + edges and none above
        1,500. The cheapest tree found is returned, never one costlier than without restarts.
    seed
        Seed of the restarts' random numbers; the same seed gives the same tree.

    Returns
    -------
    networkx.Graph
        A tree containing every terminal (with no other leaves), whose nodes and edges carry
        copies of ``G``'s attributes; ``T.graph`` copies ``G.graph`` and adds ``"cost"``, the
        sum of the tree's edge weights. No terminal: an empty graph; one: that node alone.

    Raises
    ------
    PlanError
        (a ``ValueError``) A terminal is not in ``G``; terminals lie in different connected
        components of ``G`` (one unreachable terminal is named); an edge lacks the ``weight``
        attribute or has a negative, NaN or non-numeric one (the edges are named).
    networkx.NetworkXNotImplemented
        ``G`` is directed or a multigraph.

    Notes
    -----
    *Construction* (Mehlhorn 1988, a 2(1 − 1/ℓ)-approximation for ℓ leaves of an optimal
    tree, like Kou–Markowsky–Berman's): one multi-source Dijkstra from all terminals gives each
    node its nearest terminal (Voronoi regions); every edge (u, v) joining two regions is a path
    between their terminals of length d(u) + w(u, v) + d(v); the minimum spanning tree of the
    terminals over those paths is expanded into its paths, replaced by a minimum spanning tree
    of the subgraph of ``G`` induced by its nodes, and non-terminal leaves are removed.

    Every move below is accepted only if the tree it gives — replaced by the minimum spanning
    tree of the subgraph induced by its nodes, non-terminal leaves pruned — weighs less (by more
    than 1e-9 relative), so the result is never worse than Mehlhorn's and stays within twice
    the optimum. A *key path* is a path of the tree whose inner nodes are non-terminals of
    degree 2 and whose ends are terminals or nodes of degree ≥ 3 (the *key nodes*).

    *Compiled search with restarts* (graphs of up to 3,000 nodes + edges; numba kernels in
    :mod:`telcoplan.backbone._steiner_search`), the moves of Uchoa & Werneck (2010) and of the
    heuristics of the PACE 2018 challenge (track C), each improving move applied at once:

    - **key-path exchange**: remove a key path (its inner nodes become free) and join the two
      parts by the shortest path through free and non-tree nodes — a Dijkstra search from the
      lower part's nodes within the key path's length of its lower end (along the tree), then
      one from the upper part's nodes near its upper end, both stopped at the key path's
      length;
    - **key-vertex elimination**: remove a non-terminal key node of degree d ≥ 3 with its key
      paths and join the d parts by a minimum spanning tree over the shortest paths between
      them (one Voronoi search from the parts' nodes near the removed node);
    - **Steiner-vertex insertion**: a non-tree node with two or more tree neighbours joins when
      the MST of the tree plus its edges, pruned, is cheaper (evaluated on the tree paths
      between its neighbours, the only tree edges it can displace);
    - **Steiner-vertex elimination**: a non-terminal node of degree ≥ 3 leaves when the pruned
      MST of the other tree nodes still connects the terminals and is cheaper.

    A pass runs the exchange, the insertions and the eliminations, and the key-vertex
    eliminations only when those found nothing. Then ``restarts`` times: the shortest-path
    heuristic (Takahashi & Matsuyama 1980: from a root terminal, repeatedly join the nearest
    terminal) from a random root terminal, with every weight multiplied by a random factor in
    [1, 2.5] (seeded splitmix64 stream), then the same local search on the true weights but
    without key-vertex elimination, which only a tree that beats the best so far gets; the
    cheapest tree of all is kept, so a restart never makes the result worse.

    *Array search* (larger graphs, after Uchoa & Werneck 2010). A pass computes the Voronoi
    regions of *all* tree nodes (one multi-source Dijkstra, stopped at the longest path a move
    could use): for every edge (u, v) between two regions, the path tree node → … → u — v → … →
    tree node is a candidate way to join two parts of the tree, of length d(u) + w(u, v) +
    d(v), through non-tree nodes only. The pass then tries these moves in order and stops at
    the first that improves the tree:

    - **key-path exchange**: removing a key path splits the tree in two; the cheapest path
      joining the two parts replaces it when cheaper. Each candidate covers the key paths on
      the tree path between its ends, and one union–find sweep over the candidates sorted by
      length gives every key path its cheapest cover. Removing a key path also frees the
      Voronoi regions of its inner nodes, where the best replacement often runs (right beside
      the old path); Uchoa & Werneck's repair searches them: one more Dijkstra over the union
      of all those regions, entered from the nodes around them, finds every key path's best
      route through its own region. Every improving exchange is applied at once, as long as
      no new path covers a key path removed before it and none ends inside one (the exchange
      matrix stays triangular, so the result is a tree).
    - **key-vertex elimination** (Steiner-node removal): a non-terminal key node of degree ≥ 3
      is removed with its key paths and the d ≥ 3 parts are joined by a minimum spanning tree
      over the candidates, when that is cheaper (a batch of non-adjacent ones, else the best
      one). Here the removed regions are not searched.
    - **Steiner-node insertion**: every non-tree node adjacent to two or more tree nodes is
      offered at once: a minimum spanning tree of the subgraph induced by the tree's nodes and
      those nodes, with non-terminal leaves pruned, replaces the tree when cheaper.

    A pass costs a Dijkstra over ``G``, one over the removable regions, and work proportional
    to the tree.

    References: K. Mehlhorn, "A faster approximation algorithm for the Steiner problem in
    graphs", Information Processing Letters 27(3), 125–128 (1988); E. Uchoa and R. F. Werneck,
    "Fast local search for Steiner trees in graphs", Proc. ALENEX 2010, 1–10 (SIAM);
    H. Takahashi and A. Matsuyama, "An approximate solution for the Steiner problem in graphs",
    Math. Japonica 24(6), 573–577 (1980); E. Bonnet and F. Sikora, "The PACE 2018 Parameterized
    Algorithms and Computational Experiments Challenge: the third iteration", IPEC 2018,
    LIPIcs 115, 26:1–26:15.
    """
    terminals = list(dict.fromkeys(terminals))
    missing = [t for t in terminals if t not in G]
    if missing:
        raise PlanError(
            f"steiner_tree: {len(missing)} terminal(s) not in the graph: "
            f"{_listing(missing)}; every terminal must be a node of G"
        )
    if len(terminals) <= 1:
        T = nx.Graph()
        T.graph.update(G.graph)
        T.add_nodes_from((t, G.nodes[t]) for t in terminals)
        T.graph["cost"] = 0.0
        return T

    net = _Net.from_graph(G, weight)
    tidx = _terminal_positions(G, net, terminals)
    tree, cost = _solve(net, tidx, max_passes, restarts, seed, terminals)
    return _to_nx(G, net, tree, cost)


def steiner_tree_csr(
    indptr: np.ndarray,
    col: np.ndarray,
    weight: np.ndarray,
    terminals: np.ndarray,
    *,
    labels: np.ndarray | None = None,
    max_passes: int | None = None,
    restarts: int | None = None,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray, float]:
    """:func:`steiner_tree` on a graph given as arrays: the same tree as on the networkx graph
    whose nodes are ``0 … n−1`` in that order and whose adjacency rows hold the neighbours in
    the order of ``col`` (the order that breaks ties).

    Parameters
    ----------
    indptr, col
        Adjacency in CSR form, both directions: the neighbours of node ``i`` are
        ``col[indptr[i]:indptr[i + 1]]`` (a simple graph: no self-loop, no repeated pair).
    weight
        Cost of each adjacency entry (≥ 0; both directions of an edge equal); an infinite one
        marks an unusable edge.
    terminals
        Node positions to connect (duplicates ignored).
    labels
        The nodes' labels, for error messages (default: the positions).
    max_passes, restarts, seed
        As for :func:`steiner_tree`.

    Returns
    -------
    (u, v, cost)
        The tree's edges as node positions, ``u < v``, in increasing ``(u, v)`` order, and its
        cost (the sum of their weights).
    """
    n = len(indptr) - 1
    net = _Net.from_csr(
        np.asarray(indptr, np.int64), np.asarray(col, np.int64), np.asarray(weight, np.float64)
    )
    tidx = unique(np.asarray(terminals, dtype=np.int64))
    if len(tidx) and (tidx[0] < 0 or tidx[-1] >= n):
        raise PlanError(f"steiner_tree_csr: terminal positions must be in 0…{n - 1}")
    if labels is not None:
        net = dataclasses.replace(net, nodes=np.asarray(labels, dtype=object))
    if len(tidx) <= 1:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), 0.0
    tree, cost = _solve(net, tidx, max_passes, restarts, seed, net.nodes[tidx].tolist())
    tree = np.sort(tree)
    return net.eu[tree], net.ev[tree], cost


def _solve(net: _Net, tidx: np.ndarray, max_passes, restarts, seed, terminals: list):
    """Mehlhorn's tree of the terminals at positions ``tidx`` (increasing), improved by local
    search: (edge ids, cost)."""
    is_term = np.zeros(net.n, dtype=bool)
    is_term[tidx] = True
    arrays = net.arrays()
    search = _search_kernels()
    size = net.n + len(net.ew)
    compiled = size <= _COMPILED_LIMIT
    if compiled:  # no call overhead
        voronoi = search.voronoi(arrays, tidx, np.inf)
    else:  # scipy's is a little faster on large graphs
        voronoi = dijkstra(
            net.A, directed=True, indices=tidx, min_only=True, return_predecessors=True
        )
        voronoi = (voronoi[0], voronoi[1].astype(np.int64), voronoi[2].astype(np.int64))
    tree, cost0, ok = search.mehlhorn(arrays, is_term, tidx, *voronoi)
    if not ok:
        _raise_disconnected(net, tidx, terminals)
    if max_passes is None:
        max_passes = _MAX_PASSES if compiled else min(_MAX_PASSES, max(1, _SCAN_BUDGET // size))
    if restarts is None:
        restarts = min(_MAX_RESTARTS, _RESTART_WORK // size) if compiled else 0
    passes = 0
    if max_passes > 0 and compiled:
        tree, _, passes = search.improve(
            tree, arrays, is_term, tidx, max_passes, restarts, int(seed) % 2**63, _NOISE
        )
    elif max_passes > 0:
        tree, passes = _local_search(net, is_term, tree, max_passes)
    cost = float(net.ew[tree].sum())
    log.debug(
        "steiner_tree: %d nodes, %d terminals: Mehlhorn %.6g, %s local search (%d pass(es), "
        "%d restart(s)) %.6g",
        net.n,
        len(tidx),
        cost0,
        "compiled" if compiled else "array",
        passes,
        restarts if compiled and max_passes > 0 else 0,
        cost,
    )
    return tree, cost


# --------------------------------------------------------------------------------------------
# the graph as arrays


@dataclass(frozen=True)
class _Net:
    """``G`` as arrays: nodes ``0 … n−1`` in ``G``'s order, the usable edges (finite weight)
    sorted by (u, v) with u < v, and the adjacency in CSR form (also as the symmetric matrix
    scipy's routines take, built on first use)."""

    nodes: np.ndarray  # the labels (object array: the garbage collector does not scan it)
    eu: np.ndarray  # int64, u < v
    ev: np.ndarray
    ew: np.ndarray  # float64 weights
    ekey: np.ndarray  # u * n + v, increasing: the edge id of (u, v) is searchsorted(ekey, ...)
    dicts: np.ndarray | None  # G's attribute dict of every adjacency entry (object array)
    entry: np.ndarray | None  # the adjacency entry (index into dicts) of each edge
    rows: np.ndarray | None  # G._adj's rows (object array), in node order (None: from_csr)
    indptr: np.ndarray  # the adjacency in CSR form, both directions, int64: row pointers,
    col: np.ndarray  # the neighbour,
    eid: np.ndarray  # edge id
    wq: np.ndarray  # and weight of every entry

    @property
    def n(self) -> int:
        return len(self.nodes)

    def edge_ids(self, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        """Edge ids of the node pairs (u[i], v[i]), which must be edges."""
        u = np.asarray(u, dtype=np.int64)
        v = np.asarray(v, dtype=np.int64)
        key = np.minimum(u, v) * self.n + np.maximum(u, v)
        pos = np.searchsorted(self.ekey, key)
        if len(pos) and (pos.max() >= len(self.ekey) or np.any(self.ekey[pos] != key)):
            raise AssertionError("steiner_tree: internal error, a path uses a non-edge")
        return pos

    def arrays(self) -> tuple:
        """The graph as the compiled kernels take it: (n, indptr, neighbour and edge id of each
        adjacency entry, eu, ev, ew, weight of each adjacency entry), int64 but the weights."""
        return (self.n, self.indptr, self.col, self.eid, self.eu, self.ev, self.ew, self.wq)

    @functools.cached_property
    def A(self) -> csr_matrix:  # noqa: N802 - the matrix A, as in scipy's documentation
        """n x n CSR matrix, both directions (scipy's routines take it)."""
        n = self.n
        big = len(self.col) >= 2**31 - 1 or n >= 2**31 - 1
        itype = np.int64 if big else np.int32
        return csr_matrix(
            (self.wq, self.col.astype(itype), self.indptr.astype(itype)), shape=(n, n), copy=False
        )

    @classmethod
    def from_graph(cls, G: nx.Graph, weight: str) -> _Net:
        # G._adj (networkx's own algorithms read it) is a dict of dicts: iterating it with C-level
        # tools is far faster than G.edges(data=...). Each undirected edge's attribute dict is
        # one object stored under both of its ends, so pairing the adjacency entries by that
        # object's identity finds both ends without hashing node labels (slow for tuples).
        adj = G._adj
        n = len(adj)
        # labels and attribute dicts go into object arrays, not lists: the garbage collector
        # would scan a list of n labels at every collection during the call
        nodes = np.fromiter(adj, object, count=n)
        rows = np.fromiter(adj.values(), object, count=n)  # kept: their ids stay valid
        rows_adj = rows.tolist()
        deg = np.fromiter(map(len, rows_adj), np.int64, count=n)
        nnz = int(deg.sum())
        row = np.repeat(np.arange(n, dtype=np.int64), deg)
        try:
            entries = chain.from_iterable(map(dict.values, rows_adj))
            dicts = np.fromiter(entries, object, count=nnz)
        except TypeError:  # a graph view: its rows are mappings, not dicts
            dicts = np.fromiter((d for nbrs in rows_adj for d in nbrs.values()), object, count=nnz)
        ids = _object_ids(dicts)
        partner = _partner_by_identity(ids, row, nodes, rows_adj, deg)
        if partner is None:  # attribute dicts are not shared as expected: hash the labels
            idx = dict(zip(nodes, range(n), strict=True))
            col = np.fromiter((idx[v] for nbrs in rows_adj for v in nbrs), np.int64, count=nnz)
            partner = _mates(np.minimum(row, col) * n + np.maximum(row, col))
        else:
            col = row[partner]
        # each edge once (u < v): its entry in u's row; self-loops are ignored
        once = row < col
        u, v = row[once], col[once]
        w = _edge_weights(dicts, once, u, v, nodes, weight)
        entry = np.flatnonzero(once)
        usable = np.isfinite(w)
        if not usable.all():
            u, v, w, entry = u[usable], v[usable], w[usable], entry[usable]
        key = u * n + v
        if np.any(key[1:] < key[:-1]):
            order = np.argsort(key, kind="stable")
            u, v, w, key, entry = u[order], v[order], w[order], key[order], entry[order]
        # CSR, both directions, in the adjacency entries' order (rows are already grouped)
        entry_w = np.full(nnz, np.inf)
        entry_w[entry] = w
        entry_w[partner[entry]] = w
        entry_e = np.full(nnz, -1, dtype=np.int64)
        entry_e[entry] = np.arange(len(entry))
        entry_e[partner[entry]] = np.arange(len(entry))
        ok = np.isfinite(entry_w)  # drops self-loops and edges of infinite weight
        if not ok.all():
            entry_w, col, row, entry_e = entry_w[ok], col[ok], row[ok], entry_e[ok]
        indptr = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(np.bincount(row, minlength=n), out=indptr[1:])
        return cls(nodes, u, v, w, key, dicts, entry, rows, indptr, col, entry_e, entry_w)

    @classmethod
    def from_csr(cls, indptr: np.ndarray, col: np.ndarray, wq: np.ndarray) -> _Net:
        """The graph of a CSR adjacency (both directions, the weight of each entry), as
        :meth:`from_graph` gives it for the networkx graph with those rows: edges of infinite
        weight dropped, the others numbered in increasing (u, v) order. No attribute dicts."""
        n = len(indptr) - 1
        if len(col) != indptr[-1] or len(wq) != len(col):
            raise PlanError("steiner_tree_csr: indptr, col and weight do not match")
        bad = np.isnan(wq) | (wq < 0)
        if bad.any():
            raise PlanError(
                f"steiner_tree_csr: {int(bad.sum())} adjacency entries without a usable weight "
                "(NaN or negative); every edge needs a number ≥ 0 (inf marks an unusable edge)"
            )
        row = np.repeat(np.arange(n, dtype=np.int64), np.diff(indptr))
        ok = np.isfinite(wq)
        if not ok.all():
            row, col, wq = row[ok], col[ok], wq[ok]
        if np.any(row == col):
            raise PlanError("steiner_tree_csr: the graph has self-loops; leave them out")
        lo, hi = np.minimum(row, col), np.maximum(row, col)
        key_all = lo * n + hi
        once = row < col
        key = key_all[once]
        order = np.argsort(key, kind="stable")
        key = key[order]
        if np.any(key[1:] == key[:-1]) or 2 * len(key) != len(key_all):
            raise PlanError("steiner_tree_csr: an edge is listed twice, or in one direction only")
        eid = np.searchsorted(key, key_all)
        if np.any(key[np.minimum(eid, len(key) - 1)] != key_all):
            raise PlanError("steiner_tree_csr: an edge is listed in one direction only")
        indptr = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(np.bincount(row, minlength=n), out=indptr[1:])
        ew = wq[once][order]
        nodes = np.arange(n)
        return cls(nodes, lo[once][order], hi[once][order], ew, key, None, None, None, indptr,
                   col, eid, wq)  # fmt: skip


def _terminal_positions(G: nx.Graph, net: _Net, terminals: list) -> np.ndarray:
    """Positions of the terminals in the node order, increasing. Found by the identity of their
    adjacency rows (``G._adj[t]`` is the row object ``net.rows`` holds), which hashes only the
    terminals' labels; when that fails (a graph view builds its rows on the fly), every node's
    label is looked up among the terminals instead."""
    want = np.fromiter(map(G._adj.__getitem__, terminals), object, count=len(terminals))
    pos, ok = _kernels().find(_object_ids(net.rows), _object_ids(want))
    if ok:
        return np.sort(pos)
    wanted = set(terminals)
    return np.flatnonzero(
        np.fromiter(map(wanted.__contains__, net.nodes.tolist()), bool, count=net.n)
    )


def _find_py(have, want):  # pragma: no cover - compiled by numba
    """(pos, True) with have[pos[j]] == want[j] for every j, each value of ``want`` occurring
    exactly once in ``have``; (…, False) otherwise (``want``'s values are distinct)."""
    k = len(want)
    bits = 1
    while (1 << bits) < 2 * k:
        bits += 1
    mask = (1 << bits) - 1
    table = np.full(1 << bits, -1, dtype=np.int64)
    pos = np.full(k, -1, dtype=np.int64)
    for j in range(k):
        x = want[j]
        h = np.int64((np.uint64(x) * np.uint64(11400714819323198485)) >> np.uint64(64 - bits))
        while table[h] >= 0:
            if want[table[h]] == x:
                return pos, False
            h = (h + 1) & mask
        table[h] = j
    for i in range(len(have)):
        x = have[i]
        h = np.int64((np.uint64(x) * np.uint64(11400714819323198485)) >> np.uint64(64 - bits))
        while table[h] >= 0:
            j = table[h]
            if want[j] == x:
                if pos[j] >= 0:
                    return pos, False
                pos[j] = i
                break
            h = (h + 1) & mask
    for j in range(k):
        if pos[j] < 0:
            return pos, False
    return pos, True


def _partner_by_identity(ids, row, nodes, rows_adj, deg):
    """For each adjacency entry, the position of the entry holding the same attribute dict (the
    edge's other end; itself for a self-loop); None when the dicts are not shared in pairs."""
    nnz = len(ids)
    if nnz == 0:
        return np.zeros(0, dtype=np.int64)
    mate, ok, alone = _kernels().mates(ids.view(np.int64), row)
    if not ok:
        return None
    singles = np.flatnonzero(mate == np.arange(nnz)).tolist() if alone else []
    for e in singles:  # must be self-loops
        r = int(row[e])
        if list(rows_adj[r])[e - int(deg[:r].sum())] != nodes[r]:
            return None
    return mate


def _mates_py(key, row):  # pragma: no cover - compiled by numba
    """Like :func:`_mates` (linear time, a hash table): (mate, True, number of positions
    alone), or (…, False, …) if a key occurs more than twice or twice in the same row."""
    n = len(key)
    bits = 1
    while (1 << bits) < 2 * n:
        bits += 1
    mask = (1 << bits) - 1
    table = np.full(1 << bits, -1, dtype=np.int64)
    mate = np.arange(n)
    for i in range(n):
        k = key[i]
        h = np.int64((np.uint64(k) * np.uint64(11400714819323198485)) >> np.uint64(64 - bits))
        while True:
            j = table[h]
            if j < 0:
                table[h] = i
                break
            if key[j] == k:
                if mate[j] != j or row[i] == row[j]:
                    return mate, False, 0
                mate[i] = j
                mate[j] = i
                break
            h = (h + 1) & mask
    alone = 0
    for i in range(n):
        alone += mate[i] == i
    return mate, True, alone


def _key_tree_py(ptr, nbr, eid, wgt, key, root):  # pragma: no cover - compiled by numba
    """The key tree of a tree given as local adjacency lists (``ptr``; neighbour, edge id and
    weight of each entry; ``key`` marks the key nodes): a depth-first walk from ``root`` along
    the key paths. Returns V, each key vertex's node, parent, depth and path cost, the key
    paths' edges and inner nodes (flat, with pointers) and the preorder intervals tin, tout."""
    nloc = len(key)
    node_of = np.empty(nloc, np.int64)
    parent = np.zeros(nloc, np.int64)
    depth = np.zeros(nloc, np.int64)
    cost = np.zeros(nloc, np.float64)
    eptr = np.zeros(nloc + 1, np.int64)
    iptr = np.zeros(nloc + 1, np.int64)
    eflat = np.empty(len(eid), np.int64)
    iflat = np.empty(nloc, np.int64)
    vid_of = np.full(nloc, -1, np.int64)
    cfirst = np.zeros(nloc, np.int64)  # a key vertex's children: ids cfirst … cfirst+ccount-1
    ccount = np.zeros(nloc, np.int64)
    stack_x = np.empty(nloc, np.int64)
    stack_via = np.empty(nloc, np.int64)
    node_of[0] = root
    vid_of[root] = 0
    V, ne, ni, sp = 1, 0, 0, 0
    stack_x[0], stack_via[0], sp = root, -1, 1
    while sp > 0:
        sp -= 1
        x, via = stack_x[sp], stack_via[sp]
        vid = vid_of[x]
        cfirst[vid] = V  # its children get the next ids
        for k in range(ptr[x], ptr[x + 1]):
            e = eid[k]
            if e == via:
                continue
            eflat[ne] = e
            ne += 1
            c = wgt[k]
            cur = nbr[k]
            while not key[cur]:
                iflat[ni] = cur
                ni += 1
                j = ptr[cur]
                if eid[j] == e:
                    j += 1
                e = eid[j]
                c += wgt[j]
                eflat[ne] = e
                ne += 1
                cur = nbr[j]
            vid_of[cur] = V
            node_of[V] = cur
            parent[V] = vid
            depth[V] = depth[vid] + 1
            cost[V] = c
            eptr[V + 1] = ne
            iptr[V + 1] = ni
            V += 1
            stack_x[sp], stack_via[sp] = cur, e
            sp += 1
        ccount[vid] = V - cfirst[vid]
    # subtree intervals: tin in preorder (children in id order), tout = tin + subtree size
    tin = np.zeros(V, np.int64)
    tout = np.zeros(V, np.int64)
    st = np.empty(2 * V, np.int64)  # x * 2 + done
    st[0], sp, t = 0, 1, 0
    while sp > 0:
        sp -= 1
        x, done = st[sp] >> 1, st[sp] & 1
        if done:
            tout[x] = t
            continue
        tin[x] = t
        t += 1
        st[sp] = x * 2 + 1
        sp += 1
        for c in range(cfirst[x] + ccount[x] - 1, cfirst[x] - 1, -1):
            st[sp] = c * 2
            sp += 1
    return (V, node_of[:V], parent[:V], depth[:V], cost[:V], eptr[: V + 1], eflat[:ne],
            iptr[: V + 1], iflat[:ni], tin, tout, cfirst[:V], ccount[:V])  # fmt: skip


def _cover_sweep_py(A, B, L, c, par, dep, max_cost, tol, V):  # pragma: no cover - numba
    """For each key path, the first candidate (by increasing length ``c``) whose tree path
    A → lca L → B covers it (-1: none, or none shorter than the longest key path): a sweep
    that jumps over the key paths already covered (union-find)."""
    jump = np.arange(V)
    best = np.full(V, -1, np.int64)
    left = V - 1
    for i in range(len(A)):
        if c[i] >= max_cost - tol or left == 0:
            break
        dl = dep[L[i]]
        for s in (A[i], B[i]):
            while True:
                r = s  # find(s), compressing the path
                while jump[r] != r:
                    r = jump[r]
                while jump[s] != r:
                    jump[s], s = r, jump[s]
                s = r
                if dep[s] <= dl:
                    break
                best[s] = i
                left -= 1
                jump[s] = par[s]
    return best


class _Ragged:
    """Lists of ints stored flat: item i is ``flat[ptr[i]:ptr[i] + count[i]]`` (count: up to
    the next pointer by default), as a list."""

    def __init__(self, flat: np.ndarray, ptr: np.ndarray, count: np.ndarray | None = None):
        self.flat, self.ptr = flat, ptr
        self.count = np.diff(ptr) if count is None else count

    def __len__(self) -> int:
        return len(self.count)

    def __getitem__(self, i: int) -> list[int]:
        a = int(self.ptr[i])
        return self.flat[a : a + int(self.count[i])].tolist()


@functools.cache
def _kernels() -> SimpleNamespace:
    import numba as nb

    return SimpleNamespace(
        key_tree=nb.njit(cache=True, nogil=True)(_key_tree_py),
        cover_sweep=nb.njit(cache=True, nogil=True)(_cover_sweep_py),
        mates=nb.njit(cache=True, nogil=True)(_mates_py),
        find=nb.njit(cache=True, nogil=True)(_find_py),
        first_min=nb.njit(cache=True, nogil=True)(_first_min_py),
        path_edges=nb.njit(cache=True, nogil=True)(_path_edges_py),
        region_routes=nb.njit(cache=True, nogil=True)(_region_routes_py),
        accept=nb.njit(cache=True, nogil=True)(_accept_py),
    )


def _first_min(key: np.ndarray, val: np.ndarray) -> np.ndarray:
    """For each distinct key, in increasing key order, the first position of its least value:
    the first position of each key in ``np.lexsort((val, key))``, without sorting the values.

    The keys are put in order here, not in the kernel: numba's ``np.argsort`` there, loaded
    from the on-disk cache after the construction kernels' caches, returned the keys out of
    order (the trees then depended on which kernels a process had loaded first)."""
    best = _kernels().first_min(key, val)
    return best[np.argsort(key[best], kind="stable")]


def _first_min_py(key, val):  # pragma: no cover - compiled by numba
    """:func:`_first_min`, the keys in the order first seen."""
    n = len(key)
    bits = 1
    while (1 << bits) < 2 * n:
        bits += 1
    mask = (1 << bits) - 1
    table = np.full(1 << bits, -1, dtype=np.int64)
    best = np.empty(n, dtype=np.int64)
    groups = 0
    for i in range(n):
        k = key[i]
        h = np.int64((np.uint64(k) * np.uint64(11400714819323198485)) >> np.uint64(64 - bits))
        while True:
            g = table[h]
            if g < 0:
                table[h] = groups
                best[groups] = i
                groups += 1
                break
            if key[best[g]] == k:
                if val[i] < val[best[g]]:
                    best[g] = i
                break
            h = (h + 1) & mask
    return best[:groups]


def _path_edges_py(pred, starts, no_pred, ekey, n, eids):  # pragma: no cover - compiled by numba
    """(edge ids, True): the sorted union of ``eids`` and the edges of the walks up ``pred``
    from each start, each walk stopping at a node an earlier one visited (see
    :func:`_expand`); (…, False) if a step is not an edge."""
    seen = np.zeros(len(pred), dtype=np.bool_)
    keys = np.empty(max(16, 4 * len(starts)), dtype=np.int64)
    m = 0
    for start in starts:
        node = start
        while not seen[node]:
            seen[node] = True
            p = pred[node]
            if p == no_pred:
                break
            if m == len(keys):
                grown = np.empty(2 * m, dtype=np.int64)
                grown[:m] = keys
                keys = grown
            keys[m] = min(node, p) * n + max(node, p)
            m += 1
            node = p
    out = np.empty(m + len(eids), dtype=np.int64)
    pos = np.searchsorted(ekey, keys[:m])
    for i in range(m):
        if pos[i] >= len(ekey) or ekey[pos[i]] != keys[i]:
            return out[:0], False
        out[i] = pos[i]
    out[m:] = eids
    return np.unique(out), True


def _mates(key: np.ndarray) -> np.ndarray | None:
    """For each position, the other position with the same key (itself if alone); None if a key
    occurs more than twice."""
    nnz = len(key)
    order = np.argsort(key, kind="stable")
    s = key[order]
    starts = np.flatnonzero(np.concatenate([[True], s[1:] != s[:-1]]))
    lengths = np.diff(np.concatenate([starts, [nnz]]))
    if lengths.max(initial=0) > 2:
        return None
    mate = np.arange(nnz, dtype=np.int64)
    two = starts[lengths == 2]
    mate[order[two]] = order[two + 1]
    mate[order[two + 1]] = order[two]
    return mate


def _edge_weights(
    dicts: np.ndarray, once: np.ndarray, row: np.ndarray, col: np.ndarray, nodes: list, weight: str
) -> np.ndarray:
    """The weight of each edge (the adjacency entries marked ``once``, from row to col);
    raises PlanError naming the edges whose weight is missing, not a number, NaN or negative."""
    chosen = dicts[once]
    try:
        w = np.fromiter(map(operator.itemgetter(weight), chosen), np.float64, count=len(row))
    except (KeyError, TypeError, ValueError):
        w = None
    if w is not None and not np.any(np.isnan(w) | (w < 0)):
        return w
    w = np.empty(len(row))
    problems = []
    for i, d in enumerate(dicts[once]):
        x = d.get(weight)
        try:
            w[i] = float(x)
        except (TypeError, ValueError):
            what = "no" if x is None else f"a non-numeric ({x!r})"
            problems.append(f"({nodes[row[i]]!r}, {nodes[col[i]]!r}) has {what} {weight!r}")
            continue
        if not w[i] >= 0:  # NaN and negatives
            problems.append(f"({nodes[row[i]]!r}, {nodes[col[i]]!r}) has {weight!r} = {x!r}")
    if not problems:
        return w
    raise PlanError(
        f"steiner_tree: {len(problems)} edge(s) without a usable {weight!r}: "
        f"{_listing(problems, str)}; every edge needs a number ≥ 0 (inf marks an unusable edge), "
        f"or pass weight= the name of the attribute that holds the cost"
    )


def _listing(items: list, fmt=repr) -> str:
    shown = ", ".join(map(fmt, items[:_MAX_LISTED]))
    more = len(items) - _MAX_LISTED
    return shown + (f" and {more} more" if more > 0 else "")


def _to_nx(G: nx.Graph, net: _Net, tree: np.ndarray, cost: float) -> nx.Graph:
    """The tree as a new nx.Graph with copies of G's node and edge attributes."""
    tree = np.sort(tree)
    gnode = G._node
    T = nx.Graph()
    T.graph.update(G.graph)
    # filled directly (nx.Graph's documented dict-of-dicts layout, one attribute dict shared
    # by both directions): add_edges_from hashes every label several times, slow for tuples
    tu, tv = net.eu[tree], net.ev[tree]
    ids = unique(np.concatenate([tu, tv]))
    present = net.nodes[ids].tolist()
    copy = operator.methodcaller("copy")
    T._node.update(zip(present, map(copy, map(gnode.__getitem__, present)), strict=True))
    rows = [{} for _ in present]
    T._adj.update(zip(present, rows, strict=True))
    for a, b, x, y, d in zip(
        np.searchsorted(ids, tu).tolist(),
        np.searchsorted(ids, tv).tolist(),
        net.nodes[tu].tolist(),
        net.nodes[tv].tolist(),
        map(copy, net.dicts[net.entry[tree]].tolist()),
        strict=True,
    ):
        rows[a][y] = d
        rows[b][x] = d
    T.graph["cost"] = cost
    return T


# --------------------------------------------------------------------------------------------
# spanning trees and pruning


def _mst(nv: int, a: np.ndarray, b: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Positions (into a, b, w) of a minimum spanning forest's edges over nodes 0 … nv−1.

    (a[i], b[i]) are distinct pairs with a ≠ b. scipy treats a zero weight as "no edge", so
    zeros are replaced by a positive value below every positive weight, which keeps Kruskal's
    order and therefore the optimum.
    """
    if len(a) == 0:
        return np.zeros(0, dtype=np.int64)
    lo = np.minimum(a, b).astype(np.int64)
    hi = np.maximum(a, b).astype(np.int64)
    pos = w > 0
    floor = 0.5 * float(w[pos].min()) if pos.any() else 1.0
    w2 = np.where(pos, w, floor)
    M = coo_matrix((w2, (lo, hi)), shape=(nv, nv)).tocsr()
    F = minimum_spanning_tree(M).tocoo()
    key = lo * nv + hi
    order = np.argsort(key, kind="stable")
    fk = np.minimum(F.row, F.col).astype(np.int64) * nv + np.maximum(F.row, F.col)
    return order[np.searchsorted(key, fk, sorter=order)]


def _normalize(net: _Net, is_term: np.ndarray, eids: np.ndarray, extra=None) -> np.ndarray | None:
    """MST of the subgraph induced by the nodes of ``eids`` (plus ``extra`` nodes), with
    non-terminal leaves pruned; None if that subgraph does not connect the terminals."""
    inset = np.zeros(net.n, dtype=bool)
    inset[net.eu[eids]] = True
    inset[net.ev[eids]] = True
    if extra is not None:
        inset[extra] = True
    cand = np.flatnonzero(inset[net.eu] & inset[net.ev])
    local = np.cumsum(inset) - 1
    nv = int(inset.sum())
    sel = cand[_mst(nv, local[net.eu[cand]], local[net.ev[cand]], net.ew[cand])]
    tree = _prune(net, is_term, sel)
    # a spanning tree of the kept nodes must contain every terminal
    kept = np.zeros(net.n, dtype=bool)
    kept[net.eu[tree]] = True
    kept[net.ev[tree]] = True
    if len(tree) == 0 or kept.sum() != len(tree) + 1 or not kept[is_term].all():
        return None
    return tree


def _prune(net: _Net, is_term: np.ndarray, eids: np.ndarray) -> np.ndarray:
    """Repeatedly drop edges to non-terminal leaves."""
    return np.sort(eids[prune_leaves(net.eu[eids], net.ev[eids], is_term.__getitem__)])


# --------------------------------------------------------------------------------------------
# construction


@functools.cache
def _search_kernels() -> SimpleNamespace:
    """The compiled construction, Voronoi search and local search (numba, imported on first
    use: numba is a heavy import)."""
    from telcoplan.backbone import _steiner_kernels, _steiner_search

    return SimpleNamespace(
        mehlhorn=_steiner_kernels.mehlhorn,
        voronoi=_steiner_kernels.voronoi,
        improve=_steiner_search.improve,
    )


def _raise_disconnected(net: _Net, tidx: np.ndarray, terminals: list):
    _, label = connected_components(net.A, directed=False)
    ref = terminals[0]
    lab = dict(zip(net.nodes[tidx].tolist(), label[tidx].tolist(), strict=True))
    lost = [t for t in terminals if lab[t] != lab[ref]]
    raise PlanError(
        f"steiner_tree: terminal {lost[0]!r} cannot be reached from terminal {ref!r}: they lie "
        f"in different connected components of the graph ({len(lost)} terminal(s) unreachable "
        f"from {ref!r}: {_listing(lost)}); connect the graph or drop those terminals"
    )


def _expand(net: _Net, pred: np.ndarray, x: np.ndarray, y: np.ndarray, eids: np.ndarray):
    """Edge ids of the paths source(x) → … → x — y → … → source(y) for boundary edges (x, y)
    given by their edge ids, following the shortest-path forest ``pred``."""
    starts = np.concatenate([np.asarray(x, dtype=np.int64), np.asarray(y, dtype=np.int64)])
    out, ok = _kernels().path_edges(
        pred, starts, _NO_PRED, net.ekey, net.n, np.asarray(eids, np.int64)
    )
    if not ok:
        raise AssertionError("steiner_tree: internal error, a path uses a non-edge")
    return out


# --------------------------------------------------------------------------------------------
# local search


class _KeyTree:
    """The tree's key nodes (terminals, nodes of degree ≠ 2) joined by its key paths, rooted.

    Key vertex ids are 0 … V−1 in discovery order (0 is the root, a parent's id is below its
    children's); ``tin``/``tout`` are preorder intervals (v's subtree is tin[v] ≤ t < tout[v],
    children in id order). The key path from vertex ``c`` (≠ 0) up to ``parent[c]`` has id c.
    ``kv``/``kp`` map graph nodes to their key vertex / the key path they are inside of.
    """

    def __init__(self, net: _Net, is_term: np.ndarray, tree: np.ndarray):
        # the tree as flat adjacency lists over local ids (no per-entry tuples: fast, and
        # light on the garbage collector)
        tu, tv = net.eu[tree], net.ev[tree]
        tnodes, inv = relabel(np.concatenate([tu, tv]))
        m = len(tree)
        src = inv
        dst = np.concatenate([inv[m:], inv[:m]])
        order = np.argsort(src, kind="stable")
        ptr = np.zeros(len(tnodes) + 1, dtype=np.int64)
        np.cumsum(np.bincount(src, minlength=len(tnodes)), out=ptr[1:])
        nbr = dst[order]
        eid = np.concatenate([tree, tree])[order]
        wgt = np.concatenate([net.ew[tree], net.ew[tree]])[order]
        deg = np.diff(ptr)
        is_key = (deg != 2) | is_term[tnodes]
        root = int(np.flatnonzero(is_key)[0])  # local ids follow node order: the first key node
        V, node_of, parent, depth, path_cost, eptr, eflat, iptr, iflat, tin, tout, cf, cn = (
            _kernels().key_tree(ptr, nbr, eid, wgt, is_key, root)
        )
        node_of = tnodes[node_of]
        iflat = tnodes[iflat]
        parent = parent.tolist()
        depth = depth.tolist()
        children = _Ragged(np.arange(V), np.append(cf, cf[-1] + cn[-1]), cn)
        path_inner = _Ragged(iflat, iptr)
        path_edges = _Ragged(eflat, eptr)
        node_of = node_of.tolist()
        kv = np.full(net.n, -1, dtype=np.int64)  # key vertex id of a node
        kv[node_of] = np.arange(V)
        kp = np.full(net.n, -1, dtype=np.int64)  # key path id of an inner node
        kp[iflat] = np.repeat(np.arange(V), np.diff(iptr))
        self.V = V
        self.kv, self.kp = kv, kp
        self.node_of = node_of
        self.parent = np.array(parent, dtype=np.int64)
        self.parent_l = parent
        self.depth = np.array(depth, dtype=np.int64)
        self.depth_l = depth
        self.tin = tin
        self.tout = tout
        self.children = children
        self.path_inner = path_inner
        self.path_edges = path_edges
        self.cost = path_cost
        self.is_term_vertex = is_term[node_of]
        self.pos = np.where(kv >= 0, kv, V + kp)  # position code of a tree node
        # the longest reconnection any move could use: a key path, or all key paths of a
        # non-terminal key vertex of degree >= 3
        around = self.cost.copy()  # path to the parent
        np.add.at(around, self.parent[1:], self.cost[1:])
        degree = np.bincount(self.parent[1:], minlength=V) + (np.arange(V) > 0)
        eligible = ~self.is_term_vertex & (degree >= 3)
        self.bound = float(max(self.cost.max(), around[eligible].max(initial=0.0)))
        self._up = None

    def lca(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Lowest common ancestors of key vertices, vectorized (binary lifting)."""
        if self._up is None:
            up = [self.parent.copy()]
            up[0][0] = 0
            for _ in range(max(1, int(self.depth.max()).bit_length())):
                up.append(up[-1][up[-1]])
            self._up = up
        up = self._up
        a, b = a.copy(), b.copy()
        swap = self.depth[a] < self.depth[b]
        a[swap], b[swap] = b[swap], a[swap]
        diff = self.depth[a] - self.depth[b]
        for j, table in enumerate(up):
            bit = ((diff >> j) & 1).astype(bool)
            a[bit] = table[a[bit]]
        for table in reversed(up):
            move = table[a] != table[b]
            a[move] = table[a[move]]
            b[move] = table[b[move]]
        return np.where(a == b, a, up[0][a])


@dataclass
class _Candidates:
    """Paths between two tree nodes through non-tree nodes, one per pair of key-tree positions.

    a, b: the tree nodes joined; x, y: the boundary edge (x in a's region, y in b's); e: its
    edge id; c: the path's length."""

    a: np.ndarray
    b: np.ndarray
    x: np.ndarray
    y: np.ndarray
    e: np.ndarray
    c: np.ndarray
    pred: np.ndarray  # the Voronoi forest: predecessor, distance and base of every node
    dist: np.ndarray
    base: np.ndarray

    def path_edges(self, net: _Net, i: int) -> np.ndarray:
        return _expand(net, self.pred, self.x[i : i + 1], self.y[i : i + 1], self.e[i : i + 1])


def _candidates(net: _Net, kt: _KeyTree, tree: np.ndarray) -> _Candidates:
    """Voronoi regions of the tree's nodes (one multi-source Dijkstra) and, for every pair of
    key-tree positions, the shortest path between them through one boundary edge."""
    tnodes = unique(np.concatenate([net.eu[tree], net.ev[tree]]))
    # no move can use a path as long as kt.bound: nodes that far from the tree are not reached
    dist, pred, base = dijkstra(
        net.A,
        directed=True,
        indices=tnodes,
        min_only=True,
        return_predecessors=True,
        limit=kt.bound,
    )
    bu, bv = base[net.eu], base[net.ev]
    cross = np.flatnonzero((bu != bv) & (bu >= 0) & (bv >= 0))
    c = dist[net.eu[cross]] + net.ew[cross] + dist[net.ev[cross]]
    useful = c < kt.bound  # no move can use a longer path
    cross, c = cross[useful], c[useful]
    a, b = bu[cross].astype(np.int64), bv[cross].astype(np.int64)
    # one candidate per pair of positions in the key tree (a key vertex, or a key path for an
    # inner node): candidates with the same positions serve the same moves
    pa, pb = kt.pos[a], kt.pos[b]
    pk = np.minimum(pa, pb) * (2 * kt.V) + np.maximum(pa, pb)
    keep = _first_min(pk, c)  # ties keep the edge order
    keep = keep[np.argsort(c[keep], kind="stable")]
    return _Candidates(
        a[keep],
        b[keep],
        net.eu[cross[keep]],
        net.ev[cross[keep]],
        cross[keep],
        c[keep],
        pred,
        dist,
        base.astype(np.int64),
    )


def _key_path_exchange(net, is_term, tree, kt: _KeyTree, cand: _Candidates | None, tol: float):
    """Proposals (edge ids, extra nodes): one batch of independent improving exchanges."""
    if cand is None:
        return []
    moves = _path_exchanges(kt, cand, tol)
    if moves is None:
        return []
    # reconnections through the removed path's own Voronoi region, where better
    moves = moves.or_better(_region_routes(net, kt, cand, tol), kt.V)
    return _apply_exchanges(net, kt, tree, cand.pred, moves, "key-path exchange")


def _path_exchanges(kt: _KeyTree, cand: _Candidates, tol: float) -> _Exchanges | None:
    """For each key path, the cheapest candidate path covering it, where shorter (each route:
    the candidate's boundary edge); None when no candidate covers a key path."""
    A, B, ok = _cover_ends(kt, cand.a, cand.b)
    if len(ok) == 0:
        return None
    c = cand.c[ok]  # ascending
    A, B = A[ok], B[ok]
    L = kt.lca(A, B)
    # cheapest covering candidate per key path: sweep candidates by length, union-find jumps
    best = _kernels().cover_sweep(
        A, B, L, c, kt.parent, kt.depth, float(kt.cost[1:].max()), float(tol), kt.V
    )
    # the key paths with an improving cover (the same comparisons, on the arrays at once)
    has = best >= 0
    has[has] = c[best[has]] < kt.cost[: len(best)][has] - tol
    ps = np.flatnonzero(has)
    i = best[ps]
    j = ok[i]
    return _Exchanges(
        kt.cost[ps] - c[i],
        ps,
        cand.a[j],
        cand.b[j],
        A[i],
        B[i],
        L[i],
        np.stack([cand.x[j], cand.y[j]], axis=1).ravel(),
        np.arange(0, 2 * len(j) + 1, 2),
    )


def _region_routes(net: _Net, kt: _KeyTree, cand: _Candidates, tol: float) -> _Exchanges | None:
    """Key-path exchanges through the removed key path's own Voronoi region, for all key paths
    at once (:func:`_region_exits`), as routes: the walk back from each exit node to where its
    route entered the region, and the tree nodes that each route joins."""
    found = _region_exits(net, kt, cand, tol)
    if found is None:
        return None
    up, r, best, members, entry_y, exit_y, group, total = found
    # walk each exit node's route back to the virtual source: its entry node
    entry, route, ptr = _kernels().region_routes(up, r, best, members, entry_y, exit_y)
    base = cand.base
    a, b = base[entry_y[entry]], base[exit_y[best]]
    A, B, ok = _cover_ends(kt, a, b)
    lca = kt.lca(A[ok], B[ok])
    p = group[best]
    route, ptr = _take(route, ptr, ok)
    return _Exchanges(
        kt.cost[p[ok]] - total[best[ok]], p[ok], a[ok], b[ok], A[ok], B[ok], lca, route, ptr
    )


def _region_exits(net: _Net, kt: _KeyTree, cand: _Candidates, tol: float) -> tuple | None:
    """Key-path exchanges through the removed key path's own Voronoi region (Uchoa & Werneck's
    repair), for all key paths at once.

    Removing key path p frees R_p, the nodes whose nearest tree node is an inner node of p;
    every other node keeps its nearest tree node, on one side of p or the other. Each R_p gets
    a virtual source joined to every node x of R_p that has a neighbour y outside R_p on the
    lower side (the subtree below p) at length d(y) + w(y, x). One Dijkstra run over the
    disjoint union of all R_p (edges inside each R_p only) gives every x its distance d1(x)
    from the lower side; the best route through R_p leaves it at the x of least
    d1(x) + min over neighbours y on the upper side of w(x, y) + d(y).

    Returns (the Dijkstra run's predecessors, the number r of region nodes (ids ≥ r: the
    sources), the exit node of each improving route, the region nodes' positions in the
    graph, each region node's lower-side entry neighbour and upper-side exit neighbour, each
    region node's key path, each region node's route length), or None when no route improves.
    """
    base, dist = cand.base, cand.dist
    n = net.n
    rp = np.full(n, -1, dtype=np.int64)  # the key path whose inner node is a node's base
    has = base >= 0
    rp[has] = kt.kp[base[has]]
    freed = rp.copy()  # nodes whose base goes with a key path: never an entry from outside
    # a route through x is at least 2 d(x) long (x is d(x) from every tree node): keep the x
    # that could be on a route shorter than the key path
    far = (rp >= 0) & ~(2 * dist < kt.cost[np.maximum(rp, 0)] - tol)
    rp[far] = -1
    members = np.flatnonzero(rp >= 0)
    if len(members) == 0:
        return None
    eu, ev, ew = net.eu, net.ev, net.ew
    ru, rv = rp[eu], rp[ev]
    inside = np.flatnonzero((ru >= 0) & (ru == rv))
    # edges entering a region: x in R_p, y reached and not freed by p
    e1 = (ru >= 0) & (freed[ev] != ru) & (base[ev] >= 0)
    e2 = (rv >= 0) & (freed[eu] != rv) & (base[eu] >= 0)
    X = np.concatenate([eu[e1], ev[e2]])
    Y = np.concatenate([ev[e1], eu[e2]])
    val = dist[Y] + np.concatenate([ew[e1], ew[e2]])
    P = rp[X]
    by = base[Y]
    rep = np.where(kt.kv[by] >= 0, kt.kv[by], kt.kp[by])
    lower = (kt.tin[rep] >= kt.tin[P]) & (kt.tin[rep] < kt.tout[P])  # y's side of p
    r = len(members)
    loc = np.full(n, -1, dtype=np.int64)
    loc[members] = np.arange(r)
    paths = unique(rp[members])
    slot = np.full(kt.V, -1, dtype=np.int64)
    slot[paths] = np.arange(len(paths))
    # entries from the lower side: the shortest per (region, x), from the region's source
    src = r + slot[P]
    ent = np.flatnonzero(lower)
    key = loc[X[ent]]  # each x belongs to one region
    first = ent[_first_min(key, val[ent])]
    M = csr_matrix(
        (
            np.concatenate([ew[inside], ew[inside], val[first]]),
            (
                np.concatenate([loc[eu[inside]], loc[ev[inside]], src[first]]),
                np.concatenate([loc[ev[inside]], loc[eu[inside]], loc[X[first]]]),
            ),
        ),
        shape=(r + len(paths),) * 2,
    )
    d1, p1, _ = dijkstra(
        M, directed=True, indices=r + np.arange(len(paths)), min_only=True, return_predecessors=True
    )
    entry_y = np.full(r, -1, dtype=np.int64)  # the lower-side neighbour each entry comes from
    entry_y[loc[X[first]]] = Y[first]
    # exits to the upper side: the shortest per x
    ext = np.flatnonzero(~lower)
    first = ext[_first_min(loc[X[ext]], val[ext])]
    exit_val = np.full(r, np.inf)
    exit_val[loc[X[first]]] = val[first]
    exit_y = np.full(r, -1, dtype=np.int64)
    exit_y[loc[X[first]]] = Y[first]
    total = d1[:r] + exit_val
    group = rp[members]
    best = _first_min(group, total)
    best = best[total[best] < kt.cost[group[best]] - tol]
    if len(best) == 0:
        return None
    return p1, r, best, members, entry_y, exit_y, group, total


def _region_routes_py(up, r, best, members, entry_y, exit_y):  # pragma: no cover - numba
    """For each exit node ``best[k]`` (a region member), the member where its route through the
    region enters (walking the predecessors ``up`` back to the region's source, ids ≥ ``r``)
    and the route as graph nodes: entry's lower-side neighbour, entry, …, exit, exit's
    upper-side neighbour (flat, with pointers)."""
    entry = np.empty(len(best), dtype=np.int64)
    ptr = np.zeros(len(best) + 1, dtype=np.int64)
    size = 0
    for k in range(len(best)):
        node, steps = best[k], 1
        while up[node] < r:
            node = up[node]
            steps += 1
        entry[k] = node
        size += steps + 2
        ptr[k + 1] = size
    route = np.empty(size, dtype=np.int64)
    for k in range(len(best)):
        at = ptr[k + 1] - 1
        route[ptr[k]] = entry_y[entry[k]]
        route[at] = exit_y[best[k]]
        node = best[k]
        at -= 1
        route[at] = members[node]
        while up[node] < r:
            node = up[node]
            at -= 1
            route[at] = members[node]
    return entry, route, ptr


def _take(flat: np.ndarray, ptr: np.ndarray, items: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The lists ``items`` of lists stored flat (item i: ``flat[ptr[i]:ptr[i + 1]]``), flat."""
    items = np.asarray(items, dtype=np.int64)
    lo, size = ptr[items], ptr[items + 1] - ptr[items]
    out = np.zeros(len(items) + 1, dtype=np.int64)
    np.cumsum(size, out=out[1:])
    at = np.repeat(lo - out[:-1], size) + np.arange(out[-1])
    return flat[at], out


@dataclass(frozen=True)
class _Exchanges:
    """Key-path exchanges: replace key path p[i] by a route of gain[i] less weight between tree
    nodes a[i] and b[i] (key vertices A[i] and B[i] are where the tree path between them leaves
    a's and b's key paths; lca[i] is their lowest common ancestor). Route i is the nodes
    ``route[ptr[i]:ptr[i + 1]]`` (consecutive ones joined by edges), from its first and last
    node along the Voronoi forest to the tree."""

    gain: np.ndarray
    p: np.ndarray
    a: np.ndarray
    b: np.ndarray
    A: np.ndarray
    B: np.ndarray
    lca: np.ndarray
    route: np.ndarray
    ptr: np.ndarray

    def __len__(self) -> int:
        return len(self.p)

    def or_better(self, other: _Exchanges | None, V: int) -> _Exchanges:
        """These exchanges (one per key path), each replaced by the one of ``other`` for the
        same key path when that gains more; with ``other``'s for the key paths these lack."""
        if other is None or not len(other):
            return self
        at = np.full(V, -1, dtype=np.int64)
        at[self.p] = np.arange(len(self))
        mine = at[other.p]
        has = mine >= 0
        take = ~has
        take[has] = other.gain[has] > self.gain[mine[has]]
        kept = np.ones(len(self), dtype=bool)
        kept[mine[take & (mine >= 0)]] = False
        a, b = np.flatnonzero(kept), np.flatnonzero(take)
        route_a, ptr_a = _take(self.route, self.ptr, a)
        route_b, ptr_b = _take(other.route, other.ptr, b)
        join = [getattr(self, f)[a] for f in ("gain", "p", "a", "b", "A", "B", "lca")]
        join = [
            np.concatenate([x, getattr(other, f)[b]])
            for x, f in zip(join, ("gain", "p", "a", "b", "A", "B", "lca"), strict=True)
        ]
        return _Exchanges(
            *join,
            np.concatenate([route_a, route_b]),
            np.concatenate([ptr_a, ptr_b[1:] + ptr_a[-1]]),
        )


def _cover_ends(kt: _KeyTree, a: np.ndarray, b: np.ndarray):
    """For paths joining tree nodes a[i] and b[i]: the key vertices between which they cover
    key paths, and the positions of those covering at least one."""
    ka, kb, pa, pb = kt.kv[a], kt.kv[b], kt.kp[a], kt.kp[b]
    same = (pa >= 0) & (pa == pb)
    rep_a = np.where(ka >= 0, ka, pa)  # key vertex, or the lower end of the inner node's path
    rep_b = np.where(kb >= 0, kb, pb)
    A = _effective_end(kt, ka, pa, rep_b)
    B = _effective_end(kt, kb, pb, rep_a)
    return A, B, np.flatnonzero(~same & (A != B))


def _apply_exchanges(
    net: _Net, kt: _KeyTree, tree: np.ndarray, pred: np.ndarray, moves: _Exchanges, what: str
):
    """The tree after every exchange of ``moves`` (best first) that no earlier accepted one
    conflicts with: no new path may cover a key path removed before it (the exchange matrix
    is then triangular, so the result is a tree: a basis exchange in the graphic matroid of the
    key tree), and no new path may end inside a removed key path."""
    if not len(moves):
        return []
    order = np.lexsort((moves.p, -moves.gain))  # best first, ties by key path
    inner = kt.path_inner
    accepted = np.flatnonzero(
        _kernels().accept(
            order, moves.p, moves.a, moves.b, moves.A, moves.B, moves.lca, inner.flat,
            inner.ptr, kt.parent, net.n, kt.V,
        )
    )  # fmt: skip
    drop, _ = _take(kt.path_edges.flat, kt.path_edges.ptr, moves.p[accepted])
    route, ptr = _take(moves.route, moves.ptr, accepted)
    step = np.ones(len(route), dtype=bool)  # consecutive nodes of one route: an edge
    step[ptr[1:] - 1] = False
    step = np.flatnonzero(step[:-1]) if len(route) else np.zeros(0, dtype=np.int64)
    eids = net.edge_ids(route[step], route[step + 1])
    add = _expand(net, pred, route[ptr[:-1]], route[ptr[1:] - 1], eids)
    keep = setdiff(tree, drop)
    log.debug("%s: %d of %d improving exchange(s) applied", what, len(accepted), len(moves))
    return [(unique(np.concatenate([keep, add])), None)]


def _accept_py(order, p, a, b, A, B, lca, iflat, iptr, parent, n, V):  # pragma: no cover - numba
    """Which exchanges :func:`_apply_exchanges` accepts, taken in ``order``: not ending at a
    node removed before, not removing a node where an earlier one ends, not covering a key path
    removed before (walking up from A and B to lca)."""
    removed_path = np.zeros(V, dtype=np.bool_)
    removed_node = np.zeros(n, dtype=np.bool_)
    end = np.zeros(n, dtype=np.bool_)
    accepted = np.zeros(len(p), dtype=np.bool_)
    for k in order:
        if removed_node[a[k]] or removed_node[b[k]]:
            continue
        clash = False
        for t in range(iptr[p[k]], iptr[p[k] + 1]):
            clash = clash or end[iflat[t]]
        if clash:
            continue
        covered = False
        for s in (A[k], B[k]):
            while s != lca[k] and not covered:
                covered = removed_path[s]
                s = parent[s]
        if covered:
            continue
        removed_path[p[k]] = True
        for t in range(iptr[p[k]], iptr[p[k] + 1]):
            removed_node[iflat[t]] = True
        end[a[k]] = True
        end[b[k]] = True
        accepted[k] = True
    return accepted


def _effective_end(kt: _KeyTree, k: np.ndarray, p: np.ndarray, rep_other: np.ndarray):
    """The key vertex through which the tree path from a node (key vertex k, or inner node of
    key path p) leaves towards the other end (represented by key vertex rep_other)."""
    pp = np.maximum(p, 0)
    inside = (kt.tin[pp] <= kt.tin[rep_other]) & (kt.tin[rep_other] < kt.tout[pp])
    return np.where(k >= 0, k, np.where(inside, pp, kt.parent[pp]))


def _key_vertex_elimination(net, is_term, tree, kt: _KeyTree, cand: _Candidates | None, tol: float):
    """Proposals: a batch of eliminations of non-adjacent key vertices, then the best alone."""
    if cand is None:
        return []
    verts = [
        v for v in range(kt.V) if not kt.is_term_vertex[v] and len(kt.children[v]) + (v != 0) >= 3
    ]
    if not verts:
        return []
    ka, kb, pa, pb = kt.kv[cand.a], kt.kv[cand.b], kt.kp[cand.a], kt.kp[cand.b]
    rep_a = np.where(ka >= 0, ka, pa)
    rep_b = np.where(kb >= 0, kb, pb)
    tin_a, tin_b = kt.tin[rep_a], kt.tin[rep_b]
    c = cand.c
    moves = []
    par_pa = np.where(pa >= 0, kt.parent[np.maximum(pa, 0)], -1)
    par_pb = np.where(pb >= 0, kt.parent[np.maximum(pb, 0)], -1)
    for v in verts:
        kids = kt.children[v]
        removed_cost = float(kt.cost[kids].sum()) + (float(kt.cost[v]) if v else 0.0)
        nparts = len(kids) + (v != 0)
        if c.size == 0 or c[0] * (nparts - 1) >= removed_cost - tol:
            continue
        m = int(np.searchsorted(c, removed_cost - tol))
        la = _parts(kt, v, kids, ka[:m], pa[:m], par_pa[:m], tin_a[:m])
        lb = _parts(kt, v, kids, kb[:m], pb[:m], par_pb[:m], tin_b[:m])
        use = np.flatnonzero((la >= 0) & (lb >= 0) & (la != lb))
        picked = _small_kruskal(nparts, la[use], lb[use])
        if len(picked) < nparts - 1:
            continue
        sel = use[picked]
        new_cost = float(c[sel].sum())
        if new_cost < removed_cost - tol:
            moves.append((removed_cost - new_cost, v, sel))
    if not moves:
        return []
    moves.sort(key=lambda m: (-m[0], m[1]))
    touched: set[int] = set()
    batch = []
    for gain, v, sel in moves:
        region = {v, *kt.children[v]} | ({int(kt.parent[v])} if v else set())
        if region & touched:
            continue
        touched |= region
        batch.append((gain, v, sel))
    log.debug("key-vertex elimination: %d candidate(s), %d in batch", len(moves), len(batch))
    out = [(_eliminate(net, kt, cand, tree, batch), None)]
    if len(batch) > 1:
        out.append((_eliminate(net, kt, cand, tree, batch[:1]), None))
    return out


def _parts(kt: _KeyTree, v: int, kids: list[int], k, p, par_p, t) -> np.ndarray:
    """Which part of the tree without key vertex v (and its key paths) each candidate end
    lies in: i for the subtree of kids[i], len(kids) for the part above v, −1 if removed.
    The end is key vertex k, or an inner node of key path p (whose upper end is par_p),
    and t is the preorder number of k or of p's lower end."""
    inside = (t >= kt.tin[v]) & (t < kt.tout[v])
    part = np.where(inside, np.searchsorted(kt.tin[kids], t, side="right") - 1, len(kids))
    # v itself and the inner nodes of its key paths (path v, and the paths to its children)
    gone = (k == v) | (p == v) | (par_p == v)
    return np.where(gone, -1, part)


def _eliminate(net, kt, cand, tree, batch):
    drop: list[int] = []
    add = []
    for _, v, sel in batch:
        for p in (*kt.children[v], *((v,) if v else ())):
            drop.extend(kt.path_edges[p])
        add.extend(cand.path_edges(net, int(i)) for i in sel)
    keep = setdiff(tree, np.array(drop, dtype=np.int64))
    return unique(np.concatenate([keep, *add]))


def _small_kruskal(nv: int, a: np.ndarray, b: np.ndarray) -> list[int]:
    """Kruskal over edges already sorted by weight: positions of the chosen ones."""
    parent = list(range(nv))
    chosen = []
    for i, (x, y) in enumerate(zip(a.tolist(), b.tolist(), strict=True)):
        while parent[x] != x:
            x = parent[x]
        while parent[y] != y:
            y = parent[y]
        if x != y:
            parent[x] = y
            chosen.append(i)
            if len(chosen) == nv - 1:
                break
    return chosen


def _insertion(net, is_term, tree, kt, cand, tol: float):
    """Proposal: the tree's nodes plus every non-tree node adjacent to two or more of them."""
    intree = np.zeros(net.n, dtype=bool)
    intree[net.eu[tree]] = True
    intree[net.ev[tree]] = True
    fu = intree[net.eu] & ~intree[net.ev]
    fv = intree[net.ev] & ~intree[net.eu]
    hits = np.bincount(np.concatenate([net.ev[fu], net.eu[fv]]), minlength=net.n)
    extra = np.flatnonzero(hits >= 2)
    return [(tree, extra)] if len(extra) else []


_MOVES = (_key_path_exchange, _key_vertex_elimination, _insertion)


def _local_search(net: _Net, is_term: np.ndarray, tree: np.ndarray, max_passes: int):
    """Improve ``tree`` by passes. A pass computes the tree's key paths and candidate paths and
    tries the moves of ``_MOVES`` in order; the first that improves the tree ends the pass. The
    search stops after a pass without improvement or after ``max_passes`` passes."""
    cost = float(net.ew[tree].sum())
    passes = 0
    while passes < max_passes:
        passes += 1
        tol = 1e-9 * cost
        kt = _KeyTree(net, is_term, tree)
        cand = _candidates(net, kt, tree) if kt.V >= 2 else None
        improved = False
        for move in _MOVES:
            for proposal in move(net, is_term, tree, kt, cand, tol):
                new = _normalize(net, is_term, proposal[0], extra=proposal[1])
                if new is None:
                    continue
                new_cost = float(net.ew[new].sum())
                if new_cost < cost - tol:
                    log.debug("%s: %.6g -> %.6g", move.__name__[1:], cost, new_cost)
                    tree, cost, improved = new, new_cost, True
                    break
            if improved:
                break
        if not improved:
            break
    return tree, passes
