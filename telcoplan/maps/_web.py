"""Web-map plumbing: the one reprojection helper, HTML-safe text and GeoJSON building.

Everything here is free of folium, so it can be imported (and tested) without the ``maps``
extra. Every text that reaches the browser goes through :func:`esc` or :func:`fmt`.
"""

from __future__ import annotations

import html
import math
import numbers
import re
import secrets
from collections.abc import Callable, Iterable, Mapping
from itertools import pairwise
from typing import Any

import geopandas as gpd
import numpy as np
import shapely
from pyproj import CRS
from shapely.geometry import mapping

from telcoplan.errors import CRSError
from telcoplan.gis.vector import has_shape
from telcoplan.maps._coords import coordinates_json
from telcoplan.maps._simplify import simplify_polygons
from telcoplan.maps._threads import in_background
from telcoplan.outputs import is_missing

__all__ = [
    "LatLonBounds",
    "esc",
    "feature_collection",
    "feature_collection_deferred",
    "fmt",
    "fmt_text",
    "geojson_geometry",
    "to_web",
    "to_web_later",
    "union_bounds",
]

#: [[south, west], [north, east]] in degrees, the order Leaflet and folium expect.
LatLonBounds = list[list[float]]

#: Decimal places kept in EPSG:4326 coordinates (1e-5 degree is about 1 m, well below the
#: simplification tolerance).
COORD_DECIMALS = 5


def esc(value: object) -> str:
    """HTML-escape any value for use as text or attribute content.

    Besides ``& < > " '`` it also escapes the backtick, ``$`` and ``\\``, so the result is
    inert even inside a JavaScript template literal (folium puts popup and tooltip HTML in
    ``\\`...\\```).
    """
    text = html.escape(str(value), quote=True)
    return text.replace("`", "&#96;").replace("$", "&#36;").replace("\\", "&#92;")


def fmt(value: object, unit: str = "") -> str:
    """Human-readable, HTML-escaped text of an attribute value ('' for missing values).

    Integers get thousands separators, floats up to two decimals (large ones none), booleans
    read ``yes``/``no``; ``unit`` is appended after a space.
    """
    return esc(fmt_text(value, unit))


def fmt_text(value: object, unit: str = "") -> str:
    """The text of :func:`fmt` before HTML escaping: for data that a script of the page puts
    into HTML itself (it escapes it then) and for JSON."""
    kind = type(value)
    if kind is str:
        return f"{value} {unit}" if unit else value
    if kind not in (float, int, bool):  # plain numbers need neither (NaN: not finite, below)
        if hasattr(value, "item") and callable(value.item) and np.ndim(value) == 0:
            value = value.item()  # numpy scalar
        if is_missing(value):
            return ""
    if isinstance(value, bool):
        text = "yes" if value else "no"
    elif isinstance(value, numbers.Integral):
        text = f"{value:,}"
    elif isinstance(value, numbers.Real):
        v = float(value)
        if not math.isfinite(v):
            return ""
        text = f"{v:,.0f}" if abs(v) >= 1000 else f"{v:,.2f}".rstrip("0").rstrip(".")
    else:
        text = str(value)
    return f"{text} {unit}" if unit else text


def to_web(
    gdf: gpd.GeoDataFrame,
    *,
    tolerance_m: float = 20.0,
    what: str = "layer",
    preserve_topology: bool = True,
) -> tuple[gpd.GeoDataFrame, LatLonBounds | None]:
    """The only place where map geometries are reprojected to EPSG:4326.

    Lines and polygons are first simplified with ``tolerance_m`` metres in a projected CRS
    (the layer's own, or its local UTM zone when it is geographic), then reprojected, and
    coordinates rounded to 1e-5 degree (about 1 m); null and empty geometries are dropped.
    ``preserve_topology=False`` simplifies each line on its own (Douglas-Peucker; much faster
    on lines of many thousand parts, whose parts may then cross; for lines only).
    Returns a new frame (the input is not modified) and its bounds flipped to Leaflet's
    ``[[south, west], [north, east]]`` (None when nothing is left).

    Raises
    ------
    CRSError
        If ``gdf`` has no CRS.
    """
    out, geoms, simplify = _web_start(gdf, tolerance_m, what, preserve_topology)
    return _web_finish(out, geoms, simplify() if simplify is not None else None)


