"""The costed road graph as arrays, read once, for the plans' Steiner problems.

A build's problem (one operator alone, the joint build, a coalition) is the road graph
restricted to the edges of finite cost, plus a virtual root joined at zero cost to every node of
the build's fiber, restricted to the root's connected component. The plans used to build it as
networkx copies (three per build); here it is index arrays over one read of ``G``: the same
nodes in the same order and each node's neighbours in the order such a copy would hold them
(``G.copy()`` puts the neighbours that come earlier in the node order first, in node order, then
the later ones in ``G``'s own order), so the Steiner heuristic, whose ties follow that order,
returns the same tree.
"""

from __future__ import annotations

import ctypes
import itertools
import logging
import math
import operator
import sys
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass

import networkx as nx
import numpy as np
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import connected_components

__all__ = [
    "ROOT",
    "Build",
    "Problem",
    "RoadNetwork",
    "neighbours_by_identity",
    "object_ids",
    "prune_leaves",
    "relabel",
    "setdiff",
    "unique",
]

log = logging.getLogger(__name__)

#: The virtual root joined to every node of a build's fiber network.
ROOT = ("fiber-root",)


def unique(a) -> np.ndarray:
    """``np.unique(a)`` (the sorted distinct values), by sorting: numpy ≥ 2.3 finds the
    distinct integers of a large array by hashing, ~10x slower than a sort here."""
    a = np.asarray(a)
    if a.dtype.kind not in "biu":
        return np.unique(a)
    s = np.sort(a, axis=None)
    new = np.empty(len(s), dtype=bool)
    new[:1] = True
    np.not_equal(s[1:], s[:-1], out=new[1:])
    return s[new]


def setdiff(a, b) -> np.ndarray:
    """``np.setdiff1d(a, b)``: the sorted distinct values of ``a`` not in ``b``."""
    a = unique(a)
    return a[np.isin(a, unique(b), assume_unique=True, invert=True)]


def relabel(a) -> tuple[np.ndarray, np.ndarray]:
    """``np.unique(a, return_inverse=True)`` for non-negative integers (node positions): the
    sorted distinct values and each element's place among them, by a table as long as the
    largest value rather than by sorting."""
    a = np.asarray(a)
    if a.dtype.kind not in "iu" or not a.size or a.min() < 0:
        return np.unique(a, return_inverse=True)
    present = np.zeros(int(a.max()) + 1, dtype=bool)
    present[a] = True
    values = np.flatnonzero(present)
    place = np.cumsum(present) - 1
    return values.astype(a.dtype, copy=False), place[a]


def object_ids(objs: np.ndarray) -> np.ndarray:
    """``id()`` of every element of an object array, as uint64. In CPython an object array
    stores the elements' PyObject pointers, which are their ids: reading them back touches none
    of the objects (calling id() on each would, one cache miss per object on a big graph)."""
    n = len(objs)
    if n == 0 or sys.implementation.name != "cpython" or objs.itemsize != 8:
        return np.fromiter(map(id, objs), np.uint64, count=n)
    objs = np.ascontiguousarray(objs)
    buf = (ctypes.c_uint64 * n).from_address(objs.ctypes.data)
    return np.frombuffer(buf, dtype=np.uint64).copy()


def neighbours_by_identity(row: np.ndarray, dicts: np.ndarray, adj: dict) -> np.ndarray | None:
    """The neighbour (row) of each adjacency entry of ``G._adj`` (``adj``), the entries' rows
    ``row`` and attribute dicts ``dicts`` given in order: networkx keeps one dict per edge,
    under both of its ends, so an entry's neighbour is the row of the other entry holding the
    same dict (a self-loop's dict is held once). Pairs the dicts by identity, hashing no node
    label (slow for tuples); None when the dicts are not shared that way."""
    k = len(dicts)
    if k == 0:
        return np.zeros(0, dtype=np.int64)
    ids = object_ids(dicts)
    order = np.argsort(ids, kind="stable")
    same = ids[order][1:] == ids[order][:-1]
    if np.any(same[1:] & same[:-1]):  # a dict held three times or more
        return None
    first = np.flatnonzero(same)
    a, b = order[first], order[first + 1]
    if np.any(row[a] == row[b]):  # one dict for two edges of a node
        return None
    partner = np.arange(k)
    partner[a], partner[b] = b, a
    alone = np.flatnonzero(partner == np.arange(k)).tolist()
    labels = list(adj) if alone else []
    for e in alone:  # must be self-loops
        x = labels[row[e]]
        if adj[x].get(x) is not dicts[e]:
            return None
    return row[partner]


