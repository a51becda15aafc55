"""The compact forms of large map layers (towers as canvas arrays, merged backbone links, main
roads only, decimated signal reading), switched on at lowered thresholds on small cases."""

from __future__ import annotations

import json
import re
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from shapely.geometry import LineString, MultiLineString, Point

from telcoplan.maps import build_map
from telcoplan.maps._compact import COMPACT_ABOVE, MAIN_ROAD_CLASSES, merge_lines
from telcoplan.maps._web import fmt
from telcoplan.maps.interactive import render_map

from .conftest import ODD_OP, UTM49, X0, XSS, Y0, json_unescape

folium = pytest.importorskip("folium")

#: Every layer in its compact form, however small.
ALL_COMPACT = {"towers": 0, "backbone": 0, "roads": 0}


def _links(seed: int = 7) -> gpd.GeoDataFrame:
    """60 backbone links along 6 chains of 10 consecutive 100-300 m segments (a chain per
    plan/operator mix), statuses drawn at random, ``length_m`` the segment length, ``cost``
    9 per metre; one link is a two-part MultiLineString, one has no length_m (its geometry
    length counts) and one no cost."""
    rng = np.random.default_rng(seed)
    chains = [
        ("joint", "Viettel;VinaPhone"),
        ("joint", "Viettel"),
        ("joint", f"VinaPhone;{ODD_OP}"),
        ("separate", "Viettel"),
        ("separate", "VinaPhone"),
        ("separate", ODD_OP),
    ]
    rows, geoms = [], []
    for c, (plan, ops) in enumerate(chains):
        x, y = X0, Y0 + 1000.0 * c
        for _ in range(10):
            dx, dy = rng.uniform(100, 300), rng.uniform(-50, 50)
            geoms.append(LineString([(x, y), (x + dx, y + dy)]))
            x, y = x + dx, y + dy
            rows.append({"plan": plan, "operators": ops, "status": rng.choice(["new", "reused"])})
    geoms[5] = MultiLineString([geoms[5], LineString([(X0, Y0 - 500), (X0 + 100, Y0 - 500)])])
    links = gpd.GeoDataFrame(rows, geometry=geoms, crs=UTM49)
    links["length_m"] = links.geometry.length
    links["cost"] = 9.0 * links["length_m"]
    links.loc[7, "length_m"] = np.nan
    links.loc[12, "cost"] = np.nan
    return links


