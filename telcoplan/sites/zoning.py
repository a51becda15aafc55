"""Zoning rules for candidate sites: where nothing may be built, which tower types each zone
allows, how far apart towers must stand and how many operators a structure may host.

The rules follow Vietnamese provincial passive-infrastructure plans: tower type **A1**
(camouflaged, e.g. on a rooftop) is required in heritage and central zones, **A2a** stands on
main streets, **A2b** in rural areas; towers of one type keep a minimum spacing of about
150–350 m (:data:`DEFAULT_MIN_SPACING_M`: A1 150 m, A2a 250 m, A2b 350 m — the denser the
setting, the smaller); a shared structure hosts 2–4 operators (:data:`DEFAULT_MAX_TENANTS`).

Zoning rules bind new structures. A candidate of kind ``existing_tower`` (co-location) is
already built: only its tenant count is checked, and it keeps its own stated type.

All geometries are in the plan CRS; distances are in metres, ``d < spacing`` is too close.
"""

from __future__ import annotations

import difflib
import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from shapely.geometry.base import BaseGeometry

from telcoplan.errors import CRSError
from telcoplan.gis.crs import crs_name, same_crs
from telcoplan.layers.schemas import TOWER_TYPES

__all__ = [
    "DEFAULT_ELSEWHERE",
    "DEFAULT_MAX_TENANTS",
    "DEFAULT_MIN_SPACING_M",
    "TypeZone",
    "Zoning",
    "allowed",
    "spacing_conflicts",
    "tower_type_for",
    "zoning_from_mapping",
]

log = logging.getLogger(__name__)

#: Minimum distance (m) between two towers of a type (provincial plans: ~150–350 m).
DEFAULT_MIN_SPACING_M: dict[str, float] = {"A1": 150.0, "A2a": 250.0, "A2b": 350.0}
#: Types allowed outside every type zone, the default first: a standard street tower (A2a),
#: a rural one (A2b), a camouflaged one (A1).
DEFAULT_ELSEWHERE: tuple[str, ...] = ("A2a", "A2b", "A1")
#: Operators a shared structure may host (provincial plans: 2–4).
DEFAULT_MAX_TENANTS = 4
#: Structures closer than this (m) are one and the same (see telcoplan.sites.candidates).
_SAME_SITE_M = 1.0
_EXISTING = "existing_tower"


def _canonical_type(value: object) -> str | None:
    """``"a2a"`` → ``"A2a"``; None for anything that is not a tower type."""
    lookup = {t.lower(): t for t in TOWER_TYPES}
    return lookup.get(str(value).strip().lower()) if isinstance(value, str) else None


def _types(values: object, what: str) -> tuple[str, ...]:
    if isinstance(values, str):
        values = [values]
    out = []
    for v in values:  # type: ignore[union-attr]
        t = _canonical_type(v)
        if t is None:
            raise ValueError(f"{what}: {v!r} is not a tower type; use {', '.join(TOWER_TYPES)}")
        if t not in out:
            out.append(t)
    return tuple(out)


def _polygons(obj: object, crs: object, what: str) -> tuple[BaseGeometry | None, object]:
    """(one polygonal geometry or None, the CRS it came with) from a frame, series, geometry
    or a sequence of geometries; frames in another CRS than ``crs`` are reprojected."""
    if obj is None:
        return None, None
    own_crs = getattr(obj, "crs", None)
    if isinstance(obj, gpd.GeoDataFrame | gpd.GeoSeries):
        if crs is not None and own_crs is not None and not same_crs(own_crs, crs):
            obj = obj.to_crs(crs)
        geoms = np.asarray(obj.geometry.dropna() if hasattr(obj, "geometry") else obj.dropna())
    elif isinstance(obj, BaseGeometry):
        geoms = np.asarray([obj])
    else:  # a sequence of any of these, in the CRS of the first that has one
        items = []
        for o in obj:  # type: ignore[attr-defined]
            g, c = _polygons(o, crs, what)
            crs = crs if crs is not None else c
            items.append(g)
        geoms = np.asarray([g for g in items if g is not None], dtype=object)
        own_crs = crs
    parts = shapely.get_parts(geoms) if len(geoms) else geoms
    bad = [g.geom_type for g in parts if g is not None and g.geom_type not in _POLYGONAL]
    if bad:
        raise ValueError(f"{what} must be polygons, got {bad[0]}")
    geom = shapely.union_all(parts) if len(parts) else shapely.Polygon()
    shapely.prepare(geom)
    return geom, own_crs


