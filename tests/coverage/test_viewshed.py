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
from tests.conftest import UTM49, X0, Y0, gdal_tool_or_skip

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


def ref_planes(dem, grid, tx, ty, h_tx, h_rx, radius):
    """The reference-planes method as documented, in plain python: (visible, margin) per cell.

    Four cones (u along the axis from the antenna's cell, v across, −u < v ≤ u), line by line:
    ground lowered by its bulge d²·C; a cell's horizon is the previous line's horizon at the
    point its ray crosses that line (interpolated between the two cells there, the nearest end
    value beyond the line's ends), raised to this line about the antenna's height (× x/(x−1));
    visible iff its receiver is not below; its own horizon is the higher of that and its
    ground. Lines span the radius plus a cell and, with the antenna on the grid, the grid plus
    a cell (0 m off the grid); the first line sees everything.
    """
    res = grid.resolution
    t = grid.transform
    h, w = grid.shape
    fc_t = (tx - t.c) / res - 0.5
    fr_t = (t.f - ty) / res - 0.5
    c_a, r_a = math.floor(fc_t + 0.5), math.floor(fr_t + 0.5)
    ha = elevation(dem, fr_t, fc_t) + h_tx
    reach = radius / res + 1.0
    inside = 0 <= r_a < h and 0 <= c_a < w
    vis = np.zeros(grid.shape, dtype=bool)
    margin = np.full(grid.shape, np.inf)
    if inside and (t.c + (c_a + 0.5) * res - tx) ** 2 + (t.f - (r_a + 0.5) * res - ty) ** 2 <= (
        radius * radius
    ):
        vis[r_a, c_a] = True  # the antenna's own cell
    # (a_u, a_v, b_u, b_v): cell (u, v) is at column c_a + a_u·u + a_v·v, row r_a + b_u·u + b_v·v
    for a_u, a_v, b_u, b_v in [(1, 0, 0, 1), (0, -1, 1, 0), (-1, 0, 0, -1), (0, 1, -1, 0)]:
        au = a_u * (fc_t - c_a) + b_u * (fr_t - r_a)
        av = a_v * (fc_t - c_a) + b_v * (fr_t - r_a)
        prev = {}
        u = 0
        while True:
            u += 1
            x = u - au
            hw = math.sqrt(max(reach * reach - x * x, 0.0))
            vs = range(max(-u, math.floor(av - hw) - 1), min(u, math.ceil(av + hw) + 1) + 1)

            def cell(v, u=u, a_u=a_u, a_v=a_v, b_u=b_u, b_v=b_v):
                return r_a + b_u * u + b_v * v, c_a + a_u * u + a_v * v

            if inside:
                if not any(0 <= cell(v)[0] < h and 0 <= cell(v)[1] < w for v in range(-u, u + 1)):
                    break  # the line is off the grid
                on = [v for v in range(-u, u + 1) if 0 <= cell(v)[0] < h and 0 <= cell(v)[1] < w]
                vs = [v for v in vs if min(on) - 1 <= v <= max(on) + 1]
            if not vs or x > reach + 1:
                break
            lo, hi = min(prev, default=0), max(prev, default=0)
            cur = {}
            for v in vs:
                r, c = cell(v)
                on_grid = 0 <= r < h and 0 <= c < w
                z = float(dem[r, c]) if on_grid else 0.0
                z = 0.0 if math.isnan(z) or z == grid.nodata else z
                dx = t.c + (c + 0.5) * res - tx
                dy = t.f - (r + 0.5) * res - ty
                d2 = dx * dx + dy * dy
                zc = z - d2 * CURV
                if u == 1:
                    thr = -math.inf
                else:
                    k = v + 1 if v <= av else v - 1  # the neighbour towards the axis
                    wgt = min(abs(v - av) / x, 1.0)
                    p_v = prev[min(max(v, lo), hi)]
                    p_k = prev[min(max(k, lo), hi)]
                    thr = ha + (p_v + wgt * (p_k - p_v) - ha) * (x / (x - 1.0))
                cur[v] = max(thr, zc)
                if on_grid and v > -u and d2 <= radius * radius:
                    vis[r, c] = thr <= zc + h_rx or d2 <= (res * (1 + 1e-9)) ** 2
                    margin[r, c] = zc + h_rx - thr
            prev = cur
    return vis, margin


# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("method", "ref"), [("sweep", ref_sweep), ("planes", ref_planes)])
def test_approximate_methods_follow_their_description_cell_by_cell(method, ref):
    """Numba kernel = the documented method, except within rounding of grazing."""
    grid = square_grid(41, 30.0)
    dem = smooth_hills(grid.shape, 60.0, 3.0, seed=3)
    for tx, ty, h_tx, radius in [
        (float(grid.x_centres()[20]), float(grid.y_centres()[20]), 10.0, 560.0),  # on a centre
        (X0 + 611.3, Y0 + 587.9, 6.0, 500.0),  # off centre
        (X0 - 70.0, Y0 + 410.0, 40.0, 900.0),  # outside the grid
    ]:
        got = line_of_sight(dem, grid, tx, ty, h_tx, h_rx_m=1.5, radius_m=radius, method=method)
        want, margin = ref(dem, grid, tx, ty, h_tx, 1.5, radius)
        differ = got != want
        assert np.all(np.abs(margin[differ]) < 1e-9), margin[differ]
        assert 0.1 < want[in_range(grid, tx, ty, radius)].mean() < 0.9


APPROXIMATE = [m for m in VIEWSHED_METHODS if m != "exact"]


@pytest.mark.parametrize("method", APPROXIMATE)
@pytest.mark.parametrize("level", [0.0, 250.0])
def test_flat_dem_approximations_equal_exact_and_see_everything_in_range(level, method):
    grid = square_grid(120, 30.0)
    dem = np.full(grid.shape, level)
    tx, ty = X0 + 1234.5, Y0 + 2345.6
    radius = 1600.0
    exact = line_of_sight(dem, grid, tx, ty, 10.0, radius_m=radius)
    sweep = line_of_sight(dem, grid, tx, ty, 10.0, radius_m=radius, method=method)
    inside = in_range(grid, tx, ty, radius)
    assert np.array_equal(sweep, exact)
    assert sweep[inside].all()
    assert not sweep[~inside].any()


@pytest.mark.parametrize("method", APPROXIMATE)
def test_flat_earth_approximations_end_at_the_radio_horizon(method):
    """Sea level, 10 m mast, 1.5 m receivers: horizon √(2 k R_e)(√10 + √1.5) ≈ 18.1 km."""
    res = 100.0
    grid = GridSpec.from_bounds((X0, Y0, X0 + 30_000, Y0 + 5 * res), res, UTM49)
    tx, ty = float(grid.x_centres()[0]), float(grid.y_centres()[2])
    got = line_of_sight(np.zeros(grid.shape), grid, tx, ty, 10.0, radius_m=30_000, method=method)
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


@pytest.mark.parametrize("method", APPROXIMATE)
def test_approximations_agree_with_exact_on_smooth_random_terrain(method):
    """≥ 99 % of the cells in range, as on the benchmark's hills (smaller here)."""
    grid = square_grid(200, 30.0)
    dem = smooth_hills(grid.shape, 120.0, 12.0, seed=11)
    for tx, ty in [(X0 + 3015.0, Y0 + 2985.0), (X0 + 1777.7, Y0 + 4321.1)]:
        exact = line_of_sight(dem, grid, tx, ty, 25.0, radius_m=2900.0)
        sweep = line_of_sight(dem, grid, tx, ty, 25.0, radius_m=2900.0, method=method)
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
@pytest.mark.parametrize("method", APPROXIMATE)
def test_approximations_are_false_outside_the_radius_and_input_unchanged(tx, ty, radius, method):
    grid = square_grid(60, 30.0)
    dem = smooth_hills(grid.shape, 50.0, 4.0, seed=2)
    before = dem.copy()
    got = line_of_sight(dem, grid, tx, ty, 15.0, radius_m=radius, method=method)
    inside = in_range(grid, tx, ty, radius)
    assert got.shape == grid.shape
    assert got.dtype == bool
    assert not got[~inside].any()
    if inside.any():
        assert got[inside].mean() > 0.3
    assert np.array_equal(dem, before)


