"""Ring protection of a 2,000-site backbone tree: telcoplan vs the same heuristic in networkx.

A road-like graph (a jittered 224 x 224 street grid, ~50k junctions, ~15% of the street pieces
removed so there are dead ends, primary roads every 8 blocks), 2,000 sites hanging off random
junctions by an access drop, a few fiber nodes, and a backbone tree: the union of every site's
cheapest path to the nearest fiber node. Every site is then protected.

The peer runs the same heuristic (same site order, same rule) with plain networkx:
``nx.bridges`` on the augmented network and ``nx.dijkstra_path`` with a weight function per
site. Prints seconds, links and cost added, protected / unprotected counts and the ratio.

    .venv/bin/python benchmarks/bench_rings.py [--side 224] [--sites 2000] [--roots 5]
        [--peer-sites N]   # the peer on the first N sites of the order only (0: skip it)
"""

from __future__ import annotations

import argparse
import itertools
import time

import networkx as nx
import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import dijkstra

from telcoplan.backbone.rings import protect_sites

ROOT = ("fiber-root",)


def make_case(side: int, n_sites: int, n_roots: int, seed: int = 0):
    """The road graph, the tree's edges, ``{site: node}`` and the fiber nodes."""
    rng = np.random.default_rng(seed)
    spacing = 100.0
    xy = {
        (i, j): (i * spacing + rng.uniform(-20, 20), j * spacing + rng.uniform(-20, 20))
        for i in range(side)
        for j in range(side)
    }
    G = nx.Graph(crs="EPSG:32649")
    for nd, (x, y) in xy.items():
        G.add_node(nd, x=x, y=y)
    for i in range(side):
        for j in range(side):
            for di, dj in ((1, 0), (0, 1)):
                a, b = (i, j), (i + di, j + dj)
                if b not in xy:
                    continue
                primary = (i % 8 == 0 and dj == 0) or (j % 8 == 0 and di == 0)
                if not primary and rng.random() < 0.15:
                    continue
                length = float(np.hypot(*np.subtract(xy[a], xy[b])))
                cls = "primary" if primary else "residential"
                per_m = 45.0 if primary else 30.0
                G.add_edge(
                    a,
                    b,
                    length_m=length,
                    road_class=cls,
                    road_id=f"r{i}_{j}_{di}",
                    cost_joint=length * per_m,
                )
    G = G.subgraph(max(nx.connected_components(G), key=len)).copy()
    junctions = sorted(G.nodes)
    picks = rng.choice(len(junctions), size=n_sites, replace=False)
    sites = {}
    for k, p in enumerate(sorted(picks.tolist())):
        sid = f"s{k:04d}"
        road = junctions[p]
        x, y = G.nodes[road]["x"], G.nodes[road]["y"]
        drop = float(rng.uniform(10, 50))
        G.add_node(("site", sid), x=x + drop, y=y, kind="site")
        G.add_edge(
            ("site", sid),
            road,
            length_m=drop,
            road_class="access",
            road_id="",
            cost_joint=drop * 30,
        )
        sites[sid] = ("site", sid)
    roots = [junctions[int(k)] for k in rng.choice(len(junctions), size=n_roots, replace=False)]
    return G, _shortest_path_tree(G, list(sites.values()), roots, "cost_joint"), sites, roots


def _shortest_path_tree(G, terminals, roots, weight):
    """Union of each terminal's cheapest path to its nearest root (scipy multi-source Dijkstra)."""
    nodes = list(G.nodes)
    index = {nd: i for i, nd in enumerate(nodes)}
    u, v, w = zip(*((index[a], index[b], d) for a, b, d in G.edges(data=weight)), strict=True)
    u, v, w = np.asarray(u), np.asarray(v), np.asarray(w, dtype=float)
    A = sp.csr_array((np.r_[w, w], (np.r_[u, v], np.r_[v, u])), shape=(len(nodes),) * 2)
    _, pred, _ = dijkstra(
        A, indices=[index[r] for r in roots], min_only=True, return_predecessors=True
    )
    edges, seen = [], set()
    for t in terminals:
        i = index[t]
        while pred[i] >= 0 and i not in seen:
            seen.add(i)
            edges.append((nodes[pred[i]], nodes[i]))
            i = pred[i]
    return edges


