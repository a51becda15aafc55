"""Population spreading conserves every polygon's total."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pytest
from shapely.geometry import box

from telcoplan.errors import LayerValidationError
from telcoplan.gis.zonal import zonal_sum
from telcoplan.layers.population import load_population_raster, spread_population
from tests.conftest import UTM49, X0, Y0, assert_unchanged


def test_uniform_spread_conserves_and_is_uniform(grid10, areas4):
    before = areas4.copy()
    pop = spread_population(areas4, grid10)
    np.testing.assert_allclose(zonal_sum(pop, grid10, areas4), areas4["population"], rtol=1e-12)
    assert pop.sum() == pytest.approx(10_000.0)
    assert np.allclose(pop[5:, :5], 1000.0 / 25)  # SW quadrant: 25 cells
    assert_unchanged(before, areas4)


def test_dasymetric_weights(grid10, areas4):
    w = np.zeros(grid10.shape)
    w[:, :2] = 1.0  # only the two western columns are residential
    pop = spread_population(areas4, grid10, weights=w)
    np.testing.assert_allclose(zonal_sum(pop, grid10, areas4), areas4["population"], rtol=1e-12)
    assert np.allclose(pop[5:, :2], 1000.0 / 10)
    assert np.all(pop[5:, 2:5] == 0)
    # eastern quadrants have no weight at all: uniform fallback, still conserved
    assert np.allclose(pop[5:, 5:], 2000.0 / 25)


def test_tiny_polygon_goes_to_its_cell(grid10):
    tiny = gpd.GeoDataFrame(
        {"population": [7.0]}, geometry=[box(X0 + 10, Y0 + 10, X0 + 20, Y0 + 20)], crs=UTM49
    )
    pop = spread_population(tiny, grid10)
    assert pop.sum() == pytest.approx(7.0)
    assert pop[9, 0] == pytest.approx(7.0)


def test_bad_counts_reported(grid10, areas4):
    bad = areas4.copy()
    bad.loc[1, "population"] = -5
    bad.loc[3, "population"] = np.nan
    with pytest.raises(LayerValidationError) as info:
        spread_population(bad, grid10)
    assert [p.row for p in info.value.problems] == [2, 4]


def test_population_raster_on_grid_and_warped(tmp_path, grid10):
    from telcoplan.gis.grid import GridSpec
    from telcoplan.gis.raster import write_raster

    data = np.full(grid10.shape, 3.0)
    p = write_raster(tmp_path / "pop.tif", data, grid10)
    assert load_population_raster(p, grid10).sum() == pytest.approx(300.0)
    coarse = GridSpec.from_bounds(grid10.bounds, 200.0, UTM49)
    assert load_population_raster(p, coarse).sum() == pytest.approx(300.0)


def test_overlapping_polygons_warned_and_total_kept(grid10, caplog):
    polys = gpd.GeoDataFrame(
        {"population": [100.0, 50.0]},
        geometry=[box(X0, Y0, X0 + 600, Y0 + 1000), box(X0 + 400, Y0, X0 + 1000, Y0 + 1000)],
        crs=UTM49,
    )
    pop = spread_population(polys, grid10)
    assert "overlap" in caplog.text
    assert pop.sum() == pytest.approx(150.0)
    # by hand: the overlap (x 400–600) belongs to the later polygon, so the first keeps the 40
    # cells with centres x < 400 and the second the 60 cells with centres x > 400
    np.testing.assert_allclose(pop[:, :4], 100.0 / 40)
    np.testing.assert_allclose(pop[:, 4:], 50.0 / 60)
