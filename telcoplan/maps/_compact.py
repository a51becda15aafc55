"""Compact forms of the map's large layers, so that a national plan's page stays usable.

Above :data:`COMPACT_ABOVE` features a layer changes form (below, the map is drawn as
:mod:`telcoplan.maps._layers` always drew it):

- backbone links: merged per (plan, status, operators) into one (Multi)LineString per group,
  links joined end to end where they meet (:func:`merge_lines`), then simplified with the
  map's ``simplify_m`` part by part (Douglas-Peucker, not GEOS's topology-preserving
  simplifier, which takes minutes on 100,000 parts) and drawn on a canvas; the tooltip and
  popup give the group's totals (links, km, cost);
- towers: one JSON object of arrays (coordinates, a small integer code per operator, each
  attribute as a constant, a table of distinct texts and a code per tower, or a text per
  tower, see :func:`_encode`) drawn by a small inlined script as Leaflet circle markers on
  one ``L.Canvas`` renderer that stamps a pre-drawn image per marker style instead of
  filling a path per marker, smaller below zoom 12 (:data:`TOWERS_JS`); the popup is built
  on click from the arrays. The JSON escapes ``< > & '`` and the script HTML-escapes every
  text it puts into a popup or tooltip;
- roads: only the main classes (:data:`MAIN_ROAD_CLASSES`), merged per (class, name), on a
  canvas; the layer's name lists the classes shown, the legend how many roads of how many.
"""

from __future__ import annotations

import re
from collections.abc import Hashable, Sequence
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pyproj import CRS

from telcoplan.maps._builder import Builder, column, script_json
from telcoplan.maps._linemerge import line_merge_groups
from telcoplan.maps._plain import plain_classes
from telcoplan.maps._style import (
    JOINT_COLOUR,
    LINK_STATUS,
    OTHER_STATUS,
    link_status,
    link_users,
    operators_at_location,
)
from telcoplan.maps._web import esc, fmt, fmt_text

__all__ = [
    "COMPACT_ABOVE",
    "MAIN_ROAD_CLASSES",
    "TOWERS_JS",
    "add_backbone_merged",
    "add_main_roads",
    "add_towers_canvas",
    "backbone_layer",
    "backbone_layer_order",
    "backbone_legend",
    "link_groups",
    "link_style",
    "merge_lines",
    "split_trailing_digits",
    "tower_arrays",
]

#: Feature counts above which a layer is drawn in its compact form (the city demo's map, 600
#: towers, 2,387 backbone links and 572 roads, stays below every one of them).
COMPACT_ABOVE: dict[str, int] = {"towers": 5_000, "backbone": 20_000, "roads": 5_000}
#: Road classes drawn when the roads are compact (``*_link`` ramps count as their class).
MAIN_ROAD_CLASSES: tuple[str, ...] = ("motorway", "trunk", "primary", "secondary")
#: Marker radius (px) and ring of compact towers: (radius, ring colour, ring weight) of a
#: single-operator site (no ring: half the drawing work) and of a shared one.
_DOT = (4.0, "#ffffff", 0.0)
_SHARED_DOT = (6.0, "#000000", 2.5)


# --------------------------------------------------------------------------- lines


def merge_lines(gdf: gpd.GeoDataFrame, keys: Sequence[Hashable]) -> gpd.GeoDataFrame:
    """One geometry per group of ``gdf``'s lines with equal ``keys``.

    The lines of a group (null and empty ones left out, multi-part lines taken apart) become
    one MultiLineString, whose parts are then joined end to end where exactly two of them
    meet (:func:`shapely.line_merge`, computed for every group at once by
    :func:`telcoplan.maps._linemerge.line_merge_groups`): fewer, longer parts, which
    simplification can thin out.
    No vertex moves, so a group's length is the sum of its lines' lengths.

    Returns a GeoDataFrame in ``gdf``'s CRS, one row per group in order of first appearance,
    with ``key`` (the group's key), ``rows`` (positions of its lines in ``gdf``) and
    ``count`` (number of lines).
    """
    if len(keys) != len(gdf):
        raise ValueError(f"need one key per line: {len(keys)} keys for {len(gdf)} lines")
    codes, uniques = pd.factorize(pd.Series(list(keys), dtype=object), sort=False)
    return _merge_coded(gdf, codes, list(uniques))


