"""QGIS styles for a run's outputs: each GeoPackage layer's default style, a ``.qml`` beside
each raster, and a ``project.qgs`` that opens them all, styled like the web map.

QGIS reads a GeoPackage layer's default style from the file's ``layer_styles`` table (the row
with ``useAsDefault`` for that layer) and a raster's from the ``.qml`` file of the same name
beside it. The styles use the web map's palette: operator colours, the area coverage classes,
gap red, the proposed-site kinds, the backbone link statuses, and the signal colour ramp
(viridis, the map's dBm range).

The XML written is QGIS's own style format (``<qgis>`` documents with a ``renderer-v2`` for
vectors and a ``pipe``/``rasterrenderer`` for rasters), version 3.22 and later; the project
file is a plain QGIS project (``.qgs``) whose layers point at the outputs by relative paths,
with the OpenStreetMap basemap as an optional layer, unchecked (the run itself never fetches
tiles).
"""

from __future__ import annotations

import os
import shutil
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from xml.sax.saxutils import quoteattr

import numpy as np

from telcoplan import outputs

__all__ = [
    "QGIS_VERSION",
    "RunStyles",
    "categorized",
    "graduated",
    "paletted_raster",
    "project_file",
    "pseudocolor_raster",
    "run_styles",
    "write_run_styles",
]

#: QGIS version the documents declare (the oldest whose format they follow: Debian 12's).
QGIS_VERSION = "3.22.16-Białowieża"
#: Outline of filled symbols and markers.
_OUTLINE = "#232323"
#: Gap classes of the map: the gap colour; areas served by one operator only, amber.
_SINGLE_OPERATOR_COLOUR = "#fdae61"
_POI_SERVED, _POI_UNSERVED = "#1a9850", "#d73027"
#: Colours of the operators-count raster: none, then one per count (more is better).
_COUNT_COLOURS = ("#d73027", "#fee08b", "#a6d96a", "#1a9850", "#006837")
#: What ends coverage (``coverage_limit.tif``): value → (colour, label).
_LIMIT_CLASSES = {
    0: ("#1a9850", "covered"),
    1: ("#fdae61", "not covered: distance"),
    2: ("#8c510a", "not covered: terrain"),
}
#: Spellings of the proposed-site classes the map accepts in a ``kind`` column.
_KIND_ALIASES = ("colocated", "co_located", "colocation", "co-located", "shared", "new")
#: More distinct values than this in a serving-site raster: one colour per operator, no labels.
_MAX_PALETTE_ENTRIES = 5000
_OSM_SOURCE = (
    "type=xyz&url=https://tile.openstreetmap.org/%7Bz%7D/%7Bx%7D/%7By%7D.png&zmax=19&zmin=0"
)


# ------------------------------------------------------------------------------ symbols
def _rgba(colour: str, alpha: float = 1.0) -> str:
    """``#rrggbb`` → QGIS's ``r,g,b,a`` text."""
    c = colour.lstrip("#")
    r, g, b = (int(c[i : i + 2], 16) for i in (0, 2, 4))
    return f"{r},{g},{b},{round(255 * alpha)}"


def _options(**values: object) -> str:
    items = "".join(
        f'<Option name={quoteattr(k)} type="QString" value={quoteattr(str(v))}/>'
        for k, v in values.items()
    )
    return f'<Option type="Map">{items}</Option>'


def _symbol(kind: str, name: str, layer_class: str, opts: str, alpha: float = 1.0) -> str:
    return (
        f'<symbol type="{kind}" name={quoteattr(name)} alpha="{alpha:g}" clip_to_extent="1" '
        f'force_rhr="0"><layer class="{layer_class}" enabled="1" locked="0" pass="0">{opts}'
        "</layer></symbol>"
    )