def to_web_later(
    gdf: gpd.GeoDataFrame,
    *,
    tolerance_m: float = 20.0,
    what: str = "layer",
    preserve_topology: bool = True,
) -> Callable[[], tuple[gpd.GeoDataFrame, LatLonBounds | None]]:
    """:func:`to_web` with its simplification (GEOS and numpy, which release the GIL) started
    in a background thread; the returned function waits for it and gives :func:`to_web`'s
    result (reprojected on the caller's thread). Errors of the input (no CRS) are raised at
    once, those of the simplification by the returned function."""
    out, geoms, simplify = _web_start(gdf, tolerance_m, what, preserve_topology)
    if simplify is None:
        return lambda: _web_finish(out, geoms, None)
    job = in_background(simplify)
    return lambda: _web_finish(out, geoms, job.result())


def _web_start(
    gdf: gpd.GeoDataFrame, tolerance_m: float, what: str, preserve_topology: bool
) -> tuple[gpd.GeoDataFrame, gpd.GeoSeries, Callable[[], np.ndarray] | None]:
    """:func:`to_web`'s frame without null and empty geometries, its geometries in a projected
    CRS, and the simplification to run on them (None: none), free of pandas."""
    if gdf.crs is None:
        raise CRSError(
            f"{what} has no CRS; the web map needs one to reproject to EPSG:4326 "
            "(set it with gdf.set_crs('EPSG:…'))"
        )
    geoms = gdf.geometry
    keep = has_shape(geoms)
    out = gdf.loc[keep].copy()
    geoms = out.geometry
    if not (
        tolerance_m > 0 and len(geoms) and not geoms.geom_type.isin(["Point", "MultiPoint"]).all()
    ):
        return out, geoms, None
    if not CRS.from_user_input(gdf.crs).is_projected:
        geoms = geoms.to_crs(geoms.estimate_utm_crs())
    values = geoms.to_numpy()
    if preserve_topology:
        return out, geoms, lambda: simplify_polygons(values, tolerance_m)
    return out, geoms, lambda: shapely.simplify(values, tolerance_m, preserve_topology=False)


def _web_finish(
    out: gpd.GeoDataFrame, geoms: gpd.GeoSeries, simple: np.ndarray | None
) -> tuple[gpd.GeoDataFrame, LatLonBounds | None]:
    """:func:`to_web`'s result from :func:`_web_start`'s and the simplified geometries."""
    values = geoms.to_numpy() if simple is None else np.asarray(simple, dtype=object)
    rounded = _to_degrees(values, geoms.crs)
    out = out.set_geometry(gpd.GeoSeries(rounded, index=out.index, crs="EPSG:4326"))
    if out.empty:
        return out, None
    west, south, east, north = (float(v) for v in out.total_bounds)
    return out, [[south, west], [north, east]]


def _to_degrees(values: np.ndarray, crs: Any) -> np.ndarray:
    """``values`` (in ``crs``) in EPSG:4326, coordinates rounded to :data:`COORD_DECIMALS`:
    ``GeoSeries.to_crs`` then ``shapely.transform(np.round)``, in one pass over the
    coordinates when no geometry has a Z (the same numbers: the same transformation of each
    coordinate, then the same rounding)."""
    target = CRS.from_epsg(4326)
    if len(values) and not shapely.has_z(values).any() and not CRS(crs).is_exact_same(target):
        from pyproj import Transformer

        xy = shapely.get_coordinates(values)
        x, y = Transformer.from_crs(crs, target, always_xy=True).transform(xy[:, 0], xy[:, 1])
        return shapely.set_coordinates(
            values.copy(), np.round(np.column_stack([x, y]), COORD_DECIMALS)
        )
    series = gpd.GeoSeries(values, crs=crs).to_crs(target)
    return shapely.transform(
        series.to_numpy(), lambda c: np.round(c, COORD_DECIMALS), include_z=False
    )


def union_bounds(*bounds: LatLonBounds | None) -> LatLonBounds | None:
    """Smallest ``[[south, west], [north, east]]`` containing all given bounds (None ignored)."""
    have = [b for b in bounds if b is not None]
    if not have:
        return None
    return [
        [min(b[0][0] for b in have), min(b[0][1] for b in have)],
        [max(b[1][0] for b in have), max(b[1][1] for b in have)],
    ]


