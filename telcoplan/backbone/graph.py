"""The backbone graph: roads (trench routes) and existing fiber as a networkx graph.

Nodes are road junctions and ends (``x``, ``y`` in the graph's CRS); edges are road pieces
between them with ``length_m``, ``road_class``, ``trench_cost`` (currency units) and the set of
operators whose existing fiber runs along them (``fiber``). ``G.graph["crs"]`` is always set.
Costs for routing are attribute names passed as ``weight=`` (see :func:`operator_costs`).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Mapping

import geopandas as gpd
import networkx as nx
import numpy as np
import pandas as pd
import shapely
import shapely.ops
from shapely.geometry import LineString, Point

from telcoplan.errors import CRSError, PlanError
from telcoplan.gis.crs import crs_name, same_crs

__all__ = [
    "DEFAULT_TRENCH_COST_PER_M",
    "build_graph",
    "coalition_cost",
    "far_from_roads",
    "graph_from_gdfs",
    "graph_to_gdfs",
    "has_own_fiber",
    "mark_fiber_network",
    "operator_costs",
    "snap_sites",
]

#: Trench cost per metre by road class (USD/m; typical Vietnamese urban micro-/open trenching,
#: larger roads cost more to dig and reinstate). Configurable per plan.
DEFAULT_TRENCH_COST_PER_M: dict[str, float] = {
    "motorway": 60.0,
    "trunk": 50.0,
    "primary": 45.0,
    "secondary": 40.0,
    "tertiary": 35.0,
    "residential": 30.0,
    "service": 25.0,
    "track": 20.0,
    "access": 30.0,  # the drop from a site to the road
}
_SNAP_DECIMALS = 2  # node coordinates are rounded to 1 cm so touching ends share a node
#: A road that ends this close to another (m) without touching it joins it: real road files
#: digitise T-junctions a few millimetres to decimetres short of (or past) the other road.
JOIN_ENDS_M = 1.0


def _key(x: float, y: float) -> tuple[float, float]:
    return (round(float(x), _SNAP_DECIMALS), round(float(y), _SNAP_DECIMALS))


def build_graph(
    roads: gpd.GeoDataFrame,
    *,
    fiber: gpd.GeoDataFrame | None = None,
    cost_per_m: Mapping[str, float] | None = None,
    fiber_tolerance_m: float = 5.0,
) -> nx.Graph:
    """Road graph for trenching, with the operators' existing fiber marked on its edges.

    Parameters
    ----------
    roads
        Roads layer (``road_class``; index ``road_id``) in a projected CRS. Lines are noded at
        every crossing, so roads that cross without a shared vertex still connect.
    fiber
        Existing fiber (``operator``), same CRS. A road piece carries an operator's fiber when
        the piece lies within ``fiber_tolerance_m`` of that operator's cables.
    cost_per_m
        Trench cost per metre by road class (defaults: :data:`DEFAULT_TRENCH_COST_PER_M`).

    Returns
    -------
    networkx.Graph
        Nodes ``(x, y)`` tuples (cm-rounded) with ``x``, ``y``; edges with ``length_m``,
        ``road_class``, ``road_id``, ``trench_cost``, ``fiber`` (frozenset of operators) and
        ``geometry``. ``G.graph["crs"]`` is the roads' CRS. Parallel pieces between the same
        two nodes keep the cheaper one.
    """
    if roads.crs is None or not roads.crs.is_projected:
        raise CRSError(f"roads must be in a projected CRS (metres), got {crs_name(roads.crs)}")
    if fiber is not None and len(fiber) and not same_crs(fiber.crs, roads.crs):
        raise CRSError(
            f"fiber is in {crs_name(fiber.crs)} but roads in {crs_name(roads.crs)}; reproject first"
        )
    costs = {**DEFAULT_TRENCH_COST_PER_M, **(cost_per_m or {})}
    unknown = sorted(set(roads["road_class"].astype(str)) - set(costs))
    if unknown:
        raise PlanError(f"no trench cost for road classes {unknown}; give them in cost_per_m")
    pieces = _split_at_fiber_ends(_noded_pieces(roads), fiber, fiber_tolerance_m)
    G = nx.Graph(crs=roads.crs.to_string())
    fiber_index = _fiber_index(fiber)
    for geom, road_pos in pieces:
        row = roads.iloc[road_pos]
        coords = np.asarray(geom.coords)
        u, v = _key(*coords[0]), _key(*coords[-1])
        if u == v:
            continue
        cls = str(row["road_class"])
        length = float(geom.length)
        ops = _fiber_on(geom, fiber_index, fiber_tolerance_m)
        attrs = {
            "length_m": length,
            "road_class": cls,
            "road_id": str(roads.index[road_pos]),
            "trench_cost": length * costs[cls],
            "fiber": ops,
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


def _noded_pieces(roads: gpd.GeoDataFrame) -> list[tuple[LineString, int]]:
    """Split every road at every crossing with another road; each piece keeps its road's row."""
    geoms = _join_dangling_ends(roads.geometry.to_numpy(), JOIN_ENDS_M)
    noded = shapely.get_parts(shapely.node(shapely.union_all(geoms)))  # segments split at crossings
    tree = shapely.STRtree(geoms)
    mids = shapely.line_interpolate_point(noded, 0.5, normalized=True)
    idx_pts, idx_roads = tree.query(mids, predicate="dwithin", distance=0.01)
    owner = np.full(len(noded), -1)
    # first road (by position) that carries each piece: deterministic
    order = np.lexsort((idx_roads, idx_pts))
    for p, r in zip(idx_pts[order], idx_roads[order], strict=True):
        if owner[p] < 0:
            owner[p] = r
    return [(g, int(o)) for g, o in zip(noded, owner, strict=True) if o >= 0 and not g.is_empty]


