"""Candidate sites for new or shared towers.

Every function returns a GeoDataFrame of **points** in the plan CRS, indexed by a unique
``candidate_id``, with the columns of :data:`COLUMNS`:

==================  ========  ===============================================================
column              type      meaning
==================  ========  ===============================================================
``kind``            str       ``existing_tower``, ``rooftop``, ``greenfield``, ``public_land``
                              or ``generated`` (:data:`KINDS`)
``source``          str       where it came from: ``file``, ``colocation``, ``gaps``, ``grid``
                              (:data:`SOURCES`)
``cost``            float     build cost (USD); NaN = the site stage's default for the kind
``tower_type``      str/None  ``A1``, ``A2a``, ``A2b`` or None (the zoning assigns one)
``max_height_m``    float     highest permitted antenna (m); NaN = no limit
``tenants``         int       operators already on the structure (0 for a new one)
``operators``       str       those operators, sorted and ``;``-joined (``""`` for none)
``name``            str/None  a name to show (the file's or the tower's), else None
==================  ========  ===============================================================

The sources: :func:`from_file` (the plan's ``candidates`` layer), :func:`from_towers`
(co-location on existing structures), :func:`in_gaps` (points drawn where uncovered people
live) and :func:`on_grid` (a regular lattice); :func:`collect` puts them together. Every
function is deterministic (``in_gaps`` for a given ``seed``) and never modifies its inputs.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

from telcoplan.errors import CRSError
from telcoplan.gis.crs import crs_name, same_crs
from telcoplan.gis.grid import GridSpec
from telcoplan.layers.schemas import TOWER_TYPES

__all__ = [
    "COLUMNS",
    "KINDS",
    "SAME_SITE_M",
    "SOURCES",
    "collect",
    "from_file",
    "from_towers",
    "in_gaps",
    "on_grid",
]

log = logging.getLogger(__name__)

KINDS = ("existing_tower", "rooftop", "greenfield", "public_land", "generated")
SOURCES = ("file", "colocation", "gaps", "grid")
#: The candidate columns, in order (the index is ``candidate_id``).
COLUMNS = ("kind", "source", "cost", "tower_type", "max_height_m", "tenants", "operators", "name")
#: Structures (and candidates) closer than this (m) are one site.
SAME_SITE_M = 1.0
#: The kind of a file candidate whose ``kind`` is empty: a new structure on the ground.
DEFAULT_FILE_KIND = "greenfield"
_MAX_GRID_POINTS = 5_000_000
_DTYPES = {
    "kind": object,
    "source": object,
    "cost": np.float64,
    "tower_type": object,
    "max_height_m": np.float64,
    "tenants": np.int64,
    "operators": object,
    "name": object,
}


def _frame(ids: Iterable[str], x: np.ndarray, y: np.ndarray, crs, **columns) -> gpd.GeoDataFrame:
    """A candidate frame: the COLUMNS (defaults for those not given), points at (x, y)."""
    x = np.asarray(x, dtype=np.float64)
    n = len(x)
    defaults = {
        "cost": np.full(n, np.nan),
        "tower_type": [None] * n,
        "max_height_m": np.full(n, np.nan),
        "tenants": np.zeros(n, dtype=np.int64),
        "operators": [""] * n,
        "name": [None] * n,
    }
    index = pd.Index(list(ids), name="candidate_id", dtype=object)
    # explicit dtypes: object columns keep None (pandas would infer its str dtype, with NaN)
    df = pd.DataFrame(
        {
            c: pd.Series(list(columns.get(c, defaults.get(c))), index=index, dtype=_DTYPES[c])
            for c in COLUMNS
        },
        index=index,
    )
    geom = shapely.points(x, np.asarray(y, dtype=np.float64)) if n else []
    return gpd.GeoDataFrame(df, geometry=gpd.GeoSeries(geom, index=df.index, crs=crs), crs=crs)


def _optional(df: pd.DataFrame, column: str) -> list:
    """A string column as a list, None for missing values (or every row without the column)."""
    if column not in df.columns:
        return [None] * len(df)
    return [None if pd.isna(v) or str(v) == "" else str(v) for v in df[column]]


def _numeric(df: pd.DataFrame, column: str) -> np.ndarray:
    if column not in df.columns:
        return np.full(len(df), np.nan)
    return pd.to_numeric(df[column], errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)


def _points_xy(gdf: gpd.GeoDataFrame, what: str) -> tuple[np.ndarray, np.ndarray]:
    if gdf.crs is None:
        raise CRSError(f"{what} have no CRS; set one (they must be in the plan's projected CRS)")
    if len(gdf) and not (gdf.geom_type == "Point").all():
        bad = gdf.index[gdf.geom_type != "Point"][0]
        raise ValueError(f"{what} must be points; {bad!r} is a {gdf.geometry[bad].geom_type}")
    return gdf.geometry.x.to_numpy(dtype=np.float64), gdf.geometry.y.to_numpy(dtype=np.float64)


def _same_site_groups(x: np.ndarray, y: np.ndarray, tolerance_m: float) -> np.ndarray:
    """Component label per point: points chained by distances ≤ tolerance_m are one group."""
    n = len(x)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    pairs = cKDTree(np.column_stack([x, y])).query_pairs(tolerance_m, output_type="ndarray")
    adj = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(n, n))
    return connected_components(adj, directed=False)[1].astype(np.int64)


def from_file(candidates_layer: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """Candidates from the plan's validated ``candidates`` layer.

    Parameters
    ----------
    candidates_layer
        The layer as :func:`telcoplan.layers.candidates.load_candidates` returns it (indexed by
        ``candidate_id``, or with a ``candidate_id`` column), in the plan CRS.

    Returns
    -------
    geopandas.GeoDataFrame
        Same ids and order; ``source`` = ``file``; ``kind`` the file's (empty:
        :data:`DEFAULT_FILE_KIND`); ``cost``, ``max_height_m``, ``tower_type``, ``name`` the
        file's (NaN / None when absent); ``tenants`` 0 and ``operators`` ``""``: the file says
        nothing about who is on an existing structure (:func:`collect` keeps the co-location
        candidate of the same tower, which does).
    """
    layer = candidates_layer
    if "candidate_id" in layer.columns:
        layer = layer.set_index("candidate_id")
    x, y = _points_xy(layer, "candidates")
    kind = [k or DEFAULT_FILE_KIND for k in _optional(layer, "kind")]
    unknown = sorted(set(kind) - set(KINDS))
    if unknown:
        raise ValueError(f"candidates: unknown kind {unknown}; expected one of {', '.join(KINDS)}")
    ids = [str(i) for i in layer.index]
    if len(set(ids)) != len(ids):
        raise ValueError("candidates: candidate_id values must be unique (validate the layer)")
    return _frame(
        ids,
        x,
        y,
        layer.crs,
        kind=kind,
        source=["file"] * len(ids),
        cost=_numeric(layer, "cost"),
        tower_type=_optional(layer, "tower_type"),
        max_height_m=_numeric(layer, "max_height_m"),
        name=_optional(layer, "name"),
    )


def from_towers(towers: gpd.GeoDataFrame, operator: str | None = None) -> gpd.GeoDataFrame:
    """Existing physical sites as co-location candidates.

    Towers chained by distances of at most :data:`SAME_SITE_M` (1 m) are one structure — one
    candidate.

    Parameters
    ----------
    towers
        Validated towers (index ``site_id``; columns ``operator``, ``height_m``, optionally
        ``tower_type``, ``tenants``, ``name``) in the plan CRS.
    operator
        When given, only the sites this operator is **not** on (the structures it could share).

    Returns
    -------
    geopandas.GeoDataFrame
        One row per site, ordered by id. ``candidate_id`` = ``colo-`` + the smallest
        ``site_id`` at the site, whose position the candidate takes; ``kind`` =
        ``existing_tower``, ``source`` = ``colocation``, ``cost`` NaN; ``operators`` the
        distinct operators on the site (sorted, ``;``-joined); ``tenants`` the larger of their
        number and the towers' own ``tenants`` values (which may count operators missing from
        the layer); ``tower_type`` the most frequent type stated by its towers (ties: A1 before
        A2a before A2b), None if none is; ``max_height_m`` the highest antenna on it (m), the
        height at which another operator can mount; ``name`` the first tower name.
    """
    x, y = _points_xy(towers, "towers")
    if len(towers) == 0:
        return _frame([], x, y, towers.crs, kind=[], source=[])
    site_ids = np.array([str(i) for i in towers.index], dtype=object)
    labels = _same_site_groups(x, y, SAME_SITE_M)
    ops = np.array(_optional(towers, "operator"), dtype=object)
    types = np.array(_optional(towers, "tower_type"), dtype=object)
    names = np.array(_optional(towers, "name"), dtype=object)
    heights = _numeric(towers, "height_m")
    own_tenants = _numeric(towers, "tenants")
    rows = []
    # towers sorted by site, then by id: each site's towers are one run, smallest id first
    order = np.lexsort((site_ids, labels))
    starts = np.flatnonzero(np.diff(labels[order], prepend=-1))
    for members in np.split(order, starts[1:]):
        first = members[0]
        site_ops = sorted({o for o in ops[members] if o is not None})
        if operator is not None and operator in site_ops:
            continue
        stated = [t for t in types[members] if t is not None]
        tower_type = (
            min(set(stated), key=lambda t: (-stated.count(t), _type_rank(t))) if stated else None
        )
        tenants = max(len(site_ops), int(np.nanmax(own_tenants[members], initial=0)))
        h = heights[members]
        rows.append(
            {
                "id": f"colo-{site_ids[first]}",
                "x": x[first],
                "y": y[first],
                "tower_type": tower_type,
                "max_height_m": float(np.nanmax(h)) if np.isfinite(h).any() else np.nan,
                "tenants": tenants,
                "operators": ";".join(site_ops),
                "name": next((n for n in names[members] if n is not None), None),
            }
        )
    rows.sort(key=lambda r: r["id"])
    n = len(rows)
    return _frame(
        [r["id"] for r in rows],
        np.array([r["x"] for r in rows]),
        np.array([r["y"] for r in rows]),
        towers.crs,
        kind=["existing_tower"] * n,
        source=["colocation"] * n,
        tower_type=[r["tower_type"] for r in rows],
        max_height_m=np.array([r["max_height_m"] for r in rows], dtype=np.float64),
        tenants=np.array([r["tenants"] for r in rows], dtype=np.int64),
        operators=[r["operators"] for r in rows],
        name=[r["name"] for r in rows],
    )


def _type_rank(tower_type: str) -> int:
    return TOWER_TYPES.index(tower_type) if tower_type in TOWER_TYPES else len(TOWER_TYPES)


def in_gaps(
    population: np.ndarray,
    grid: GridSpec,
    uncovered: np.ndarray,
    n: int,
    *,
    seed: int,
    min_spacing_m: float,
) -> gpd.GeoDataFrame:
    """Up to ``n`` generated candidates at the centres of uncovered populated cells.

    Parameters
    ----------
    population
        Persons per cell on ``grid`` (NaN = 0).
    grid
        The plan grid.
    uncovered
        Boolean mask on ``grid``: True where the cell is not covered (by anyone, or by the
        operator being planned).
    n
        How many candidates to draw.
    seed
        Seed of the random draw: the same inputs and seed give the same candidates.
    min_spacing_m
        No two candidates are closer than this (m).

    Returns
    -------
    geopandas.GeoDataFrame
        ``kind`` = ``generated``, ``source`` = ``gaps``, ids ``gap-0001`` … in the order drawn.
        Fewer than ``n`` rows only when no further uncovered populated cell lies at least
        ``min_spacing_m`` from every candidate already drawn.

    Notes
    -----
    The eligible cells (uncovered, population > 0) are put in a random order in which each next
    cell is drawn with probability proportional to its population among the cells left — a
    weighted sample without replacement, by the keys log(u)/w of Efraimidis & Spirakis
    (2006, *Weighted random sampling with a reservoir*, Inf. Process. Lett. 97) — and taken
    greedily in that order, a cell being skipped when it lies closer than ``min_spacing_m`` to
    a cell already taken (a bucket grid of that size keeps each test O(1)).
    """
    pop = np.asarray(population, dtype=np.float64)
    mask = np.asarray(uncovered, dtype=bool)
    if pop.shape != grid.shape or mask.shape != grid.shape:
        raise ValueError(
            f"population {pop.shape} and uncovered {mask.shape} must both have the grid's "
            f"shape {grid.shape}"
        )
    if not math.isfinite(min_spacing_m) or min_spacing_m < 0:
        raise ValueError(f"min_spacing_m must be ≥ 0 m, got {min_spacing_m}")
    n = int(n)
    weights = np.where(mask & np.isfinite(pop) & (pop > 0), pop, 0.0).ravel()
    cells = np.flatnonzero(weights)
    taken: list[int] = []
    if n > 0 and len(cells):
        rng = np.random.default_rng(seed)
        keys = np.log1p(-rng.random(len(cells))) / weights[cells]  # log(u), u in (0, 1]
        order = cells[np.argsort(-keys, kind="stable")]
        taken = _thin(order, grid, n, float(min_spacing_m))
    rows, cols = np.divmod(np.asarray(taken, dtype=np.int64), grid.width)
    t = grid.transform
    x = t.c + t.a * (cols + 0.5)
    y = t.f + t.e * (rows + 0.5)
    width = max(4, len(str(len(taken))))
    k = len(taken)
    return _frame(
        [f"gap-{i + 1:0{width}d}" for i in range(k)],
        x,
        y,
        grid.crs,
        kind=["generated"] * k,
        source=["gaps"] * k,
    )


def _thin(order: np.ndarray, grid: GridSpec, n: int, spacing: float) -> list[int]:
    """The first ``n`` cells of ``order`` no closer than ``spacing`` to an earlier taken one."""
    if spacing <= 0:
        return [int(c) for c in order[:n]]
    rows, cols = np.divmod(order, grid.width)
    t = grid.transform
    xs = t.c + t.a * (cols + 0.5)
    ys = t.f + t.e * (rows + 0.5)
    bx = np.floor(xs / spacing).astype(np.int64)
    by = np.floor(ys / spacing).astype(np.int64)
    s2 = spacing * spacing
    buckets: dict[tuple[int, int], list[tuple[float, float]]] = {}
    taken: list[int] = []
    for k in range(len(order)):
        x, y, i, j = xs[k], ys[k], bx[k], by[k]
        near = False
        for di in (-1, 0, 1):
            for dj in (-1, 0, 1):
                for px, py in buckets.get((i + di, j + dj), ()):
                    if (px - x) ** 2 + (py - y) ** 2 < s2:
                        near = True
                        break
                if near:
                    break
            if near:
                break
        if near:
            continue
        buckets.setdefault((i, j), []).append((x, y))
        taken.append(int(order[k]))
        if len(taken) == n:
            break
    return taken


def on_grid(study_area: gpd.GeoDataFrame | gpd.GeoSeries, spacing_m: float) -> gpd.GeoDataFrame:
    """Generated candidates on a regular square lattice inside the study area.

    Parameters
    ----------
    study_area
        Polygons (their union is the area) in a projected CRS.
    spacing_m
        Distance between neighbouring lattice points (m).

    Returns
    -------
    geopandas.GeoDataFrame
        ``kind`` = ``generated``, ``source`` = ``grid``; the points ((i + ½) · s, (j + ½) · s)
        for integers i, j that lie in the area or on its boundary, north to south then west to
        east, ids ``grid-000001`` … in that order. The lattice is anchored at the CRS's origin,
        not at the area, so the points do not move when the area grows.
    """
    if study_area.crs is None:
        raise CRSError("the study area has no CRS; it must be in the plan's projected CRS")
    if not study_area.crs.is_projected:
        raise CRSError(
            f"the study area is in {crs_name(study_area.crs)}, which is not projected; "
            "reproject it to the plan CRS (metres) first"
        )
    s = float(spacing_m)
    if not math.isfinite(s) or s <= 0:
        raise ValueError(f"spacing_m must be > 0 m, got {spacing_m}")
    area = shapely.union_all(np.asarray(study_area.geometry.dropna()))
    crs = study_area.crs
    if area.is_empty:
        return _frame([], np.zeros(0), np.zeros(0), crs, kind=[], source=[])
    minx, miny, maxx, maxy = area.bounds
    i = np.arange(math.floor(minx / s - 0.5), math.ceil(maxx / s - 0.5) + 1)
    j = np.arange(math.ceil(maxy / s - 0.5), math.floor(miny / s - 0.5) - 1, -1)
    if len(i) * len(j) > _MAX_GRID_POINTS:
        raise ValueError(
            f"a {s:g} m lattice over the study area has {len(i) * len(j):,} points "
            f"(more than {_MAX_GRID_POINTS:,}); use a larger spacing_m"
        )
    gx, gy = np.meshgrid((i + 0.5) * s, (j + 0.5) * s)
    gx, gy = gx.ravel(), gy.ravel()
    shapely.prepare(area)
    inside = shapely.intersects_xy(area, gx, gy)
    gx, gy = gx[inside], gy[inside]
    k = len(gx)
    width = max(6, len(str(k)))
    return _frame(
        [f"grid-{m + 1:0{width}d}" for m in range(k)],
        gx,
        gy,
        crs,
        kind=["generated"] * k,
        source=["grid"] * k,
    )


def collect(*parts: gpd.GeoDataFrame | None, tolerance_m: float = SAME_SITE_M) -> gpd.GeoDataFrame:
    """All candidates in one frame: ids unique, one candidate per spot.

    Parameters
    ----------
    *parts
        Candidate frames (from the functions of this module), all in one CRS; None or empty
        frames are skipped.
    tolerance_m
        Candidates chained by distances of at most this (m) are at the same spot.

    Returns
    -------
    geopandas.GeoDataFrame
        The parts concatenated in the order given, with the :data:`COLUMNS`. A repeated id is
        made unique by appending ``-2``, ``-3`` … to its later occurrences (the first keeps its
        id, so ids are stable for the same parts). Of the candidates at one spot only one is
        kept: an existing tower if there is one, then the one with the most tenants, then the
        first given.
    """
    frames = [p for p in parts if p is not None and len(p)]
    crs = next((p.crs for p in parts if p is not None), None)
    for p in frames:
        if p.crs is None or not same_crs(p.crs, crs):
            raise CRSError(
                f"candidate parts are in different CRSs ({crs_name(crs)} and "
                f"{crs_name(p.crs)}); reproject them to the plan CRS first"
            )
    if not frames:
        return _frame([], np.zeros(0), np.zeros(0), crs, kind=[], source=[])
    normal = []
    for p in frames:
        x, y = _points_xy(p, "candidates")
        cols = {c: p[c].to_numpy() for c in COLUMNS if c in p.columns}
        for c in ("tower_type", "name"):
            if c in cols:
                cols[c] = _optional(p, c)
        if "operators" in cols:
            cols["operators"] = ["" if v is None else v for v in _optional(p, "operators")]
        if "tenants" in cols:
            cols["tenants"] = np.nan_to_num(_numeric(p, "tenants"), nan=0.0).astype(np.int64)
        missing = {"kind", "source"} - set(cols)
        if missing:
            raise ValueError(f"candidate parts need the columns {sorted(missing)}")
        normal.append(_frame([str(i) for i in p.index], x, y, crs, **cols))
    out = pd.concat(normal)
    out.index = pd.Index(_unique_ids(list(out.index)), name="candidate_id", dtype=object)
    x, y = out.geometry.x.to_numpy(), out.geometry.y.to_numpy()
    labels = _same_site_groups(x, y, float(tolerance_m))
    rank = np.lexsort(
        (
            np.arange(len(out)),
            -out["tenants"].to_numpy(),
            (out["kind"].to_numpy() != "existing_tower").astype(np.int8),
        )
    )
    keep = np.zeros(len(out), dtype=bool)
    seen: set[int] = set()
    for k in rank:
        if labels[k] not in seen:
            seen.add(int(labels[k]))
            keep[k] = True
    if not keep.all():
        log.info(
            "%d candidates dropped: another candidate stands at the same spot (within %g m)",
            int((~keep).sum()),
            tolerance_m,
        )
    return gpd.GeoDataFrame(out[keep], geometry="geometry", crs=crs)


def _unique_ids(ids: list[str]) -> list[str]:
    """Later repeats of an id get ``-2``, ``-3`` … (skipping suffixes already in use)."""
    used = set(ids)
    seen: set[str] = set()
    out = []
    for i in ids:
        if i in seen:
            k = 2
            while f"{i}-{k}" in used:
                k += 1
            new = f"{i}-{k}"
            used.add(new)
            out.append(new)
            seen.add(new)
        else:
            seen.add(i)
            out.append(i)
    return out
