"""The approximate viewshed ``line_of_sight(..., method="sweep")`` against the exact one, hand
geometry and a plain python transcription of the documented sweep.

The exact method is itself checked against a brute-force ray-per-cell reference in
``test_terrain.py``; here the sweep must agree with it on flat ground and behind a ridge
everywhere, and on random smooth terrain on at least 99 % of the cells in range (it differs only
near visibility edges). ``ref_sweep`` re-derives the sweep's answer cell by cell from its
description (the nearest of the rays to the perimeter of a square, sampled on the lines of cell
centres across the cone's axis) to show that the numba kernel does what its docstring says.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

from telcoplan.coverage.terrain import (
    EARTH_RADIUS_M,
    K_FACTOR,
    VIEWSHED_METHODS,
    line_of_sight,
)
from telcoplan.gis.grid import GridSpec
from tests.conftest import UTM49, X0, Y0

CURV = 1.0 / (2.0 * K_FACTOR * EARTH_RADIUS_M)


def square_grid(n: int, res: float) -> GridSpec:
    return GridSpec.from_bounds((X0, Y0, X0 + n * res, Y0 + n * res), res, UTM49)


def smooth_hills(shape, relief: float, sigma: float, seed: int) -> np.ndarray:
    """Random terrain smoothed over ``sigma`` cells, scaled to 0…``relief`` m."""
    z = gaussian_filter(np.random.default_rng(seed).standard_normal(shape), sigma, mode="wrap")
    z -= z.min()
    return z * (relief / z.max())


def in_range(grid: GridSpec, tx: float, ty: float, radius: float) -> np.ndarray:
    xs, ys = grid.cell_centres()
    return (xs - tx) ** 2 + (ys - ty) ** 2 <= radius * radius


def elevation(dem: np.ndarray, fr: float, fc: float) -> float:
    """Bilinear between cell centres (integer row/col); edge values in the outer half cell;
    NaN = 0; 0 outside the grid."""
    h, w = dem.shape
    if not (-0.5 <= fc <= w - 0.5 and -0.5 <= fr <= h - 0.5):
        return 0.0

    def z(r: int, c: int) -> float:
        v = float(dem[min(max(r, 0), h - 1), min(max(c, 0), w - 1)])
        return 0.0 if math.isnan(v) else v

    r0, c0 = math.floor(fr), math.floor(fc)
    wr, wc = fr - r0, fc - c0
    top = (1 - wc) * z(r0, c0) + wc * z(r0, c0 + 1)
    return (1 - wr) * top + wr * ((1 - wc) * z(r0 + 1, c0) + wc * z(r0 + 1, c0 + 1))


def ref_sweep(dem, grid, tx, ty, h_tx, h_rx, radius):
    """The sweep as documented, one cell at a time: (visible, margin σ_t − max σ) per cell.

    A cell (X, Y cells from the antenna along columns and rows) belongs to the 90° cone around
    the axis along which it is farther (x = its distance along that axis, y across it, ties
    with −x < y ≤ x). Its ray is the one of slope k/P nearest y/x, P = ⌈R/res⌉ + 2; the ray is
    sampled on every line of cell centres across the axis strictly between the antenna and the
    cell; the cell is visible iff no sample's σ = (z − h_a)/s − s·C exceeds the cell's own.
    """
    res = grid.resolution
    t = grid.transform
    fc_t = (tx - t.c) / res - 0.5
    fr_t = (t.f - ty) / res - 0.5
    ha = elevation(dem, fr_t, fc_t) + h_tx
    n_per = math.ceil(radius / res) + 2
    vis = np.zeros(grid.shape, dtype=bool)
    margin = np.full(grid.shape, np.inf)
    # axis unit vectors (d_col, d_row) of the four cones and their across-axis units
    cones = [((1, 0), (0, 1)), ((0, 1), (-1, 0)), ((-1, 0), (0, -1)), ((0, -1), (1, 0))]
    for r, c in zip(*np.nonzero(in_range(grid, tx, ty, radius)), strict=True):
        X, Y = c - fc_t, r - fr_t
        d = math.hypot(X, Y) * res
        if d <= res:
            vis[r, c] = True
            continue
        for (ac, ar), (bc, br) in cones:
            x, y = ac * X + ar * Y, bc * X + br * Y
            if x > 0 and -x < y <= x:
                break
        # the nearest ray (y·(P·(1/x)), the kernel's order of operations, so that exact ties
        # such as y·P/x = 3.5 round the same way)
        slope = math.floor(y * (n_per * (1.0 / x)) + 0.5) / n_per
        length = math.sqrt(1 + slope * slope)
        z_cell = float(dem[r, c])
        sig_t = ((0.0 if math.isnan(z_cell) else z_cell) + h_rx - ha) / d - d * CURV
        best = -math.inf
        # the lines of cell centres across the axis strictly between the antenna and the cell
        along_antenna = ac * fc_t + ar * fr_t
        along_cell = ac * c + ar * r
        for line in range(along_cell - 1, math.floor(along_antenna), -1):
            xs = line - along_antenna
            ys = slope * xs
            fc = fc_t + ac * xs + bc * ys
            fr = fr_t + ar * xs + br * ys
            s = xs * length * res
            best = max(best, (elevation(dem, fr, fc) - ha) / s - s * CURV)
        vis[r, c] = best <= sig_t
        margin[r, c] = sig_t - best
    return vis, margin


# ---------------------------------------------------------------------------------------------


def test_sweep_follows_its_description_cell_by_cell():
    """Numba kernel = the documented sweep, except within rounding of grazing."""
    grid = square_grid(41, 30.0)
    dem = smooth_hills(grid.shape, 60.0, 3.0, seed=3)
    for tx, ty, h_tx, radius in [
        (float(grid.x_centres()[20]), float(grid.y_centres()[20]), 10.0, 560.0),  # on a centre
        (X0 + 611.3, Y0 + 587.9, 6.0, 500.0),  # off centre
        (X0 - 70.0, Y0 + 410.0, 40.0, 900.0),  # outside the grid
    ]:
        got = line_of_sight(dem, grid, tx, ty, h_tx, h_rx_m=1.5, radius_m=radius, method="sweep")
        want, margin = ref_sweep(dem, grid, tx, ty, h_tx, 1.5, radius)
        differ = got != want
        assert np.all(np.abs(margin[differ]) < 1e-9), margin[differ]
        assert 0.1 < want[in_range(grid, tx, ty, radius)].mean() < 0.9


@pytest.mark.parametrize("level", [0.0, 250.0])
def test_flat_dem_sweep_equals_exact_and_sees_everything_in_range(level):
    grid = square_grid(120, 30.0)
    dem = np.full(grid.shape, level)
    tx, ty = X0 + 1234.5, Y0 + 2345.6
    radius = 1600.0
    exact = line_of_sight(dem, grid, tx, ty, 10.0, radius_m=radius)
    sweep = line_of_sight(dem, grid, tx, ty, 10.0, radius_m=radius, method="sweep")
    inside = in_range(grid, tx, ty, radius)
    assert np.array_equal(sweep, exact)
    assert sweep[inside].all()
    assert not sweep[~inside].any()


def test_flat_earth_sweep_ends_at_the_radio_horizon():
    """Sea level, 10 m mast, 1.5 m receivers: horizon √(2 k R_e)(√10 + √1.5) ≈ 18.1 km."""
    res = 100.0
    grid = GridSpec.from_bounds((X0, Y0, X0 + 30_000, Y0 + 5 * res), res, UTM49)
    tx, ty = float(grid.x_centres()[0]), float(grid.y_centres()[2])
    got = line_of_sight(np.zeros(grid.shape), grid, tx, ty, 10.0, radius_m=30_000, method="sweep")
    horizon = math.sqrt(2 * K_FACTOR * EARTH_RADIUS_M) * (math.sqrt(10.0) + math.sqrt(1.5))
    dist = np.abs(grid.x_centres() - tx)
    row = got[2]
    assert row[dist < horizon - res].all()
    assert not row[dist > horizon + res].any()


@pytest.mark.parametrize("method", VIEWSHED_METHODS)
def test_a_ridge_hides_the_cells_behind_it(method):
    """A 60 m north-south wall 1.5 km east of a 20 m mast on flat ground at 0 m.

    A cell 2+ cells behind the wall, at distance d, with the wall at distance d_w along the
    same ray, is hidden iff the wall (plus bulge) rises above the straight line from the mast
    top: 60 > 20 + (1.5 − 20)·d_w/d, true for every d within the radius. Cells in front of the
    wall see the mast over flat ground.
    """
    res = 30.0
    grid = square_grid(100, res)
    dem = np.zeros(grid.shape)
    wall = 75
    dem[:, wall] = 60.0
    tx, ty = float(grid.x_centres()[25]), float(grid.y_centres()[50])
    radius = 2800.0
    got = line_of_sight(dem, grid, tx, ty, 20.0, radius_m=radius, method=method)
    inside = in_range(grid, tx, ty, radius)
    cols = np.broadcast_to(np.arange(grid.width), grid.shape)
    behind = inside & (cols >= wall + 2)
    front = inside & (cols <= wall - 2)
    assert behind.sum() > 500
    assert not got[behind].any()
    assert got[front].all()
    assert not got[~inside].any()


def test_sweep_agrees_with_exact_on_smooth_random_terrain():
    """≥ 99 % of the cells in range, as on the benchmark's hills (smaller here)."""
    grid = square_grid(200, 30.0)
    dem = smooth_hills(grid.shape, 120.0, 12.0, seed=11)
    for tx, ty in [(X0 + 3015.0, Y0 + 2985.0), (X0 + 1777.7, Y0 + 4321.1)]:
        exact = line_of_sight(dem, grid, tx, ty, 25.0, radius_m=2900.0)
        sweep = line_of_sight(dem, grid, tx, ty, 25.0, radius_m=2900.0, method="sweep")
        inside = in_range(grid, tx, ty, 2900.0)
        assert 0.1 < exact[inside].mean() < 0.9  # a real mix of visible and hidden cells
        assert np.mean(sweep[inside] == exact[inside]) >= 0.99


