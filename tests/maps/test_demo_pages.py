"""What ``make demo`` produces: the plan's own map.html and report.html, opened offline in
headless Chromium (the demo pipeline at 500 m cells, every stage, as `telcoplan demo` runs it)."""

from __future__ import annotations

import json
from pathlib import Path

import geopandas as gpd
import pytest

from .test_browser import COUNT_JS, _checkbox, _overlay_labels

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory) -> Path:
    """``telcoplan demo`` at 500 m: the output folder of the plan."""
    from telcoplan.demo import write_demo
    from telcoplan.pipeline import read_plan, run_plan

    folder = tmp_path_factory.mktemp("demo-pages")
    run_plan(read_plan(write_demo(folder, resolution_m=500.0)), folder / "outputs")
    return folder / "outputs"


def test_demo_map_has_every_layer_and_no_error(open_map, demo_run: Path) -> None:
    summary = json.loads((demo_run / "summary.json").read_text(encoding="utf-8"))
    assert summary["map"]["file"] == "map.html"
    rec = open_map(demo_run / "map.html", width=1400, height=900)
    page = rec.page
    labels = _overlay_labels(page)
    ops = sorted(summary["backbone"]["share_proportional"])
    expected = [
        "Areas – coverage %",
        "Coverage – any operator",
        "Coverage gaps",
        "Roads",
        "Existing fiber",
        "Backbone – joint plan",
        "Backbone – ring plan",
        "Points of interest",
        *(f"Towers – {op}" for op in ops),
        *(f"Signal – {op} (dBm)" for op in ops),
        *(f"Backbone – separate: {op}" for op in ops),
    ]
    missing = [name for name in expected if name not in labels]
    assert missing == [], labels
    # feature counts match the plan's outputs
    links = gpd.read_file(demo_run / "backbone.gpkg", layer="links")
    for plan in ("joint", "ring"):
        drawn = page.evaluate(COUNT_JS, f"Backbone – {plan} plan")
        assert drawn == int((links["plan"] == plan).sum()) > 0, plan
    gaps = gpd.read_file(demo_run / "gaps.gpkg", layer="gaps")
    assert page.evaluate(COUNT_JS, "Coverage gaps") == len(gaps) == summary["gaps"]["count"]
    towers = sum(page.evaluate(COUNT_JS, f"Towers – {op}") for op in ops)
    assert towers == summary["layers"]["towers"]
    assert page.evaluate(COUNT_JS, "Areas – coverage %") == 7
    # a hidden layer is switched on and draws
    _checkbox(page, f"Backbone – separate: {ops[0]}").check()
    page.wait_for_timeout(200)
    assert rec.problems() == []
    assert rec.blocked == []


def test_demo_report_opens_offline(browser, demo_run: Path) -> None:
    context = browser.new_context()
    try:
        page = context.new_page()
        errors: list[str] = []
        blocked: list[str] = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))

        def route(r) -> None:
            if r.request.url.startswith(("file:", "data:")):
                r.continue_()
            else:
                blocked.append(r.request.url)
                r.abort()

        page.route("**/*", route)
        page.goto((demo_run / "report.html").resolve().as_uri())
        page.wait_for_load_state("load")
        for section in ("headline", "coverage", "areas", "gaps", "backbone", "provenance"):
            assert page.locator(f"section#{section}").count() == 1, section
        assert "Hải Châu" in page.locator("section#areas").inner_text()  # diacritics render
        # the embedded figure decoded into a real image
        size = page.evaluate(
            "() => { const i = document.querySelector('img'); return i && [i.complete, i.naturalWidth]; }"
        )
        assert size[0]
        assert size[1] > 100
        assert errors == []
        assert blocked == []
    finally:
        context.close()


# ---------------------------------------------------------------- issue 15: read at a glance
#: JS: a [[south, west], [north, east]] box in page pixels, placed by Leaflet.
SCREEN_BOX_JS = """(b) => {
  const m = window.telcoplan.map, c = m.getContainer().getBoundingClientRect();
  const nw = m.latLngToContainerPoint([b[1][0], b[0][1]]);
  const se = m.latLngToContainerPoint([b[0][0], b[1][1]]);
  return {left: c.left + nw.x, top: c.top + nw.y, right: c.left + se.x, bottom: c.top + se.y};
}"""
#: JS: the boxes of the panels (summary, legend, layer control) and of Leaflet's own controls.
PANEL_BOXES_JS = """() => Array.from(document.querySelectorAll(
    '#tp-summary, #tp-legend, .leaflet-control-layers, .leaflet-control-zoom, .tp-fit, '
    + '.leaflet-control-scale, .leaflet-control-attribution'))
  .map(e => { const r = e.getBoundingClientRect();
    return {name: e.id || e.className, left: r.left, top: r.top, right: r.right, bottom: r.bottom}; })
  .filter(r => r.right > r.left && r.bottom > r.top)"""
