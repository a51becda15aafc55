"""The folium plumbing of the interactive map (:mod:`telcoplan.maps.interactive`).

:class:`Builder` collects the layers of one map: named layers in the layer control, GeoJSON
layers with per-feature styles and escaped popups and tooltips, legend rows. Beside it: the
page's own elements (:func:`element_classes`), the summary box, the page's CSS and the
attribute helpers the per-layer drawing functions (:mod:`telcoplan.maps._layers`) share.
folium is imported only inside functions (the caller hands its module to :class:`Builder`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from functools import cache
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd

from telcoplan.maps._plain import plain_classes
from telcoplan.maps._web import (
    LatLonBounds,
    esc,
    feature_collection_deferred,
    fmt,
    to_web,
    to_web_later,
)

__all__ = [
    "CSS",
    "PANELS_JS",
    "Builder",
    "attributes",
    "column",
    "element_classes",
    "legend_box",
    "names",
    "persons",
    "script_json",
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
    where = [k for k, c in enumerate(gdf.columns) if c != gdf.geometry.name]
    keys = [esc(gdf.index.name or "id"), *(esc(gdf.columns[k]) for k in where)]
    texts = [_texts(gdf.index), *(_texts(gdf.iloc[:, k]) for k in where)]
    return [dict(zip(keys, row, strict=True)) for row in zip(*texts, strict=True)]


def _texts(values: Iterable[object]) -> list[str]:
    """:func:`fmt` of each value, each distinct text formatted once (names, classes)."""
    done: dict[str, str] = {}
    out = []
    for v in values:
        if type(v) is str:
            text = done.get(v)
            if text is None:
                text = done[v] = fmt(v)
            out.append(text)
        else:
            out.append(fmt(v))
    return out


def persons(value: object) -> str:
    """A head count for display: whole persons (population rasters hold fractions)."""
    try:
        return fmt(round(float(value)))
    except (TypeError, ValueError):
        return fmt(value)


def script_json(value: object, *, tight: bool = False) -> str:
    """JSON for inside a ``<script>``: ``< > & '`` escaped, so no text can close the tag;
    ``tight`` leaves out the spaces after ``,`` and ``:`` (for large arrays)."""
    return (
        json.dumps(value, ensure_ascii=False, separators=(",", ":") if tight else None)
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


#: The map's panels at run time, a JS function of (map, layer control, tile layer or null, study
#: area bounds or null, basemap text). The layer control gets a title button and a basemap
#: note (red when tiles fail to load); the summary, the legend and the layer control open and
#: close by their title; a button fits the study area again. At start the legend and the layer
#: list are closed on windows smaller than 1500 × 850 px; on larger ones each stays open
#: unless the study area, fitted beside it, would lose more than half a zoom level. Below
#: 700 × 500 px the summary starts closed too (its title and synthetic-data banner stay). The
#: study area is then fitted in the largest free rectangle between the panels and Leaflet's
#: own controls.
#: ``window.telcoplan`` gets ``studyBounds``, ``panels`` and ``fitStudyArea()``.
PANELS_JS = """function (map, control, tiles, bounds, tilesText) {
  const T = window.telcoplan || (window.telcoplan = {});
  const MARGIN = 10, SLACK = 0.5, SMALL_W = 1500, SMALL_H = 850, TINY_W = 700, TINY_H = 500;
  const box = control.getContainer();
  const list = box.querySelector('.leaflet-control-layers-list');
  const head = document.createElement('button');
  head.type = 'button';
  head.className = 'tp-toggle';
  head.textContent = 'Layers';
  box.insertBefore(head, box.firstChild);
  box.classList.add('tp-panel');
  box.id = 'tp-layers';
  const note = document.createElement('div');
  note.className = 'tp-basemap';
  note.textContent = tilesText;
  list.insertBefore(note, list.firstChild);
  if (tiles) {
    tiles.on('tileerror', function () {
      note.textContent = 'Basemap: the tiles could not be loaded (offline?). The plan layers '
        + 'work without them; choose "No basemap" to clear the empty background.';
      note.classList.add('tp-warn');
    });
  }
  const panels = {};
  function fitLegend() {  // the open legend scrolls rather than run under the summary
    const legend = document.getElementById('tp-legend');
    const summary = document.getElementById('tp-summary');
    if (!legend) { return; }
    const top = summary ? summary.getBoundingClientRect().bottom + 8 : 10;
    const room = legend.getBoundingClientRect().bottom - top;
    legend.style.maxHeight = Math.max(120, Math.floor(room)) + 'px';
  }
  function wire(el, button) {
    const set = function (open) {
      el.classList.toggle('tp-closed', !open);
      button.setAttribute('aria-expanded', open ? 'true' : 'false');
      fitLegend();
    };
    button.addEventListener('click', function (e) {
      e.preventDefault();
      set(el.classList.contains('tp-closed'));
    });
    L.DomEvent.disableClickPropagation(el);
    L.DomEvent.disableScrollPropagation(el);
    return {el: el, set: set, isOpen: function () { return !el.classList.contains('tp-closed'); }};
  }
  panels.layers = wire(box, head);
  ['legend', 'summary'].forEach(function (name) {
    const el = document.getElementById('tp-' + name);
    const button = el && el.querySelector('.tp-toggle');
    if (button) { panels[name] = wire(el, button); }
  });
  const study = bounds ? L.latLngBounds(bounds) : null;
  const OBSTACLES = '.tp-panel, .tp-box, .leaflet-control-zoom, .tp-fit, '
    + '.leaflet-control-scale, .leaflet-control-attribution';
  function obstacles() {
    const c = map.getContainer().getBoundingClientRect();
    const out = [];
    document.querySelectorAll(OBSTACLES).forEach(function (e) {
      const r = e.getBoundingClientRect();
      if (r.width > 0 && r.height > 0) {
        out.push({l: r.left - c.left, t: r.top - c.top, r: r.right - c.left, b: r.bottom - c.top});
      }
    });
    return out;
  }
  function freeRect() {
    const size = map.getSize(), W = size.x, H = size.y, obs = obstacles();
    const xs = [0].concat(obs.map(function (o) { return o.r; }));
    const xe = [W].concat(obs.map(function (o) { return o.l; }));
    const ys = [0].concat(obs.map(function (o) { return o.b; }));
    const ye = [H].concat(obs.map(function (o) { return o.t; }));
    let top = null;
    xs.forEach(function (l) { xe.forEach(function (r) { ys.forEach(function (t) { ye.forEach(function (b) {
      if (r - l < 2 * MARGIN + 40 || b - t < 2 * MARGIN + 40) { return; }
      if (obs.some(function (o) { return o.l < r && o.r > l && o.t < b && o.b > t; })) { return; }
      const pad = L.point(W - (r - l) + 2 * MARGIN, H - (b - t) + 2 * MARGIN);
      const z = map.getBoundsZoom(study, false, pad), area = (r - l) * (b - t);
      if (!top || z > top.z || (z === top.z && area > top.area)) {
        top = {l: l, t: t, r: r, b: b, z: z, area: area};
      }
    }); }); }); });
    return top;
  }
  function fit() {
    if (!study) { return; }
    const rect = freeRect(), size = map.getSize();
    if (!rect) { map.fitBounds(study, {animate: false}); return; }
    map.fitBounds(study, {
      paddingTopLeft: [rect.l + MARGIN, rect.t + MARGIN],
      paddingBottomRight: [size.x - rect.r + MARGIN, size.y - rect.b + MARGIN],
      animate: false
    });
  }
  if (study) {
    const Fit = L.Control.extend({
      options: {position: 'topleft'},
      onAdd: function () {
        const bar = L.DomUtil.create('div', 'leaflet-bar tp-fit');
        const a = L.DomUtil.create('a', '', bar);
        a.href = '#';
        a.setAttribute('role', 'button');
        a.title = 'Show the whole study area';
        a.setAttribute('aria-label', a.title);
        a.textContent = '\\u2922';
        L.DomEvent.on(a, 'click', function (e) { L.DomEvent.stop(e); fit(); });
        return bar;
      }
    });
    new Fit().addTo(map);
  }
  function start() {
    if (!study) { return; }
    const names = ['legend', 'layers'].filter(function (k) { return panels[k]; });
    const w = window.innerWidth, h = window.innerHeight;
    if (w < TINY_W || h < TINY_H) {
      Object.keys(panels).forEach(function (k) { panels[k].set(false); });
    } else if (w < SMALL_W || h < SMALL_H) {
      names.forEach(function (k) { panels[k].set(false); });
    } else {
      let options = [];
      for (let mask = 0; mask < (1 << names.length); mask++) {
        names.forEach(function (k, i) { panels[k].set(Boolean(mask & (1 << i))); });
        const rect = freeRect();
        const open = names.filter(function (k, i) { return mask & (1 << i); }).length;
        options.push({mask: mask, z: rect ? rect.z : -Infinity, open: open});
      }
      const zmax = Math.max.apply(null, options.map(function (o) { return o.z; }));
      options = options.filter(function (o) { return o.z >= zmax - SLACK - 1e-9; });
      options.sort(function (a, b) { return b.open - a.open || b.z - a.z || b.mask - a.mask; });
      names.forEach(function (k, i) { panels[k].set(Boolean(options[0].mask & (1 << i))); });
    }
    fit();
  }
  T.studyBounds = study;
  T.panels = panels;
  T.fitStudyArea = fit;
  start();
  let touched = false;
  ['pointerdown', 'wheel', 'keydown'].forEach(function (type) {
    map.getContainer().addEventListener(type, function () { touched = true; }, {passive: true});
  });
  window.addEventListener('resize', function () {
    fitLegend();
    if (!touched) { map.invalidateSize(); fit(); }
  });
}"""


@cache
def element_classes() -> tuple[type, type, type, type]:
    """Small folium elements: raw HTML/CSS text, the ``window.telcoplan`` registry,
    per-feature popups for clustered markers, and the panels' behaviour (:data:`PANELS_JS`)."""
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

    class Panels(MacroElement):
        """Collapsible panels, the basemap note and the study area fitted beside the panels
        (:data:`PANELS_JS`); added after the layer control and the registry."""

        _template = Template(
            "{% macro script(this, kwargs) %}"
            "(" + PANELS_JS + ")({{ this._parent.get_name() }}, {{ this.control }}, "
            "{{ this.tiles }}, {{ this.bounds|tojson }}, {{ this.tiles_text|tojson }});"
            "{% endmacro %}"
        )

        def __init__(
            self, control: str, tiles: str | None, bounds: LatLonBounds | None, tiles_text: str
        ) -> None:
            super().__init__()
            self._name = "TelcoplanPanels"
            self.control = control
            self.tiles = tiles or "null"
            self.bounds = bounds
            self.tiles_text = tiles_text

    return Html, Registry, PerFeature, Panels


