"""Compiled local search with restarts for :mod:`telcoplan.backbone.steiner` (numba kernels).

:func:`improve` runs the local search (key-path exchange, key-vertex elimination,
Steiner-vertex insertion and elimination) on a starting tree, then on trees built by the
shortest-path heuristic from seeded random roots with randomly perturbed weights, and returns
the cheapest tree found. Graph, tree and scratch conventions: see
:mod:`telcoplan.backbone._steiner_kernels`. Work is proportional to the tree and its
surroundings, except the restarts' constructions. See ``steiner_tree``'s Notes.
"""

from __future__ import annotations

import numba as nb
import numpy as np

from telcoplan.backbone._steiner_kernels import (
    DS,
    FREE,
    LAB,
    LS,
    PE,
    UF,
    back,
    before,
    depths,
    find,
    hpush,
    induced,
    kruskal_sorted,
    node_mask,
    normalize,
    pop,
    rand,
    replace_edges,
    rooted,
    shortest_path_heuristic,
    span,
    tree_ball,
    walk_up,
)

__all__ = ["improve"]

_jit = nb.njit(cache=True, nogil=True)  # trees are solved on threads


@_jit
def _insertion(tree, cost, tol, G, is_term, terms, iw, ctr):
    """Steiner-vertex insertion: a non-tree node v with two or more tree neighbours joins the
    tree when the MST of the tree plus v's edges to it (which is the MST of the subgraph
    induced by the tree's nodes and v, the tree being that of its own nodes), pruned, is
    cheaper. Only the tree edges on paths between v's neighbours can leave, so a candidate is
    first evaluated on those; every improving insertion is taken in turn."""
    n, indptr, nbr, eid, eu, ev, ew = G[0], G[1], G[2], G[3], G[4], G[5], G[6]
    inS = node_mask(tree, n, eu, ev)
    # candidates: non-tree neighbours of tree nodes, in node order
    ctr[0] += 1
    st = ctr[0]
    seen, ss = iw[LAB], iw[LS]
    cand = np.empty(16, np.int64)
    nc = 0
    for e in tree:
        for x in (eu[e], ev[e]):
            for q in range(indptr[x], indptr[x + 1]):
                v = nbr[q]
                if inS[v]:
                    continue
                if ss[v] != st:
                    ss[v] = st
                    seen[v] = 0
                seen[v] += 1
                if seen[v] == 2:
                    if nc == len(cand):
                        c2 = np.empty(2 * nc, np.int64)
                        c2[:nc] = cand
                        cand = c2
                    cand[nc] = v
                    nc += 1
    if nc == 0:
        return tree, cost, False
    cand = np.sort(cand[:nc])
    improved = False
    pedge, _, _, pre, _, _, _, _, _ = rooted(tree, n, eu, ev, is_term, terms[0])
    depth = depths(pre, pedge, eu, ev, n)
    kr = kruskal_sorted(tree, ew)
    star = np.empty(16, np.int64)
    sub = np.empty(16, np.int64)
    for v in cand:
        if inS[v]:
            continue
        k = 0
        for q in range(indptr[v], indptr[v + 1]):
            if inS[nbr[q]]:
                if k == len(star):
                    s2 = np.empty(2 * k, np.int64)
                    s2[:k] = star
                    star = s2
                star[k] = q
                k += 1
        if k < 2:
            continue
        # the tree edges on the paths between v's tree neighbours (by their lower end)
        ctr[0] += 1
        sm = ctr[0]
        ns = 0
        old = 0.0
        u0 = nbr[star[0]]
        for i in range(1, k):
            a, b = nbr[star[i]], u0
            while a != b:
                if depth[a] < depth[b]:
                    a, b = b, a
                if ss[a] != sm:
                    ss[a] = sm
                    if ns == len(sub):
                        s2 = np.empty(2 * ns, np.int64)
                        s2[:ns] = sub
                        sub = s2
                    sub[ns] = pedge[a]
                    ns += 1
                    old += ew[pedge[a]]
                a = eu[pedge[a]] + ev[pedge[a]] - a
        # Kruskal over those edges and v's
        both = np.empty(ns + k, np.int64)
        both[:ns] = sub[:ns]
        for i in range(k):
            both[ns + i] = eid[star[i]]
        ctr[0] += 1
        su = ctr[0]
        new = 0.0
        for e in kruskal_sorted(both, ew):
            x = find(iw, su, eu[e])
            y = find(iw, su, ev[e])
            if x != y:
                iw[UF][x] = y
                new += ew[e]
        if new >= old - tol:
            continue
        mine = np.empty(k, np.int64)
        for i in range(k):
            mine[i] = eid[star[i]]
        mine = kruskal_sorted(mine, ew)
        buf = np.empty(len(kr) + k, np.int64)
        a = b = j = 0
        while a < len(kr) or b < k:
            if b == k or (a < len(kr) and before(kr[a], mine[b], ew)):
                buf[j] = kr[a]
                a += 1
            else:
                buf[j] = mine[b]
                b += 1
            j += 1
        edges, c, ok = span(buf, j, eu, ev, ew, is_term, terms, iw, ctr)
        if ok and c < cost - tol:
            tree, cost, improved = edges, c, True
            inS = node_mask(tree, n, eu, ev)
            pedge, _, _, pre, _, _, _, _, _ = rooted(tree, n, eu, ev, is_term, terms[0])
            depth = depths(pre, pedge, eu, ev, n)
            kr = kruskal_sorted(tree, ew)
    return tree, cost, improved


