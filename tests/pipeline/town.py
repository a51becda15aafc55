"""A small town written to disk for the site tests: a 6 x 3 km area of 100 persons per cell;
Alpha has one site in the west, Beta one in the west and one in the east (B2); a road along the
town, Beta's fiber in its west."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import yaml
from shapely.geometry import LineString, Point, box

from telcoplan.gis.raster import write_raster
from telcoplan.gis.vector import write_vector
from telcoplan.pipeline import load_inputs, read_plan
from tests.conftest import UTM49, X0, Y0

W, H = 6_000.0, 3_000.0
#: the proposals' radio when they give none: the plan's stages.sites defaults
RADIO = {"technology": "4G", "frequency_mhz": 1800.0, "height_m": 30.0, "eirp_dbm": 60.0}


def town_plan(tmp_path, *, dem: bool = False, stages: dict | None = None):
    """A 6 x 3 km town of 100 persons per cell: Alpha has one site in the west, Beta one in the
    west and one in the east (B2); roads along the town, Beta's fiber in the west. With
    ``dem``, a 120 m ridge runs north-south through the middle."""
    areas = gpd.GeoDataFrame(
        {"name": ["town"], "population": [180_000.0]},
        geometry=[box(X0, Y0, X0 + W, Y0 + H)],
        crs=UTM49,
    )
    towers = gpd.GeoDataFrame(
        {
            "site_id": ["A1", "B1", "B2"],
            "operator": ["Alpha", "Beta", "Beta"],
            **{k: [v] * 3 for k, v in RADIO.items()},
        },
        geometry=[
            Point(X0 + 500, Y0 + 1500),
            Point(X0 + 800, Y0 + 1500),
            Point(X0 + 5500, Y0 + 1500),
        ],
        crs=UTM49,
    )
    roads = gpd.GeoDataFrame(
        {"road_id": ["r"], "road_class": ["primary"]},
        geometry=[LineString([(X0 + 100, Y0 + 1400), (X0 + W - 100, Y0 + 1400)])],
        crs=UTM49,
    )
    fiber = gpd.GeoDataFrame(
        {"fiber_id": ["f"], "operator": ["Beta"]},
        geometry=[LineString([(X0 + 100, Y0 + 1400), (X0 + 2000, Y0 + 1400)])],
        crs=UTM49,
    )
    write_vector(tmp_path / "areas.gpkg", areas)
    write_vector(tmp_path / "towers.gpkg", towers)
    write_vector(tmp_path / "roads.gpkg", roads)
    write_vector(tmp_path / "fiber.gpkg", fiber)
    layers = {
        "areas": "areas.gpkg",
        "towers": "towers.gpkg",
        "roads": "roads.gpkg",
        "fiber": "fiber.gpkg",
    }
    if dem:
        grid = load_inputs(read_plan(_plan(tmp_path, layers, {}))).grid
        x = grid.x_centres() - X0
        ridge = 120.0 * np.exp(-(((x - 3000.0) / 300.0) ** 2))
        write_raster(tmp_path / "dem.tif", np.tile(ridge, (grid.height, 1)), grid)
        layers["dem"] = "dem.tif"
    return _plan(
        tmp_path,
        layers,
        {
            "coverage": {"model": "hata", "validity": "ignore", "terrain": dem},
            "gaps": False,
            "sites": False,
            "backbone": False,
            "map": False,
            "report": False,
            **(stages or {}),
        },
    )


def _plan(tmp_path, layers, stages):
    doc = {"name": "review town", "resolution_m": 100, "layers": layers, "stages": stages}
    (tmp_path / "plan.yml").write_text(yaml.safe_dump(doc), encoding="utf-8")
    return tmp_path / "plan.yml"
