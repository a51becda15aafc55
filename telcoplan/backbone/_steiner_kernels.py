"""Numba kernels shared by :mod:`telcoplan.backbone.steiner` and its compiled local search.

The graph is given as a tuple ``G = (n, indptr, nbr, eid, eu, ev, ew, wq)``: edges
``(eu[e], ev[e], ew[e])`` and a CSR adjacency whose entries carry the neighbour, the edge id
and the weight (``wq[q] == ew[eid[q]]``). A tree is a sorted array of edge ids; "Kruskal order"
is by weight, then edge id. Here: binary heaps, union-find, minimum spanning trees with pruning,
the rooted tree and its key paths, the constructions (Mehlhorn's, the shortest-path heuristic)
and Voronoi searches.

Scratch space: ``iw``, an int64 matrix of 8 rows of n columns (rows named below) and ``ctr``, a
one-element stamp counter. A row paired with a stamp row is valid only where the stamp equals
the current stamp, so nothing is cleared between uses. Every kernel is deterministic: ties
follow edge ids and node positions, random numbers come from a seeded splitmix64 stream.
"""

from __future__ import annotations

import numba as nb
import numpy as np

__all__ = [
    "DS",
    "FREE",
    "LAB",
    "LS",
    "PE",
    "PL",
    "PLS",
    "UF",
    "UFS",
    "back",
    "before",
    "depths",
    "find",
    "hpush",
    "induced",
    "kruskal_sorted",
    "mehlhorn",
    "node_mask",
    "normalize",
    "pop",
    "prune",
    "push",
    "rand",
    "replace_edges",
    "rooted",
    "shortest_path_heuristic",
    "span",
    "tree_ball",
    "voronoi",
    "walk_up",
]

_jit = nb.njit(cache=True, nogil=True)  # trees are solved on threads

# rows of the scratch matrix iw
UF, UFS, DS, PE, LAB, LS, PL, PLS = range(8)
FREE = -1  # label of a node a search may pass through


@_jit
def rand(state):
    """A float in [0, 1) from the splitmix64 stream ``state`` (a uint64 array of length 1)."""
    state[0] += np.uint64(0x9E3779B97F4A7C15)
    z = state[0]
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    z = z ^ (z >> np.uint64(31))
    return float(z >> np.uint64(11)) * (1.0 / 9007199254740992.0)


@_jit
def push(hk, hv, size, key, val):
    """Push (key, val) on the binary min-heap hk/hv of ``size`` items; grows when full."""
    if size == len(hk):
        k2 = np.empty(2 * size + 16, np.float64)
        v2 = np.empty(2 * size + 16, np.int64)
        k2[:size] = hk[:size]
        v2[:size] = hv[:size]
        hk, hv = k2, v2
    return hk, hv, hpush(hk, hv, size, key, val)


@_jit
def hpush(hk, hv, size, key, val):
    """Push on a heap whose capacity the caller guarantees; returns the new size."""
    i = size
    while i > 0:
        p = (i - 1) >> 1
        if hk[p] <= key:
            break
        hk[i] = hk[p]
        hv[i] = hv[p]
        i = p
    hk[i] = key
    hv[i] = val
    return size + 1


@_jit
def pop(hk, hv, size):
    """(key, val, new size) of the heap's least item, removed."""
    key, val = hk[0], hv[0]
    size -= 1
    if size > 0:
        lk, lv = hk[size], hv[size]
        i = 0
        while True:
            c = 2 * i + 1
            if c >= size:
                break
            if c + 1 < size and hk[c + 1] < hk[c]:
                c += 1
            if lk <= hk[c]:
                break
            hk[i] = hk[c]
            hv[i] = hv[c]
            i = c
        hk[i] = lk
        hv[i] = lv
    return key, val, size


