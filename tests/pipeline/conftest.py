"""Fixtures of the pipeline tests: a small plan written to disk."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from telcoplan.gis.raster import write_raster
from telcoplan.gis.vector import write_vector


@pytest.fixture
def small_plan(tmp_path, areas4, towers5, roads3, grid10):
    """A plan over the four quadrant areas with a population raster of 100 persons per cell."""
    inputs = tmp_path / "inputs"
    write_vector(inputs / "areas.gpkg", areas4)
    write_vector(inputs / "towers.csv", towers5)
    write_vector(inputs / "roads.geojson", roads3)
    write_raster(inputs / "population.tif", np.full(grid10.shape, 100.0), grid10)
    doc = {
        "name": "quadrants",
        "resolution_m": 100,
        "layers": {
            "areas": "inputs/areas.gpkg",
            "towers": "inputs/towers.csv",
            "roads": {"path": "inputs/roads.geojson"},
            "population": "inputs/population.tif",
        },
    }
    path = tmp_path / "plan.yml"
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    return path
