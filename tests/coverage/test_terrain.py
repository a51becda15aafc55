"""Terrain line of sight and diffraction loss against hand-computed geometry and brute force.

Every expected value is computed here, independently of the module: knife-edge values from the
ITU-R P.526 formula and from the Fresnel integrals, single and double ridges from their
geometry, the radio horizon from d ≈ √(2 k R_e) (√h1 + √h2), and the viewshed from a plain
python ray-by-ray reference.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter
from scipy.special import fresnel

from telcoplan.coverage.terrain import (
    DIFFRACTION_METHODS,
    EARTH_RADIUS_M,
    K_FACTOR,
    knife_edge_loss,
    line_of_sight,
    path_terrain_loss,
    path_terrain_loss_with_buffer,
    profile_buffer_size,
    terrain_profile_loss,
)
from telcoplan.gis.grid import GridSpec
from tests.conftest import UTM49, X0, Y0

C = 299_792_458.0
METHODS = sorted(DIFFRACTION_METHODS)
KR = K_FACTOR * EARTH_RADIUS_M


# ---------------------------------------------------------------------------------------------
# independent references
# ---------------------------------------------------------------------------------------------


def J(nu: float) -> float:
    """ITU-R P.526 knife-edge loss, by hand."""
    if nu <= -0.78:
        return 0.0
    return 6.9 + 20 * math.log10(math.sqrt((nu - 0.1) ** 2 + 1) + nu - 0.1)


def nu_of(h: float, d1: float, d2: float, lam: float) -> float:
    return h * math.sqrt(2 / lam * (1 / d1 + 1 / d2))


def bulge(d1: float, d2: float) -> float:
    return d1 * d2 / (2 * KR)


def ref_elevation(dem: np.ndarray, grid: GridSpec, x: float, y: float) -> float:
    """Bilinear between cell centres; NaN = 0; edge values in the outer half cell; 0 outside."""
    H, W = dem.shape
    res = grid.resolution
    fc = (x - grid.transform.c) / res - 0.5
    fr = (grid.transform.f - y) / res - 0.5
    if not (-0.5 <= fc <= W - 0.5 and -0.5 <= fr <= H - 0.5):
        return 0.0

    def z(r: int, c: int) -> float:
        v = float(dem[min(max(r, 0), H - 1), min(max(c, 0), W - 1)])
        return 0.0 if math.isnan(v) else v

    c0, r0 = math.floor(fc), math.floor(fr)
    wc, wr = fc - c0, fr - r0
    top = (1 - wc) * z(r0, c0) + wc * z(r0, c0 + 1)
    bottom = (1 - wc) * z(r0 + 1, c0) + wc * z(r0 + 1, c0 + 1)
    return (1 - wr) * top + wr * bottom


def ref_clearance(dem, grid, tx, ty, ha, rx, ry, hb) -> float:
    """Largest height of terrain + bulge above the ray, over samples at most one cell apart."""
    d = math.dist((tx, ty), (rx, ry))
    n = max(1, math.ceil(d / grid.resolution - 1e-9))
    best = -math.inf
    for i in range(1, n):
        s = d * i / n
        g = ref_elevation(dem, grid, tx + (rx - tx) * i / n, ty + (ry - ty) * i / n)
        best = max(best, g + bulge(s, d - s) - (ha + (hb - ha) * s / d))
    return best


def ref_viewshed(dem, grid, tx, ty, h_tx, h_rx, radius):
    """(visible, clearance) per cell by brute force; NaN clearance outside the radius."""
    ha = ref_elevation(dem, grid, tx, ty) + h_tx
    clr = np.full(grid.shape, np.nan)
    for r, y in enumerate(grid.y_centres()):
        for c, x in enumerate(grid.x_centres()):
            if math.dist((x, y), (tx, ty)) > radius:
                continue
            z = float(dem[r, c])
            hb = (0.0 if math.isnan(z) else z) + h_rx
            clr[r, c] = ref_clearance(dem, grid, tx, ty, ha, x, y, hb)
    return clr <= 0.0, clr


# ---------------------------------------------------------------------------------------------
# fixtures
# ---------------------------------------------------------------------------------------------


def strip(length_m: float, res: float) -> GridSpec:
    """A 3-row strip of cells along x, starting at (X0, Y0); paths run along the middle row."""
    return GridSpec.from_bounds((X0, Y0, X0 + length_m, Y0 + 3 * res), res, UTM49)


def centre(grid: GridSpec, col: int, row: int = 1) -> tuple[float, float]:
    return float(grid.x_centres()[col]), float(grid.y_centres()[row])


def hills(shape, relief, seed, sigma=3.0):
    """Smooth random terrain between 0 and ``relief`` metres."""
    z = gaussian_filter(np.random.default_rng(seed).standard_normal(shape), sigma)
    z -= z.min()
    return z * (relief / z.max())


@pytest.fixture(scope="module")
def hilly():
    """A 64 x 64 grid of 30 m cells with 80 m of smooth random relief, a few NaN voids and one
    cell at the grid's nodata value (both count as 0 m)."""
    grid = GridSpec.from_bounds((X0, Y0, X0 + 64 * 30, Y0 + 64 * 30), 30.0, UTM49)
    dem = hills(grid.shape, 80.0, seed=5)
    dem[10, 10:13] = np.nan
    dem[40, 50] = grid.nodata
    return grid, dem


