"""An empty or missing geometry is reported as a problem of its row, and no library warning
reaches the user on the way (geopandas' notna/isna warn when some geometries are empty)."""

from __future__ import annotations

import warnings

import geopandas as gpd
import pytest
from shapely.geometry import Point

from telcoplan.errors import LayerValidationError
from telcoplan.gis.vector import has_shape
from telcoplan.layers.towers import load_towers


def test_has_shape():
    geoms = gpd.GeoSeries([Point(1, 2), Point(), None], crs="EPSG:32649")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert has_shape(geoms).tolist() == [True, False, False]
        assert has_shape(geoms.to_numpy()).tolist() == [True, False, False]


@pytest.mark.parametrize("bad", [Point(), None])
def test_a_tower_without_a_point(tmp_path, bad):
    towers = gpd.GeoDataFrame(
        {
            "site_id": ["a", "b"],
            "operator": ["Viettel", "Viettel"],
            "technology": ["4G", "4G"],
            "frequency_mhz": [1800.0, 1800.0],
            "height_m": [30.0, 30.0],
            "eirp_dbm": [60.0, 60.0],
        },
        geometry=[Point(800_000, 1_770_000), bad],
        crs="EPSG:32649",
    )
    path = tmp_path / "towers.gpkg"
    towers.to_file(path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any library warning fails the test
        with pytest.raises(LayerValidationError) as err:
            load_towers(path)
    assert "row 2, id 'b', column 'geometry': geometry is " in str(err.value)