#: The map's background where nothing is drawn (CSS of the page).
BACKGROUND = (0xF2, 0xF1, 0xEC)


def _study_area(demo_run: Path) -> list[list[float]]:
    """The areas' bounds in degrees, from the coverage layer on disk (not from the page)."""
    west, south, east, north = (
        gpd.read_file(demo_run / "coverage.gpkg", layer="areas").to_crs("EPSG:4326").total_bounds
    )
    return [[float(south), float(west)], [float(north), float(east)]]


def _overlap(a: dict, b: dict) -> bool:
    return a["left"] < b["right"] and b["left"] < a["right"] and a["top"] < b["bottom"] and b["top"] < a["bottom"]  # fmt: skip


def _assert_clear(page, box: dict, width: int, height: int) -> list[dict]:
    """The study area's box lies inside the window and under no panel; returns the panels."""
    assert 0 <= box["left"] < box["right"] <= width, box
    assert 0 <= box["top"] < box["bottom"] <= height, box
    panels = page.evaluate(PANEL_BOXES_JS)
    names = " ".join(p["name"] for p in panels)
    for needed in ("tp-summary", "tp-legend", "tp-layers", "leaflet-control-zoom"):
        assert needed in names, names
    covered = [p for p in panels if _overlap(box, p)]
    assert covered == [], (box, covered)
    return panels


def _closed(page, name: str) -> bool:
    return "tp-closed" in (page.locator(f"#tp-{name}").get_attribute("class") or "").split()


def _shot(page, tmp_path: Path, name: str) -> Path:
    """A screenshot, also copied to $TELCOPLAN_SCREENSHOTS when set (to look at)."""
    import os
    import shutil

    path = tmp_path / name
    page.screenshot(path=str(path))
    if os.environ.get("TELCOPLAN_SCREENSHOTS"):
        target = Path(os.environ["TELCOPLAN_SCREENSHOTS"])
        target.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, target / name)
    return path


def test_demo_map_at_1400x900_shows_the_whole_study_area_clear_of_panels(
    open_map, demo_run: Path, tmp_path: Path
) -> None:
    import numpy as np
    from PIL import Image

    rec = open_map(demo_run / "map.html", width=1400, height=900)
    page = rec.page
    # a small window: legend and layer list start closed, their titles stay
    assert _closed(page, "legend")
    assert _closed(page, "layers")
    assert page.locator("#tp-legend .tp-toggle").inner_text() == "Legend"
    assert page.locator("#tp-layers .tp-toggle").inner_text() == "Layers"
    box = page.evaluate(SCREEN_BOX_JS, _study_area(demo_run))
    _assert_clear(page, box, 1400, 900)
    # the study area fills the free part of the window: at least half its width or height
    assert box["right"] - box["left"] > 700 or box["bottom"] - box["top"] > 450
    shot = _shot(page, tmp_path, "demo-map-1400x900.png")
    pixels = np.asarray(Image.open(shot).convert("RGB"))
    assert pixels.shape == (900, 1400, 3)
    inside = pixels[int(box["top"]) : int(box["bottom"]), int(box["left"]) : int(box["right"])]
    drawn = np.abs(inside.astype(int) - BACKGROUND).sum(axis=2) > 30
    assert drawn.mean() > 0.4  # the city is drawn there, not the empty background
    # the legend opens and closes by its title; open, it shows the classes
    page.locator("#tp-legend .tp-toggle").click()
    assert not _closed(page, "legend")
    assert "Areas: population covered (any operator)" in page.locator("#tp-legend").inner_text()
    legend = page.locator("#tp-legend").bounding_box()
    summary = page.locator("#tp-summary").bounding_box()
    assert legend["y"] >= summary["y"] + summary["height"]  # it scrolls, under the summary
    page.locator("#tp-legend .tp-toggle").click()
    assert _closed(page, "legend")
    # the layer list says plainly that the basemap is off (offline)
    page.locator("#tp-layers .tp-toggle").click()
    note = page.locator("#tp-layers .tp-basemap")
    assert note.is_visible()
    assert note.inner_text() == "Basemap: off. This map is offline: it draws no background tiles."
    page.locator("#tp-layers .tp-toggle").click()
    # after zooming in, the fit button brings the whole study area back, clear of the panels
    page.evaluate("() => window.telcoplan.map.setView(window.telcoplan.map.getCenter(), 15)")
    page.locator(".tp-fit a").click()
    _assert_clear(page, page.evaluate(SCREEN_BOX_JS, _study_area(demo_run)), 1400, 900)
    assert rec.problems() == []
    assert rec.blocked == []


