"""The interactive plan map: one self-contained, offline HTML page built with folium.

:func:`build_map` turns a plan's layers (GeoDataFrames in any CRS, signal rasters with their
georeferencing) into a :class:`folium.Map` with one named layer per topic in a layer control, a
legend and a summary box; :func:`save_map` writes it as a single HTML file with Leaflet,
Leaflet.markercluster and jQuery inlined, so the page makes no network request (unless a
basemap was asked for with ``tiles=``). :func:`map_from_outputs` builds the map of a plan
from its output folder, :func:`write_plan_map` also saves it: that is what the plan stage and
``telcoplan map`` call.

Every text taken from the inputs (names, operators, attribute values, column names) is
HTML-escaped before it reaches the page: a tower called ``<img src=x onerror=alert(1)>``
shows up as that text and runs nothing.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import re
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import geopandas as gpd
import numpy as np
import pandas as pd

from telcoplan.errors import TelcoplanError
from telcoplan.gis.atomic import atomic_path, check_writable, final_path
from telcoplan.maps._style import (
    ANY_COLOUR,
    COVERAGE_CLASSES,
    GAP_COLOUR,
    JOINT_COLOUR,
    LINK_STATUS,
    NO_DATA_COLOUR,
    OTHER_STATUS,
    SITE_KINDS,
    class_colour,
    coverage_class_labels,
    link_status,
    link_users,
    operators_at_location,
    pct_any,
    site_kind,
    split_ops,
    truthy,
)
from telcoplan.maps._web import (
    LatLonBounds,
    esc,
    feature_collection,
    fmt,
    operator_colours,
    to_web,
    union_bounds,
)

if TYPE_CHECKING:
    import folium

__all__ = [
    "COVERAGE_CLASSES",
    "LINK_STATUS",
    "MAP_PARAMETERS",
    "SITE_KINDS",
    "build_map",
    "map_from_outputs",
    "map_parameters",
    "render_map",
    "save_map",
    "write_plan_map",
]

log = logging.getLogger(__name__)

_UNSERVED_COLOUR = "#d73027"
_SERVED, _UNSERVED, _UNKNOWN = "#1a9850", _UNSERVED_COLOUR, "#969696"
_ROAD_WEIGHT = {"motorway": 3.5, "trunk": 3.0, "primary": 2.5, "secondary": 2.0}
#: Map panes (z-index) so that points stay above lines above polygons above rasters, however
#: the layers are toggled (Leaflet's own overlay pane, 400, holds the lines).
_PANES = {"tpSignal": 350, "tpAreas": 360, "tpPolygons": 370, "tpPoints": 450}
_URL_TEMPLATE = re.compile(r"^https?://[^\s\"'<>`]+$")


# --------------------------------------------------------------------------- helpers


def _import_folium() -> Any:
    try:
        import folium
        import folium.plugins
    except ImportError as exc:  # pragma: no cover - the maps extra is installed in CI
        raise TelcoplanError(
            "the interactive map needs folium; install the maps extra: pip install 'telcoplan[maps]'"
        ) from exc
    return folium


def _names(gdf: gpd.GeoDataFrame) -> pd.Series:
    """Display names of features: the ``name`` column when present, else the index."""
    if "name" in gdf.columns:
        return gdf["name"].astype(str)
    return pd.Series(gdf.index.astype(str), index=gdf.index)


def _column(gdf: gpd.GeoDataFrame, name: str, default: object = np.nan) -> pd.Series:
    if name in gdf.columns:
        return gdf[name]
    return pd.Series(default, index=gdf.index, dtype=object)


def _attributes(gdf: gpd.GeoDataFrame) -> list[dict[str, str]]:
    """Per-feature popup properties: every attribute (index first), escaped and formatted."""
    cols = [c for c in gdf.columns if c != gdf.geometry.name]
    index_label = esc(gdf.index.name or "id")
    rows = []
    for idx, values in zip(gdf.index, gdf[cols].itertuples(index=False, name=None), strict=True):
        props = {index_label: fmt(idx)}
        props.update({esc(c): fmt(v) for c, v in zip(cols, values, strict=True)})
        rows.append(props)
    return rows


def _ops(gdf: gpd.GeoDataFrame | None) -> list[str]:
    if gdf is None:
        return []
    found: list[str] = []
    for col in ("operator", "operators"):
        if col in gdf.columns:
            for v in gdf[col].dropna().unique():
                found += split_ops(v)
    return found


def _check_frame(gdf: object, what: str) -> None:
    if gdf is not None and not isinstance(gdf, gpd.GeoDataFrame):
        raise TypeError(f"{what} must be a GeoDataFrame, got {type(gdf).__name__}")


def _script_json(value: object) -> str:
    """JSON for inside a ``<script>``: ``< > & '`` escaped, so no text can close the tag."""
    return (
        json.dumps(value, ensure_ascii=False)
        .replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .replace("&", "\\u0026")
        .replace("'", "\\u0027")
    )


def _line_svg(colour: str, weight: float, dash: str | None) -> str:
    dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
    return (
        f'<svg class="tp-svg" width="30" height="10"><line x1="1" y1="5" x2="29" y2="5" '
        f'stroke="{colour}" stroke-width="{weight:g}"{dash_attr}/></svg>'
    )