# ---------------------------------------------------------------------------------------------
# knife edge
# ---------------------------------------------------------------------------------------------


def test_knife_edge_textbook_values():
    # P.526 figure / formula: J(0) ≈ 6 dB, J(1) ≈ 13.9 dB, J(2.4) ≈ 20.5 dB
    assert knife_edge_loss(0.0) == pytest.approx(6.0, abs=0.05)
    assert knife_edge_loss(1.0) == pytest.approx(13.9, abs=0.05)
    assert knife_edge_loss(2.4) == pytest.approx(20.5, abs=0.05)
    for nu in (-0.7, -0.3, 0.0, 0.5, 1.0, 2.4, 5.0, 20.0):
        assert knife_edge_loss(nu) == pytest.approx(J(nu), abs=1e-12)
    # the boundary: 0 at and below -0.78; the formula is ≈ 0.004 dB there (a negligible step)
    assert knife_edge_loss(-0.78) == 0.0
    assert knife_edge_loss(-3.0) == 0.0
    assert 0.0 < knife_edge_loss(-0.7799) < 0.01
    assert 6.9 + 20 * math.log10(math.sqrt(0.88**2 + 1) - 0.88) == pytest.approx(0.0040, abs=1e-4)


def test_knife_edge_is_vectorised_and_returns_floats_for_scalars():
    nu = np.array([[-1.0, 0.0], [1.0, 2.4]])
    out = knife_edge_loss(nu)
    assert out.shape == nu.shape
    assert np.allclose(out, [[0.0, J(0.0)], [J(1.0), J(2.4)]])
    assert isinstance(knife_edge_loss(0.5), float)


def test_knife_edge_large_nu_approximation():
    # J(ν) ≈ 13 + 20 log10 ν for large ν (P.526); the gap is 0.9 dB at ν = 1, < 0.5 dB from 1.5
    for nu in np.linspace(1.5, 20.0, 50):
        assert abs(knife_edge_loss(nu) - (13.0 + 20 * math.log10(nu))) < 0.5


def test_knife_edge_against_fresnel_integrals():
    """The P.526 approximation is within 0.2 dB of the exact Fresnel-Kirchhoff knife edge."""
    nu = np.linspace(-0.78, 8.0, 500)
    S, Cf = fresnel(nu)
    exact = -20 * np.log10(np.sqrt((1 - Cf - S) ** 2 + (Cf - S) ** 2) / 2)
    assert np.max(np.abs(knife_edge_loss(nu) - exact)) < 0.2