def feature_collection(
    gdf: gpd.GeoDataFrame, properties: Iterable[Mapping[str, Any]]
) -> dict[str, Any]:
    """A GeoJSON FeatureCollection of ``gdf``'s geometries with the given (already escaped)
    per-feature properties; features get ids ``"0"``, ``"1"``, … (folium styles by id).
    Geometries of many vertices go through :func:`geojson_geometry`, small ones through
    ``mapping`` (faster for a few vertices; the same JSON either way).
    """
    geoms = gdf.geometry.to_numpy()
    many = (shapely.get_num_coordinates(geoms) >= _MANY_VERTICES).tolist()
    features = [
        {
            "type": "Feature",
            "id": str(i),
            "properties": dict(props),
            "geometry": geojson_geometry(geom) if big else mapping(geom),
        }
        for i, (geom, big, props) in enumerate(zip(geoms, many, properties, strict=True))
    ]
    return {"type": "FeatureCollection", "features": features}


#: Vertices from which :func:`feature_collection` takes a geometry's coordinates all at once.
_MANY_VERTICES = 64


def feature_collection_deferred(
    gdf: gpd.GeoDataFrame, properties: Iterable[Mapping[str, Any]]
) -> tuple[dict[str, Any], Callable[[str], str]]:
    """:func:`feature_collection` whose geometries' coordinates are written later: each one
    that :func:`telcoplan.maps._coords.coordinates_json` writes (every one, on the map's
    layers) is a placeholder text in the returned FeatureCollection, and the returned
    function puts the coordinates' JSON in place of the placeholders' JSON in a text, such as
    the FeatureCollection's JSON (``json.dumps``, with or without ``sort_keys``; its other
    texts may be escaped further, the placeholders and coordinates have nothing to escape).
    The result is that JSON of :func:`feature_collection`, without a Python list or float per
    vertex."""
    geoms = gdf.geometry.to_numpy()
    texts = coordinates_json(geoms)
    token = f"@tp{secrets.token_hex(8)}:"
    features = [
        {
            "type": "Feature",
            "id": str(i),
            "properties": dict(props),
            "geometry": (
                {"type": geom.geom_type, "coordinates": f"{token}{i}"}
                if text is not None
                else mapping(geom)
            ),
        }
        for i, (geom, text, props) in enumerate(zip(geoms, texts, properties, strict=True))
    ]
    pattern = re.compile('"' + re.escape(token) + '([0-9]+)"')

    def fill(json_text: str) -> str:
        return pattern.sub(lambda m: texts[int(m.group(1))] or "", json_text)

    return {"type": "FeatureCollection", "features": features}, fill


def geojson_geometry(geom: Any) -> dict[str, Any]:
    """``shapely.geometry.mapping(geom)`` with lists for tuples (the same JSON): lines and
    polygons (2D, no empty part) have their coordinates taken out all at once, not point by
    point (a national backbone's 260,000 line parts: 2 s)."""
    kind = geom.geom_type
    if kind not in _ARRAYS or shapely.has_z(geom):
        return mapping(geom)
    if kind == "LineString":
        return {"type": kind, "coordinates": shapely.get_coordinates(geom).tolist()}
    parts = shapely.get_parts(geom) if kind.startswith("Multi") else np.array([geom])
    if kind.endswith("Polygon"):
        if shapely.is_empty(parts).any() and kind == "MultiPolygon":
            return mapping(geom)  # an empty part keeps an empty ring there
        rings, owner = shapely.get_rings(parts, return_index=True)
        lines = _split(rings)
        grouped: list[list[Any]] = [[] for _ in range(len(parts))]
        for ring, at in zip(lines, owner.tolist(), strict=True):
            grouped[at].append(ring)
        return {"type": kind, "coordinates": grouped if kind == "MultiPolygon" else grouped[0]}
    return {"type": kind, "coordinates": _split(parts)}


#: Geometry types :func:`geojson_geometry` takes the coordinates of at once.
_ARRAYS = frozenset({"LineString", "MultiLineString", "Polygon", "MultiPolygon"})


def _split(lines: np.ndarray) -> list[list[list[float]]]:
    """The coordinates of each of ``lines`` (line strings or rings) as lists of [x, y]."""
    xy = shapely.get_coordinates(lines).tolist()
    ends = [0, *np.cumsum(shapely.get_num_coordinates(lines)).tolist()]
    return [xy[a:b] for a, b in pairwise(ends)]
