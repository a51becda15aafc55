"""Tiny hand-built plan layers for the map tests, and a headless Chromium for the browser tests.

Every layer is in UTM 49N (EPSG:32649) around central Đà Nẵng, a few hundred metres across, and
carries hostile text: a tower named ``<img src=x onerror=alert(1)>``, an operator whose name
has quotes, an ampersand and angle brackets, a column name that is an HTML tag.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pytest
from shapely.geometry import LineString, Point, box

from telcoplan.gis.grid import GridSpec

UTM49 = "EPSG:32649"
#: Lower-left corner of the fixtures (m, UTM 49N): central Đà Nẵng.
X0, Y0 = 205_000.0, 1_774_000.0
#: The script-injection tower name of the issue.
XSS = "<img src=x onerror=alert(1)>"
#: An operator name with quotes, an ampersand and a tag.
ODD_OP = """Mobi"Fone' & <b>Co</b>"""
#: A column name that is a tag.
ODD_COLUMN = "<svg onload=alert(2)>"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


def _towers() -> gpd.GeoDataFrame:
    """Five towers of three operators; VT-1 and ODD-1 share a location (a shared site),
    VNP-1 has ``tenants`` = 2; VT-2 carries the script-injection name."""
    return gpd.GeoDataFrame(
        {
            "operator": ["Viettel", "Viettel", "VinaPhone", ODD_OP, "Viettel"],
            "technology": ["4G", "4G", "4G", "3G", "5G"],
            "name": ["Trạm Hải Châu 1", XSS, "Trạm Thanh Khê", "Trạm Sơn Trà", "Trạm 5"],
            "tenants": [1, 1, 2, 1, 1],
            ODD_COLUMN: ["a", "b", "c", "d", "e"],
        },
        geometry=[
            Point(X0 + 100, Y0 + 100),
            Point(X0 + 400, Y0 + 600),
            Point(X0 + 700, Y0 + 300),
            Point(X0 + 100, Y0 + 100),
            Point(X0 + 800, Y0 + 800),
        ],
        index=gpd.pd.Index(["VT-1", "VT-2", "VNP-1", "ODD-1", "VT-3"], name="site_id"),
        crs=UTM49,
    )


def _wiggly(x0: float, y0: float, n: int = 200) -> LineString:
    """A line with many vertices a few cm off straight (simplification removes most)."""
    xs = np.linspace(x0, x0 + 800, n)
    ys = y0 + 0.05 * np.sin(np.arange(n))
    return LineString(np.column_stack([xs, ys]))