# ---------------------------------------------------------------------------------------------
# flat earth, single and double ridges
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("level", [0.0, 100.0])
@pytest.mark.parametrize("freq", [900.0, 1800.0, 2600.0])
def test_flat_terrain_short_paths_have_no_loss(method, level, freq):
    grid = strip(6000, 30.0)
    dem = np.full(grid.shape, level)
    tx, ty = centre(grid, 0)
    for col in (10, 33) if freq < 1000 else (10, 33, 66):  # 0.3, 1 (, 2) km
        rx, ry = centre(grid, col)
        loss, clr = terrain_profile_loss(dem, grid, tx, ty, 30.0, rx, ry, 1.5, freq, method)
        assert loss == 0.0
        assert clr < 0.0


def test_low_receiver_foreground_in_the_fresnel_zone():
    """5 km over flat ground, 30 m / 1.5 m at 1800 MHz: line of sight, yet the flat ground a few
    hundred metres before the receiver is less than 0.55 first-Fresnel radii below the ray,
    so ν = √2·h/F1 > −0.78 and the knife edge costs ≈ 0.9 dB (documented behaviour)."""
    grid = strip(6000, 30.0)
    dem = np.zeros(grid.shape)
    tx, ty = centre(grid, 0)
    rx, ry = centre(grid, 166)
    lam, d, n = C / 1.8e9, 4980.0, 166
    nus = []
    for i in range(1, n):
        s = d * i / n
        nus.append(nu_of(bulge(s, d - s) - (30.0 + (1.5 - 30.0) * s / d), s, d - s, lam))
    j_max = J(max(nus))
    assert 0.85 < j_max < 1.0
    got = {
        m: terrain_profile_loss(dem, grid, tx, ty, 30.0, rx, ry, 1.5, 1800.0, m) for m in METHODS
    }
    assert all(clr < 0 for _, clr in got.values())
    assert got["bullington"][0] == pytest.approx(j_max, abs=1e-9)
    assert got["epstein-peterson"][0] == pytest.approx(j_max, abs=1e-9)
    # Deygout adds its T-weighted neighbours of that weak main edge: T = 1 − e^(−0.9/6) ≈ 0.14
    assert j_max < got["deygout"][0] < j_max + 0.15 * 2 * J(0.0)


def single_ridge_expectation(d, d1, h_tx, h_rx, wall, lam):
    d2 = d - d1
    h = wall + bulge(d1, d2) - (h_tx + (h_rx - h_tx) * d1 / d)
    return h, J(nu_of(h, d1, d2, lam))


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("wall", [20.0, 25.0, 40.0, 80.0, 150.0])
def test_single_ridge_is_the_textbook_knife_edge(method, wall):
    res, freq = 30.0, 900.0
    grid = strip(3000 + 2 * res, res)
    dem = np.zeros(grid.shape)
    dem[:, 41] = wall  # a wall of cells across the path, 40 % of the way
    tx, ty = centre(grid, 1)
    rx, ry = centre(grid, 101)
    loss, clr = terrain_profile_loss(dem, grid, tx, ty, 30.0, rx, ry, 10.0, freq, method)
    h, expected = single_ridge_expectation(3000.0, 1200.0, 30.0, 10.0, wall, C / (freq * 1e6))
    assert clr == pytest.approx(h, abs=1e-6)
    assert loss == pytest.approx(expected, abs=1e-6)
    if wall == 20.0:  # below the ray (line of sight) but inside the first Fresnel zone
        assert clr < 0 < loss


