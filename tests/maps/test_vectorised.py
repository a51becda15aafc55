"""The map's whole-array shortcuts against the straightforward per-feature code they replace:
backbone link groups computed once per distinct combination of columns, the towers'
attribute texts computed once per distinct value, and GeoJSON coordinates written as JSON
text from arrays."""

from __future__ import annotations

import json
import re

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from shapely.geometry import LineString, mapping

from telcoplan.maps._compact import (
    _encode,
    _link_groups_per_link,
    link_groups,
    split_trailing_digits,
)
from telcoplan.maps._coords import coordinates_json
from telcoplan.maps._web import feature_collection, feature_collection_deferred, fmt_text
from telcoplan.maps.interactive import _renumber

UTM = "EPSG:32648"


def _links(rng: np.random.Generator, n: int, **columns: list) -> gpd.GeoDataFrame:
    data = {
        name: [values[k] for k in rng.integers(0, len(values), n)]
        for name, values in columns.items()
    }
    geoms = [LineString([(i, 0), (i + 1, 0)]) for i in range(n)]
    return gpd.GeoDataFrame(data, geometry=geoms, crs=UTM)


CASES = {
    "backbone stage": {
        "plan": ["joint", "separate"],
        "operators": ["Viettel", "Viettel;VinaPhone", "VinaPhone; Viettel", "MobiFone", None],
        "status": ["new", "Reused", " leased", None, "ring", np.nan],
    },
    "ring column, operator column": {
        "plan": ["joint", "separate", ""],
        "operator": ["A", "B", None],
        "ring": [True, False, None, "yes", "no"],
    },
    "no plan, both operator columns": {
        "operators": ["A;B", "B", "A,B"],
        "operator": ["X", "Y"],
        "status": ["new"],
    },
    "missing plans (None and NaN differ in str)": {
        "plan": ["joint", None, np.nan],
        "operators": ["A", "B"],
    },
    "numbers of several types in one column": {
        "plan": ["joint"],
        "status": [1, 1.0, True, "new"],
    },
    "no columns at all": {},
}


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("seed", [0, 1])
def test_link_groups_are_the_per_link_groups(case: str, seed: int) -> None:
    links = _links(np.random.default_rng(seed), 200, **CASES[case])
    codes, keys, status = link_groups(links)
    want_codes, want_keys, want_status = _link_groups_per_link(links)
    assert keys == want_keys
    np.testing.assert_array_equal(codes, want_codes)
    assert status == want_status
    # and the per-link reference is what the keys say
    assert len(pd.unique(pd.Series(codes))) == len(keys)


TEXTS = [
    "VT-000123",
    "Trạm Tỉnh 61 00042",
    "",
    "12",
    "abc",
    "a\n1",
    "line\n",
    "x٣4",  # an Arabic-Indic digit is not a trailing [0-9]
    "1a2",
    "00",
    "x\ud800",  # a lone surrogate: Arrow cannot take it, Python's regex then
    "tab\t9",
]


def test_split_trailing_digits_is_the_regex() -> None:
    want = [re.fullmatch(r"(.*?)([0-9]*)", t, re.S).groups() for t in TEXTS]
    heads, tails = split_trailing_digits(TEXTS)
    assert list(zip(heads, tails, strict=True)) == want
    heads, tails = split_trailing_digits(TEXTS[:-2])  # all through Arrow
    assert list(zip(heads, tails, strict=True)) == want[:-2]


