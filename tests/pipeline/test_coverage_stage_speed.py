"""The coverage stage's large-grid path (rasters written in a thread while the polygons are made
tile by tile) against its small-grid path on the same plan: the same rasters to the byte, the
same tables, topologically equal coverage polygons; and the population table, which reads the
population raster in place, against an explicitly zero-filled copy."""

from __future__ import annotations

import json

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import pytest
import shapely
from shapely.geometry import Point, Polygon, box

from telcoplan.gis.grid import GridSpec
from telcoplan.pipeline.inputs import load_inputs
from telcoplan.pipeline.parse import read_plan
from telcoplan.pipeline.stages import coverage
from telcoplan.pipeline.stages._base import Staging
from tests.conftest import UTM49, X0, Y0
from tests.pipeline.conftest import write_plan

# a 7.2 km x 5.4 km box of 100 m cells: two areas that leave sea in the box, weak sites whose
# coverage has several parts and holes
_GRID = GridSpec.from_bounds((X0, Y0, X0 + 7200, Y0 + 5400), 100.0, UTM49)


@pytest.fixture
def patchy_plan(tmp_path):
    rng = np.random.default_rng(11)
    n = 40
    xy = rng.uniform((X0 + 300, Y0 + 300), (X0 + 6900, Y0 + 5100), size=(n, 2))
    xy[0] = (X0 + 5200, Y0 + 2200)  # on the lake's shore, strong (below)
    towers = gpd.GeoDataFrame(
        {
            "site_id": [f"S-{i}" for i in range(n)],
            "operator": np.array(["Alpha", "Beta", "Gamma"])[rng.integers(0, 3, n)],
            "technology": np.array(["3G", "4G", "5G"])[rng.integers(0, 3, n)],
            "frequency_mhz": 1800.0,
            "height_m": 30.0,
            "eirp_dbm": np.r_[40.0, rng.uniform(8.0, 22.0, n - 1)],
            "name": [f"Site & <{i}>" for i in range(n)],
        },
        geometry=[Point(x, y) for x, y in xy],
        crs=UTM49,
    )
    areas = gpd.GeoDataFrame(
        {"name": ["West", "East"], "urban": [True, False]},
        geometry=[
            Polygon(
                [(X0, Y0), (X0 + 3900, Y0 + 200), (X0 + 3500, Y0 + 5000), (X0 + 200, Y0 + 5400)]
            ),
            # a lake: holes in the polygons
            box(X0 + 3900, Y0 + 600, X0 + 7200, Y0 + 4800).difference(
                box(X0 + 5000, Y0 + 2000, X0 + 5400, Y0 + 2400)
            ),
        ],
        crs=UTM49,
    )
    population = rng.gamma(0.6, 40.0, _GRID.shape)
    population[rng.random(_GRID.shape) < 0.05] = np.nan  # nodata cells
    doc = {
        "name": "patchy",
        "resolution_m": 100,
        "layers": {
            "areas": "inputs/areas.gpkg",
            "towers": "inputs/towers.gpkg",
            "population": "inputs/population.tif",
        },
        "stages": {"coverage": {"environment": "urban", "validity": "ignore"}},
    }
    files = {
        "inputs/areas.gpkg": areas,
        "inputs/towers.gpkg": towers,
        "inputs/population.tif": (population, _GRID),
    }
    return write_plan(tmp_path / "plan.yml", doc, files)


def _run_stage(plan_path, folder):
    plan = read_plan(plan_path)
    inputs = load_inputs(plan)
    params = plan.parameters.get("coverage") or coverage.parse(None, base=plan.base)
    folder.mkdir()
    result = coverage.run(inputs, params, Staging(folder))
    return inputs, result


def test_large_grid_path_gives_the_small_grid_paths_outputs(patchy_plan, tmp_path, monkeypatch):
    inputs, small = _run_stage(patchy_plan, tmp_path / "small")
    assert inputs.grid.shape == _GRID.shape
    # the same plan taken for a large grid: writes in a thread, polygons in 16 x 16-cell chunks
    monkeypatch.setattr(coverage, "_LARGE_GRID_CELLS", 1)
    monkeypatch.setattr(coverage, "_POLYGON_CHUNKS", 16)
    _, large = _run_stage(patchy_plan, tmp_path / "large")

    assert json.dumps(large.summary, sort_keys=True) == json.dumps(small.summary, sort_keys=True)
    names = sorted(p.name for p in (tmp_path / "small").iterdir())
    assert names == sorted(p.name for p in (tmp_path / "large").iterdir())
    assert sum(n.endswith(".tif") for n in names) == 7  # signal and server x 3, count
    for name in names:
        if name != "coverage.gpkg":  # rasters and their attribute tables: the same bytes
            a, b = (tmp_path / "small" / name), (tmp_path / "large" / name)
            assert a.read_bytes() == b.read_bytes(), name
    for layer, _ in pyogrio.list_layers(tmp_path / "small" / "coverage.gpkg"):
        a = gpd.read_file(tmp_path / "small" / "coverage.gpkg", layer=layer)
        b = gpd.read_file(tmp_path / "large" / "coverage.gpkg", layer=layer)
        pd.testing.assert_frame_equal(a.drop(columns="geometry"), b.drop(columns="geometry"))
        assert shapely.equals(a.geometry.values, b.geometry.values).all(), layer
    polys = gpd.read_file(tmp_path / "large" / "coverage.gpkg", layer="coverage")
    # the case is worth it: coverage in several parts, some with holes, cut by the chunks
    parts = shapely.get_parts(polys.geometry.values)
    assert len(parts) > len(polys)
    assert shapely.get_num_interior_rings(parts).sum() > 0
    assert (shapely.bounds(polys.geometry.values)[:, 2] - X0 > 16 * 100).all()


