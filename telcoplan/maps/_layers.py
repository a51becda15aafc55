"""The per-layer drawing functions of the interactive map (:mod:`telcoplan.maps.interactive`).

One function per topic (areas, signal, coverage, gaps, roads, fiber, backbone, points of
interest, towers, proposed sites, the site review): each reprojects its layer, adds one or more named layers to
the :class:`~telcoplan.maps._builder.Builder` with their styles, popups and tooltips (every text
from the inputs escaped) and writes its legend rows.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd

from telcoplan.maps._builder import Builder, attributes, column, names, persons
from telcoplan.maps._compact import (
    add_backbone_merged,
    add_main_roads,
    add_towers_canvas,
    backbone_layer,
    backbone_layer_order,
    backbone_legend,
    link_style,
)
from telcoplan.maps._plain import plain_classes
from telcoplan.maps._style import (
    ANY_COLOUR,
    GAP_COLOUR,
    NO_DATA_COLOUR,
    SITE_KIND_LABELS,
    SITE_KINDS,
    class_colour,
    coverage_class_labels,
    link_status,
    link_users,
    operators_at_location,
    pct_any,
    site_classes,
    split_ops,
    truthy,
)
from telcoplan.maps._threads import in_background
from telcoplan.maps._web import esc, fmt

__all__ = [
    "add_areas",
    "add_backbone",
    "add_coverage",
    "add_fiber",
    "add_gaps",
    "add_pois",
    "add_review",
    "add_roads",
    "add_signal",
    "add_sites",
    "add_towers",
]

_UNSERVED_COLOUR = "#d73027"
_SERVED, _UNSERVED, _UNKNOWN = "#1a9850", _UNSERVED_COLOUR, "#969696"
_ROAD_WEIGHT = {"motorway": 3.5, "trunk": 3.0, "primary": 2.5, "secondary": 2.0}


def add_areas(b: Builder, areas: gpd.GeoDataFrame) -> None:
    web = b.web(areas, "areas")
    b.study_bounds = b.bounds[-1]
    pct = pct_any(web)
    styles = [
        {"color": "#444444", "weight": 1.5, "fillColor": class_colour(p), "fillOpacity": 0.45}
        for p in pct
    ]
    tooltip = [
        {"Area": esc(n), "Population": fmt(p), "Covered (any operator)": fmt(c, "%")}
        for n, p, c in zip(names(web), column(web, "population"), pct.round(2), strict=True)
    ]
    fg = b.group("Areas – coverage %", "areas")
    b.geojson(fg, web, styles, pane="tpAreas", popup=attributes(web), tooltip=tooltip)
    b.head("Areas: population covered (any operator)")
    for colour, text in coverage_class_labels():
        b.swatch(colour, text)
    if not pct.notna().all():
        b.swatch(NO_DATA_COLOUR, "no coverage figure")


def add_signal(
    b: Builder,
    signal: Mapping[str, tuple[np.ndarray, Any]],
    vrange: tuple[float, float],
    step: float,
) -> None:
    from telcoplan.maps._raster import SIGNAL_COLOURS, png_uri, warp_for_leaflet

    vmin, vmax = vrange
    # warped here (rasterio's warp enters warnings.catch_warnings, which is not thread-safe),
    # each raster as soon as it is read (read_plan_layers reads them in the background),
    # encoded in a thread while the other layers are built (numpy and zlib release the GIL;
    # no warnings.catch_warnings), one image after the other (each takes ~130 MB of
    # temporaries); each image goes into its layer at the end (Builder.finish)
    warped, slots = [], []
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
        image, (west, south, east, north) = warp_for_leaflet(values, grid)
        warped.append(image)
        slots.append(
            (
                b.group(f"Signal – {op} (dBm)", f"signal:{op}", show=False),
                [[south, west], [north, east]],
            )
        )
        b.bounds.append(slots[-1][1])
    images = in_background(lambda: [png_uri(image, vmin, vmax, step) for image in warped])

    def place() -> None:
        for (fg, bounds), uri in zip(slots, images.result(), strict=True):
            plain_classes()[2](
                image=uri,
                bounds=bounds,
                opacity=0.7,
                pixelated=True,
                control=False,
                pane="tpSignal",
                className="tp-signal",
            ).add_to(fg)

    b.pending.append(place)
    gradient = ", ".join(SIGNAL_COLOURS)
    b.head("Signal: total received power (dBm), per operator")
    b.legend.append(
        f'<div class="tp-ramp" style="background:linear-gradient(to right, {gradient})"></div>'
        f'<div class="tp-ramp-labels"><span>{fmt(vmin)}</span><span>{fmt((vmin + vmax) / 2)}'
        f"</span><span>≥ {fmt(vmax)} dBm</span></div>"
        f'<div class="tp-note">steps of {fmt(step)} dB; below {fmt(vmin)} dBm not shown</div>'
    )


def add_coverage(b: Builder, coverage: gpd.GeoDataFrame) -> None:
    if "operator" not in coverage.columns:
        raise ValueError("coverage needs an 'operator' column (one row per operator and 'any')")
    # the polygons are simplified while the next layers are built (a national coverage: 2 s
    # of GEOS) and drawn into their layers at the end (Builder.finish)
    web_later = b.web_later(coverage, "coverage")
    ops = sorted(coverage["operator"].astype(str).unique(), key=lambda o: (o != "any", o))
    b.head("Coverage")
    layers = []
    for op in ops:
        colour = ANY_COLOUR if op == "any" else b.colour(op)
        label = "any operator" if op == "any" else op
        fg = b.group(f"Coverage – {label}", f"coverage:{op}", show=op == "any")
        layers.append((op, fg, colour, label))
        b.swatch(colour, f"covered by {label}", extra="opacity:.5")

    def place() -> None:
        web = web_later()
        for op, fg, colour, label in layers:
            sub = web[web["operator"].astype(str) == op]
            styles = [
                {"color": colour, "weight": 1, "fillColor": colour, "fillOpacity": 0.18}
            ] * len(sub)
            pct = pd.to_numeric(column(sub, "population_pct"), errors="coerce").astype(float)
            tooltip = [
                {
                    "Coverage": esc(label),
                    "Population covered": fmt(c),
                    "Share of population": fmt(p, "%"),
                    "Area": fmt(a, "km²"),
                }
                for c, p, a in zip(
                    column(sub, "population_covered"),
                    pct.round(2),
                    column(sub, "area_km2"),
                    strict=True,
                )
            ]
            b.geojson(fg, sub, styles, pane="tpPolygons", tooltip=tooltip)

    b.pending.append(place)


def add_gaps(b: Builder, gaps: gpd.GeoDataFrame) -> None:
    web = b.web(gaps, "gaps")
    styles = [
        {"color": "#7f0000", "weight": 2, "fillColor": GAP_COLOUR, "fillOpacity": 0.55}
    ] * len(web)
    tooltip = [
        {"Gap": fmt(i), "Population": persons(p), "Area": fmt(a, "km²")}
        for i, p, a in zip(
            web.index, column(web, "population"), column(web, "area_km2"), strict=True
        )
    ]
    fg = b.group("Coverage gaps", "gaps")
    b.geojson(fg, web, styles, pane="tpPolygons", popup=attributes(web), tooltip=tooltip)
    b.swatch(GAP_COLOUR, "coverage gap (populated, no operator)")


def _line_layer(
    b: Builder,
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
        popup=attributes(web) if popup else None,
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


def add_roads(b: Builder, roads: gpd.GeoDataFrame) -> None:
    if len(roads) > b.compact["roads"]:
        add_main_roads(b, roads, _ROAD_WEIGHT)
        return
    web = b.web(roads, "roads")
    styles = [
        {"color": "#8c8c8c", "weight": _ROAD_WEIGHT.get(str(c), 1.5), "opacity": 0.8}
        for c in column(web, "road_class", "")
    ]
    tooltip = _simple_tooltip(web, ["name", "road_class"])
    _line_layer(b, web, "Roads", "roads", styles, tooltip, False, popup=False)


def add_fiber(b: Builder, fiber: gpd.GeoDataFrame) -> None:
    web = b.web(fiber, "fiber")
    styles = []
    for op, status in zip(column(web, "operator", ""), column(web, "status", ""), strict=True):
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


def add_backbone(b: Builder, backbone: gpd.GeoDataFrame) -> None:
    if len(backbone) > b.compact["backbone"]:
        add_backbone_merged(b, backbone)
        return
    web = b.web(backbone, "backbone")
    status = link_status(web)
    users = link_users(web)
    plans = [str(p) for p in column(web, "plan", "")]
    styles = [
        link_style(b, plan, st, ops) for st, ops, plan in zip(status, users, plans, strict=True)
    ]
    length = pd.to_numeric(column(web, "length_m"), errors="coerce").astype(float)
    tooltip = [
        {
            "Link": esc(f"{plan} plan" if plan else "backbone"),
            "Status": esc(st),
            "Operators": esc(", ".join(ops)) or "joint",
            "Length": fmt(ln / 1000.0, "km") if np.isfinite(ln) and ln >= 1000 else fmt(ln, "m"),
            "Cost": fmt(c),
        }
        for plan, st, ops, ln, c in zip(
            plans, status, users, length, column(web, "cost"), strict=True
        )
    ]
    # one layer per plan: the joint plan shown, each operator's separate plan hidden
    groups: dict[tuple[str, str], list[int]] = {}
    for i, (plan, ops) in enumerate(zip(plans, users, strict=True)):
        if plan == "separate":
            groups.setdefault(("separate", ops[0] if ops else ""), []).append(i)
        else:
            groups.setdefault((plan, ""), []).append(i)
    popups = attributes(web)
    for plan, op in sorted(groups, key=backbone_layer_order):
        pick = groups[(plan, op)]
        name, key, show = backbone_layer(plan, op)
        fg = b.group(name, key, show=show)
        b.geojson(
            fg,
            web.iloc[pick],
            [styles[i] for i in pick],
            pane="overlayPane",
            popup=[popups[i] for i in pick],
            tooltip=[tooltip[i] for i in pick],
        )
    backbone_legend(b, status)


def add_pois(b: Builder, pois: gpd.GeoDataFrame) -> None:
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
    levels = [_poi_level(r) for r in web.itertuples(index=False)]
    tooltip = [
        {
            "POI": (
                f"{fmt(n)} ({fmt(c)}) – {text[s]}" if not pd.isna(c) else f"{fmt(n)} – {text[s]}"
            )
            + (f": {lv}" if lv else "")
        }
        for n, c, s, lv in zip(names(web), column(web, "category"), served, levels, strict=True)
    ]
    fg = b.group("Points of interest", "pois")
    b.geojson(fg, web, styles, pane="tpPoints", popup=attributes(web), tooltip=tooltip, radius=5)
    b.head("Points of interest")
    for s in (True, False, None):
        if s in served:
            b.swatch(colour[s], f"POI {text[s]}", shape="dot")


def _poi_level(row: Any) -> str:
    """``RSRP -97.2 dBm, required -95 dBm (margin -2.2 dB; Viettel 4G)``, escaped; '' when the
    POI layer has no levels (they come from the gaps stage) or the POI no signal."""
    level = getattr(row, "level_dbm", None)
    try:
        level = float(level)
    except (TypeError, ValueError):
        return ""
    if not np.isfinite(level):
        return "no signal" if hasattr(row, "margin_db") else ""
    metric = getattr(row, "level_metric", None)
    metric = "" if metric is None or pd.isna(metric) else f"{metric} "
    who = " ".join(
        str(v)
        for v in (getattr(row, "level_operator", None), getattr(row, "level_technology", None))
        if v is not None and not pd.isna(v)
    )
    return esc(
        f"{metric}{level:.1f} dBm, required {float(row.required_level_dbm):.1f} dBm "
        f"(margin {float(row.margin_db):+.1f} dB; {who})"
    )


def add_towers(b: Builder, towers: gpd.GeoDataFrame) -> None:
    if "operator" not in towers.columns:
        raise ValueError("towers need an 'operator' column")
    if len(towers) > b.compact["towers"]:
        add_towers_canvas(b, towers)
        return
    colocated = operators_at_location(towers)
    tenants = pd.to_numeric(column(towers, "tenants", 1), errors="coerce").fillna(1)
    shared_all = (tenants > 1) | (colocated > 1)
    web = b.web(towers, "towers")
    shared = shared_all.reindex(web.index).to_numpy(dtype=bool)
    attrs = attributes(web)
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
            for sid, n, k in zip(sub.index, column(sub, "name", ""), pick, strict=True)
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


def add_sites(b: Builder, sites: gpd.GeoDataFrame) -> None:
    web = b.web(sites, "sites")
    kinds = site_classes(web)
    styles = [
        {"color": "#000000", "weight": 2, "fillColor": SITE_KINDS.get(k, "#ffffff"), "radius": 8}
        for k in kinds
    ]
    ops = [", ".join(split_ops(v)) for v in column(web, "operators", column(web, "operator"))]
    tooltip = [
        {"Proposed site": " ".join(t for t in (fmt(i), esc(k), f"({esc(o)})" if o else "") if t)}
        for i, k, o in zip(web.index, kinds, ops, strict=True)
    ]
    fg = b.group("Proposed sites", "sites")
    b.geojson(fg, web, styles, pane="tpPoints", popup=attributes(web), tooltip=tooltip, radius=8)
    b.head("Proposed sites")
    for kind in sorted(set(kinds), key=lambda k: (k not in SITE_KINDS, k)):
        b.swatch(
            SITE_KINDS.get(kind, "#ffffff"),
            SITE_KIND_LABELS.get(kind, kind or "(no kind)"),
            shape="dot",
            extra="border:2px solid #000",
        )


_REFUSED_COLOUR = "#d73027"


def add_review(
    b: Builder, review: gpd.GeoDataFrame, footprints: gpd.GeoDataFrame | None = None
) -> None:
    """The site review (``telcoplan sites review``): before — the operators' coverage layers —
    and after: each proposal (ringed in red where zoning refuses it) and the populated cells
    it would newly cover, in its operator's colour."""
    if footprints is not None and len(footprints):
        web = b.web(footprints, "review footprints")
        ops = [str(o) for o in column(web, "operator", "")]
        styles = [
            {"color": b.colour(o), "weight": 1, "fillColor": b.colour(o), "fillOpacity": 0.45}
            for o in ops
        ]
        tooltip = [
            {"Newly covered": f"{fmt(i)} ({esc(o)}): {persons(p)} persons, {fmt(a, 'km²')}"}
            for i, o, p, a in zip(
                web.index, ops, column(web, "population_new"), column(web, "area_new_km2"),
                strict=True,
            )
        ]  # fmt: skip
        fg = b.group("Site review – newly covered (after)", "review:footprint")
        b.geojson(fg, web, styles, pane="tpPolygons", tooltip=tooltip)
    web = b.web(review, "review")
    ops = [str(o) for o in column(web, "operator", "")]
    refused = [
        v is not None and not pd.isna(v) and not truthy(v)
        for v in column(web, "zoning_allowed", None)
    ]
    styles = [
        {
            "color": _REFUSED_COLOUR if r else "#000000",
            "weight": 3 if r else 2,
            "fillColor": b.colour(o),
            "radius": 7,
        }
        for o, r in zip(ops, refused, strict=True)
    ]
    tooltip = [
        {
            "Proposed site": " ".join(
                t for t in (fmt(i), fmt(n) if n != i else "", f"({esc(o)})") if t
            )
            + f": {persons(p)} persons newly covered"
            + (" – refused by zoning" if r else "")
        }
        for i, n, o, p, r in zip(
            web.index, names(web), ops, column(web, "population_new"), refused, strict=True
        )
    ]
    fg = b.group("Site review – proposals", "review")
    b.geojson(fg, web, styles, pane="tpPoints", popup=attributes(web), tooltip=tooltip, radius=7)
    b.head("Site review (after: newly covered cells)")
    for op in sorted(set(ops)):
        b.swatch(b.colour(op), f"proposal of {op} and what it newly covers", shape="dot")
    if any(refused):
        b.swatch(
            "#ffffff", "refused by zoning", shape="dot", extra=f"border:3px solid {_REFUSED_COLOUR}"
        )