@pytest.mark.parametrize(
    "values",
    [
        [f"VT-{i:06d}" for i in range(50)],  # heads and trailing digits
        [f"{w} {i}" for i in range(30) for w in ("Trạm", "Site")],
        ["a", "b", None, "a"] * 10,  # few distinct texts and a missing one
        [1, 2, 3, None] * 10,  # numbers: formatted
        list(range(100)),  # every value differs
        ["same"] * 7,
    ],
)
def test_encode_gives_the_texts_of_fmt_text(values: list) -> None:
    """Decoded as the page's script decodes it, every form gives ``fmt_text`` of each value."""
    series = pd.Series(values, dtype=object)
    col = _encode(series)
    n = len(series)
    if "k" in col:
        got = [col["k"]] * n
    elif "v" in col:
        got = [col["v"][c] for c in col["c"]]
    elif "h" in col:
        got = [col["h"][h] + t for h, t in zip(col["hc"], col["t"], strict=True)]
    else:
        got = col["s"]
    assert got == [fmt_text(v) for v in values]


def _rounded(geom: shapely.Geometry) -> shapely.Geometry:
    return shapely.transform(geom, lambda xy: np.round(xy, 5))


_GEOMETRIES = [
    "POINT (105.5 21.02)",
    "POINT (-0.00012 0)",
    "LINESTRING (105.123456 21.000001, 105.2 -21.3, 0 0, -180 90)",
    "MULTILINESTRING ((0 0, 1 1), (2 2, 3 3, 4 4))",
    "POLYGON ((0 0, 4 0, 4 4, 0 4, 0 0), (1 1, 2 1, 2 2, 1 1))",
    "MULTIPOLYGON (((0 0, 1 0, 1 1, 0 0)), ((5 5, 9 5, 9 9, 5 5), (6 6, 7 6, 7 7, 6 6)))",
    "LINESTRING (12345678.123456 -9876543.21, 1 2)",
]
#: Left to the caller (None): their JSON is not written from arrays.
_OTHERS = [
    "MULTIPOINT ((0 0), (1 1))",
    "LINESTRING Z (0 0 1, 1 1 2)",
    "MULTILINESTRING ((0 0, 1 1), EMPTY)",
    "POLYGON EMPTY",
    "GEOMETRYCOLLECTION (POINT (1 1), LINESTRING (0 0, 1 1))",
    "LINESTRING (0.00005 1, 2 3)",  # Python writes 5e-05
    "LINESTRING (0.123456789 1, 2 3)",  # not a multiple of 1e-5
    "LINESTRING (1e17 1, 2 3)",
]


def test_coordinates_json_is_json_of_mapping() -> None:
    rng = np.random.default_rng(3)
    geoms = [_rounded(shapely.from_wkt(w)) for w in _GEOMETRIES]
    # random lines and rings around the origin and far from it, negative zero included
    for scale in (1e-3, 1.0, 180.0, 1e6):
        for _ in range(20):
            xy = np.round(rng.normal(0, scale, (int(rng.integers(2, 40)), 2)), 5)
            xy[rng.random(len(xy)) < 0.1] = -0.0
            xy[np.abs(xy) < 1e-4] = 0.0 * np.sign(xy[np.abs(xy) < 1e-4])
            geoms.append(shapely.linestrings(xy))
    t = np.linspace(0, 2 * np.pi, 50, endpoint=False)
    geoms.append(shapely.Polygon(np.round(np.c_[105.5 + np.cos(t), 21.0 + np.sin(t)], 5)))
    others = [shapely.from_wkt(w) for w in _OTHERS]
    got = coordinates_json(np.array(geoms + others, dtype=object))
    for geom, text in zip(geoms, got[: len(geoms)], strict=True):
        assert text == json.dumps(mapping(geom)["coordinates"]), geom.wkt
    assert got[len(geoms) :] == [None] * len(others)


def test_deferred_feature_collection_fills_to_the_same_json() -> None:
    geoms = [_rounded(shapely.from_wkt(w)) for w in _GEOMETRIES + _OTHERS[:-3]]
    gdf = gpd.GeoDataFrame(geometry=geoms, crs="EPSG:4326")
    props = [{"p0": f"<b>{i}</b> & 'x'"} for i in range(len(gdf))]
    data, fill = feature_collection_deferred(gdf, props)
    for sort_keys in (False, True):
        want = json.dumps(feature_collection(gdf, props), sort_keys=sort_keys)
        assert fill(json.dumps(data, sort_keys=sort_keys)) == want
    assert fill("no placeholder here") == "no placeholder here"