@cache
def _element_classes() -> tuple[type, type, type]:
    """Small folium elements: raw HTML/CSS text, the ``window.telcoplan`` registry, and
    per-feature popups for clustered markers."""
    from branca.element import MacroElement
    from folium.template import Template

    class Html(MacroElement):
        """Fixed, already-escaped HTML added to the page body (legend, summary box)."""

        _template = Template(
            "{% macro html(this, kwargs) %}{{ this.content }}{% endmacro %}"
            "{% macro header(this, kwargs) %}{{ this.style }}{% endmacro %}"
        )

        def __init__(self, content: str, style: str = "") -> None:
            super().__init__()
            self._name = "TelcoplanHtml"
            self.content = content
            self.style = style

    class Registry(MacroElement):
        """``window.telcoplan = {map, overlays, keys}``: the map and its named layers, for
        scripts and tests (``keys`` maps stable ids like ``towers:Viettel`` to layer names)."""

        _template = Template(
            "{% macro script(this, kwargs) %}"
            "window.telcoplan = {map: {{ this._parent.get_name() }}, overlays: { "
            "{% for name, var in this.layers %}{{ name|tojson }}: {{ var }},{% endfor %} }, "
            "keys: {{ this.keys|tojson }} };"
            "{% endmacro %}"
        )

        def __init__(self, layers: list[tuple[str, str]], keys: dict[str, str]) -> None:
            super().__init__()
            self._name = "TelcoplanRegistry"
            self.layers = layers
            self.keys = keys

    class PerFeature(MacroElement):
        """Move a GeoJSON layer's popup and tooltip onto each of its features.

        folium binds them to the GeoJSON layer group, which only works while that group is on
        the map; a marker cluster takes the group's markers and leaves the group off the map.
        """

        _template = Template(
            "{% macro script(this, kwargs) %}"
            "(function (g) { const p = g.getPopup(), t = g.getTooltip();"
            " g.eachLayer(function (l) {"
            " if (p) { l.bindPopup(p.getContent(), p.options); }"
            " if (t) { l.bindTooltip(t.getContent(), t.options); } });"
            " g.unbindPopup(); g.unbindTooltip(); })({{ this._parent.get_name() }});"
            "{% endmacro %}"
        )

        def __init__(self) -> None:
            super().__init__()
            self._name = "TelcoplanPerFeature"

    return Html, Registry, PerFeature


class _Builder:
    """Collects the layers of one map (kept private: the API is :func:`build_map`)."""

    def __init__(self, folium: Any, m: Any, simplify_m: float, colours: dict[str, str]) -> None:
        self.folium = folium
        self.m = m
        self.simplify_m = simplify_m
        self.colours = colours
        self.groups: list[Any] = []
        self.keys: dict[str, str] = {}
        self.bounds: list[LatLonBounds | None] = []
        self.legend: list[str] = []
        self.css: list[str] = []

    def colour(self, op: str) -> str:
        return self.colours.get(op, "#666666")

    def group(self, name: str, key: str, *, show: bool = True) -> Any:
        """A named FeatureGroup in the layer control (``name`` is escaped here)."""
        fg = self.folium.FeatureGroup(name=esc(name), show=show)
        fg.add_to(self.m)
        self.groups.append(fg)
        self.keys[key] = fg.layer_name
        return fg

    def web(self, gdf: gpd.GeoDataFrame, what: str) -> gpd.GeoDataFrame:
        out, bounds = to_web(gdf, tolerance_m=self.simplify_m, what=what)
        self.bounds.append(bounds)
        return out

    def geojson(
        self,
        parent: Any,
        web: gpd.GeoDataFrame,
        styles: list[dict[str, Any]],
        *,
        pane: str,
        popup: list[dict[str, str]] | None = None,
        tooltip: list[dict[str, str]] | None = None,
        radius: float | None = None,
    ) -> Any:
        """A GeoJson of ``web``'s features with per-feature styles and escaped popup/tooltip."""
        folium = self.folium
        props: list[dict[str, str]] = [{} for _ in range(len(web))]

        def fields_of(rows: list[dict[str, str]] | None, prefix: str) -> tuple[list, list]:
            """Store rows under short keys p0, p1, … (labels may be any escaped text)."""
            if not rows:
                return [], []
            labels = list(dict.fromkeys(lab for row in rows for lab in row))
            keys = [f"{prefix}{i}" for i in range(len(labels))]
            for target, row in zip(props, rows, strict=True):
                target.update({k: row.get(lab, "") for k, lab in zip(keys, labels, strict=True)})
            return keys, labels

        popup_keys, popup_labels = fields_of(popup, "p")
        tip_keys, tip_labels = fields_of(tooltip, "t")
        # a value shared by every feature is written once (the first feature keeps it, for
        # folium's field check) and copied onto the others when the layer is built
        shared = {
            k: v
            for k, v in (props[0].items() if len(props) > 1 else ())
            if all(p.get(k) == v for p in props)
        }
        for p in props[1:]:
            for k in shared:
                del p[k]
        on_each = None
        if shared:
            on_each = folium.utilities.JsCode(
                "function (feature, layer) { const c = "
                + _script_json(shared)
                + "; for (const k in c) { if (!(k in feature.properties)) "
                "{ feature.properties[k] = c[k]; } } }"
            )
        marker = None
        if radius is not None:
            marker = folium.CircleMarker(radius=radius, weight=1, fill=True, fill_opacity=0.9)
            marker.options["pane"] = pane
        gj = folium.GeoJson(
            feature_collection(web, props),
            style_function=lambda f: styles[int(f["id"])],
            marker=marker,
            control=False,
            pane=pane,
            on_each_feature=on_each,
            popup=(
                folium.GeoJsonPopup(fields=popup_keys, aliases=popup_labels, max_width=420)
                if popup_keys
                else None
            ),
            tooltip=(
                folium.GeoJsonTooltip(
                    fields=tip_keys, aliases=tip_labels, labels=len(tip_keys) > 1, sticky=True
                )
                if tip_keys
                else None
            ),
        )
        gj.add_to(parent)
        if isinstance(parent, self.folium.plugins.MarkerCluster) and (popup_keys or tip_keys):
            _element_classes()[2]().add_to(gj)  # after the popup and tooltip are bound
        return gj

    def head(self, text: str) -> None:
        self.legend.append(f'<div class="tp-head">{esc(text)}</div>')

    def swatch(self, colour: str, label: str, *, shape: str = "sq", extra: str = "") -> None:
        """One legend row; ``label`` is escaped here, ``colour`` and ``extra`` are ours."""
        self.legend.append(
            f'<div class="tp-row"><i class="tp-{shape}" style="background:{colour};{extra}"></i>'
            f"{esc(label)}</div>"
        )

    def line_swatch(self, colour: str, weight: float, dash: str | None, label: str) -> None:
        self.legend.append(
            f'<div class="tp-row">{_line_svg(colour, weight, dash)}{esc(label)}</div>'
        )