@_jit
def find(iw, st, x):
    """Union-find root of x in rows UF/UFS (lazily initialised under stamp st)."""
    uf = iw[UF]
    ufs = iw[UFS]
    if ufs[x] != st:
        ufs[x] = st
        uf[x] = x
        return x
    r = x
    while uf[r] != r:
        r = uf[r]
    while uf[x] != r:
        nxt = uf[x]
        uf[x] = r
        x = nxt
    return r


@_jit
def prune(edges, eu, ev, is_term, iw, ctr):
    """The edges left after repeatedly removing non-terminal leaves (and their edge)."""
    m = len(edges)
    if m == 0:
        return edges
    ctr[0] += 1
    st = ctr[0]
    loc = iw[PL]
    ls = iw[PLS]
    nodes = np.empty(2 * m, np.int64)
    k = 0
    for i in range(m):
        for x in (eu[edges[i]], ev[edges[i]]):
            if ls[x] != st:
                ls[x] = st
                loc[x] = k
                nodes[k] = x
                k += 1
    deg = np.zeros(k, np.int64)
    for i in range(m):
        deg[loc[eu[edges[i]]]] += 1
        deg[loc[ev[edges[i]]]] += 1
    ptr = np.zeros(k + 1, np.int64)
    for j in range(k):
        ptr[j + 1] = ptr[j] + deg[j]
    fill = ptr[:k].copy()
    inc = np.empty(2 * m, np.int64)
    for i in range(m):
        a, b = loc[eu[edges[i]]], loc[ev[edges[i]]]
        inc[fill[a]] = i
        fill[a] += 1
        inc[fill[b]] = i
        fill[b] += 1
    alive = np.ones(m, np.bool_)
    stack = np.empty(k, np.int64)
    sp = 0
    for j in range(k):
        if deg[j] == 1 and not is_term[nodes[j]]:
            stack[sp] = j
            sp += 1
    while sp > 0:
        sp -= 1
        j = stack[sp]
        if deg[j] != 1:
            continue
        for q in range(ptr[j], ptr[j + 1]):
            i = inc[q]
            if alive[i]:
                alive[i] = False
                deg[j] = 0
                o = loc[eu[edges[i]]]
                if o == j:
                    o = loc[ev[edges[i]]]
                deg[o] -= 1
                if deg[o] == 1 and not is_term[nodes[o]]:
                    stack[sp] = o
                    sp += 1
                break
    return edges[alive]


@_jit
def span(cand, ncand, eu, ev, ew, is_term, terms, iw, ctr):
    """Kruskal over the edges cand[:ncand] (in Kruskal order), pruned of non-terminal leaves:
    (edge ids sorted, cost, True), or (…, inf, False) if the terminals stay apart."""
    ctr[0] += 1
    st = ctr[0]
    uf = iw[UF]
    chosen = np.empty(ncand, np.int64)
    c = 0
    for i in range(ncand):
        e = cand[i]
        a = find(iw, st, eu[e])
        b = find(iw, st, ev[e])
        if a != b:
            uf[a] = b
            chosen[c] = e
            c += 1
    r0 = find(iw, st, terms[0])
    for t in terms[1:]:
        if find(iw, st, t) != r0:
            return chosen[:0], np.inf, False
    edges = np.sort(prune(chosen[:c], eu, ev, is_term, iw, ctr))
    cost = 0.0
    for e in edges:
        cost += ew[e]
    return edges, cost, True


@_jit
def node_mask(tree, n, eu, ev):
    inS = np.zeros(n, np.bool_)
    for e in tree:
        inS[eu[e]] = True
        inS[ev[e]] = True
    return inS


@_jit
def kruskal_sorted(ids, ew):
    """Edge ids in Kruskal order (weight, then id)."""
    ids = np.sort(ids)
    return ids[np.argsort(ew[ids], kind="mergesort")]


@_jit
def before(a, b, ew):
    """Whether edge a comes before edge b in Kruskal order."""
    return ew[a] < ew[b] or (ew[a] == ew[b] and a < b)


