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
import logging
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import geopandas as gpd
import numpy as np

from telcoplan import outputs
from telcoplan.errors import TelcoplanError
from telcoplan.gis.atomic import atomic_path, check_writable, final_path
from telcoplan.maps._builder import CSS, Builder, element_classes, legend_box, summary_box
from telcoplan.maps._compact import COMPACT_ABOVE, MAIN_ROAD_CLASSES
from telcoplan.maps._layers import (
    add_areas,
    add_backbone,
    add_coverage,
    add_fiber,
    add_gaps,
    add_pois,
    add_review,
    add_roads,
    add_signal,
    add_sites,
    add_towers,
)
from telcoplan.maps._style import COVERAGE_CLASSES, LINK_STATUS, SITE_KINDS, split_ops
from telcoplan.maps._web import esc, union_bounds
from telcoplan.maps.choices import MAX_SIGNAL_LEVELS, tiles_problem

if TYPE_CHECKING:
    import folium

__all__ = [
    "COMPACT_ABOVE",
    "COVERAGE_CLASSES",
    "LINK_STATUS",
    "MAIN_ROAD_CLASSES",
    "MAX_SIGNAL_LEVELS",
    "SITE_KINDS",
    "build_map",
    "map_from_outputs",
    "render_map",
    "save_map",
    "tiles_problem",
    "write_plan_map",
]

log = logging.getLogger(__name__)

#: Map panes (z-index) so that points stay above lines above polygons above rasters, however
#: the layers are toggled (Leaflet's own overlay pane, 400, holds the lines).
_PANES = {"tpSignal": 350, "tpAreas": 360, "tpPolygons": 370, "tpPoints": 450}


# --------------------------------------------------------------------------- helpers


def _import_folium() -> Any:
    try:
        import folium
        import folium.plugins
    except ImportError as exc:  # pragma: no cover - a dependency
        raise TelcoplanError(
            "the interactive map needs folium, a dependency of telcoplan: reinstall it (pip install telcoplan)"
        ) from exc
    return folium


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


#: The basemap note at the top of the layer list.
_TILES_OFF = "Basemap: off. This map is offline: it draws no background tiles."
_TILES_ON = (
    "Basemap: {name}, loaded from the internet (the plan layers work without it). "
    "Offline, choose No basemap."
)


