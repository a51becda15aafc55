"""The interactive map as HTML text: escaping, self-containment, atomic writes, layers."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest

from telcoplan.errors import CRSError, OutputExistsError
from telcoplan.maps import build_map, map_from_outputs, save_map, write_plan_map
from telcoplan.maps._assets import external_references
from telcoplan.maps._web import esc, fmt, to_web
from telcoplan.maps.interactive import render_map

from .conftest import EXPECTED_LAYERS, ODD_COLUMN, ODD_OP, XSS, json_unescape

folium = pytest.importorskip("folium")


@pytest.fixture
def page(layers: dict) -> str:
    """The fixture map rendered to HTML (tiles='none')."""
    return render_map(build_map(**layers, title=f"Plan {XSS}"))


def _overlay_names(page: str) -> list[str]:
    """Layer names in the layer control, in order, as the browser's JS sees them."""
    block = re.search(r"overlays\s*:\s*\{(.*?)\}", page, re.S)
    assert block, "no layer control in the page"
    return [json.loads(f'"{k}"') for k in re.findall(r'"((?:[^"\\]|\\.)*)"\s*:', block.group(1))]


# ------------------------------------------------------------------------ escaping


def test_injection_tower_name_is_escaped_everywhere(page: str) -> None:
    seen = json_unescape(page)  # the strings as the page's JavaScript holds them
    assert XSS not in seen, "a raw <img onerror> tag reaches the page"
    assert "<img src=x" not in seen
    assert "<svg onload" not in seen
    assert esc(XSS) in seen  # shown as text: &lt;img src=x onerror=alert(1)&gt;
    assert esc(ODD_COLUMN) in seen  # column names too
    # raw operator names appear only as JSON data keys of window.telcoplan.keys (never HTML)
    assert "<b>Co</b>" not in re.sub(r"keys: \{.*?\} \};", "", seen)


def test_popup_and_tooltip_values_are_escaped(page: str) -> None:
    seen = json_unescape(page)
    # popups: the tower's properties hold the escaped name, in every layer it appears
    assert seen.count(esc(XSS)) >= 6  # tower, area, gap note, POI, road, title
    # tooltips: "Site" label with id and escaped name
    assert f"VT-2 {esc(XSS)}" in seen
    # aliases (column labels) of popups are escaped column names
    assert f'"{esc(ODD_COLUMN)}"' in seen


def test_legend_and_layer_names_are_escaped(page: str) -> None:
    start = page.index('<div class="tp-box tp-legend tp-panel"')
    legend_html = page[start : page.index("<script", start)]
    assert f"{esc(ODD_OP)}</div>" in legend_html  # the towers swatch
    assert f"covered by {esc(ODD_OP)}</div>" in legend_html
    assert ODD_OP not in legend_html
    names = _overlay_names(page)
    assert names == [esc(n) for n in EXPECTED_LAYERS]
    assert all("<" not in n for n in names)


def test_title_is_escaped(page: str) -> None:
    assert f"<title>Plan {esc(XSS)}</title>" in page
    assert f'<div class="tp-title">Plan {esc(XSS)}</div>' in page


def test_esc_neutralises_template_literals() -> None:
    assert esc("`${alert(1)}`\\") == "&#96;&#36;{alert(1)}&#96;&#92;"
    assert fmt(1234567) == "1,234,567"
    assert fmt(np.float32(12.3456), "%") == "12.35 %"
    assert fmt(float("nan")) == ""
    assert fmt(True) == "yes"


# ------------------------------------------------------------------ self-contained


def test_no_external_references(page: str) -> None:
    assert external_references(page) == []
    for tag in re.findall(r"<(?:script|link)\b[^>]*>", page):
        assert "http" not in tag, tag
        assert "//" not in tag, tag
    assert "cdn.jsdelivr" not in page
    assert "unpkg.com" not in page
    assert "L.MarkerClusterGroup" in page  # the plugin is inlined
    assert "jQuery" in page


def test_external_references_detects_links() -> None:
    html = (
        '<script src="https://cdn.example.org/a.js"></script>'
        "<link rel=stylesheet href=//cdn.example.org/b.css>"
        "<style>@import 'http://x.example/c.css'; .a{background:url(https://x.example/i.png)}</style>"
        '<a href="https://leafletjs.com">Leaflet</a>'
    )
    assert external_references(html) == [
        "//cdn.example.org/b.css",
        "http://x.example/c.css",
        "https://cdn.example.org/a.js",
        "https://x.example/i.png",
    ]


