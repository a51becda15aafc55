"""Coverage of candidate towers: against path_loss directly and against the coverage engine."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
from scipy import sparse
from shapely.geometry import Point

import telcoplan.coverage.candidates as cc
from telcoplan.coverage.bestserver import best_server
from telcoplan.coverage.candidates import candidate_coverage
from telcoplan.coverage.propagation import path_loss
from telcoplan.gis.grid import GridSpec
from tests.conftest import UTM49, X0, Y0, assert_unchanged

THRESHOLD = -70.0  # dBm total power: about 670 m from a 30 m, 60 dBm, 1800 MHz mast
# rooftop candidates capped at 20 m are below COST-231 Hata's 30 m: tested once, then silenced
QUIET = {"validity": "ignore"}


@pytest.fixture(scope="module")
def grid() -> GridSpec:
    """A 60 x 60 grid of 50 m cells (3 km x 3 km) in UTM 49N."""
    return GridSpec.from_bounds((X0, Y0, X0 + 3000, Y0 + 3000), 50.0, UTM49)


@pytest.fixture(scope="module")
def demand(grid) -> np.ndarray:
    """Two thirds of the cells, at random, in row-major order."""
    rng = np.random.default_rng(0)
    return np.flatnonzero(rng.random(grid.width * grid.height) < 2 / 3)


def _candidates(n: int, seed: int = 1) -> gpd.GeoDataFrame:
    """n candidates off the cell centres inside the grid; every third capped at 20 m."""
    rng = np.random.default_rng(seed)
    cap = np.where(np.arange(n) % 3 == 0, 20.0, np.nan)
    cap[1::7] = 45.0  # above the default height: no effect
    return gpd.GeoDataFrame(
        {
            "candidate_id": [f"cand-{k}" for k in range(n)],
            "kind": "greenfield",
            "max_height_m": cap,
        },
        geometry=[
            Point(X0 + x, Y0 + y)
            for x, y in zip(rng.uniform(113, 2887, n), rng.uniform(113, 2887, n), strict=True)
        ],
        crs=UTM49,
    ).set_index("candidate_id")


def _reference_power(cand, grid, demand, height=30.0) -> np.ndarray:
    """Power (dBm) of one candidate at the demand cells, with path_loss directly: the distance
    to each cell centre, COST-231 Hata (what "auto" picks at 1800 MHz), EIRP − loss."""
    xc, yc = grid.cell_centres()
    d_m = np.hypot(xc.ravel()[demand] - cand.x, yc.ravel()[demand] - cand.y)
    loss = path_loss(
        "cost231",
        freq_mhz=1800.0,
        distance_km=np.maximum(d_m, 1.0) / 1000.0,
        h_tx_m=height,
        h_rx_m=1.5,
        environment="urban",
        validity="ignore",
        check_distance=False,
    )
    return 60.0 - loss


def test_matches_path_loss(grid, demand):
    cands = _candidates(7)
    before = cands.copy()
    cov, power = candidate_coverage(
        cands,
        grid,
        demand,
        threshold_power_dbm=THRESHOLD,
        **QUIET,
        return_power=True,
        power_floor_dbm=-200,
    )
    assert_unchanged(before, cands)
    assert isinstance(cov, sparse.csr_matrix)
    assert cov.shape == power.shape == (7, len(demand))
    assert cov.dtype == bool
    assert power.dtype == np.float32
    dense_p = power.toarray()
    for k, (_, row) in enumerate(cands.iterrows()):
        h = row["max_height_m"] if row["max_height_m"] < 30.0 else 30.0
        ref = _reference_power(row.geometry, grid, demand, height=h)
        got = cov[k].toarray().ravel()
        clear = np.abs(ref - THRESHOLD) > 0.01
        np.testing.assert_array_equal(got[clear], (ref >= THRESHOLD)[clear])
        assert 0 < got.sum() < len(demand)  # the edge of coverage lies inside the grid
        np.testing.assert_allclose(dense_p[k], ref, atol=0.01)


def test_same_powers_as_best_server(grid, demand):
    """Towers made from the candidates, one operator each, through the coverage engine."""
    cands = _candidates(10)
    towers = cands.assign(
        operator=cands.index,
        technology="4G",
        frequency_mhz=1800.0,
        height_m=np.where(cands["max_height_m"] < 30.0, cands["max_height_m"], 30.0),
        eirp_dbm=60.0,
    )
    res = best_server(
        towers, grid, model="auto", group_by="operator", floor_dbm=-120.0, validity="ignore"
    )
    cov, power = candidate_coverage(
        cands,
        grid,
        demand,
        threshold_power_dbm=THRESHOLD,
        **QUIET,
        return_power=True,
        power_floor_dbm=-120,
    )
    rows, cols = np.divmod(demand, grid.width)
    for k, cid in enumerate(cands.index):
        p = res.group(cid)[0][rows, cols]
        recorded = np.isfinite(p)
        row = power[k].toarray().ravel()
        assert set(power[k].indices) == set(np.flatnonzero(recorded))
        np.testing.assert_array_equal(row[recorded], p[recorded])
        np.testing.assert_array_equal(cov[k].toarray().ravel(), p >= THRESHOLD)


def test_terrain_calibration_clutter_as_the_engine(grid, demand):
    """With a hill, a calibration and clutter: the candidates' powers are the engine's."""
    xc, yc = grid.cell_centres()
    r2 = (xc - (X0 + 1500)) ** 2 + (yc - (Y0 + 1500)) ** 2
    dem = (5.0 + 120.0 * np.exp(-r2 / (2 * 300.0**2))).astype(np.float32)
    clutter = np.where(xc < X0 + 1000, 6.0, -2.0).astype(np.float32)
    kw = {
        "dem": dem,
        "diffraction": "deygout",
        "calibration": (3.0, -1.5),
        "clutter_db": clutter,
        "max_radius_km": 2.5,
    }
    cands = _candidates(5, seed=4)
    towers = cands.assign(
        operator=cands.index,
        frequency_mhz=1800.0,
        height_m=np.where(cands["max_height_m"] < 30.0, cands["max_height_m"], 30.0),
        eirp_dbm=60.0,
    )
    res = best_server(towers, grid, model="auto", floor_dbm=THRESHOLD, validity="ignore", **kw)
    cov, power = candidate_coverage(
        cands,
        grid,
        demand,
        threshold_power_dbm=THRESHOLD,
        **QUIET,
        return_power=True,
        chunk=2,
        **kw,
    )
    flat = candidate_coverage(
        cands, grid, demand, threshold_power_dbm=THRESHOLD, **QUIET, **(kw | {"dem": None})
    )
    rows, cols = np.divmod(demand, grid.width)
    for k, cid in enumerate(cands.index):
        p = res.group(cid)[0][rows, cols]
        with np.errstate(invalid="ignore"):
            np.testing.assert_array_equal(cov[k].toarray().ravel(), p >= THRESHOLD)
        ok = np.isfinite(p)
        np.testing.assert_array_equal(power[k].toarray().ravel()[ok], p[ok])
    assert (cov != flat).nnz > 0  # the hill did shadow some cells


@pytest.mark.parametrize("chunk", [1, 3, 64])
def test_chunk_does_not_change_the_result(grid, demand, chunk, monkeypatch):
    cands = _candidates(8, seed=2)
    calls: list[int] = []

    def spy(towers, *args, **kwargs):
        calls.append(len(towers))
        res = best_server(towers, *args, **kwargs)
        assert res.power_dbm.shape[0] <= chunk  # memory: chunk rasters at a time
        return res

    reference = candidate_coverage(
        cands, grid, demand, threshold_power_dbm=THRESHOLD, **QUIET, chunk=8
    )
    monkeypatch.setattr(cc, "best_server", spy)
    cov, power = candidate_coverage(
        cands, grid, demand, threshold_power_dbm=THRESHOLD, **QUIET, chunk=chunk, return_power=True
    )
    assert max(calls) <= chunk
    assert len(calls) == -(-8 // chunk)
    assert (cov != reference).nnz == 0
    # default floor: the power matrix has exactly the coverage matrix's entries
    assert (power.astype(bool) != cov).nnz == 0
    assert (power.data >= THRESHOLD).all()


def test_empty_inputs(grid, demand):
    cands = _candidates(3)
    none = candidate_coverage(cands.iloc[:0], grid, demand, threshold_power_dbm=THRESHOLD, **QUIET)
    assert none.shape == (0, len(demand))
    cov, power = candidate_coverage(
        cands, grid, np.array([], dtype=np.int64), threshold_power_dbm=THRESHOLD, **QUIET,
        return_power=True,
    )  # fmt: skip
    assert cov.shape == power.shape == (3, 0)
    # with terrain too (zoning may leave no candidate; no cell may lack service)
    dem = np.full(grid.shape, 12.5)
    none = candidate_coverage(
        cands.iloc[:0], grid, demand, threshold_power_dbm=THRESHOLD, **QUIET, dem=dem
    )
    assert none.shape == (0, len(demand))
    cov, power = candidate_coverage(
        cands, grid, np.array([], dtype=np.int64), threshold_power_dbm=THRESHOLD, **QUIET,
        return_power=True, dem=dem,
    )  # fmt: skip
    assert cov.shape == power.shape == (3, 0)


def test_bad_arguments(grid, demand):
    cands = _candidates(2)
    with pytest.raises(ValueError, match="demand cell indices"):
        candidate_coverage(cands, grid, np.array([0, 3600]), threshold_power_dbm=THRESHOLD, **QUIET)
    with pytest.raises(ValueError, match="integer"):
        candidate_coverage(cands, grid, np.array([0.5]), threshold_power_dbm=THRESHOLD, **QUIET)
    with pytest.raises(ValueError, match="technology"):
        candidate_coverage(
            cands, grid, demand, threshold_power_dbm=THRESHOLD, **QUIET, technology="6G"
        )
    with pytest.raises(ValueError, match="chunk"):
        candidate_coverage(cands, grid, demand, threshold_power_dbm=THRESHOLD, **QUIET, chunk=0)
    with pytest.raises(ValueError, match="unique"):
        candidate_coverage(
            pd.concat([cands, cands]), grid, demand, threshold_power_dbm=THRESHOLD, **QUIET
        )


def test_validity_warned_once(grid, demand):
    """Masts capped below the model's range: one warning for all candidates, not per chunk."""
    from telcoplan.coverage.propagation import ModelValidityWarning

    with pytest.warns(ModelValidityWarning, match="20…30") as record:
        candidate_coverage(_candidates(9), grid, demand, threshold_power_dbm=THRESHOLD, chunk=2)
    assert len(record) == 1
    with pytest.raises(ValueError, match="unknown propagation model"):
        candidate_coverage(
            _candidates(2), grid, demand, threshold_power_dbm=THRESHOLD, model="okumura"
        )