def _tile_layer(folium: Any, m: Any, tiles: str) -> tuple[Any, str]:
    """The basemap as a choice in the layer control (the tiles, or none); returns the tile
    layer (None when ``tiles`` is 'none') and the basemap note of the layer list."""
    problem = tiles_problem(tiles)
    if problem:
        raise ValueError(problem)
    if tiles == "none":
        return None, _TILES_OFF
    if tiles == "osm":
        name = "OpenStreetMap (online)"
        layer = folium.TileLayer("OpenStreetMap", name=name, overlay=False, control=True)
        note = _TILES_ON.format(name="OpenStreetMap")
    else:
        host = re.sub(r"^https?://([^/]+).*$", r"\1", tiles)
        name = f"{host} (online)"
        layer = folium.TileLayer(
            tiles=tiles, attr=esc(f"tiles: {host}"), name=esc(name), overlay=False, control=True
        )
        note = _TILES_ON.format(name=host)
    layer.add_to(m)
    folium.FeatureGroup(
        name="No basemap (offline)", overlay=False, control=True, show=False
    ).add_to(m)
    return layer, note


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
    review: gpd.GeoDataFrame | None = None,
    review_footprint: gpd.GeoDataFrame | None = None,
    summary: Mapping[str, Any] | None = None,
    tiles: str = "none",
    title: str = "telcoplan plan",
    simplify_m: float = 20.0,
    signal_range_dbm: tuple[float, float] = (-120.0, -50.0),
    signal_step_db: float = 1.0,
    compact_above: Mapping[str, int] | None = None,
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
        Proposed sites with ``kind`` (co-located / new / shared, see :data:`SITE_KINDS`; or,
        as the sites stage writes them, where the site stands — existing_tower, rooftop, … —
        with ``new_build`` and ``tenants``, from which the class is derived) and optional
        ``operators`` (``"A;B"``).
    backbone : GeoDataFrame, optional
        Backbone links (as from :func:`telcoplan.backbone.plans.plan_links`): ``plan``
        (joint / separate → one layer for the joint plan, one hidden layer per operator's
        separate plan), ``operators`` (``"A;B"``; joint trench in black, one operator in its
        colour), ``status`` (new / reused / leased / ring, see :data:`LINK_STATUS`; or a
        boolean ``ring`` column), ``length_m`` (m), ``cost``.
    review, review_footprint : GeoDataFrame, optional
        A site review (:data:`~telcoplan.outputs.REVIEW`, from ``telcoplan sites review``): the
        proposals (``operator``, ``population_new``, ``zoning_allowed``, …; every column in the
        popup, ringed in red where zoning refuses them) and the populated cells each would
        newly cover, in its operator's colour — the "after" over the coverage layers.
    summary : dict, optional
        :data:`~telcoplan.outputs.SUMMARY` content: key figures (persons not covered = in gaps +
        scattered) and the synthetic-data flag in a summary panel.
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
    compact_above : dict, optional
        Feature counts (``towers``, ``backbone``, ``roads``) above which a layer is drawn in
        its compact form; default :data:`COMPACT_ABOVE`. Compact towers are canvas dots drawn
        from arrays (popup built on click, no clustering); compact backbone links are merged
        per plan, status and operators (tooltip and popup give the totals); compact roads
        are the :data:`MAIN_ROAD_CLASSES` only, merged per class and name.

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
    The page shows the study area (the areas' bounds) in the part of the window that the
    summary, legend and layer-control panels leave free; the panels open and close by their
    titles and the legend and layer list start closed on small windows
    (``telcoplan.maps._builder.PANELS_JS``). The layer list states the basemap: off (offline)
    with ``tiles="none"``, else a choice between the tiles and none, with a warning when they
    fail to load.

    Layers may be in any CRS; each is reprojected to EPSG:4326 by one helper
    (``telcoplan.maps._web.to_web``); signal rasters are warped to Web Mercator, Leaflet's
    display CRS (``telcoplan.maps._raster``). Inputs are not modified. ``window.telcoplan``
    in the page holds the Leaflet map, its overlays by layer name and stable layer ids
    (``areas``, ``towers:<operator>``, ``signal:<operator>``, ``coverage:any``, ``gaps``,
    ``pois``, ``sites``, ``backbone:joint``, ``review``, ``review:footprint``, …), the study
    area's bounds (``studyBounds``), the panels (``panels.legend``, ``.layers``, ``.summary``:
    ``set(open)``, ``isOpen()``) and ``fitStudyArea()``; with compact towers,
    ``window.tpTowers`` holds their ``count``, ``siteId(i)``, ``latLng(i)`` and ``popup(i)``.

    A national plan (100,000 towers, 420,000 backbone links, 27,000 roads, 5,900² signal
    cells) gives a page of about 30 MB that opens in Chromium in about 7 s, where the
    per-feature forms gave 174 MB and 9 minutes (``telcoplan.maps._compact``).
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
        "review": review,
        "review_footprint": review_footprint,
    }
    for what, gdf in frames.items():
        _check_frame(gdf, what)
    if areas is None:
        raise TypeError("areas is required")
    if not (np.isfinite(simplify_m) and simplify_m >= 0):
        raise ValueError(f"simplify_m must be a number of metres >= 0, got {simplify_m!r}")
    compact = {**COMPACT_ABOVE, **(compact_above or {})}
    bad = sorted(set(compact) - set(COMPACT_ABOVE))
    if bad or not all(isinstance(v, int) and v >= 0 for v in compact.values()):
        raise ValueError(
            f"compact_above takes feature counts >= 0 for {', '.join(COMPACT_ABOVE)}, "
            f"got {dict(compact_above or {})!r}"
        )
    colours = outputs.operator_colours(
        _ops(towers),
        _ops(coverage),
        _ops(fiber),
        _ops(backbone),
        _ops(sites),
        _ops(review),
        list(signal or {}),
    )
    # maxZoom on the map itself: without a tile layer Leaflet (and markercluster) lack one
    # quarter zoom steps, so that the study area fills the free part of the window
    m = folium.Map(
        tiles=None, control_scale=True, zoom_start=11, maxZoom=19, zoomSnap=0.25, zoomDelta=0.5
    )
    tile_layer, tiles_text = _tile_layer(folium, m, tiles)
    for pane, z in _PANES.items():
        folium.map.CustomPane(pane, z_index=z, pointer_events=True).add_to(m)
    m.get_root().title = esc(title)
    b = Builder(folium, m, simplify_m, colours, compact)

    add_areas(b, areas)
    if coverage is not None:
        add_coverage(b, coverage)
    if gaps is not None:
        add_gaps(b, gaps)
    if signal:
        add_signal(b, signal, signal_range_dbm, signal_step_db)
    if roads is not None:
        add_roads(b, roads)
    if fiber is not None:
        add_fiber(b, fiber)
    if backbone is not None:
        add_backbone(b, backbone)
    if pois is not None:
        add_pois(b, pois)
    if towers is not None:
        add_towers(b, towers)
    if sites is not None:
        add_sites(b, sites)
    if review is not None:
        add_review(b, review, review_footprint)
    b.finish()

    # the study area (the areas) is what the map shows at start; the panels' script fits it
    # beside the panels, this fit is the fallback
    bounds = b.study_bounds or union_bounds(*b.bounds)
    if bounds is not None:
        m.location = [(bounds[0][0] + bounds[1][0]) / 2, (bounds[0][1] + bounds[1][1]) / 2]
        m.fit_bounds(bounds)
    control = folium.LayerControl(collapsed=False)
    control.add_to(m)
    html_cls, registry_cls, _, panels_cls = element_classes()
    style = "<style>" + CSS + "\n".join(b.css) + "</style>"
    html_cls(summary_box(title, summary) + legend_box(b.legend), style).add_to(m)
    registry_cls([(fg.layer_name, fg.get_name()) for fg in b.groups], b.keys).add_to(m)
    panels_cls(
        control.get_name(),
        tile_layer.get_name() if tile_layer is not None else None,
        bounds,
        tiles_text,
    ).add_to(m)
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
    return _page(copy.deepcopy(m.get_root())).decode("utf-8")


