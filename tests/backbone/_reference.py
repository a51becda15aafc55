"""Reference implementations for the backbone's array code: the per-feature road-graph builder,
the per-site snapping and the networkx-copy Steiner problems that the package used before
(issue 12). Plain, slow, obviously-correct Python: the tests require the fast code to give the
same graphs and trees, node for node and edge for edge, in the same order."""

from __future__ import annotations

import itertools
import math

import networkx as nx
import numpy as np
import shapely
import shapely.ops
from shapely.geometry import LineString, Point

from telcoplan.backbone._pieces import join_dangling_ends
from telcoplan.backbone.graph import DEFAULT_TRENCH_COST_PER_M, JOIN_ENDS_M, coalition_cost

ROOT = ("fiber-root",)


def key(x: float, y: float) -> tuple[float, float]:
    return (round(float(x), 2), round(float(y), 2))


def build_graph(roads, *, fiber=None, cost_per_m=None, fiber_tolerance_m=5.0) -> nx.Graph:
    """The road graph, one road piece at a time."""
    costs = {**DEFAULT_TRENCH_COST_PER_M, **(cost_per_m or {})}
    pieces = _split_at_fiber_ends(_noded_pieces(roads), fiber, fiber_tolerance_m)
    G = nx.Graph(crs=roads.crs.to_string())
    index = None
    if fiber is not None and len(fiber):
        geoms = fiber.geometry.to_numpy()
        index = shapely.STRtree(geoms), fiber["operator"].astype(str).to_numpy(), geoms
    for geom, road_pos in pieces:
        row = roads.iloc[road_pos]
        coords = np.asarray(geom.coords)
        u, v = key(*coords[0]), key(*coords[-1])
        if u == v:
            continue
        cls = str(row["road_class"])
        length = float(geom.length)
        attrs = {
            "length_m": length,
            "road_class": cls,
            "road_id": str(roads.index[road_pos]),
            "trench_cost": length * costs[cls],
            "fiber": _fiber_on(geom, index, fiber_tolerance_m),
            "geometry": geom,
        }
        if G.has_edge(u, v) and G.edges[u, v]["trench_cost"] <= attrs["trench_cost"]:
            continue
        for node in (u, v):
            if node not in G:
                G.add_node(node, x=node[0], y=node[1], kind="junction")
        G.add_edge(u, v, **attrs)
    G.graph["cost_per_m"] = costs
    return G


def _noded_pieces(roads):
    geoms = join_dangling_ends(roads.geometry.to_numpy(), JOIN_ENDS_M)
    noded = shapely.get_parts(shapely.node(shapely.union_all(geoms)))
    tree = shapely.STRtree(geoms)
    mids = shapely.line_interpolate_point(noded, 0.5, normalized=True)
    idx_pts, idx_roads = tree.query(mids, predicate="dwithin", distance=0.01)
    owner = np.full(len(noded), -1)
    order = np.lexsort((idx_roads, idx_pts))
    for p, r in zip(idx_pts[order], idx_roads[order], strict=True):
        if owner[p] < 0:
            owner[p] = r
    return [(g, int(o)) for g, o in zip(noded, owner, strict=True) if o >= 0 and not g.is_empty]


def _split_at_fiber_ends(pieces, fiber, tol):
    if fiber is None or len(fiber) == 0 or not pieces:
        return pieces
    cables = shapely.get_parts(fiber.geometry.to_numpy())
    zones = shapely.buffer(cables, tol, cap_style="flat")
    geoms = np.array([g for g, _ in pieces], dtype=object)
    ip, iz = shapely.STRtree(zones).query(geoms, predicate="intersects")
    cuts: dict[int, list[float]] = {}
    for p, z in zip(ip.tolist(), iz.tolist(), strict=True):
        piece = geoms[p]
        for part in shapely.get_parts(piece.intersection(zones[z])):
            if part.geom_type != "LineString" or part.length <= 4 * tol:
                continue
            for end in (part.coords[0], part.coords[-1]):
                pos = float(piece.project(Point(end)))
                if tol < pos < piece.length - tol:
                    cuts.setdefault(p, []).append(pos)
    out = []
    for i, (geom, road_pos) in enumerate(pieces):
        if i not in cuts:
            out.append((geom, road_pos))
            continue
        stops = [0.0, *sorted(set(np.round(cuts[i], 3).tolist())), geom.length]
        out.extend(
            (shapely.ops.substring(geom, a, b), road_pos)
            for a, b in itertools.pairwise(stops)
            if b - a > 0
        )
    return out