def test_renumber_is_replacing_each_id_in_turn() -> None:
    """Ids alone, inside longer runs of hexadecimal digits, next to each other, beside UTF-8
    text and at the page's ends; the reference replaces one id after the other."""
    rng = np.random.default_rng(5)
    ids = [f"{rng.integers(0, 2**63):016x}{rng.integers(0, 2**63):016x}" for _ in range(6)]
    pieces = ["<p>Trạm Tỉnh</p>", "ab12", "x", "deadbeef" * 5, " ", "é", "{"]
    text = ids[0]
    for _ in range(300):
        text += pieces[rng.integers(len(pieces))] if rng.random() < 0.6 else ids[rng.integers(6)]
    text += ids[3] + ids[4]
    want = text
    for i, old in enumerate(ids):
        want = want.replace(old, f"{i + 1:032x}")
    assert _renumber(text.encode(), ids) == want.encode()
    # ids of another length: replaced in turn
    short = [i[:20] for i in ids]
    want = text
    for i, old in enumerate(short):
        want = want.replace(old, f"{i + 1:032x}")
    assert _renumber(text.encode(), short) == want.encode()


def test_plan_layers_read_the_signal_in_the_background(tmp_path) -> None:
    """read_plan_layers' signal: the operators at once (sorted; a per-technology raster left
    out), the values of :func:`read_display_signal`; a failed call waits for the reading."""
    from telcoplan.errors import InputFileError
    from telcoplan.gis.grid import GridSpec
    from telcoplan.gis.raster import write_raster
    from telcoplan.maps._outputs import read_display_signal, read_plan_layers

    grid = GridSpec.from_bounds((0, 0, 3000, 2000), 100.0, UTM)
    rng = np.random.default_rng(2)
    for name, tags in (
        ("viettel", {"operator": "Viettel"}),
        ("mobifone", {"operator": "MobiFone"}),
        ("viettel_4g", {"operator": "Viettel", "technology": "4G"}),
    ):
        values = rng.uniform(-120, -50, (grid.height, grid.width)).astype(np.float32)
        write_raster(tmp_path / f"signal_{name}.tif", values, grid, tags=tags)
    areas = gpd.GeoDataFrame({"name": ["a"]}, geometry=[shapely.box(0, 0, 3000, 2000)], crs=UTM)
    got = read_plan_layers(tmp_path, {"areas": areas}).signal
    assert list(got) == ["MobiFone", "Viettel"]
    assert len(got) == 2
    want = read_display_signal(tmp_path)
    for op in want:
        np.testing.assert_array_equal(got[op][0], want[op][0])
        assert got[op][1] == want[op][1]
    with pytest.raises(InputFileError, match=r"no coverage\.gpkg"):
        read_plan_layers(tmp_path, {})


def _to_web_reference(gdf: gpd.GeoDataFrame, tolerance_m: float, preserve: bool):
    """to_web as it was written: simplify, ``to_crs``, then ``shapely.transform(np.round)``."""
    from telcoplan.maps._simplify import simplify_polygons

    geoms = gdf.geometry
    out = gdf.loc[~(geoms.isna() | geoms.is_empty)].copy()
    geoms = out.geometry
    if tolerance_m > 0 and not geoms.geom_type.isin(["Point", "MultiPoint"]).all():
        if not geoms.crs.is_projected:
            geoms = geoms.to_crs(geoms.estimate_utm_crs())
        if preserve:
            geoms = gpd.GeoSeries(
                simplify_polygons(geoms.to_numpy(), tolerance_m), index=geoms.index, crs=geoms.crs
            )
        else:
            geoms = geoms.simplify(tolerance_m, preserve_topology=False)
    geoms = geoms.to_crs("EPSG:4326")
    rounded = shapely.transform(geoms.to_numpy(), lambda xy: np.round(xy, 5), include_z=False)
    return out.set_geometry(gpd.GeoSeries(rounded, index=out.index, crs="EPSG:4326"))