@_jit
def _elimination(tree, cost, tol, G, is_term, terms, iw, ctr):
    """Steiner-vertex elimination: for each non-terminal tree node of degree ≥ 3, the pruned MST
    of the other tree nodes when it still connects the terminals (a node of degree 2 is the
    key-path exchange's business); every improving one is taken in turn."""
    n, eu, ev, ew = G[0], G[4], G[5], G[6]
    inS = node_mask(tree, n, eu, ev)
    es = induced(tree, G, iw, ctr)
    buf = np.empty(len(es), np.int64)
    improved = False
    deg = np.zeros(n, np.int64)
    for e in tree:
        deg[eu[e]] += 1
        deg[ev[e]] += 1
    for v in range(n):
        if not inS[v] or is_term[v] or deg[v] < 3:
            continue
        k = 0
        for e in es:
            if eu[e] != v and ev[e] != v:
                buf[k] = e
                k += 1
        edges, c, ok = span(buf, k, eu, ev, ew, is_term, terms, iw, ctr)
        if ok and c < cost - tol:
            tree, cost, improved = edges, c, True
            inS = node_mask(tree, n, eu, ev)
            es = induced(tree, G, iw, ctr)
            buf = np.empty(len(es), np.int64)
            deg[:] = 0
            for e in tree:
                deg[eu[e]] += 1
                deg[ev[e]] += 1
    return tree, cost, improved


@_jit
def _relax_pair(u, d, best, bu, be, src, st, lo, hi, tin, G, ls, ds, pe, dist, hk, hv, size):
    """Key-path exchange's Dijkstra step from u (at distance d). A node is free (queued) when
    it is off the tree or inside the removed path (ls == st), else on side 0 (preorder number
    in [lo, hi)) or 1; a node of the side that is not ``src`` ends a candidate path (the best
    so far: length best, from u by edge be)."""
    indptr, nbr, eid, wq = G[1], G[2], G[3], G[7]
    for q in range(indptr[u], indptr[u + 1]):
        z = nbr[q]
        nd = d + wq[q]
        if nd >= best:
            continue
        if ls[z] == st or tin[z] < 0:
            if ds[z] != st or nd < dist[z]:
                ds[z] = st
                dist[z] = nd
                pe[z] = eid[q]
                size = hpush(hk, hv, size, nd, z)
        elif (0 if lo <= tin[z] < hi else 1) != src:
            best, bu, be = nd, u, eid[q]
    return size, best, bu, be