def fill_symbol(name: str, colour: str, *, alpha: float = 0.6, outline: str = _OUTLINE) -> str:
    """A solid fill with a thin outline."""
    opts = _options(
        color=_rgba(colour),
        outline_color=_rgba(outline),
        outline_style="solid",
        outline_width="0.26",
        outline_width_unit="MM",
        style="solid",
    )
    return _symbol("fill", name, "SimpleFill", opts, alpha)


def line_symbol(name: str, colour: str, *, width_px: float = 2.0, dash: str | None = None) -> str:
    """A line ``width_px`` wide (screen pixels, as on the web map), dashed by an SVG pattern."""
    opts = _options(
        line_color=_rgba(colour),
        line_style="solid",
        line_width=f"{width_px:g}",
        line_width_unit="Pixel",
        capstyle="round",
        joinstyle="round",
        use_custom_dash="1" if dash else "0",
        customdash=";".join(dash.split()) if dash else "5;2",
        customdash_unit="Pixel",
    )
    return _symbol("line", name, "SimpleLine", opts)


def marker_symbol(name: str, colour: str, *, size_mm: float = 2.4, shape: str = "circle") -> str:
    """A filled marker with a dark outline."""
    opts = _options(
        color=_rgba(colour),
        name=shape,
        outline_color=_rgba(_OUTLINE),
        outline_style="solid",
        outline_width="0.2",
        outline_width_unit="MM",
        size=f"{size_mm:g}",
        size_unit="MM",
    )
    return _symbol("marker", name, "SimpleMarker", opts)


def _document(body: str) -> str:
    return (
        "<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>\n"
        f'<qgis version="{QGIS_VERSION}" styleCategories="Symbology">{body}</qgis>\n'
    )


# ---------------------------------------------------------------------------- renderers
def categorized(
    attribute: str, categories: Sequence[tuple[object, str, str]], *, fallback: str | None = None
) -> str:
    """``renderer-v2`` of a categorized style: ``(value, label, symbol XML made with name=str(i))``
    per category; ``fallback`` (a symbol named like the next index) draws other values."""
    cats = "".join(
        f'<category value={quoteattr(str(v))} symbol="{i}" label={quoteattr(label)} render="true"/>'
        for i, (v, label, _) in enumerate(categories)
    )
    symbols = "".join(s for _, _, s in categories)
    if fallback is not None:
        cats += f'<category value="" symbol="{len(categories)}" label="other" render="true"/>'
        symbols += fallback
    return (
        f'<renderer-v2 type="categorizedSymbol" attr={quoteattr(attribute)} symbollevels="0" '
        f'enableorderby="0" forceraster="0"><categories>{cats}</categories>'
        f"<symbols>{symbols}</symbols></renderer-v2>"
    )


def graduated(attribute: str, ranges: Sequence[tuple[float, float, str, str]]) -> str:
    """``renderer-v2`` of a graduated style: ``(lower, upper, label, symbol named str(i))``."""
    rows = "".join(
        f'<range lower="{lo:g}" upper="{hi:g}" symbol="{i}" label={quoteattr(label)} '
        'render="true"/>'
        for i, (lo, hi, label, _) in enumerate(ranges)
    )
    symbols = "".join(s for *_, s in ranges)
    return (
        f'<renderer-v2 type="graduatedSymbol" attr={quoteattr(attribute)} '
        'graduatedMethod="GraduatedColor" symbollevels="0" enableorderby="0" forceraster="0">'
        f"<ranges>{rows}</ranges><symbols>{symbols}</symbols></renderer-v2>"
    )


def rule_based(rules: Sequence[tuple[str, str, str]], *, off: Iterable[int] = ()) -> str:
    """``renderer-v2`` of a rule-based style: ``(filter expression, label, symbol named str(i))``;
    the rules numbered in ``off`` are unchecked (listed in the legend, not drawn)."""
    hidden = set(off)
    body = "".join(
        f'<rule key="r{i}" filter={quoteattr(expr)} symbol="{i}" label={quoteattr(label)}'
        + (' checkstate="0"' if i in hidden else "")
        + "/>"
        for i, (expr, label, _) in enumerate(rules)
    )
    symbols = "".join(s for *_, s in rules)
    return (
        '<renderer-v2 type="RuleRenderer" symbollevels="0" enableorderby="0" forceraster="0">'
        f'<rules key="root">{body}</rules><symbols>{symbols}</symbols></renderer-v2>'
    )


