"""The backbone graph: roads (trench routes) and existing fiber as a networkx graph.

Nodes are road junctions and ends (``x``, ``y`` in the graph's CRS); edges are road pieces
between them with ``length_m``, ``road_class``, ``trench_cost`` (currency units) and the set of
operators whose existing fiber runs along them (``fiber``). ``G.graph["crs"]`` is always set.
Costs for routing are attribute names passed as ``weight=`` (see :func:`operator_costs`).
"""

from __future__ import annotations

import contextlib
import gc
import itertools
import logging
import math
import threading
from collections.abc import Iterable, Iterator, Mapping

import geopandas as gpd
import networkx as nx
import numpy as np
import pandas as pd
import shapely
import shapely.ops
from shapely.geometry import LineString, Point

from telcoplan.backbone._pieces import join_dangling_ends, log_pieces, with_gap_links
from telcoplan.backbone.choices import OFF_ROAD
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
    "nearest_roads",
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
    OFF_ROAD: 30.0,  # a trench joining two pieces of the road network that do not meet
}

log = logging.getLogger(__name__)

_SNAP_DECIMALS = 2  # node coordinates are rounded to 1 cm so touching ends share a node
#: A road that ends this close to another (m) without touching it joins it: real road files
#: digitise T-junctions a few millimetres to decimetres short of (or past) the other road.
JOIN_ENDS_M = 1.0


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """Python's cyclic garbage collector paused while a graph is built: the graph's dicts and
    geometries hold no cycles to collect, and every full collection would walk them all (a
    second of the national plan's snapping). The collector is process-wide: threads that pause
    it at once share one pause, and it is enabled again (if it was) when the last one ends."""
    global _gc_pauses, _gc_was_enabled
    with _gc_lock:
        if _gc_pauses == 0:
            _gc_was_enabled = gc.isenabled()
            gc.disable()
        _gc_pauses += 1
    try:
        yield
    finally:
        with _gc_lock:
            _gc_pauses -= 1
            if _gc_pauses == 0 and _gc_was_enabled:
                gc.enable()


_gc_lock = threading.Lock()
_gc_pauses = 0  # the pauses under way (threads inside _gc_paused)
_gc_was_enabled = False  # whether the collector was enabled when the first of them began


