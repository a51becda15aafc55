"""The array local search's key-path exchange as it was before it was vectorised (issue 12):
one Python object per proposed exchange, accepted one by one. Plain, slow Python: the tests
require the vectorised exchange to give the same trees, edge for edge."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import partial

import numpy as np

from telcoplan.backbone import steiner as st
from telcoplan.backbone._network import setdiff, unique

log = logging.getLogger(__name__)


def key_path_exchange(net, is_term, tree, kt, cand, tol: float):
    """Proposals (edge ids, extra nodes): one batch of independent improving exchanges."""
    if cand is None:
        return []
    found = st._path_exchanges(kt, cand, tol)
    if found is None:
        return []
    xy = found.route.reshape(-1, 2)  # each candidate's boundary edge
    moves = [
        _Exchange(gain, p, a, b, ka, kb, lca, partial(_candidate_edges, net, cand.pred, xy[k]))
        for k, (gain, p, a, b, ka, kb, lca) in enumerate(
            zip(
                *(getattr(found, f).tolist() for f in ("gain", "p", "a", "b", "A", "B", "lca")),
                strict=True,
            )
        )
    ]
    # reconnections through the removed path's own Voronoi region, where better
    better = {m.p: m for m in moves}
    for m in _region_routes(net, kt, cand, tol):
        if m.p not in better or m.gain > better[m.p].gain:
            better[m.p] = m
    return _apply_exchanges(kt, tree, list(better.values()), "key-path exchange")


def _region_routes(net, kt, cand, tol: float) -> list:
    """Key-path exchanges through the removed key path's own Voronoi region: the package's
    search (:func:`~telcoplan.backbone.steiner._region_exits`), then one exchange per route."""
    found = st._region_exits(net, kt, cand, tol)
    if found is None:
        return []
    p1, r, best, members, entry_y, exit_y, group, total = found
    base = cand.base
    # walk each exit node's route back to the virtual source: its entry node
    walks = []
    ends = np.empty((len(best), 2), dtype=np.int64)
    up = p1.tolist()
    for k, i in enumerate(best.tolist()):
        node, walk = i, [i]
        while up[node] < r:
            node = up[node]
            walk.append(node)
        ends[k] = entry_y[node], exit_y[i]
        walks.append(walk)
    a, b = base[ends[:, 0]], base[ends[:, 1]]
    A, B, ok = st._cover_ends(kt, a, b)
    lca = kt.lca(A[ok], B[ok])
    p = group[best]
    gain, p, a, b, A, B, lca = (x.tolist() for x in (kt.cost[p] - total[best], p, a, b, A, B, lca))
    return [
        _Exchange(
            gain[k],
            p[k],
            a[k],
            b[k],
            A[k],
            B[k],
            lca[j],
            partial(_region_route_edges, net, cand.pred, members[walks[k]], ends[k]),
        )
        for j, k in enumerate(ok.tolist())
    ]


def _candidate_edges(net, pred, xy: np.ndarray) -> np.ndarray:
    """Edge ids of a candidate path: tree ← … ← x — y → … → tree."""
    return st._expand(net, pred, xy[:1], xy[1:], net.edge_ids(xy[:1], xy[1:]))


def _region_route_edges(net, pred, walk: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Edge ids of a route through a region: tree ← … ← y1 — x1 … x — y2 → … → tree, where
    ``walk`` is x … x1 and ``ends`` is (y1, y2)."""
    nodes = walk.tolist()
    y1, y2 = ends.tolist()
    us = [*nodes, nodes[0]]
    vs = [*nodes[1:], y1, y2]
    eids = net.edge_ids(np.array(us, dtype=np.int64), np.array(vs, dtype=np.int64))
    return st._expand(net, pred, ends[:1], ends[1:], eids)


@dataclass(frozen=True)
class _Exchange:
    """Replace key path p by a path of ``gain`` less weight between tree nodes a and b (key
    vertices A and B are where the tree path between them leaves a's and b's key paths; lca is
    their lowest common ancestor); ``edges()`` gives the new path's edge ids."""

    gain: float
    p: int
    a: int
    b: int
    A: int
    B: int
    lca: int
    edges: object


def _apply_exchanges(kt, tree: np.ndarray, moves: list[_Exchange], what: str):
    """The tree after every exchange of ``moves`` (best first) that no earlier accepted one
    conflicts with: no new path may cover a key path removed before it (the exchange matrix
    is then triangular, so the result is a tree: a basis exchange in the graphic matroid of the
    key tree), and no new path may end inside a removed key path."""
    if not moves:
        return []
    moves = sorted(moves, key=lambda m: (-m.gain, m.p))
    par = kt.parent_l
    removed_paths: set[int] = set()
    removed_nodes: set[int] = set()
    ends: set[int] = set()
    add: list[np.ndarray] = []
    drop: list[int] = []
    for m in moves:
        inner = kt.path_inner[m.p]
        if m.a in removed_nodes or m.b in removed_nodes or any(x in ends for x in inner):
            continue
        covered = False
        for s in (m.A, m.B):
            while s != m.lca and not covered:
                covered = s in removed_paths
                s = par[s]
        if covered:
            continue
        removed_paths.add(m.p)
        removed_nodes.update(inner)
        ends.update((m.a, m.b))
        drop.extend(kt.path_edges[m.p])
        add.append(m.edges())
    keep = setdiff(tree, np.array(drop, dtype=np.int64))
    log.debug("%s: %d of %d improving exchange(s) applied", what, len(add), len(moves))
    return [(unique(np.concatenate([keep, *add])), None)]