@pytest.fixture
def layers() -> dict[str, Any]:
    """Every layer :func:`telcoplan.maps.build_map` draws, hand-built (see the module docstring).

    Counts: 2 areas, 5 towers (Viettel 3, VinaPhone 1, the odd operator 1), 4 coverage rows
    (any + 3 operators), 2 gaps, 3 POIs (served, not served, unknown), 2 fiber cables,
    3 roads, 3 proposed sites (co-located, new, shared), 5 backbone links (joint plan 4 —
    new, reused, ring, leased —, separate plan of Viettel 1), signal rasters of 2 operators
    on a 10 x 10 grid of 100 m cells.
    """
    areas = gpd.GeoDataFrame(
        {
            "name": ["Hải Châu", XSS],
            "population": [201_522.0, 1_000.0],
            "pct_any": [99.9, 72.5],
        },
        geometry=[box(X0, Y0, X0 + 500, Y0 + 1000), box(X0 + 500, Y0, X0 + 1000, Y0 + 1000)],
        crs=UTM49,
    )
    ops = ["any", "Viettel", "VinaPhone", ODD_OP]
    coverage = gpd.GeoDataFrame(
        {
            "operator": ops,
            "population_covered": [200_000.0, 190_000.0, 150_000.0, 100_000.0],
            "population_pct": [98.7, 93.8, 74.1, 49.4],
            "area_km2": [0.9, 0.8, 0.5, 0.3],
        },
        geometry=[box(X0 + 10 * i, Y0 + 10 * i, X0 + 900 - 10 * i, Y0 + 900) for i in range(4)],
        crs=UTM49,
    )
    gaps = gpd.GeoDataFrame(
        {"population": [370.25, 12.0], "area_km2": [0.04, 0.01], "note": [XSS, "ok"]},
        geometry=[
            box(X0 + 900, Y0 + 900, X0 + 1000, Y0 + 1000),
            box(X0 + 900, Y0, X0 + 950, Y0 + 50),
        ],
        index=gpd.pd.Index([1, 2], name="gap_id"),
        crs=UTM49,
    )
    pois = gpd.GeoDataFrame(
        {
            "name": ["UBND phường Thạch Thang", XSS, "Trường THCS"],
            "category": ["ward_office", "clinic", "school"],
            "served": gpd.pd.array([True, False, None], dtype="boolean"),
        },
        geometry=[Point(X0 + 200, Y0 + 300), Point(X0 + 950, Y0 + 950), Point(X0 + 600, Y0 + 50)],
        index=gpd.pd.Index(["P1", "P2", "P3"], name="poi_id"),
        crs=UTM49,
    )
    fiber = gpd.GeoDataFrame(
        {"operator": ["Viettel", ODD_OP], "status": ["existing", "planned"]},
        geometry=[_wiggly(X0 + 100, Y0 + 150), _wiggly(X0 + 100, Y0 + 250)],
        index=gpd.pd.Index(["F1", "F2"], name="fiber_id"),
        crs=UTM49,
    )
    roads = gpd.GeoDataFrame(
        {"road_class": ["primary", "residential", "trunk"], "name": ["Bạch Đằng", XSS, "QL1A"]},
        geometry=[_wiggly(X0, Y0 + 400 + 100 * i) for i in range(3)],
        crs=UTM49,
    )
    sites = gpd.GeoDataFrame(
        {
            "kind": ["co-located", "new", "shared"],
            "operators": ["Viettel", "VinaPhone", f"Viettel;{ODD_OP}"],
        },
        geometry=[Point(X0 + 300, Y0 + 300), Point(X0 + 600, Y0 + 700), Point(X0 + 850, Y0 + 450)],
        index=gpd.pd.Index(["S1", "S2", "S3"], name="site"),
        crs=UTM49,
    )
    backbone = gpd.GeoDataFrame(
        {
            "plan": ["joint", "joint", "joint", "joint", "separate"],
            "operators": [
                f"Viettel;{ODD_OP}",
                "Viettel",
                "VinaPhone;Viettel",
                "VinaPhone",
                "Viettel",
            ],
            "length_m": [300.0, 1500.0, 250.0, 100.0, 300.0],
            "cost": [9000.0, 1500.0, 7500.0, 300.0, 9000.0],
            "status": ["new", "reused", "ring", "leased", "new"],
        },
        geometry=[
            LineString([(X0 + 100, Y0 + 100), (X0 + 400, Y0 + 100)]),
            LineString([(X0 + 400, Y0 + 100), (X0 + 400, Y0 + 600)]),
            LineString([(X0 + 400, Y0 + 600), (X0 + 700, Y0 + 300)]),
            LineString([(X0 + 700, Y0 + 300), (X0 + 800, Y0 + 300)]),
            LineString([(X0 + 100, Y0 + 100), (X0 + 100, Y0 + 400)]),
        ],
        crs=UTM49,
    )
    grid = GridSpec.from_bounds((X0, Y0, X0 + 1000, Y0 + 1000), 100.0, UTM49)
    ramp = np.linspace(-125.0, -45.0, 100, dtype=np.float32).reshape(10, 10)
    weak = ramp.copy()
    weak[:, :3] = np.nan
    signal = {"Viettel": (ramp, grid), ODD_OP: (weak, grid)}
    return {
        "areas": areas,
        "towers": _towers(),
        "coverage": coverage,
        "gaps": gaps,
        "pois": pois,
        "fiber": fiber,
        "roads": roads,
        "sites": sites,
        "backbone": backbone,
        "signal": signal,
    }