def _fiber_on(piece, index, tol):
    if index is None:
        return frozenset()
    tree, ops, geoms = index
    probes = [
        piece.interpolate(0.5, normalized=True),
        Point(piece.coords[0]),
        Point(piece.coords[-1]),
    ]
    return frozenset(
        ops[j]
        for j in tree.query(piece, predicate="dwithin", distance=tol)
        if all(geoms[j].distance(p) <= tol for p in probes)
    )


def snap_sites(G, sites):
    """Each site snapped to its nearest road edge, one site at a time, on a copy of ``G``."""
    H = G.copy()
    costs = G.graph.get("cost_per_m", DEFAULT_TRENCH_COST_PER_M)
    edges = list(H.edges(data="geometry"))
    tree = shapely.STRtree([g for _, _, g in edges])
    pts = sites.geometry.to_numpy()
    (src, hit), _ = tree.query_nearest(pts, return_distance=True, all_matches=False)
    nearest = dict(zip(src.tolist(), hit.tolist(), strict=True))
    mapping: dict = {}
    split_at: dict[int, list] = {}
    for i, site_id in enumerate(sites.index):
        geom = edges[nearest[i]][2]
        split_at.setdefault(nearest[i], []).append((float(geom.project(pts[i])), site_id))
    for e, items in split_at.items():
        u, v, geom = edges[e]
        items = sorted(items, key=lambda t: (t[0], str(t[1])))
        data = dict(H.edges[u, v])
        a, b = (u, v) if key(*geom.coords[0]) == u else (v, u)
        H.remove_edge(u, v)
        prev_node, prev_pos = a, 0.0
        per_m = data["trench_cost"] / data["length_m"] if data["length_m"] > 0 else 0.0
        for pos, site_id in items:
            p = geom.interpolate(pos)
            node = key(p.x, p.y)
            if node not in H:
                H.add_node(node, x=node[0], y=node[1], kind="road_point")
            if pos > prev_pos and node != prev_node:
                _piece(H, prev_node, node, shapely.ops.substring(geom, prev_pos, pos), data, per_m)
            prev_node, prev_pos = node, max(pos, prev_pos)
            sp = sites.geometry.loc[site_id]
            H.add_node(("site", site_id), x=float(sp.x), y=float(sp.y), kind="site",
                       site_id=str(site_id))  # fmt: skip
            drop = LineString([(sp.x, sp.y), (p.x, p.y)])
            H.add_edge(("site", site_id), node, length_m=drop.length, road_class="access",
                       road_id="", fiber=frozenset(), trench_cost=drop.length * costs["access"],
                       geometry=drop)  # fmt: skip
            mapping[site_id] = ("site", site_id)
        if prev_node != b:
            end = shapely.ops.substring(geom, prev_pos, geom.length)
            _piece(H, prev_node, b, end, data, per_m)
    return H, mapping


def _piece(H, n1, n2, geom, data, per_m):
    attrs = dict(data)
    attrs.update(length_m=float(geom.length), trench_cost=float(geom.length) * per_m, geometry=geom)
    H.add_edge(n1, n2, **attrs)