def _join_dangling_ends(geoms: np.ndarray, tol: float) -> np.ndarray:
    """The roads, each line that ends within ``tol`` of another line without touching it
    extended to that line's end, or 1 cm across it (noding then joins them); others unchanged."""
    lines, owner = shapely.get_parts(geoms, return_index=True)
    if len(lines) < 2:
        return geoms
    ends = np.concatenate([shapely.get_point(lines, 0), shapely.get_point(lines, -1)])
    line_of = np.concatenate([np.arange(len(lines))] * 2)
    e, j = shapely.STRtree(lines).query(ends, predicate="dwithin", distance=tol)
    keep = j != line_of[e]
    e, j = e[keep], j[keep]
    touching = set(e[shapely.intersects(lines[j], ends[e])].tolist())
    best: dict[int, tuple[float, int]] = {}
    for a, b, d in zip(
        e.tolist(), j.tolist(), shapely.distance(lines[j], ends[e]).tolist(), strict=True
    ):
        if a not in touching and d < best.get(a, (np.inf, -1))[0]:
            best[a] = (d, b)
    if not best:
        return geoms
    coords = {i: np.asarray(lines[i].coords) for i in {int(line_of[a]) for a in best}}
    for a, (_, b) in sorted(best.items()):
        i = int(line_of[a])
        p = np.asarray(ends[a].coords[0])
        q = np.asarray(shapely.ops.nearest_points(lines[b], ends[a])[0].coords[0])
        step = q - p
        norm = float(np.hypot(*step[:2]))
        if norm == 0.0:
            continue
        other = np.asarray(lines[b].coords)
        near_end = [c for c in (other[0], other[-1]) if np.hypot(*(c - q)[:2]) < 1e-6]
        # onto the other line's end exactly; across its inside, by 1 cm (a proper crossing)
        beyond = (near_end[0] if near_end else q + step / norm * 0.01)[None, :]
        coords[i] = (
            np.vstack([beyond, coords[i]]) if a < len(lines) else np.vstack([coords[i], beyond])
        )
    lines = lines.copy()
    for i, c in coords.items():
        lines[i] = LineString(c)
    out = geoms.copy()
    for k in np.unique(owner[list(coords)]):
        parts = lines[owner == k]
        out[k] = parts[0] if len(parts) == 1 else shapely.MultiLineString(list(parts))
    return out