# --------------------------------------------------------------------------- layers


def _add_areas(b: _Builder, areas: gpd.GeoDataFrame) -> None:
    web = b.web(areas, "areas")
    pct = pct_any(web)
    styles = [
        {"color": "#444444", "weight": 1.5, "fillColor": class_colour(p), "fillOpacity": 0.45}
        for p in pct
    ]
    tooltip = [
        {"Area": esc(n), "Population": fmt(p), "Covered (any operator)": fmt(c, "%")}
        for n, p, c in zip(_names(web), _column(web, "population"), pct.round(2), strict=True)
    ]
    fg = b.group("Areas – coverage %", "areas")
    b.geojson(fg, web, styles, pane="tpAreas", popup=_attributes(web), tooltip=tooltip)
    b.head("Areas: population covered (any operator)")
    for colour, text in coverage_class_labels():
        b.swatch(colour, text)
    if not pct.notna().all():
        b.swatch(NO_DATA_COLOUR, "no coverage figure")


def _add_signal(
    b: _Builder,
    signal: Mapping[str, tuple[np.ndarray, Any]],
    vrange: tuple[float, float],
    step: float,
) -> None:
    from telcoplan.maps._raster import SIGNAL_COLOURS, signal_png

    vmin, vmax = vrange
    for op, item in signal.items():
        try:
            values, grid = item
        except (TypeError, ValueError):
            raise TypeError(
                f"signal[{op!r}] must be (array, GridSpec or RasterInfo), got {type(item).__name__}"
            ) from None
        if not all(hasattr(grid, a) for a in ("crs", "transform", "width", "height")):
            raise TypeError(
                f"signal[{op!r}] must be (array, GridSpec or RasterInfo), "
                f"got ({type(values).__name__}, {type(grid).__name__})"
            )
        uri, bounds = signal_png(values, grid, vmin, vmax, step=step)
        b.bounds.append(bounds)
        fg = b.group(f"Signal – {op} (dBm)", f"signal:{op}", show=False)
        b.folium.raster_layers.ImageOverlay(
            image=uri,
            bounds=bounds,
            opacity=0.7,
            pixelated=True,
            control=False,
            pane="tpSignal",
            className="tp-signal",
        ).add_to(fg)
    gradient = ", ".join(SIGNAL_COLOURS)
    b.head("Signal (received power, per operator)")
    b.legend.append(
        f'<div class="tp-ramp" style="background:linear-gradient(to right, {gradient})"></div>'
        f'<div class="tp-ramp-labels"><span>{fmt(vmin)}</span><span>{fmt((vmin + vmax) / 2)}'
        f"</span><span>≥ {fmt(vmax)} dBm</span></div>"
        f'<div class="tp-note">steps of {fmt(step)} dB; below {fmt(vmin)} dBm not shown</div>'
    )


def _add_coverage(b: _Builder, coverage: gpd.GeoDataFrame) -> None:
    if "operator" not in coverage.columns:
        raise ValueError("coverage needs an 'operator' column (one row per operator and 'any')")
    web = b.web(coverage, "coverage")
    ops = sorted(coverage["operator"].astype(str).unique(), key=lambda o: (o != "any", o))
    b.head("Coverage")
    for op in ops:
        sub = web[web["operator"].astype(str) == op]
        colour = ANY_COLOUR if op == "any" else b.colour(op)
        label = "any operator" if op == "any" else op
        styles = [{"color": colour, "weight": 1, "fillColor": colour, "fillOpacity": 0.18}] * len(
            sub
        )
        pct = pd.to_numeric(_column(sub, "population_pct"), errors="coerce").astype(float)
        tooltip = [
            {
                "Coverage": esc(label),
                "Population covered": fmt(c),
                "Share of population": fmt(p, "%"),
                "Area": fmt(a, "km²"),
            }
            for c, p, a in zip(
                _column(sub, "population_covered"),
                pct.round(2),
                _column(sub, "area_km2"),
                strict=True,
            )
        ]
        fg = b.group(f"Coverage – {label}", f"coverage:{op}", show=op == "any")
        b.geojson(fg, sub, styles, pane="tpPolygons", tooltip=tooltip)
        b.swatch(colour, f"covered by {label}", extra="opacity:.5")


def _add_gaps(b: _Builder, gaps: gpd.GeoDataFrame) -> None:
    web = b.web(gaps, "gaps")
    styles = [
        {"color": "#7f0000", "weight": 2, "fillColor": GAP_COLOUR, "fillOpacity": 0.55}
    ] * len(web)
    tooltip = [
        {"Gap": fmt(i), "Population": _persons(p), "Area": fmt(a, "km²")}
        for i, p, a in zip(
            web.index, _column(web, "population"), _column(web, "area_km2"), strict=True
        )
    ]
    fg = b.group("Coverage gaps", "gaps")
    b.geojson(fg, web, styles, pane="tpPolygons", popup=_attributes(web), tooltip=tooltip)
    b.swatch(GAP_COLOUR, "coverage gap (populated, no operator)")


def _line_layer(
    b: _Builder,
    web: gpd.GeoDataFrame,
    name: str,
    key: str,
    styles: list[dict[str, Any]],
    tooltip: list[dict[str, str]],
    show: bool,
    *,
    popup: bool = True,
) -> None:
    fg = b.group(name, key, show=show)
    b.geojson(
        fg,
        web,
        styles,
        pane="overlayPane",
        popup=_attributes(web) if popup else None,
        tooltip=tooltip,
    )