@pytest.mark.parametrize("method", METHODS)
def test_scalar_kernel_function_matches_wrapper(method):
    res, freq = 30.0, 900.0
    grid = strip(3000 + 2 * res, res)
    dem = np.zeros(grid.shape)
    dem[:, 41] = 60.0
    tx, ty = centre(grid, 1)
    rx, ry = centre(grid, 101)
    t = grid.transform
    lam = C / (freq * 1e6)
    code = DIFFRACTION_METHODS[method]
    got = path_terrain_loss(dem, t.c, t.f, t.a, tx, ty, 30.0, rx, ry, 10.0, lam, code)
    buf = np.empty(profile_buffer_size(3000.0, res))
    assert len(buf) <= math.ceil(3000.0 / res) + 2
    got_buf = path_terrain_loss_with_buffer(
        dem, t.c, t.f, t.a, tx, ty, 30.0, rx, ry, 10.0, lam, code, buf
    )
    want = terrain_profile_loss(dem, grid, tx, ty, 30.0, rx, ry, 10.0, freq, method)
    assert got == pytest.approx(want, abs=1e-9)
    assert got_buf == got


@pytest.mark.parametrize("method", METHODS)
def test_loss_is_monotone_in_ridge_height(method):
    res = 30.0
    grid = strip(3000 + 2 * res, res)
    tx, ty = centre(grid, 1)
    rx, ry = centre(grid, 101)
    losses = []
    for wall in np.arange(0.0, 200.0, 5.0):
        dem = np.zeros(grid.shape)
        dem[:, 60:63] = wall  # a 90 m thick ridge
        losses.append(terrain_profile_loss(dem, grid, tx, ty, 30.0, rx, ry, 10.0, 900.0, method)[0])
    losses = np.array(losses)
    assert np.all(np.diff(losses) >= -1e-9)
    assert np.all(np.diff(losses[losses > 0]) > 0)  # strictly once the ridge matters
    assert losses[0] == 0.0
    assert losses[-1] > 20.0


def two_ridges(h1, h2, c1=31, c2=71):
    res = 30.0
    grid = strip(3000 + 2 * res, res)
    dem = np.zeros(grid.shape)
    dem[:, c1] = h1
    dem[:, c2] = h2
    return grid, dem, (c1 - 1) * res, (c2 - 1) * res


@pytest.mark.parametrize(("h1", "h2"), [(60.0, 50.0), (45.0, 70.0), (55.0, 55.0)])
def test_two_ridges_against_hand_computed_methods(h1, h2):
    freq, ht, hr, d = 900.0, 30.0, 10.0, 3000.0
    lam = C / (freq * 1e6)
    grid, dem, a, b = two_ridges(h1, h2)
    tx, ty = centre(grid, 1)
    rx, ry = centre(grid, 101)
    ga, gb = h1 + bulge(a, d - a), h2 + bulge(b, d - b)  # ridge tops with the Earth bulge

    def h_above(g, s, s0, h0, s1, h1_):  # height of g at s above the line (s0,h0)-(s1,h1_)
        return g - (h0 + (h1_ - h0) * (s - s0) / (s1 - s0))

    nu_a = nu_of(h_above(ga, a, 0, ht, d, hr), a, d - a, lam)
    nu_b = nu_of(h_above(gb, b, 0, ht, d, hr), b, d - b, lam)
    got = {m: terrain_profile_loss(dem, grid, tx, ty, ht, rx, ry, hr, freq, m)[0] for m in METHODS}
    # Deygout: main edge = larger ν; the other one is seen over the sub-path to the main edge
    if nu_a >= nu_b:
        nu_sec = nu_of(h_above(gb, b, a, ga, d, hr), b - a, d - b, lam)
        main = nu_a
    else:
        nu_sec = nu_of(h_above(ga, a, 0, ht, b, gb), a, b - a, lam)
        main = nu_b
    weight = 1 - math.exp(-J(main) / 6)  # P.526's weight of the secondary edges
    assert got["deygout"] == pytest.approx(J(main) + weight * J(nu_sec), abs=1e-6)
    assert got["deygout"] >= J(main)
    # Epstein-Peterson: each edge over the line joining its neighbours
    ep_a = J(nu_of(h_above(ga, a, 0, ht, b, gb), a, b - a, lam))
    ep_b = J(nu_of(h_above(gb, b, a, ga, d, hr), b - a, d - b, lam))
    if nu_sec > 0:  # both ridges stand on the taut string: both are E-P edges
        assert got["epstein-peterson"] == pytest.approx(ep_a + ep_b, abs=1e-6)
    else:  # the lower ridge hides under the line to the main one: a single edge
        assert (h1, h2) == (45.0, 70.0)
        assert got["epstein-peterson"] == pytest.approx(J(main), abs=1e-6)
    # Bullington: one edge where the steepest rays from both ends cross
    s_tim = max((ga - ht) / a, (gb - ht) / b)
    s_rim = max((ga - hr) / (d - a), (gb - hr) / (d - b))
    d_bp = (hr - ht + s_rim * d) / (s_tim + s_rim)
    h_bp = ht + s_tim * d_bp - (ht + (hr - ht) * d_bp / d)
    assert got["bullington"] == pytest.approx(J(nu_of(h_bp, d_bp, d - d_bp, lam)), abs=1e-6)
    # a single equivalent edge loses less than two summed edges here
    assert got["bullington"] <= got["deygout"]