class Builder:
    """Collects the layers of one map (private: the API is
    :func:`telcoplan.maps.interactive.build_map`)."""

    def __init__(
        self,
        folium: Any,
        m: Any,
        simplify_m: float,
        colours: dict[str, str],
        compact: Mapping[str, int],
    ) -> None:
        self.folium = folium
        self.m = m
        self.simplify_m = simplify_m
        self.colours = colours
        #: feature counts above which towers, backbone links and roads take their compact
        #: form (:mod:`telcoplan.maps._compact`)
        self.compact = dict(compact)
        self.groups: list[Any] = []
        self.keys: dict[str, str] = {}
        self.bounds: list[LatLonBounds | None] = []
        #: the areas' bounds: what the map fits at start
        self.study_bounds: LatLonBounds | None = None
        self.legend: list[str] = []
        self.css: list[str] = []
        #: work left for :meth:`finish` (layers whose content is computed in the background)
        self.pending: list[Callable[[], None]] = []

    def finish(self) -> None:
        """Complete the layers left for later (:attr:`pending`), in order."""
        while self.pending:
            self.pending.pop(0)()

    def colour(self, op: str) -> str:
        return self.colours.get(op, "#666666")

    def group(self, name: str, key: str, *, show: bool = True) -> Any:
        """A named FeatureGroup in the layer control (``name`` is escaped here)."""
        fg = self.folium.FeatureGroup(name=esc(name), show=show)
        fg.add_to(self.m)
        self.groups.append(fg)
        self.keys[key] = fg.layer_name
        return fg

    def web(
        self, gdf: gpd.GeoDataFrame, what: str, *, preserve_topology: bool = True
    ) -> gpd.GeoDataFrame:
        """``gdf`` for the page (:func:`telcoplan.maps._web.to_web`); its bounds are noted."""
        out, bounds = to_web(
            gdf, tolerance_m=self.simplify_m, what=what, preserve_topology=preserve_topology
        )
        self.bounds.append(bounds)
        return out

    def web_later(self, gdf: gpd.GeoDataFrame, what: str) -> Callable[[], gpd.GeoDataFrame]:
        """:meth:`web`, simplified in a background thread from now on (while the next layers
        are built): the returned function waits for it and gives the frame."""
        later = to_web_later(gdf, tolerance_m=self.simplify_m, what=what)

        def done() -> gpd.GeoDataFrame:
            out, bounds = later()
            self.bounds.append(bounds)
            return out

        return done

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
        canvas: bool = False,
    ) -> Any:
        """A GeoJson of ``web``'s features with per-feature styles and escaped popup/tooltip;
        drawn on a canvas of its own (in ``pane``) with ``canvas``, else as SVG."""
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
                + script_json(shared)
                + "; for (const k in c) { if (!(k in feature.properties)) "
                "{ feature.properties[k] = c[k]; } } }"
            )
        marker = None
        if radius is not None:
            marker = folium.CircleMarker(radius=radius, weight=1, fill=True, fill_opacity=0.9)
            marker.options["pane"] = pane
        data, fill = feature_collection_deferred(web, props)
        gj = plain_classes()[1](
            data,
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
            **(
                {"renderer": folium.utilities.JsCode(f"L.canvas({{pane: {json.dumps(pane)}}})")}
                if canvas
                else {}
            ),
        )
        gj.fill = fill
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


