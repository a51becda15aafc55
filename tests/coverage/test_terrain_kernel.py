"""The best-server kernel with a DEM against walking every tower's profile to every cell.

The kernel skips work in four ways (a lower bound of the diffraction loss before a profile is
walked, Bullington's walk over only the samples that can change its slopes, a float32 DEM when
that is exact, tiles handed out dynamically to the threads); none may change an answer. The
reference here evaluates every (tower, cell) pair with the public scalar functions: Hata, the
3GPP sector pattern, and :func:`~telcoplan.coverage.profile.path_terrain_loss` on the pair's
whole profile where it is obstructed.
"""

from __future__ import annotations

import inspect
import math

import geopandas as gpd
import numba
import numpy as np
import pytest
from scipy.ndimage import gaussian_filter
from shapely.geometry import Point

from telcoplan.coverage.antenna import azimuth_deg, sector_attenuation
from telcoplan.coverage.bestserver import best_server
from telcoplan.coverage.profile import (
    DIFFRACTION_METHODS,
    knife_edge_db,
    knife_edge_loss,
    knife_edge_nu,
    path_terrain_loss,
)
from telcoplan.coverage.propagation import path_loss
from telcoplan.coverage.visibility import (
    BLOCK,
    EXACT,
    FULL_WALK,
    LOSS_ABOVE,
    block_max,
    bullington_obstructed,
    sample_nu,
    visible,
)
from telcoplan.gis.grid import GridSpec
from tests.conftest import UTM49, X0, Y0

H_RX = 1.5
RES = 30.0


def hills(shape, relief, seed, sigma=4.0):
    """Smooth random hills from 0 to ``relief`` m, rounded to float32 as a GeoTIFF DEM is."""
    rng = np.random.default_rng(seed)
    z = gaussian_filter(rng.standard_normal(shape), sigma, mode="wrap")
    z = (z - z.min()) * (relief / np.ptp(z))
    return z.astype(np.float32).astype(np.float64)


def brute_force(towers, grid, dem, radius, method, floor):
    """Per operator, the best power (dBm, NaN below the floor) and its tower, pair by pair."""
    t = grid.transform
    x0, y0 = float(t.c), float(t.f)
    X, Y = grid.cell_centres()
    ops = sorted(towers["operator"].unique())
    power = np.full((len(ops), *grid.shape), -np.inf)
    server = np.full((len(ops), *grid.shape), -1)
    for k, (_, tw) in enumerate(towers.iterrows()):
        g = ops.index(tw.operator)
        tx, ty = tw.geometry.x, tw.geometry.y
        # the antenna stands on the ground of its cell (the nearest edge cell outside the grid)
        r, c = grid.rowcol(np.array([tx]), np.array([ty]))
        ha = dem[min(max(r[0], 0), grid.height - 1), min(max(c[0], 0), grid.width - 1)]
        ha += tw.height_m
        lam = 299_792_458.0 / (tw.frequency_mhz * 1e6)
        dx, dy = X - tx, Y - ty
        d = np.hypot(dx, dy)
        p = tw.eirp_dbm - path_loss(
            "hata", freq_mhz=tw.frequency_mhz, distance_km=np.maximum(d, 1.0) / 1000,
            h_tx_m=tw.height_m, h_rx_m=H_RX, environment="urban", check_distance=False,
            validity="ignore",
        )  # fmt: skip
        hb = dem + H_RX
        if np.isfinite(tw.get("azimuth_deg", np.nan)) or np.isfinite(tw.get("tilt_deg", np.nan)):
            dep = np.degrees(np.arctan2(ha - hb, np.maximum(d, 1.0)))
            bw = tw.get("beamwidth_deg", np.nan)
            p = p + sector_attenuation(
                azimuth_deg(dx, dy), dep, azimuth=tw.get("azimuth_deg", np.nan),
                beamwidth=bw if np.isfinite(bw) else None, tilt=tw.get("tilt_deg", np.nan),
            )  # fmt: skip
        for r, c in zip(*np.nonzero(d <= radius), strict=True):
            loss, clearance = path_terrain_loss(
                dem, x0, y0, RES, tx, ty, ha, X[r, c], Y[r, c], hb[r, c], lam, method
            )
            q = p[r, c] - (loss if clearance > 0.0 else 0.0)
            if q > power[g, r, c]:
                power[g, r, c] = q
                server[g, r, c] = k
    low = ~(power >= floor)
    power[low] = np.nan
    server[low] = -1
    return tuple(ops), power, server


