"""Colours and classes shared by the interactive map and the static figure (no heavy imports)."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TypeVar

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pyproj import CRS

from telcoplan.outputs import is_missing

__all__ = [
    "ANY_COLOUR",
    "COVERAGE_CLASSES",
    "GAP_COLOUR",
    "JOINT_COLOUR",
    "LINK_STATUS",
    "NO_DATA_COLOUR",
    "SITE_KINDS",
    "SITE_KIND_LABELS",
    "class_colour",
    "coverage_class_labels",
    "link_status",
    "link_users",
    "operators_at_location",
    "pct_any",
    "site_classes",
    "site_kind",
    "split_ops",
]

#: Area choropleth classes: (lower bound of population covered by any operator in %, colour).
COVERAGE_CLASSES: tuple[tuple[float, str], ...] = (
    (99.5, "#1a9850"),
    (98.0, "#91cf60"),
    (95.0, "#d9ef8b"),
    (90.0, "#fee08b"),
    (80.0, "#fc8d59"),
    (0.0, "#d73027"),
)
#: Proposed-site kinds and their marker colours.
SITE_KINDS: dict[str, str] = {"co-located": "#00bcd4", "shared": "#ffd700", "new": "#ff00ff"}
#: Legend text of the kinds.
SITE_KIND_LABELS: dict[str, str] = {
    "co-located": "co-located on an existing tower",
    "shared": "new build shared by 2+ operators",
    "new": "new build, one operator",
}
#: Backbone link status → (line weight in px, SVG dash pattern or None, legend text).
LINK_STATUS: dict[str, tuple[float, str | None, str]] = {
    "new": (4.0, None, "new trench (planned)"),
    "reused": (3.0, "2 6", "existing fiber reused"),
    "leased": (3.0, "10 6", "leased fiber"),
    "ring": (5.0, "14 5 3 5", "ring link (protection path)"),
}
#: Style of a link status not in :data:`LINK_STATUS`.
OTHER_STATUS: tuple[float, str | None] = (3.0, "1 4")
NO_DATA_COLOUR = "#bdbdbd"
_T = TypeVar("_T")
ANY_COLOUR = "#08519c"
JOINT_COLOUR = "#000000"
GAP_COLOUR = "#d7301f"
_SITE_ALIASES = {"colocated": "co-located", "co_located": "co-located", "colocation": "co-located"}


def class_colour(pct: float) -> str:
    """Colour of the :data:`COVERAGE_CLASSES` class of ``pct`` (grey when not finite)."""
    if not np.isfinite(pct):
        return NO_DATA_COLOUR
    return next(colour for lower, colour in COVERAGE_CLASSES if pct >= lower)


def coverage_class_labels() -> list[tuple[str, str]]:
    """(colour, label) of each coverage class, best first."""
    bounds = [lower for lower, _ in COVERAGE_CLASSES]
    out = []
    for i, (lower, colour) in enumerate(COVERAGE_CLASSES):
        if i == 0:
            text = f"≥ {lower:g} %"
        elif lower > 0:
            text = f"{lower:g}–{bounds[i - 1]:g} %"
        else:
            text = f"< {bounds[i - 1]:g} %"
        out.append((colour, text))
    return out


def pct_any(areas: gpd.GeoDataFrame) -> pd.Series:
    """Population covered by any operator in % per area (NaN when unknown)."""
    if "pct_any" in areas.columns:
        return pd.to_numeric(areas["pct_any"], errors="coerce").astype(float)
    if {"covered_any", "population"} <= set(areas.columns):
        pop = pd.to_numeric(areas["population"], errors="coerce").astype(float)
        covered = pd.to_numeric(areas["covered_any"], errors="coerce").astype(float)
        return 100.0 * covered / pop.where(pop > 0)
    return pd.Series(np.nan, index=areas.index, dtype=float)


def split_ops(value: object) -> list[str]:
    """Operators of a ``"A;B"`` list (also ``,``-separated); missing → []."""
    if is_missing(value):
        return []
    return [p.strip() for p in re.split(r"[;,]", str(value)) if p.strip()]


def truthy(value: object) -> bool:
    """``True``/``"yes"``/``1`` → True; missing, false, ``"no"`` → False."""
    if isinstance(value, str):
        return value.strip().lower() in {"1", "true", "yes", "y"}
    return not is_missing(value) and bool(value)


def _per_value(values: pd.Series, func: Callable[[object], _T], missing: _T) -> list[_T]:
    """``func`` of each value, computed once per distinct value (``missing`` for NaN/None):
    backbone columns hold a handful of distinct texts over hundreds of thousands of links."""
    codes, uniques = pd.factorize(values, sort=False, use_na_sentinel=True)
    done = [func(u) for u in uniques]
    return [done[c] if c >= 0 else missing for c in codes]


def link_status(links: gpd.GeoDataFrame) -> list[str]:
    """Status of each backbone link, lower case: the ``status`` column (default ``new``),
    ``ring`` where a boolean ``ring`` column is true."""
    if "status" in links.columns:
        status = _per_value(links["status"].astype(object), lambda s: str(s).strip().lower(), "new")
    else:
        status = ["new"] * len(links)
    if "ring" in links.columns:
        ring = _per_value(links["ring"].astype(object), truthy, False)
        status = ["ring" if r else s for s, r in zip(status, ring, strict=True)]
    return status


def link_users(links: gpd.GeoDataFrame) -> list[list[str]]:
    """Operators of each backbone link (``operators`` ``"A;B"``, else ``operator``); links
    with the same text share one list (do not modify it)."""
    for col in ("operators", "operator"):
        if col in links.columns:
            return _per_value(links[col].astype(object), split_ops, [])
    return [[] for _ in range(len(links))]


def site_kind(value: object) -> str:
    """Normalised proposed-site kind (``co_located`` → ``co-located``; missing → '')."""
    if is_missing(value):
        return ""
    k = str(value).strip().lower()
    return _SITE_ALIASES.get(k, k)


def site_classes(sites: gpd.GeoDataFrame) -> list[str]:
    """The :data:`SITE_KINDS` class of each proposed site.

    ``kind`` when it is one of them (``co_located`` … normalised); else, as the sites stage
    writes them (``kind`` = where: existing_tower, rooftop, greenfield, …), from ``new_build``
    and ``tenants``: not a new build → co-located, a new build with 2+ tenants → shared, else
    new. Other kinds are kept as they are.
    """
    kinds = [
        site_kind(v) for v in (sites["kind"] if "kind" in sites.columns else [None] * len(sites))
    ]
    if "new_build" not in sites.columns:
        return kinds
    tenants = (
        pd.to_numeric(sites["tenants"], errors="coerce").fillna(1).to_numpy()
        if "tenants" in sites.columns
        else np.ones(len(sites))
    )
    out = []
    for kind, new, n in zip(kinds, sites["new_build"], tenants, strict=True):
        if kind in SITE_KINDS or is_missing(new):
            out.append(kind)
        elif not truthy(new):
            out.append("co-located")
        else:
            out.append("shared" if n > 1 else "new")
    return out


def operators_at_location(towers: gpd.GeoDataFrame, tolerance_m: float = 1.0) -> pd.Series:
    """Number of distinct operators at each tower's location (within ``tolerance_m``)."""
    geoms = towers.geometry
    if towers.crs is not None and not CRS.from_user_input(towers.crs).is_projected and len(geoms):
        geoms = geoms.to_crs(geoms.estimate_utm_crs())
    # the location: coordinates in units of tolerance_m, rounded half to even (as round())
    points = geoms.to_numpy()
    there = ~(shapely.is_missing(points) | shapely.is_empty(points))
    frame = pd.DataFrame(
        {
            "x": np.rint(shapely.get_x(points[there]) / tolerance_m),
            "y": np.rint(shapely.get_y(points[there]) / tolerance_m),
            "op": towers["operator"].astype(str).to_numpy()[there],
        }
    )
    counts = np.ones(len(towers), dtype=int)
    counts[there] = frame.groupby(["x", "y"], sort=False)["op"].transform("nunique").to_numpy()
    return pd.Series(counts, index=towers.index)