@_jit
def induced(edges, G, iw, ctr):
    """The edges of the subgraph induced by the nodes of ``edges``, in Kruskal order."""
    indptr, nbr, eid, eu, ev, ew = G[1], G[2], G[3], G[4], G[5], G[6]
    ctr[0] += 1
    st = ctr[0]
    mark = iw[PLS]
    nodes = np.empty(2 * len(edges), np.int64)
    k = 0
    for e in edges:
        for x in (eu[e], ev[e]):
            if mark[x] != st:
                mark[x] = st
                nodes[k] = x
                k += 1
    cnt = 0
    for i in range(k):
        cnt += indptr[nodes[i] + 1] - indptr[nodes[i]]
    out = np.empty(cnt, np.int64)
    c = 0
    for i in range(k):
        x = nodes[i]
        for q in range(indptr[x], indptr[x + 1]):
            y = nbr[q]
            if x < y and mark[y] == st:
                out[c] = eid[q]
                c += 1
    return kruskal_sorted(out[:c], ew)


@_jit
def normalize(edges, G, is_term, terms, iw, ctr):
    """The MST of the subgraph induced by the nodes of ``edges``, pruned: (tree, cost, ok)."""
    cand = induced(edges, G, iw, ctr)
    return span(cand, len(cand), G[4], G[5], G[6], is_term, terms, iw, ctr)


@_jit
def depths(pre, pedge, eu, ev, n):
    """Depth of every tree node (the preorder lists parents before children)."""
    depth = np.zeros(n, np.int64)
    for i in range(1, len(pre)):
        x = pre[i]
        depth[x] = depth[eu[pedge[x]] + ev[pedge[x]] - x] + 1
    return depth


@_jit
def rooted(tree, n, eu, ev, is_term, root):
    """The tree rooted at ``root``: parent edge of every tree node (−1 elsewhere), preorder
    numbers tin (subtree of x: tin[x] ≤ tin < tout[x]), the preorder, degrees, its key paths
    (low key node, upper key node) — a key node is a terminal or has degree ≠ 2 — and the
    tree's adjacency (edge ids inc[ptr[x]:ptr[x + 1]] at node x)."""
    m = len(tree)
    deg = np.zeros(n, np.int64)
    for e in tree:
        deg[eu[e]] += 1
        deg[ev[e]] += 1
    ptr = np.zeros(n + 1, np.int64)
    for x in range(n):
        ptr[x + 1] = ptr[x] + deg[x]
    fill = ptr[:n].copy()
    inc = np.empty(2 * m, np.int64)
    for e in tree:
        inc[fill[eu[e]]] = e
        fill[eu[e]] += 1
        inc[fill[ev[e]]] = e
        fill[ev[e]] += 1
    pedge = np.full(n, -1, np.int64)
    tin = np.full(n, -1, np.int64)
    pre = np.empty(m + 1, np.int64)
    stack = np.empty(m + 1, np.int64)
    stack[0] = root
    sp = 1
    t = 0
    while sp > 0:
        sp -= 1
        x = stack[sp]
        tin[x] = t
        pre[t] = x
        t += 1
        for q in range(ptr[x + 1] - 1, ptr[x] - 1, -1):
            e = inc[q]
            if e != pedge[x]:
                y = eu[e] + ev[e] - x
                pedge[y] = e
                stack[sp] = y
                sp += 1
    size = np.ones(t, np.int64)  # by preorder position
    for i in range(t - 1, 0, -1):
        x = pre[i]
        p = eu[pedge[x]] + ev[pedge[x]] - x
        size[tin[p]] += size[i]
    tout = np.full(n, -1, np.int64)
    for i in range(t):
        tout[pre[i]] = i + size[i]
    low = np.empty(t, np.int64)
    up = np.empty(t, np.int64)
    k = 0
    for i in range(1, t):
        x = pre[i]
        if is_term[x] or deg[x] != 2:
            y = eu[pedge[x]] + ev[pedge[x]] - x
            while not (is_term[y] or deg[y] != 2):
                y = eu[pedge[y]] + ev[pedge[y]] - y
            low[k] = x
            up[k] = y
            k += 1
    return pedge, tin, tout, pre[:t], deg, low[:k], up[:k], ptr, inc


