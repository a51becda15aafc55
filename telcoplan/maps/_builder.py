"""The folium plumbing of the interactive map (:mod:`telcoplan.maps.interactive`).

:class:`Builder` collects the layers of one map: named layers in the layer control, GeoJSON
layers with per-feature styles and escaped popups and tooltips, legend rows. Beside it: the
page's own elements (:func:`element_classes`), the summary box, the page's CSS and the
attribute helpers the per-layer drawing functions (:mod:`telcoplan.maps._layers`) share.
folium is imported only inside functions (the caller hands its module to :class:`Builder`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import cache
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd

from telcoplan.maps._web import LatLonBounds, esc, feature_collection, fmt, to_web

__all__ = [
    "CSS",
    "Builder",
    "attributes",
    "column",
    "element_classes",
    "names",
    "persons",
    "summary_box",
]


def names(gdf: gpd.GeoDataFrame) -> pd.Series:
    """Display names of features: the ``name`` column when present, else the index."""
    if "name" in gdf.columns:
        return gdf["name"].astype(str)
    return pd.Series(gdf.index.astype(str), index=gdf.index)


def column(gdf: gpd.GeoDataFrame, name: str, default: object = np.nan) -> pd.Series:
    if name in gdf.columns:
        return gdf[name]
    return pd.Series(default, index=gdf.index, dtype=object)


def attributes(gdf: gpd.GeoDataFrame) -> list[dict[str, str]]:
    """Per-feature popup properties: every attribute (index first), escaped and formatted."""
    cols = [c for c in gdf.columns if c != gdf.geometry.name]
    index_label = esc(gdf.index.name or "id")
    rows = []
    for idx, values in zip(gdf.index, gdf[cols].itertuples(index=False, name=None), strict=True):
        props = {index_label: fmt(idx)}
        props.update({esc(c): fmt(v) for c, v in zip(cols, values, strict=True)})
        rows.append(props)
    return rows


def persons(value: object) -> str:
    """A head count for display: whole persons (population rasters hold fractions)."""
    try:
        return fmt(round(float(value)))
    except (TypeError, ValueError):
        return fmt(value)


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
def element_classes() -> tuple[type, type, type]:
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


class Builder:
    """Collects the layers of one map (private: the API is
    :func:`telcoplan.maps.interactive.build_map`)."""

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
            element_classes()[2]().add_to(gj)  # after the popup and tooltip are bound
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


def summary_box(title: str, summary: Mapping[str, Any] | None) -> str:
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
            ("Coverage gaps", f"{fmt(gaps['count'])} ({persons(gaps.get('population'))} people)")
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


CSS = """
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
