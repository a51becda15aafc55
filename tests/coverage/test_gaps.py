"""Gaps, single-operator areas, POI service."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pytest
from shapely.geometry import LineString, Point

from telcoplan.coverage.analysis import compute_coverage
from telcoplan.coverage.gaps import find_gaps, poi_service, single_operator_areas
from telcoplan.gis.grid import GridSpec
from telcoplan.gis.polygonize import polygonize_mask
from tests.conftest import UTM49, X0, Y0


@pytest.fixture
def scene():
    """3 km x 2 km of 50 m cells; A covers a disc in the west, B one in the centre; people everywhere."""
    grid = GridSpec.from_bounds((X0, Y0, X0 + 3000, Y0 + 2000), 50.0, UTM49)
    towers = gpd.GeoDataFrame(
        {
            "operator": ["A", "B"],
            "technology": ["4G", "4G"],
            "frequency_mhz": [900.0, 900.0],
            "height_m": [30.0, 30.0],
            "eirp_dbm": [50.0, 50.0],
        },
        geometry=[Point(X0 + 600, Y0 + 1000), Point(X0 + 1300, Y0 + 1000)],
        index=["a", "b"],
        crs=UTM49,
    )
    cov = compute_coverage(towers, grid, model="hata", max_radius_km=5, validity="ignore")
    pop = np.ones(grid.shape)
    pop[:, 50:52] = 0.0  # an empty strip splits the uncovered east into two regions
    return grid, towers, cov, pop


def test_gaps_partition_uncovered_population(scene):
    grid, towers, cov, pop = scene
    fiber = gpd.GeoDataFrame(
        {"fiber_id": ["f"], "operator": ["A"]},
        geometry=[LineString([(X0 + 2900, Y0), (X0 + 2900, Y0 + 2000)])],
        crs=UTM49,
    )
    gaps = find_gaps(cov, pop, towers=towers, fiber=fiber)
    uncovered_pop = pop[~cov.covered_any].sum()
    assert gaps["population"].sum() == pytest.approx(uncovered_pop)
    assert list(gaps["population"]) == sorted(gaps["population"], reverse=True)
    assert list(gaps.index) == list(range(1, len(gaps) + 1))
    covered = polygonize_mask(cov.covered_any, grid)
    for g in gaps.geometry:  # gaps never overlap coverage
        assert g.intersection(covered).area == pytest.approx(0.0, abs=1e-6)
    # the empty strip separates the far east gap; distance to the fiber at x = X0+2900 is 0 for it
    assert (gaps["dist_fiber_m"] == 0).sum() >= 1
    assert (gaps["dist_tower_m"] > 0).all()
    assert gaps["area_km2"].sum() == pytest.approx(((~cov.covered_any) & (pop > 0)).sum() * 0.0025)


def test_min_population_filter(scene):
    _, _, cov, pop = scene
    all_gaps = find_gaps(cov, pop)
    big = find_gaps(cov, pop, min_population=all_gaps["population"].max())
    assert len(big) == 1
    assert big["population"].iloc[0] == all_gaps["population"].max()


def test_single_operator_areas(scene):
    _, _, cov, pop = scene
    single = single_operator_areas(cov, pop)
    only_a = cov.covered[0] & ~cov.covered[1]
    assert single.loc[single["operator"] == "A", "population"].iloc[0] == pytest.approx(
        pop[only_a].sum()
    )
    assert (single["population"] > 0).all()


def test_poi_service(scene):
    """p4-p7 stand in one cell, whose centre is 35.4 m from A's tower and 675.5 m from B's:
    Okumura-Hata (urban, 900 MHz, masts of 30 m, receiver 1.5 m) gives A's RSRP there
    50 − 114.3 − 30.8 = −56.1 dBm and B's −101.2 dBm (both above the 4G threshold, −105 dBm).
    A requirement is stated in RSRP: −60 dBm only A meets, −50 dBm neither (not served, though
    both operators cover the cell), −103 dBm both; without one, the threshold applies."""
    from telcoplan.coverage.propagation import path_loss

    grid, towers, cov, _ = scene
    at = Point(X0 + 620, Y0 + 1000)
    pois = gpd.GeoDataFrame(
        {
            "poi_id": ["p1", "p2", "p3", "p4", "p5", "p6", "p7"],
            "name": ["near A", "far east", "between", "strict", "too strict", "lenient", "none"],
            "category": ["school", "clinic", "ward_office", "school", "clinic", "school", "school"],
            "required_dbm": [np.nan, np.nan, np.nan, -60.0, -50.0, -103.0, np.nan],
        },
        geometry=[
            Point(X0 + 600, Y0 + 1010),
            Point(X0 + 2950, Y0 + 1000),
            Point(X0 + 950, Y0 + 1000),
            at,
            at,
            at,
            at,
        ],
        crs=UTM49,
    ).set_index("poi_id")
    out = poi_service(cov, pois, towers)
    assert out.loc["p1", "served"]
    assert out.loc["p1", "best_operator"] == "A"
    assert not out.loc["p2", "served"]
    assert out.loc["p3", "n_operators_ok"] == 2
    assert out.loc["p3", "operators_ok"] == "A;B"
    # the cell's power from Hata by hand (its centre: X0 + 625, Y0 + 975)
    r, c = grid.rowcol(np.array([at.x]), np.array([at.y]))
    assert (grid.x_centres()[c[0]], grid.y_centres()[r[0]]) == (X0 + 625, Y0 + 975)
    d_a, d_b = np.hypot(25.0, 25.0), np.hypot(675.0, 25.0)
    hata = {"freq_mhz": 900.0, "h_tx_m": 30.0, "h_rx_m": 1.5, "validity": "ignore"}
    power_a = 50.0 - float(path_loss("hata", distance_km=d_a / 1000, **hata))
    power_b = 50.0 - float(path_loss("hata", distance_km=d_b / 1000, **hata))
    rsrp = {"A": power_a - 10 * np.log10(1200), "B": power_b - 10 * np.log10(1200)}
    assert rsrp["A"] == pytest.approx(-56.06, abs=0.01)
    assert rsrp["B"] == pytest.approx(-101.19, abs=0.01)
    assert out.loc["p4", "best_operator"] == "A"
    assert out.loc["p4", "best_power_dbm"] == pytest.approx(power_a, abs=0.01)
    expected = {  # poi: (served, n_operators_ok, operators_ok)
        "p4": (True, 1, "A"),
        "p5": (False, 0, ""),
        "p6": (True, 2, "A;B"),
        "p7": (True, 2, "A;B"),
    }
    for poi, want in expected.items():
        got = out.loc[poi, ["served", "n_operators_ok", "operators_ok"]].tolist()
        assert got == list(want), poi
    assert list(out.index) == list(pois.index)
