"""Urban/rural split of the coverage summary (and the gaps summary), against figures by hand.

The coverage masks are given (``compute_coverage`` is replaced by a stub returning them), so
every expected number below is a count of cells times persons per cell, done by hand.
"""

from __future__ import annotations

import json

import geopandas as gpd
import numpy as np
import pytest
import yaml
from shapely.geometry import LineString, Point, box

import telcoplan.coverage.analysis
from telcoplan.coverage.analysis import CoverageResult
from telcoplan.coverage.thresholds import Thresholds
from telcoplan.gis.grid import GridSpec
from telcoplan.gis.raster import write_raster
from telcoplan.gis.vector import write_vector
from telcoplan.pipeline import read_plan, run_plan
from tests.conftest import UTM49, X0, Y0

OPERATORS = ("A", "B", "C")


def _masks(shape: tuple[int, int]) -> np.ndarray:
    """Coverage of A, B, C on the 10 x 10 grid (row 0 = north, column 0 = west).

    A: the Town's northern half (rows 0–4, columns 0–4).
    B: the Town's south-west (rows 5–9, columns 0–1), the Village's columns 5–6 (rows 0–4),
       and the block outside both areas (rows 5–9, columns 5–9), which must not count.
    C: the Town's top row (row 0, columns 0–4, inside A's coverage) and the Village's
       rows 0–2, columns 6–9 (column 6 overlaps B).
    """
    cov = np.zeros((len(OPERATORS), *shape), dtype=bool)
    cov[0, 0:5, 0:5] = True
    cov[1, 5:10, 0:2] = True
    cov[1, 0:5, 5:7] = True
    cov[1, 5:10, 5:10] = True
    cov[2, 0:1, 0:5] = True
    cov[2, 0:3, 6:10] = True
    return cov


def _stub_coverage(towers, grid, **_kw):
    covered = _masks(grid.shape)
    n = len(OPERATORS)
    return CoverageResult(
        grid=grid,
        operators=OPERATORS,
        power_dbm=np.where(covered, -80.0, np.nan).astype(np.float32),
        margin_db=np.where(covered, 5.0, -20.0).astype(np.float32),
        server=np.where(covered, np.arange(n)[:, None, None], -1).astype(np.int32),
        covered=covered,
        best_technology=np.where(covered.any(axis=0), 2, -1).astype(np.int8),
        site_ids=np.array(["a1", "b1", "c1"], dtype=object),
        thresholds=Thresholds(),
    )


@pytest.fixture
def town_and_village(tmp_path, monkeypatch):
    """Town (urban, west half) and Village (rural, north-east quadrant) on a 10 x 10 grid of 100 m.

    Persons per cell: Town north (rows 0–4) 10, Town south (rows 5–9) 30, Village 20, the
    south-east quadrant (outside both areas) 8. So Town 250 + 750 = 1000, Village 500,
    outside 200, raster total 1700. One fiber cable runs north–south at x = X0 + 50 m.
    """
    inputs = tmp_path / "inputs"
    areas = gpd.GeoDataFrame(
        {"name": ["Town", "Village"], "urban": [True, False]},
        geometry=[box(X0, Y0, X0 + 500, Y0 + 1000), box(X0 + 500, Y0 + 500, X0 + 1000, Y0 + 1000)],
        crs=UTM49,
    )
    towers = gpd.GeoDataFrame(
        {
            "site_id": ["a1", "b1", "c1"],
            "operator": list(OPERATORS),
            "technology": ["4G"] * 3,
            "frequency_mhz": [1800.0] * 3,
            "height_m": [30.0] * 3,
            "eirp_dbm": [60.0] * 3,
        },
        geometry=[Point(X0 + 250, Y0 + 750), Point(X0 + 150, Y0 + 250), Point(X0 + 850, Y0 + 950)],
        crs=UTM49,
    )
    fiber = gpd.GeoDataFrame(
        {"fiber_id": ["f1"], "operator": ["A"]},
        geometry=[LineString([(X0 + 50, Y0), (X0 + 50, Y0 + 1000)])],
        crs=UTM49,
    )
    pop = np.zeros((10, 10))
    pop[0:5, 0:5] = 10.0
    pop[5:10, 0:5] = 30.0
    pop[0:5, 5:10] = 20.0
    pop[5:10, 5:10] = 8.0
    write_vector(inputs / "areas.gpkg", areas)
    write_vector(inputs / "towers.csv", towers)
    write_vector(inputs / "fiber.geojson", fiber)
    write_raster(
        inputs / "population.tif",
        pop,
        GridSpec.from_bounds((X0, Y0, X0 + 1000, Y0 + 1000), 100.0, UTM49),
    )
    doc = {
        "name": "town and village",
        "resolution_m": 100,
        "layers": {
            "areas": "inputs/areas.gpkg",
            "towers": "inputs/towers.csv",
            "fiber": "inputs/fiber.geojson",
            "population": "inputs/population.tif",
        },
        "stages": {"map": False},
    }
    path = tmp_path / "plan.yml"
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    monkeypatch.setattr(telcoplan.coverage.analysis, "compute_coverage", _stub_coverage)
    return path


