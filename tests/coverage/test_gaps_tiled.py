"""Gaps and single-operator areas tile by tile (in-process and on a 2-worker Dask cluster) equal
the whole-grid results: the same gaps in the same order, exact cells and areas, persons to
1e-9 relative, the same polygons (topologically, and vertex for vertex once normalized)."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from shapely.geometry import LineString, Point

from telcoplan.coverage.analysis import compute_coverage
from telcoplan.coverage.gaps import find_gaps, gap_regions, single_operator_areas
from telcoplan.gis.grid import GridSpec
from tests.conftest import UTM49, X0, Y0


@pytest.fixture(scope="module")
def towns():
    """4 km x 3 km of 50 m cells, two operators' towers, and ~90 settlements of random shapes
    and sizes (persons per cell 0.5-60, non-integer) strewn over covered and uncovered land."""
    grid = GridSpec.from_bounds((X0, Y0, X0 + 4000, Y0 + 3000), 50.0, UTM49)
    towers = gpd.GeoDataFrame(
        {
            "operator": ["A", "A", "B"],
            "technology": ["4G", "4G", "3G"],
            "frequency_mhz": [900.0, 900.0, 2100.0],
            "height_m": [30.0, 25.0, 30.0],
            "eirp_dbm": [48.0, 45.0, 50.0],
        },
        geometry=[
            Point(X0 + 700, Y0 + 1500),
            Point(X0 + 3300, Y0 + 600),
            Point(X0 + 1700, Y0 + 1800),
        ],
        index=["a1", "a2", "b1"],
        crs=UTM49,
    )
    cov = compute_coverage(towers, grid, model="hata", max_radius_km=5, validity="ignore")
    rng = np.random.default_rng(42)
    h, w = grid.shape
    rr, cc = np.mgrid[0:h, 0:w]
    pop = np.zeros(grid.shape)
    for _ in range(90):
        r, c = rng.integers(0, h), rng.integers(0, w)
        a, b = rng.uniform(0.7, 4.0, size=2)
        blob = ((rr - r) / a) ** 2 + ((cc - c) / b) ** 2 < 1.0 + rng.random(grid.shape) * 0.8
        pop[blob] += rng.uniform(0.5, 60.0)
    pop[rng.random(grid.shape) < 0.02] = np.nan  # nodata cells count as unpopulated
    return grid, towers, cov, pop


def _assert_same_gaps(whole: gpd.GeoDataFrame, tiled: gpd.GeoDataFrame) -> None:
    assert list(tiled.columns) == list(whole.columns)
    pd.testing.assert_index_equal(tiled.index, whole.index)
    assert tiled.crs == whole.crs
    for col in ("rank", "cells", "area_km2"):
        np.testing.assert_array_equal(tiled[col].to_numpy(), whole[col].to_numpy())
        assert tiled[col].dtype == whole[col].dtype
    np.testing.assert_allclose(tiled["population"], whole["population"], rtol=1e-9, atol=0)
    for col in ("dist_tower_m", "dist_fiber_m"):
        np.testing.assert_allclose(tiled[col], whole[col], rtol=1e-12, atol=1e-9)
    for a, b in zip(whole.geometry, tiled.geometry, strict=True):
        assert shapely.equals(a, b)
        assert b.is_valid
        assert shapely.equals_exact(shapely.normalize(a), b, tolerance=0.0)


@pytest.mark.parametrize("chunks", [(1, 80), (80, 1), (7, 9), 16, (33, 1000)])
def test_tiled_gaps_equal_whole_grid_gaps(towns, chunks):
    _, towers, cov, pop = towns
    fiber = gpd.GeoDataFrame(
        geometry=[LineString([(X0 + 3900, Y0), (X0 + 3900, Y0 + 3000)])], crs=UTM49
    )
    kw = {"min_population": 30.0, "min_density_per_km2": 400.0, "towers": towers, "fiber": fiber}
    pop_before = pop.copy()
    whole = find_gaps(cov, pop, **kw)
    tiled = find_gaps(cov, pop, chunks=chunks, **kw)
    np.testing.assert_array_equal(pop, pop_before)
    # the case is worth testing: several gaps, some dropped as too small, several chunks crossed
    assert len(whole) >= 8
    assert tiled["population"].sum() < np.nansum(pop[~cov.covered_any])
    _assert_same_gaps(whole, tiled)


def test_tiled_gaps_persons_partition(towns):
    """Independent check: the gaps' persons are those of the uncovered dense cells they hold."""
    grid, _, cov, pop = towns
    gaps = find_gaps(cov, pop, min_population=0.0, chunks=(11, 13))
    dense = ~cov.covered_any & (np.nan_to_num(pop) > 0)
    assert gaps["population"].sum() == pytest.approx(np.nansum(pop[dense]), rel=1e-12)
    assert gaps["cells"].sum() == dense.sum()
    assert gaps.geometry.area.sum() == pytest.approx(dense.sum() * grid.cell_area_m2)
    assert list(gaps["population"]) == sorted(gaps["population"], reverse=True)