def test_secondary_edge_below_its_subpath_is_not_an_epstein_peterson_edge():
    # a low ridge near tx, well below the line from tx to the main ridge: E-P = the main edge only
    freq, lam = 900.0, C / 900e6
    grid, dem, _, b = two_ridges(5.0, 80.0)
    tx, ty = centre(grid, 1)
    rx, ry = centre(grid, 101)
    loss, _ = terrain_profile_loss(dem, grid, tx, ty, 30.0, rx, ry, 10.0, freq, "epstein-peterson")
    _, expected = single_ridge_expectation(3000.0, b, 30.0, 10.0, 80.0, lam)
    assert loss == pytest.approx(expected, abs=1e-6)


# ---------------------------------------------------------------------------------------------
# Earth curvature
# ---------------------------------------------------------------------------------------------


def test_earth_bulge_sets_the_radio_horizon():
    """Flat sea, 10 m antennas at both ends: horizon d = √(2 k R_e)(√10 + √10) ≈ 26.1 km."""
    res = 100.0
    grid = strip(45_000, res)
    dem = np.zeros(grid.shape)
    horizon = math.sqrt(2 * KR) * 2 * math.sqrt(10.0)
    assert horizon == pytest.approx(4.12e3 * 2 * math.sqrt(10.0), rel=0.01)  # the 4.12 √h rule
    tx, ty = centre(grid, 0)

    def at(d_m, method="deygout"):
        rx, ry = centre(grid, round(d_m / res))
        return terrain_profile_loss(dem, grid, tx, ty, 10.0, rx, ry, 10.0, 900.0, method)

    loss40, clr40 = at(40_000)
    assert clr40 == pytest.approx(40_000**2 / (8 * KR) - 10.0, abs=1e-6)  # midpoint bulge
    assert clr40 > 0
    assert loss40 > 6.0
    assert at(15_000)[1] < 0
    assert at(horizon - 1000)[1] < 0 < at(horizon + 1000)[1]
    # beyond the horizon, more Earth in the way means more loss, whatever the method
    for method in METHODS:
        losses = [at(d, method)[0] for d in range(28_000, 44_001, 4000)]
        assert np.all(np.diff(losses) > 0)


def test_bullington_over_the_bulge_by_hand():
    """Smooth sea, 40 km, 10 m masts: the edge is where the two horizon rays cross (midpoint)."""
    res, d, h, lam = 100.0, 40_000.0, 10.0, C / 900e6
    grid = strip(45_000, res)
    tx, ty = centre(grid, 0)
    rx, ry = centre(grid, 400)
    s = np.arange(1, 400) * res
    s_tim = np.max((bulge(s, d - s) - h) / s)  # steepest ray from tx (= from rx by symmetry)
    h_bp = s_tim * d / 2
    want = J(nu_of(h_bp, d / 2, d / 2, lam))
    got, _ = terrain_profile_loss(
        np.zeros(grid.shape), grid, tx, ty, h, rx, ry, h, 900.0, "bullington"
    )
    assert got == pytest.approx(want, abs=1e-6)