def _merge_coded(gdf: gpd.GeoDataFrame, codes: np.ndarray, uniques: list) -> gpd.GeoDataFrame:
    """:func:`merge_lines` of lines whose keys are ``uniques[codes]`` (numbered in order of
    first appearance)."""
    geoms = gdf.geometry.to_numpy()
    # a line whose key is missing (code -1) is in no group
    valid = ~(shapely.is_missing(geoms) | shapely.is_empty(geoms)) & (codes >= 0)
    order = np.argsort(codes, kind="stable")
    starts = np.searchsorted(codes[order], np.arange(len(uniques) + 1))
    rows = [order[starts[g] : starts[g + 1]] for g in range(len(uniques))]
    parts, group = geoms[valid], codes[valid]
    if not (shapely.get_type_id(parts) == 1).all():  # else: no need to copy them
        parts, at = shapely.get_parts(parts, return_index=True)
        line = shapely.get_type_id(parts) == 1  # LineStrings only
        parts, group = parts[line], group[at[line]]
    # every group at once (shapely.line_merge of the group's MultiLineString); None stays None
    merged = line_merge_groups(parts, group, len(uniques))
    return gpd.GeoDataFrame(
        {
            "key": uniques,
            "rows": rows,
            "count": [len(r) for r in rows],
        },
        geometry=gpd.GeoSeries(merged, crs=gdf.crs),
    )


def backbone_layer(plan: str, op: str) -> tuple[str, str, bool]:
    """(name, key, shown at start) of the map layer of a backbone ``plan`` (``op``: the
    operator of a separate plan, else '')."""
    if plan == "separate":
        return f"Backbone – separate: {op}", f"backbone:separate:{op}", False
    if plan:
        return f"Backbone – {plan} plan", f"backbone:{plan}", True
    return "Backbone links", "backbone", True


def backbone_layer_order(layer: tuple[str, str]) -> tuple[bool, bool, tuple[str, str]]:
    """Sort key of the backbone layers: the joint plan first, the separate plans last."""
    return (layer[0] == "separate", layer[0] != "joint", layer)


def link_style(b: Builder, plan: str, status: str, ops: Sequence[str]) -> dict[str, Any]:
    """Line style of a backbone link: weight and dashes by status, black for a joint trench,
    else its operator's colour."""
    weight, dash, _ = LINK_STATUS.get(status, (*OTHER_STATUS, status))
    shared = len(ops) != 1 and plan != "separate"
    colour = JOINT_COLOUR if shared else b.colour(ops[0] if ops else "")
    return {"color": colour, "weight": weight, "opacity": 0.9, "dashArray": dash}


def backbone_legend(b: Builder, status: Sequence[str]) -> None:
    """Legend rows of the backbone: joint vs one operator, then each status present."""
    b.head("Backbone links")
    b.line_swatch(JOINT_COLOUR, 4, None, "joint (shared trench); operator colour = one operator")
    known = list(LINK_STATUS)
    for st in sorted(set(status), key=lambda s: (known.index(s) if s in known else len(known), s)):
        weight, dash, label = LINK_STATUS.get(st, (*OTHER_STATUS, st))
        b.line_swatch("#444444", weight, dash, label)


def _link_keys(links: gpd.GeoDataFrame) -> tuple[list[tuple], list[str]]:
    """The merge key of each link — (plan, the operator of a separate plan or '', status,
    operators) — and its status (:func:`link_status`, :func:`link_users`)."""
    status = link_status(links)
    users = [tuple(u) for u in link_users(links)]
    plans = [str(p) for p in column(links, "plan", "").to_numpy(dtype=object)]
    keys = [
        (plan, u[0] if plan == "separate" and u else "", st, u)
        for plan, st, u in zip(plans, status, users, strict=True)
    ]
    return keys, status