@pytest.mark.parametrize("crs", [UTM, "EPSG:4326", "EPSG:3857"])
@pytest.mark.parametrize("preserve", [True, False])
def test_to_web_and_later_are_the_reference(crs: str, preserve: bool) -> None:
    """The one-pass reprojection and rounding, and the simplification in the background, give
    the geometries of simplify → to_crs → round; a Z coordinate takes the two-pass way."""
    from telcoplan.maps._web import to_web, to_web_later

    rng = np.random.default_rng(4)
    x0, y0 = 500_000.0, 1_600_000.0
    geoms = [
        shapely.Polygon(
            np.c_[x0 + 3000 * np.cos(t), y0 + 2000 * np.sin(t)] + rng.normal(0, 50, (200, 2))
        )
        for t in [np.linspace(0, 2 * np.pi, 200, endpoint=False)] * 3
    ]
    geoms += [
        shapely.linestrings(np.c_[x0 + np.arange(300) * 40.0, y0 + rng.normal(0, 30, 300)]),
        None,
        shapely.LineString([(x0, y0, 5.0), (x0 + 100, y0 + 100, 6.0)]),
        shapely.Point(x0, y0),
    ]
    gdf = gpd.GeoDataFrame({"v": range(len(geoms))}, geometry=geoms, crs=UTM).to_crs(crs)
    want = _to_web_reference(gdf, 60.0, preserve)
    for got, bounds in (
        to_web(gdf, tolerance_m=60.0, preserve_topology=preserve),
        to_web_later(gdf, tolerance_m=60.0, preserve_topology=preserve)(),
    ):
        assert list(got.index) == list(want.index)
        assert (
            shapely.to_wkb(got.geometry.to_numpy()).tolist()
            == shapely.to_wkb(want.geometry.to_numpy()).tolist()
        )
        west, south, east, north = want.total_bounds
        assert bounds == [[south, west], [north, east]]


def test_a_failed_map_waits_for_the_signal_reading(layers: dict, tmp_path, monkeypatch) -> None:
    """map_from_outputs reads the signal rasters in the background; when the map fails before
    drawing them, it waits for the reading before raising (no thread outlives the call)."""
    from telcoplan.maps import _outputs
    from telcoplan.maps.interactive import map_from_outputs
    from tests.maps.test_interactive import _write_outputs

    out = tmp_path / "out"
    _write_outputs(layers, out)
    waited = []
    wait = _outputs._SignalLater.wait
    monkeypatch.setattr(_outputs._SignalLater, "wait", lambda self: waited.append(wait(self)))
    with pytest.raises(ValueError, match="tiles must be"):
        map_from_outputs(out, {"towers": layers["towers"]}, tiles="ftp://nope")
    assert waited == [None]


def test_lines_with_a_missing_key_are_in_no_group():
    """A line whose key is None or NaN joins no group (as before the array merge), the others
    are merged as without it."""
    from telcoplan.maps._compact import merge_lines

    lines = [
        LineString([(0, 0), (1, 0)]),
        LineString([(5, 5), (6, 5)]),
        LineString([(1, 0), (2, 0)]),
        LineString([(7, 7), (8, 7)]),
    ]
    gdf = gpd.GeoDataFrame(geometry=lines, crs="EPSG:32649")
    got = merge_lines(gdf, ["a", None, "a", float("nan")])
    assert list(got["key"]) == ["a"]
    assert [list(r) for r in got["rows"]] == [[0, 2]]
    assert list(got["count"]) == [2]
    assert shapely.equals(got.geometry.iloc[0], LineString([(0, 0), (1, 0), (2, 0)]))
