"""The map's and figure's fast paths give what the slow ones they replace give, exactly.

Each fast path is compared with the straightforward code it stands in for: folium's own
``MacroElement`` rendering (Jinja), ``shapely.geometry.mapping``, a nearest-neighbour warp
onto the coarse grid, and the figure's part-by-part line loop.
"""

from __future__ import annotations

import json
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import shapely
from shapely.geometry import mapping

from telcoplan.maps._web import geojson_geometry

from .conftest import UTM49, X0, Y0

folium = pytest.importorskip("folium")


def _wiggly_polygons(n: int, seed: int = 1) -> gpd.GeoSeries:
    """``n`` star-shaped polygons with a hole each, some as multipolygons."""
    rng = np.random.default_rng(seed)
    geoms = []
    for i in range(n):
        t = np.linspace(0, 2 * np.pi, 400, endpoint=False)
        r = 300 + 60 * rng.random(400)
        cx, cy = X0 + 500 * i, Y0
        shell = np.c_[cx + r * np.cos(t), cy + r * np.sin(t)]
        hole = np.c_[cx + 100 * np.cos(t[::-8]), cy + 100 * np.sin(t[::-8])]
        poly = shapely.Polygon(shell, [hole])
        geoms.append(
            shapely.MultiPolygon([poly, shapely.box(cx - 50, cy + 400, cx, cy + 450)])
            if i % 2
            else poly
        )
    return gpd.GeoSeries(geoms, index=[f"g{i}" for i in range(n)], crs=UTM49)


_WKT = [
    "LINESTRING (0 0, 1 1.5, 2 0)",
    "LINESTRING EMPTY",
    "MULTILINESTRING ((0 0, 1 1), (2 2, 3 3, 4 4))",
    "MULTILINESTRING ((0 0, 1 1), EMPTY)",
    "MULTILINESTRING EMPTY",
    "POLYGON ((0 0, 4 0, 4 4, 0 4, 0 0), (1 1, 2 1, 2 2, 1 1))",
    "POLYGON EMPTY",
    "MULTIPOLYGON (((0 0, 1 0, 1 1, 0 0)), ((5 5, 9 5, 9 9, 5 5), (6 6, 7 6, 7 7, 6 6)))",
    "MULTIPOLYGON (((0 0, 1 0, 1 1, 0 0)), EMPTY)",
    "MULTIPOLYGON EMPTY",
    "POINT (1 2)",
    "LINESTRING Z (0 0 1, 1 1 2)",
    "GEOMETRYCOLLECTION (POINT (1 1), LINESTRING (0 0, 1 1))",
]


@pytest.mark.parametrize("wkt", _WKT)
def test_geojson_geometry_is_mappings_json(wkt: str) -> None:
    geom = shapely.from_wkt(wkt)
    assert json.dumps(geojson_geometry(geom)) == json.dumps(mapping(geom))


def test_geojson_geometry_of_real_shapes() -> None:
    for geom in _wiggly_polygons(4):
        assert json.dumps(geojson_geometry(geom)) == json.dumps(mapping(geom))
        line = shapely.MultiLineString(list(shapely.get_rings(shapely.get_parts(geom))))
        assert json.dumps(geojson_geometry(line)) == json.dumps(mapping(line))


@pytest.mark.parametrize(
    "text",
    [
        "",
        "\n",
        "a",
        "a\n",
        "a\n\n",
        'var x = {"a": [1, 2]};\n',
        "x {{ 1 + 1 }}",
        "a\r\nb",
        "{# c #}",
        "{%raw%}",
    ],
)
def test_plain_text_renders_as_jinja_would(text: str) -> None:
    from branca.element import Element

    from telcoplan.maps._plain import text_element

    assert text_element(text).render() == Element(text).render()


def _same_ids(*roots: object) -> None:
    """Give the elements of maps built alike the same ids, in tree order."""
    from telcoplan.maps._assets import walk

    trees = [list(walk(r)) for r in roots]
    assert len({len(t) for t in trees}) == 1
    for i, group in enumerate(zip(*trees, strict=True)):
        for el in group:
            el._id = f"{i:032x}"