@pytest.mark.parametrize("terrain", [False, True])
def test_chunks_computed_on_windows_of_the_grid_give_the_whole_grids_powers(terrain, monkeypatch):
    """Candidates far apart with a short radius: on flat earth each chunk runs on a window of
    the grid (its candidates' extent plus the radius, on the grid's tiles), with terrain each
    candidate at the demand cells within its radius; every power equals the one computed on
    the whole grid, to the bit — terrain profiles included."""
    big = GridSpec.from_bounds((X0, Y0, X0 + 20_000, Y0 + 15_000), 50.0, UTM49)
    rng = np.random.default_rng(8)
    n = 12
    cands = gpd.GeoDataFrame(
        {"candidate_id": [f"c{k}" for k in range(n)], "max_height_m": np.nan},
        geometry=[
            Point(X0 + x, Y0 + y)
            for x, y in zip(rng.uniform(0, 20_000, n), rng.uniform(0, 15_000, n), strict=True)
        ],
        crs=UTM49,
    ).set_index("candidate_id")
    xc, yc = big.cell_centres()
    dem = 150.0 * np.sin(xc / 700.0) ** 2 * np.cos(yc / 900.0) ** 2 if terrain else None
    demand = np.flatnonzero(rng.random(big.width * big.height) < 0.5)
    kw = {"dem": dem, "max_radius_km": 1.2, "diffraction": "bullington"}
    shapes: list[tuple[int, int]] = []

    def spy(towers, grid, *args, **kwargs):
        shapes.append(grid.shape)
        return best_server(towers, grid, *args, **kwargs)

    monkeypatch.setattr(cc, "best_server", spy)
    cov, power = candidate_coverage(
        cands, big, demand, threshold_power_dbm=THRESHOLD, **QUIET, chunk=2,
        return_power=True, power_floor_dbm=-140.0, **kw,
    )  # fmt: skip
    if terrain:  # no rasters at all: each candidate at the demand cells of its radius
        assert shapes == []
    else:  # windows, not the grid: on average less than a third of it
        assert sum(h * w for h, w in shapes) < len(shapes) * big.width * big.height / 3
    towers = cands.assign(operator=cands.index, frequency_mhz=1800.0, height_m=30.0, eirp_dbm=60.0)
    res = best_server(towers, big, model="auto", floor_dbm=-140.0, validity="ignore", **kw)
    rows, cols = np.divmod(demand, big.width)
    for k, cid in enumerate(cands.index):
        p = res.group(cid)[0][rows, cols]
        with np.errstate(invalid="ignore"):
            np.testing.assert_array_equal(cov[k].toarray().ravel(), p >= THRESHOLD)
        ok = np.isfinite(p)
        assert ok.any()
        got = power[k].toarray().ravel()
        np.testing.assert_array_equal(got[ok], p[ok])
        assert power[k].nnz == ok.sum()