def assert_same(res, towers, want_groups, want_p, want_s):
    """≤ 0.01 dB (float32 outputs), the same covered cells, the same server but for ties."""
    assert res.groups == want_groups
    ok = np.isfinite(want_p)
    assert np.array_equal(ok, np.isfinite(res.power_dbm))
    assert np.max(np.abs(res.power_dbm[ok] - want_p[ok])) <= 0.01
    ids = towers.index.to_numpy()
    differ = ok & (res.server != want_s)
    for g, r, c in zip(*np.nonzero(differ), strict=True):  # only exact ties may differ
        a, b = res.server[g, r, c], want_s[g, r, c]
        assert ids[a] != ids[b]
        assert abs(res.power_dbm[g, r, c] - want_p[g, r, c]) <= 0.01
    assert differ.mean() < 1e-3


@pytest.fixture(scope="module")
def hilly():
    """48 x 48 cells of 30 m, 150 m hills, and 9 towers of 2 operators: cell centres, one off
    centre, one on the north-west corner and one 200 m outside the eastern edge; 3-sector and
    omni antennas, some tilted. Many towers of an operator overlap, so most pairs can be
    dropped by the loss bound before their profile is walked."""
    grid = GridSpec.from_bounds((X0, Y0, X0 + 48 * RES, Y0 + 48 * RES), RES, UTM49)
    dem = hills(grid.shape, 150.0, seed=21)
    X, Y = grid.cell_centres()
    xy = [
        (X[10, 12], Y[10, 12]), (X[30, 35], Y[30, 35]), (X[24, 5], Y[24, 5]),
        (X[40, 40], Y[40, 40]), (X[5, 44] + 7.0, Y[5, 44] - 11.0), (X0, Y0 + 48 * RES),
        (X0 + 48 * RES + 200.0, Y[20, 47]), (X[20, 20], Y[20, 20]), (X[44, 8], Y[44, 8]),
    ]  # fmt: skip
    towers = gpd.GeoDataFrame(
        {"operator": ["A", "A", "A", "B", "B", "A", "B", "B", "A"],
         "frequency_mhz": [900.0, 1800.0, 900.0, 2100.0, 900.0, 1800.0, 900.0, 1800.0, 2100.0],
         "height_m": [30.0, 25.0, 40.0, 30.0, 35.0, 30.0, 45.0, 20.0, 30.0],
         "eirp_dbm": [60.0, 58.0, 61.0, 59.0, 60.0, 62.0, 60.0, 57.0, 61.0],
         "azimuth_deg": [np.nan, 120.0, np.nan, 300.0, 200.0, 135.0, 270.0, np.nan, 45.0],
         "beamwidth_deg": [np.nan, 65.0, np.nan, np.nan, 90.0, 65.0, 65.0, np.nan, 65.0],
         "tilt_deg": [np.nan, 4.0, np.nan, 2.0, np.nan, np.nan, 6.0, 3.0, np.nan]},
        geometry=[Point(x, y) for x, y in xy], index=[f"T{i}" for i in range(len(xy))],
        crs=UTM49,
    )  # fmt: skip
    return grid, dem, towers


@pytest.mark.parametrize(
    ("method", "floor"),
    [("bullington", -150.0), ("deygout", -150.0), ("epstein-peterson", -150.0),
     ("bullington", -80.0), ("deygout", -80.0)],
)  # fmt: skip
def test_kernel_equals_walking_every_profile(hilly, method, floor):
    grid, dem, towers = hilly
    radius = 1000.0
    res = best_server(
        towers, grid, max_radius_km=radius / 1000, validity="ignore", dem=dem,
        diffraction=method, floor_dbm=floor,
    )  # fmt: skip
    want = brute_force(towers, grid, dem, radius, DIFFRACTION_METHODS[method], floor)
    if floor > -150.0:
        assert 0.1 < np.isnan(want[1]).mean() < 0.9  # the floor cuts through the area
    assert_same(res, towers, *want)