def test_plain_elements_render_the_same_page() -> None:
    from telcoplan.maps._plain import plain_classes

    _, plain_geojson, plain_overlay = plain_classes()
    data = {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "id": str(i),
                "properties": {"t": f"<b>{i}</b> {{x}}"},
                "geometry": mapping(g),
            }
            for i, g in enumerate(_wiggly_polygons(3).to_crs("EPSG:4326"))
        ],
    }
    png = "data:image/png;base64,iVBORw0KGgo="

    def build(geojson: type, overlay: type) -> object:
        m = folium.Map(location=[16.0, 108.2], zoom_start=12, tiles=None)
        geojson(
            data,
            style_function=lambda f: {"color": "#ff0000" if f["id"] == "1" else "#0000ff"},
            tooltip=folium.GeoJsonTooltip(fields=["t"]),
        ).add_to(m)
        overlay(image=png, bounds=[[16.0, 108.1], [16.1, 108.3]], opacity=0.7).add_to(m)
        return m

    slow = build(folium.GeoJson, folium.raster_layers.ImageOverlay)
    fast = build(plain_geojson, plain_overlay)
    _same_ids(slow.get_root(), fast.get_root())
    page = fast.get_root().render()
    assert page == slow.get_root().render()
    assert '"t": "\\u003cb\\u003e1\\u003c/b\\u003e {x}"' in page
    assert png in page