def test_urban_rural_split_by_hand(town_and_village, tmp_path):
    out = tmp_path / "out"
    run_plan(read_plan(town_and_village), out)
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    ur = summary["coverage"]["urban_rural"]
    # Urban = Town (1000 persons). A: rows 0-4 = 25 cells x 10 = 250. B: rows 5-9, cols 0-1 =
    # 10 cells x 30 = 300. C: row 0 = 5 cells x 10 = 50 (inside A). Any: 250 + 300 = 550.
    # Best single: B (300), although A covers more cells.
    assert ur["urban"] == {
        "population": 1000.0,
        "covered_any": 550.0,
        "any": {"population_covered": 550.0, "population_pct": 55.0},
        "best_single_operator": {
            "operator": "B",
            "population_covered": 300.0,
            "population_pct": 30.0,
        },
        "operators": {
            "A": {"population_covered": 250.0, "population_pct": 25.0},
            "B": {"population_covered": 300.0, "population_pct": 30.0},
            "C": {"population_covered": 50.0, "population_pct": 5.0},
        },
    }
    # Rural = Village (500 persons, 20 per cell). A: 0. B: cols 5-6, rows 0-4 = 10 cells = 200
    # (its cells outside the areas do not count). C: rows 0-2, cols 6-9 = 12 cells = 240.
    # Any: 10 + 12 - 3 shared cells (col 6, rows 0-2) = 19 cells = 380. Best single: C (240),
    # although B is the best single operator nationally (500 vs 290).
    assert ur["rural"] == {
        "population": 500.0,
        "covered_any": 380.0,
        "any": {"population_covered": 380.0, "population_pct": 76.0},
        "best_single_operator": {
            "operator": "C",
            "population_covered": 240.0,
            "population_pct": 48.0,
        },
        "operators": {
            "A": {"population_covered": 0.0, "population_pct": 0.0},
            "B": {"population_covered": 200.0, "population_pct": 40.0},
            "C": {"population_covered": 240.0, "population_pct": 48.0},
        },
    }
    cov = summary["coverage"]
    assert cov["best_single_operator"]["operator"] == "B"
    assert cov["B"]["population_covered"] == 500.0
    assert cov["any"]["population_covered"] == 930.0
    # population conserved per area; areas + outside (200) = raster total (1700)
    areas = {a["name"]: a for a in cov["areas"]}
    assert (areas["Town"]["covered_any"], areas["Town"]["uncovered_any"]) == (550.0, 450.0)
    assert (areas["Village"]["covered_any"], areas["Village"]["uncovered_any"]) == (380.0, 120.0)
    assert summary["population_outside_areas"] == 200.0
    assert summary["population_total"] == 1700.0
    # the report still reads the split
    html = next(out.glob("*.html")).read_text(encoding="utf-8")
    assert "Urban and rural areas" in html
    table = html.split("Urban and rural areas", 1)[1].split("</table>", 1)[0]
    assert "Best single operator" in table
    assert "B (30.0 %)" in table  # urban: B, although A covers more cells
    assert "C (48.0 %)" in table  # rural: C
    assert "25.0 %" in table  # A's urban share, per operator


def test_no_split_without_urban_column(town_and_village, tmp_path):
    areas = gpd.read_file(tmp_path / "inputs" / "areas.gpkg").drop(columns="urban")
    write_vector(tmp_path / "inputs" / "areas.gpkg", areas, overwrite=True)
    summary = run_plan(read_plan(town_and_village), tmp_path / "out")
    assert "urban_rural" not in summary["coverage"]


def test_largest_gaps_list_fiber_distance(town_and_village, tmp_path):
    """Uncovered populated cells form two gaps; distances are edge to edge, worked out by hand.

    Gap 1: Town rows 5–9, columns 2–4 (x 200–500 m, y 0–500 m): 15 cells x 30 = 450 persons;
    nearest tower b1 at (150, 250): 50 m; fiber at x = 50: 150 m. Gap 2: Village rows 3–4,
    columns 7–9 (x 700–1000, y 500–700): 6 cells x 20 = 120; nearest tower c1 at (850, 950):
    250 m; fiber: 650 m.
    """
    summary = run_plan(read_plan(town_and_village), tmp_path / "out")
    largest = summary["gaps"]["largest"]
    assert largest == [
        {
            "gap_id": 1,
            "population": 450.0,
            "area_km2": 0.15,
            "dist_tower_m": 50.0,
            "areas": ["Town"],  # the gap lies in Town alone
            "dist_fiber_m": 150.0,
        },
        {
            "gap_id": 2,
            "population": 120.0,
            "area_km2": 0.06,
            "dist_tower_m": 250.0,
            "areas": ["Village"],
            "dist_fiber_m": 650.0,
        },
    ]
