"""Joining the pieces of a road network: ends that stop short, and the shortest off-road links.

:func:`join_dangling_ends` joins a road that stops just short of another (a T-junction
digitised a few centimetres short) before the roads are noded.

A road file cut to a study area, or a national road file without the city's streets, often
falls into pieces that do not meet: a provincial road that ends a few hundred metres short of
the highway, a peninsula's road network whose link was cut by the clip. Every site that snaps
to a small piece would then have no road path to the others. :func:`gap_links` gives the
straight links that join the pieces as cheaply as possible: the minimum spanning forest of
the pieces, each pair weighted by the shortest gap between their roads (measured
between points at most ``spacing_m`` apart along each road), keeping only gaps up to
``max_gap_m``.

The candidate gaps are the edges of the Delaunay triangulation of the points that join two
pieces: a shortest gap that is not one (some third point lies inside the circle on it as a
diameter, nearer to both ends) is never needed, since the gaps through that point are shorter
and pieces are free to cross inside (the Euclidean minimum spanning tree lies in the
triangulation); a small point set is searched pair by pair instead.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
import shapely.ops
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from shapely.geometry import LineString

from telcoplan.backbone.choices import OFF_ROAD

__all__ = ["GapLinks", "gap_links", "join_dangling_ends", "log_pieces", "with_gap_links"]

log = logging.getLogger(__name__)


#: Below this many points every pair is a candidate gap (no triangulation).
_ALL_PAIRS_MAX_POINTS = 2_000
#: About this many points along the roads weigh the gaps, at most (a national network: one every
#: ~1 km; 1.5 s to join 65 pieces of the national demo's roads, the links within 0.2 % of the
#: length found with 4 times the points).
_MAX_SAMPLES = 100_000
#: A link's end this close to a road lies on it (it becomes a vertex of the road).
_ON_ROAD_M = 1e-3


@dataclass(frozen=True)
class GapLinks:
    """The links that join a road network's pieces, and what stays apart."""

    lines: np.ndarray  # straight LineStrings, one per link
    length_m: np.ndarray
    pieces: int  # pieces of the network before joining
    apart: int  # pieces after joining (1: one connected network)


def with_gap_links(
    roads: gpd.GeoDataFrame, geoms: np.ndarray, u: np.ndarray, v: np.ndarray, max_gap_m: float
) -> tuple[gpd.GeoDataFrame | None, dict[str, Any]]:
    """``roads`` (``road_class`` and geometry) with the :func:`gap_links` of their graph's edges
    (``geoms``, ``u``, ``v``) added as roads of class :data:`OFF_ROAD` (ids ``(off-road N)``),
    or ``None`` when there are none; and what was joined, for the graph and the summary
    (:func:`log_pieces`). Each link's ends become vertices of the roads they lie on, so that
    noding joins them exactly."""
    links = gap_links(geoms, u, v, max_gap_m)
    info = {
        "before": links.pieces,
        "apart": links.apart,
        "links": len(links.lines),
        "length_m": float(links.length_m.sum()),
        "longest_m": float(links.length_m.max(initial=0.0)),
    }
    if not len(links.lines):
        return None, info
    n = len(links.lines)
    extra = gpd.GeoDataFrame(
        {"road_class": [OFF_ROAD] * n},
        index=pd.Index([f"({OFF_ROAD} {k + 1})" for k in range(n)]),
        geometry=links.lines,
        crs=roads.crs,
    )
    if roads.geometry.name != "geometry":
        extra = extra.rename_geometry(roads.geometry.name)
    kept = roads[["road_class", roads.geometry.name]]
    lines = kept.geometry.to_numpy().copy()
    ends = shapely.points(
        np.concatenate(
            [shapely.get_coordinates(shapely.get_point(links.lines, k)) for k in (0, -1)]
        )
    )
    # an end lies on its road up to rounding: a vertex there (snapping inserts it)
    near, road = shapely.STRtree(lines).query(ends, predicate="dwithin", distance=_ON_ROAD_M)
    for r in np.unique(road).tolist():
        lines[r] = shapely.snap(lines[r], shapely.multipoints(ends[near[road == r]]), _ON_ROAD_M)
    kept = kept.set_geometry(gpd.GeoSeries(lines, index=kept.index, crs=roads.crs))
    return pd.concat([kept, extra]), info