@pytest.mark.parametrize(
    ("tx", "ty", "radius"),
    [
        (X0 + 1011.0, Y0 + 905.0, 700.0),
        (X0 + 15.0, Y0 + 15.0, 1000.0),  # corner cell's centre
        (X0 - 400.0, Y0 + 900.0, 1000.0),  # outside the grid, circle overlapping it
        (X0 + 900.0, Y0 + 900.0, 10.0),  # radius smaller than a cell: only the antenna's cell
        (X0 + 5000.0, Y0 + 900.0, 1000.0),  # the circle misses the grid
    ],
)
def test_sweep_is_false_outside_the_radius_and_input_unchanged(tx, ty, radius):
    grid = square_grid(60, 30.0)
    dem = smooth_hills(grid.shape, 50.0, 4.0, seed=2)
    before = dem.copy()
    got = line_of_sight(dem, grid, tx, ty, 15.0, radius_m=radius, method="sweep")
    inside = in_range(grid, tx, ty, radius)
    assert got.shape == grid.shape
    assert got.dtype == bool
    assert not got[~inside].any()
    if inside.any():
        assert got[inside].mean() > 0.3
    assert np.array_equal(dem, before)


def test_voids_and_nodata_count_as_sea_level_in_the_sweep():
    """NaN and the grid's nodata value read as 0 m (the kernel's checked path) — the same
    answer as the DEM with zeros there (its unchecked path)."""
    grid = square_grid(80, 30.0)
    zeros = smooth_hills(grid.shape, 90.0, 5.0, seed=4)
    zeros[30:33, 20:60] = 0.0
    zeros[50, 10:70] = 0.0
    holes = zeros.copy()
    holes[30:33, 20:60] = np.nan
    holes[50, 10:70] = grid.nodata
    tx, ty = X0 + 1200.0, Y0 + 1300.0
    want = line_of_sight(zeros, grid, tx, ty, 12.0, radius_m=1500.0, method="sweep")
    got = line_of_sight(holes, grid, tx, ty, 12.0, radius_m=1500.0, method="sweep")
    assert np.array_equal(got, want)


def test_sweep_does_not_depend_on_the_number_of_threads():
    grid = square_grid(150, 30.0)
    dem = smooth_hills(grid.shape, 100.0, 6.0, seed=9)
    args = (dem, grid, X0 + 1500.0, Y0 + 2000.0, 15.0)
    before = nb.get_num_threads()
    try:
        nb.set_num_threads(1)
        one = line_of_sight(*args, radius_m=2500.0, method="sweep")
    finally:
        nb.set_num_threads(before)
    assert np.array_equal(line_of_sight(*args, radius_m=2500.0, method="sweep"), one)


def test_unknown_method_is_a_teaching_error():
    grid = square_grid(10, 30.0)
    dem = np.zeros(grid.shape)
    with pytest.raises(ValueError, match=r"'radial'.*exact, sweep"):
        line_of_sight(dem, grid, X0 + 150.0, Y0 + 150.0, 10.0, radius_m=200.0, method="radial")
    with pytest.raises(ValueError, match="shape"):
        line_of_sight(dem[:5], grid, X0, Y0, 10.0, radius_m=200.0, method="sweep")