def prune_leaves(a: np.ndarray, b: np.ndarray, fixed: Callable) -> np.ndarray:
    """The edges (positions into ``a``, ``b``) of a forest left after repeatedly removing the
    edges to leaves; ``fixed(nodes)`` marks the nodes never removed."""
    nodes, inv = relabel(np.concatenate([a, b]))
    la, lb = inv[: len(a)], inv[len(a) :]
    keep = fixed(nodes)
    alive = np.ones(len(a), dtype=bool)
    while True:
        deg = np.bincount(la[alive], minlength=len(nodes)) + np.bincount(
            lb[alive], minlength=len(nodes)
        )
        leaf = (deg == 1) & ~keep
        drop = alive & (leaf[la] | leaf[lb])
        if not drop.any():
            return np.flatnonzero(alive)
        alive &= ~drop


@dataclass(frozen=True)
class Build:
    """One build's view of the road graph: the cost of every edge (inf: unusable) and whether
    the edge is on the build's fiber network (reaching its nodes connects a site)."""

    weight: str
    cost: np.ndarray  # float64 per edge
    fiber: np.ndarray  # bool per edge


@dataclass(frozen=True)
class Problem:
    """A build's Steiner problem: the nodes kept (positions in ``G``'s order; ``n`` is the
    root), their adjacency in CSR form, and the terminals (positions among the kept nodes)."""

    keep: np.ndarray  # int64, increasing; len(G) stands for the root
    indptr: np.ndarray
    col: np.ndarray
    weight: np.ndarray  # per adjacency entry
    edge: np.ndarray  # per adjacency entry: the edge of G (-1: a root edge)
    terminals: np.ndarray  # positions among keep
    cut_off: tuple  # terminal labels with no path to the first terminal