def vector_style(renderer: str, geometry: str) -> str:
    """A vector layer's QML document (``geometry``: point, line or polygon)."""
    kind = {"point": 0, "line": 1, "polygon": 2}[geometry]
    return _document(f"{renderer}<layerGeometryType>{kind}</layerGeometryType>")


_MIN_MAX = (
    "<minMaxOrigin><limits>None</limits><extent>WholeRaster</extent>"
    "<statAccuracy>Estimated</statAccuracy><cumulativeCutLower>0.02</cumulativeCutLower>"
    "<cumulativeCutUpper>0.98</cumulativeCutUpper><stdDevFactor>2</stdDevFactor></minMaxOrigin>"
)


def _raster_document(renderer: str) -> str:
    return _document(
        '<pipe><provider><resampling enabled="false" maxOversampling="2" '
        'zoomedInResamplingMethod="nearestNeighbour" zoomedOutResamplingMethod="nearestNeighbour"'
        f"/></provider>{renderer}"
        '<brightnesscontrast brightness="0" contrast="0" gamma="1"/>'
        '<huesaturation saturation="0" grayscaleMode="0" invertColors="0" colorizeOn="0" '
        'colorizeRed="255" colorizeGreen="128" colorizeBlue="128" colorizeStrength="100"/>'
        '<rasterresampler maxOversampling="2"/></pipe><blendMode>0</blendMode>'
    )


def pseudocolor_raster(
    colours: Sequence[str], vmin: float, vmax: float, *, unit: str, opacity: float = 0.75
) -> str:
    """A raster's QML: a colour ramp (``colours`` evenly from ``vmin`` to ``vmax``), values
    below ``vmin`` clear, above ``vmax`` in the last colour (like the web map's overlay)."""
    n = len(colours)
    items = "".join(
        f'<item alpha="255" value="{vmin + (vmax - vmin) * i / (n - 1):g}" '
        f"label={quoteattr(f'{vmin + (vmax - vmin) * i / (n - 1):g} {unit}')} "
        f'color="{c}"/>'
        for i, c in enumerate(colours)
    )
    return _raster_document(
        f'<rasterrenderer type="singlebandpseudocolor" band="1" opacity="{opacity:g}" '
        f'alphaBand="-1" classificationMin="{vmin:g}" classificationMax="{vmax:g}">'
        f"<rasterTransparency/>{_MIN_MAX}<rastershader>"
        f'<colorrampshader colorRampType="INTERPOLATED" classificationMode="1" clip="1" '
        f'minimumValue="{vmin:g}" maximumValue="{vmax:g}">{items}</colorrampshader>'
        "</rastershader></rasterrenderer>"
    )


def paletted_raster(entries: Iterable[tuple[int, str, str]], *, opacity: float = 0.75) -> str:
    """A raster's QML: one colour per value, ``(value, colour, label)``; other values clear."""
    rows = "".join(
        f'<paletteEntry value="{int(v)}" color="{c}" alpha="255" label={quoteattr(label)}/>'
        for v, c, label in entries
    )
    return _raster_document(
        f'<rasterrenderer type="paletted" band="1" opacity="{opacity:g}" alphaBand="-1">'
        f"<rasterTransparency/><colorPalette>{rows}</colorPalette></rasterrenderer>"
    )


def _shade(colour: str, k: int) -> str:
    """``colour`` lightened or darkened by one of five steps (neighbouring servers differ)."""
    f = (0.0, 0.35, -0.3, 0.6, -0.5)[k % 5]
    c = colour.lstrip("#")
    rgb = [int(c[i : i + 2], 16) for i in (0, 2, 4)]
    out = [round(v + (255 - v) * f) if f >= 0 else round(v * (1 + f)) for v in rgb]
    return "#" + "".join(f"{v:02x}" for v in out)