def test_tiles_options(layers: dict) -> None:
    osm = render_map(build_map(areas=layers["areas"], tiles="osm"))
    assert "tile.openstreetmap.org" in osm
    assert external_references(osm) == []  # tiles are requested by Leaflet, not by the page
    url = "https://tiles.example.org/{z}/{x}/{y}.png"
    custom = render_map(build_map(areas=layers["areas"], tiles=url))
    assert json.dumps(url) in custom
    assert "L.tileLayer(" in osm
    assert "L.tileLayer(" in custom
    none = render_map(build_map(areas=layers["areas"]))
    assert "L.tileLayer(" not in none
    for bad in ("javascript:alert(1)//{z}{x}{y}", "https://x.example/no-placeholders.png", "x"):
        with pytest.raises(ValueError, match="tiles must be"):
            build_map(areas=layers["areas"], tiles=bad)


# ------------------------------------------------------------------ writing


def test_save_map_refuses_to_overwrite(layers: dict, tmp_path: Path) -> None:
    m = build_map(areas=layers["areas"], towers=layers["towers"])
    target = tmp_path / "map.html"
    assert save_map(m, target) == target
    first = target.read_text(encoding="utf-8")
    target.write_text("keep me", encoding="utf-8")
    with pytest.raises(OutputExistsError, match="overwrite"):
        save_map(m, target)
    assert target.read_text(encoding="utf-8") == "keep me"
    save_map(m, target, overwrite=True)
    assert target.read_text(encoding="utf-8") == first  # saving twice gives the same page
    assert sorted(p.name for p in tmp_path.iterdir()) == ["map.html"]  # no temporary left


def test_save_map_failure_leaves_nothing(layers: dict, tmp_path: Path, monkeypatch) -> None:
    import telcoplan.maps.interactive as interactive

    def boom(m):
        raise RuntimeError("render failed")

    monkeypatch.setattr(interactive, "render_map", boom)
    with pytest.raises(RuntimeError):
        save_map(build_map(areas=layers["areas"]), tmp_path / "map.html")
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------ content


def test_inputs_are_not_modified(layers: dict) -> None:
    before = {k: v.copy() for k, v in layers.items() if isinstance(v, gpd.GeoDataFrame)}
    arrays = {k: v[0].copy() for k, v in layers["signal"].items()}
    build_map(**layers)
    for name, gdf in before.items():
        assert layers[name].equals(gdf), name
        assert layers[name].crs == gdf.crs
    for op, arr in arrays.items():
        np.testing.assert_array_equal(layers["signal"][op][0], arr)


def test_feature_counts_in_the_page(layers: dict) -> None:
    m = build_map(**layers)
    counts: dict[str, int] = {}
    for child in m._children.values():
        if isinstance(child, folium.FeatureGroup):
            n = 0
            stack = list(child._children.values())
            while stack:
                el = stack.pop()
                if isinstance(el, folium.GeoJson):
                    n += len(el.data["features"])
                elif isinstance(el, folium.raster_layers.ImageOverlay):
                    n += 1
                stack.extend(getattr(el, "_children", {}).values())
            counts[child.layer_name] = n
    assert counts == {
        esc("Areas – coverage %"): 2,
        esc("Coverage – any operator"): 1,
        esc(f"Coverage – {ODD_OP}"): 1,
        esc("Coverage – Viettel"): 1,
        esc("Coverage – VinaPhone"): 1,
        esc("Coverage gaps"): 2,
        esc("Signal – Viettel (dBm)"): 1,
        esc(f"Signal – {ODD_OP} (dBm)"): 1,
        esc("Roads"): 3,
        esc("Existing fiber"): 2,
        esc("Backbone – joint plan"): 4,
        esc("Backbone – separate: Viettel"): 1,
        esc("Points of interest"): 3,
        esc(f"Towers – {ODD_OP}"): 1,
        esc("Towers – Viettel"): 3,
        esc("Towers – VinaPhone"): 1,
        esc("Proposed sites"): 3,
    }


def test_shared_sites_and_styles(layers: dict) -> None:
    page = json_unescape(render_map(build_map(**layers)))
    # VT-1 and ODD-1 share a location, VNP-1 has two tenants: three ringed markers
    assert page.count("(shared)") == 3
    # backbone status styles: ring and reused dashes, joint trench in black
    assert '"dashArray": "14 5 3 5"' in page
    assert '"dashArray": "2 6"' in page
    # popups carry length and cost
    assert "1.5 km" in page
    assert "9,000" in page
    # POIs: served, not served, unknown
    for text in ("– served", "– NOT served", "– service unknown"):
        assert text in page


def test_area_choropleth_classes(layers: dict) -> None:
    from telcoplan.maps._style import class_colour, pct_any

    areas = layers["areas"].drop(columns="pct_any").assign(covered_any=[201_522.0, 500.0])
    assert pct_any(areas).round(1).tolist() == [100.0, 50.0]
    assert class_colour(100.0) == "#1a9850"
    assert class_colour(50.0) == "#d73027"
    assert class_colour(float("nan")) == "#bdbdbd"