@pytest.mark.parametrize("k", [2, 3, 4, 5])
def test_every_kth_cell_is_the_nearest_warp(tmp_path: Path, k: int) -> None:
    from affine import Affine

    from telcoplan.gis.grid import GridSpec
    from telcoplan.gis.raster import read_raster_on_grid, write_raster
    from telcoplan.maps._outputs import read_display_signal

    grid = GridSpec.from_bounds((X0, Y0, X0 + 4700, Y0 + 3300), 100.0, UTM49)  # 47 x 33
    rng = np.random.default_rng(k)
    values = (-130.0 + 80 * rng.random((grid.height, grid.width))).astype(np.float32)
    values[rng.random(values.shape) < 0.1] = np.nan
    path = tmp_path / "signal_viettel.tif"
    write_raster(path, values, grid, tags={"operator": "Viettel"})
    got, coarse = read_display_signal(tmp_path, max_pixels=47 // k)["Viettel"]
    t = grid.transform
    assert coarse.transform == Affine(t.a * k, 0.0, t.c, 0.0, t.e * k, t.f)
    want = read_raster_on_grid(path, coarse, resampling="nearest")
    assert got.shape == want.shape == (-(-33 // k), -(-47 // k))
    np.testing.assert_array_equal(got, want)
    assert np.isfinite(got).sum() > 0.8 * got.size * (1 - 1 / k)


def test_figure_line_parts_as_part_by_part() -> None:
    from telcoplan.maps.static import _line_parts, _parts

    rings = [shapely.get_rings(shapely.get_parts(g))[0] for g in _wiggly_polygons(3)]
    lines = gpd.GeoSeries(
        [
            shapely.LineString(rings[0].coords),
            shapely.MultiLineString([rings[1].coords, rings[2].coords]),
            shapely.from_wkt("LINESTRING EMPTY"),
            shapely.from_wkt("MULTILINESTRING ((0 0, 1 1), EMPTY)"),
        ],
        crs=UTM49,
    )
    colours = ["#1", "#2", "#3", "#4"]
    segments, per_part = _line_parts(lines, colours)
    want = [
        (np.asarray(part.coords)[:, :2], c)
        for g, c in zip(lines, colours, strict=True)
        for part in _parts(g, "LineString")
    ]
    assert per_part == [c for _, c in want] == ["#1", "#2", "#2", "#4"]
    for seg, (ref, _) in zip(segments, want, strict=True):
        assert seg.dtype == ref.dtype
        assert np.array_equal(seg, ref)
    with pytest.raises(ValueError, match="3 colours for 4 line geometries"):
        _line_parts(lines, colours[:3])


def test_figure_lines_are_one_path_per_colour_with_the_parts_in_order() -> None:
    """The figure draws lines as one path per colour (the parts one after the other, a NaN
    row between two): the same vertices as part by part, each part in its geometry's colour."""
    from matplotlib.colors import to_rgba
    from matplotlib.figure import Figure

    from telcoplan.maps.static import _draw_lines, _parts

    rings = [shapely.get_rings(shapely.get_parts(g))[0] for g in _wiggly_polygons(3)]
    lines = gpd.GeoSeries(
        [
            shapely.LineString(rings[0].coords),
            shapely.MultiLineString([rings[1].coords, rings[2].coords]),
            shapely.from_wkt("LINESTRING EMPTY"),
            shapely.LineString([(0, 0), (1, 1), (2, 0)]),
        ],
        crs=UTM49,
    )
    colours = ["#ff0000", "#0000ff", "#00ff00", "#ff0000"]
    ax = Figure().add_subplot()
    _draw_lines(ax, lines, colours, linewidth=1.0)
    (collection,) = ax.collections
    paths = collection.get_paths()
    assert [tuple(c) for c in collection.get_edgecolor()] == [
        to_rgba("#ff0000"),
        to_rgba("#0000ff"),
    ]
    for path, colour in zip(paths, ("#ff0000", "#0000ff"), strict=True):
        want = [
            np.asarray(part.coords)[:, :2]
            for g, c in zip(lines, colours, strict=True)
            if c == colour
            for part in _parts(g, "LineString")
        ]
        got = np.split(path.vertices, np.flatnonzero(np.isnan(path.vertices[:, 0])))
        got = [g[~np.isnan(g[:, 0])] for g in got]
        assert len(got) == len(want)
        for a, b in zip(got, want, strict=True):
            assert np.array_equal(a, b)


def test_feature_collection_is_mappings_json() -> None:
    from telcoplan.maps._web import feature_collection

    big = list(_wiggly_polygons(3))  # hundreds of vertices: taken out at once
    small = [shapely.from_wkt(w) for w in _WKT[:4]]  # a few vertices: mapping
    gdf = gpd.GeoDataFrame(geometry=big + small, crs=UTM49)
    props = [{"n": str(i)} for i in range(len(gdf))]
    want = {
        "type": "FeatureCollection",
        "features": [
            {"type": "Feature", "id": str(i), "properties": p, "geometry": mapping(g)}
            for i, (g, p) in enumerate(zip(gdf.geometry, props, strict=True))
        ],
    }
    assert json.dumps(feature_collection(gdf, props)) == json.dumps(want)


def test_popup_attributes_as_formatted_cell_by_cell() -> None:
    """The popups' attributes (column by column, each distinct string formatted once; plain
    numbers without the numpy and missing-value tests) are the straightforward per-cell
    ``fmt`` of every value: numbers that compare equal but print differently (True, 1, 1.0,
    −0.0), missing values of every kind, numpy scalars, HTML in names and repeated names."""
    import pandas as pd

    from telcoplan.maps._builder import attributes
    from telcoplan.maps._web import esc, fmt

    n = 9
    frame = gpd.GeoDataFrame(
        {
            "name": ["<b>A</b>", "A", "<b>A</b>", None, "", "A & B", "A", "`x`", "$y"],
            "mixed": [True, 1, 1.0, -0.0, 0.0, np.nan, None, pd.NA, np.float32(2.5)],
            "count": np.arange(n, dtype=np.int64) * 1000,
            "ratio": [0.125, -0.0, np.inf, np.nan, 1234.5, 2.0, 1e-9, -3.456, 7.0],
            "flag": [True, False] * 4 + [True],
            "when": pd.to_datetime(["2026-01-01"] * 8 + [None]),
            "cat": pd.Categorical(["x", "y", "x", None, "x", "y", "x", "y", "x"]),
            "str": pd.array(["s", "t", None, "s", "s", "u", "t", "s", "s"], dtype="string"),
        },
        geometry=gpd.points_from_xy(np.arange(n) + X0, np.arange(n) + Y0),
        crs=UTM49,
        index=pd.Index([f"site<{k}>" for k in range(n)], name="site_id"),
    )
    cols = [c for c in frame.columns if c != frame.geometry.name]
    expected = []
    for idx, values in zip(
        frame.index, frame[cols].itertuples(index=False, name=None), strict=True
    ):
        props = {esc(frame.index.name): fmt(idx)}
        props.update({esc(c): fmt(v) for c, v in zip(cols, values, strict=True)})
        expected.append(props)
    got = attributes(frame)
    assert got == expected
    assert [list(p) for p in got] == [list(p) for p in expected]  # the same order of keys
    assert got[1]["mixed"] == "1"
    assert got[0]["mixed"] == "yes"
    assert got[3]["mixed"] == "-0"
