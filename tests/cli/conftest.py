"""Fixtures of the CLI tests: a small plan written to disk."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner

from tests.pipeline.conftest import write_plan

#: The layers of :func:`plan_dir`'s plans, beside them.
LAYERS = {"areas": "areas.gpkg", "towers": "towers.gpkg", "population": "population.tif"}


@pytest.fixture
def runner() -> CliRunner:
    """Runs ``telcoplan`` command lines in this process (``runner.invoke(cli, args)``)."""
    return CliRunner()


@pytest.fixture
def plan_dir(tmp_path, areas4, towers5, grid10):
    """``tmp_path`` with the four quadrant areas, the five towers and a population raster of
    1 person per cell, ``good.yml``: a plan of them, and ``bad.yml``: the same plan with a
    towers file that does not exist."""
    files = {
        "areas.gpkg": areas4,
        "towers.gpkg": towers5,
        "population.tif": (np.full(grid10.shape, 1.0), grid10),
    }
    write_plan(tmp_path / "good.yml", {"name": "t", "layers": LAYERS}, files)
    write_plan(tmp_path / "bad.yml", {"name": "t", "layers": LAYERS | {"towers": "nope.gpkg"}})
    return tmp_path