def _link_groups_per_link(links: gpd.GeoDataFrame) -> tuple[np.ndarray, list[tuple], list[str]]:
    """:func:`link_groups` computed link by link (the reference)."""
    keys, status = _link_keys(links)
    codes, uniques = pd.factorize(pd.Series(keys, dtype=object), sort=False)
    return codes, list(uniques), sorted(set(status))


def link_groups(links: gpd.GeoDataFrame) -> tuple[np.ndarray, list[tuple], list[str]]:
    """The merge groups of backbone links: a group number per link, the groups' keys (see
    :func:`_link_keys`) in order of first appearance, and the statuses present.

    The keys are computed once per distinct combination of the columns they come from
    (``plan``, ``status``, ``ring``, ``operators`` or ``operator``; a national backbone has a
    dozen among 420,000 links), then numbered as ``pd.factorize`` of the per-link keys would
    (the first link of each key is the first link of its first combination)."""
    cols = [c for c in ("plan", "status", "ring", "operators", "operator") if c in links.columns]
    if "operators" in cols and "operator" in cols:
        cols.remove("operator")  # link_users reads operators then
    plan = column(links, "plan", "")
    if plan.isna().any():  # str() tells None from NaN: per link
        return _link_groups_per_link(links)
    combined = np.zeros(len(links), dtype=np.int64)
    for c in cols:
        code, uniques = pd.factorize(links[c].astype(object), sort=False, use_na_sentinel=True)
        if len({type(u) for u in uniques}) > 1:  # 1 and 1.0 are one value here, not in str()
            return _link_groups_per_link(links)
        combined = combined * (len(uniques) + 1) + code + 1
        combined = pd.factorize(combined, sort=False)[0].astype(np.int64)
    _, first = np.unique(combined, return_index=True)  # combinations numbered by first row
    keys, status = _link_keys(links.iloc[first])
    key_codes, uniques = pd.factorize(pd.Series(keys, dtype=object), sort=False)
    return key_codes[combined], list(uniques), sorted(set(status))


def _metres(gdf: gpd.GeoDataFrame) -> np.ndarray:
    """Length of each line in metres (in the local UTM zone when the CRS is geographic)."""
    geoms = gdf.geometry
    if gdf.crs is not None and not CRS.from_user_input(gdf.crs).is_projected and len(geoms):
        geoms = geoms.to_crs(geoms.estimate_utm_crs())
    return geoms.length.fillna(0.0).to_numpy(dtype=float)


def _sum(values: pd.Series, rows: np.ndarray) -> float:
    """Sum of the numbers among ``values[rows]``; NaN when there are none."""
    picked = values.iloc[rows]
    return float(picked.sum()) if picked.notna().any() else float("nan")