@_jit
def tree_ball(s, skip, radius, ptr, inc, eu, ev, ew, out, sn, sd, se):
    """The tree nodes at tree distance < radius from s (s included) reached without crossing
    edge ``skip``, written to ``out``; returns their number (sn, sd, se: stack space)."""
    k = 0
    sn[0] = s
    sd[0] = 0.0
    se[0] = skip
    sp = 1
    while sp > 0:
        sp -= 1
        x, d, via = sn[sp], sd[sp], se[sp]
        out[k] = x
        k += 1
        for q in range(ptr[x], ptr[x + 1]):
            e = inc[q]
            if e != via and d + ew[e] < radius:
                sn[sp] = eu[e] + ev[e] - x
                sd[sp] = d + ew[e]
                se[sp] = e
                sp += 1
    return k


@_jit
def walk_up(x, y, pedge, eu, ev, ew, out, k):
    """Append to out[k:] the edges of the tree path from x up to its ancestor y; returns the new
    length and the path's weight."""
    c = 0.0
    while x != y:
        e = pedge[x]
        out[k] = e
        k += 1
        c += ew[e]
        x = eu[e] + ev[e] - x
    return k, c


@_jit
def back(x, iw, eu, ev, out, k):
    """Append the edges of the search forest's path from x back to its source."""
    pe = iw[PE]
    while pe[x] >= 0:
        e = pe[x]
        out[k] = e
        k += 1
        x = eu[e] + ev[e] - x
    return k


@_jit
def replace_edges(tree, drop, ndrop, add, nadd, cost, tol, G, is_term, terms, iw, ctr):
    """The tree without the edges drop[:ndrop] and with add[:nadd], normalised; accepted
    (True) only when its cost is below ``cost − tol``."""
    gone = np.sort(drop[:ndrop])
    new = np.empty(len(tree) + nadd, np.int64)
    k = 0
    for e in tree:
        j = np.searchsorted(gone, e)
        if j == ndrop or gone[j] != e:
            new[k] = e
            k += 1
    new[k : k + nadd] = add[:nadd]
    edges, c, ok = normalize(new[: k + nadd], G, is_term, terms, iw, ctr)
    if ok and c < cost - tol:
        return edges, c, True
    return tree, cost, False


@_jit
def shortest_path_heuristic(root, wp, G, is_term, nterms):
    """Takahashi–Matsuyama: from ``root``, repeatedly join the terminal nearest to the tree
    (weights ``wp``) by its shortest path; one Dijkstra search whose sources grow with the
    tree. Returns the edge ids."""
    n, indptr, nbr, eid, eu, ev = G[0], G[1], G[2], G[3], G[4], G[5]
    dist = np.full(n, np.inf)
    pe = np.full(n, -1, np.int64)
    intree = np.zeros(n, np.bool_)
    out = np.empty(n, np.int64)
    k = 0
    hk = np.empty(64, np.float64)
    hv = np.empty(64, np.int64)
    dist[root] = 0.0
    intree[root] = True
    hk, hv, size = push(hk, hv, 0, 0.0, root)
    left = nterms - 1
    while size > 0 and left > 0:
        d, u, size = pop(hk, hv, size)
        if d > dist[u]:
            continue
        if is_term[u] and not intree[u]:
            left -= 1
            x = u
            while not intree[x]:
                intree[x] = True
                dist[x] = 0.0
                e = pe[x]
                out[k] = e
                k += 1
                x = eu[e] + ev[e] - x
                hk, hv, size = push(hk, hv, size, 0.0, x)
            d = 0.0
        for q in range(indptr[u], indptr[u + 1]):
            z = nbr[q]
            nd = d + wp[eid[q]]
            if nd < dist[z]:
                dist[z] = nd
                pe[z] = eid[q]
                hk, hv, size = push(hk, hv, size, nd, z)
    return out[:k]