@_jit
def _key_path_exchange(tree, cost, tol, G, is_term, terms, iw, dist, ctr):
    """Key-path exchange: remove a key path (its inner nodes become free) and join the two
    parts by the shortest path through free and non-tree nodes, found by a Dijkstra search from
    the nodes of the lower part nearer (along the tree) than the key path's length to its lower
    end; the search stops at the first node of the upper part or at the key path's length.
    Every improving exchange is applied in turn."""
    n, nbr, eu, ev, ew = G[0], G[2], G[4], G[5], G[6]
    improved = False
    drop = np.empty(n, np.int64)
    add = np.empty(n, np.int64)
    hk = np.empty(len(nbr) + 1, np.float64)  # a search pushes at most once per entry
    hv = np.empty(len(nbr) + 1, np.int64)
    ls, ds, pe = iw[LS], iw[DS], iw[PE]
    i = 0
    pedge, tin, tout, _, _, low, up, tptr, tinc = rooted(tree, n, eu, ev, is_term, terms[0])
    ball = np.empty(n, np.int64)
    sn = np.empty(n, np.int64)
    sd = np.empty(n)
    se = np.empty(n, np.int64)
    while i < len(low):
        x, y = low[i], up[i]
        i += 1
        ndrop, c = walk_up(x, y, pedge, eu, ev, ew, drop, 0)
        if c <= tol:
            continue
        ctr[0] += 1
        st = ctr[0]
        for j in range(1, ndrop):  # the path's inner nodes
            e = drop[j]
            ls[eu[e] if tin[eu[e]] > tin[ev[e]] else ev[e]] = st
        lo, hi = tin[x], tout[x]
        best = c - tol
        bu = be = -1
        nadd = 0
        for src in range(2):  # from the lower part near x, then from the upper part near y
            before = best
            if src == 0:
                nb = tree_ball(x, pedge[x], c, tptr, tinc, eu, ev, ew, ball, sn, sd, se)
            else:
                ctr[0] += 1  # a new stamp for the search: the inner nodes stay marked
                for j in range(1, ndrop):
                    e = drop[j]
                    ls[eu[e] if tin[eu[e]] > tin[ev[e]] else ev[e]] = ctr[0]
                st = ctr[0]
                nb = tree_ball(y, drop[ndrop - 1], c, tptr, tinc, eu, ev, ew, ball, sn, sd, se)
            for j in range(nb):
                z = ball[j]
                ds[z] = st
                dist[z] = 0.0
                pe[z] = -1
            size = 0
            for j in range(nb):  # the sources' edges, without queueing the sources
                size, best, bu, be = _relax_pair(
                    ball[j],
                    0.0,
                    best,
                    bu,
                    be,
                    src,
                    st,
                    lo,
                    hi,
                    tin,
                    G,
                    ls,
                    ds,
                    pe,
                    dist,
                    hk,
                    hv,
                    size,
                )
            while size > 0:
                d, u, size = pop(hk, hv, size)
                if d >= best:
                    break
                if d > dist[u]:
                    continue
                size, best, bu, be = _relax_pair(
                    u, d, best, bu, be, src, st, lo, hi, tin, G, ls, ds, pe, dist, hk, hv, size
                )
            if best < before:  # this search found the best path: record it now (pe is reused)
                add[0] = be
                nadd = back(bu, iw, eu, ev, add, 1)
        if nadd == 0:
            continue
        tree, cost, ok = replace_edges(
            tree, drop, ndrop, add, nadd, cost, tol, G, is_term, terms, iw, ctr
        )
        if ok:
            improved = True
            pedge, tin, tout, _, _, low, up, tptr, tinc = rooted(tree, n, eu, ev, is_term, terms[0])
            i -= 1  # the paths are renumbered: look at this position again
    return tree, cost, improved


@_jit
def _part(label):
    """The part of a node labelled by a Voronoi search: p for the part's own nodes, −3 − p for
    the nodes it reached."""
    return label if label >= 0 else -3 - label


@_jit
def _relax_parts(u, d, bound, st, G, lab, ls, ds, pe, dist, hk, hv, size):
    """Key-vertex elimination's Voronoi step from u (at distance d): every node that is not
    one of the parts' own is labelled with the part of its nearest one (−3 − part)."""
    indptr, nbr, eid, wq = G[1], G[2], G[3], G[7]
    pu = _part(lab[u])
    for q in range(indptr[u], indptr[u + 1]):
        z = nbr[q]
        if ls[z] == st and lab[z] >= 0:
            continue
        nd = d + wq[q]
        if nd < bound and (ds[z] != st or nd < dist[z]):
            ls[z] = st
            ds[z] = st
            dist[z] = nd
            pe[z] = eid[q]
            lab[z] = -3 - pu
            size = hpush(hk, hv, size, nd, z)
    return size