# ------------------------------------------------------------------------- the run's styles
@dataclass(frozen=True)
class StyledLayer:
    """One output layer as QGIS opens it: file (relative), layer name (GeoPackages), title."""

    file: str
    layer: str | None
    title: str
    geometry: str  # point, line, polygon or raster
    qml: str
    visible: bool = True


@dataclass(frozen=True)
class RunStyles:
    """The styles of a run's outputs, top of the layer list first, and the run's CRS."""

    layers: tuple[StyledLayer, ...]
    crs: str
    title: str
    extent: tuple[float, float, float, float] | None = None
    operators: dict[str, str] = field(default_factory=dict)

    def gpkg_styles(self) -> dict[str, dict[str, str]]:
        """GeoPackage file → {layer: QML}."""
        out: dict[str, dict[str, str]] = {}
        for item in self.layers:
            if item.layer is not None:
                out.setdefault(item.file, {})[item.layer] = item.qml
        return out

    def raster_styles(self) -> dict[str, str]:
        """Raster file → QML."""
        return {item.file: item.qml for item in self.layers if item.geometry == "raster"}


def _values(table, column: str) -> list[str]:
    if table is None or column not in table.columns:
        return []
    return sorted({str(v) for v in table[column].dropna().unique()})


def run_styles(
    out_dir: str | os.PathLike,
    *,
    summary: Mapping[str, Any] | None = None,
    signal_range_dbm: tuple[float, float] = (-120.0, -50.0),
) -> RunStyles:
    """The styles of the run in ``out_dir`` (a finished run or its staging folder; ``summary``:
    its summary, read from ``summary.json`` when not given); the signal ramp spans
    ``signal_range_dbm`` (the web map's range)."""
    import pyogrio

    from telcoplan.maps._raster import SIGNAL_COLOURS
    from telcoplan.maps._style import (
        ANY_COLOUR,
        COVERAGE_CLASSES,
        GAP_COLOUR,
        coverage_class_labels,
        split_ops,
    )

    folder = Path(out_dir)
    # only distinct values are read from the tables: through Arrow (a national run's tables
    # 1.6 s less CPU; a column of nulls only may get another dtype, which no style reads)
    tables = {name: outputs.read_table(folder, name, arrow=True) for name in outputs.LAYERS}
    summary_path = folder / outputs.SUMMARY
    if summary is None:
        summary = outputs.read_summary(summary_path) if summary_path.is_file() else {}
    links = tables.get("backbone")
    link_ops = (
        # each distinct text once (a national backbone: 420,000 links, a handful of texts);
        # only which operators occur counts
        [op for v in links["operators"].unique() for op in split_ops(v)]
        if links is not None and "operators" in links.columns
        else []
    )
    colours = outputs.operator_colours(
        _values(tables.get("towers"), "operator"),
        _values(tables.get("coverage"), "operator"),
        link_ops,
    )
    items: list[StyledLayer] = []

    def vector(name: str, title: str, geometry: str, renderer: str, visible: bool = True):
        file, layer, _ = outputs.LAYERS[name]
        if tables.get(name) is not None:
            items.append(
                StyledLayer(file, layer, title, geometry, vector_style(renderer, geometry), visible)
            )

    def by_operator(kind: str, column: str, table) -> str:
        make = {"point": marker_symbol, "line": line_symbol, "polygon": fill_symbol}[kind]
        cats = [
            (op, op, make(str(i), ANY_COLOUR if op == "any" else colours.get(op, ANY_COLOUR)))
            for i, op in enumerate(_values(table, column))
        ]
        return categorized(column, cats, fallback=make(str(len(cats)), "#7f7f7f"))

    # top of the layer list first
    if tables.get("sites") is not None:
        vector("sites", "Proposed sites", "point", _site_rules(tables["sites"]))
    vector("review", "Site review", "point", by_operator("point", "operators", tables["review"]))
    vector("towers", "Towers", "point", by_operator("point", "operator", tables["towers"]))
    if tables.get("pois") is not None:
        pois = [
            ("\"served\" = 1 OR \"served\" = 'true'", "POI served",
             marker_symbol("0", _POI_SERVED, shape="square")),
            ("NOT (\"served\" = 1 OR \"served\" = 'true')", "POI not served",
             marker_symbol("1", _POI_UNSERVED, shape="square")),
        ]  # fmt: skip
        vector("pois", "Points of interest", "point", rule_based(pois))
    if links is not None:
        vector("backbone", "Backbone links", "line", _backbone_rules(links, colours))
    vector("gaps", "Coverage gaps", "polygon", categorized(
        "source", [], fallback=fill_symbol("0", GAP_COLOUR, alpha=0.7)))  # fmt: skip
    vector("single_operator", "Served by one operator only", "polygon",
           categorized("source", [], fallback=fill_symbol("0", _SINGLE_OPERATOR_COLOUR)),
           visible=False)  # fmt: skip
    vector("coverage", "Coverage by operator", "polygon",
           by_operator("polygon", "operator", tables["coverage"]), visible=False)  # fmt: skip
    bounds = [lo for lo, _ in COVERAGE_CLASSES]
    ranges = [
        # the top class has no upper end: sums may give 100.00000000000001 %
        (lo, bounds[i - 1] if i else 1e6, label, fill_symbol(str(i), colour, alpha=0.7))
        for i, ((lo, _), (colour, label)) in enumerate(
            zip(COVERAGE_CLASSES, coverage_class_labels(), strict=True)
        )
    ]
    vector("areas", "Population covered by any operator (%)", "polygon",
           graduated("pct_any", ranges))  # fmt: skip

    # rasters
    vmin, vmax = signal_range_dbm
    names = {outputs.signal_file(op): op for op in colours} | {
        outputs.server_file(op): op for op in colours
    }
    for path, stem in outputs.per_operator_rasters(folder, "signal"):
        what = names.get(path.name, stem)
        items.append(StyledLayer(
            path.name, None, f"Signal {what} (dBm)", "raster",
            pseudocolor_raster(SIGNAL_COLOURS, vmin, vmax, unit="dBm"), visible=False,
        ))  # fmt: skip
    # each server raster's towers (by row) in one pass over the columns (100,000 on a
    # national run); their site ids only for a palette
    towers = tables.get("towers")
    listed = towers is not None and {"row", "operator"} <= set(towers.columns)
    tower_rows = towers["row"].to_numpy(dtype=np.int64) if listed else np.empty(0, np.int64)
    tower_ops = towers["operator"].astype(str).to_numpy(dtype=object) if listed else np.empty(0)
    site_ids: dict[int, str] | None = None  # row -> site id, made for the first palette
    for path, stem in outputs.per_operator_rasters(folder, "server"):
        ops = sorted(o for o in set(tower_ops.tolist()) if outputs.server_file(o) == path.name)
        own = np.unique(tower_rows[np.isin(tower_ops, ops)]).tolist()
        colour = colours.get(ops[0] if ops else "", ANY_COLOUR)
        if len(own) > _MAX_PALETTE_ENTRIES:  # one colour (a palette would be megabytes)
            qml = pseudocolor_raster([colour, colour], 1, max(own[-1], 2), unit="")
        else:
            if site_ids is None:
                site_ids = (
                    dict(zip(tower_rows.tolist(), towers["site_id"].astype(str), strict=True))
                    if listed and "site_id" in towers.columns
                    else {}
                )
            qml = paletted_raster(
                (r, _shade(colour, k), site_ids.get(r, str(r))) for k, r in enumerate(own)
            )
        title = f"Serving site {names.get(path.name, stem)}"
        items.append(StyledLayer(path.name, None, title, "raster", qml, visible=False))
    if (folder / outputs.OPERATORS_COUNT).is_file():
        n = max(len(colours), 1)
        entries = [
            (k, _COUNT_COLOURS[min(k, len(_COUNT_COLOURS) - 1)],
             "no operator" if k == 0 else f"{k} operator{'s' if k > 1 else ''}")
            for k in range(n + 1)
        ]  # fmt: skip
        items.append(StyledLayer(outputs.OPERATORS_COUNT, None, "Operators above threshold",
                                 "raster", paletted_raster(entries), visible=False))  # fmt: skip
    if (folder / outputs.COVERAGE_LIMIT).is_file():
        entries = [(v, c, label) for v, (c, label) in _LIMIT_CLASSES.items()]
        items.append(StyledLayer(outputs.COVERAGE_LIMIT, None, "What ends coverage", "raster",
                                 paletted_raster(entries), visible=False))  # fmt: skip

    crs = str(summary.get("crs") or "")
    if not crs and items and items[0].layer is not None:
        crs = str(pyogrio.read_info(folder / items[0].file, layer=items[0].layer)["crs"] or "")
    grid = summary.get("grid") or {}
    extent = None
    if {"transform", "width", "height"} <= set(grid):
        a, _, c, _, e, f = grid["transform"][:6]
        extent = (c, f + e * grid["height"], c + a * grid["width"], f)
    return RunStyles(tuple(items), crs, str(summary.get("plan") or "telcoplan run"), extent,
                     colours)  # fmt: skip


