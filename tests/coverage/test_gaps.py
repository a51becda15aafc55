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
    grid, towers, cov, _ = scene
    pois = gpd.GeoDataFrame(
        {
            "poi_id": ["p1", "p2", "p3", "p4"],
            "name": ["near A", "far east", "between", "strict"],
            "category": ["school", "clinic", "ward_office", "school"],
            "required_dbm": [np.nan, np.nan, np.nan, -60.0],
        },
        geometry=[
            Point(X0 + 600, Y0 + 1010),
            Point(X0 + 2950, Y0 + 1000),
            Point(X0 + 950, Y0 + 1000),
            Point(X0 + 620, Y0 + 1000),
        ],
        crs=UTM49,
    ).set_index("poi_id")
    out = poi_service(cov, pois, towers)
    assert out.loc["p1", "served"]
    assert out.loc["p1", "best_operator"] == "A"
    assert not out.loc["p2", "served"]
    assert out.loc["p3", "n_operators_ok"] == 2
    assert out.loc["p3", "operators_ok"] == "A;B"
    # RSRP -60 dBm is far above what 50 dBm EIRP gives 20 m away? check against the raster directly
    r, c = grid.rowcol(np.array([X0 + 620]), np.array([Y0 + 1000]))
    rsrp = cov.power_dbm[0][r[0], c[0]] - 10 * np.log10(1200)
    assert out.loc["p4", "served"] == bool(rsrp >= -60.0)
    assert list(out.index) == list(pois.index)