_POLYGONAL = ("Polygon", "MultiPolygon")


@dataclass(frozen=True)
class TypeZone:
    """A zone whose new towers must be of one of ``types`` (the first is the default type).

    Attributes
    ----------
    geometry : shapely geometry
        The zone's polygons (plan CRS); the boundary belongs to the zone.
    types : tuple of str
        Allowed tower types, in order of preference; empty: no new tower may stand there.
    name : str
        How messages name the zone.
    """

    geometry: BaseGeometry
    types: tuple[str, ...]
    name: str


@dataclass(frozen=True)
class Zoning:
    """The zoning rules of a plan (a value: build one, pass it to the functions below).

    Attributes
    ----------
    exclusion
        Polygons where nothing may be built (heritage sites, airports …): a frame, series,
        geometry or sequence of geometries; None for none. Normalised to one geometry.
    type_zones
        Zones with their allowed tower types, as :class:`TypeZone` or ``(polygons, types)`` /
        ``(polygons, types, name)`` tuples, e.g. ``[(centre, ["A1"]), (main_streets, ["A2a"]),
        (rural, ["A2b", "A2a"])]``. Where zones overlap **the first listed applies**: list the
        strictest (central, heritage) first. Unnamed zones are called ``zone 1``, ``zone 2`` ….
    min_spacing_m
        Minimum distance (m) between towers of a type; types not given keep
        :data:`DEFAULT_MIN_SPACING_M`.
    max_tenants
        Operators a structure may host (:data:`DEFAULT_MAX_TENANTS`).
    elsewhere
        Types allowed outside every type zone, the default first
        (:data:`DEFAULT_ELSEWHERE`: A2a, A2b, A1).
    crs
        The CRS of the geometries (the plan CRS). Frames given in another CRS are reprojected
        to it; when None, it is taken from the first frame given. Candidates in another CRS are
        refused.
    """

    exclusion: Any = None
    type_zones: Sequence[Any] = ()
    min_spacing_m: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_MIN_SPACING_M))
    max_tenants: int = DEFAULT_MAX_TENANTS
    elsewhere: Sequence[str] = DEFAULT_ELSEWHERE
    crs: Any = None

    def __post_init__(self) -> None:
        crs = self.crs
        excl, own = _polygons(self.exclusion, crs, "exclusion")
        crs = crs if crs is not None else own
        zones = []
        for k, z in enumerate(self.type_zones, start=1):
            if isinstance(z, TypeZone):
                geom, types, name = z.geometry, z.types, z.name
            else:
                geom, types, *rest = z
                name = str(rest[0]) if rest else f"zone {k}"
            g, own = _polygons(geom, crs, name)
            crs = crs if crs is not None else own
            zones.append(TypeZone(g, _types(types, f"{name} types"), name))
        spacing = dict(DEFAULT_MIN_SPACING_M)
        for t, v in dict(self.min_spacing_m).items():
            tt = _canonical_type(t)
            if tt is None:
                raise ValueError(
                    f"min_spacing_m: {t!r} is not a tower type; use {', '.join(TOWER_TYPES)}"
                )
            if not isinstance(v, int | float) or not math.isfinite(v) or v < 0:
                raise ValueError(f"min_spacing_m: {tt} = {v!r} must be a distance ≥ 0 m")
            spacing[tt] = float(v)
        if isinstance(self.max_tenants, bool) or int(self.max_tenants) != self.max_tenants:
            raise ValueError(f"max_tenants must be a whole number, got {self.max_tenants!r}")
        if self.max_tenants < 1:
            raise ValueError(f"max_tenants must be ≥ 1, got {self.max_tenants}")
        object.__setattr__(self, "exclusion", excl)
        object.__setattr__(self, "type_zones", tuple(zones))
        object.__setattr__(self, "min_spacing_m", spacing)
        object.__setattr__(self, "max_tenants", int(self.max_tenants))
        object.__setattr__(self, "elsewhere", _types(self.elsewhere, "elsewhere"))
        object.__setattr__(self, "crs", crs)

    def spacing(self, tower_type: str | None) -> float:
        """Minimum spacing (m) of a tower type; 0 for no type."""
        return 0.0 if tower_type is None else self.min_spacing_m[tower_type]

    def to_crs(self, crs: Any) -> Zoning:
        """The same rules with the geometries reprojected to ``crs`` (the plan CRS)."""
        if self.crs is None:
            raise CRSError("the zoning has no CRS: give Zoning(crs=...) or frames with a CRS")
        if same_crs(self.crs, crs):
            return self

        def move(geom: BaseGeometry | None) -> gpd.GeoSeries | None:
            return None if geom is None else gpd.GeoSeries([geom], crs=self.crs).to_crs(crs)

        return Zoning(
            exclusion=move(self.exclusion),
            type_zones=[(move(z.geometry), z.types, z.name) for z in self.type_zones],
            min_spacing_m=self.min_spacing_m,
            max_tenants=self.max_tenants,
            elsewhere=self.elsewhere,
            crs=crs,
        )


