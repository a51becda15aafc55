"""The land of the synthetic national demo: country outline, provinces, settlements, roads.

Everything here is SYNTHETIC and made in code from a seeded :class:`numpy.random.Generator`
(see :mod:`telcoplan.demo.national`, which builds the whole scenario and describes how). All
lengths are multiplied by ``scale`` (1 = the full, Vietnam-sized country), so a small ``scale``
gives a miniature of the same country (for tests).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from scipy import ndimage
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components, minimum_spanning_tree, shortest_path
from scipy.spatial import Delaunay

from telcoplan.gis.grid import GridSpec

__all__ = [
    "AREA_KM2",
    "NATIONAL_CRS",
    "SOURCE",
    "Settlements",
    "build_provinces",
    "build_roads",
    "country_outline",
    "frame",
    "population_weights",
]

log = logging.getLogger(__name__)

#: CRS of every layer of the national demo: WGS 84 / UTM zone 48N (metres).
NATIONAL_CRS = "EPSG:32648"
#: Land area of Vietnam (km², a public fact): the area of the synthetic country at scale 1.
AREA_KM2 = 331_000.0
#: The ``source`` column of every vector layer.
SOURCE = "synthetic telcoplan national demo"

#: Centre of the country (UTM 48N, m): the zone's central meridian, 105° E, near 16° N.
_CENTRE = (500_000.0, 1_770_000.0)
#: Outline: a superellipse |x|^p + |y|^p = 1 (fills ≈ 97 % of its bounding box at p = 8) whose
#: radius is perturbed by seeded low harmonics (2nd to 12th) of this relative size.
_OUTLINE_P, _OUTLINE_WIGGLE, _OUTLINE_VERTICES = 8.0, 0.015, 720
_PRECISION_M = 0.01  # precision grid of the province polygons (1 cm)
_LLOYD_ROUNDS = 2  # few rounds: provinces become rounder but keep varied sizes

# ----------------------------------------------------------------------------------- settlements
#: Shares of the population: cities (the province capitals), towns, the countryside.
_CITY_SHARE, _TOWN_SHARE = 0.35, 0.10
#: Towns at scale 1 and their spread (m at scale 1).
_N_TOWNS, _TOWN_SIGMA_M = 600, 1_500.0
#: A city's spread (m at scale 1): base + extra · sqrt(relative size).
_CITY_SIGMA_M = (2_500.0, 7_500.0)
#: Cells of the coarse noise grid (along the longer side) behind the countryside's density.
_COARSE = 96

# ----------------------------------------------------------------------------------------- roads
#: Spacing (m at scale 1) of the jittered lattice of local roads, and its jitter (x spacing).
_LATTICE_M, _LATTICE_JITTER = 6_000.0, 0.2
#: Roads are drawn with a vertex every this many metres (at scale 1), wiggling sideways.
_WIGGLE_STEP_M, _WIGGLE = 5_000.0, 0.03
#: Noded pieces shorter than this (m) are dropped.
_MIN_PIECE_M = 0.5


@dataclass(frozen=True)
class Settlements:
    """Where people live: the province capitals (cities) and the towns.

    Attributes
    ----------
    capitals : numpy.ndarray
        (63, 2) city centres (m), one per province, in the order of the provinces.
    city_size : numpy.ndarray
        Relative size of each city (the largest is 1).
    towns : numpy.ndarray
        (n, 2) town centres (m).
    """

    capitals: np.ndarray
    city_size: np.ndarray
    towns: np.ndarray


def frame(data: dict, geometry, crs: str = NATIONAL_CRS) -> gpd.GeoDataFrame:
    """A GeoDataFrame of ``data`` and ``geometry`` with the ``source`` column saying SYNTHETIC."""
    df = pd.DataFrame(data)
    df["source"] = SOURCE
    return gpd.GeoDataFrame(df, geometry=gpd.GeoSeries(list(geometry), crs=crs), crs=crs)


# ---------------------------------------------------------------------------------------- country
def country_outline(rng: np.random.Generator, scale: float) -> shapely.Polygon:
    """A compact, irregular country of ``AREA_KM2 · scale²`` km² around :data:`_CENTRE`.

    Notes
    -----
    ``r(θ) = (|cos θ|^p + |sin θ|^p)^(-1/p) · (1 + Σₖ aₖ cos(kθ + φₖ))`` for k = 2…12 with
    ``aₖ ~ N(0, (0.015 / k^0.7)²)`` and uniform phases, then scaled to the area. A star-shaped
    curve with r > 0 never crosses itself, so the polygon is valid.
    """
    theta = np.linspace(0.0, 2.0 * np.pi, _OUTLINE_VERTICES, endpoint=False)
    p = _OUTLINE_P
    r = (np.abs(np.cos(theta)) ** p + np.abs(np.sin(theta)) ** p) ** (-1.0 / p)
    k = np.arange(2, 13)
    amp = _OUTLINE_WIGGLE * rng.standard_normal(k.size) / k**0.7
    phase = rng.uniform(0.0, 2.0 * np.pi, k.size)
    r = r * (1.0 + (amp[:, None] * np.cos(k[:, None] * theta + phase[:, None])).sum(axis=0))
    xy = np.column_stack([r * np.cos(theta), r * np.sin(theta)])
    factor = np.sqrt(AREA_KM2 * 1e6 * scale**2 / shapely.Polygon(xy).area)
    poly = shapely.Polygon(xy * factor + np.asarray(_CENTRE))
    return shapely.set_precision(poly, _PRECISION_M)


def build_provinces(
    rng: np.random.Generator, outline: shapely.Polygon, n: int
) -> tuple[np.ndarray, np.ndarray]:
    """``n`` provinces partitioning ``outline``, and a capital inside each.

    Voronoi cells of seeded points (two rounds of Lloyd's relaxation), clipped to the outline on
    a 1 cm precision grid, so that they form an exact partition (no gaps, no overlaps). Each
    capital is a random point inside its province, within half its equivalent radius of its
    centroid.

    Returns
    -------
    (polygons, capitals)
        object array of ``n`` (Multi)Polygons and (n, 2) capital coordinates (m).
    """
    xmin, ymin, xmax, ymax = outline.bounds
    seeds = _points_inside(rng, outline, n)
    box = shapely.box(xmin - (xmax - xmin), ymin - (ymax - ymin), xmax + (xmax - xmin),
                      ymax + (ymax - ymin))  # fmt: skip
    for _ in range(_LLOYD_ROUNDS + 1):
        cells = shapely.get_parts(
            shapely.voronoi_polygons(shapely.multipoints(seeds), extend_to=box)
        )
        # voronoi_polygons does not promise the seeds' order: find each cell's seed
        order = np.empty(n, dtype=np.int64)
        for i, cell in enumerate(cells):
            (hit,) = np.flatnonzero(shapely.contains_xy(cell, seeds[:, 0], seeds[:, 1]))
            order[hit] = i
        pieces = shapely.intersection(cells[order], outline, grid_size=_PRECISION_M)
        seeds = shapely.get_coordinates(shapely.centroid(pieces))
    capitals = np.empty((n, 2))
    for i, poly in enumerate(pieces):
        c = seeds[i]
        radius = 0.5 * np.sqrt(poly.area / np.pi)
        for _ in range(100):
            p = c + rng.uniform(-radius, radius, 2)
            if np.hypot(*(p - c)) <= radius and shapely.contains_xy(poly, p[0], p[1]):
                break
        else:  # pragma: no cover - a very thin province
            p = shapely.get_coordinates(shapely.point_on_surface(poly))[0]
        capitals[i] = p
    return pieces, capitals


def _points_inside(rng: np.random.Generator, poly: shapely.Geometry, n: int) -> np.ndarray:
    """``n`` uniform random points inside ``poly`` (rejection sampling in its bounding box)."""
    xmin, ymin, xmax, ymax = poly.bounds
    out = np.empty((0, 2))
    while len(out) < n:
        p = rng.uniform((xmin, ymin), (xmax, ymax), size=(2 * n + 16, 2))
        out = np.vstack([out, p[shapely.contains_xy(poly, p[:, 0], p[:, 1])]])
    return out[:n]


# ------------------------------------------------------------------------------------ population
def population_weights(
    rng: np.random.Generator,
    grid: GridSpec,
    labels: np.ndarray,
    capitals: np.ndarray,
    scale: float,
) -> tuple[np.ndarray, Settlements]:
    """Residential weight per cell (float64, sums to 1 over the country, 0 outside) and the
    settlements it is made of.

    Notes
    -----
    ``w = 0.55 · countryside + 0.35 · Σ cities + 0.10 · Σ towns`` (each part normalised):

    * countryside: ``exp(0.8 z₁) · (1 - 0.95 s((z₂ - 0.6) / 0.15))``, with z₁, z₂ smooth
      standardised Gaussian noise (σ ≈ 18 km at scale 1) and ``s`` the logistic function: a
      patchy rural density with sparse "highlands" (≈ 5 % of the density) over about a quarter
      of the land, where coverage gaps are;
    * cities: one Gaussian per province capital of σ = (2.5 + 7.5 √size) km · scale; the sizes
      follow a rank-size rule ``1 / r^1.05`` with two metropolises of sizes 1 and 0.9, one
      among the ten northernmost capitals, one among the ten southernmost;
    * towns: ``600 · scale²`` Gaussians of σ = 1.5 km · scale with log-normal sizes, placed
      where the countryside is dense.
    """
    n = len(capitals)
    inside = labels >= 0
    countryside, coarse = _countryside(rng, grid)
    countryside = np.where(inside, countryside, 0.0)
    countryside /= countryside.sum()

    # the two metropolises, north and south; every other rank at random
    north, south = np.argsort(-capitals[:, 1])[:10], np.argsort(capitals[:, 1])[:10]
    first, second = int(rng.choice(north)), int(rng.choice(south))
    rest = [i for i in rng.permutation(n) if i not in (first, second)]
    rank = np.empty(n, dtype=np.int64)
    rank[[first, second, *rest]] = np.arange(1, n + 1)
    size = np.where(rank == 1, 1.0, np.where(rank == 2, 0.9, 1.0 / rank.astype(float) ** 1.05))
    sigma = scale * (_CITY_SIGMA_M[0] + _CITY_SIGMA_M[1] * np.sqrt(size))
    cities = np.zeros(grid.shape)
    for (cx, cy), a, s in zip(capitals, size, sigma, strict=True):
        _add_gaussian(cities, grid, cx, cy, a, s)
    cities = np.where(inside, cities, 0.0)
    cities /= cities.sum()

    n_towns = round(_N_TOWNS * scale**2)
    towns_xy = _sample_coarse(rng, coarse, grid, labels, n_towns)
    towns = np.zeros(grid.shape)
    town_size = rng.lognormal(0.0, 0.6, n_towns)
    for (cx, cy), a in zip(towns_xy, town_size, strict=True):
        _add_gaussian(towns, grid, cx, cy, a, _TOWN_SIGMA_M * scale)
    if n_towns:
        towns = np.where(inside, towns, 0.0)
        towns /= towns.sum()
        w = (1.0 - _CITY_SHARE - _TOWN_SHARE) * countryside + _CITY_SHARE * cities
        w += _TOWN_SHARE * towns
    else:
        w = (1.0 - _CITY_SHARE) * countryside + _CITY_SHARE * cities
    del countryside, cities, towns
    w /= w.sum()
    return w, Settlements(capitals=capitals, city_size=size, towns=towns_xy)


def _countryside(rng: np.random.Generator, grid: GridSpec) -> tuple[np.ndarray, np.ndarray]:
    """Rural density on ``grid`` and on the coarse grid it is interpolated from."""
    h = max(4, round(_COARSE * grid.height / max(grid.height, grid.width)))
    w = max(4, round(_COARSE * grid.width / max(grid.height, grid.width)))
    fields = []
    for _ in range(2):
        z = ndimage.gaussian_filter(rng.standard_normal((h, w)), sigma=3.0, mode="reflect")
        fields.append((z - z.mean()) / max(float(z.std()), 1e-12))
    z1, z2 = fields
    coarse = np.exp(0.8 * z1) * (1.0 - 0.95 / (1.0 + np.exp(-(z2 - 0.6) / 0.15)))
    # bilinear interpolation onto the grid as two small dense matrices: R · C · Qᵀ
    return _interp_matrix(grid.height, h) @ coarse @ _interp_matrix(grid.width, w).T, coarse


def _interp_matrix(n_fine: int, n_coarse: int) -> np.ndarray:
    """(n_fine, n_coarse) weights of linear interpolation at the fine cells' centres."""
    pos = np.clip((np.arange(n_fine) + 0.5) * n_coarse / n_fine - 0.5, 0.0, n_coarse - 1.0)
    i0 = np.minimum(np.floor(pos).astype(np.int64), n_coarse - 2)
    f = pos - i0
    m = np.zeros((n_fine, n_coarse))
    rows = np.arange(n_fine)
    m[rows, i0] = 1.0 - f
    m[rows, i0 + 1] += f
    return m


def _add_gaussian(
    out: np.ndarray, grid: GridSpec, cx: float, cy: float, amplitude: float, sigma: float
) -> None:
    """Add ``amplitude · exp(-r² / 2σ²)`` within 4σ of (cx, cy) to ``out``, in place."""
    res = grid.resolution
    r, c = grid.rowcol(np.array([cx]), np.array([cy]))
    k = int(np.ceil(4.0 * sigma / res))
    r0, r1 = max(int(r[0]) - k, 0), min(int(r[0]) + k + 1, grid.height)
    c0, c1 = max(int(c[0]) - k, 0), min(int(c[0]) + k + 1, grid.width)
    if r0 >= r1 or c0 >= c1:
        return
    gy = np.exp(-0.5 * ((grid.y_centres()[r0:r1] - cy) / sigma) ** 2)
    gx = np.exp(-0.5 * ((grid.x_centres()[c0:c1] - cx) / sigma) ** 2)
    out[r0:r1, c0:c1] += amplitude * np.outer(gy, gx)


def _sample_coarse(
    rng: np.random.Generator, coarse: np.ndarray, grid: GridSpec, labels: np.ndarray, n: int
) -> np.ndarray:
    """``n`` points inside the country drawn with probability ∝ the coarse density."""
    h, w = coarse.shape
    p = (coarse / coarse.sum()).ravel()
    x0, y0, x1, y1 = grid.bounds
    out = np.empty((0, 2))
    while len(out) < n:
        idx = rng.choice(p.size, size=2 * (n - len(out)) + 8, p=p)
        r, c = np.divmod(idx, w)
        u = rng.random((idx.size, 2))
        x = x0 + (c + u[:, 0]) * (x1 - x0) / w
        y = y1 - (r + u[:, 1]) * (y1 - y0) / h
        rr, cc = grid.rowcol(x, y)
        ok = grid.contains_rowcol(rr, cc)
        ok[ok] = labels[rr[ok], cc[ok]] >= 0
        out = np.vstack([out, np.column_stack([x, y])[ok]])
    return out[:n]


# ------------------------------------------------------------------------------------------ roads
def build_roads(
    rng: np.random.Generator,
    outline: shapely.Polygon,
    settlements: Settlements,
    scale: float,
) -> gpd.GeoDataFrame:
    """The national road network: one connected, noded network of LineString segments.

    * motorway: the north–south expressway, the shortest chain of highways between the two
      metropolises;
    * trunk: national highways between neighbouring province capitals (the Gabriel graph of
      the capitals: i–j is a highway when no other capital lies in the circle on i–j);
    * secondary: provincial roads, the edges of the Euclidean minimum spanning tree of the
      capitals and towns that reach a town;
    * tertiary and track: local roads on a jittered lattice of 6 km · scale (every third line
      is a district road, ``tertiary``, the others commune roads, ``track``).

    Highways and provincial roads wiggle sideways (≤ ≈ 3 % of their length). Every line is cut
    to the country, all are noded together, each piece takes the class of the most important
    line it lies on, and only the largest connected network is kept.
    """
    caps, towns = settlements.capitals, settlements.towns
    lines: list[tuple[str, str, shapely.LineString]] = []

    hw = _gabriel_edges(caps)
    motorway = _chain(caps, hw, *np.argsort(-settlements.city_size)[:2])
    for k, (i, j) in enumerate(hw):
        cls = "motorway" if (i, j) in motorway else "trunk"
        name = "Cao tốc Bắc – Nam" if cls == "motorway" else f"Quốc lộ {k + 1}"
        lines.append((f"{name} (synthetic)", cls, _wiggly(rng, caps[i], caps[j], scale)))

    pts = np.vstack([caps, towns]) if len(towns) else caps
    k = 0
    for i, j in _emst_edges(pts):
        if i < len(caps) and j < len(caps):
            continue  # between two capitals: a highway already runs near
        k += 1
        lines.append(
            (f"Đường tỉnh {k} (synthetic)", "secondary", _wiggly(rng, pts[i], pts[j], scale))
        )
    lines += _lattice(rng, outline, scale)

    names = np.array([n for n, _, _ in lines], dtype=object)
    classes = np.array([c for _, c, _ in lines], dtype=object)
    geoms = shapely.intersection(np.array([g for _, _, g in lines], dtype=object), outline)
    parts, owner = shapely.get_parts(geoms, return_index=True)
    keep = (shapely.get_type_id(parts) == 1) & (shapely.length(parts) > 1.0)
    parts, owner = parts[keep], owner[keep]
    parts = shapely.set_precision(parts, _PRECISION_M)
    pieces = shapely.get_parts(shapely.node(shapely.multilinestrings(parts)))
    pieces = pieces[shapely.length(pieces) > _MIN_PIECE_M]
    # each noded piece belongs to the most important source line it lies on
    mids = shapely.line_interpolate_point(pieces, 0.5, normalized=True)
    src, line = shapely.STRtree(parts).query(mids, predicate="dwithin", distance=0.05)
    priority = np.array([_CLASS_RANK[c] for c in classes[owner]])
    best = np.full(len(pieces), np.iinfo(np.int64).max)
    np.minimum.at(best, src, priority[line] * len(parts) + line)
    src_line = best % len(parts)
    order = np.lexsort((shapely.line_locate_point(parts[src_line], mids), src_line))
    pieces, src_line = pieces[order], src_line[order]
    keep = _largest_component(pieces)
    if not keep.all():
        log.debug("dropping %d road pieces not connected to the main network", int((~keep).sum()))
    pieces, src_line = pieces[keep], src_line[keep]
    return frame(
        {
            "road_id": [f"R-{i + 1:06d}" for i in range(len(pieces))],
            "road_class": classes[owner[src_line]].tolist(),
            "name": names[owner[src_line]].tolist(),
        },
        pieces,
    )


_CLASS_RANK = {"motorway": 0, "trunk": 1, "secondary": 2, "tertiary": 3, "track": 4}


def _gabriel_edges(pts: np.ndarray) -> list[tuple[int, int]]:
    """Edges i < j of the Gabriel graph of ``pts`` (a connected subgraph of the Delaunay one)."""
    tri = Delaunay(pts)
    edges = set()
    for s in tri.simplices:
        for a, b in ((s[0], s[1]), (s[1], s[2]), (s[0], s[2])):
            edges.add((int(min(a, b)), int(max(a, b))))
    out = []
    for i, j in sorted(edges):
        mid, r2 = (pts[i] + pts[j]) / 2.0, ((pts[i] - pts[j]) ** 2).sum() / 4.0
        d2 = ((pts - mid) ** 2).sum(axis=1)
        d2[[i, j]] = np.inf
        if (d2 >= r2).all():
            out.append((i, j))
    return out


def _chain(pts: np.ndarray, edges: list[tuple[int, int]], a: int, b: int) -> set[tuple[int, int]]:
    """Edges (i < j) of the shortest path from ``a`` to ``b`` over ``edges`` (Euclidean)."""
    n = len(pts)
    i, j = np.array(edges).T
    length = np.hypot(*(pts[i] - pts[j]).T)
    graph = coo_matrix((length, (i, j)), shape=(n, n)).tocsr()
    _, pred = shortest_path(graph, directed=False, indices=int(a), return_predecessors=True)
    out, v = set(), int(b)
    while v != int(a) and pred[v] >= 0:
        u = int(pred[v])
        out.add((min(u, v), max(u, v)))
        v = u
    return out


def _emst_edges(pts: np.ndarray) -> list[tuple[int, int]]:
    """Edges (i < j) of the Euclidean minimum spanning tree of ``pts``."""
    if len(pts) < 3:
        return [(0, 1)] if len(pts) == 2 else []
    tri = Delaunay(pts)
    a = np.concatenate([tri.simplices[:, 0], tri.simplices[:, 1], tri.simplices[:, 0]])
    b = np.concatenate([tri.simplices[:, 1], tri.simplices[:, 2], tri.simplices[:, 2]])
    i, j = np.minimum(a, b), np.maximum(a, b)
    length = np.hypot(*(pts[i] - pts[j]).T)
    mst = minimum_spanning_tree(coo_matrix((length, (i, j)), shape=(len(pts),) * 2)).tocoo()
    return sorted((int(min(u, v)), int(max(u, v))) for u, v in zip(mst.row, mst.col, strict=True))


def _wiggly(rng: np.random.Generator, p: np.ndarray, q: np.ndarray, scale: float):
    """A road from ``p`` to ``q`` that wiggles sideways (a vertex every 5 km · scale)."""
    d = q - p
    length = float(np.hypot(*d))
    steps = max(2, int(np.ceil(length / (_WIGGLE_STEP_M * scale))))
    t = np.linspace(0.0, 1.0, steps + 1)
    k = np.arange(1, 4)
    b = rng.normal(0.0, _WIGGLE * length / k)
    offset = (b[:, None] * np.sin(np.pi * k[:, None] * t)).sum(axis=0)
    normal = np.array([-d[1], d[0]]) / max(length, 1e-9)
    return shapely.LineString(p + t[:, None] * d + offset[:, None] * normal)


def _lattice(
    rng: np.random.Generator, outline: shapely.Polygon, scale: float
) -> list[tuple[str, str, shapely.LineString]]:
    """Local roads: runs of jittered-lattice edges lying inside the country, line by line."""
    step = _LATTICE_M * scale
    xmin, ymin, xmax, ymax = outline.bounds
    xs = np.arange(xmin + step / 2, xmax, step)
    ys = np.arange(ymin + step / 2, ymax, step)
    jitter = rng.uniform(-_LATTICE_JITTER, _LATTICE_JITTER, (ys.size, xs.size, 2)) * step
    vx = xs[None, :] + jitter[..., 0]
    vy = ys[:, None] + jitter[..., 1]
    out: list[tuple[str, str, shapely.LineString]] = []
    for axis in (0, 1):  # 0: lines along x (one per row), 1: lines along y (one per column)
        count = ys.size if axis == 0 else xs.size
        for i in range(count):
            px = vx[i, :] if axis == 0 else vx[:, i]
            py = vy[i, :] if axis == 0 else vy[:, i]
            pts = np.column_stack([px, py])
            if len(pts) < 2:
                continue
            edges = shapely.linestrings(np.stack([pts[:-1], pts[1:]], axis=1))
            inside = shapely.contains(outline, edges)
            cls = "tertiary" if i % 3 == 0 else "track"
            kind = "Đường huyện" if cls == "tertiary" else "Đường xã"
            name = f"{kind} {'N' if axis == 0 else 'D'}{i + 1:03d} (synthetic)"
            start = None
            for j in range(len(edges) + 1):
                if j < len(edges) and inside[j]:
                    start = j if start is None else start
                elif start is not None:
                    out.append((name, cls, shapely.LineString(pts[start : j + 1])))
                    start = None
    return out


def _largest_component(lines: np.ndarray) -> np.ndarray:
    """Mask of the lines in the largest connected component (lines joined at shared ends)."""
    ends = np.concatenate([shapely.get_coordinates(shapely.get_point(lines, 0)),
                           shapely.get_coordinates(shapely.get_point(lines, -1))])  # fmt: skip
    _, node = np.unique(np.round(ends, 2), axis=0, return_inverse=True)
    node = node.ravel()
    n = len(lines)
    m = int(node.max()) + 1
    graph = coo_matrix((np.ones(n), (node[:n], node[n:])), shape=(m, m))
    _, comp = connected_components(graph, directed=False)
    biggest = np.bincount(comp[node[:n]]).argmax()
    return comp[node[:n]] == biggest