def _page(figure: Any) -> bytes:
    """:func:`render_map` of the map whose root is ``figure`` as UTF-8, rendered in place: the
    map is used up (copying a national map takes 2 s: a map built only to be saved is not
    copied)."""
    from telcoplan.maps._assets import external_references, inline_assets, walk

    inline_assets(figure)
    text = figure.render()
    remote = external_references(text)
    if remote:
        raise TelcoplanError(
            f"the map would load {len(remote)} resource(s) from the network "
            f"({', '.join(remote[:3])}); it must be self-contained"
        )
    # folium names elements by random UUIDs: renumber them in tree order, so the same plan
    # gives the same file (byte-reproducible outputs)
    ids = [getattr(el, "_id", None) for el in walk(figure)]
    ids = [x for x in dict.fromkeys(ids) if isinstance(x, str) and len(x) >= 16]
    return _renumber(text.encode("utf-8"), ids)


_Text = TypeVar("_Text", str, bytes)
#: Lower-case hexadecimal digits (as bytes) and the translation of a page's bytes that marks
#: them ``x`` and every other byte ``.`` (UTF-8 multi-byte characters hold none of them).
_HEX = b"0123456789abcdef"
_HEX_MARKS = bytes(ord("x") if c in _HEX else ord(".") for c in range(256))
#: The shortest run of hexadecimal digits that can hold an id of folium's.
_ID_RUN = b"x" * 32


