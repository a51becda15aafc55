"""Dasymetric weights from land-use polygons (``weights_from_polygons``), checked against
areas computed by hand."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pytest
from shapely.geometry import box

from telcoplan.errors import LayerValidationError
from telcoplan.layers.population import (
    CLASS_WEIGHTS,
    UNMAPPED_WEIGHT,
    spread_population,
    weights_from_polygons,
)
from tests.conftest import UTM49, X0, Y0


def _polys(rows):
    return gpd.GeoDataFrame(
        [{k: v for k, v in r.items() if k != "geometry"} for r in rows],
        geometry=[r["geometry"] for r in rows],
        crs=UTM49,
    )


def test_class_weights_per_cell(grid10):
    """Residential west half, forest in the north-east quarter, the rest unmapped."""
    polys = _polys(
        [
            {"landuse": "residential", "geometry": box(X0, Y0, X0 + 500, Y0 + 1000)},
            {"landuse": "forest", "geometry": box(X0 + 500, Y0 + 500, X0 + 1000, Y0 + 1000)},
        ]
    )
    w = weights_from_polygons(polys, grid10)
    assert w.shape == grid10.shape
    np.testing.assert_allclose(w[:, :5], CLASS_WEIGHTS["residential"])
    np.testing.assert_allclose(w[:5, 5:], 0.0)  # north-east: forest (row 0 is north)
    np.testing.assert_allclose(w[5:, 5:], UNMAPPED_WEIGHT)


def test_partial_cells_are_area_weighted(grid10):
    """A residential strip 40 m wide over a 100 m column: 0.4 x 1 + 0.6 x unmapped."""
    polys = _polys([{"landuse": "residential", "geometry": box(X0, Y0, X0 + 40, Y0 + 1000)}])
    w = weights_from_polygons(polys, grid10, default=0.0)
    np.testing.assert_allclose(w[:, 0], 0.4)
    np.testing.assert_allclose(w[:, 1:], 0.0)
    w = weights_from_polygons(polys, grid10, default=0.5)
    np.testing.assert_allclose(w[:, 0], 0.4 * 1.0 + 0.6 * 0.5)


def test_smaller_polygon_wins_and_natural_is_read_when_landuse_is_empty(grid10):
    polys = _polys(
        [
            # a small village (residential) inside a big forest polygon, listed first
            {
                "landuse": "residential",
                "natural": None,
                "geometry": box(X0, Y0, X0 + 200, Y0 + 200),
            },
            {"landuse": "forest", "natural": None, "geometry": box(X0, Y0, X0 + 1000, Y0 + 500)},
            # a lake: OpenStreetMap puts water in `natural`
            {
                "landuse": None,
                "natural": "water",
                "geometry": box(X0, Y0 + 500, X0 + 300, Y0 + 1000),
            },
        ]
    )
    w = weights_from_polygons(polys, grid10)
    np.testing.assert_allclose(w[8:, :2], 1.0)  # the village (south-west corner)
    np.testing.assert_allclose(w[5:, 2:], 0.0)  # the forest around it
    np.testing.assert_allclose(w[:5, :3], 0.0)  # the lake
    np.testing.assert_allclose(w[:5, 3:], UNMAPPED_WEIGHT)


def test_own_class_weights_and_column(grid10):
    polys = _polys([{"lu": "rice", "geometry": box(X0, Y0, X0 + 1000, Y0 + 1000)}])
    w = weights_from_polygons(polys, grid10, column="lu", classes={"rice": 0.3})
    np.testing.assert_allclose(w, 0.3)
    with pytest.raises(LayerValidationError, match="class column 'landuse' is missing"):
        weights_from_polygons(polys, grid10, column="landuse")
    with pytest.raises(LayerValidationError, match="no class column"):
        weights_from_polygons(polys, grid10)


def test_totals_are_kept_per_polygon_and_people_leave_the_forest(grid10, areas4):
    """Spread with polygon weights: every area keeps its count; forest cells get nobody."""
    forest = _polys([{"natural": "wood", "geometry": box(X0, Y0, X0 + 300, Y0 + 300)}])
    w = weights_from_polygons(forest, grid10)
    pop = spread_population(areas4, grid10, column="population", weights=w)
    from telcoplan.gis.zonal import zonal_sum

    np.testing.assert_allclose(
        zonal_sum(pop, grid10, areas4), areas4["population"].to_numpy(), rtol=1e-12
    )
    assert pop[7:, :3].sum() == 0.0  # the wood in the south-west corner
    # the rest of the south-west area holds its 1,000 persons: 25 - 9 cells
    np.testing.assert_allclose(pop[5:, :5][pop[5:, :5] > 0], 1000.0 / 16)
