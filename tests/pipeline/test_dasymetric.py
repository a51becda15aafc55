"""A plan's population polygons spread with land-use polygons as dasymetric weights."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pytest
import yaml
from shapely.geometry import box

from telcoplan.errors import PlanError
from telcoplan.gis.vector import write_vector
from telcoplan.gis.zonal import zonal_sum
from telcoplan.pipeline import load_inputs, read_plan
from tests.conftest import UTM49, X0, Y0


@pytest.fixture
def wards_plan(tmp_path, areas4):
    """Areas with census counts as population polygons, and OSM-like land use in EPSG:4326."""
    write_vector(tmp_path / "wards.gpkg", areas4.rename(columns={"population": "pop2019"}))
    landuse = gpd.GeoDataFrame(
        {"landuse": ["forest", "residential", None], "natural": [None, None, "water"]},
        geometry=[
            box(X0, Y0, X0 + 500, Y0 + 500),  # the whole south-west area is forest
            box(X0 + 500, Y0, X0 + 600, Y0 + 500),  # one residential column in the south-east
            box(X0, Y0 + 500, X0 + 200, Y0 + 1000),  # a lake in the north-west
        ],
        crs=UTM49,
    ).to_crs("EPSG:4326")
    write_vector(tmp_path / "landuse.geojson", landuse)
    doc = {
        "resolution_m": 100,
        "layers": {
            "areas": "wards.gpkg",
            "population": {"path": "wards.gpkg", "column": "pop2019", "weights": "landuse.geojson"},
        },
        "stages": {"coverage": False},
    }
    (tmp_path / "plan.yml").write_text(yaml.safe_dump(doc))
    return tmp_path / "plan.yml"


def test_ward_totals_exact_and_people_where_they_live(wards_plan, areas4):
    inputs = load_inputs(read_plan(wards_plan))
    pop = inputs.population
    np.testing.assert_allclose(
        zonal_sum(pop, inputs.grid, areas4), areas4["population"].to_numpy(), rtol=1e-9
    )
    # south-west: all forest (weight 0) -> falls back to uniform, never loses its people
    np.testing.assert_allclose(pop[5:, :5], 1000.0 / 25)
    # south-east: the residential column (weight 1) vs unmapped land (0.1): 5 cells x 1 and
    # 20 cells x 0.1 share 2,000 persons
    np.testing.assert_allclose(pop[5:, 5], 2000.0 * 1.0 / 7.0, rtol=1e-6)
    np.testing.assert_allclose(pop[5:, 6:], 2000.0 * 0.1 / 7.0, rtol=1e-6)
    # north-west: nobody on the lake
    assert pop[:5, :2].sum() < 1e-9


def test_weights_options_and_their_problems(wards_plan):
    doc = yaml.safe_load(wards_plan.read_text())
    doc["layers"]["population"]["weights"] = {
        "path": "landuse.geojson",
        "classes": {"residential": 2, "forest": 0.5},
        "default": 0.0,
    }
    wards_plan.write_text(yaml.safe_dump(doc))
    pop = load_inputs(read_plan(wards_plan)).population
    np.testing.assert_allclose(pop[5:, :5], 1000.0 / 25)  # forest 0.5 everywhere: uniform
    np.testing.assert_allclose(pop[5:, 5], 2000.0 / 5)  # unmapped now weighs 0
    doc["layers"]["population"]["weights"] = {
        "path": "nope.geojson",
        "classes": {"residential": -1},
        "default": "high",
        "colum": "landuse",
    }
    wards_plan.write_text(yaml.safe_dump(doc))
    with pytest.raises(PlanError) as info:
        read_plan(wards_plan)
    msg = str(info.value)
    for needle in ("nope.geojson not found", "classes must map", "default must be", "'colum'"):
        assert needle in msg, msg