# ---------------------------------------------------------------------------------------------
# symmetry, voids, wrapper behaviour
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", METHODS)
def test_reciprocity(hilly, method):
    grid, dem = hilly
    rng = np.random.default_rng(11)
    xmin, ymin, xmax, ymax = grid.bounds
    n = 40
    tx, rx = rng.uniform(xmin, xmax, (2, n))
    ty, ry = rng.uniform(ymin, ymax, (2, n))
    ht, hr = rng.uniform(2, 40, (2, n))
    fwd = terrain_profile_loss(dem, grid, tx, ty, ht, rx, ry, hr, 1800.0, method)
    back = terrain_profile_loss(dem, grid, rx, ry, hr, tx, ty, ht, 1800.0, method)
    assert np.allclose(fwd[0], back[0], atol=1e-6)
    assert np.allclose(fwd[1], back[1], atol=1e-6)
    assert (fwd[0] > 0).sum() > 10  # the sample is not trivially clear


def test_nan_and_nodata_count_as_sea_level():
    grid = strip(3000, 30.0)
    tx, ty = centre(grid, 0)
    rx, ry = centre(grid, 99)
    zero = terrain_profile_loss(np.zeros(grid.shape), grid, tx, ty, 5.0, rx, ry, 5.0, 900.0)
    voids = np.full(grid.shape, np.nan)
    voids[0] = grid.nodata
    before = voids.copy()
    assert terrain_profile_loss(voids, grid, tx, ty, 5.0, rx, ry, 5.0, 900.0) == zero
    assert np.array_equal(voids, before, equal_nan=True)  # input not modified


def test_wrapper_broadcasts_and_matches_scalar_calls(hilly):
    grid, dem = hilly
    tx, ty = X0 + 100.0, Y0 + 100.0
    rx = X0 + np.array([[500.0, 900.0], [1300.0, 1800.0]])
    ry = Y0 + np.array([1700.0, 400.0])
    loss, clr = terrain_profile_loss(dem, grid, tx, ty, 25.0, rx, ry, 1.5, 900.0, "bullington")
    assert loss.shape == clr.shape == (2, 2)
    for i in range(2):
        for j in range(2):
            one = terrain_profile_loss(
                dem, grid, tx, ty, 25.0, rx[i, j], ry[j], 1.5, 900.0, "bullington"
            )
            assert (loss[i, j], clr[i, j]) == one


def test_wrapper_adds_ground_elevation_to_antenna_heights():
    grid = strip(3000, 30.0)
    tx, ty = centre(grid, 0)
    rx, ry = centre(grid, 99)
    high = np.full(grid.shape, 250.0)
    assert terrain_profile_loss(high, grid, tx, ty, 20.0, rx, ry, 3.0, 900.0) == pytest.approx(
        terrain_profile_loss(np.zeros(grid.shape), grid, tx, ty, 20.0, rx, ry, 3.0, 900.0),
        abs=1e-9,
    )


def test_short_path_has_no_interior_profile():
    grid = strip(300, 30.0)
    dem = np.full(grid.shape, 50.0)
    tx, ty = centre(grid, 0)
    loss, clr = terrain_profile_loss(dem, grid, tx, ty, 1.0, tx + 25.0, ty, 1.0, 900.0)
    assert loss == 0.0
    assert clr == -math.inf


def test_bad_inputs_raise_teaching_errors():
    grid = strip(300, 30.0)
    dem = np.zeros(grid.shape)
    with pytest.raises(ValueError, match="bullington, deygout, epstein-peterson"):
        terrain_profile_loss(dem, grid, X0, Y0, 1, X0 + 90, Y0, 1, 900.0, method="fresnel")
    with pytest.raises(ValueError, match="shape"):
        terrain_profile_loss(dem[:, :5], grid, X0, Y0, 1, X0 + 90, Y0, 1, 900.0)
    with pytest.raises(ValueError, match="freq_mhz"):
        terrain_profile_loss(dem, grid, X0, Y0, 1, X0 + 90, Y0, 1, 0.0)
    with pytest.raises(ValueError, match="radius_m"):
        line_of_sight(dem, grid, X0, Y0, 10.0, radius_m=0.0)
    with pytest.raises(ValueError, match="rx must be finite"):
        terrain_profile_loss(dem, grid, X0, Y0, 1, [X0 + 90, np.nan], Y0, 1, 900.0)
    with pytest.raises(ValueError, match="finite"):
        line_of_sight(dem, grid, np.nan, Y0, 10.0, radius_m=100.0)