def _site_rules(sites) -> str:
    """The web map's proposed-site classes (:func:`telcoplan.maps._style.site_classes`) as
    rules: a ``kind`` that names a class (co-located, shared, new, or an alias) is that class;
    otherwise not a new build is co-located, a new build with 2+ tenants shared, else new;
    other kinds (no ``new_build``) in white."""
    from telcoplan.maps._style import SITE_KIND_LABELS, SITE_KINDS, site_kind

    kind = "lower(trim(coalesce(\"kind\", '')))"
    aliases = {c: sorted({c} | {k for k in _KIND_ALIASES if site_kind(k) == c}) for c in SITE_KINDS}
    named = {c: f"{kind} IN ({', '.join(repr(a) for a in names)})" for c, names in aliases.items()}
    known = " OR ".join(named.values())
    derived: dict[str, str] = {}
    if "new_build" in sites.columns:
        tenants = 'coalesce(to_int("tenants"), 1)' if "tenants" in sites.columns else "1"
        derived = {
            "co-located": '"new_build" IS NOT NULL AND NOT "new_build"',
            "shared": f'"new_build" AND {tenants} > 1',
            "new": f'"new_build" AND {tenants} <= 1',
        }
    rules = []
    for c, colour in SITE_KINDS.items():
        expr = named[c] + (f" OR (NOT ({known}) AND {derived[c]})" if c in derived else "")
        rules.append((expr, SITE_KIND_LABELS.get(c, c),
                      marker_symbol(str(len(rules)), colour, size_mm=3.2)))  # fmt: skip
    rest = f"NOT ({known})" + (' AND "new_build" IS NULL' if derived else "")
    rules.append((rest, "other", marker_symbol(str(len(rules)), "#ffffff", size_mm=3.2)))
    return rule_based(rules)