def test_simplification_keeps_feature_counts(layers: dict) -> None:
    roads = layers["roads"]
    web, bounds = to_web(roads, tolerance_m=5.0)
    assert len(web) == len(roads)
    assert list(web.index) == list(roads.index)
    before = sum(len(g.coords) for g in roads.geometry)
    after = sum(len(g.coords) for g in web.geometry)
    assert after < before / 10  # the wiggles are gone
    assert web.crs.to_epsg() == 4326
    assert bounds[0][0] < bounds[1][0]
    assert bounds[0][1] < bounds[1][1]
    # polygons much smaller than the tolerance survive (preserve_topology)
    tiny = layers["gaps"].copy()
    web_gaps, _ = to_web(tiny, tolerance_m=500.0)
    assert len(web_gaps) == len(tiny)
    assert not web_gaps.geometry.is_empty.any()
    assert web_gaps.geometry.is_valid.all()


def test_to_web_geographic_and_missing_crs(layers: dict) -> None:
    roads = layers["roads"].to_crs("EPSG:4326")
    web, _ = to_web(roads, tolerance_m=5.0)
    assert len(web) == 3
    assert max(len(g.coords) for g in web.geometry) < 20
    with pytest.raises(CRSError, match="no CRS"):
        to_web(layers["roads"].set_crs(None, allow_override=True), what="roads")
    with pytest.raises(CRSError, match="roads has no CRS"):
        build_map(areas=layers["areas"], roads=layers["roads"].set_crs(None, allow_override=True))


def test_empty_and_minimal_layers(layers: dict) -> None:
    empty_gaps = layers["gaps"].iloc[:0]
    page = render_map(
        build_map(areas=layers["areas"], gaps=empty_gaps, pois=layers["pois"].iloc[:0])
    )
    assert esc("Coverage gaps") in _overlay_names(page)
    # a map of the areas alone, with no coverage figures
    bare = layers["areas"][["name", "geometry"]]
    assert "no coverage figure" in render_map(build_map(areas=bare))


def test_bad_inputs(layers: dict) -> None:
    with pytest.raises(TypeError, match="towers must be a GeoDataFrame"):
        build_map(areas=layers["areas"], towers=layers["towers"].drop(columns="geometry"))
    with pytest.raises(ValueError, match="operator"):
        build_map(areas=layers["areas"], towers=layers["towers"].drop(columns="operator"))
    with pytest.raises(TypeError, match="signal"):
        build_map(areas=layers["areas"], signal={"X": np.zeros((2, 2))})
    with pytest.raises(ValueError, match="simplify_m"):
        build_map(areas=layers["areas"], simplify_m=-1)


def test_registry_keys(layers: dict) -> None:
    page = render_map(build_map(**layers))
    keys = json.loads(json_unescape(re.search(r"keys: (\{.*?\}) \};", page).group(1)))
    assert keys["towers:Viettel"] == esc("Towers – Viettel")
    assert keys["backbone:joint"] == esc("Backbone – joint plan")
    assert keys[f"signal:{ODD_OP}"] == esc(f"Signal – {ODD_OP} (dBm)")