def test_demo_map_on_a_large_window_keeps_the_panels_open_beside_the_area(
    open_map, demo_run: Path, tmp_path: Path
) -> None:
    rec = open_map(demo_run / "map.html", width=1920, height=1080)
    page = rec.page
    assert not _closed(page, "legend")
    assert not _closed(page, "layers")
    _assert_clear(page, page.evaluate(SCREEN_BOX_JS, _study_area(demo_run)), 1920, 1080)
    _shot(page, tmp_path, "demo-map-1920x1080.png")
    assert rec.problems() == []


def _unserved_rows(page) -> list[dict[str, str]]:
    return page.evaluate(
        """() => { const t = document.querySelector('table.unserved-pois');
        if (!t) return [];
        const head = Array.from(t.querySelectorAll('thead th')).map(c => c.innerText.trim());
        return Array.from(t.querySelectorAll('tbody tr')).map(r => Object.fromEntries(
          Array.from(r.cells).map((c, i) => [head[i], c.innerText.trim()]))); }"""
    )


def _check_like_with_like(rows: list[dict[str, str]]) -> int:
    """Each row's best level and requirement are in one metric, the margin their difference;
    returns the number of rows with a signal."""
    import re

    with_signal = 0
    for row in rows:
        level = re.fullmatch(r"(-?[\d,.]+) dBm (RxLev|RSCP|RSRP|SS-RSRP)", row["Best level"])
        if level is None:
            assert row["Best level"] == "—"
            assert row["Serving operator (technology)"] == "no signal"
            continue
        with_signal += 1
        need = re.fullmatch(r"(-?[\d,.]+) dBm (\S+)", row["Required (same metric)"])
        assert need.group(2) == level.group(2), row
        margin = float(row["Margin (best − required)"].removesuffix(" dB"))
        assert margin == pytest.approx(float(level.group(1)) - float(need.group(1)), abs=0.051)
        assert margin < 0  # unserved
        tech = re.search(r"\((\dG)\)$", row["Serving operator (technology)"]).group(1)
        assert {"2G": "RxLev", "3G": "RSCP", "4G": "RSRP", "5G": "SS-RSRP"}[tech] == level.group(2)
    return with_signal


def test_unserved_pois_read_in_one_metric_in_chromium(browser, demo_run: Path, tmp_path) -> None:
    from telcoplan.report.html import render_report
    from tests.report.conftest import build_summary
    from tests.report.test_glance import _pois

    context = browser.new_context(viewport={"width": 1400, "height": 900})
    try:
        page = context.new_page()
        page.goto((demo_run / "report.html").resolve().as_uri())
        rows = _unserved_rows(page)
        pois = gpd.read_file(demo_run / "gaps.gpkg", layer="pois")
        assert len(rows) == int((~pois["served"]).sum()) > 0
        assert _check_like_with_like(rows) > 0
        # a 4G POI whose total power (-78.9 dBm) is above its requirement (-90 dBm) reads as
        # what it is: RSRP -109.7 dBm, 19.7 dB short
        hand = tmp_path / "report.html"
        hand.write_text(render_report(build_summary(), pois=_pois()), encoding="utf-8")
        page.goto(hand.resolve().as_uri())
        rows = _unserved_rows(page)
        assert _check_like_with_like(rows) == 2
        p2 = next(r for r in rows if r["POI"] == "P-2")
        assert (p2["Best level"], p2["Required (same metric)"], p2["Margin (best − required)"]) == ("-109.7 dBm RSRP", "-90.0 dBm RSRP", "-19.7 dB")  # fmt: skip
        assert p2["Total received power"] == "-78.9 dBm"
        # the table fits the page: no cell of it spills past the body's width
        spill = page.evaluate(
            "() => document.querySelector('table.unserved-pois').getBoundingClientRect().right"
            " <= document.documentElement.clientWidth"
        )
        assert spill
    finally:
        context.close()