#: The backbone links' columns its QGIS rules read (:func:`_backbone_rules`).
_LINK_RULE_COLUMNS = ("plan", "status", "ring", "operators", "operator")


def _backbone_rules(links, colours: dict[str, str]) -> str:
    """The web map's backbone: the joint (and ring) plans in black, each operator's separate
    plan in its colour and unchecked; line weight and dashes by link status."""
    from telcoplan.maps._style import (
        JOINT_COLOUR,
        LINK_STATUS,
        OTHER_STATUS,
        link_status,
        link_users,
    )

    # the rules depend on these columns only: each distinct row once (a national backbone:
    # 420,000 links, a few dozen distinct rows)
    links = links[[c for c in _LINK_RULE_COLUMNS if c in links.columns]].drop_duplicates()
    status = link_status(links)
    users = link_users(links)
    plans = [str(p) for p in links["plan"]] if "plan" in links.columns else [""] * len(links)
    groups = sorted(
        {(plan, ops[0] if plan == "separate" and ops else "", st)
         for plan, ops, st in zip(plans, users, status, strict=True)},
        key=lambda k: (k[0] == "separate", k[0] != "joint", k),
    )  # fmt: skip
    rules, off = [], []
    for plan, op, st in groups:
        width, dash, text = LINK_STATUS.get(st, (*OTHER_STATUS, st))
        expr = [f"lower(coalesce(\"status\", 'new')) = '{_sql(st)}'"]
        if "ring" in links.columns:  # a true ``ring`` flag makes the link a ring link
            flag = 'coalesce("ring", false)'
            expr = [f"({flag} OR {expr[0]})"] if st == "ring" else [*expr, f"NOT {flag}"]
        if "plan" in links.columns:
            expr.insert(0, f"\"plan\" = '{_sql(plan)}'")
        if op:
            expr.append(f"\"operators\" = '{_sql(op)}'")
        colour = colours.get(op, JOINT_COLOUR) if op else JOINT_COLOUR
        label = f"{plan or 'backbone'}{f' ({op})' if op else ''}: {text}"
        if plan == "separate":
            off.append(len(rules))
        rules.append((" AND ".join(expr), label, line_symbol(str(len(rules)), colour,
                                                             width_px=width, dash=dash)))  # fmt: skip
    return rule_based(rules, off=off)