def steiner_problem(G: nx.Graph, weight: str, terminals: list) -> tuple[nx.Graph, list]:
    """The Steiner problem as the plans built it: ``G`` copied with the root joined to the
    nodes of usable fiber, the finite-cost edges copied out, then the first terminal's component
    copied out. Returns the graph and the reachable terminals."""
    H = G.copy()
    H.add_node(ROOT, x=math.nan, y=math.nan, kind="root")
    for u, v, d in G.edges(data=True):
        if d.get(f"{weight}_fiber", bool(d.get("fiber"))) and np.isfinite(d.get(weight, np.inf)):
            for n in (u, v):
                if not H.has_edge(ROOT, n):
                    H.add_edge(ROOT, n, **{weight: 0.0, "length_m": 0.0, "virtual": True})
    usable = [(u, v) for u, v, w in H.edges(data=weight) if w is not None and np.isfinite(w)]
    H = H.edge_subgraph(usable).copy()
    if H.has_node(ROOT):
        terminals = [ROOT, *terminals]
    reach = nx.node_connected_component(H, terminals[0]) if terminals[0] in H else set()
    terminals = [t for t in terminals if t in reach]
    if len(reach) < H.number_of_nodes():
        H = H.subgraph(reach).copy()
    return H, terminals


def coalition_graph(G: nx.Graph, coalition: frozenset) -> nx.Graph:
    """A copy of ``G`` with the coalition's costs and fiber flags under ``cost_coalition``."""
    from telcoplan.backbone.graph import mark_fiber_network

    own, lease = G.graph.get("own_fiber_factor", 0.02), G.graph.get("lease_factor", 0.3)
    H = G.copy()
    for _, _, d in H.edges(data=True):
        d["cost_coalition"] = coalition_cost(d, coalition, own, lease)
    mark_fiber_network(H, "cost_coalition", coalition, lease)
    return H


def key_tree(eu, ev, ew, is_term, tree) -> dict:
    """The Steiner local search's key tree (``steiner._KeyTree``), walked in Python: the key
    vertices in discovery order with their parents, depths and key paths (inner nodes, edges,
    cost), children lists and preorder intervals."""
    tu, tv = eu[tree], ev[tree]
    tnodes, inv = np.unique(np.concatenate([tu, tv]), return_inverse=True)
    m = len(tree)
    dst = np.concatenate([inv[m:], inv[:m]])
    order = np.argsort(inv, kind="stable")
    ptr = np.zeros(len(tnodes) + 1, dtype=np.int64)
    np.cumsum(np.bincount(inv, minlength=len(tnodes)), out=ptr[1:])
    nbr = dst[order].tolist()
    eid = np.concatenate([tree, tree])[order].tolist()
    wgt = np.concatenate([ew[tree], ew[tree]])[order].tolist()
    key = ((np.diff(ptr) != 2) | is_term[tnodes]).tolist()
    ptr = ptr.tolist()
    root = key.index(True)
    node_of, vid_of, parent, depth = [root], {root: 0}, [0], [0]
    inner_of, edges_of, cost_of = [[]], [[]], [0.0]
    stack = [(root, -1)]
    while stack:
        x, via = stack.pop()
        for k in range(ptr[x], ptr[x + 1]):
            e = eid[k]
            if e == via:
                continue
            inner, edges, cost, cur = [], [e], wgt[k], nbr[k]
            while not key[cur]:
                inner.append(cur)
                j = ptr[cur] + (eid[ptr[cur]] == e)
                e = eid[j]
                cost += wgt[j]
                edges.append(e)
                cur = nbr[j]
            vid_of[cur] = len(node_of)
            node_of.append(cur)
            parent.append(vid_of[x])
            depth.append(depth[vid_of[x]] + 1)
            inner_of.append(tnodes[inner].tolist())
            edges_of.append(edges)
            cost_of.append(cost)
            stack.append((cur, e))
    V = len(node_of)
    children = [[c for c in range(1, V) if parent[c] == v] for v in range(V)]
    tin, tout, t, st = [0] * V, [0] * V, 0, [(0, False)]
    while st:
        x, done = st.pop()
        if done:
            tout[x] = t
            continue
        tin[x], t = t, t + 1
        st.append((x, True))
        st.extend((c, False) for c in reversed(children[x]))
    return {
        "node_of": tnodes[node_of].tolist(),
        "parent_l": parent,
        "depth_l": depth,
        "path_inner": inner_of,
        "path_edges": edges_of,
        "cost": cost_of,
        "children": children,
        "tin": tin,
        "tout": tout,
    }