def _simple_tooltip(web: gpd.GeoDataFrame, cols: list[str]) -> list[dict[str, str]]:
    have = [c for c in cols if c in web.columns]
    if not have:
        return [{"id": fmt(i)} for i in web.index]
    return [
        {esc(c): fmt(v) for c, v in zip(have, row, strict=True)}
        for row in web[have].itertuples(index=False, name=None)
    ]


def _add_roads(b: _Builder, roads: gpd.GeoDataFrame) -> None:
    web = b.web(roads, "roads")
    styles = [
        {"color": "#8c8c8c", "weight": _ROAD_WEIGHT.get(str(c), 1.5), "opacity": 0.8}
        for c in _column(web, "road_class", "")
    ]
    tooltip = _simple_tooltip(web, ["name", "road_class"])
    _line_layer(b, web, "Roads", "roads", styles, tooltip, False, popup=False)


def _add_fiber(b: _Builder, fiber: gpd.GeoDataFrame) -> None:
    web = b.web(fiber, "fiber")
    styles = []
    for op, status in zip(_column(web, "operator", ""), _column(web, "status", ""), strict=True):
        planned = str(status).lower() in {"planned", "proposed"}
        styles.append(
            {
                "color": b.colour(str(op)),
                "weight": 2.5,
                "opacity": 0.85,
                "dashArray": "6 4" if planned else None,
            }
        )
    tooltip = _simple_tooltip(web, ["operator", "status", "cores"])
    _line_layer(b, web, "Existing fiber", "fiber", styles, tooltip, True)
    b.head("Fiber (operator colour)")
    b.line_swatch("#555555", 2.5, None, "existing fiber")
    if any(s.get("dashArray") for s in styles):
        b.line_swatch("#555555", 2.5, "6 4", "planned fiber")


def _add_backbone(b: _Builder, backbone: gpd.GeoDataFrame) -> None:
    web = b.web(backbone, "backbone")
    status = link_status(web)
    users = link_users(web)
    plans = [str(p) for p in _column(web, "plan", "")]
    styles = []
    for st, ops, plan in zip(status, users, plans, strict=True):
        weight, dash, _ = LINK_STATUS.get(st, (*OTHER_STATUS, st))
        shared = len(ops) != 1 and plan != "separate"
        colour = JOINT_COLOUR if shared else b.colour(ops[0] if ops else "")
        styles.append({"color": colour, "weight": weight, "opacity": 0.9, "dashArray": dash})
    length = pd.to_numeric(_column(web, "length_m"), errors="coerce").astype(float)
    tooltip = [
        {
            "Link": esc(f"{plan} plan" if plan else "backbone"),
            "Status": esc(st),
            "Operators": esc(", ".join(ops)) or "joint",
            "Length": fmt(ln / 1000.0, "km") if np.isfinite(ln) and ln >= 1000 else fmt(ln, "m"),
            "Cost": fmt(c),
        }
        for plan, st, ops, ln, c in zip(
            plans, status, users, length, _column(web, "cost"), strict=True
        )
    ]
    # one layer per plan: the joint plan shown, each operator's separate plan hidden
    groups: dict[tuple[str, str], list[int]] = {}
    for i, (plan, ops) in enumerate(zip(plans, users, strict=True)):
        if plan == "separate":
            groups.setdefault(("separate", ops[0] if ops else ""), []).append(i)
        else:
            groups.setdefault((plan, ""), []).append(i)
    order = sorted(groups, key=lambda k: (k[0] == "separate", k[0] != "joint", k))
    popups = _attributes(web)
    for plan, op in order:
        pick = groups[(plan, op)]
        if plan == "separate":
            name, key, show = f"Backbone – separate: {op}", f"backbone:separate:{op}", False
        elif plan:
            name, key, show = f"Backbone – {plan} plan", f"backbone:{plan}", True
        else:
            name, key, show = "Backbone links", "backbone", True
        fg = b.group(name, key, show=show)
        b.geojson(
            fg,
            web.iloc[pick],
            [styles[i] for i in pick],
            pane="overlayPane",
            popup=[popups[i] for i in pick],
            tooltip=[tooltip[i] for i in pick],
        )
    b.head("Backbone links")
    b.line_swatch(JOINT_COLOUR, 4, None, "joint (shared trench); operator colour = one operator")
    known = list(LINK_STATUS)
    for st in sorted(set(status), key=lambda s: (known.index(s) if s in known else len(known), s)):
        weight, dash, label = LINK_STATUS.get(st, (*OTHER_STATUS, st))
        b.line_swatch("#444444", weight, dash, label)


def _add_pois(b: _Builder, pois: gpd.GeoDataFrame) -> None:
    web = b.web(pois, "pois")
    if "served" in web.columns:
        served: list[bool | None] = [
            None if v is None or pd.isna(v) else truthy(v) for v in web["served"].astype(object)
        ]
    else:
        served = [None] * len(web)
    colour = {True: _SERVED, False: _UNSERVED, None: _UNKNOWN}
    styles = [
        {"color": "#ffffff", "weight": 1, "fillColor": colour[s], "radius": 5, "fillOpacity": 0.95}
        for s in served
    ]
    text = {True: "served", False: "NOT served", None: "service unknown"}
    tooltip = [
        {"POI": f"{fmt(n)} ({fmt(c)}) – {text[s]}" if not pd.isna(c) else f"{fmt(n)} – {text[s]}"}
        for n, c, s in zip(_names(web), _column(web, "category"), served, strict=True)
    ]
    fg = b.group("Points of interest", "pois")
    b.geojson(fg, web, styles, pane="tpPoints", popup=_attributes(web), tooltip=tooltip, radius=5)
    b.head("Points of interest")
    for s in (True, False, None):
        if s in served:
            b.swatch(colour[s], f"POI {text[s]}", shape="dot")