def _sql(text: str) -> str:
    """A QGIS-expression string literal's content (single quotes doubled)."""
    return text.replace("'", "''")


# ------------------------------------------------------------------------------ project
def _srs(crs: str) -> str:
    from pyproj import CRS

    c = CRS.from_user_input(crs)
    with warnings.catch_warnings():  # "you will likely lose information": QGIS reads the WKT
        warnings.simplefilter("ignore", UserWarning)
        proj4 = c.to_proj4()
    auth = c.to_authority()
    authid = f"{auth[0]}:{auth[1]}" if auth else ""
    return (
        '<spatialrefsys nativeFormat="Wkt">'
        f"<wkt>{_text(c.to_wkt())}</wkt><proj4>{_text(proj4)}</proj4>"
        f"<srsid>0</srsid><srid>{auth[1] if auth else 0}</srid><authid>{authid}</authid>"
        f"<description>{_text(c.name)}</description><projectionacronym></projectionacronym>"
        f"<ellipsoidacronym></ellipsoidacronym><geographicflag>"
        f"{'true' if c.is_geographic else 'false'}</geographicflag></spatialrefsys>"
    )


def _text(value: object) -> str:
    from xml.sax.saxutils import escape

    return escape(str(value))


def _layer_id(item: StyledLayer) -> str:
    from telcoplan.outputs import slug

    return "tp_" + slug(f"{item.file}-{item.layer or ''}").replace("-", "_")