#: Layer names the fixture map lists in its layer control, in order.
EXPECTED_LAYERS = [
    "Areas – coverage %",
    "Coverage – any operator",
    f"Coverage – {ODD_OP}",
    "Coverage – Viettel",
    "Coverage – VinaPhone",
    "Coverage gaps",
    "Signal – Viettel (dBm)",
    f"Signal – {ODD_OP} (dBm)",
    "Roads",
    "Existing fiber",
    "Backbone – joint plan",
    "Backbone – separate: Viettel",
    "Points of interest",
    f"Towers – {ODD_OP}",
    "Towers – Viettel",
    "Towers – VinaPhone",
    "Proposed sites",
]


def json_unescape(text: str) -> str:
    """Undo the ``\\uXXXX`` escapes of folium's JSON output (what the page's JavaScript sees:
    ``\\u003c`` is ``<``)."""
    return re.sub(r"\\u([0-9a-fA-F]{4})", lambda m: chr(int(m.group(1), 16)), text)


# ------------------------------------------------------------------------------ browser


def _browser_unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(
            f"browser tests must run in CI but {reason}; install Debian's chromium "
            "(apt-get install -y chromium) and the test extra (pip install -e '.[test]'), "
            "or set TELCOPLAN_SKIP_BROWSER=1 to skip them deliberately",
            pytrace=False,
        )
    pytest.skip(f"{reason} (browser tests run in CI)")


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """Headless Debian Chromium driven by playwright (skipped with TELCOPLAN_SKIP_BROWSER=1;
    a missing chromium skips locally and fails in CI)."""
    if os.environ.get("TELCOPLAN_SKIP_BROWSER") == "1":
        pytest.skip("TELCOPLAN_SKIP_BROWSER=1")
    if not (CHROMIUM.exists() or shutil.which(str(CHROMIUM))):
        _browser_unavailable(f"{CHROMIUM} is missing")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _browser_unavailable("playwright is not installed")
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


class PageRecord:
    """A page with everything it reported: console errors, page errors, dialogs, and the
    requests that were blocked (anything not ``file:`` or ``data:``)."""

    def __init__(self, page: Any) -> None:
        self.page = page
        self.console_errors: list[str] = []
        self.page_errors: list[str] = []
        self.dialogs: list[str] = []
        self.blocked: list[str] = []

    def problems(self) -> list[str]:
        return [
            *(f"console: {m}" for m in self.console_errors),
            *(f"page error: {m}" for m in self.page_errors),
            *(f"dialog: {m}" for m in self.dialogs),
        ]


@pytest.fixture
def open_map(browser: Any) -> Iterator[Any]:
    """``open_map(path) -> PageRecord``: load a saved map with the network blocked."""
    contexts = []

    def _open(path: Path, *, width: int = 1200, height: int = 800) -> PageRecord:
        context = browser.new_context(viewport={"width": width, "height": height})
        contexts.append(context)
        page = context.new_page()
        rec = PageRecord(page)
        page.on(
            "console", lambda m: rec.console_errors.append(m.text) if m.type == "error" else None
        )
        page.on("pageerror", lambda e: rec.page_errors.append(str(e)))

        def on_dialog(dialog: Any) -> None:
            rec.dialogs.append(f"{dialog.type}: {dialog.message}")
            dialog.dismiss()

        page.on("dialog", on_dialog)

        def route(r: Any) -> None:
            url = r.request.url
            if url.startswith(("file:", "data:")):
                r.continue_()
            else:
                rec.blocked.append(url)
                r.abort()

        page.route("**/*", route)
        page.goto(Path(path).resolve().as_uri())
        page.wait_for_function("() => window.telcoplan && window.telcoplan.map")
        return rec

    yield _open
    for context in contexts:
        context.close()
