"""The map reads right at a glance (issue 15): the summary's totals reconcile, POI tooltips
compare like with like, the basemap says when it is off, proposed sites show what they are.
The demo map in Chromium (study area clear of the panels at 1,400 × 900) is in
``test_demo_pages.py``."""

from __future__ import annotations

import json
import re
from pathlib import Path

import geopandas as gpd
import pytest

from telcoplan.maps import build_map, save_map
from telcoplan.maps._builder import summary_box
from telcoplan.maps._style import site_classes
from telcoplan.maps.interactive import render_map

from .conftest import XSS, json_unescape

folium = pytest.importorskip("folium")


def test_summary_box_reconciles_the_persons_not_covered() -> None:
    summary = {
        "population_total": 1_134_310.0,
        "coverage": {"any": {"population_covered": 1_094_612.0, "population_pct": 96.5}},
        "gaps": {
            "count": 10,
            "population": 39_431.6,
            "not_covered": {
                "population": 39_698.0,
                "in_gaps": {"count": 10, "population": 39_431.6},
            },
        },
    }
    box = summary_box("Plan", summary)
    assert "39,698 persons = 39,432 in 10 gaps + 266 scattered" in box
    assert "96.5 % of the study area's population" in box
    assert "1,134,310 persons" in box
    # an older summary: the same relation from its totals
    del summary["gaps"]["not_covered"]
    assert "39,698 persons = 39,432 in 10 gaps + 266 scattered" in summary_box("Plan", summary)
    # the title and the banner stay when the panel is closed: only the figures fold away
    box = summary_box(XSS, {"synthetic": True, "population_total": 5})
    assert box.index("tp-synthetic") < box.index('class="tp-body"')
    assert XSS not in box


def test_poi_tooltip_states_level_requirement_and_margin_in_one_metric(layers: dict) -> None:
    pois = layers["pois"].assign(
        level_operator=["Viettel", "VinaPhone", None],
        level_technology=["4G", "4G", None],
        level_metric=["RSRP", "RSRP", None],
        level_dbm=[-90.0, -109.7, float("nan")],
        required_level_dbm=[-95.0, -90.0, -95.0],
        margin_db=[5.0, -19.7, float("nan")],
    )
    page = json_unescape(render_map(build_map(areas=layers["areas"], pois=pois)))
    assert "NOT served: RSRP -109.7 dBm, required -90.0 dBm (margin -19.7 dB; VinaPhone 4G)" in page
    assert "served: RSRP -90.0 dBm, required -95.0 dBm (margin +5.0 dB; Viettel 4G)" in page
    assert "service unknown: no signal" in page


def test_basemap_choice_says_when_tiles_are_off(layers: dict) -> None:
    off = render_map(build_map(areas=layers["areas"]))
    assert json.dumps("Basemap: off. This map is offline: it draws no background tiles.") in off
    assert "L.tileLayer(" not in off
    on = render_map(build_map(areas=layers["areas"], tiles="osm"))
    base = re.search(r"base_layers\s*:\s*\{(.*?)\}", on, re.S).group(1)
    names = re.findall(r'"([^"]+)"\s*:', base)
    assert names == ["OpenStreetMap (online)", "No basemap (offline)"]
    assert "Basemap: OpenStreetMap, loaded from the internet" in on
    custom = render_map(
        build_map(areas=layers["areas"], tiles="https://tiles.example.org/{z}/{x}/{y}.png")
    )
    assert "tiles.example.org (online)" in custom


def test_proposed_sites_are_classed_by_what_the_plan_builds() -> None:
    sites = gpd.GeoDataFrame(
        {
            "kind": ["existing_tower", "rooftop", "greenfield", "co_located", "rooftop"],
            "new_build": [False, True, True, None, None],
            "tenants": [2, 1, 3, 1, 1],
        },
        geometry=gpd.points_from_xy(range(5), range(5)),
        crs="EPSG:32649",
    )
    assert site_classes(sites) == ["co-located", "new", "shared", "co-located", "rooftop"]
    assert site_classes(sites.drop(columns="new_build")) == [
        "existing_tower",
        "rooftop",
        "greenfield",
        "co-located",
        "rooftop",
    ]


@pytest.mark.browser
def test_offline_tiles_turn_the_basemap_note_into_a_warning(
    open_map, layers: dict, tmp_path: Path
) -> None:
    """With tiles but no network (every request outside the file is refused), the layer list
    says so plainly, and the map still works."""
    path = save_map(build_map(areas=layers["areas"], tiles="osm"), tmp_path / "map.html")
    rec = open_map(path, width=1600, height=900)
    page = rec.page
    note = page.locator("#tp-layers .tp-basemap")
    page.wait_for_function(
        "() => document.querySelector('#tp-layers .tp-basemap').classList.contains('tp-warn')"
    )
    assert note.inner_text().startswith("Basemap: the tiles could not be loaded (offline?)")
    assert any("tile.openstreetmap.org" in url for url in rec.blocked)
    assert rec.page_errors == []
    assert rec.dialogs == []
