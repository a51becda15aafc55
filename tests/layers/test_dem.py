"""The DEM layer: warped onto the plan grid in metres; feet and nonsense refused."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio

from telcoplan.errors import LayerValidationError
from telcoplan.gis.grid import GridSpec
from telcoplan.gis.raster import write_raster
from telcoplan.layers.dem import load_dem
from tests.conftest import UTM49, X0, Y0

GRID = GridSpec.from_bounds((X0, Y0, X0 + 1000, Y0 + 1000), 100.0, UTM49)


def test_dem_in_metres_is_read_and_one_in_feet_refused(tmp_path):
    z = np.linspace(0.0, 300.0, 100).reshape(10, 10)
    write_raster(tmp_path / "dem.tif", z, GRID)
    np.testing.assert_allclose(load_dem(tmp_path / "dem.tif", GRID), z)
    profile = {"driver": "GTiff", "width": 10, "height": 10, "count": 1, "dtype": "float64",
               "crs": GRID.crs, "transform": GRID.transform}  # fmt: skip
    with rasterio.open(tmp_path / "feet.tif", "w", **profile) as dst:
        dst.write(z * 3.28084, 1)
        dst.units = ("ft",)
    with pytest.raises(LayerValidationError, match=r"elevations are in 'ft'.*metres"):
        load_dem(tmp_path / "feet.tif", GRID)


def test_dem_with_implausible_heights_or_no_data_is_refused(tmp_path):
    write_raster(tmp_path / "high.tif", np.full((10, 10), 12_000.0), GRID)
    with pytest.raises(LayerValidationError, match="outside"):
        load_dem(tmp_path / "high.tif", GRID)
    write_raster(tmp_path / "void.tif", np.full((10, 10), np.nan), GRID)
    with pytest.raises(LayerValidationError, match="no data over the study area"):
        load_dem(tmp_path / "void.tif", GRID)