def _not_covered(s: Mapping[str, Any]) -> tuple[float, float, object] | None:
    """(persons not covered, of them in ranked gaps, gap count) from the summary."""
    gaps = s.get("gaps") if isinstance(s.get("gaps"), Mapping) else {}
    nc = gaps.get("not_covered") if isinstance(gaps.get("not_covered"), Mapping) else {}
    in_gaps = nc.get("in_gaps") if isinstance(nc.get("in_gaps"), Mapping) else {}
    try:
        total = float(nc["population"])
    except (KeyError, TypeError, ValueError):
        try:
            cov = s["coverage"]["any"]["population_covered"]
            total = float(s["population_total"]) - float(cov)
        except (KeyError, TypeError, ValueError):
            return None
    try:
        ranked = float(in_gaps.get("population", gaps.get("population")))
    except (TypeError, ValueError):
        return None
    return total, ranked, in_gaps.get("count", gaps.get("count"))


def summary_box(title: str, summary: Mapping[str, Any] | None) -> str:
    """The summary panel: title and synthetic-data banner (always shown), key figures (hidden
    when the panel is closed), each with its unit and basis."""
    rows: list[tuple[str, str]] = []
    s = dict(summary or {})

    def sub(obj: object, key: str) -> Mapping[str, Any]:
        v = obj.get(key) if isinstance(obj, Mapping) else None
        return v if isinstance(v, Mapping) else {}

    cov = sub(s, "coverage")
    if s.get("plan") and str(s["plan"]) != title:
        rows.append(("Plan", fmt(s["plan"])))
    if s.get("population_total") is not None:
        rows.append(("Population", f"{persons(s['population_total'])} persons"))
    if sub(cov, "any"):
        rows.append(
            (
                "Covered (any operator)",
                f"{fmt(sub(cov, 'any').get('population_pct'), '%')} of the study area's population",
            )
        )
    best = sub(cov, "best_single_operator")
    if best.get("operator"):
        rows.append(
            (
                "Best single operator",
                f"{fmt(best['operator'])} ({fmt(best.get('population_pct'), '%')})",
            )
        )
    gaps = sub(s, "gaps")
    nc = _not_covered(s)
    if nc is not None:
        total, ranked = round(nc[0]), round(nc[1])
        count = f"{fmt(nc[2])} " if nc[2] is not None else ""
        rows.append(
            (
                "Not covered",
                f"{fmt(total)} persons = {fmt(ranked)} in {count}gaps + "
                f"{fmt(total - ranked)} scattered",
            )
        )
    elif gaps.get("count") is not None:
        rows.append(
            ("Coverage gaps", f"{fmt(gaps['count'])} ({persons(gaps.get('population'))} persons)")
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
                f" of links; cost saving {fmt(bb.get('savings_pct'), '%')} of the separate cost",
            )
        )
    banner = (
        '<div class="tp-synthetic">SYNTHETIC DATA – not a real network</div>'
        if s.get("synthetic") is True
        else ""
    )
    table = "".join(f"<tr><th>{esc(k)}</th><td>{v}</td></tr>" for k, v in rows)
    head = (
        f'<button type="button" class="tp-toggle tp-title" aria-expanded="true">{esc(title)}</button>'
        if table
        else f'<div class="tp-title">{esc(title)}</div>'
    )
    return (
        f'<div class="tp-box tp-summary tp-panel" id="tp-summary">{head}{banner}'
        + (f'<div class="tp-body"><table>{table}</table></div>' if table else "")
        + "</div>"
    )