def add_backbone_merged(b: Builder, backbone: gpd.GeoDataFrame) -> None:
    """The backbone links merged per (plan, status, operators): the layers of
    :func:`telcoplan.maps._layers.add_backbone` (one per plan, each operator's separate plan
    hidden) with one line per group whose tooltip and popup give the group's totals."""
    codes, keys, status = link_groups(backbone)
    groups = _merge_coded(backbone, codes, keys)
    given = pd.to_numeric(column(backbone, "length_m"), errors="coerce").astype(float)
    length = (
        given
        if given.notna().all()
        else given.where(given.notna(), pd.Series(_metres(backbone), index=backbone.index))
    )
    cost = pd.to_numeric(column(backbone, "cost"), errors="coerce").astype(float)
    groups["length_km"] = [_sum(length, r) / 1000.0 for r in groups["rows"]]
    groups["cost"] = [_sum(cost, r) for r in groups["rows"]]
    web = b.web(groups.drop(columns="rows"), "backbone", preserve_topology=False)
    layers: dict[tuple[str, str], list[int]] = {}
    for i, (plan, op, _, _) in enumerate(web["key"]):
        layers.setdefault((plan, op), []).append(i)
    for plan, op in sorted(layers, key=backbone_layer_order):
        pick = layers[(plan, op)]
        name, key, show = backbone_layer(plan, op)
        styles, tips = [], []
        for i in pick:
            _, _, st, ops = web["key"].iloc[i]
            styles.append(link_style(b, plan, st, ops))
            tips.append(
                {
                    "Links": esc(f"{plan} plan" if plan else "backbone"),
                    "Status": esc(st),
                    "Operators": esc(", ".join(ops)) or "joint",
                    "Number of links": fmt(int(web["count"].iloc[i])),
                    "Total length": fmt(web["length_km"].iloc[i], "km"),
                    "Total cost": fmt(web["cost"].iloc[i]),
                }
            )
        fg = b.group(name, key, show=show)
        b.geojson(
            fg, web.iloc[pick], styles, pane="overlayPane", popup=tips, tooltip=tips, canvas=True
        )
    backbone_legend(b, status)
    b.legend.append(
        f'<div class="tp-note">{fmt(len(backbone))} links drawn as {fmt(len(groups))} lines, '
        "one per plan, status and operators (totals in their popups)</div>"
    )


def _road_class(value: object) -> str:
    text = "" if value is None or pd.isna(value) else str(value).strip().lower()
    return text.removesuffix("_link")


def add_main_roads(b: Builder, roads: gpd.GeoDataFrame, weights: dict[str, float]) -> None:
    """Only the main road classes (:data:`MAIN_ROAD_CLASSES`), merged per (class, name), in a
    layer whose name says which classes it shows; without a ``road_class`` column every road
    is kept (merged per name)."""
    if "road_class" in roads.columns:
        classes = [_road_class(v) for v in roads["road_class"]]
        keep = np.array([c in MAIN_ROAD_CLASSES for c in classes], dtype=bool)
        shown = [c for c in MAIN_ROAD_CLASSES if c in set(classes)] or list(MAIN_ROAD_CLASSES)
        name = f"Roads – {', '.join(shown)} only"
    else:
        classes = [""] * len(roads)
        keep = np.ones(len(roads), dtype=bool)
        name = "Roads"
    picked = roads.loc[keep]
    names = ["" if v is None or pd.isna(v) else str(v) for v in column(picked, "name", "")]
    groups = merge_lines(
        picked, list(zip(np.asarray(classes, dtype=object)[keep], names, strict=True))
    )
    web = b.web(groups.drop(columns="rows"), "roads", preserve_topology=False)
    styles = [
        {"color": "#8c8c8c", "weight": weights.get(c, 1.5), "opacity": 0.8} for c, _ in web["key"]
    ]
    tooltip = [
        {k: esc(v) for k, v in (("name", n), ("road_class", c)) if v} or {"road": "(no name)"}
        for c, n in web["key"]
    ]
    fg = b.group(name, "roads", show=False)
    b.geojson(fg, web, styles, pane="overlayPane", tooltip=tooltip, canvas=True)
    b.head("Roads")
    b.legend.append(
        f'<div class="tp-note">{fmt(int(keep.sum()))} of {fmt(len(roads))} roads drawn'
        + (f" (the classes {esc(', '.join(MAIN_ROAD_CLASSES))})" if "road_class" in roads else "")
        + "</div>"
    )


# --------------------------------------------------------------------------- towers


_TRAILING_DIGITS = re.compile(r"(.*?)([0-9]*)", re.S)
#: The same in RE2's syntax (Arrow), anchored at both ends as ``fullmatch``.
_TRAILING_DIGITS_RE2 = r"(?s)^(?P<h>.*?)(?P<t>[0-9]*)$"