def _check_crs(gdf: gpd.GeoDataFrame, zoning: Zoning, what: str) -> None:
    if gdf.crs is None:
        raise CRSError(f"{what} have no CRS; they must be in the plan CRS")
    if zoning.crs is not None and not same_crs(gdf.crs, zoning.crs):
        raise CRSError(
            f"{what} are in {crs_name(gdf.crs)} but the zoning in {crs_name(zoning.crs)}; "
            f"reproject one of them: zoning.to_crs(...) or {what.split()[-1]}.to_crs(...)"
        )


def _xy(gdf: gpd.GeoDataFrame) -> tuple[np.ndarray, np.ndarray]:
    return gdf.geometry.x.to_numpy(dtype=np.float64), gdf.geometry.y.to_numpy(dtype=np.float64)


def _is_existing(candidates: gpd.GeoDataFrame) -> np.ndarray:
    if "kind" not in candidates.columns:
        return np.zeros(len(candidates), dtype=bool)
    return (candidates["kind"].astype(object) == _EXISTING).to_numpy()


def _stated_types(gdf: gpd.GeoDataFrame) -> np.ndarray:
    if "tower_type" not in gdf.columns:
        return np.full(len(gdf), None, dtype=object)
    return np.array([_canonical_type(v) for v in gdf["tower_type"]], dtype=object)