def _split_at_fiber_ends(
    pieces: list[tuple[LineString, int]], fiber: gpd.GeoDataFrame | None, tol: float
) -> list[tuple[LineString, int]]:
    """Split road pieces where a fiber cable joins or leaves them (its ends along the road, or
    where it turns off the road), so that the part the cable covers becomes an edge of its own:
    a cable along half a street serves that half."""
    if fiber is None or len(fiber) == 0 or not pieces:
        return pieces
    cables = shapely.get_parts(fiber.geometry.to_numpy())
    zones = shapely.buffer(cables, tol, cap_style="flat")
    geoms = np.array([g for g, _ in pieces], dtype=object)
    ip, iz = shapely.STRtree(zones).query(geoms, predicate="intersects")
    cuts: dict[int, list[float]] = {}
    for p, z in zip(ip.tolist(), iz.tolist(), strict=True):
        piece = geoms[p]
        along = piece.intersection(zones[z])  # the stretch of road the cable runs beside
        for part in shapely.get_parts(along):
            # a crossing cable covers ~2·tol of road: only stretches it runs along count
            if part.geom_type != "LineString" or part.length <= 4 * tol:
                continue
            for end in (part.coords[0], part.coords[-1]):
                pos = float(piece.project(Point(end)))
                if tol < pos < piece.length - tol:
                    cuts.setdefault(p, []).append(pos)
    out: list[tuple[LineString, int]] = []
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


def _fiber_index(fiber: gpd.GeoDataFrame | None):
    if fiber is None or len(fiber) == 0:
        return None
    geoms = fiber.geometry.to_numpy()
    return shapely.STRtree(geoms), fiber["operator"].astype(str).to_numpy(), geoms


def _fiber_on(piece: LineString, index, tol: float) -> frozenset[str]:
    """Operators whose fiber covers the piece (its midpoint and both ends within ``tol``)."""
    if index is None:
        return frozenset()
    tree, ops, geoms = index
    probes = [
        piece.interpolate(0.5, normalized=True),
        Point(piece.coords[0]),
        Point(piece.coords[-1]),
    ]
    found: set[str] = set()
    for j in tree.query(piece, predicate="dwithin", distance=tol):
        if all(geoms[j].distance(p) <= tol for p in probes):
            found.add(ops[j])
    return frozenset(found)


def operator_costs(
    G: nx.Graph,
    operators: Iterable[str],
    *,
    own_fiber_factor: float = 0.02,
    lease_factor: float | None = 0.3,
) -> nx.Graph:
    """Add a routing cost attribute per operator and one for the joint build (a new graph).

    ``cost_<operator>``: trench cost, times ``own_fiber_factor`` where the operator's own fiber
    runs, times ``lease_factor`` where only other operators' fiber runs (leased dark fiber), or
    the trench cost there when ``lease_factor`` is None (leasing forbidden: the operator digs
    its own trench beside the other's cable). ``cost_joint``: the shared build of all
    ``operators`` together (the city's synchronised-infrastructure rule): every one of their
    cables is shared at ``own_fiber_factor``, other operators' cables are leased.

    ``cost_<operator>_fiber`` / ``cost_joint_fiber``: whether the edge is on that build's own
    fiber network — reaching any node of it connects a site (the plans join those nodes to one
    virtual root). Other operators' fiber is not a connection point but a route, paid at
    ``lease_factor`` per metre of trench cost, unless the build has no fiber of its own at all:
    then, when leasing is allowed, it connects to the leased network where it meets it.
    """
    H = G.copy()
    ops = list(operators)
    if "joint" in ops:
        raise PlanError("an operator may not be called 'joint' (the name of the shared build)")
    H.graph["own_fiber_factor"] = own_fiber_factor
    H.graph["lease_factor"] = lease_factor
    H.graph["operators"] = tuple(ops)
    for _u, _v, d in H.edges(data=True):
        for op in ops:
            d[f"cost_{op}"] = coalition_cost(d, frozenset({op}), own_fiber_factor, lease_factor)
        d["cost_joint"] = coalition_cost(d, frozenset(ops), own_fiber_factor, lease_factor)
    for op in ops:
        mark_fiber_network(H, f"cost_{op}", frozenset({op}), lease_factor)
    mark_fiber_network(H, "cost_joint", frozenset(ops), lease_factor)
    return H


def has_own_fiber(G: nx.Graph, members: frozenset[str]) -> bool:
    """Whether any edge of ``G`` carries fiber of one of ``members``."""
    return any(d.get("fiber", frozenset()) & members for _, _, d in G.edges(data=True))