def _add_towers(b: _Builder, towers: gpd.GeoDataFrame) -> None:
    if "operator" not in towers.columns:
        raise ValueError("towers need an 'operator' column")
    colocated = operators_at_location(towers)
    tenants = pd.to_numeric(_column(towers, "tenants", 1), errors="coerce").fillna(1)
    shared_all = (tenants > 1) | (colocated > 1)
    web = b.web(towers, "towers")
    shared = shared_all.reindex(web.index).to_numpy(dtype=bool)
    attrs = _attributes(web)
    for row, n in zip(attrs, colocated.reindex(web.index), strict=True):
        row["operators at this location"] = fmt(n)
    operators = web["operator"].astype(str).to_numpy()
    b.head("Towers (one colour per operator)")
    for op in sorted(set(operators)):
        pick = np.flatnonzero(operators == op)
        sub = web.iloc[pick]
        i = len(b.css)
        colour = b.colour(op)
        styles = [
            {"color": "#000000", "weight": 3, "fillColor": colour, "radius": 8}
            if shared[k]
            else {"color": "#ffffff", "weight": 1, "fillColor": colour, "radius": 6}
            for k in pick
        ]
        tooltip = [
            {"Site": f"{fmt(sid)} {fmt(n)}".strip() + (" (shared)" if shared[k] else "")}
            for sid, n, k in zip(sub.index, _column(sub, "name", ""), pick, strict=True)
        ]
        fg = b.group(f"Towers – {op}", f"towers:{op}")
        cluster = b.folium.plugins.MarkerCluster(
            control=False,
            options={"showCoverageOnHover": False, "disableClusteringAtZoom": 15},
            icon_create_function=(
                "function (cluster) { return L.divIcon({html: '<div><span>' + "
                "cluster.getChildCount() + '</span></div>', className: 'marker-cluster "
                f"tp-cluster-{i}', iconSize: L.point(40, 40)}}); }}"
            ),
        )
        cluster.add_to(fg)
        b.geojson(
            cluster,
            sub,
            styles,
            pane="tpPoints",
            popup=[attrs[k] for k in pick],
            tooltip=tooltip,
            radius=6,
        )
        b.css.append(
            f".tp-cluster-{i} {{ background-color: {colour}66; }} "
            f".tp-cluster-{i} div {{ background-color: {colour}dd; color: #fff; }}"
        )
        b.swatch(colour, op, shape="dot")
    if shared.any():
        b.swatch(
            "#ffffff", "shared site (2+ operators)", shape="dot", extra="border:3px solid #000"
        )


def _add_sites(b: _Builder, sites: gpd.GeoDataFrame) -> None:
    web = b.web(sites, "sites")
    kinds = [site_kind(v) for v in _column(web, "kind")]
    styles = [
        {"color": "#000000", "weight": 2, "fillColor": SITE_KINDS.get(k, "#ffffff"), "radius": 8}
        for k in kinds
    ]
    ops = [", ".join(split_ops(v)) for v in _column(web, "operators", _column(web, "operator"))]
    tooltip = [
        {"Proposed site": " ".join(t for t in (fmt(i), esc(k), f"({esc(o)})" if o else "") if t)}
        for i, k, o in zip(web.index, kinds, ops, strict=True)
    ]
    fg = b.group("Proposed sites", "sites")
    b.geojson(fg, web, styles, pane="tpPoints", popup=_attributes(web), tooltip=tooltip, radius=8)
    b.head("Proposed sites")
    for kind in sorted(set(kinds), key=lambda k: (k not in SITE_KINDS, k)):
        b.swatch(
            SITE_KINDS.get(kind, "#ffffff"),
            kind or "(no kind)",
            shape="dot",
            extra="border:2px solid #000",
        )


def _summary_box(title: str, summary: Mapping[str, Any] | None) -> str:
    rows: list[tuple[str, str]] = []
    s = dict(summary or {})

    def sub(obj: object, key: str) -> Mapping[str, Any]:
        v = obj.get(key) if isinstance(obj, Mapping) else None
        return v if isinstance(v, Mapping) else {}

    cov = sub(s, "coverage")
    if s.get("plan") and str(s["plan"]) != title:
        rows.append(("Plan", fmt(s["plan"])))
    if s.get("population_total") is not None:
        rows.append(("Population", fmt(s["population_total"])))
    if sub(cov, "any"):
        rows.append(("Covered (any operator)", fmt(sub(cov, "any").get("population_pct"), "%")))
    best = sub(cov, "best_single_operator")
    if best.get("operator"):
        rows.append(
            (
                "Best single operator",
                f"{fmt(best['operator'])} ({fmt(best.get('population_pct'), '%')})",
            )
        )
    gaps = sub(s, "gaps")
    if gaps.get("count") is not None:
        rows.append(
            ("Coverage gaps", f"{fmt(gaps['count'])} ({_persons(gaps.get('population'))} people)")
        )
    pois = sub(gaps, "pois")
    if pois.get("count"):
        rows.append(("POIs served", f"{fmt(pois.get('served'))} of {fmt(pois['count'])}"))
    bb = sub(s, "backbone")
    if bb.get("cost_joint") is not None:
        rows.append(
            (
                "Backbone joint vs separate",
                f"{fmt(bb.get('length_km_joint'), 'km')} / {fmt(bb.get('length_km_separate'), 'km')}"
                f"; cost saving {fmt(bb.get('savings_pct'), '%')}",
            )
        )
    banner = (
        '<div class="tp-synthetic">SYNTHETIC DATA – not a real network</div>'
        if s.get("synthetic") is True
        else ""
    )
    table = "".join(f"<tr><th>{esc(k)}</th><td>{v}</td></tr>" for k, v in rows)
    return (
        f'<div class="tp-box tp-summary"><div class="tp-title">{esc(title)}</div>{banner}'
        + (f"<table>{table}</table>" if table else "")
        + "</div>"
    )


