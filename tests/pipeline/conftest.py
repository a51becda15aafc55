"""Fixtures of the pipeline tests: a small plan written to disk."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import yaml

from telcoplan.gis.grid import GridSpec
from telcoplan.gis.raster import write_raster
from telcoplan.gis.vector import write_vector


def write_plan(
    path: Path,
    doc: Mapping,
    files: Mapping[str, gpd.GeoDataFrame | tuple[np.ndarray, GridSpec]] | None = None,
) -> Path:
    """The plan ``doc`` written to ``path`` (YAML), after the input files it names: ``files``
    maps a path relative to the plan's folder to a vector layer, or to a raster and its grid."""
    for name, data in (files or {}).items():
        if isinstance(data, tuple):
            write_raster(path.parent / name, *data)
        else:
            write_vector(path.parent / name, data)
    path.write_text(yaml.safe_dump(dict(doc)), encoding="utf-8")
    return path


def output_bytes(folder: Path) -> dict[str, bytes]:
    """The files of an output folder that carry an output's name (not hidden), with their
    bytes."""
    return {p.name: p.read_bytes() for p in folder.iterdir() if not p.name.startswith(".")}


@pytest.fixture
def small_plan(tmp_path, areas4, towers5, roads3, grid10):
    """A plan over the four quadrant areas with a population raster of 100 persons per cell."""
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
    files = {
        "inputs/areas.gpkg": areas4,
        "inputs/towers.csv": towers5,
        "inputs/roads.geojson": roads3,
        "inputs/population.tif": (np.full(grid10.shape, 100.0), grid10),
    }
    return write_plan(tmp_path / "plan.yml", doc, files)
