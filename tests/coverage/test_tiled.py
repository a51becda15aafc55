"""Coverage and population tables block by block on a Dask cluster (the session's LocalCluster of
2 worker processes): the in-process run's rasters to the bit, its tables to 1e-9 relative, the
inputs sent once (a file the workers map, or a scatter when they do not share our files)."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
from shapely.geometry import Polygon, box

import telcoplan.coverage.tiled as tiled
from telcoplan.coverage.analysis import compute_coverage, coverage_and_population
from telcoplan.coverage.bestserver import best_server
from telcoplan.coverage.tiled import block_layout
from telcoplan.gis.grid import GridSpec
from tests.conftest import UTM49, X0, Y0, ElsewhereClient, assert_unchanged
from tests.coverage.test_bestserver import random_towers

pytest.importorskip("distributed")

TILE = 8


@pytest.fixture(scope="module")
def plan():
    """A 97 x 75 grid of 20 m cells (not a multiple of the 8-cell tiles), 45 towers of three
    operators and four technologies (900–3500 MHz: the Hata family and 3GPP models), most of them
    sectors, some outside the grid; rolling hills, a clutter raster with losses and gains,
    a population with NaN cells and four areas (one partly off the grid, one a triangle)."""
    grid = GridSpec.from_bounds((X0, Y0, X0 + 97 * 20, Y0 + 75 * 20), 20.0, UTM49)
    rng = np.random.default_rng(14)
    towers = random_towers(45, grid, seed=13, sectors=True)  # up to 500 m outside the grid
    tech = rng.choice(["2G", "3G", "4G", "5G"], len(towers))
    towers["technology"] = tech
    towers["frequency_mhz"] = np.select(
        [tech == "2G", tech == "3G", tech == "4G"], [900.0, 2100.0, 1800.0], 3500.0
    )
    towers["eirp_dbm"] = rng.uniform(40, 52, len(towers))
    assert (~towers.within(box(*grid.bounds))).sum() >= 8  # towers outside the grid
    xc, yc = grid.cell_centres()
    dem = 40.0 * np.sin((xc - X0) / 170.0) ** 2 + 25.0 * np.cos((yc - Y0) / 130.0) ** 2
    clutter = rng.choice([-2.0, 0.0, 3.5, 8.0, np.nan], grid.shape).astype(np.float32)
    population = rng.gamma(2.0, 20.0, grid.shape)
    population[rng.random(grid.shape) < 0.05] = np.nan
    areas = gpd.GeoDataFrame(
        {"name": ["west", "east", "off-grid", "triangle"]},
        geometry=[
            box(X0, Y0, X0 + 900, Y0 + 1500),
            box(X0 + 900, Y0 + 400, X0 + 1940, Y0 + 1500),
            box(X0 + 1500, Y0 - 300, X0 + 2400, Y0 + 400),
            Polygon([(X0, Y0), (X0 + 800, Y0), (X0 + 400, Y0 + 380)]),
        ],
        index=pd.Index(["A1", "A2", "A3", "A4"], name="area_id"),
        crs=UTM49,
    )
    return grid, towers, dem, clutter, population, areas


class SpyClient(ElsewhereClient):
    """A client that records what is scattered (and where it lands) and submitted; with
    ``shares_files=False`` its workers answer the probe as workers of another machine do (they
    cannot read this machine's temporary files)."""

    def __init__(self, client, shares_files: bool = True):
        super().__init__(client)
        self.shares_files = shares_files
        self.scattered: list[tuple[dict, int]] = []
        self.submitted: list[tuple] = []

    def run(self, fn, *args, **kw):
        if self.shares_files:
            return self._client.run(fn, *args, **kw)
        return super().run(fn, *args, **kw)

    def scatter(self, data, **kw):
        sent = self._client.scatter(data, **kw)
        futures = sent if isinstance(sent, list) else [sent]
        who = self._client.who_has(futures)
        holders = [len(who[f.key]) for f in futures]  # workers holding each
        self.scattered.append((kw, holders if isinstance(sent, list) else holders[0]))
        return sent

    def submit(self, fn, *args, **kw):
        self.submitted.append(args)
        return self._client.submit(fn, *args, **kw)


def assert_bits_equal(a: np.ndarray | None, b: np.ndarray | None) -> None:
    assert (a is None) == (b is None)
    if a is not None:
        assert a.dtype == b.dtype
        assert a.shape == b.shape
        assert np.array_equal(a, b, equal_nan=a.dtype.kind == "f")


def exchange_folders() -> list:
    """This process's exchange folders (none once a computation is over)."""
    import os
    import tempfile
    from pathlib import Path

    return list(Path(tempfile.gettempdir()).glob(f"telcoplan-exchange-{os.getpid()}-*"))


@pytest.mark.parametrize("shares_files", [True, False], ids=["files", "scatter"])
@pytest.mark.parametrize("terrain", [False, True], ids=["flat", "terrain"])
def test_coverage_and_tables_on_a_cluster_equal_the_in_process_run(
    plan, dask_client, terrain, shares_files, monkeypatch
):
    grid, towers, dem, clutter, population, areas = plan
    # small blocks: bands of tile rows and runs of tiles within a tile row both occur
    monkeypatch.setattr(tiled, "MAX_BLOCK_CELLS", 3 * TILE * TILE)
    kw = {
        "model": "auto",
        "max_radius_km": 0.7,
        "validity": "ignore",
        "tile_size": TILE,
        "clutter_db": clutter,
        "dem": dem if terrain else None,
    }
    before = (towers.copy(), dem.copy(), clutter.copy(), population.copy(), areas.copy())
    spy = SpyClient(dask_client, shares_files)
    cov, table = coverage_and_population(towers, grid, population, areas, client=spy, **kw)
    want, want_table = coverage_and_population(towers, grid, population, areas, **kw)

    for name in ("power_dbm", "margin_db", "server", "covered", "best_technology", "limit"):
        assert_bits_equal(getattr(cov, name), getattr(want, name))
    assert (cov.limit is not None) == terrain
    if terrain:  # covered, out of reach and behind the hills all occur
        assert set(np.unique(cov.limit)) == {0, 1, 2}
    assert cov.operators == want.operators == ("MobiFone", "Viettel", "VinaPhone")
    assert list(cov.site_ids) == list(want.site_ids)
    assert (cov.server >= 0).any()
    assert np.isnan(cov.power_dbm).any()
    assert set(np.unique(cov.best_technology)) == {-1, 0, 1, 2, 3}
    pd.testing.assert_frame_equal(table, want_table, check_exact=False, rtol=1e-9, atol=0.0)
    assert table["covered_any"].sum() > 0
    assert table["uncovered_any"].sum() > 0

    blocks = block_layout(grid.shape, TILE, 2)
    assert len(spy.submitted) == len(blocks) > 13  # the 13 tile rows cut into runs
    if shares_files:  # one file of inputs, named by every task; nothing scattered
        assert spy.scattered == []
        assert {type(args[1]).__name__ for args in spy.submitted} == {"Stored"}
        assert len({args[1].path for args in spy.submitted}) == 1
    else:  # one bundle of inputs, scattered once to both workers; the tasks name it by key
        assert len(spy.scattered) == 1
        kwargs, holders = spy.scattered[0]
        assert kwargs["broadcast"] is True
        assert holders == 2
        assert {type(args[1]).__name__ for args in spy.submitted} == {"Future"}
    assert {args[-1] for args in spy.submitted} == set(blocks)
    assert exchange_folders() == []  # the files are gone with the computation
    for original, now in zip(before, (towers, dem, clutter, population, areas), strict=True):
        if isinstance(original, np.ndarray):
            assert np.array_equal(original, now, equal_nan=True)
        else:
            assert_unchanged(original, now)


@pytest.mark.parametrize("terrain", [False, True], ids=["flat", "terrain"])
def test_best_server_on_a_cluster_equals_the_in_process_run(plan, dask_client, terrain):
    """Groups of operator and technology, ranks and (with the DEM) the flat-earth flag; a 3GPP
    model for every tower; the towers' evaluations add up to the same count."""
    grid, towers, dem, clutter, _, _ = plan
    kw = {
        "model": "3gpp-uma",
        "max_radius_km": 1.0,
        "validity": "ignore",
        "tile_size": TILE,
        "group_by": ["operator", "technology"],
        "coverage_rank": np.arange(len(towers)) % 4,
        "coverage_dbm": -85.0,
        "clutter_db": clutter,
        "dem": dem if terrain else None,
    }
    got = best_server(towers, grid, client=dask_client, **kw)
    want = best_server(towers, grid, **kw)
    assert got.groups == want.groups
    assert len(got.groups) > 6
    for name in ("power_dbm", "server", "best_rank", "flat_covered"):
        assert_bits_equal(getattr(got, name), getattr(want, name))
    assert got.towers_evaluated == want.towers_evaluated > 0


def test_coverage_without_tables_and_without_towers(plan, dask_client):
    grid, towers, _, _, population, areas = plan
    kw = {"max_radius_km": 1.0, "validity": "ignore", "tile_size": TILE}
    got = compute_coverage(towers, grid, client=dask_client, **kw)
    want = compute_coverage(towers, grid, **kw)
    assert_bits_equal(got.margin_db, want.margin_db)
    assert_bits_equal(got.server, want.server)
    # no towers: nothing to send; the in-process answer (no signal, everyone uncovered)
    cov, table = coverage_and_population(
        towers.iloc[:0], grid, population, areas, client=dask_client
    )
    assert cov.operators == ()
    assert (table["covered_any"] == 0).all()
    assert np.allclose(table["uncovered_any"], table["population"])


def test_blocks_partition_the_grid_into_whole_tiles(monkeypatch):
    for shape, tile, threads in [((75, 97), 8, 2), ((1000, 37), 32, 4), ((5, 3000), 16, 2)]:
        blocks = block_layout(shape, tile, threads)
        seen = np.zeros(shape, dtype=np.int32)
        for r0, r1, c0, c1 in blocks:
            assert r0 % tile == 0
            assert c0 % tile == 0
            assert r1 % tile == 0 or r1 == shape[0]
            assert c1 % tile == 0 or c1 == shape[1]
            seen[r0:r1, c0:c1] += 1
        assert (seen == 1).all()  # every cell in exactly one block
        n_tiles = -(-shape[0] // tile) * -(-shape[1] // tile)
        assert len(blocks) >= min(tiled.CHUNKS_PER_THREAD * threads, n_tiles)
    monkeypatch.setattr(tiled, "MAX_BLOCK_CELLS", 4 * 32 * 32)
    blocks = block_layout((100, 1000), 32, 1)
    assert max((r1 - r0) * (c1 - c0) for r0, r1, c0, c1 in blocks) <= 4 * 32 * 32
    assert block_layout((0, 10), 8, 2) == []


def test_a_task_runs_numba_on_its_workers_threads(dask_client):
    """The session's workers have one thread each: a task's numba work runs on one thread;
    outside a worker, numba's count is left alone."""
    import numba

    def threads(data, block):
        return numba.get_num_threads(), data, block

    got = dask_client.submit(tiled._run_block, "x", threads, (0, 1, 0, 1), pure=False).result()
    assert got == (1, "x", (0, 1, 0, 1))
    assert tiled._worker_threads() == numba.get_num_threads()


def test_an_error_in_a_task_reaches_the_caller(plan, dask_client):
    grid, towers, _, _, _, _ = plan
    bad = np.zeros((3, 3))  # the wrong shape is caught before anything is sent
    with pytest.raises(ValueError, match="does not match the grid"):
        coverage_and_population(
            towers, grid, bad, gpd.GeoDataFrame(geometry=[], crs=UTM49), client=dask_client,
            validity="ignore",
        )  # fmt: skip

    def failing(data, block):
        raise ZeroDivisionError(f"block {block}")

    with pytest.raises(ZeroDivisionError, match="block"):
        for _ in tiled.map_blocks(dask_client, None, failing, (16, 16), 8, "test"):
            pass


def test_one_pass_zonal_sums_are_the_masked_sums_to_the_bit():
    """zonal_sum_masks (the tables' sums of a block or of the grid) against zonal_sum_labels of
    each masked raster: the same bits, NaN values and cells outside every label included."""
    from telcoplan.gis.zonal import zonal_sum_labels, zonal_sum_masks

    rng = np.random.default_rng(5)
    shape = (37, 53)
    values = rng.gamma(2.0, 10.0, shape)
    values[rng.random(shape) < 0.1] = np.nan
    labels = rng.integers(-1, 6, shape).astype(np.int32)
    masks = rng.random((3, *shape)) < 0.4
    levels = rng.integers(-1, 4, shape).astype(np.int8)
    got = zonal_sum_masks(values, labels, 6, masks, levels, 4)
    v = np.where(np.isfinite(values), values, 0.0)
    want = [zonal_sum_labels(v, labels, 6)]
    want += [zonal_sum_labels(np.where(m, v, 0.0), labels, 6) for m in masks]
    want += [zonal_sum_labels(np.where(masks.any(axis=0), v, 0.0), labels, 6)]
    want += [zonal_sum_labels(np.where(masks.any(axis=0), 0.0, v), labels, 6)]
    want += [zonal_sum_labels(np.where(levels >= j, v, 0.0), labels, 6) for j in range(4)]
    assert np.array_equal(got, np.array(want))
    empty = zonal_sum_masks(values, labels, 6, np.zeros((0, *shape), dtype=bool))
    assert np.array_equal(empty[2], want[0])  # no mask: every cell is in "none"


class Unreachable(SpyClient):
    """A client that cannot reach the workers directly (a cluster behind a gateway)."""

    def scatter(self, data, **kw):
        if kw.get("direct"):
            raise OSError("no route to the workers")
        return super().scatter(data, **kw)

    def gather(self, futures, **kw):
        if kw.get("direct"):
            raise OSError("no route to the workers")
        return self._client.gather(futures, **kw)


def test_workers_out_of_direct_reach_are_served_through_the_scheduler(
    plan, dask_client, dask_cluster, caplog
):
    import logging

    import distributed

    grid, towers, _, _, _, _ = plan
    kw = {"max_radius_km": 0.8, "validity": "ignore", "tile_size": TILE}
    want = best_server(towers, grid, **kw)
    spy = Unreachable(dask_client, shares_files=False)
    with caplog.at_level(logging.INFO, logger="telcoplan"):
        got = best_server(towers, grid, client=spy, **kw)
    assert_bits_equal(got.power_dbm, want.power_dbm)
    assert any("not reachable directly" in r.getMessage() for r in caplog.records)
    assert [kw["direct"] for kw, _ in spy.scattered] == [False]
    # a client made not to talk to the workers directly is obeyed
    with distributed.Client(dask_cluster, direct_to_workers=False) as client:
        spy = SpyClient(client, shares_files=False)
        got = best_server(towers, grid, client=spy, **kw)
    assert_bits_equal(got.server, want.server)
    assert [kw["direct"] for kw, _ in spy.scattered] == [False]


@pytest.mark.parametrize("shares_files", [True, False], ids=["files", "scatter"])
def test_the_workers_are_probed_once_per_client(plan, dask_client, shares_files):
    """Coverage with its tables (an exchange of its own and map_blocks), best server twice, then
    the gap stage's tiled regions, labels and polygons (several chunk maps): the workers answer
    the probe once; the results are the in-process ones."""
    from telcoplan.gis.polygonize import label_regions, polygonize_mask, tiled_regions

    grid, towers, _, _, population, areas = plan
    kw = {"max_radius_km": 0.8, "validity": "ignore", "tile_size": TILE}
    spy = SpyClient(dask_client, shares_files)
    runs = []
    real_run = spy.run

    def run(fn, *args, **kwargs):
        runs.append(fn.__name__)
        return real_run(fn, *args, **kwargs)

    spy.run = run
    cov, table = coverage_and_population(towers, grid, population, areas, client=spy, **kw)
    want, want_table = coverage_and_population(towers, grid, population, areas, **kw)
    assert_bits_equal(cov.server, want.server)
    pd.testing.assert_frame_equal(table, want_table, check_exact=False, rtol=1e-9, atol=0.0)
    signal = best_server(towers, grid, **kw)
    for _ in range(2):
        assert_bits_equal(best_server(towers, grid, client=spy, **kw).server, signal.server)
    gaps = ~cov.covered.any(axis=0)
    assert gaps.any()
    regions = tiled_regions(gaps, weights=population, diagonal=True, chunks=(32, 32), client=spy)
    here = tiled_regions(gaps, weights=population, diagonal=True, chunks=(32, 32))
    assert np.array_equal(regions.cells, here.cells)
    labels, n = label_regions(gaps, chunks=(32, 32), client=spy)
    assert np.array_equal(labels, label_regions(gaps)[0])
    assert n == here.n
    polygonize_mask(gaps, grid, chunks=(32, 32), client=spy)
    assert runs.count("_read_probe") == 1
    if shares_files:  # through files
        assert spy.scattered == []
    else:  # the blocks' inputs to both workers; each chunk to one
        kinds = [(kw["broadcast"], holders) for kw, holders in spy.scattered]
        assert kinds[:3] == [(True, 2)] * 3
        assert len(kinds) > 5
        assert all(not b and set(h) == {1} for b, h in kinds[3:])
    assert exchange_folders() == []


def test_blocks_left_early_leave_no_files(dask_client):
    def where(data, block):
        return data, block

    blocks = tiled.map_blocks(dask_client, "inputs", where, (64, 64), 8, "test")
    block, got = next(blocks)
    assert got == ("inputs", block)
    assert len(exchange_folders()) == 1
    blocks.close()  # the caller stops reading: the exchange goes with the generator
    assert exchange_folders() == []