def _encode(values: pd.Series) -> dict[str, Any]:
    """Display texts of one attribute, in the shortest of these forms (texts unescaped: the
    script escapes them): ``{"k": text}`` when every tower has the same; ``{"v": distinct
    texts, "c": code per tower}`` for few distinct texts; ``{"h": distinct heads, "hc": code
    per tower, "t": trailing digits per tower}`` when the texts differ only by a number at
    their end (``VT-000123``, ``Trạm Tỉnh 61 00042``); else ``{"s": text per tower}``."""
    codes, uniques = pd.factorize(values.astype(object), sort=False, use_na_sentinel=True)
    texts = list(uniques)
    if not all(type(u) is str for u in texts):  # a text is its own display text
        texts = [fmt_text(u) for u in texts]
    if (codes < 0).any():
        codes = np.where(codes < 0, len(texts), codes)
        texts.append("")
    if len(texts) == 1:
        return {"k": texts[0]}
    if len(texts) * 2 <= len(values):
        return {"v": texts, "c": codes.astype(int).tolist()}
    head, tail = split_trailing_digits(texts)
    head_codes, heads = pd.factorize(pd.Series(head, dtype=object))
    if len(heads) * 2 <= len(values):
        return {
            "h": list(heads),
            "hc": head_codes[codes].astype(int).tolist(),
            "t": np.asarray(tail, dtype=object)[codes].tolist(),
        }
    return {"s": np.asarray(texts, dtype=object)[codes].tolist()}