@_jit
def mehlhorn(G, is_term, terms, dist, pred, base):
    """Mehlhorn's construction: (tree edge ids sorted, cost, True), or (…, False) when the
    terminals are not all connected. ``dist``, ``pred``, ``base``: one Dijkstra search from
    all terminals (:func:`voronoi`'s or scipy's conventions), which gives each node its nearest
    terminal; every edge between two such Voronoi regions is a path between their terminals; a
    minimum spanning tree of the terminals over those paths, expanded, then the pruned minimum
    spanning tree of the subgraph induced by its nodes."""
    n, indptr, nbr, eid, eu, ev, ew = G[0], G[1], G[2], G[3], G[4], G[5], G[6]
    iw = np.zeros((8, n), np.int64)
    ctr = np.zeros(1, np.int64)
    tpos = np.full(n, -1, np.int64)
    for i in range(len(terms)):
        tpos[terms[i]] = i
    m = len(eu)
    cb = np.empty(m, np.int64)
    cl = np.empty(m, np.float64)
    k = 0
    for e in range(m):
        bu, bv = base[eu[e]], base[ev[e]]
        if bu != bv and bu >= 0 and bv >= 0:
            cb[k] = e
            cl[k] = dist[eu[e]] + ew[e] + dist[ev[e]]
            k += 1
    srt = np.argsort(cl[:k], kind="mergesort")
    ctr[0] += 1
    st = ctr[0]
    seen = np.zeros(n, np.bool_)
    out = np.empty(n + len(terms), np.int64)  # each walk stops where an earlier one went
    nout = 0
    joined = 0
    for s in srt:
        if joined == len(terms) - 1:
            break
        e = cb[s]
        a = find(iw, st, tpos[base[eu[e]]])
        b = find(iw, st, tpos[base[ev[e]]])
        if a == b:
            continue
        iw[UF][a] = b
        joined += 1
        out[nout] = e
        nout += 1
        for x in (eu[e], ev[e]):  # up the search forest to the terminal
            while not seen[x] and pred[x] >= 0:
                seen[x] = True
                p = pred[x]
                for q in range(indptr[x], indptr[x + 1]):
                    if nbr[q] == p:
                        out[nout] = eid[q]
                        nout += 1
                        break
                x = p
    if joined < len(terms) - 1:
        return out[:0], 0.0, False
    tree = np.unique(out[:nout])
    return normalize(tree, G, is_term, terms, iw, ctr)


@_jit
def voronoi(G, sources, bound):
    """One Dijkstra search from all ``sources``: (dist, predecessor node, nearest source) of
    every node, with inf, −9999, −9999 for the nodes at distance ≥ ``bound`` or unreachable
    (the conventions of scipy's ``dijkstra(..., min_only=True)``)."""
    n, indptr, nbr, wq = G[0], G[1], G[2], G[7]
    dist = np.full(n, np.inf)
    pred = np.full(n, -9999, np.int64)
    base = np.full(n, -9999, np.int64)
    hk = np.empty(len(sources) + len(nbr) + 1, np.float64)  # one push per source and entry
    hv = np.empty(len(hk), np.int64)
    size = 0
    for s in sources:
        dist[s] = 0.0
        base[s] = s
        size = hpush(hk, hv, size, 0.0, s)
    while size > 0:
        d, u, size = pop(hk, hv, size)
        if d > dist[u]:
            continue
        for q in range(indptr[u], indptr[u + 1]):
            z = nbr[q]
            nd = d + wq[q]
            if nd < dist[z] and nd < bound:
                dist[z] = nd
                pred[z] = u
                base[z] = base[u]
                size = hpush(hk, hv, size, nd, z)
    return dist, pred, base