def test_importing_maps_does_not_import_folium_or_matplotlib() -> None:
    code = (
        "import sys, telcoplan.maps; "
        "print(sorted(m for m in ('folium', 'matplotlib', 'branca') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"


# ------------------------------------------------------------------ from outputs


def _write_outputs(layers: dict, out: Path) -> None:
    from telcoplan.gis.raster import write_raster
    from telcoplan.gis.vector import write_vector_layers

    out.mkdir()
    areas = layers["areas"].drop(columns="pct_any").assign(covered_any=[201_000.0, 700.0])
    towers = layers["towers"].reset_index()
    towers.insert(0, "row", np.arange(1, len(towers) + 1))
    write_vector_layers(
        out / "coverage.gpkg",
        {"coverage": layers["coverage"], "areas": areas, "sites": towers},
    )
    write_vector_layers(
        out / "gaps.gpkg",
        {"gaps": layers["gaps"].reset_index(), "pois": layers["pois"].reset_index()},
    )
    write_vector_layers(out / "backbone.gpkg", {"links": layers["backbone"]})
    for i, (op, (values, grid)) in enumerate(layers["signal"].items()):
        write_raster(
            out / f"signal_op{i}.tif", values, grid, nodata=float("nan"), tags={"operator": op}
        )
    values, grid = layers["signal"]["Viettel"]
    write_raster(
        out / "signal_viettel-4g.tif",
        values,
        grid,
        nodata=float("nan"),
        tags={"operator": "Viettel", "technology": "4G"},
    )
    summary = {
        "plan": f"Đà Nẵng {XSS}",
        "synthetic": True,
        "population_total": 202_522.0,
        "coverage": {"any": {"population_pct": 99.6}},
        "gaps": {"count": 2, "population": 382.25, "pois": {"count": 3, "served": 1}},
        "backbone": {
            "cost_joint": 1.0,
            "length_km_joint": 2.2,
            "length_km_separate": 3.1,
            "savings_pct": 29.0,
        },
    }
    (out / "summary.json").write_text(json.dumps(summary, ensure_ascii=False), encoding="utf-8")


def test_map_from_outputs(layers: dict, tmp_path: Path) -> None:
    out = tmp_path / "outputs"
    _write_outputs(layers, out)
    m = map_from_outputs(out, {"fiber": layers["fiber"], "roads": layers["roads"], "foo": None})
    page = render_map(m)
    names = [json_unescape(n) for n in _overlay_names(page)]
    assert esc("Signal – Viettel (dBm)") in names  # not the per-technology raster
    assert sum(n.startswith("Signal") for n in names) == 2
    assert esc("Towers – Viettel") in names
    assert esc("Existing fiber") in names
    assert esc("Backbone – joint plan") in names
    seen = json_unescape(page)
    assert f"<title>Đà Nẵng {esc(XSS)}</title>" in page
    assert "SYNTHETIC DATA" in page
    assert "cost saving 29 %" in seen
    assert "99.5" in seen or "99.65" in seen  # covered_any / population → %
    assert XSS not in seen


def test_write_plan_map(layers: dict, tmp_path: Path) -> None:
    out = tmp_path / "outputs"
    _write_outputs(layers, out)
    path = write_plan_map(
        out, {"towers": layers["towers"]}, summary={"plan": "given"}, signal=False
    )
    assert path == out / "map.html"
    page = path.read_text(encoding="utf-8")
    assert "<title>given</title>" in page
    assert "Signal" not in "".join(_overlay_names(page))
    with pytest.raises(OutputExistsError):
        write_plan_map(out)
    write_plan_map(out, overwrite=True, tiles="osm")
    assert "tile.openstreetmap.org" in (out / "map.html").read_text(encoding="utf-8")


def test_map_from_outputs_needs_areas(tmp_path: Path) -> None:
    from telcoplan.errors import InputFileError

    with pytest.raises(InputFileError, match="not a folder"):
        map_from_outputs(tmp_path / "missing")
    with pytest.raises(InputFileError, match="areas"):
        map_from_outputs(tmp_path)


def test_areas_in_geographic_crs(layers: dict) -> None:
    areas = layers["areas"].to_crs("EPSG:4326")
    towers = layers["towers"].to_crs("EPSG:4326")
    page = render_map(build_map(areas=areas, towers=towers))
    assert page.count("(shared)") == 3  # co-location found in metres, not degrees


def test_map_parameters() -> None:
    from telcoplan.pipeline.stages import ParameterError
    from telcoplan.pipeline.stages.map import DEFAULTS, MapParams, parse

    got = parse(None)
    assert got == MapParams()
    assert got.signal_range_dbm == tuple(DEFAULTS["signal_range_dbm"])
    assert parse({"tiles": "https://t.example/{z}/{x}/{y}.png"}).tiles.startswith("https")
    with pytest.raises(ParameterError) as info:
        parse(
            {
                "tile": "osm",
                "tiles": "ftp://x/{z}/{x}/{y}",
                "simplify_m": -1,
                "signal": "yes",
                "signal_range_dbm": [-50, -120],
            },
        )
    message = str(info.value)
    assert message.startswith("5 problem(s) in the map parameters")
    assert len(info.value.problems) == 5
    for word in ("'tile'", "tiles must be", "simplify_m", "signal must be", "signal_range_dbm"):
        assert word in message
    with pytest.raises(ParameterError, match="signal_step_db"):
        parse({"signal_step_db": 0.1, "signal_range_dbm": [-140, 0]})


def test_css_like_text_in_the_data_is_not_a_network_reference(layers, tmp_path) -> None:
    """A tower called 'url(https://…)' is data, not a style sheet: the map is written."""
    from telcoplan.maps import build_map, save_map
    from telcoplan.maps._assets import external_references

    towers = layers["towers"].copy()
    towers["name"] = "Trạm url(https://example.org/logo.png)"
    path = save_map(build_map(areas=layers["areas"], towers=towers), tmp_path / "m.html")
    html = path.read_text(encoding="utf-8")
    assert "example.org" in html
    assert external_references(html) == []
    # while a real style-sheet reference is still caught
    assert external_references('<style>a { background: url("https://x.org/i.png") }</style>')