_CSS = """
.leaflet-container { background: #f2f1ec; }
.tp-box { position: fixed; z-index: 1000; background: rgba(255,255,255,.92); padding: 6px 9px;
  border-radius: 5px; box-shadow: 0 1px 5px rgba(0,0,0,.4); font: 12px/1.35 "DejaVu Sans", system-ui, sans-serif; }
.tp-summary { top: 10px; left: 54px; max-width: 340px; }
.tp-summary table { border-collapse: collapse; } .tp-summary th { text-align: left; padding-right: 8px; font-weight: 600; }
.tp-title { font-weight: 700; font-size: 14px; margin-bottom: 2px; }
.tp-synthetic { background: #b30000; color: #fff; font-weight: 700; padding: 2px 6px; margin: 3px 0; border-radius: 3px; }
.tp-legend { bottom: 48px; left: 10px; max-height: 55vh; overflow-y: auto; }  /* above the scale bar */
.tp-head { font-weight: 600; margin-top: 4px; }
.tp-row { white-space: nowrap; }
.tp-row i, .tp-row .tp-svg { display: inline-block; vertical-align: middle; margin-right: 6px; box-sizing: border-box; }
.tp-sq { width: 16px; height: 11px; border: 1px solid #555; }
.tp-dot { width: 12px; height: 12px; border-radius: 50%; border: 1px solid #555; }
.tp-ramp { width: 200px; height: 10px; border: 1px solid #555; }
.tp-ramp-labels { display: flex; justify-content: space-between; width: 200px; }
.tp-note { color: #555; font-size: 11px; }
.leaflet-popup-content table th { text-align: left; padding-right: 6px; }
"""


def _tiles_problem(tiles: object) -> str | None:
    """Why ``tiles`` is not 'none', 'osm' or an http(s) URL template (None when it is)."""
    if tiles in ("none", "osm"):
        return None
    if (
        isinstance(tiles, str)
        and _URL_TEMPLATE.match(tiles)
        and all(p in tiles for p in ("{z}", "{x}", "{y}"))
    ):
        return None
    return (
        "tiles must be 'none', 'osm' or an http(s) URL template with {z}, {x} and {y} "
        f"(e.g. https://tile.example.org/{{z}}/{{x}}/{{y}}.png), got {tiles!r}"
    )


def _tile_layer(folium: Any, m: Any, tiles: str) -> None:
    problem = _tiles_problem(tiles)
    if problem:
        raise ValueError(problem)
    if tiles == "none":
        return
    if tiles == "osm":
        folium.TileLayer("OpenStreetMap", name="OpenStreetMap", control=False).add_to(m)
        return
    host = re.sub(r"^https?://([^/]+).*$", r"\1", tiles)
    folium.TileLayer(tiles=tiles, attr=esc(f"tiles: {host}"), name="basemap", control=False).add_to(
        m
    )


# --------------------------------------------------------------------------- public API