def networkx_rings(G, network_edges, protected_nodes, roots, *, weight="cost_joint", limit=None):
    """The same heuristic in plain networkx: per site, ``nx.bridges`` on the network, then
    ``nx.dijkstra_path`` to the fiber with network edges free, the bridges on the site's path
    crossable only back towards the site."""
    Gp = G.copy()
    H = nx.Graph()
    H.add_edges_from(network_edges)
    for r in roots:
        Gp.add_edge(ROOT, r, **{weight: 0.0})
        H.add_edge(ROOT, r)
    H = H.subgraph(nx.node_connected_component(H, ROOT)).copy()
    targets = {}
    for sid, node in protected_nodes.items():
        if node in H:
            (road,) = G.adj[node] if G.degree(node) == 1 else (None,)
            access = road is not None and G.edges[node, road]["road_class"] == "access"
            targets[sid] = road if access else node
    dist = nx.single_source_dijkstra_path_length(
        H, ROOT, weight=lambda a, b, _d: 1e-9 if ROOT in (a, b) else G.edges[a, b][weight]
    )
    order = sorted(targets, key=lambda s: (-dist[targets[s]], str(s)))[:limit]
    added, protected, unprotected = [], [], []
    for sid in order:
        t = targets[sid]
        bridges = {frozenset(e) for e in nx.bridges(H) if ROOT not in e}  # fiber joins: no cut
        hops = nx.shortest_path(H, t, ROOT)
        forward = {(a, b) for a, b in itertools.pairwise(hops) if frozenset((a, b)) in bridges}
        if not forward:
            protected.append(sid)
            continue

        def w(a, b, d, forward=forward):
            if (a, b) in forward:
                return None
            return 0.0 if H.has_edge(a, b) else d[weight]

        try:
            path = nx.dijkstra_path(Gp, t, ROOT, weight=w)
        except nx.NetworkXNoPath:
            unprotected.append(sid)
            continue
        for a, b in itertools.pairwise(path):
            if not H.has_edge(a, b):
                H.add_edge(a, b)
                added.append((a, b))
        protected.append(sid)
    cost = sum(G.edges[e][weight] for e in added)
    return added, cost, protected, unprotected


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--side", type=int, default=224)
    ap.add_argument("--sites", type=int, default=2000)
    ap.add_argument("--roots", type=int, default=5)
    ap.add_argument("--peer-sites", type=int, default=None, help="peer on the first N sites")
    args = ap.parse_args()
    t0 = time.perf_counter()
    G, tree, sites, roots = make_case(args.side, args.sites, args.roots)
    tree_cost = sum(G.edges[e]["cost_joint"] for e in tree)
    print(
        f"graph: {G.number_of_nodes()} nodes, {G.number_of_edges()} edges; tree: {len(tree)} "
        f"edges, cost {tree_cost:,.0f}; {len(sites)} sites, {len(roots)} fiber nodes "
        f"(built in {time.perf_counter() - t0:.1f} s)"
    )
    timed = {}
    for prune in (True, False):
        for _ in range(3):
            t = time.perf_counter()
            res = protect_sites(G, tree, sites, roots, prune=prune)
            timed.setdefault(prune, []).append((time.perf_counter() - t, res))
    first = timed[True][0][0]
    ours, res = min(timed[True], key=lambda r: r[0])
    raw_time, raw = min(timed[False], key=lambda r: r[0])
    print(
        f"telcoplan: {ours:7.2f} s (first call {first:.2f} s, with numba start-up)  "
        f"{len(res.edges)} links added, {res.length_m / 1000:.1f} km, cost {res.cost:,.0f} "
        f"({100 * res.cost / tree_cost:.0f}% of the tree); protected {len(res.protected)}, "
        f"unprotected {len(res.unprotected)}"
    )
    print(
        f"telcoplan without pruning: {raw_time:7.2f} s  {len(raw.edges)} links, cost {raw.cost:,.0f}"
    )
    if args.peer_sites == 0:
        return
    t = time.perf_counter()
    added, cost, prot, unprot = networkx_rings(G, tree, sites, roots, limit=args.peer_sites)
    peer = time.perf_counter() - t
    n = len(prot) + len(unprot)
    print(
        f"networkx:  {peer:7.2f} s  {len(added)} links added, cost {cost:,.0f}; "
        f"protected {len(prot)}, unprotected {len(unprot)} (of the first {n} sites in the order)"
    )
    if n == len(sites):
        print(
            f"same heuristic: cost telcoplan (unpruned) {raw.cost:,.0f} vs networkx {cost:,.0f}; "
            f"time networkx / telcoplan: {peer / raw_time:.0f}x unpruned, {peer / ours:.0f}x pruned"
        )
    else:
        sub = {s: sites[s] for s in prot + unprot}
        t = time.perf_counter()
        part = protect_sites(G, tree, sub, roots, prune=False)
        mine = time.perf_counter() - t
        print(
            f"telcoplan (unpruned) on those {n} sites: {mine:.2f} s, cost {part.cost:,.0f}, "
            f"protected {len(part.protected)}; networkx / telcoplan time: {peer / mine:.0f}x"
        )


if __name__ == "__main__":
    main()