def _renumber(page: _Text, ids: list[str]) -> _Text:
    """``page`` (UTF-8 bytes, or text) with the ``i``-th of ``ids`` replaced by ``i + 1`` as 32
    hexadecimal digits, one id after the other (``replace`` in turn: the reference).

    folium's ids are 32 hexadecimal digits, and so are their replacements: each occurrence of
    one lies in a maximal run of hexadecimal digits whose ends no replacement moves, so the
    replacements are made run by run, only in runs of 32 digits or more, found by marking
    the page's digits (``bytes.translate``) and searching the marks for 32 in a row (0.1 s
    for a 30 MB national map; a regular expression over the text: 0.4-0.6 s; one pass per
    id: 2.6 s), with the same result. Other ids are replaced in turn."""
    if isinstance(page, str):
        return _renumber(page.encode("utf-8"), ids).decode("utf-8")
    new = {old.encode(): f"{i + 1:032x}".encode() for i, old in enumerate(ids)}

    def in_turn(text: bytes) -> bytes:
        for old, repl in new.items():
            text = text.replace(old, repl)
        return text

    if not all(len(x) == 32 and not x.strip(_HEX) for x in new):
        return in_turn(page)
    marks = page.translate(_HEX_MARKS)
    done: dict[bytes, bytes] = {}
    out, at = [], 0
    start = marks.find(_ID_RUN)
    while start >= 0:
        end = marks.find(b".", start)
        end = len(page) if end < 0 else end
        run = page[start:end]
        got = done.get(run)
        if got is None:
            got = done[run] = in_turn(run)
        out += (page[at:start], got)
        at = end
        start = marks.find(_ID_RUN, end)
    out.append(page[at:])
    return b"".join(out)


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
    return _write_page(render_map(m).encode("utf-8"), path, overwrite=overwrite)


def _write_page(page: bytes, path: str | os.PathLike, *, overwrite: bool) -> Path:
    """Write the page (UTF-8) atomically."""
    with atomic_path(path, overwrite=overwrite) as tmp:
        tmp.write_bytes(page)
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
        The plan's output folder: :data:`~telcoplan.outputs.COVERAGE` (layers ``areas``, ``coverage``,
        ``sites``), :data:`~telcoplan.outputs.GAPS` (``gaps``, ``pois``), :func:`~telcoplan.outputs.signal_file`,
        :data:`~telcoplan.outputs.SITES` (``sites``), :data:`~telcoplan.outputs.BACKBONE` (``links``), :data:`~telcoplan.outputs.SUMMARY`; each is
        optional except an ``areas`` layer (from :data:`~telcoplan.outputs.COVERAGE` or ``layers``).
    layers
        The plan's input layers by name, e.g. ``{**inputs.vectors, "areas": inputs.areas}``:
        ``towers``, ``fiber``, ``roads`` (not in the outputs), ``areas``/``pois`` (used when
        the outputs lack them), ``sites``/``backbone`` (win over the outputs).
    summary
        The plan's summary (default: ``out_dir`` / :data:`~telcoplan.outputs.SUMMARY` when present); the plan stage
        passes its in-memory summary because :data:`~telcoplan.outputs.SUMMARY` is written last.
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
    try:
        return build_map(
            **got.vectors,
            signal=got.signal or None,
            summary=got.summary,
            title=name,
            **options,
        )
    except BaseException:
        got.wait()  # the signal rasters are read in the background: no thread outlives a failure
        raise


def write_plan_map(
    out_dir: str | os.PathLike,
    layers: Mapping[str, gpd.GeoDataFrame | None] | None = None,
    *,
    path: str | os.PathLike | None = None,
    overwrite: bool = False,
    **options: Any,
) -> Path:
    """Build the map of the plan in ``out_dir`` (:func:`map_from_outputs`) and save it as
    ``path`` (default ``out_dir`` / :data:`~telcoplan.outputs.MAP`) with :func:`save_map`; returns the path.

    Raises
    ------
    OutputExistsError
        If the target exists and ``overwrite`` is False (checked before any work).
    """
    target = Path(path) if path is not None else Path(out_dir) / outputs.MAP
    check_writable(target, overwrite)
    m = map_from_outputs(out_dir, layers, **options)
    # built to be saved: rendered without render_map's copy
    return _write_page(_page(m.get_root()), target, overwrite=overwrite)