def build_map(
    *,
    areas: gpd.GeoDataFrame,
    towers: gpd.GeoDataFrame | None = None,
    coverage: gpd.GeoDataFrame | None = None,
    gaps: gpd.GeoDataFrame | None = None,
    pois: gpd.GeoDataFrame | None = None,
    fiber: gpd.GeoDataFrame | None = None,
    roads: gpd.GeoDataFrame | None = None,
    signal: Mapping[str, tuple[np.ndarray, Any]] | None = None,
    sites: gpd.GeoDataFrame | None = None,
    backbone: gpd.GeoDataFrame | None = None,
    summary: Mapping[str, Any] | None = None,
    tiles: str = "none",
    title: str = "telcoplan plan",
    simplify_m: float = 20.0,
    signal_range_dbm: tuple[float, float] = (-120.0, -50.0),
    signal_step_db: float = 1.0,
) -> folium.Map:
    """Build the interactive plan map.

    Parameters
    ----------
    areas : GeoDataFrame
        Administrative areas; ``name`` column (else the index), optional ``population`` and
        ``pct_any`` (population covered by any operator, %; or ``covered_any`` in persons)
        → choropleth by coverage %.
    towers : GeoDataFrame, optional
        Existing sites, index ``site_id``; ``operator`` required, ``name``, ``tenants``, …
        → one clustered layer per operator; shared sites (``tenants`` > 1, or towers of
        several operators at one location within 1 m) get a thick black ring.
    coverage : GeoDataFrame, optional
        Coverage polygons, one row per ``operator`` (and ``"any"``) with
        ``population_covered`` (persons), ``population_pct`` (%) and ``area_km2``; one layer
        each, only ``"any"`` shown at start.
    gaps : GeoDataFrame, optional
        Coverage gaps (index ``gap_id``; ``population`` in persons, ``area_km2``, …).
    pois : GeoDataFrame, optional
        Points of interest; ``served`` (bool) → green (served) / red (not served) / grey
        (unknown) markers; ``name`` and ``category`` in the tooltip.
    fiber, roads : GeoDataFrame, optional
        Line layers; fiber coloured per ``operator`` (dashed when ``status`` is planned),
        roads hidden at start.
    signal : dict, optional
        Operator → (received power in dBm, NaN = no signal; its georeferencing: a
        :class:`~telcoplan.gis.grid.GridSpec` or :class:`~telcoplan.gis.raster.RasterInfo`)
        → one image overlay per operator, hidden at start.
    sites : GeoDataFrame, optional
        Proposed sites with ``kind`` (co-located / new / shared, see :data:`SITE_KINDS`) and
        optional ``operators`` (``"A;B"``).
    backbone : GeoDataFrame, optional
        Backbone links (as from :func:`telcoplan.backbone.plans.plan_links`): ``plan``
        (joint / separate → one layer for the joint plan, one hidden layer per operator's
        separate plan), ``operators`` (``"A;B"``; joint trench in black, one operator in its
        colour), ``status`` (new / reused / leased / ring, see :data:`LINK_STATUS`; or a
        boolean ``ring`` column), ``length_m`` (m), ``cost``.
    summary : dict, optional
        ``summary.json`` content: key figures and the synthetic-data flag in a summary box.
    tiles : str
        ``"none"`` (no basemap: fully offline), ``"osm"`` (OpenStreetMap, needs network) or
        a tile URL template (``https://…/{z}/{x}/{y}.png``).
    title : str
        Page title and heading of the summary box.
    simplify_m : float
        Simplification tolerance (m) of lines and polygons before reprojection; 0 keeps
        every vertex. Feature counts never change.
    signal_range_dbm : (float, float)
        Colour scale of the signal overlays, dBm.
    signal_step_db : float
        Quantisation step of the signal overlays, dB (at most 255 steps in the range).

    Returns
    -------
    folium.Map
        Save it with :func:`save_map` (which inlines every asset).

    Raises
    ------
    TypeError, ValueError
        For a layer that is not a GeoDataFrame, lacks a required column, or bad options.
    CRSError
        For a layer without a CRS.

    Notes
    -----
    Layers may be in any CRS; each is reprojected to EPSG:4326 by one helper
    (``telcoplan.maps._web.to_web``); signal rasters are warped to Web Mercator, Leaflet's
    display CRS (``telcoplan.maps._raster``). Inputs are not modified. ``window.telcoplan``
    in the page holds the Leaflet map, its overlays by layer name and stable layer ids
    (``areas``, ``towers:<operator>``, ``signal:<operator>``, ``coverage:any``, ``gaps``,
    ``pois``, ``sites``, ``backbone:joint``, …).
    """
    folium = _import_folium()
    frames = {
        "areas": areas,
        "towers": towers,
        "coverage": coverage,
        "gaps": gaps,
        "pois": pois,
        "fiber": fiber,
        "roads": roads,
        "sites": sites,
        "backbone": backbone,
    }
    for what, gdf in frames.items():
        _check_frame(gdf, what)
    if areas is None:
        raise TypeError("areas is required")
    if not (np.isfinite(simplify_m) and simplify_m >= 0):
        raise ValueError(f"simplify_m must be a number of metres >= 0, got {simplify_m!r}")
    colours = operator_colours(
        _ops(towers), _ops(coverage), _ops(fiber), _ops(backbone), _ops(sites), list(signal or {})
    )
    # maxZoom on the map itself: without a tile layer Leaflet (and markercluster) lack one
    m = folium.Map(tiles=None, control_scale=True, zoom_start=11, maxZoom=19)
    _tile_layer(folium, m, tiles)
    for pane, z in _PANES.items():
        folium.map.CustomPane(pane, z_index=z, pointer_events=True).add_to(m)
    m.get_root().title = esc(title)
    b = _Builder(folium, m, simplify_m, colours)

    _add_areas(b, areas)
    if coverage is not None:
        _add_coverage(b, coverage)
    if gaps is not None:
        _add_gaps(b, gaps)
    if signal:
        _add_signal(b, signal, signal_range_dbm, signal_step_db)
    if roads is not None:
        _add_roads(b, roads)
    if fiber is not None:
        _add_fiber(b, fiber)
    if backbone is not None:
        _add_backbone(b, backbone)
    if pois is not None:
        _add_pois(b, pois)
    if towers is not None:
        _add_towers(b, towers)
    if sites is not None:
        _add_sites(b, sites)

    bounds = union_bounds(*b.bounds)
    if bounds is not None:
        m.location = [(bounds[0][0] + bounds[1][0]) / 2, (bounds[0][1] + bounds[1][1]) / 2]
        m.fit_bounds(bounds)
    folium.LayerControl(collapsed=False).add_to(m)
    html_cls, registry_cls, _ = _element_classes()
    legend = '<div class="tp-box tp-legend">' + "".join(b.legend) + "</div>" if b.legend else ""
    style = "<style>" + _CSS + "\n".join(b.css) + "</style>"
    html_cls(_summary_box(title, summary) + legend, style).add_to(m)
    registry_cls([(fg.layer_name, fg.get_name()) for fg in b.groups], b.keys).add_to(m)
    return m


def render_map(m: folium.Map) -> str:
    """The map as one self-contained HTML page (text).

    Leaflet, Leaflet.markercluster and jQuery are inlined from the xstatic packages, Leaflet's
    images as ``data:`` URIs; folium's other CDN assets are dropped. A copy of the map is
    rendered (folium's rendering is not repeatable), so ``m`` is unchanged and rendering twice
    gives the same page.

    Raises
    ------
    TelcoplanError
        If the page would still load a script, style sheet or image from the network.
    """
    from telcoplan.maps._assets import _walk, external_references, inline_assets

    figure = copy.deepcopy(m.get_root())
    inline_assets(figure)
    page = figure.render()
    # folium names elements by random UUIDs: renumber them in tree order, so the same plan
    # gives the same file (byte-reproducible outputs)
    ids = [getattr(el, "_id", None) for el in _walk(figure)]
    for i, old in enumerate(dict.fromkeys(x for x in ids if isinstance(x, str) and len(x) >= 16)):
        page = page.replace(old, f"{i + 1:032x}")
    remote = external_references(page)
    if remote:
        raise TelcoplanError(
            f"the map would load {len(remote)} resource(s) from the network "
            f"({', '.join(remote[:3])}); it must be self-contained"
        )
    return page


