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