def log_pieces(info: dict[str, Any], max_gap_m: float) -> None:
    """Say how the road network's pieces were joined (:func:`with_gap_links`'s ``info``, with
    ``apart`` counted on the graph built)."""
    if info["before"] <= 1:
        return
    n = info["links"]
    log.info(
        "backbone: the roads fall into %d pieces that do not meet; %d straight %s trench%s of "
        "%.1f km in all (the longest %.0f m) join%s them%s",
        info["before"],
        n,
        OFF_ROAD,
        "" if n == 1 else "es",
        info["length_m"] / 1000.0,
        info["longest_m"],
        "s" if n == 1 else "",
        ""
        if info["apart"] == 1
        else f"; {info['apart']} pieces stay more than {max_gap_m:g} m apart (sites on the "
        "smaller ones may be left out: stages.backbone.join_pieces_m)",
    )


def gap_links(
    geoms: np.ndarray, u: np.ndarray, v: np.ndarray, max_gap_m: float, spacing_m: float = 100.0
) -> GapLinks:
    """The straight links of the minimum spanning forest of the road pieces, gaps ≤ ``max_gap_m``.

    ``geoms`` are the road graph's edges (LineStrings) and ``u``, ``v`` their end nodes
    (numbers); a piece is a connected set of edges. The pieces are weighed by the gaps between
    points every ``spacing_m`` along their roads (more apart on a network too long for about
    100,000 of them); each chosen link then runs between the nearest points of the two roads
    it joins. Deterministic: ties go to the first points in the edges'
    order.
    """
    u, v = np.asarray(u, dtype=np.int64), np.asarray(v, dtype=np.int64)
    empty = np.empty(0, dtype=object)
    if len(geoms) == 0:
        return GapLinks(empty, np.zeros(0), 0, 0)
    n = int(max(u.max(), v.max())) + 1
    graph = coo_matrix((np.ones(len(u)), (u, v)), shape=(n, n))
    _, node_piece = connected_components(graph, directed=False)
    piece = np.unique(node_piece[u], return_inverse=True)[1]  # each edge's piece, 0…k-1
    k = int(piece.max()) + 1
    if k == 1:
        return GapLinks(empty, np.zeros(0), 1, 1)
    geoms = np.asarray(geoms, dtype=object)
    spacing = max(spacing_m, float(shapely.length(geoms).sum()) / _MAX_SAMPLES)
    # the roads' shapes to a quarter of the spacing (a detailed national file has millions of
    # vertices), points every spacing along them: which two roads a link joins is weighed on
    # these; the link itself runs between the roads' nearest points (below)
    sampled = shapely.segmentize(shapely.simplify(geoms, spacing / 4.0), spacing)
    xy, edge = shapely.get_coordinates(sampled, return_index=True)
    # each point once per piece (a node is the end of several edges)
    _, first = np.unique(np.column_stack([xy, piece[edge]]), axis=0, return_index=True)
    first.sort()
    xy, edge = xy[first], edge[first]
    label = piece[edge]
    i, j = _candidate_pairs(xy, label)
    d = np.hypot(*(xy[i] - xy[j]).T)
    order = np.lexsort((j, i, d))
    parent = np.arange(k)

    def root(a: int) -> int:
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    chosen: list[int] = []
    joins = 0
    for c in order.tolist():
        if d[c] > max_gap_m or joins == k - 1:
            break
        a, b = root(int(label[i[c]])), root(int(label[j[c]]))
        if a != b:
            parent[max(a, b)] = min(a, b)
            chosen.append(c)
            joins += 1
    if not joins:
        return GapLinks(empty, np.zeros(0), k, k)
    pick = np.asarray(chosen, dtype=np.int64)
    # between the two roads' nearest points (no longer than between the points weighed)
    lines = shapely.shortest_line(geoms[edge[i[pick]]], geoms[edge[j[pick]]])
    return GapLinks(np.asarray(lines, dtype=object), shapely.length(lines), k, k - joins)


def _candidate_pairs(xy: np.ndarray, label: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pairs of points (``i < j``) on different pieces among which the shortest gaps are."""
    n = len(xy)
    if n <= _ALL_PAIRS_MAX_POINTS:
        i, j = np.triu_indices(n, k=1)
    else:
        from scipy.spatial import Delaunay, QhullError

        centred = xy - xy.mean(axis=0)  # (qhull's precision at UTM coordinates)
        try:
            simplices = Delaunay(centred).simplices
        except QhullError:  # all on a line: joggled (the simplices index the points as given)
            simplices = Delaunay(centred, qhull_options="QJ").simplices
        pairs = np.concatenate([simplices[:, [0, 1]], simplices[:, [1, 2]], simplices[:, [0, 2]]])
        pairs = np.unique(np.sort(pairs, axis=1), axis=0)
        i, j = pairs[:, 0], pairs[:, 1]
    keep = label[i] != label[j]
    return i[keep], j[keep]


def join_dangling_ends(geoms: np.ndarray, tol: float) -> np.ndarray:
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