@pytest.mark.parametrize("chunks", [(5, 3), 32])
def test_tiled_single_operator_areas_equal_whole_grid(towns, chunks):
    _, _, cov, pop = towns
    whole = single_operator_areas(cov, pop)
    tiled = single_operator_areas(cov, pop, chunks=chunks)
    pd.testing.assert_frame_equal(
        pd.DataFrame(tiled.drop(columns="geometry")), pd.DataFrame(whole.drop(columns="geometry"))
    )
    assert (whole.geometry.area > 0).all()
    for a, b in zip(whole.geometry, tiled.geometry, strict=True):
        assert shapely.equals(a, b)
        assert shapely.equals_exact(shapely.normalize(a), b, tolerance=0.0)


@pytest.mark.parametrize("chunks", [(17, 23), None])
def test_gaps_on_dask_equal_whole_grid(towns, dask_client, chunks):
    _, towers, cov, pop = towns
    kw = {"min_population": 30.0, "min_density_per_km2": 400.0, "towers": towers}
    whole = find_gaps(cov, pop, **kw)
    on_dask = find_gaps(cov, pop, client=dask_client, chunks=chunks, **kw)
    _assert_same_gaps(whole, on_dask)
    single = single_operator_areas(cov, pop, client=dask_client, chunks=chunks)
    for a, b in zip(single_operator_areas(cov, pop).geometry, single.geometry, strict=True):
        assert shapely.equals(a, b)


@pytest.mark.parametrize("chunks", [None, (9, 14)])
def test_gap_regions_found_once_serve_the_gaps_and_count_non_finite_persons_as_nobody(
    towns, chunks
):
    """Regions found beforehand give the very gaps find_gaps finds itself; ±inf and NaN
    population cells are in no region (as in a zero-filled copy of the population), and the
    single-operator persons are the zero-filled copy's sums, to the bit."""
    grid, towers, cov, pop = towns
    pop = pop.copy()
    rng = np.random.default_rng(3)
    pop[rng.random(grid.shape) < 0.01] = np.inf
    pop[rng.random(grid.shape) < 0.01] = -np.inf
    zeroed = np.where(np.isfinite(pop), pop, 0.0)
    kw = {"min_population": 30.0, "towers": towers}
    regions = gap_regions(cov, pop, min_density_per_km2=400.0, chunks=chunks)
    own = find_gaps(cov, pop, min_density_per_km2=400.0, chunks=chunks, **kw)
    pd.testing.assert_frame_equal(find_gaps(cov, pop, regions=regions, **kw), own)
    reference = gap_regions(cov, zeroed, min_density_per_km2=400.0, chunks=chunks)
    np.testing.assert_array_equal(regions.cells, reference.cells)
    np.testing.assert_array_equal(regions.persons, reference.persons)
    assert np.isfinite(regions.persons).all()
    single = single_operator_areas(cov, pop, chunks=chunks)
    expected = [zeroed[(cov.operator_count == 1) & c].sum() for c in cov.covered]
    assert single["population"].tolist() == expected