class RoadNetwork:
    """``G`` read once: node labels and positions, each edge's ends (u < v) and attribute dict,
    and the adjacency entries in the order a copy of ``G`` holds them (self-loops left out)."""

    def __init__(self, G: nx.Graph) -> None:
        if G.is_directed() or G.is_multigraph():
            raise nx.NetworkXNotImplemented("the backbone graph must be an undirected nx.Graph")
        self.G = G
        adj = G._adj  # networkx's documented dict-of-dicts; far faster to read than G.edges
        n = len(adj)
        self.n = n
        self.nodes = np.fromiter(adj, object, count=n)
        self.index: dict[Hashable, int] = dict(zip(self.nodes.tolist(), range(n), strict=True))
        rows = list(adj.values())
        deg = np.fromiter(map(len, rows), np.int64, count=n)
        row = np.repeat(np.arange(n, dtype=np.int64), deg)
        dicts = np.fromiter((d for r in rows for d in r.values()), object, count=len(row))
        col = neighbours_by_identity(row, dicts, adj)
        if col is None:
            index = self.index
            col = np.fromiter((index[v] for r in rows for v in r), np.int64, count=len(row))
        # the edges, each once, numbered in increasing (u, v) order
        once = row < col
        key = row[once] * n + col[once]
        order = np.argsort(key, kind="stable")
        self.key = key[order]  # u * n + v of every edge, increasing
        self.eu, self.ev = row[once][order], col[once][order]
        self.dicts = dicts[once][order]
        self.m = len(self.eu)
        # the adjacency in a copy's order: per row, earlier neighbours by position, then later
        # ones in G's order
        loop = row == col
        row, col = row[~loop], col[~loop]
        seq = np.arange(len(row))
        later = col > row
        order = np.lexsort((np.where(later, seq, col), later, row))
        self.row, self.col = row[order], col[order]
        lo, hi = np.minimum(self.row, self.col), np.maximum(self.row, self.col)
        self.edge = np.searchsorted(self.key, lo * n + hi)
        self._attributes: dict[tuple[str, float], np.ndarray] = {}
        self._objects: dict[tuple[str, object], np.ndarray] = {}
        self._carriers: tuple[np.ndarray, list[frozenset]] | None = None
        self._builds: dict[str, Build] = {}
        self._reprs: list[str] | None = None
        self._ranks: np.ndarray | None = None  # by repr (None: see _repr_ranks)
        self._labels: np.ndarray | None = None  # the nodes, then ROOT
        self._pairs: np.ndarray | None = None  # see pairs
        self._paired: np.ndarray | None = None

    # ----------------------------------------------------------------------------------------
    # edge attributes

    def attribute(self, name: str, default: float = math.inf) -> np.ndarray:
        """A numeric edge attribute as float64 (``default`` where missing or None); read once
        (``G``'s edge attributes must not change while the arrays are in use)."""
        if (name, default) not in self._attributes:
            values = [d.get(name) for d in self.dicts.tolist()]
            self._attributes[name, default] = np.array(
                [default if x is None else x for x in values], dtype=np.float64
            )
        return self._attributes[name, default]

    def objects(self, name: str, default: object = None) -> np.ndarray:
        """An edge attribute's values as an object array (``default`` where missing); read
        once."""
        if (name, default) not in self._objects:
            get = operator.methodcaller("get", name, default)
            self._objects[name, default] = np.fromiter(map(get, self.dicts), object, self.m)
        return self._objects[name, default]

    def has_fiber(self) -> np.ndarray:
        """Whether each edge carries anyone's fiber."""
        code, sets = self.carriers()
        return np.array([bool(s) for s in sets], dtype=bool)[code]

    def carriers(self) -> tuple[np.ndarray, list[frozenset]]:
        """Each edge's fiber operators, as a code into the list of distinct sets returned."""
        if self._carriers is None:
            codes: dict[frozenset, int] = {}
            sets = [d.get("fiber", frozenset()) for d in self.dicts.tolist()]
            code = np.fromiter(
                (codes.setdefault(frozenset(s), len(codes)) for s in sets), np.int64, count=self.m
            )
            self._carriers = (code, list(codes))
        return self._carriers

    def build(self, weight: str) -> Build:
        """The build of the costs ``weight`` and fiber flags ``<weight>_fiber`` set on ``G``'s
        edges (:func:`~telcoplan.backbone.graph.operator_costs`); without flags, any fiber."""
        if weight in self._builds:
            return self._builds[weight]
        cost = self.attribute(weight)
        flag = f"{weight}_fiber"
        fiber = np.fromiter(
            (bool(d.get(flag, bool(d.get("fiber")))) for d in self.dicts.tolist()), bool, self.m
        )
        self._builds[weight] = Build(weight, cost, fiber)
        return self._builds[weight]

    def coalition(self, members: frozenset, own: float, lease: float | None) -> Build:
        """The build of a coalition of operators, as
        :func:`~telcoplan.backbone.graph.coalition_cost` and
        :func:`~telcoplan.backbone.graph.mark_fiber_network` cost and mark each edge."""
        code, sets = self.carriers()
        trench = self.attribute("trench_cost")
        ours = np.array([bool(s & members) for s in sets], dtype=bool)[code]
        any_fiber = np.array([bool(s) for s in sets], dtype=bool)[code]
        leased = any_fiber & ~ours & (lease is not None)
        cost = trench.copy()
        cost[ours] = trench[ours] * own
        if lease is not None:
            cost[leased] = trench[leased] * min(lease, 1.0)
        fiber = ours if ours.any() else any_fiber & (lease is not None)
        return Build("cost_coalition", cost, fiber)

    # ----------------------------------------------------------------------------------------
    # components and problems

    def components(self) -> np.ndarray:
        """Connected component label of every node of ``G`` (all its edges)."""
        A = csr_matrix(
            (np.ones(len(self.row), np.int8), (self.row, self.col)), shape=(self.n, self.n)
        )
        return connected_components(A, directed=False)[1]

    def fiber_nodes(self, build: Build) -> np.ndarray:
        """Positions of the nodes of the build's usable fiber edges (increasing)."""
        sel = build.fiber & np.isfinite(build.cost)
        return unique(np.concatenate([self.eu[sel], self.ev[sel]]))

    def problem(
        self, build: Build, terminals: Sequence[Hashable], positions: np.ndarray | None = None
    ) -> Problem:
        """The build's Steiner problem for the given terminals (``ROOT`` first when the build
        has fiber): the usable edges (finite cost), the root's zero-cost edges to the fiber
        nodes, kept within the first terminal's connected component. ``positions``: the
        terminals' positions (``n``: the root) when the caller has them (no label look-ups)."""
        n = self.n
        usable = np.isfinite(build.cost)
        attach = self.fiber_nodes(build)
        has_root = len(attach) > 0
        # the usable graph with the root (position n)
        ru = np.concatenate([self.eu[usable], attach])
        rv = np.concatenate([self.ev[usable], np.full(len(attach), n)])
        in_graph = np.zeros(n + 1, dtype=bool)
        in_graph[ru] = True
        in_graph[rv] = True
        if positions is None:
            positions = [n if t == ROOT else self.index[t] for t in terminals]
        tpos = np.asarray(positions, dtype=np.int64)
        if len(tpos) == 0 or not in_graph[tpos[0]]:
            reach = np.zeros(n + 1, dtype=bool)
        else:
            A = csr_matrix((np.ones(len(ru), np.int8), (ru, rv)), shape=(n + 1, n + 1))
            label = connected_components(A, directed=False)[1]
            reach = label == label[tpos[0]]
            reach &= in_graph
        cut_off = tuple(terminals[i] for i in np.flatnonzero(~reach[tpos]).tolist())
        keep = np.flatnonzero(reach)
        local = np.cumsum(reach) - 1
        # road entries in the copy's order, then each fiber node's root entry (the root is the
        # last node: at the end of their rows), then the root's row (by position)
        sel = usable[self.edge] & reach[self.row] & reach[self.col]
        attach = attach[reach[attach]] if has_root else attach
        rows = np.concatenate([self.row[sel], attach, np.full(len(attach), n)])
        cols = np.concatenate([self.col[sel], np.full(len(attach), n), attach])
        edge = np.concatenate([self.edge[sel], np.full(2 * len(attach), -1)])
        order = np.argsort(local[rows], kind="stable")
        rows, cols, edge = local[rows][order], local[cols][order], edge[order]
        weight = np.where(edge >= 0, build.cost[np.maximum(edge, 0)], 0.0)
        indptr = np.zeros(len(keep) + 1, dtype=np.int64)
        np.cumsum(np.bincount(rows, minlength=len(keep)), out=indptr[1:])
        kept_terms = tpos[reach[tpos]]
        return Problem(keep, indptr, cols, weight, edge, local[kept_terms], cut_off)

    def edge_at(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Edge numbers of node pairs given by position (either order; ``-1``: not an edge,
        e.g. a root edge)."""
        a, b = np.asarray(a, np.int64), np.asarray(b, np.int64)
        if self.m == 0:
            return np.full(len(a), -1, dtype=np.int64)
        key = np.minimum(a, b) * self.n + np.maximum(a, b)
        pos = np.minimum(np.searchsorted(self.key, key), self.m - 1)
        return np.where((self.key[pos] == key) & (np.maximum(a, b) < self.n), pos, -1)

    def position(self, label: Hashable) -> int:
        """Position of a node label (``ROOT``: ``n``)."""
        return self.n if label == ROOT else self.index[label]

    def repr_order(self, a: np.ndarray, b: np.ndarray | None = None) -> np.ndarray:
        """The order of nodes (``a``), or node pairs ``(a, b)``, sorted by their ``repr``
        (the plans list edges and nodes in that order; ties keep their order).

        The reprs are sorted once: when no node's repr is a proper prefix of another's (always
        so for tuples, the graph's nodes), a pair's repr ``(ra, rb)`` sorts as the pair of the
        nodes' ranks, so the order is a sort of rank arrays; otherwise the reprs themselves
        are sorted."""
        rank = self._repr_ranks()
        if rank is not None:
            key = rank[np.asarray(a, np.int64)]
            if b is not None:  # (rank a, rank b) as one number: ranks are at most n
                key = key * (self.n + 1) + rank[np.asarray(b, np.int64)]
            return np.argsort(key, kind="stable")
        r = self._reprs
        if b is None:
            keys = [r[i] for i in np.asarray(a).tolist()]
        else:
            keys = [
                f"({r[i]}, {r[j]})"
                for i, j in zip(np.asarray(a).tolist(), np.asarray(b).tolist(), strict=True)
            ]
        return np.array(sorted(range(len(keys)), key=keys.__getitem__), dtype=np.int64)

    def _repr_ranks(self) -> np.ndarray | None:
        """Each node's rank (``n``: the root) among the nodes' reprs (equal reprs, equal
        ranks), or None when a repr is a proper prefix of another (pairs then sort apart from
        their ranks' order)."""
        if self._reprs is None:
            self._reprs = [repr(x) for x in self.nodes.tolist()] + [repr(ROOT)]
            r = self._reprs
            order = sorted(range(len(r)), key=r.__getitem__)
            s = [r[i] for i in order]
            # a prefix of a later repr is one of the one just after it (sorted strings)
            if any(t != p and t.startswith(p) for p, t in itertools.pairwise(s)):
                return None
            new = np.ones(len(s), dtype=bool)
            new[1:] = [t != p for p, t in itertools.pairwise(s)]
            rank = np.empty(len(s), dtype=np.int64)
            rank[np.array(order, dtype=np.int64)] = np.cumsum(new) - 1
            self._ranks = rank
        return self._ranks

    def labels(self, positions: np.ndarray) -> list:
        """Node labels of positions (``n``: the root)."""
        return self.label_array(positions).tolist()

    def pairs(self, u: np.ndarray, v: np.ndarray, eid: np.ndarray | None = None) -> tuple:
        """The node pairs ``(label u[i], label v[i])`` of edges given by position (``eid``:
        their edge numbers, when known), as a tuple. Each edge's pair, in each direction, is
        made once and shared by every call (the plans' trees list many of the same edges, and
        making the tuples is most of the cost)."""
        u, v = np.asarray(u, np.int64), np.asarray(v, np.int64)
        if self._pairs is None:
            self._pairs = np.empty(2 * self.m, dtype=object)  # by edge, then reversed
            self._paired = np.zeros(2 * self.m, dtype=bool)
        eid = self.edge_at(u, v) if eid is None else np.asarray(eid, np.int64)
        if np.any(eid < 0):
            raise ValueError("RoadNetwork.pairs: a pair of positions is not an edge")
        at = eid + self.m * (u > v)
        missing = np.flatnonzero(~self._paired[at])
        if len(missing):
            _, first = np.unique(at[missing], return_index=True)
            pick = missing[first]
            made = zip(self.labels(u[pick]), self.labels(v[pick]), strict=True)
            self._pairs[at[pick]] = np.fromiter(made, object, count=len(pick))
            self._paired[at[pick]] = True
        return tuple(self._pairs[at].tolist())

    def label_array(self, positions: np.ndarray) -> np.ndarray:
        """Node labels of positions (``n``: the root), as an object array."""
        if self._labels is None:
            self._labels = np.append(self.nodes, np.empty(1, dtype=object))
            self._labels[-1] = ROOT
        return self._labels[np.asarray(positions, dtype=np.int64)]

    def subgraph(self, build: Build, problem: Problem) -> nx.Graph:
        """The problem as a networkx graph (for a Steiner solver given as a function): the kept
        nodes with ``G``'s attributes, the edges with ``G``'s attributes and the build's cost
        under ``build.weight``; the root's edges are ``virtual``."""
        H = nx.Graph(**self.G.graph)
        gnode = self.G._node
        for label in self.labels(problem.keep):
            attrs = (
                {"x": math.nan, "y": math.nan, "kind": "root"} if label == ROOT else gnode[label]
            )
            H.add_node(label, **attrs)
        labels = self.labels(problem.keep)
        row = np.repeat(np.arange(len(problem.keep)), np.diff(problem.indptr))
        for a, b, e in zip(row.tolist(), problem.col.tolist(), problem.edge.tolist(), strict=True):
            if a > b:
                continue
            if e < 0:
                attrs = {build.weight: 0.0, "length_m": 0.0, "virtual": True}
            else:
                attrs = {**self.dicts[e], build.weight: float(build.cost[e])}
            H.add_edge(labels[a], labels[b], **attrs)
        return H
