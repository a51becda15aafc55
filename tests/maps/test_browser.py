"""The saved map in headless Chromium with the network blocked (playwright, sync API).

Skipped with TELCOPLAN_SKIP_BROWSER=1, or when /usr/bin/chromium is missing outside CI; in CI
(env CI set) a missing browser is a failure.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from telcoplan.maps import build_map, save_map
from telcoplan.maps._web import esc

from .conftest import EXPECTED_LAYERS, ODD_OP, XSS

pytestmark = pytest.mark.browser

#: JS: number of leaf features (paths, markers, image overlays) of an overlay, clustered or not.
COUNT_JS = """(name) => {
  const walk = (l) => {
    if (window.L.MarkerClusterGroup && l instanceof L.MarkerClusterGroup) return l.getLayers().length;
    if (l.getLayers) return l.getLayers().reduce((n, c) => n + walk(c), 0);
    return 1;
  };
  return walk(window.telcoplan.overlays[name]);
}"""
#: JS: every leaf layer of the map's overlays.
LEAVES_JS = """() => {
  const out = [];
  const walk = (l) => {
    if (window.L.MarkerClusterGroup && l instanceof L.MarkerClusterGroup) { out.push(...l.getLayers()); return; }
    if (l.getLayers) { l.getLayers().forEach(walk); return; }
    out.push(l);
  };
  Object.values(window.telcoplan.overlays).forEach(walk);
  return out;
}"""


@pytest.fixture
def map_file(layers: dict, tmp_path: Path) -> Path:
    """The fixture map, saved offline (tiles='none')."""
    return save_map(build_map(**layers, title=f"Plan {XSS}"), tmp_path / "map.html")


def _overlay_labels(page) -> list[str]:
    return [
        t.strip() for t in page.locator(".leaflet-control-layers-overlays label").all_inner_texts()
    ]


def _open_panel(page, name: str) -> None:
    """Open the ``legend``, ``layers`` or ``summary`` panel by its title (they start closed on
    small windows)."""
    panel = page.locator(f"#tp-{name}")
    if "tp-closed" in (panel.get_attribute("class") or "").split():
        panel.locator(".tp-toggle").first.click()
    assert "tp-closed" not in (panel.get_attribute("class") or "").split()


def _checkbox(page, name: str):
    _open_panel(page, "layers")
    return (
        page.locator(".leaflet-control-layers-overlays label")
        .filter(has_text=name)
        .locator("input")
    )


def _pane_paths(page, pane: str) -> int:
    return page.locator(f".leaflet-{pane}-pane path").count()


def test_opens_offline_without_errors(open_map, map_file: Path) -> None:
    rec = open_map(map_file)
    rec.page.wait_for_timeout(300)
    assert rec.problems() == []
    assert rec.blocked == []  # the page asks for nothing outside itself
    assert rec.page.title() == f"Plan {XSS}"  # shown as text


def test_layer_control_lists_the_layers(open_map, map_file: Path) -> None:
    rec = open_map(map_file)
    assert _overlay_labels(rec.page) == EXPECTED_LAYERS  # escaped names display as written
    keys = rec.page.evaluate("() => window.telcoplan.keys")
    assert keys["towers:Viettel"] == "Towers – Viettel".replace("–", "\u2013")
    _open_panel(rec.page, "legend")
    legend = rec.page.locator(".tp-legend").inner_text()
    assert ODD_OP in legend
    assert rec.page.locator(".tp-legend b").count() == 0  # the <b> of the name is text


def test_feature_counts(open_map, map_file: Path) -> None:
    rec = open_map(map_file)
    page = rec.page
    # overlays are registered under their (HTML-escaped) layer-control labels
    counts = {name: page.evaluate(COUNT_JS, esc(name)) for name in EXPECTED_LAYERS}
    assert counts == {
        "Areas – coverage %": 2,
        "Coverage – any operator": 1,
        f"Coverage – {ODD_OP}": 1,
        "Coverage – Viettel": 1,
        "Coverage – VinaPhone": 1,
        "Coverage gaps": 2,
        "Signal – Viettel (dBm)": 1,
        f"Signal – {ODD_OP} (dBm)": 1,
        "Roads": 3,
        "Existing fiber": 2,
        "Backbone – joint plan": 4,
        "Backbone – separate: Viettel": 1,
        "Points of interest": 3,
        f"Towers – {ODD_OP}": 1,
        "Towers – Viettel": 3,
        "Towers – VinaPhone": 1,
        "Proposed sites": 3,
    }
    # drawn at start: 2 areas; coverage "any" + 2 gaps; fiber 2 + joint backbone 4 (roads and
    # the separate plans hidden); 3 POIs + 5 towers (unclustered at this zoom) + 3 sites
    assert page.evaluate("() => window.telcoplan.map.getZoom()") >= 15
    assert _pane_paths(page, "tpAreas") == 2
    assert _pane_paths(page, "tpPolygons") == 3
    assert _pane_paths(page, "overlay") == 6
    assert _pane_paths(page, "tpPoints") == 11


def test_toggling_a_layer_hides_its_features(open_map, map_file: Path) -> None:
    rec = open_map(map_file)
    page = rec.page
    gaps = _checkbox(page, "Coverage gaps")
    assert gaps.is_checked()
    gaps.uncheck()
    assert _pane_paths(page, "tpPolygons") == 1
    assert not page.evaluate("() => telcoplan.map.hasLayer(telcoplan.overlays['Coverage gaps'])")
    gaps.check()
    assert _pane_paths(page, "tpPolygons") == 3
    towers = _checkbox(page, "Towers – Viettel")
    towers.uncheck()
    assert _pane_paths(page, "tpPoints") == 8
    roads = _checkbox(page, "Roads")
    assert not roads.is_checked()
    roads.check()
    assert _pane_paths(page, "overlay") == 9
    assert rec.problems() == []


def test_signal_overlay_draws_a_non_blank_image(open_map, map_file: Path) -> None:
    rec = open_map(map_file)
    page = rec.page
    _open_panel(page, "layers")
    before = page.screenshot()
    _checkbox(page, "Signal – Viettel (dBm)").check()
    img = page.locator(".leaflet-tpSignal-pane img")
    assert img.count() == 1
    page.wait_for_function(
        "() => { const i = document.querySelector('.leaflet-tpSignal-pane img');"
        " return i && i.complete && i.naturalWidth > 0; }"
    )
    size = page.evaluate(
        "() => { const i = document.querySelector('.leaflet-tpSignal-pane img');"
        " return [i.naturalWidth, i.naturalHeight]; }"
    )
    assert min(size) >= 8
    after = page.screenshot()
    assert before != after
    import io

    from PIL import Image

    pixels = np.asarray(Image.open(io.BytesIO(after)).convert("RGB")).reshape(-1, 3)
    assert len(np.unique(pixels, axis=0)) > 200  # a colour ramp, not a blank canvas
    # the decoded overlay itself: almost every cell has a signal in the fixture (a ramp from
    # -125 dBm in the north row to -45 dBm in the south), so the image is mostly opaque, and
    # its north and south ends have different colours (a blank or flat image fails here)
    rgba = page.evaluate(
        """() => { const i = document.querySelector('.leaflet-tpSignal-pane img');
        const c = document.createElement('canvas'); c.width = i.naturalWidth; c.height = i.naturalHeight;
        const g = c.getContext('2d'); g.drawImage(i, 0, 0);
        return Array.from(g.getImageData(0, 0, c.width, c.height).data); }"""
    )
    img_px = np.asarray(rgba, dtype=float).reshape(size[1], size[0], 4)
    opaque = img_px[..., 3] > 0
    assert opaque.mean() > 0.8
    rows = [r for r in range(size[1]) if opaque[r].any()]
    north = img_px[rows[0]][opaque[rows[0]]][:, :3].mean(axis=0)
    south = img_px[rows[-1]][opaque[rows[-1]]][:, :3].mean(axis=0)
    assert np.abs(north - south).max() > 40
    assert rec.problems() == []


def test_injected_names_run_nothing_and_show_as_text(open_map, map_file: Path) -> None:
    rec = open_map(map_file)
    page = rec.page
    # open the popup and the tooltip of every feature, as a click and a hover would (popups
    # and tooltips are bound to each GeoJSON layer and get the feature from the event)
    opened = page.evaluate(
        f"""() => {{
      const map = window.telcoplan.map;
      const where = (l) => l.getLatLng ? l.getLatLng() : l.getBounds().getCenter();
      let popups = 0, tooltips = 0;
      map.on('popupopen', () => popups++);
      map.on('tooltipopen', () => tooltips++);
      for (const l of ({LEAVES_JS})()) {{
        if (!l.feature) continue;
        l.fire('click', {{latlng: where(l)}}, true);
        map.closePopup();
        l.fire('mouseover', {{latlng: where(l)}}, true);
        l.fire('mouseout', {{latlng: where(l)}}, true);
      }}
      return [popups, tooltips];
    }}"""
    )
    # features on the map at start: areas 2, coverage "any" 1, gaps 2, fiber 2, joint backbone
    # 4, POIs 3, towers 5 (in clusters), sites 3 = 22, each with a tooltip; all but the coverage
    # polygon have a popup (hidden layers open nothing)
    assert opened == [21, 22]
    # the script-injection tower: its popup and tooltip show the name as text
    page.wait_for_timeout(400)  # closed popups and tooltips fade out
    page.evaluate(
        f"""() => {{
      const t = ({LEAVES_JS})().find(
        l => l.feature && String(l.feature.properties.t0).startsWith('VT-2'));
      t.fire('click', {{latlng: t.getLatLng()}}, true);
      t.fire('mouseover', {{latlng: t.getLatLng()}}, true);
    }}"""
    )
    popup = page.locator(".leaflet-popup-content")
    assert popup.count() == 1
    text = popup.inner_text()
    assert XSS in text
    # "operator: Viettel" is shared by the layer's towers and written once: still shown
    assert re.search(r"operator\s+Viettel", text)
    assert re.search(r"operators at this location\s+1", text)
    assert popup.locator("img").count() == 0
    assert page.locator(".leaflet-tooltip").count() == 1
    assert f"VT-2 {XSS}" in page.locator(".leaflet-tooltip").inner_text()
    assert page.locator(".leaflet-container img:not(.leaflet-image-layer)").count() == 0
    page.wait_for_timeout(300)  # an <img src=x> would have failed to load by now
    assert rec.dialogs == []
    assert rec.problems() == []


@pytest.mark.slow
def test_demo_scenario_map_end_to_end(open_map, tmp_path: Path) -> None:
    """The synthetic Đà Nẵng scenario at 500 m: coverage, gaps and POI service computed by the
    coverage package, mapped, saved and opened offline."""
    import geopandas as gpd

    from telcoplan.coverage.analysis import compute_coverage, population_covered
    from telcoplan.coverage.gaps import find_gaps, poi_service
    from telcoplan.demo.danang import build_scenario
    from telcoplan.gis.polygonize import polygonize_mask

    sc = build_scenario(resolution_m=500.0)
    towers = sc.towers.set_index("site_id")
    cov = compute_coverage(towers, sc.grid, validity="ignore")
    areas = sc.areas.set_index("name", drop=False)
    table = population_covered(cov, sc.population, areas)
    areas = areas.assign(pct_any=100.0 * table["covered_any"] / table["population"])
    ops = [*cov.operators, "any"]
    masks = [*cov.covered, cov.covered_any]
    coverage = gpd.GeoDataFrame(
        {"operator": ops},
        geometry=[polygonize_mask(m, sc.grid) for m in masks],
        crs=sc.grid.crs,
    )
    m = build_map(
        areas=areas,
        towers=towers,
        coverage=coverage,
        gaps=find_gaps(cov, sc.population, towers=towers),
        pois=poi_service(cov, sc.pois.set_index("poi_id"), towers),
        fiber=sc.fiber.set_index("fiber_id"),
        roads=sc.roads,
        signal={op: (cov.power_dbm[i], sc.grid) for i, op in enumerate(cov.operators)},
        summary={"plan": "Đà Nẵng demo (synthetic data)", "synthetic": True},
        title="Đà Nẵng demo (synthetic data)",
    )
    path = save_map(m, tmp_path / "map.html")
    assert path.stat().st_size < 2_000_000
    rec = open_map(path, width=1400, height=900)
    page = rec.page
    labels = _overlay_labels(page)
    for op in cov.operators:
        assert f"Towers – {op}" in labels
        assert f"Signal – {op} (dBm)" in labels
    towers_drawn = sum(page.evaluate(COUNT_JS, f"Towers – {op}") for op in cov.operators)
    assert towers_drawn == len(towers) == 600
    assert page.evaluate(COUNT_JS, "Points of interest") == len(sc.pois)
    assert page.evaluate(COUNT_JS, "Areas – coverage %") == 7
    assert page.locator(".marker-cluster").count() > 0  # towers are clustered at city zoom
    _checkbox(page, f"Signal – {cov.operators[0]} (dBm)").check()
    page.wait_for_function(
        "() => { const i = document.querySelector('.leaflet-tpSignal-pane img');"
        " return i && i.complete && i.naturalWidth > 0; }"
    )
    assert "Hải Châu" in page.evaluate(
        "() => telcoplan.overlays['Areas – coverage %'].getLayers()[0].getLayers()"
        ".map(l => l.feature.properties.t0).join(' ')"
    )
    assert rec.problems() == []
    assert rec.blocked == []