def save_map(m: folium.Map, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Write ``m`` as one self-contained HTML file (see :func:`render_map`), atomically.

    Raises
    ------
    OutputExistsError
        If ``path`` exists and ``overwrite`` is False (nothing is written).
    TelcoplanError
        If the page would still load something from the network.
    """
    check_writable(path, overwrite)
    page = render_map(m)
    with atomic_path(path, overwrite=overwrite) as tmp:
        tmp.write_text(page, encoding="utf-8")
    log.info("map: %s (%.1f MB)", final_path(path), Path(path).stat().st_size / 1e6)
    return Path(path)


def map_from_outputs(
    out_dir: str | os.PathLike,
    layers: Mapping[str, gpd.GeoDataFrame | None] | None = None,
    *,
    summary: Mapping[str, Any] | None = None,
    signal: bool = True,
    title: str | None = None,
    **options: Any,
) -> folium.Map:
    """The map of a plan from its output folder and (optionally) its input layers.

    Parameters
    ----------
    out_dir
        The plan's output folder: ``coverage.gpkg`` (layers ``areas``, ``coverage``,
        ``sites``), ``gaps.gpkg`` (``gaps``, ``pois``), ``signal_<operator>.tif``,
        ``sites.gpkg`` (``sites``), ``backbone.gpkg`` (``links``), ``summary.json``; each is
        optional except an ``areas`` layer (from ``coverage.gpkg`` or ``layers``).
    layers
        The plan's input layers by name, e.g. ``{**inputs.vectors, "areas": inputs.areas}``:
        ``towers``, ``fiber``, ``roads`` (not in the outputs), ``areas``/``pois`` (used when
        the outputs lack them), ``sites``/``backbone`` (win over the outputs).
    summary
        The plan's summary (default: ``out_dir/summary.json`` when present); the plan stage
        passes its in-memory summary because ``summary.json`` is written last.
    signal
        Draw the signal rasters.
    title
        Default: the summary's plan name.
    **options
        Passed to :func:`build_map` (``tiles``, ``simplify_m``, ``signal_range_dbm``,
        ``signal_step_db``).
    """
    from telcoplan.maps._outputs import read_plan_layers

    got = read_plan_layers(out_dir, layers, signal=signal, summary=summary)
    name = title or str(got.summary.get("plan") or "telcoplan plan")
    return build_map(
        **got.vectors,
        signal=got.signal or None,
        summary=got.summary,
        title=name,
        **options,
    )


def write_plan_map(
    out_dir: str | os.PathLike,
    layers: Mapping[str, gpd.GeoDataFrame | None] | None = None,
    *,
    path: str | os.PathLike | None = None,
    overwrite: bool = False,
    **options: Any,
) -> Path:
    """Build the map of the plan in ``out_dir`` (:func:`map_from_outputs`) and save it as
    ``path`` (default ``out_dir/map.html``) with :func:`save_map`; returns the path.

    Raises
    ------
    OutputExistsError
        If the target exists and ``overwrite`` is False (checked before any work).
    """
    target = Path(path) if path is not None else Path(out_dir) / "map.html"
    check_writable(target, overwrite)
    m = map_from_outputs(out_dir, layers, **options)
    return save_map(m, target, overwrite=overwrite)


#: Options of the map stage (``stages: {map: {...}}``) with their defaults.
MAP_PARAMETERS: dict[str, Any] = {
    "tiles": "none",
    "simplify_m": 20.0,
    "signal": True,
    "signal_range_dbm": [-120.0, -50.0],
    "signal_step_db": 1.0,
}


def map_parameters(raw: Mapping[str, Any] | None, source: str = "plan") -> dict[str, Any]:
    """Checked map-stage parameters (defaults filled in), all problems reported at once.

    The result is the keyword arguments of :func:`write_plan_map` / :func:`map_from_outputs`
    (``signal_range_dbm`` as a tuple). folium is not imported.

    Raises
    ------
    PlanError
        Listing every unknown or invalid parameter.
    """
    from telcoplan.errors import PlanError
    from telcoplan.maps._raster import MAX_LEVELS

    raw = dict(raw or {})
    errs = [
        f"stages.map: unknown parameter {k!r}; known: {', '.join(MAP_PARAMETERS)}"
        for k in raw
        if k not in MAP_PARAMETERS
    ]
    params = {**MAP_PARAMETERS, **{k: v for k, v in raw.items() if k in MAP_PARAMETERS}}

    def number(v: object) -> bool:
        return isinstance(v, int | float) and not isinstance(v, bool) and bool(np.isfinite(v))

    problem = _tiles_problem(params["tiles"])
    if problem:
        errs.append(f"stages.map.{problem}")
    if not (number(params["simplify_m"]) and 0 <= params["simplify_m"] <= 10_000):
        errs.append(
            f"stages.map.simplify_m must be metres in 0…10000, got {params['simplify_m']!r}"
        )
    if not isinstance(params["signal"], bool):
        errs.append("stages.map.signal must be true or false (draw the signal rasters)")
    rng, step = params["signal_range_dbm"], params["signal_step_db"]
    if not (
        isinstance(rng, list | tuple)
        and len(rng) == 2
        and all(number(v) and -200 <= v <= 50 for v in rng)
        and rng[0] < rng[1]
    ):
        errs.append(
            f"stages.map.signal_range_dbm must be [low, high] dBm with low < high, got {rng!r}"
        )
    elif not (number(step) and step > 0 and (rng[1] - rng[0]) / step < MAX_LEVELS):
        errs.append(
            f"stages.map.signal_step_db must be > 0 dB with fewer than {MAX_LEVELS} steps in "
            f"signal_range_dbm, got {step!r}"
        )
    if errs:
        raise PlanError(
            f"{source}: {len(errs)} problem(s) in the map parameters:\n"
            + "\n".join(f"  - {e}" for e in errs)
        )
    params["signal_range_dbm"] = (float(rng[0]), float(rng[1]))
    params["simplify_m"] = float(params["simplify_m"])
    params["signal_step_db"] = float(step)
    return params


def _persons(value: object) -> str:
    """A head count for display: whole persons (population rasters hold fractions)."""
    try:
        return fmt(round(float(value)))
    except (TypeError, ValueError):
        return fmt(value)