@pytest.mark.parametrize("method", APPROXIMATE)
def test_voids_and_nodata_count_as_sea_level_in_the_approximations(method):
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
    want = line_of_sight(zeros, grid, tx, ty, 12.0, radius_m=1500.0, method=method)
    got = line_of_sight(holes, grid, tx, ty, 12.0, radius_m=1500.0, method=method)
    assert np.array_equal(got, want)


@pytest.mark.parametrize("method", ["sweep"])  # the other methods run on one thread
def test_approximations_do_not_depend_on_the_number_of_threads(method):
    grid = square_grid(150, 30.0)
    dem = smooth_hills(grid.shape, 100.0, 6.0, seed=9)
    args = (dem, grid, X0 + 1500.0, Y0 + 2000.0, 15.0)
    before = nb.get_num_threads()
    try:
        nb.set_num_threads(1)
        one = line_of_sight(*args, radius_m=2500.0, method=method)
    finally:
        nb.set_num_threads(before)
    assert np.array_equal(line_of_sight(*args, radius_m=2500.0, method=method), one)


def test_unknown_method_is_a_teaching_error():
    grid = square_grid(10, 30.0)
    dem = np.zeros(grid.shape)
    with pytest.raises(ValueError, match=r"'radial'.*exact, sweep, planes"):
        line_of_sight(dem, grid, X0 + 150.0, Y0 + 150.0, 10.0, radius_m=200.0, method="radial")
    with pytest.raises(ValueError, match="shape"):
        line_of_sight(dem[:5], grid, X0, Y0, 10.0, radius_m=200.0, method="sweep")
    for method in VIEWSHED_METHODS:
        with pytest.raises(ValueError, match="finite"):
            line_of_sight(dem, grid, X0, Y0, 10.0, radius_m=np.inf, method=method)


def test_planes_reproduces_gdal_viewshed(tmp_path):
    """The same algorithm as GDAL's viewshed (Wang et al. 2000; ``gdal_viewshed``): on smooth
    hills, with the Earth's curvature matched (GDAL lowers cells by cc·d²/D, D the ellipsoid's
    diameter, so cc = a / (k·R_e)), the answers agree on ≥ 99.99 % of the cells in range.

    The antenna stands on a cell centre (GDAL puts its observer on one). The sweep, a different
    approximation, agrees with GDAL on only ≈ 99.3 % of such cells.
    """
    import subprocess

    import rasterio

    from telcoplan.gis.raster import write_raster

    exe = gdal_tool_or_skip("gdal_viewshed")
    grid = square_grid(300, 30.0)
    dem = smooth_hills(grid.shape, 150.0, 10.0, seed=21)
    write_raster(tmp_path / "dem.tif", dem, grid)
    cc = 6_378_137.0 / (K_FACTOR * EARTH_RADIUS_M)
    radius = 4000.0
    for row, col, h_tx in [(150, 150, 25.0), (97, 203, 40.0), (180, 60, 10.0)]:
        t = grid.transform
        tx, ty = float(grid.x_centres()[col]), float(grid.y_centres()[row])
        ox, oy = t.c + (col + 0.25) * t.a, t.f + (row + 0.25) * t.e  # inside the cell, off edges
        out = tmp_path / f"vs_{row}_{col}.tif"
        subprocess.run(
            [exe, "-q", "-ox", repr(ox), "-oy", repr(oy), "-oz", repr(h_tx), "-tz", "1.5",
             "-md", repr(radius), "-cc", repr(cc), "-vv", "255", "-iv", "0", "-ov", "0",
             str(tmp_path / "dem.tif"), str(out)],
            check=True,
        )  # fmt: skip
        with rasterio.open(out) as src:
            window, wt = src.read(1), src.transform
        c0, r0 = round((wt.c - t.c) / t.a), round((wt.f - t.f) / t.e)
        theirs = np.zeros(grid.shape, dtype=bool)
        theirs[r0 : r0 + window.shape[0], c0 : c0 + window.shape[1]] = window == 255
        ours = line_of_sight(dem, grid, tx, ty, h_tx, radius_m=radius, method="planes")
        inside = in_range(grid, tx, ty, radius)
        assert 0.1 < ours[inside].mean() < 0.9
        assert np.mean(ours[inside] == theirs[inside]) >= 0.9999