@_jit
def _key_vertex_elimination(tree, cost, tol, G, is_term, terms, iw, dist, ctr):
    """Key-vertex elimination: remove a non-terminal key node v of degree ≥ 3 with its key paths
    and join the d parts by a minimum spanning tree of the shortest paths between them found by
    one Voronoi search from the parts' nodes nearer to v along the tree than the removed weight
    (and stopped at that weight). Improving eliminations are applied in turn."""
    n, indptr, nbr, eid, eu, ev, ew, wq = G
    improved = False
    drop = np.empty(n, np.int64)
    hk = np.empty(len(nbr) + 1, np.float64)  # a search pushes at most once per entry
    hv = np.empty(len(nbr) + 1, np.int64)
    lab, ls, ds, pe = iw[LAB], iw[LS], iw[DS], iw[PE]
    pedge, tin, tout, pre, deg, low, up, tptr, tinc = rooted(tree, n, eu, ev, is_term, terms[0])
    ball = np.empty(n, np.int64)
    sn = np.empty(n, np.int64)
    sd = np.empty(n)
    se = np.empty(n, np.int64)
    j0 = 0
    while j0 < len(pre):
        v = pre[j0]
        j0 += 1
        if is_term[v] or deg[v] < 3:
            continue
        ctr[0] += 1
        st = ctr[0]
        for j in range(len(pre)):
            z = pre[j]
            ls[z] = st
            lab[z] = 0 if not (tin[v] <= j < tout[v]) else FREE
        nparts = 1
        ndrop = 0
        removed = 0.0
        for k in range(len(low)):
            if up[k] == v or low[k] == v:
                a, b = (low[k], v) if up[k] == v else (v, up[k])
                start = ndrop
                ndrop, c = walk_up(a, b, pedge, eu, ev, ew, drop, ndrop)
                removed += c
                for q in range(start + 1, ndrop):  # inner nodes
                    e = drop[q]
                    lab[eu[e] if tin[eu[e]] > tin[ev[e]] else ev[e]] = FREE
                if up[k] == v:
                    for j in range(tin[a], tout[a]):
                        lab[pre[j]] = nparts
                    nparts += 1
        # Voronoi search from every part at once
        size = 0
        for j in range(len(pre)):
            z = pre[j]
            if lab[z] >= 0:
                ds[z] = st
                dist[z] = 0.0
                pe[z] = -1
        # sources: the parts' nodes nearer to v along the tree than the removed weight
        nb = tree_ball(v, -1, removed, tptr, tinc, eu, ev, ew, ball, sn, sd, se)
        reached = np.empty(nb + 16, np.int64)
        nr = 0
        for j in range(nb):
            if lab[ball[j]] >= 0:
                reached[nr] = ball[j]
                nr += 1
        bound = removed - tol
        for r in range(nr):  # the sources' edges, without queueing the sources
            size = _relax_parts(reached[r], 0.0, bound, st, G, lab, ls, ds, pe, dist, hk, hv, size)
        while size > 0:
            d, u, size = pop(hk, hv, size)
            if d > dist[u]:
                continue
            if nr == len(reached):
                r2 = np.empty(2 * nr, np.int64)
                r2[:nr] = reached
                reached = r2
            reached[nr] = u
            nr += 1
            size = _relax_parts(u, d, bound, st, G, lab, ls, ds, pe, dist, hk, hv, size)
        # candidate connections: edges between settled nodes of different parts
        cl = np.empty(16, np.float64)
        ce = np.empty(16, np.int64)
        nc = 0
        for r in range(nr):
            u = reached[r]
            pu = _part(lab[u])
            for q in range(indptr[u], indptr[u + 1]):
                z = nbr[q]
                if ds[z] != st or ls[z] != st or lab[z] == FREE:
                    continue
                pz = _part(lab[z])
                if pz == pu:
                    continue
                tot = dist[u] + wq[q] + dist[z]
                if tot >= removed - tol:
                    continue
                if nc == len(cl):
                    cl2 = np.empty(2 * nc, np.float64)
                    ce2 = np.empty(2 * nc, np.int64)
                    cl2[:nc] = cl
                    ce2[:nc] = ce
                    cl, ce = cl2, ce2
                cl[nc] = tot
                ce[nc] = q
                nc += 1
        if nc < nparts - 1:
            continue
        srt = np.argsort(cl[:nc], kind="mergesort")
        ctr[0] += 1
        su = ctr[0]
        total = 0.0
        joined = 0
        add = np.empty(16, np.int64)
        nadd = 0
        for s in srt:
            q = ce[s]
            e = eid[q]
            z = nbr[q]
            u = eu[e] + ev[e] - z
            a = find(iw, su, _part(lab[u]))
            b = find(iw, su, _part(lab[z]))
            if a == b:
                continue
            iw[UF][a] = b
            total += cl[s]
            joined += 1
            if len(add) < nadd + 2 * n + 1:
                a2 = np.empty(len(add) + 2 * n + 16, np.int64)
                a2[:nadd] = add[:nadd]
                add = a2
            add[nadd] = e
            nadd = back(u, iw, eu, ev, add, nadd + 1)
            nadd = back(z, iw, eu, ev, add, nadd)
            if joined == nparts - 1:
                break
        if joined < nparts - 1 or total >= removed - tol:
            continue
        tree, cost, ok = replace_edges(
            tree, drop, ndrop, add, nadd, cost, tol, G, is_term, terms, iw, ctr
        )
        if ok:
            improved = True
            pedge, tin, tout, pre, deg, low, up, tptr, tinc = rooted(
                tree, n, eu, ev, is_term, terms[0]
            )
            j0 = 0
    return tree, cost, improved