def test_terrain_cells_in_any_order_and_chunks_of_pairs(grid, monkeypatch):
    """With terrain: demand cells listed in any order (repeated too), candidates partly or
    wholly off the grid, and the candidates computed a few pairs at a time — every column gets
    the whole grid's power of its cell, to the bit."""
    rng = np.random.default_rng(11)
    xc, yc = grid.cell_centres()
    dem = (40.0 * np.sin(xc / 250.0) ** 2 + 30.0 * np.cos(yc / 330.0) ** 2).astype(np.float32)
    cands = pd.concat(
        [
            _candidates(6, seed=9),
            gpd.GeoDataFrame(
                {"candidate_id": ["west", "far"], "kind": "greenfield", "max_height_m": np.nan},
                geometry=[Point(X0 - 400, Y0 + 1500), Point(X0 - 9000, Y0 - 9000)],
                crs=UTM49,
            ).set_index("candidate_id"),
        ]
    )
    demand = rng.permutation(np.flatnonzero(rng.random(grid.width * grid.height) < 0.5))
    demand = np.concatenate([demand, demand[:40]])  # 40 cells listed twice
    kw = {"dem": dem, "max_radius_km": 1.5, "diffraction": "bullington", "return_power": True}
    ref_cov, ref_power = candidate_coverage(
        cands, grid, np.arange(grid.width * grid.height), threshold_power_dbm=THRESHOLD,
        power_floor_dbm=-120.0, **QUIET, **kw,
    )  # fmt: skip
    monkeypatch.setattr(cc, "_PAIRS", 500)  # many chunks of a few candidates (one at least)
    cov, power = candidate_coverage(
        cands, grid, demand, threshold_power_dbm=THRESHOLD, power_floor_dbm=-120.0, **QUIET, **kw
    )
    # the same candidates' columns, taken from the whole grid's matrices
    assert (cov != ref_cov[:, demand]).nnz == 0
    assert (power != ref_power[:, demand]).nnz == 0
    assert power.has_sorted_indices
    assert power.nnz == ref_power[:, demand].nnz
    assert cov[6].nnz > 0
    assert cov[7].nnz == 0
    towers = cands.assign(operator=cands.index, frequency_mhz=1800.0, eirp_dbm=60.0)
    towers["height_m"] = np.where(cands["max_height_m"] < 30.0, cands["max_height_m"], 30.0)
    res = best_server(towers, grid, model="auto", floor_dbm=-120.0, validity="ignore", dem=dem,
                      max_radius_km=1.5, diffraction="bullington")  # fmt: skip
    rows, cols = np.divmod(demand, grid.width)
    for k, cid in enumerate(cands.index):
        p = res.group(cid)[0][rows, cols]
        ok = np.isfinite(p)
        np.testing.assert_array_equal(power[k].toarray().ravel()[ok], p[ok])
        assert power[k].nnz == ok.sum()