def project_file(styles: RunStyles) -> str:
    """A QGIS project (``.qgs``) listing the run's outputs (relative paths), styled, in layer
    order, over an optional OpenStreetMap basemap (unchecked)."""
    import re

    srs = _srs(styles.crs)
    tree, maplayers = [], []
    for item in styles.layers:
        lid = _layer_id(item)
        source = f"./{item.file}" + (f"|layername={item.layer}" if item.layer else "")
        provider = "gdal" if item.geometry == "raster" else "ogr"
        kind = "raster" if item.geometry == "raster" else "vector"
        checked = "Qt::Checked" if item.visible else "Qt::Unchecked"
        tree.append(
            f"<layer-tree-layer id={quoteattr(lid)} name={quoteattr(item.title)} "
            f'source={quoteattr(source)} providerKey="{provider}" checked="{checked}" '
            'expanded="0"><customproperties/></layer-tree-layer>'
        )
        # the style's body (renderer, pipe, geometry type) goes inside the <maplayer>
        body = re.search(r"<qgis[^>]*>(.*)</qgis>", item.qml, re.S)
        geometry = {"point": "Point", "line": "Line", "polygon": "Polygon"}.get(item.geometry)
        attrs = f' geometry="{geometry}"' if geometry else ""
        maplayers.append(
            f'<maplayer type="{kind}"{attrs} autoRefreshEnabled="0" refreshOnNotifyEnabled="0">'
            f"<id>{_text(lid)}</id><datasource>{_text(source)}</datasource>"
            f"<layername>{_text(item.title)}</layername><srs>{srs}</srs>"
            f'<provider encoding="UTF-8">{provider}</provider>'
            f"{body.group(1) if body else ''}</maplayer>"
        )
    tree.append(
        '<layer-tree-layer id="tp_osm_basemap" name="OpenStreetMap (online basemap)" '
        f'source={quoteattr(_OSM_SOURCE)} providerKey="wms" checked="Qt::Unchecked" '
        'expanded="0"><customproperties/></layer-tree-layer>'
    )
    maplayers.append(
        '<maplayer type="raster" autoRefreshEnabled="0" refreshOnNotifyEnabled="0">'
        f"<id>tp_osm_basemap</id><datasource>{_text(_OSM_SOURCE)}</datasource>"
        "<layername>OpenStreetMap (online basemap)</layername>"
        f"<srs>{_srs('EPSG:3857')}</srs><provider>wms</provider></maplayer>"
    )
    extent = ""
    if styles.extent is not None:
        x0, y0, x1, y1 = styles.extent
        extent = (
            f'<mapcanvas name="theMapCanvas" annotationsVisible="1"><units>meters</units>'
            f"<extent><xmin>{x0!r}</xmin><ymin>{y0!r}</ymin><xmax>{x1!r}</xmax>"
            f"<ymax>{y1!r}</ymax></extent><rotation>0</rotation><destinationsrs>{srs}"
            "</destinationsrs></mapcanvas>"
        )
    return (
        "<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>\n"
        f'<qgis projectname={quoteattr(styles.title)} version="{QGIS_VERSION}">'
        f'<homePath path=""/><title>{_text(styles.title)}</title>'
        f"<projectCrs>{srs}</projectCrs>"
        f"<layer-tree-group><customproperties/>{''.join(tree)}</layer-tree-group>"
        f"{extent}<projectlayers>{''.join(maplayers)}</projectlayers>"
        '<properties><Paths><Absolute type="bool">false</Absolute></Paths></properties>'
        "</qgis>\n"
    )


def write_run_styles(out_dir: str | os.PathLike, styles: RunStyles | None = None) -> list[str]:
    """Write the styles of the run in ``out_dir`` into it: each GeoPackage layer's default
    style, a ``.qml`` beside each raster, and ``project.qgs``. Returns the files written or
    changed (names); each is written under a temporary name and renamed into place."""
    from telcoplan.gis.atomic import atomic_path
    from telcoplan.gis.vector import write_layer_styles

    folder = Path(out_dir)
    styles = styles or run_styles(folder)
    written = []
    for file, layers in styles.gpkg_styles().items():
        # styled in a copy renamed over the file: a file linked elsewhere (a kept result of an
        # earlier run) is never changed
        with atomic_path(folder / file, overwrite=True) as tmp:
            shutil.copyfile(folder / file, tmp)
            write_layer_styles(tmp, layers)
        written.append(file)
    texts = {f"{Path(f).stem}.qml": qml for f, qml in styles.raster_styles().items()}
    texts[outputs.PROJECT] = project_file(styles)
    for name, text in texts.items():
        with atomic_path(folder / name, overwrite=True) as tmp:
            tmp.write_text(text, encoding="utf-8")
        written.append(name)
    return written