def mark_fiber_network(
    G: nx.Graph, weight: str, members: frozenset[str], lease_factor: float | None
) -> bool:
    """Set ``<weight>_fiber`` on every edge of ``G`` (in place): True on the coalition's own
    fiber — or, when it has none and leasing is allowed, on any fiber. Returns whether the
    coalition has fiber of its own."""
    own = has_own_fiber(G, members)
    for _, _, d in G.edges(data=True):
        carriers = d.get("fiber", frozenset())
        d[f"{weight}_fiber"] = (
            bool(carriers & members) if own else (bool(carriers) and lease_factor is not None)
        )
    return own


def coalition_cost(
    d: Mapping, members: frozenset[str], own_fiber_factor: float, lease_factor: float | None
) -> float:
    """Cost of an edge for a coalition building together: members' fiber is reused, other
    operators' fiber is leased (when allowed), elsewhere a trench is dug."""
    carriers = d.get("fiber", frozenset())
    if carriers & members:
        return d["trench_cost"] * own_fiber_factor
    if carriers and lease_factor is not None:
        # a lease dearer than a trench is not taken: the builder digs beside the cable
        return d["trench_cost"] * min(lease_factor, 1.0)
    return d["trench_cost"]


def far_from_roads(G: nx.Graph, sites: gpd.GeoDataFrame, max_distance_m: float) -> dict[str, float]:
    """Sites farther than ``max_distance_m`` from every road of ``G``: ``{site_id: distance (m)}``
    (infinite when the graph has no road)."""
    edges = [g for _, _, g in G.edges(data="geometry")]
    if not edges:
        return {str(s): math.inf for s in sites.index}
    pts = sites.geometry.to_numpy()
    (src, _), dist = shapely.STRtree(edges).query_nearest(
        pts, return_distance=True, all_matches=False
    )
    nearest = dict(zip(src.tolist(), dist.tolist(), strict=True))
    return {
        str(sites.index[i]): float(nearest.get(i, math.inf))
        for i in range(len(sites))
        if nearest.get(i, math.inf) > max_distance_m
    }


def snap_sites(
    G: nx.Graph, sites: gpd.GeoDataFrame, *, max_distance_m: float = 10_000.0
) -> tuple[nx.Graph, dict]:
    """Connect each site to the nearest road point, splitting the road edge there (a new graph).

    Returns the new graph and ``{site_id: node}``; the site node is ``("site", site_id)`` with a
    drop edge (road class ``access``) to the road point. Sites farther than
    ``max_distance_m`` from every road raise :class:`PlanError` listing them.
    """
    if not same_crs(sites.crs, G.graph["crs"]):
        raise CRSError(
            f"sites are in {crs_name(sites.crs)} but the graph in {crs_name(G.graph['crs'])}"
        )
    H = G.copy()
    costs = G.graph.get("cost_per_m", DEFAULT_TRENCH_COST_PER_M)
    edges = list(H.edges(data="geometry"))
    tree = shapely.STRtree([g for _, _, g in edges])
    pts = sites.geometry.to_numpy()
    (src, hit), dist = tree.query_nearest(pts, return_distance=True, all_matches=False)
    nearest = dict(zip(src.tolist(), zip(hit.tolist(), dist.tolist(), strict=True), strict=True))
    far = [
        str(sites.index[i])
        for i in range(len(sites))
        if i not in nearest or nearest[i][1] > max_distance_m
    ]
    if far:
        raise PlanError(
            f"{len(far)} sites are more than {max_distance_m:g} m from any road: "
            f"{', '.join(far[:20])}{', …' if len(far) > 20 else ''}; add the roads that reach "
            "them to the roads layer, or raise stages.backbone.max_snap_m (an access drop of "
            "that length is then costed)"
        )
    mapping: dict = {}
    split_at: dict[int, list[tuple[float, object]]] = {}
    for i, site_id in enumerate(sites.index):
        e, _ = nearest[i]
        u, v, geom = edges[e]
        along = float(geom.project(pts[i]))
        split_at.setdefault(e, []).append((along, site_id))
    for e, items in split_at.items():
        u, v, geom = edges[e]
        _split_edge(
            H, u, v, geom, sorted(items, key=lambda t: (t[0], str(t[1]))), sites, costs, mapping
        )
    return H, mapping