def test_a_failed_raster_write_in_the_thread_fails_the_stage(patchy_plan, tmp_path, monkeypatch):
    monkeypatch.setattr(coverage, "_LARGE_GRID_CELLS", 1)

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(coverage, "_write_rasters", broken)
    with pytest.raises(OSError, match="disk full"):
        _run_stage(patchy_plan, tmp_path / "out")


def test_population_table_counts_nan_and_inf_cells_as_nobody(patchy_plan):
    """The table reads the population raster in place (no zero-filled copy): the same sums,
    to the bit, as on a copy with the NaN and ±inf cells set to 0; precomputed labels give
    the same table."""
    from telcoplan.coverage.analysis import compute_coverage, population_covered
    from telcoplan.gis.zonal import label_polygons

    plan = read_plan(patchy_plan)
    inputs = load_inputs(plan)
    cov = compute_coverage(inputs.vectors["towers"], inputs.grid, validity="ignore")
    pop = inputs.population.copy()
    pop[3, :7] = np.inf
    pop[40, 10:12] = -np.inf
    pop[5:9, 20:40] = np.nan  # (the plan's loader reads nodata as 0)
    before = pop.copy()
    table = population_covered(cov, pop, inputs.areas)
    assert np.array_equal(pop, before, equal_nan=True)  # not modified
    zeroed = np.where(np.isfinite(pop), pop, 0.0)
    pd.testing.assert_frame_equal(table, population_covered(cov, zeroed, inputs.areas), rtol=0)
    labels = label_polygons(inputs.areas, inputs.grid)
    pd.testing.assert_frame_equal(
        table, population_covered(cov, pop, inputs.areas, labels=labels), rtol=0
    )
    with pytest.raises(ValueError, match="labels shape"):
        population_covered(cov, pop, inputs.areas, labels=labels[1:])


def test_gaps_stage_large_grid_path_gives_the_small_grid_paths_outputs(
    patchy_plan, tmp_path, monkeypatch
):
    """The gaps stage on a "large" grid (regions in 16 x 16-cell chunks, polygons traced on
    the whole grid) against the whole-grid path: the same summary and
    attributes, the same polygons (normalized: vertex for vertex)."""
    from telcoplan.pipeline.stages import gaps

    inputs, cov = _run_stage(patchy_plan, tmp_path / "coverage")
    params = gaps.parse(None)

    def run_gaps(folder):
        folder.mkdir()
        return gaps.run(inputs, params, Staging(folder, results={"coverage": cov.value}))

    small = run_gaps(tmp_path / "small")
    monkeypatch.setattr(gaps, "_chunks", lambda grid: (16, 16))
    large = run_gaps(tmp_path / "large")

    assert json.dumps(large.summary, sort_keys=True) == json.dumps(small.summary, sort_keys=True)
    layers = [name for name, _ in pyogrio.list_layers(tmp_path / "small" / "gaps.gpkg")]
    assert {"gaps", "single_operator"} <= set(layers)
    for layer in layers:
        a = gpd.read_file(tmp_path / "small" / "gaps.gpkg", layer=layer)
        b = gpd.read_file(tmp_path / "large" / "gaps.gpkg", layer=layer)
        pd.testing.assert_frame_equal(a.drop(columns="geometry"), b.drop(columns="geometry"))
        same = shapely.equals_exact(
            shapely.normalize(a.geometry.values), b.geometry.values, tolerance=0.0
        )
        assert same.all(), layer
    single = gpd.read_file(tmp_path / "large" / "gaps.gpkg", layer="single_operator")
    # the chunks cut the single-operator areas
    assert (shapely.bounds(single.geometry.values)[:, 2] - X0 > 40 * 100).any()