def _zone_of(zoning: Zoning, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Position of the first type zone containing each point (−1: none)."""
    zone = np.full(len(x), -1, dtype=np.int64)
    for k, z in enumerate(zoning.type_zones):
        free = zone < 0
        if not free.any():
            break
        inside = np.zeros(len(x), dtype=bool)
        inside[free] = shapely.intersects_xy(z.geometry, x[free], y[free])
        zone[inside] = k
    return zone


def tower_type_for(candidates: gpd.GeoDataFrame, zoning: Zoning) -> pd.Series:
    """The tower type of each candidate.

    A stated ``tower_type`` is kept (whether or not its zone allows it: :func:`allowed` says).
    A new structure without one gets the first type its zone allows (the first type zone
    containing it; outside every zone, the first of ``zoning.elsewhere``), or None where no
    type is allowed. An existing tower without a stated type stays None (its type is a fact
    the data lack).

    Returns
    -------
    pandas.Series
        object dtype, indexed like ``candidates``.
    """
    _check_crs(candidates, zoning, "candidates")
    types = _stated_types(candidates)
    x, y = _xy(candidates)
    zone = _zone_of(zoning, x, y)
    existing = _is_existing(candidates)
    for k in np.flatnonzero((types == None) & ~existing):  # noqa: E711 (element-wise)
        allowed_types = zoning.type_zones[zone[k]].types if zone[k] >= 0 else zoning.elsewhere
        types[k] = allowed_types[0] if allowed_types else None
    return pd.Series(types, index=candidates.index, dtype=object, name="tower_type")


def allowed(
    candidates: gpd.GeoDataFrame, zoning: Zoning, existing: gpd.GeoDataFrame | None = None
) -> tuple[pd.Series, pd.Series]:
    """Whether each candidate may be used, and why not.

    A new structure (any kind but ``existing_tower``) is refused when it lies in an exclusion
    zone (boundary included), when its zone allows no tower type, when its stated type is not
    among those its zone allows, or when it stands closer than its type's minimum spacing to an
    ``existing`` tower of the same type (towers within 1 m of it are the same structure and do
    not count). Any candidate is refused when it already hosts ``max_tenants`` operators.

    Parameters
    ----------
    candidates
        Candidates (:mod:`telcoplan.sites.candidates`) in the zoning's CRS.
    zoning
        The rules.
    existing
        Existing towers (index ``site_id``, a ``tower_type`` column; towers without a type are
        not checked), or None.

    Returns
    -------
    (mask, reasons) : (pandas.Series of bool, pandas.Series of str)
        Indexed like ``candidates``; ``reasons`` is ``""`` for an allowed candidate, else every
        reason, ``"; "``-joined.
    """
    _check_crs(candidates, zoning, "candidates")
    n = len(candidates)
    reasons: list[list[str]] = [[] for _ in range(n)]
    x, y = _xy(candidates)
    new = ~_is_existing(candidates)
    stated = _stated_types(candidates)
    types = tower_type_for(candidates, zoning).to_numpy(dtype=object)
    if zoning.exclusion is not None and n:
        for k in np.flatnonzero(new & shapely.intersects_xy(zoning.exclusion, x, y)):
            reasons[k].append("in an exclusion zone")
    zone = _zone_of(zoning, x, y)
    for k in np.flatnonzero(new):
        where = zoning.type_zones[zone[k]].name if zone[k] >= 0 else "outside the type zones"
        prefix = "in " if zone[k] >= 0 else ""
        permitted = zoning.type_zones[zone[k]].types if zone[k] >= 0 else zoning.elsewhere
        if not permitted:
            reasons[k].append(f"no tower type is allowed {prefix}{where}")
        elif stated[k] is not None and stated[k] not in permitted:
            reasons[k].append(
                f"tower type {stated[k]} is not allowed {prefix}{where} "
                f"(allowed: {', '.join(permitted)})"
            )
    if existing is not None and len(existing) and n:
        _check_crs(existing, zoning, "existing towers")
        for k, text in _near_existing(candidates, types, new, existing, zoning):
            reasons[k].append(text)
    if "tenants" in candidates.columns:
        tenants = pd.to_numeric(candidates["tenants"], errors="coerce").fillna(0).to_numpy()
        for k in np.flatnonzero(tenants >= zoning.max_tenants):
            reasons[k].append(
                f"already hosts {int(tenants[k])} operators (maximum {zoning.max_tenants})"
            )
    text = pd.Series(["; ".join(r) for r in reasons], index=candidates.index, dtype=object)
    return (text == "").rename("allowed"), text.rename("reason")


def _near_existing(candidates, types, new, existing, zoning):
    """(candidate position, reason) for new candidates too close to an existing tower of their
    type: the nearest such tower is named."""
    ex_types = _stated_types(existing)
    has_type = ex_types != None  # noqa: E711 (element-wise)
    if not has_type.any():
        return []
    ex = existing[has_type]
    ex_types = ex_types[has_type]
    ex_ids = np.array([str(i) for i in ex.index], dtype=object)
    ex_x, ex_y = _xy(ex)
    tree = shapely.STRtree(np.asarray(ex.geometry))
    sel = np.flatnonzero(new & (types != None))  # noqa: E711 (element-wise)
    if not len(sel):
        return []
    reach = np.array([zoning.spacing(t) for t in types[sel]])
    geoms = np.asarray(candidates.geometry)[sel]
    qi, ti = tree.query(geoms, predicate="dwithin", distance=reach * (1 + 1e-9) + 1e-6)
    cand = sel[qi]
    x, y = _xy(candidates)
    d = np.hypot(x[cand] - ex_x[ti], y[cand] - ex_y[ti])
    spacing = reach[qi]
    hit = (ex_types[ti] == types[cand]) & (d < spacing) & (d > _SAME_SITE_M)
    out = []
    order = np.lexsort((ex_ids[ti][hit], d[hit], cand[hit]))
    seen: set[int] = set()
    for k, dist, tid, s in zip(
        cand[hit][order], d[hit][order], ex_ids[ti][hit][order], spacing[hit][order], strict=True
    ):
        if k in seen:
            continue
        seen.add(int(k))
        out.append(
            (
                int(k),
                f"{dist:.0f} m from existing tower {tid} of type {types[k]} (minimum {s:.0f} m)",
            )
        )
    return out


def spacing_conflicts(candidates: gpd.GeoDataFrame, zoning: Zoning) -> np.ndarray:
    """Pairs of candidates that cannot both be used because they stand too close.

    With each candidate's type from :func:`tower_type_for`: two new structures conflict when
    closer than the larger of their types' spacings (a candidate without a type counts 0 m);
    a new structure and an existing tower conflict when they have the same type and are closer
    than its spacing; two existing towers never conflict (both stand already).

    Returns
    -------
    numpy.ndarray
        int64 (m, 2): positions (``iloc``) ``i < j`` of the conflicting pairs, sorted.

    Notes
    -----
    One STRtree query (``dwithin`` each candidate's own spacing) finds every pair closer than
    the larger spacing from at least one side: O(n log n + pairs), not O(n²).
    """
    _check_crs(candidates, zoning, "candidates")
    empty = np.zeros((0, 2), dtype=np.int64)
    if len(candidates) < 2:
        return empty
    types = tower_type_for(candidates, zoning).to_numpy(dtype=object)
    existing = _is_existing(candidates)
    reach = np.array([zoning.spacing(t) for t in types])
    geoms = np.asarray(candidates.geometry)
    tree = shapely.STRtree(geoms)
    a, b = tree.query(geoms, predicate="dwithin", distance=reach * (1 + 1e-9) + 1e-6)
    i, j = np.minimum(a, b), np.maximum(a, b)
    pairs = np.unique(np.column_stack([i, j])[i < j], axis=0)
    if not len(pairs):
        return empty
    i, j = pairs[:, 0], pairs[:, 1]
    x, y = _xy(candidates)
    d = np.hypot(x[i] - x[j], y[i] - y[j])
    both_new = ~existing[i] & ~existing[j]
    one_existing = existing[i] ^ existing[j]
    same_type = (types[i] == types[j]) & (types[i] != None)  # noqa: E711 (element-wise)
    limit = np.where(both_new, np.maximum(reach[i], reach[j]), np.where(same_type, reach[i], 0.0))
    conflict = (both_new | (one_existing & same_type)) & (d < limit)
    return pairs[conflict].astype(np.int64)


def zoning_from_mapping(
    mapping: Mapping[str, Any] | None,
    *,
    load_polygons: Callable[[Any], Any],
    key: str = "zoning",
    crs: Any = None,
) -> tuple[Zoning | None, list[str]]:
    """Zoning from a plan's mapping, with every problem at once instead of an exception.

    Parameters
    ----------
    mapping
        For example ``{"exclude": "heritage.gpkg", "zones": [{"path": "centre.gpkg",
        "types": ["A1"], "name": "centre"}, {"path": "rural.gpkg", "types": ["A2b"]}],
        "elsewhere": ["A2a", "A2b"], "min_spacing_m": {"A1": 150}, "max_tenants": 4}``.
        ``exclude`` is a path or a list of paths; a zone's ``types`` a type or a list of types
        (case-insensitive); every key is optional. None or ``{}``: the default rules.
    load_polygons
        Called with each path as written; returns the polygons (a GeoDataFrame or GeoSeries
        in, or reprojected to, ``crs``, or shapely geometries). Its exceptions become problems.
    key
        How problems name the mapping (``"stages.sites.zoning"``).
    crs
        The plan CRS (:attr:`Zoning.crs`).

    Returns
    -------
    (zoning, problems)
        ``zoning`` is None when ``problems`` (messages naming the key, e.g.
        ``"zoning.zones[2].types: 'A3' is not a tower type; use A1, A2a, A2b"``) is not empty.
    """
    problems: list[str] = []
    if mapping is None:
        mapping = {}
    if not isinstance(mapping, Mapping):
        return None, [f"{key}: expected a mapping, got {type(mapping).__name__}"]
    known = ("exclude", "zones", "elsewhere", "min_spacing_m", "max_tenants")
    for k in mapping:
        if k not in known:
            close = difflib.get_close_matches(str(k), known, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else f" (known: {', '.join(known)})"
            problems.append(f"{key}.{k}: unknown key{hint}")

    def load(path: Any, where: str) -> Any:
        if not isinstance(path, str) or not path.strip():
            problems.append(f"{where}: expected a file path, got {path!r}")
            return None
        try:
            polys = load_polygons(path)
            _polygons(polys, crs, where)
        except Exception as exc:
            problems.append(f"{where}: {path}: {exc}")
            return None
        return polys

    def types_of(value: Any, where: str) -> tuple[str, ...] | None:
        values = [value] if isinstance(value, str) else value
        if not isinstance(values, list | tuple) or not values:
            problems.append(
                f"{where}: expected a list of tower types ({', '.join(TOWER_TYPES)}), got "
                f"{value!r} (use exclude: for places where nothing may be built)"
            )
            return None
        bad = [v for v in values if _canonical_type(v) is None]
        if bad:
            problems.append(
                f"{where}: {bad[0]!r} is not a tower type; use {', '.join(TOWER_TYPES)}"
            )
            return None
        return tuple(dict.fromkeys(_canonical_type(v) for v in values))  # type: ignore[misc]

    exclusion = None
    if mapping.get("exclude") is not None:
        paths = mapping["exclude"]
        paths = [paths] if isinstance(paths, str) else paths
        if not isinstance(paths, list | tuple) or not paths:
            problems.append(f"{key}.exclude: expected a path or a list of paths, got {paths!r}")
        else:
            loaded = [
                load(p, f"{key}.exclude" if len(paths) == 1 else f"{key}.exclude[{k}]")
                for k, p in enumerate(paths, start=1)
            ]
            if all(p is not None for p in loaded):
                exclusion = loaded
    zones = []
    raw_zones = mapping.get("zones") or []
    if not isinstance(raw_zones, list | tuple):
        problems.append(f"{key}.zones: expected a list of {{path, types}} mappings")
        raw_zones = []
    for k, z in enumerate(raw_zones, start=1):
        where = f"{key}.zones[{k}]"
        if not isinstance(z, Mapping):
            problems.append(f"{where}: expected a mapping with path and types, got {z!r}")
            continue
        for kk in z:
            if kk not in ("path", "types", "name"):
                close = difflib.get_close_matches(str(kk), ("path", "types", "name"), n=1)
                hint = f"; did you mean {close[0]!r}?" if close else " (known: path, types, name)"
                problems.append(f"{where}.{kk}: unknown key{hint}")
        for required in ("path", "types"):
            if required not in z:
                problems.append(f"{where}: {required} is missing")
        types = types_of(z["types"], f"{where}.types") if "types" in z else None
        polys = load(z["path"], f"{where}.path") if "path" in z else None
        name = str(z.get("name") or z.get("path") or f"zone {k}")
        if types is not None and polys is not None:
            zones.append((polys, types, name))
    elsewhere = DEFAULT_ELSEWHERE
    if "elsewhere" in mapping:
        got = types_of(mapping["elsewhere"], f"{key}.elsewhere")
        elsewhere = got if got is not None else elsewhere
    spacing: dict[str, float] = {}
    raw_spacing = mapping.get("min_spacing_m")
    if raw_spacing is not None and not isinstance(raw_spacing, Mapping):
        problems.append(
            f"{key}.min_spacing_m: expected a mapping of tower type to metres, e.g. {{A1: 150}}"
        )
    elif raw_spacing is not None:
        for t, v in raw_spacing.items():
            tt = _canonical_type(t)
            if tt is None:
                problems.append(
                    f"{key}.min_spacing_m.{t}: not a tower type; use {', '.join(TOWER_TYPES)}"
                )
            elif (
                isinstance(v, bool)
                or not isinstance(v, int | float)
                or not math.isfinite(v)
                or v < 0
            ):
                problems.append(f"{key}.min_spacing_m.{t}: {v!r} must be a distance ≥ 0 m")
            else:
                spacing[tt] = float(v)
    max_tenants = DEFAULT_MAX_TENANTS
    if mapping.get("max_tenants") is not None:
        v = mapping["max_tenants"]
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            problems.append(f"{key}.max_tenants: {v!r} must be a whole number ≥ 1")
        else:
            max_tenants = v
    if problems:
        return None, problems
    try:
        zoning = Zoning(
            exclusion=exclusion,
            type_zones=zones,
            min_spacing_m=spacing,
            max_tenants=max_tenants,
            elsewhere=elsewhere,
            crs=crs,
        )
    except (ValueError, CRSError) as exc:  # not expected: every value was checked above
        return None, [f"{key}: {exc}"]
    return zoning, []