def split_trailing_digits(texts: list[str]) -> tuple[list[str], list[str]]:
    """Each text as (head, the ASCII digits at its end): ``re.fullmatch(r"(.*?)([0-9]*)",
    text, re.S).groups()``, computed by Arrow's regular expressions for all texts at once
    (100,000 site ids: 10 ms rather than 60)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    try:
        parts = pc.extract_regex(pa.array(texts, type=pa.large_string()), _TRAILING_DIGITS_RE2)
    except (pa.ArrowException, UnicodeError):  # e.g. a lone surrogate: Python's regex then
        split = [_TRAILING_DIGITS.fullmatch(t).groups() for t in texts]  # type: ignore[union-attr]
        return [h for h, _ in split], [t for _, t in split]
    return parts.field("h").to_pylist(), parts.field("t").to_pylist()


def tower_arrays(
    web: gpd.GeoDataFrame, groups: Sequence[str], extra: dict[str, pd.Series]
) -> dict[str, Any]:
    """The compact data of the towers in ``web`` (EPSG:4326 points): coordinates (``lat``,
    ``lon``, degrees to 1e-5), ``group`` (index of each tower's operator in ``groups``),
    ``shared`` (positions of shared sites, filled in by the caller), ``cols`` (the index, every
    attribute, then ``extra``: ``{"label", …}`` in a form of :func:`_encode`) and
    ``name`` (position of the ``name`` column in ``cols``, -1 without one)."""
    index_label = web.index.name or "id"
    cols = [{"label": str(index_label), **_encode(pd.Series(web.index, index=web.index))}]
    names = [c for c in web.columns if c != web.geometry.name]
    for c in names:
        cols.append({"label": str(c), **_encode(web[c])})
    for label, values in extra.items():
        cols.append({"label": label, **_encode(values)})
    group = pd.Categorical(web["operator"].astype(str), categories=list(groups)).codes
    if (group < 0).any():
        raise ValueError(f"operator {web['operator'].iloc[np.argmin(group)]!r} is not in groups")
    return {
        "lat": np.round(web.geometry.y.to_numpy(), 5).tolist(),
        "lon": np.round(web.geometry.x.to_numpy(), 5).tolist(),
        "group": group.tolist(),
        "shared": [],
        "cols": cols,
        "name": 1 + names.index("name") if "name" in names else -1,
    }


#: The canvas tower layer at run time, a JS function of (map, the per-operator FeatureGroups,
#: their (single, shared) marker styles, the data of :func:`tower_arrays`). One canvas
#: renderer in the points pane draws every tower as a circle marker; a click opens a popup
#: built from the arrays and a hover a tooltip (site id, name), every text HTML-escaped.
#: ``window.tpTowers`` gets ``count``, ``siteId(i)``, ``latLng(i)`` and ``popup(i)`` (HTML).
TOWERS_JS = """function (map, groups, styles, D) {
  const Stamped = L.Canvas.extend({
    // Leaflet's canvas builds, fills and rings a path per marker; this one stamps a small
    // image of each marker style (drawn once per scale) at every marker: the single-operator
    // sites first, the shared ones on top; smaller below zoom 12, where thousands overlap
    _draw: function () {
      const ctx = this._ctx, bounds = this._redrawBounds, z = this._map.getZoom();
      const scale = z >= 12 ? 1 : z >= 9 ? 0.7 : 0.45;
      const stamps = sized[scale] || (sized[scale] = flat.map(function (o) { return stamp(o, scale); }));
      ctx.save();
      if (bounds) {
        const size = bounds.getSize();
        ctx.beginPath();
        ctx.rect(bounds.min.x, bounds.min.y, size.x, size.y);
        ctx.clip();
      }
      const late = [];
      for (let order = this._drawFirst; order; order = order.next) {
        const m = order.layer;
        if (bounds && !(m._pxBounds && m._pxBounds.intersects(bounds))) { continue; }
        if (m.tpStyle % 2) { late.push(m); continue; }
        const s = stamps[m.tpStyle];
        ctx.drawImage(s, Math.round(m._point.x) - s.tpHalf, Math.round(m._point.y) - s.tpHalf);
      }
      late.forEach(function (m) {
        const s = stamps[m.tpStyle];
        ctx.drawImage(s, Math.round(m._point.x) - s.tpHalf, Math.round(m._point.y) - s.tpHalf);
      });
      ctx.restore();
    }
  });
  function stamp(o, scale) {  // the marker of style o, scaled, on a canvas of its own
    const r = Math.max(1, o.radius * scale), w = Math.max(1, o.weight * scale);
    const half = Math.ceil(r + (o.stroke ? w / 2 : 0)) + 1;
    const c = document.createElement('canvas');
    c.width = c.height = 2 * half;
    c.tpHalf = half;
    const g = c.getContext('2d');
    g.beginPath();
    g.arc(half, half, r, 0, 2 * Math.PI);
    g.globalAlpha = o.fillOpacity;
    g.fillStyle = o.fillColor;
    g.fill();
    if (o.stroke) {
      g.globalAlpha = o.opacity;
      g.lineWidth = w;
      g.strokeStyle = o.color;
      g.stroke();
    }
    return c;
  }
  const renderer = new Stamped({padding: 0.5, pane: 'tpPoints'});
  const esc = function (s) {
    return String(s).replace(/[&<>"'`$\\\\]/g, function (c) { return '&#' + c.charCodeAt(0) + ';'; });
  };
  const text = function (col, i) {
    if (col.s) { return col.s[i]; }
    if (col.v) { return col.v[col.c[i]]; }
    if (col.h) { return col.h[col.hc[i]] + col.t[i]; }
    return col.k;
  };
  const n = D.lat.length, shared = new Uint8Array(n);
  D.shared.forEach(function (i) { shared[i] = 1; });
  // style k = 2 * operator + shared
  const flat = [];
  styles.forEach(function (pair) {
    pair.forEach(function (s) {
      flat.push(Object.assign({renderer: renderer, pane: 'tpPoints', fill: true, fillOpacity: 0.9,
        opacity: 1}, s));
    });
  });
  function popup(i) {
    let rows = '';
    D.cols.forEach(function (col) {
      rows += '<tr><th>' + esc(col.label) + '</th><td>' + esc(text(col, i)) + '</td></tr>';
    });
    return '<table>' + rows + '</table>';
  }
  function tip(i) {
    const name = D.name >= 0 ? text(D.cols[D.name], i) : '';
    return esc((text(D.cols[0], i) + ' ' + name).trim() + (shared[i] ? ' (shared)' : ''));
  }
  const sized = {};
  const parts = groups.map(function () { return []; });
  for (let i = 0; i < n; i++) {
    const k = 2 * D.group[i] + shared[i], m = L.circleMarker([D.lat[i], D.lon[i]], flat[k]);
    m.tpIndex = i;
    m.tpStyle = k;
    parts[D.group[i]].push(m);
  }
  groups.forEach(function (fg, g) {
    const on = map.hasLayer(fg);
    if (on) { map.removeLayer(fg); }
    parts[g].forEach(function (m) { fg.addLayer(m); });
    if (on) { map.addLayer(fg); }
    fg.on('click', function (e) {
      L.popup({maxWidth: 420}).setLatLng(e.layer.getLatLng())
        .setContent(popup(e.layer.tpIndex)).openOn(map);
    });
    fg.on('mouseover', function (e) {
      const m = e.layer;
      if (!m.getTooltip()) { m.bindTooltip(tip(m.tpIndex), {sticky: true}); }
      m.openTooltip(e.latlng);
    });
  });
  window.tpTowers = {
    count: n,
    siteId: function (i) { return text(D.cols[0], i); },
    latLng: function (i) { return L.latLng(D.lat[i], D.lon[i]); },
    popup: popup
  };
}"""


def _towers_element() -> type:
    from folium.template import Template

    class CanvasTowers(plain_classes()[0]):
        """The towers as compact data drawn by :data:`TOWERS_JS` (added after their groups)."""

        _template = Template(
            "{% macro script(this, kwargs) %}"
            "(" + TOWERS_JS + ")({{ this.map }}, [{{ this.groups|join(', ') }}], "
            "{{ this.styles }}, {{ this.data }});"
            "{% endmacro %}"
        )

        def __init__(self, map_name: str, groups: list[str], styles: str, data: str) -> None:
            super().__init__()
            self._name = "TelcoplanCanvasTowers"
            self.map = map_name
            self.groups = groups
            self.styles = styles
            self.data = data

    return CanvasTowers


def add_towers_canvas(b: Builder, towers: gpd.GeoDataFrame) -> None:
    """The towers as compact arrays drawn as canvas circle markers: one layer per operator
    (as :func:`telcoplan.maps._layers.add_towers`), no clustering, shared sites ringed."""
    colocated = operators_at_location(towers)
    tenants = pd.to_numeric(column(towers, "tenants", 1), errors="coerce").fillna(1)
    shared_all = (tenants > 1) | (colocated > 1)
    web = b.web(towers, "towers")
    ops = sorted(set(web["operator"].astype(str).unique()))
    data = tower_arrays(web, ops, {"operators at this location": colocated.reindex(web.index)})
    shared = shared_all.reindex(web.index).to_numpy(dtype=bool)
    data["shared"] = np.flatnonzero(shared).tolist()
    b.head("Towers (one colour per operator)")
    groups, styles = [], []
    for op in ops:
        colour = b.colour(op)
        groups.append(b.group(f"Towers – {op}", f"towers:{op}").get_name())
        styles.append(
            [
                {"radius": r, "color": ring, "weight": w, "stroke": w > 0, "fillColor": colour}
                for r, ring, w in (_DOT, _SHARED_DOT)
            ]
        )
        b.swatch(colour, op, shape="dot")
    if shared.any():
        b.swatch(
            "#ffffff", "shared site (2+ operators)", shape="dot", extra="border:3px solid #000"
        )
    b.legend.append(
        f'<div class="tp-note">{fmt(len(web))} towers drawn as dots (click one for its '
        "attributes)</div>"
    )
    element = _towers_element()
    element(b.m.get_name(), groups, script_json(styles), script_json(data, tight=True)).add_to(b.m)