def legend_box(rows: list[str]) -> str:
    """The legend panel: a title button that opens and closes it, then the rows."""
    if not rows:
        return ""
    return (
        '<div class="tp-box tp-legend tp-panel" id="tp-legend">'
        '<button type="button" class="tp-toggle" aria-expanded="true">Legend</button>'
        f'<div class="tp-body">{"".join(rows)}</div></div>'
    )


CSS = """
.leaflet-container { background: #f2f1ec; }
.tp-box { position: fixed; z-index: 1000; background: rgba(255,255,255,.92); padding: 6px 9px;
  border-radius: 5px; box-shadow: 0 1px 5px rgba(0,0,0,.4); font: 12px/1.35 "DejaVu Sans", system-ui, sans-serif; }
.tp-summary { top: 10px; left: 54px; max-width: 340px; }
.tp-summary table { border-collapse: collapse; } .tp-summary th { text-align: left; padding-right: 8px; font-weight: 600; }
.tp-title { font-weight: 700; font-size: 14px; margin-bottom: 2px; }
.tp-synthetic { background: #b30000; color: #fff; font-weight: 700; padding: 2px 6px; margin: 3px 0; border-radius: 3px; }
.tp-legend { bottom: 48px; left: 10px; max-height: calc(100vh - 180px); overflow-y: auto; box-sizing: border-box; }  /* above the scale bar */
.tp-toggle { display: block; width: 100%; margin: 0; padding: 0; border: 0; background: none; cursor: pointer;
  text-align: left; font: inherit; font-weight: 700; color: #1b1f24; white-space: nowrap; }
.tp-toggle::before { content: "▾ "; color: #555; }
.tp-closed .tp-toggle::before { content: "▸ "; }
.tp-toggle:focus-visible { outline: 2px solid #08519c; outline-offset: 2px; }
.tp-summary .tp-toggle.tp-title { font-size: 14px; white-space: normal; }
.tp-closed > .tp-body { display: none; }
.leaflet-control-layers .tp-toggle { padding: 4px 8px 2px; font-size: 13px; }
.leaflet-control-layers.tp-closed .leaflet-control-layers-list { display: none; }
.tp-basemap { font-size: 12px; color: #333; padding: 2px 0 4px; border-bottom: 1px solid #ddd; margin-bottom: 4px; max-width: 260px; white-space: normal; }
.tp-basemap.tp-warn { color: #b30000; font-weight: 600; }
.tp-fit a { font-size: 16px; font-weight: 700; }
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