def _split_edge(H, u, v, geom, items, sites, costs, mapping) -> None:
    data = dict(H.edges[u, v])
    start = _key(*geom.coords[0])
    a, b = (u, v) if start == u else (v, u)  # a is the geometry's first end
    H.remove_edge(u, v)
    prev_node, prev_pos = a, 0.0
    per_m = data["trench_cost"] / data["length_m"] if data["length_m"] > 0 else 0.0
    for pos, site_id in items:
        p = geom.interpolate(pos)
        node = _key(p.x, p.y)
        if node not in H:
            H.add_node(node, x=node[0], y=node[1], kind="road_point")
        if pos > prev_pos and node != prev_node:
            _add_piece(H, prev_node, node, shapely.ops.substring(geom, prev_pos, pos), data, per_m)
        prev_node, prev_pos = node, max(pos, prev_pos)
        site_node = ("site", site_id)
        sp = sites.geometry.loc[site_id]
        H.add_node(site_node, x=float(sp.x), y=float(sp.y), kind="site", site_id=str(site_id))
        drop = LineString([(sp.x, sp.y), (p.x, p.y)])
        H.add_edge(
            site_node,
            node,
            length_m=drop.length,
            road_class="access",
            road_id="",
            fiber=frozenset(),
            trench_cost=drop.length * costs["access"],
            geometry=drop,
        )
        mapping[site_id] = site_node
    if prev_node != b:
        _add_piece(H, prev_node, b, shapely.ops.substring(geom, prev_pos, geom.length), data, per_m)


def _add_piece(H, n1, n2, geom, data, per_m) -> None:
    attrs = dict(data)
    attrs.update(length_m=float(geom.length), trench_cost=float(geom.length) * per_m, geometry=geom)
    H.add_edge(n1, n2, **attrs)


def graph_to_gdfs(G: nx.Graph) -> tuple[gpd.GeoDataFrame, gpd.GeoDataFrame]:
    """Nodes (points) and edges (lines, with ``u``, ``v`` node ids as text) as GeoDataFrames."""
    crs = G.graph.get("crs")
    if crs is None:
        raise CRSError("the graph has no G.graph['crs']")
    node_ids = {n: i for i, n in enumerate(G.nodes)}
    nodes = gpd.GeoDataFrame(
        [
            {
                "node": node_ids[n],
                "key": repr(n),
                **{k: v for k, v in d.items() if k not in ("x", "y")},
            }
            for n, d in G.nodes(data=True)
        ],
        geometry=[Point(d["x"], d["y"]) for _, d in G.nodes(data=True)],
        crs=crs,
    )
    rows, geoms = [], []
    for u, v, d in G.edges(data=True):
        row = {k: val for k, val in d.items() if k != "geometry"}
        row["fiber"] = ";".join(sorted(d.get("fiber", ())))
        row["u"], row["v"] = node_ids[u], node_ids[v]
        rows.append(row)
        geoms.append(
            d.get("geometry")
            or LineString([(G.nodes[u]["x"], G.nodes[u]["y"]), (G.nodes[v]["x"], G.nodes[v]["y"])])
        )
    edges = gpd.GeoDataFrame(pd.DataFrame(rows), geometry=geoms, crs=crs)
    return nodes, edges


def graph_from_gdfs(nodes: gpd.GeoDataFrame, edges: gpd.GeoDataFrame) -> nx.Graph:
    """Inverse of :func:`graph_to_gdfs` (node ids are the ``node`` column)."""
    if nodes.crs is None:
        raise CRSError("nodes have no CRS")
    G = nx.Graph(crs=nodes.crs.to_string())
    for row, geom in zip(
        nodes.drop(columns=nodes.geometry.name).to_dict("records"), nodes.geometry, strict=True
    ):
        nid = row.pop("node")
        G.add_node(nid, x=geom.x, y=geom.y, **{k: v for k, v in row.items() if k != "key"})
    for row, geom in zip(
        edges.drop(columns=edges.geometry.name).to_dict("records"), edges.geometry, strict=True
    ):
        u, v = row.pop("u"), row.pop("v")
        fib = row.pop("fiber", "") or ""
        G.add_edge(u, v, geometry=geom, fiber=frozenset(f for f in str(fib).split(";") if f), **row)
    return G
