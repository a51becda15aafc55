"""A truncated GeoTIFF (a copy cut short, a download stopped) gives a clean error naming the
file, not GDAL's "Read failed. See previous exception for details."."""

from __future__ import annotations

import numpy as np
import pytest

from telcoplan.errors import InputFileError
from telcoplan.gis.grid import GridSpec
from telcoplan.gis.raster import read_raster_on_grid, write_raster


def test_a_truncated_raster_names_the_file(tmp_path):
    grid = GridSpec.from_bounds((0, 0, 60_000, 40_000), 100.0, "EPSG:32649")
    rng = np.random.default_rng(0)
    data = rng.normal(500, 200, grid.shape).astype("float32")  # incompressible: many bytes
    path = write_raster(tmp_path / "dem.tif", data, grid)
    assert np.array_equal(read_raster_on_grid(path, grid), data.astype("float64"))
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 3])
    with pytest.raises(InputFileError) as err:
        read_raster_on_grid(path, grid)
    assert str(path) in str(err.value)
    assert "truncated or damaged" in str(err.value)