@_gc_paused()
def build_graph(
    roads: gpd.GeoDataFrame,
    *,
    fiber: gpd.GeoDataFrame | None = None,
    cost_per_m: Mapping[str, float] | None = None,
    fiber_tolerance_m: float = 5.0,
    join_pieces_m: float | None = None,
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
    join_pieces_m
        When the roads fall into pieces that do not meet, join pieces up to this far apart by
        straight off-road trenches (road class ``off-road``, ids ``(off-road N)``): the
        minimum spanning forest of the pieces by the gaps between them
        (:func:`telcoplan.backbone._pieces.gap_links`). ``G.graph["pieces"]`` then says how
        many pieces there were and stay apart. ``None``: the roads as they are.

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
    G, (geoms, u, v) = _graph(roads, fiber, costs, fiber_tolerance_m)
    if join_pieces_m is None:
        return G
    joined, pieces = with_gap_links(roads, geoms, u, v, join_pieces_m)
    if joined is not None:
        G, _ = _graph(joined, fiber, costs, fiber_tolerance_m)
        pieces["apart"] = nx.number_connected_components(G)  # as built
    G.graph["pieces"] = pieces
    log_pieces(pieces, join_pieces_m)
    return G


def _graph(
    roads: gpd.GeoDataFrame,
    fiber: gpd.GeoDataFrame | None,
    costs: Mapping[str, float],
    fiber_tolerance_m: float,
) -> tuple[nx.Graph, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """:func:`build_graph`'s graph, and its edges' geometries and end nodes (numbers)."""
    geoms, owner = _split_at_fiber_ends(*_noded_pieces(roads), fiber, fiber_tolerance_m)
    classes = np.array([str(c) for c in roads["road_class"].tolist()], dtype=object)[owner]
    ids = np.array([str(i) for i in roads.index.tolist()], dtype=object)[owner]
    per_m = np.array([costs[c] for c in classes.tolist()], dtype=np.float64)
    length = shapely.length(geoms)
    G = nx.Graph(crs=roads.crs.to_string())
    # nodes: the pieces' ends rounded to 1 cm, numbered in order of first appearance
    ends = np.stack(
        [
            shapely.get_coordinates(shapely.get_point(geoms, 0)),
            shapely.get_coordinates(shapely.get_point(geoms, -1)),
        ],
        axis=1,
    )  # piece, end, (x, y)
    ends = _round_cm(ends.reshape(-1, 2)) if len(geoms) else np.zeros((0, 2))
    same = _same_point(ends)
    ok = same[0::2] != same[1::2]  # a piece that closes on itself joins nothing
    # the nodes, in order of first appearance among the pieces that join two
    node_of, first = _first_appearance(same, np.repeat(ok, 2))
    u, v = node_of[0::2], node_of[1::2]
    # between two nodes, the cheapest piece (the first of equal ones)
    cost = length * per_m
    lo, hi = np.minimum(u, v), np.maximum(u, v)
    pieces = np.flatnonzero(ok)
    pair = lo[pieces] * max(len(first), 1) + hi[pieces]
    order = np.lexsort((pieces, cost[pieces], pair))
    head = np.ones(len(order), dtype=bool)
    head[1:] = pair[order][1:] != pair[order][:-1]
    best = pieces[order[head]]  # chosen piece of each pair
    seen = np.unique(pair, return_index=True)[1]  # each pair's first piece: its edge's place
    place = pieces[seen]
    best = best[np.argsort(place, kind="stable")]  # chosen pieces in order of first appearance
    place = np.sort(place)
    fiber_ops = _fiber_on(geoms[best], _fiber_index(fiber), fiber_tolerance_m)
    labels = [tuple(xy) for xy in ends[first].tolist()]
    G.add_nodes_from((n, {"x": n[0], "y": n[1], "kind": "junction"}) for n in labels)
    G.add_edges_from(
        (
            labels[a],
            labels[b],
            {
                "length_m": ln,
                "road_class": cls,
                "road_id": rid,
                "trench_cost": tc,
                "fiber": ops,
                "geometry": geom,
            },
        )
        for a, b, ln, cls, rid, tc, ops, geom in zip(
            u[place].tolist(),
            v[place].tolist(),
            length[best].tolist(),
            classes[best].tolist(),
            ids[best].tolist(),
            cost[best].tolist(),
            fiber_ops,
            geoms[best].tolist(),
            strict=True,
        )
    )
    G.graph["cost_per_m"] = costs
    return G, (geoms[best], u[place], v[place])


def _round_cm(xy: np.ndarray) -> np.ndarray:
    """Coordinates rounded to 1 cm exactly as Python's ``round(x, 2)`` (correctly rounded;
    numpy's ``round`` scales by 100 first, which can tip values within an ulp of a half-cent,
    so those few are rounded by Python)."""
    scaled = xy * 10**_SNAP_DECIMALS
    out = np.round(scaled) / 10**_SNAP_DECIMALS
    frac = np.abs(scaled - np.floor(scaled) - 0.5)
    doubt = np.flatnonzero(~(frac > 1e-6 + np.abs(scaled) * 1e-12))
    flat_in, flat_out = xy.reshape(-1), out.reshape(-1)
    for i in doubt.tolist():
        flat_out[i] = round(float(flat_in[i]), _SNAP_DECIMALS)
    return out


def _same_point(xy: np.ndarray) -> np.ndarray:
    """A number per point, equal for equal coordinates."""
    if len(xy) == 0:
        return np.zeros(0, dtype=np.int64)
    order = np.lexsort((xy[:, 1], xy[:, 0]))
    s = xy[order]
    new = np.ones(len(s), dtype=bool)
    new[1:] = (s[1:, 0] != s[:-1, 0]) | (s[1:, 1] != s[:-1, 1])
    group = np.empty(len(xy), dtype=np.int64)
    group[order] = np.cumsum(new) - 1
    return group


def _first_appearance(group: np.ndarray, counted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Nodes numbered in order of first appearance among the ``counted`` points: each point's
    node (-1: none) and each node's first point."""
    first = np.full(int(group.max(initial=-1)) + 1, len(group), dtype=np.int64)
    where = np.flatnonzero(counted)
    np.minimum.at(first, group[where], where)
    present = first < len(group)
    order = np.argsort(first[present], kind="stable")
    rank = np.full(len(first), -1, dtype=np.int64)
    rank[np.flatnonzero(present)[order]] = np.arange(len(order))
    return rank[group], first[present][order]


def _noded_pieces(roads: gpd.GeoDataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Split every road at every crossing with another road: the pieces and each piece's road
    (position in ``roads``: the first road that carries it, deterministic)."""
    geoms = join_dangling_ends(roads.geometry.to_numpy(), JOIN_ENDS_M)
    noded = shapely.get_parts(shapely.node(shapely.union_all(geoms)))  # segments split at crossings
    tree = shapely.STRtree(geoms)
    mids = shapely.line_interpolate_point(noded, 0.5, normalized=True)
    idx_pts, idx_roads = tree.query(mids, predicate="dwithin", distance=0.01)
    owner = np.full(len(noded), -1)
    order = np.lexsort((idx_roads, idx_pts))
    pts, first = np.unique(idx_pts[order], return_index=True)
    owner[pts] = idx_roads[order][first]
    keep = (owner >= 0) & ~shapely.is_empty(noded)
    return noded[keep], owner[keep]


def _split_at_fiber_ends(
    geoms: np.ndarray, owner: np.ndarray, fiber: gpd.GeoDataFrame | None, tol: float
) -> tuple[np.ndarray, np.ndarray]:
    """Split road pieces where a fiber cable joins or leaves them (its ends along the road, or
    where it turns off the road), so that the part the cable covers becomes an edge of its own:
    a cable along half a street serves that half. Returns the pieces and their roads."""
    if fiber is None or len(fiber) == 0 or len(geoms) == 0:
        return geoms, owner
    zones = shapely.buffer(shapely.get_parts(fiber.geometry.to_numpy()), tol, cap_style="flat")
    # a tree of the pieces: each zone prepared once (national: 0.57 -> 0.12 s; order is moot)
    iz, ip = shapely.STRtree(geoms).query(zones, predicate="intersects")
    # an open piece wholly inside a zone, off its edge, is its own stretch: it cuts nothing
    shapely.prepare(zones)
    inner = shapely.contains_properly(zones[iz], geoms[ip]) & ~shapely.is_closed(geoms[ip])
    ip, iz = ip[~inner], iz[~inner]
    along = shapely.intersection(geoms[ip], zones[iz])  # the stretches the cables run beside
    parts, src = shapely.get_parts(along, return_index=True)
    # a crossing cable covers ~2·tol of road: only stretches it runs along count
    ok = (shapely.get_type_id(parts) == 1) & (shapely.length(parts) > 4 * tol)
    parts, piece = parts[ok], ip[src[ok]]
    ends = np.concatenate([shapely.get_point(parts, 0), shapely.get_point(parts, -1)])
    piece = np.concatenate([piece, piece])
    pos = shapely.line_locate_point(geoms[piece], ends)
    inside = (tol < pos) & (pos < shapely.length(geoms[piece]) - tol)
    cuts: dict[int, list[float]] = {}
    for p, x in zip(piece[inside].tolist(), pos[inside].tolist(), strict=True):
        cuts.setdefault(p, []).append(x)
    if not cuts:
        return geoms, owner
    out: list = []
    out_owner: list[int] = []
    for i, (geom, road_pos) in enumerate(zip(geoms.tolist(), owner.tolist(), strict=True)):
        if i not in cuts:
            out.append(geom)
            out_owner.append(road_pos)
            continue
        stops = [0.0, *sorted(set(np.round(cuts[i], 3).tolist())), geom.length]
        for a, b in itertools.pairwise(stops):
            if b - a > 0:
                out.append(shapely.ops.substring(geom, a, b))
                out_owner.append(road_pos)
    pieces = np.empty(len(out), dtype=object)
    pieces[:] = out
    return pieces, np.array(out_owner, dtype=np.int64)


def _fiber_index(fiber: gpd.GeoDataFrame | None):
    if fiber is None or len(fiber) == 0:
        return None
    geoms = fiber.geometry.to_numpy()
    return shapely.STRtree(geoms), fiber["operator"].astype(str).to_numpy(), geoms


def _fiber_on(pieces: np.ndarray, index, tol: float) -> list[frozenset[str]]:
    """Operators whose fiber covers each piece (its midpoint and both ends within ``tol``)."""
    found: list[set[str]] = [set() for _ in range(len(pieces))]
    if index is not None and len(pieces):
        tree, ops, geoms = index
        p, j = tree.query(pieces, predicate="dwithin", distance=tol)
        covered = np.ones(len(p), dtype=bool)
        for probe in (
            shapely.line_interpolate_point(pieces, 0.5, normalized=True),
            shapely.get_point(pieces, 0),
            shapely.get_point(pieces, -1),
        ):
            covered &= shapely.distance(geoms[j], probe[p]) <= tol
        for a, b in zip(p[covered].tolist(), j[covered].tolist(), strict=True):
            found[a].add(ops[b])
    return [frozenset(f) for f in found]


def operator_costs(
    G: nx.Graph,
    operators: Iterable[str],
    *,
    own_fiber_factor: float = 0.02,
    lease_factor: float | None = 0.3,
    copy: bool = True,
) -> nx.Graph:
    """Add a routing cost attribute per operator and one for the joint build (to a new graph;
    to ``G`` itself with ``copy=False``).

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
    ops = list(operators)
    if "joint" in ops:
        raise PlanError("an operator may not be called 'joint' (the name of the shared build)")
    H = G.copy() if copy else G
    H.graph["own_fiber_factor"] = own_fiber_factor
    H.graph["lease_factor"] = lease_factor
    H.graph["operators"] = tuple(ops)
    builds = [(f"cost_{op}", frozenset({op})) for op in ops] + [("cost_joint", frozenset(ops))]
    dicts = [d for _, _, d in H.edges(data=True)]
    fiber = [d.get("fiber", frozenset()) for d in dicts]
    anyone = frozenset().union(*fiber)
    own = [bool(members & anyone) for _, members in builds]  # has_own_fiber, for every build
    names = [name for name, _ in builds]
    keys = names + [f"{name}_fiber" for name in names]
    # what each build pays and reaches on an edge depends on its fiber only: worked out once
    # per set of carriers (as coalition_cost and mark_fiber_network do edge by edge), for all
    # the edges with that set at once
    kinds: dict[frozenset, int] = {}
    kind = np.fromiter((kinds.setdefault(c, len(kinds)) for c in fiber), np.int64, len(fiber))
    trench = np.empty(len(dicts), dtype=object)
    trench[:] = [d["trench_cost"] for d in dicts]
    values = np.empty((len(dicts), len(keys)), dtype=object)
    for carriers, k in kinds.items():
        rows = kind == k
        probe = {"fiber": carriers, "trench_cost": 1.0}
        for j, (_, m) in enumerate(builds):
            leased = carriers and (carriers & m or lease_factor is not None)
            factor = coalition_cost(probe, m, own_fiber_factor, lease_factor)
            values[rows, j] = trench[rows] * factor if leased else trench[rows]
        values[rows, len(builds) :] = [
            bool(carriers & m) if o else (bool(carriers) and lease_factor is not None)
            for (_, m), o in zip(builds, own, strict=True)
        ]
    columns = [values[:, j].tolist() for j in range(len(keys))]  # (no list per edge kept)
    for d, *row in zip(dicts, *columns, strict=True):
        d.update(zip(keys, row, strict=True))
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


def nearest_roads(G: nx.Graph, sites: gpd.GeoDataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Each site's nearest road edge (its position in ``G.edges``; -1: none) and distance (m;
    infinite: none), for :func:`far_from_roads` and :func:`snap_sites` to share (``G`` must
    not change in between)."""
    geoms = np.empty(G.number_of_edges(), dtype=object)
    geoms[:] = [g for _, _, g in G.edges(data="geometry")]
    hit = np.full(len(sites), -1, dtype=np.int64)
    gap = np.full(len(sites), np.inf)
    if len(geoms) and len(sites):
        (src, near), dist = shapely.STRtree(geoms).query_nearest(
            sites.geometry.to_numpy(), return_distance=True, all_matches=False
        )
        hit[src], gap[src] = near, dist
    return hit, gap


def far_from_roads(
    G: nx.Graph,
    sites: gpd.GeoDataFrame,
    max_distance_m: float,
    *,
    nearest: tuple[np.ndarray, np.ndarray] | None = None,
) -> dict[str, float]:
    """Sites farther than ``max_distance_m`` from every road of ``G``: ``{site_id: distance (m)}``
    (infinite when the graph has no road). ``nearest``: :func:`nearest_roads` of the sites,
    when already known."""
    if G.number_of_edges() == 0:
        return {str(s): math.inf for s in sites.index}
    _, gap = nearest_roads(G, sites) if nearest is None else nearest
    ids = sites.index
    return {str(ids[i]): float(gap[i]) for i in np.flatnonzero(~(gap <= max_distance_m)).tolist()}


@_gc_paused()  # the graph grows by a node and two edges a site
def snap_sites(
    G: nx.Graph,
    sites: gpd.GeoDataFrame,
    *,
    max_distance_m: float = 10_000.0,
    copy: bool = True,
    nearest: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[nx.Graph, dict]:
    """Connect each site to the nearest road point, splitting the road edge there.

    Returns the graph (a new one; ``G`` itself, changed, with ``copy=False``) and
    ``{site_id: node}``; the site node is ``("site", site_id)`` with a drop edge (road class
    ``access``) to the road point. Sites farther than ``max_distance_m`` from every road raise
    :class:`PlanError` listing them. ``nearest``: :func:`nearest_roads` of the sites, when
    already known.

    The edges are split one after the other (in order of their first site), each along its
    length (sites in order of distance, id and position): the graph's nodes and the order of
    every node's neighbours (which break the Steiner heuristic's ties) follow that order.
    """
    if not same_crs(sites.crs, G.graph["crs"]):
        raise CRSError(
            f"sites are in {crs_name(sites.crs)} but the graph in {crs_name(G.graph['crs'])}"
        )
    costs = G.graph.get("cost_per_m", DEFAULT_TRENCH_COST_PER_M)
    edges = list(G.edges(data="geometry"))
    geoms = np.empty(len(edges), dtype=object)
    geoms[:] = [g for _, _, g in edges]
    pts = sites.geometry.to_numpy()
    nearest, gap = nearest_roads(G, sites) if nearest is None else nearest
    far = [str(sites.index[i]) for i in np.flatnonzero(~(gap <= max_distance_m)).tolist()]
    if far:
        raise PlanError(
            f"{len(far)} sites are more than {max_distance_m:g} m from any road: "
            f"{', '.join(far[:20])}{', …' if len(far) > 20 else ''}; add the roads that reach "
            "them to the roads layer, or raise stages.backbone.max_snap_m (an access drop of "
            "that length is then costed)"
        )
    H = G.copy() if copy else G
    ids = sites.index.tolist()
    if not ids:
        return H, {}
    # the sites in the order they are connected: by edge (in order of each edge's first site),
    # then along it by distance, id and position
    n = len(ids)
    first = np.full(len(edges), n, dtype=np.int64)
    np.minimum.at(first, nearest, np.arange(n))
    along = shapely.line_locate_point(geoms[nearest], pts)
    name = np.unique(np.array([str(i) for i in ids], dtype=str), return_inverse=True)[1]
    order = np.lexsort((np.arange(n), name, along, first[nearest]))
    nearest, along, pts = nearest[order], along[order], pts[order]
    ids = [ids[i] for i in order.tolist()]
    # each site's point on its road edge (its node, cm-rounded) and the drop to it
    xy = shapely.get_coordinates(shapely.line_interpolate_point(geoms[nearest], along))
    site_xy = shapely.get_coordinates(pts)
    drops = shapely.linestrings(np.stack([site_xy, xy], axis=1))
    keys = [tuple(k) for k in _round_cm(xy).tolist()]
    split = _Split(H, edges, nearest, along, xy, keys)
    new_point, site_xy = split.new_point.tolist(), site_xy.tolist()

    def nodes(lo: int, hi: int) -> Iterator[tuple]:
        """Sites lo…hi-1's road points (unless already nodes) and sites, with attributes."""
        for k in range(lo, hi):
            key, site_id, (sx, sy) = keys[k], ids[k], site_xy[k]
            if new_point[k]:
                yield key, {"x": key[0], "y": key[1], "kind": "road_point"}
            yield ("site", site_id), {"x": sx, "y": sy, "kind": "site", "site_id": str(site_id)}

    drop_len = shapely.length(drops)
    drop_cost, drop_len, drops = (
        (drop_len * costs["access"]).tolist(),
        drop_len.tolist(),
        drops.tolist(),
    )

    def drop(k: int) -> tuple:
        """Site k's drop edge to its road point."""
        return ("site", ids[k]), keys[k], {
            "length_m": drop_len[k], "road_class": "access", "road_id": "", "fiber": frozenset(),
            "trench_cost": drop_cost[k], "geometry": drops[k],
        }  # fmt: skip

    split.apply(H, nodes, drop)
    return H, {site_id: ("site", site_id) for site_id in ids}


class _Split:
    """The road edges that sites snap to, cut at the sites' road points: the pieces (made all
    at once, as :func:`shapely.ops.substring` would) and the order in which the edges are
    replaced by them. ``edge``, ``along``, ``xy``, ``keys``: each site's edge, distance along
    it, road point and its node, sites in the order they are connected."""

    def __init__(self, H: nx.Graph, edges: list, edge: np.ndarray, along, xy, keys) -> None:
        n = len(edge)
        head = np.ones(n, dtype=bool)  # the first site on each split edge
        head[1:] = edge[1:] != edge[:-1]
        tail = np.append(head[1:], True)  # and the last
        group = np.cumsum(head) - 1  # each site's split edge, numbered
        self.split = [edges[e] for e in edge[head].tolist()]
        lines = np.empty(len(self.split), dtype=object)
        lines[:] = [g for _, _, g in self.split]
        length = shapely.length(lines)
        p0 = shapely.get_coordinates(shapely.line_interpolate_point(lines, 0.0))
        p1 = shapely.get_coordinates(shapely.line_interpolate_point(lines, length))
        # a: the end where the edge's geometry starts
        starts = [tuple(k) for k in _round_cm(shapely.get_coordinates(shapely.get_point(lines, 0)))
                  .tolist()]  # fmt: skip
        ends = [
            (u, v) if s == u else (v, u) for (u, v, _), s in zip(self.split, starts, strict=True)
        ]
        # every node involved, numbered, so that they compare as numbers
        self.objs = list(dict.fromkeys([*itertools.chain.from_iterable(ends), *keys]))
        number = {k: i for i, k in enumerate(self.objs)}
        a = np.array([number[u] for u, _ in ends], dtype=np.int64)
        b = np.array([number[v] for _, v in ends], dtype=np.int64)
        node = np.array([number[k] for k in keys], dtype=np.int64)
        self.old = np.array([k in H for k in self.objs], dtype=bool)  # in the graph before
        self.new_point = ~self.old[node]
        # between consecutive sites on an edge (from the edge's start a): a piece where the
        # site lies farther along at another node; after the last site: a piece to b
        prev_node = np.where(head, a[group], np.roll(node, 1))
        prev_pos = np.where(head, 0.0, np.roll(along, 1))
        prev_xy = np.where(head[:, None], p0[group], np.roll(xy, 1, axis=0))
        inner = np.flatnonzero((along > prev_pos) & (node != prev_node))
        last = np.flatnonzero(tail & (node != b[group]))
        self.group = np.concatenate([group[inner], group[last]])
        self.ends = np.stack(
            [
                np.concatenate([prev_node[inner], node[last]]),
                np.concatenate([node[inner], b[group[last]]]),
            ],
            axis=1,
        )
        self.pieces = _substrings(
            lines,
            self.group,
            np.concatenate([prev_pos[inner], along[last]]),
            np.concatenate([along[inner], length[group[last]]]),
            np.concatenate([prev_xy[inner], xy[last]]),
            np.concatenate([xy[inner], p1[group[last]]]),
        )
        self.piece_len = shapely.length(self.pieces)
        # the order of the new edges: each site's piece before its drop, the last piece after
        self.step = np.concatenate([3 * inner, 3 * last + 2])
        self.site_group = group

    def collides(self) -> bool:
        """Whether a piece joins the two nodes of an edge split after it: its attributes would
        then be those of the piece, as when the edges are replaced one after the other."""
        later = {}
        for g, (u, v, _) in enumerate(self.split):
            later[frozenset((u, v))] = g
        both = np.flatnonzero(self.old[self.ends[:, 0]] & self.old[self.ends[:, 1]])
        return any(
            later.get(frozenset((self.objs[p], self.objs[q])), -1) > g
            for p, q, g in zip(*self.ends[both].T.tolist(), self.group[both].tolist(), strict=True)
        )

    def apply(self, H: nx.Graph, nodes, drop) -> None:
        """Replace the split edges by their pieces and add the sites' nodes (``nodes(lo, hi)``:
        those of sites lo…hi-1, with attributes) and drops (``drop(k)``: site k's), in bulk
        where that gives the graph that replacing the edges one after the other gives, else
        one edge at a time. (Made as they are added: a list of them all would be kept.)"""
        n = len(self.site_group)
        order = np.argsort(np.concatenate([self.step, 3 * np.arange(n) + 1]))
        entry = np.concatenate([np.arange(len(self.step)), -1 - np.arange(n)])[order]
        group = np.concatenate([self.group, self.site_group])[order]
        pieces, lengths, ends = self.pieces.tolist(), self.piece_len.tolist(), self.ends.tolist()
        piece_group, objs = self.group.tolist(), self.objs

        def new_edges(entries: list, data) -> Iterator[tuple]:
            for j in entries:
                if j < 0:
                    yield drop(-1 - j)
                    continue
                d, per_m = data[piece_group[j]]
                ln = lengths[j]
                p, q = ends[j]
                yield objs[p], objs[q], {**d, "length_m": ln, "trench_cost": ln * per_m,
                                         "geometry": pieces[j]}  # fmt: skip

        if not self.collides():
            data = [_with_cost_per_m(H.edges[u, v]) for u, v, _ in self.split]
            H.remove_edges_from([(u, v) for u, v, _ in self.split])
            _add_nodes(H, nodes, 0, n)
            H.add_edges_from(new_edges(entry.tolist(), data))
            return
        at_site = np.searchsorted(self.site_group, np.arange(len(self.split) + 1)).tolist()
        at_edge = np.searchsorted(group, np.arange(len(self.split) + 1))
        for g, (u, v, _) in enumerate(self.split):
            data = {g: _with_cost_per_m(dict(H.edges[u, v]))}
            H.remove_edge(u, v)
            _add_nodes(H, nodes, at_site[g], at_site[g + 1])
            H.add_edges_from(new_edges(entry[at_edge[g] : at_edge[g + 1]].tolist(), data))


def _add_nodes(H: nx.Graph, nodes, lo: int, hi: int) -> None:
    """``H.add_nodes_from(nodes(lo, hi))`` (``(node, attributes)`` pairs), in two steps:
    networkx tells pairs from nodes by failing to hash them, slowly."""
    H.add_nodes_from(node for node, _ in nodes(lo, hi))
    attributes = H.nodes
    for node, values in nodes(lo, hi):
        attributes[node].update(values)


def _with_cost_per_m(d: dict) -> tuple[dict, float]:
    return d, d["trench_cost"] / d["length_m"] if d["length_m"] > 0 else 0.0


def _substrings(lines, which, start, end, p_start, p_end) -> np.ndarray:
    """:func:`shapely.ops.substring` of ``lines[which[k]]`` from ``start[k]`` to ``end[k]``
    for every k, all made at once for 0 ≤ start < end, start < length: the same end points (``p_start``, ``p_end``: the lines' points at ``start`` and
    ``end``, x and y) and the same vertices in between.

    substring takes the vertices whose distance along the line lies strictly between the two,
    adding the segments' lengths up with Python's float ``**``, which is not always numpy's
    correctly rounded square and root: the distances are added up with numpy, and the lines
    with a vertex within that sum's error bound of a cut are added up again as substring
    does."""
    out = np.empty(len(which), dtype=object)
    length = shapely.length(lines)
    ok = (start >= 0) & (start < end) & (start < length[which])
    for k in np.flatnonzero(~ok).tolist():
        out[k] = shapely.ops.substring(lines[which[k]], start[k], end[k])
    k_ok = np.flatnonzero(ok)
    if len(k_ok) == 0:
        return out
    xy, line_of = shapely.get_coordinates(lines, return_index=True)
    first = np.searchsorted(line_of, np.arange(len(lines)))
    nseg = np.bincount(line_of, minlength=len(lines)) - 1  # vertices but the last
    cum = np.zeros(len(xy))  # each vertex's distance along its line
    step = np.diff(xy, axis=0)
    seg = np.sqrt(step[:, 0] * step[:, 0] + step[:, 1] * step[:, 1])
    for c in np.unique(nseg[nseg > 1]).tolist():  # lines of c segments: each added up in order
        at = first[nseg == c][:, None] + np.arange(c - 1)
        cum[at + 1] = np.cumsum(seg[at], axis=1)
    tol = 8.0 * (nseg + 2) * np.finfo(np.float64).eps * length
    # every vertex but the last of each piece's line
    count = nseg[which[k_ok]]
    row = np.repeat(np.arange(len(k_ok)), count)
    vertex = (
        first[which[k_ok]][row] + np.arange(len(row)) - np.repeat(np.cumsum(count) - count, count)
    )
    lo, hi = start[k_ok][row], end[k_ok][row]
    # (a line's first vertex is at 0 in both sums)
    at, near = cum[vertex], tol[line_of[vertex]]
    near = ((np.abs(at - lo) <= near) | (np.abs(at - hi) <= near)) & (
        vertex != first[line_of[vertex]]
    )
    for i in np.unique(line_of[vertex[near]]).tolist():
        cum[first[i] : first[i] + nseg[i]] = _python_cum(
            xy[first[i] : first[i] + nseg[i] + 1].tolist()
        )
    inside = (cum[vertex] > lo) & (cum[vertex] < hi)
    inner = np.bincount(row[inside], minlength=len(k_ok))
    size = inner + 2
    at = np.cumsum(size) - size
    coords = np.empty((int(size.sum()), 2))
    coords[at] = p_start[k_ok]
    coords[at + size - 1] = p_end[k_ok]
    rank = np.arange(int(inside.sum())) - np.repeat(np.cumsum(inner) - inner, inner)
    coords[at[row[inside]] + 1 + rank] = xy[vertex[inside]]
    out[k_ok] = shapely.linestrings(coords, indices=np.repeat(np.arange(len(k_ok)), size))
    return out


def _python_cum(coords: list) -> list[float]:
    """The distances along a line to its vertices but the last, added up as
    :func:`shapely.ops.substring` does."""
    cum, d = [], 0
    for p1, p2 in itertools.pairwise(coords):
        cum.append(d)
        d += ((p2[0] - p1[0]) ** 2 + (p2[1] - p1[1]) ** 2) ** 0.5
    return cum


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