# ---------------------------------------------------------------------------------------------
# viewshed
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("where", "h_tx"),
    [("cell centre", 15.0), ("off centre", 8.0), ("outside the grid", 60.0)],
)
def test_line_of_sight_matches_brute_force(hilly, where, h_tx):
    grid, dem = hilly
    before = dem.copy()
    tx, ty = {
        "cell centre": centre(grid, 30, 33),
        "off centre": (X0 + 1111.1, Y0 + 777.7),
        "outside the grid": (X0 - 150.0, Y0 + 900.0),
    }[where]
    radius = 1100.0
    got = line_of_sight(dem, grid, tx, ty, h_tx, h_rx_m=1.5, radius_m=radius)
    ref_dem = np.where(dem == grid.nodata, np.nan, dem)
    want, clr = ref_viewshed(ref_dem, grid, tx, ty, h_tx, 1.5, radius)
    assert got.shape == grid.shape
    assert got.dtype == bool
    assert not got[np.isnan(clr)].any()  # nothing outside the radius
    differ = got != want
    # agreement, except where the reference itself is within rounding of grazing
    assert np.all(np.abs(clr[differ]) < 1e-6), clr[differ]
    assert 0.1 < want[~np.isnan(clr)].mean() < 0.9  # a real mix of visible and hidden cells
    assert np.array_equal(dem, before, equal_nan=True)


def test_line_of_sight_is_exactly_the_clearance_sign_of_path_terrain_loss():
    """The viewshed's bounds only skip work: it equals clearance ≤ 0 of the scalar function."""
    grid = GridSpec.from_bounds((X0, Y0, X0 + 150 * 30, Y0 + 150 * 30), 30.0, UTM49)
    dem = hills(grid.shape, 120.0, seed=2, sigma=5.0)
    tx, ty = centre(grid, 75, 70)
    h_tx, h_rx, radius = 20.0, 1.5, 2200.0
    got = line_of_sight(dem, grid, tx, ty, h_tx, h_rx_m=h_rx, radius_m=radius)
    t = grid.transform
    ha = float(dem[70, 75]) + h_tx  # the antenna sits on a cell centre
    X, Y = grid.cell_centres()
    inside = (X - tx) ** 2 + (Y - ty) ** 2 <= radius**2
    want = np.zeros(grid.shape, dtype=bool)
    for r, c in zip(*np.nonzero(inside), strict=True):
        _, clr = path_terrain_loss(
            dem, t.c, t.f, t.a, tx, ty, ha, X[r, c], Y[r, c], dem[r, c] + h_rx, 0.33, 0
        )
        want[r, c] = clr <= 0.0
    assert np.array_equal(got, want)
    assert 0.05 < want[inside].mean() < 0.95


def test_flat_earth_viewshed_ends_at_the_radio_horizon():
    """Sea-level DEM, 10 m mast, 1.5 m receivers: horizon √(2 k R_e)(√10 + √1.5) ≈ 18.1 km."""
    res = 100.0
    grid = strip(30_000, res)
    tx, ty = centre(grid, 0)
    got = line_of_sight(np.zeros(grid.shape), grid, tx, ty, 10.0, radius_m=30_000)
    horizon = math.sqrt(2 * KR) * (math.sqrt(10.0) + math.sqrt(1.5))
    dist = np.abs(grid.x_centres() - tx)
    row = got[1]
    assert row[dist < horizon - res].all()
    assert not row[dist > horizon + res].any()