@_jit
def _local_search(tree, cost, max_passes, full, G, is_term, terms, iw, dist, ctr):
    """Passes of key-path exchange, Steiner-vertex insertion and elimination, and — when those
    find nothing and ``full`` is set — key-vertex elimination (the costliest), until a pass
    improves nothing or ``max_passes`` passes: (tree, cost, passes)."""
    passes = 0
    while passes < max_passes:
        passes += 1
        tol = 1e-9 * cost
        tree, cost, a = _key_path_exchange(tree, cost, tol, G, is_term, terms, iw, dist, ctr)
        tree, cost, b = _insertion(tree, cost, tol, G, is_term, terms, iw, ctr)
        tree, cost, c = _elimination(tree, cost, tol, G, is_term, terms, iw, ctr)
        if not (a or b or c):
            if not full:
                break
            tree, cost, d = _key_vertex_elimination(
                tree, cost, tol, G, is_term, terms, iw, dist, ctr
            )
            if not d:
                break
    return tree, cost, passes


@_jit
def improve(tree, G, is_term, terms, max_passes, restarts, seed, noise):
    """The cheapest tree found by the local search from ``tree`` and from ``restarts`` trees of
    the shortest-path heuristic (random root terminal, every weight times a random factor in
    [1, 1 + noise]): (edge ids sorted, cost, passes of the first search). A restart's search
    leaves out key-vertex elimination unless its tree beats the best so far, so that each
    restart can only improve on the ones before it."""
    n, ew = G[0], G[6]
    iw = np.zeros((8, n), np.int64)
    dist = np.zeros(n)
    ctr = np.zeros(1, np.int64)
    best, bcost, ok = normalize(tree, G, is_term, terms, iw, ctr)
    if not ok:  # cannot happen for a tree spanning the terminals
        best = tree
        bcost = 0.0
        for e in tree:
            bcost += ew[e]
    best, bcost, passes = _local_search(
        best, bcost, max_passes, True, G, is_term, terms, iw, dist, ctr
    )
    state = np.full(1, np.uint64(seed) * np.uint64(0x2545F4914F6CDD1D) + np.uint64(1))
    wp = np.empty(len(ew))
    for _ in range(restarts):
        root = terms[min(len(terms) - 1, int(rand(state) * len(terms)))]
        for e in range(len(ew)):
            wp[e] = ew[e] * (1.0 + noise * rand(state))
        start = shortest_path_heuristic(root, wp, G, is_term, len(terms))
        t, c, ok = normalize(start, G, is_term, terms, iw, ctr)
        if not ok:
            continue
        t, c, _ = _local_search(t, c, max_passes, False, G, is_term, terms, iw, dist, ctr)
        if c < bcost - 1e-9 * bcost:
            t, c, _ = _local_search(t, c, max_passes, True, G, is_term, terms, iw, dist, ctr)
            best, bcost = t, c
    return best, bcost, passes