def test_a_ridge_that_blocks_one_operator_hands_cells_to_the_other():
    """A 200 m wall between operator A's strong tower and the eastern cells: behind it, B's
    weaker but unobstructed tower serves; the kernel agrees with the brute force."""
    grid = GridSpec.from_bounds((X0, Y0, X0 + 40 * RES, Y0 + 40 * RES), RES, UTM49)
    dem = np.zeros(grid.shape)
    dem[:, 14:16] = 200.0
    X, Y = grid.cell_centres()
    towers = gpd.GeoDataFrame(
        {"operator": ["A", "A", "A"], "frequency_mhz": 900.0, "height_m": 30.0,
         "eirp_dbm": [66.0, 55.0, 50.0]},
        geometry=[Point(X[20, 5], Y[20, 5]), Point(X[20, 35], Y[20, 35]),
                  Point(X[3, 30], Y[3, 30])],
        index=["strong", "east", "north"], crs=UTM49,
    )  # fmt: skip
    res = best_server(towers, grid, max_radius_km=1.5, validity="ignore", dem=dem)
    want = brute_force(towers, grid, dem, 1500.0, DIFFRACTION_METHODS["bullington"], -150.0)
    assert_same(res, towers, *want)
    server = res.server[0]
    assert (server[:, :14] == 0).all()  # in front of the wall the strong tower serves
    assert (server[15:26, 30:] == 1).all()  # behind it, the eastern tower


def test_float32_dem_gives_the_float64_answer_bit_for_bit(hilly, monkeypatch):
    """A DEM whose values are float32 numbers reaches the kernel as float32: the same bits."""
    import telcoplan.coverage._kernel_terrain as kt
    from telcoplan._readonly import readonly

    grid, dem, towers = hilly
    seen = []
    kernel = kt.best_server_terrain_kernel
    at = list(inspect.signature(kernel.py_func).parameters).index("dem")

    def as_float64(*args):
        seen.append(args[at].dtype)
        args = list(args)
        # read-only as the kernel's other inputs: the signature compiled at install
        args[at] = readonly(np.ascontiguousarray(args[at], dtype=np.float64))
        return kernel(*args)

    kw = {"max_radius_km": 1.0, "validity": "ignore", "dem": dem}
    fast = best_server(towers, grid, **kw)
    monkeypatch.setattr(kt, "best_server_terrain_kernel", as_float64)
    slow = best_server(towers, grid, **kw)
    assert seen[0] == np.float32
    assert np.array_equal(fast.power_dbm, slow.power_dbm, equal_nan=True)
    assert np.array_equal(fast.server, slow.server)
    # a DEM with more digits than float32 holds stays float64
    seen.clear()
    best_server(towers, grid, **{**kw, "dem": dem + 1e-9})
    assert seen[0] == np.float64


def test_threads_do_not_change_the_answer(hilly):
    grid, dem, towers = hilly
    before = numba.get_num_threads()
    out = []
    try:
        for n in sorted({1, numba.config.NUMBA_NUM_THREADS}):
            numba.set_num_threads(n)
            res = best_server(towers, grid, max_radius_km=1.0, validity="ignore", dem=dem)
            out.append(res)
    finally:
        numba.set_num_threads(before)
    assert np.array_equal(out[0].power_dbm, out[-1].power_dbm, equal_nan=True)
    assert np.array_equal(out[0].server, out[-1].server)


# ---------------------------------------------------------------------------------------------
# the pieces: the inverse knife edge, the loss bound, the pruned Bullington walk
# ---------------------------------------------------------------------------------------------


def test_knife_edge_nu_inverts_the_knife_edge():
    for loss in (0.01, 1.0, 6.0, 13.5, 30.0, 60.0):
        nu = knife_edge_nu(loss)
        assert knife_edge_loss(nu) == pytest.approx(loss, abs=1e-9)
        assert knife_edge_db(nu + 1e-6) > loss
    assert knife_edge_nu(0.0) == pytest.approx(-0.78)  # J is 0 up to −0.78