def _towers(n: int = 40) -> gpd.GeoDataFrame:
    """``n`` towers of three operators on a 100 m lattice; T-3 carries the script-injection
    name; T-0 and T-1 share a location (a shared site), T-5 has 2 tenants."""
    ops = ["Viettel", "VinaPhone", ODD_OP]
    xy = [(X0 + 100 * (i % 8), Y0 + 100 * (i // 8)) for i in range(n)]
    xy[1] = xy[0]
    towers = gpd.GeoDataFrame(
        {
            "operator": [ops[i % 3] for i in range(n)],
            "technology": ["4G"] * n,
            "name": [f"Trạm {i}" for i in range(n)],
            "tenants": [1] * n,
            "height_m": [30.0 + i % 4 for i in range(n)],
        },
        geometry=[Point(p) for p in xy],
        index=pd.Index([f"T-{i}" for i in range(n)], name="site_id"),
        crs=UTM49,
    )
    towers.loc["T-3", "name"] = XSS
    towers.loc["T-5", "tenants"] = 2
    return towers


def _tower_data(page: str) -> dict:
    """The towers' JSON arrays as the page's script receives them."""
    start = page.index('{"lat":[')
    data, _ = json.JSONDecoder().raw_decode(json_unescape(page[start:]))
    return data


def _text(col: dict, i: int) -> str:
    """Tower ``i``'s text of a column in any of its encodings."""
    if "s" in col:
        return col["s"][i]
    if "v" in col:
        return col["v"][col["c"][i]]
    if "h" in col:
        return col["h"][col["hc"][i]] + col["t"][i]
    return col["k"]


# ------------------------------------------------------------------------ lines


def test_merge_lines_keeps_each_groups_length_and_joins_chains() -> None:
    links = _links()
    keys = list(zip(links["plan"], links["operators"], links["status"], strict=True))
    merged = merge_lines(links, keys)
    expected = links.geometry.length.groupby(pd.Series(keys, index=links.index)).sum()
    assert len(merged) == len(expected)
    for key, geom, count in zip(merged["key"], merged.geometry, merged["count"], strict=True):
        assert geom.length == pytest.approx(expected[key], rel=1e-12)
        assert count == sum(k == key for k in keys)
    assert merged["count"].sum() == len(links)
    # consecutive links of one chain and group became one part: fewer parts than links
    parts = int(shapely.get_num_geometries(merged.geometry.to_numpy()).sum())
    assert parts < len(links) - 10
    # every link of a group sits on its merged line
    for rows, geom in zip(merged["rows"], merged.geometry, strict=True):
        assert all(geom.buffer(1e-6).covers(links.geometry.iloc[r]) for r in rows)


def test_merge_lines_skips_missing_geometries_and_checks_keys() -> None:
    links = _links().iloc[:3].copy()
    links.loc[1, "geometry"] = None
    merged = merge_lines(links, ["a", "a", "b"])
    assert merged.geometry.iloc[0].length == pytest.approx(links.geometry.iloc[0].length)
    assert list(merged["count"]) == [2, 1]
    with pytest.raises(ValueError, match="one key per line"):
        merge_lines(links, ["a"])


def _geojson_tooltips(m: object, prefix: str) -> list[dict[str, str]]:
    """(alias → value) of every feature's tooltip in the map's layers named ``prefix…``."""
    out = []
    for child in m._children.values():
        if getattr(child, "layer_name", "").startswith(prefix):
            for gj in child._children.values():
                tip = next(c for c in gj._children.values() if type(c).__name__ == "GeoJsonTooltip")
                for f in gj.data["features"]:
                    props = {**gj.data["features"][0]["properties"], **f["properties"]}
                    out.append(dict(zip(tip.aliases, (props[k] for k in tip.fields), strict=True)))
    return out


def test_merged_backbone_gives_each_groups_totals(layers: dict) -> None:
    links = _links()
    m = build_map(areas=layers["areas"], backbone=links, compact_above=ALL_COMPACT)
    tips = _geojson_tooltips(m, "Backbone")
    plans = links["plan"].map(lambda p: f"{p} plan")
    ops = links["operators"].str.replace(";", ", ")
    length = links["length_m"].fillna(links.geometry.length)
    frame = pd.DataFrame({"plan": plans, "ops": ops, "status": links["status"]})
    expected = frame.assign(n=1, km=length / 1000, cost=links["cost"]).groupby(
        ["plan", "ops", "status"]
    )
    sums = expected.agg({"n": "sum", "km": "sum", "cost": "sum"})
    got = {(t["Links"], t["Operators"], t["Status"]): t for t in tips}
    assert len(got) == len(tips) == len(sums)
    for (plan, op, status), row in sums.iterrows():
        t = got[(plan, fmt(op), status)]
        assert t["Number of links"] == fmt(int(row["n"]))
        assert t["Total length"] == fmt(row["km"], "km")
        assert t["Total cost"] == fmt(row["cost"])
    # the layers of the per-feature form: the joint plan shown, each separate plan hidden
    names = [c.layer_name for c in m._children.values() if hasattr(c, "layer_name")]
    assert [n for n in names if n.startswith("Backbone")] == [
        "Backbone – joint plan",
        "Backbone – separate: Mobi&quot;Fone&#x27; &amp; &lt;b&gt;Co&lt;/b&gt;",
        "Backbone – separate: Viettel",
        "Backbone – separate: VinaPhone",
    ]


def test_main_roads_only_and_named_so(layers: dict) -> None:
    m = build_map(areas=layers["areas"], roads=layers["roads"], compact_above=ALL_COMPACT)
    page = json_unescape(render_map(m))
    assert "Roads – trunk, primary only" in page
    tips = _geojson_tooltips(m, "Roads")
    assert sorted(t["road_class"] for t in tips) == ["primary", "trunk"]  # residential left out
    assert "2 of 3 roads drawn" in page
    assert set(MAIN_ROAD_CLASSES) >= {"motorway", "trunk", "primary", "secondary"}


def test_below_the_thresholds_nothing_changes(layers: dict) -> None:
    """The default thresholds leave a small map exactly as the per-feature form draws it."""
    assert all(v >= 5000 for v in COMPACT_ABOVE.values())
    default = render_map(build_map(**layers))
    high = render_map(build_map(**layers, compact_above={"towers": 5, "backbone": 5, "roads": 3}))
    assert default == high
    with pytest.raises(ValueError, match="compact_above"):
        build_map(**layers, compact_above={"sites": 3})


# ------------------------------------------------------------------------ towers


def test_every_tower_is_in_the_arrays(layers: dict) -> None:
    towers = _towers()
    page = render_map(build_map(areas=layers["areas"], towers=towers, compact_above=ALL_COMPACT))
    data = _tower_data(page)
    cols = {c["label"]: c for c in data["cols"]}
    n = len(towers)
    ids = [_text(cols["site_id"], i) for i in range(n)]
    assert sorted(ids) == sorted(towers.index)
    order = [towers.index.get_loc(i) for i in ids]
    web = towers.to_crs("EPSG:4326").iloc[order]
    np.testing.assert_allclose(data["lat"], web.geometry.y, atol=6e-6)
    np.testing.assert_allclose(data["lon"], web.geometry.x, atol=6e-6)
    groups = sorted(set(towers["operator"]))
    assert [groups[g] for g in data["group"]] == list(web["operator"])
    assert [_text(cols["name"], i) for i in range(n)] == list(web["name"])
    assert [_text(cols["height_m"], i) for i in range(n)] == [fmt(v) for v in web["height_m"]]
    assert _text(cols["name"], ids.index("T-3")) == XSS  # kept as text, escaped when shown
    assert sorted(ids[i] for i in data["shared"]) == ["T-0", "T-1", "T-5"]
    assert _text(cols["operators at this location"], ids.index("T-0")) == "2"
    # low-cardinality columns are a table of texts and small codes
    assert cols["technology"] == {"label": "technology", "k": "4G"}  # the same for all
    assert set(cols["operator"]["c"]) == {0, 1, 2}  # few texts: a table and codes
    assert cols["site_id"]["h"] == ["T-"]  # texts that differ by a final number
    assert cols["name"]["h"] == ["Trạm ", XSS]  # "Trạm <number>" and the injection name
    two = _tower_data(
        render_map(build_map(areas=layers["areas"], towers=_towers(2), compact_above=ALL_COMPACT))
    )
    assert two["cols"][1] == {"label": "operator", "s": ["Viettel", "VinaPhone"]}  # a text each


def test_injection_name_never_reaches_the_html_unescaped(layers: dict) -> None:
    page = render_map(build_map(areas=layers["areas"], towers=_towers(), compact_above=ALL_COMPACT))
    assert XSS not in page
    assert "<img src=x" not in page
    assert "<b>Co</b>" not in page
    assert "\\u003cimg src=x onerror=alert(1)\\u003e" in page  # the JSON escape
    assert "Towers – Mobi&quot;Fone&#x27; &amp; &lt;b&gt;Co&lt;/b&gt;" in json_unescape(page)


def test_compact_page_is_smaller(layers: dict) -> None:
    towers = _towers(400)
    full = render_map(build_map(areas=layers["areas"], towers=towers))
    compact = render_map(build_map(areas=layers["areas"], towers=towers, compact_above=ALL_COMPACT))
    assert len(compact) < len(full) - 200 * 400  # per-tower markers and popups gone


# ------------------------------------------------------------------------ signal


def test_large_signal_rasters_are_read_decimated(tmp_path: Path) -> None:
    from telcoplan.gis.grid import GridSpec
    from telcoplan.gis.raster import write_raster
    from telcoplan.maps._outputs import read_display_signal

    grid = GridSpec.from_bounds((X0, Y0, X0 + 4500, Y0 + 3100), 100.0, UTM49)
    rows, cols = np.mgrid[0 : grid.height, 0 : grid.width]
    values = (-120.0 + rows + 0.01 * cols).astype(np.float32)
    values[:5, :5] = np.nan
    write_raster(tmp_path / "signal_viettel.tif", values, grid, tags={"operator": "Viettel"})
    small = read_display_signal(tmp_path, max_pixels=45)  # 45 / 45 = 1: read whole
    np.testing.assert_array_equal(small["Viettel"][0], values.astype(np.float64))
    got, coarse = read_display_signal(tmp_path, max_pixels=20)["Viettel"]  # k = 45 // 20 = 2
    assert (coarse.width, coarse.height) == (23, 16)
    assert coarse.transform.a == 200.0
    assert coarse.transform.c == grid.transform.c
    # nearest neighbour: each coarse cell holds the value of a source cell it contains
    for i in range(coarse.height):
        for j in range(coarse.width):
            block = values[2 * i : 2 * i + 2, 2 * j : 2 * j + 2]
            if np.isnan(got[i, j]):  # no data, or the cell's centre beyond the last column
                assert np.isnan(block).any() or block.shape != (2, 2)
            else:
                assert got[i, j] in block.astype(np.float64)


# ------------------------------------------------------------------------ in the browser

#: JS: (client x, y) of a compact tower by site id, and the canvas pixel (RGBA) under it.
_TOWER_PIXEL_JS = """(id) => {
  const D = window.tpTowers, map = window.telcoplan.map;
  let i = -1;
  for (let k = 0; k < D.count; k++) { if (D.siteId(k) === id) { i = k; break; } }
  const p = map.latLngToContainerPoint(D.latLng(i)), box = map.getContainer().getBoundingClientRect();
  const x = box.left + p.x, y = box.top + p.y;
  const canvas = document.querySelector('.leaflet-tpPoints-pane canvas'), r = canvas.getBoundingClientRect();
  const px = canvas.getContext('2d').getImageData(Math.round((x - r.left) * canvas.width / r.width),
    Math.round((y - r.top) * canvas.height / r.height), 1, 1).data;
  return {x: x, y: y, rgba: Array.from(px)};
}"""


@pytest.mark.browser
def test_canvas_towers_draw_and_open_their_popup(open_map, layers: dict, tmp_path: Path) -> None:
    from telcoplan.maps import save_map

    towers = _towers()
    path = save_map(
        build_map(areas=layers["areas"], towers=towers, compact_above=ALL_COMPACT),
        tmp_path / "map.html",
    )
    rec = open_map(path)
    page = rec.page
    page.wait_for_function("() => window.tpTowers && window.tpTowers.count > 0")
    counts = page.evaluate(
        "() => Object.entries(window.telcoplan.keys).filter(([k]) => k.startsWith('towers:'))"
        ".map(([k, name]) => [k.slice(7), window.telcoplan.overlays[name].getLayers().length])"
    )
    assert dict(counts) == towers["operator"].value_counts().to_dict()
    assert page.locator(".leaflet-tpPoints-pane canvas").count() == 1
    assert page.locator(".leaflet-marker-icon, .leaflet-tpPoints-pane path").count() == 0
    page.evaluate("() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")
    at = page.evaluate(_TOWER_PIXEL_JS, "T-3")  # Viettel: #ff7f0e
    assert at["rgba"][3] > 200
    assert at["rgba"][:3] == pytest.approx([255, 127, 14], abs=3)
    page.mouse.move(at["x"], at["y"])
    page.wait_for_selector(".leaflet-tooltip")
    assert page.locator(".leaflet-tooltip").inner_text().strip() == f"T-3 {XSS}"
    page.mouse.click(at["x"], at["y"])
    popup = page.locator(".leaflet-popup-content")
    popup.wait_for()
    text = popup.inner_text()
    assert re.search(r"site_id\s+T-3\b", text)
    assert re.search(r"operator\s+Viettel", text)
    assert XSS in text
    assert popup.locator("img").count() == 0
    # a shared site's popup, opened by a click on it
    shared = page.evaluate(_TOWER_PIXEL_JS, "T-5")
    page.mouse.click(shared["x"], shared["y"])
    page.wait_for_function(
        "() => /T-5/.test(document.querySelector('.leaflet-popup-content').textContent)"
    )
    assert re.search(r"tenants\s+2", popup.inner_text())
    page.wait_for_timeout(300)  # an <img src=x> would have failed to load by now
    assert rec.dialogs == []
    assert rec.problems() == []