def random_paths(dem, grid, n, seed):
    """Random tx/rx pairs inside the grid (some within one cell), antenna heights absolute."""
    rng = np.random.default_rng(seed)
    xmin, ymin, xmax, ymax = grid.bounds
    tx, rx = rng.uniform(xmin, xmax, (2, n))
    ty, ry = rng.uniform(ymin, ymax, (2, n))
    r, c = grid.rowcol(tx, ty)
    ha = dem[np.clip(r, 0, grid.height - 1), np.clip(c, 0, grid.width - 1)]
    ha = ha + rng.uniform(5.0, 40.0, n)
    r, c = grid.rowcol(rx, ry)
    hb = dem[np.clip(r, 0, grid.height - 1), np.clip(c, 0, grid.width - 1)] + H_RX
    lam = 299_792_458.0 / (rng.choice([700.0, 900.0, 1800.0, 3500.0], n) * 1e6)
    return tx, ty, ha, rx, ry, hb, lam


def test_pruned_bullington_is_the_full_walk_bit_for_bit():
    """On every obstructed path: EXACT gives the full walk's loss to the bit (with and without
    seeds), LOSS_ABOVE only when the loss really exceeds J(ν_stop); J of the blocking sample's
    ν never exceeds the Bullington or Deygout loss."""
    grid = GridSpec.from_bounds((X0, Y0, X0 + 120 * RES, Y0 + 90 * RES), RES, UTM49)
    dem = hills(grid.shape, 300.0, seed=5, sigma=6.0)
    t = grid.transform
    x0, y0 = float(t.c), float(t.f)
    bmax = block_max(dem, BLOCK)
    no_horizon = np.empty((0, 0))
    rng = np.random.default_rng(2)
    checked = {EXACT: 0, LOSS_ABOVE: 0}
    seeds = np.full(2, -1.0)
    for tx, ty, ha, rx, ry, hb, lam in zip(*random_paths(dem, grid, 3000, seed=4), strict=True):
        clear, frac = visible(dem, False, bmax, BLOCK, no_horizon, x0, y0, RES, tx, ty, ha,
                              rx, ry, hb, -1.0)  # fmt: skip
        full, clearance = path_terrain_loss(dem, x0, y0, RES, tx, ty, ha, rx, ry, hb, lam, 1)
        assert clear == (not clearance > 0.0)
        if clear:
            continue
        for method in (0, 1):
            bound = knife_edge_db(sample_nu(dem, False, x0, y0, RES, tx, ty, ha, rx, ry, hb,
                                            lam, frac))  # fmt: skip
            loss = path_terrain_loss(dem, x0, y0, RES, tx, ty, ha, rx, ry, hb, lam, method)[0]
            assert bound <= loss + 1e-9
        loss, outcome = bullington_obstructed(
            dem,
            False,
            bmax,
            BLOCK,
            x0,
            y0,
            RES,
            tx,
            ty,
            ha,
            rx,
            ry,
            hb,
            lam,
            frac,
            -1.0,
            np.full(2, -1.0),
        )
        assert outcome == EXACT
        assert loss == full  # bit for bit
        # seeds from an unrelated previous path only change the order of the walk
        loss, outcome = bullington_obstructed(
            dem, False, bmax, BLOCK, x0, y0, RES, tx, ty, ha, rx, ry, hb, lam, frac, -1.0, seeds
        )
        assert (loss, outcome) == (full, EXACT)
        # a threshold: stopped only when the loss is above it
        cap = full * rng.uniform(0.5, 1.5)
        loss, outcome = bullington_obstructed(
            dem, False, bmax, BLOCK, x0, y0, RES, tx, ty, ha, rx, ry, hb, lam, frac,
            knife_edge_nu(cap), np.full(2, -1.0),
        )  # fmt: skip
        assert outcome in (EXACT, LOSS_ABOVE)
        if outcome == LOSS_ABOVE:
            assert full > cap
            assert cap < loss <= full + 1e-9
        else:
            assert loss == full
        checked[outcome] += 1
    assert checked[EXACT] > 100
    assert checked[LOSS_ABOVE] > 100
    assert FULL_WALK not in checked


def test_path_length_edge_cases_of_the_bound():
    """A path of one cell has no interior sample: no ν (−inf), hence no bound."""
    grid = GridSpec.from_bounds((X0, Y0, X0 + 10 * RES, Y0 + 10 * RES), RES, UTM49)
    dem = hills(grid.shape, 50.0, seed=1, sigma=2.0)
    t = grid.transform
    nu = sample_nu(dem, False, float(t.c), float(t.f), RES, X0 + 45.0, Y0 + 45.0, 60.0,
                   X0 + 70.0, Y0 + 45.0, 10.0, 0.33, 0.5)  # fmt: skip
    assert nu == -math.inf
