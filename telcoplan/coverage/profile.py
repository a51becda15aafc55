"""Terrain profiles over a DEM raster: sampling, knife-edge diffraction, path loss.

The path-loss half of :mod:`telcoplan.coverage.terrain` (which re-exports the public names):

- **Scalar numba functions** for kernels that evaluate one (tower, cell) pair at a time:
  :func:`path_terrain_loss` (and :func:`path_terrain_loss_with_buffer`, which reuses a
  caller-owned profile buffer and allocates nothing), and the sampling primitives that the
  line-of-sight test of :mod:`telcoplan.coverage.visibility` shares with them
  (:func:`distance`, :func:`n_steps`, :func:`ray`, :func:`bilinear`, :func:`bilinear_padded`,
  :func:`elevation`, :func:`chord`, :data:`CURV`), and the pieces of the losses that the
  kernel's pruned walks reuse: :func:`knife_edge_db` (J(ν)), its inverse :func:`knife_edge_nu`
  and :func:`bullington_edge_loss` (Bullington's edge from its two horizon slopes).
- **numpy-friendly wrappers** on a :class:`~telcoplan.gis.grid.GridSpec`:
  :func:`knife_edge_loss` and :func:`terrain_profile_loss` (broadcasting over paths), and the
  DEM checks :func:`dem_float64` and :func:`dem_array`.

Conventions shared by all functions
-----------------------------------
- **DEM**: 2-D float64 (or float32: read as float64) array of ground elevation (m above sea level) on a north-up grid; row 0
  is the northern edge, ``x0, y0`` the upper-left corner of the grid (m, projected CRS), ``res``
  the square cell size (m). ``dem[r, c]`` is the elevation at the *centre* of its cell.
- **Sampling**: the path from the transmitter (tx) to the receiver (rx), of horizontal length
  ``d``, is cut into ``n = ceil(d / res)`` equal steps (``step = d / n ≤ res``); the profile is
  the ``n − 1`` interior points ``s_i = i · step``. Elevations are **bilinear** interpolations
  between the four surrounding cell centres (peaks between samples are therefore slightly
  smoothed, but the profile is continuous and direction-independent). Within the outer half
  cell the edge values are extended; outside the grid the ground is at 0 m. **NaN DEM cells
  count as elevation 0 m** (sea level), like the voids of :func:`telcoplan.layers.dem.load_dem`.
- **Earth curvature**: each interior point is raised by the Earth bulge
  ``d1 · d2 / (2 k R_e)`` (``k`` = :data:`K_FACTOR` = 4/3, ``R_e`` = :data:`EARTH_RADIUS_M`)
  where ``d1 = s_i`` and ``d2 = d − s_i``.
- **Clearance**: the largest height (m) of a profile point above the straight ray between the
  antennas; ``≤ 0`` means line of sight (grazing counts as visible). Paths with no interior point
  (``d ≤ res``) have clearance ``−inf``.
- **Diffraction** (losses in dB, ≥ 0) — methods by name in :data:`DIFFRACTION_METHODS`:
  ``"deygout"`` (0), ``"bullington"`` (1), ``"epstein-peterson"`` (2); see
  :func:`path_terrain_loss`.

The viewsheds of :func:`telcoplan.coverage.terrain.line_of_sight` sample their rays the same way.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np

from telcoplan._readonly import readonly_arrays
from telcoplan.coverage.choices import DIFFRACTION_METHODS
from telcoplan.gis.grid import GridSpec

__all__ = [
    "CURV",
    "DIFFRACTION_METHODS",
    "EARTH_RADIUS_M",
    "K_FACTOR",
    "bilinear",
    "bilinear_padded",
    "bullington_edge_loss",
    "chord",
    "dem_array",
    "dem_float64",
    "distance",
    "elevation",
    "knife_edge_db",
    "knife_edge_loss",
    "knife_edge_nu",
    "n_steps",
    "path_terrain_loss",
    "path_terrain_loss_with_buffer",
    "profile_buffer_size",
    "ray",
    "terrain_profile_loss",
]

K_FACTOR = 4.0 / 3.0  #: effective Earth-radius factor of the standard atmosphere
EARTH_RADIUS_M = 6_371_000.0  #: mean Earth radius (m)
#: Earth-bulge factor (1/m): a profile point d1 and d2 m from the ends is raised by d1·d2·CURV.
CURV = 1.0 / (2.0 * K_FACTOR * EARTH_RADIUS_M)

_SPEED_OF_LIGHT = 299_792_458.0  # m/s
_NU_MIN = -0.78  # J(ν) = 0 at and below this ν (ITU-R P.526-15 §4.1)


# --------------------------------------------------------------------------------------------
# numba building blocks
# --------------------------------------------------------------------------------------------


@nb.njit(cache=True, inline="always")
def knife_edge_db(nu):
    """J(ν) (dB) of ITU-R P.526-15 §4.1 for one ν (numba); 0 for ν ≤ −0.78."""
    if not nu > _NU_MIN:
        return 0.0
    v = nu - 0.1
    return 6.9 + 20.0 * math.log10(math.sqrt(v * v + 1.0) + v)


@nb.njit(cache=True, inline="always")
def knife_edge_nu(loss_db):
    """The ν at which J(ν) = ``loss_db`` (dB), the inverse of :func:`knife_edge_db`.

    With y = 10^((J − 6.9)/20), √((ν − 0.1)² + 1) + ν − 0.1 = y gives ν = 0.1 + (y² − 1)/(2y).
    Below J(−0.78) (≈ 0.003 dB) it returns −0.78: every ν above that has J(ν) > ``loss_db``.
    """
    y = 10.0 ** ((loss_db - 6.9) / 20.0)
    return max(0.1 + (y * y - 1.0) / (2.0 * y), _NU_MIN)


@nb.njit(cache=True, inline="always")
def distance(dx, dy):
    """Horizontal length (m) of (dx, dy); plain sqrt (math.hypot is several times slower)."""
    return math.sqrt(dx * dx + dy * dy)


@nb.njit(cache=True, inline="always")
def n_steps(d, res):
    """Number of profile steps for a path of length ``d``: ceil(d / res), at least 1."""
    n = math.ceil(d / res - 1e-9)
    return n if n > 1 else 1


@nb.njit(cache=True, inline="always")
def bilinear(dem, fr, fc):
    """Bilinear elevation (m) at fractional row/column ``fr``, ``fc`` (cell centres at integers).

    NaN cells count as 0; the outer half cell extends the edge values; outside the grid is 0.
    """
    nrows, ncols = dem.shape
    if not (-0.5 <= fc <= ncols - 0.5 and -0.5 <= fr <= nrows - 0.5):
        return 0.0
    c0 = math.floor(fc)
    r0 = math.floor(fr)
    wc = fc - c0
    wr = fr - r0
    c1 = min(c0 + 1, ncols - 1)
    r1 = min(r0 + 1, nrows - 1)
    c0 = max(c0, 0)
    r0 = max(r0, 0)
    z00 = dem[r0, c0]
    z01 = dem[r0, c1]
    z10 = dem[r1, c0]
    z11 = dem[r1, c1]
    if z00 != z00:
        z00 = 0.0
    if z01 != z01:
        z01 = 0.0
    if z10 != z10:
        z10 = 0.0
    if z11 != z11:
        z11 = 0.0
    return (1.0 - wr) * ((1.0 - wc) * z00 + wc * z01) + wr * ((1.0 - wc) * z10 + wc * z11)


@nb.njit(cache=True, inline="always")
def bilinear_padded(pad, fr, fc):
    """:func:`bilinear` on a NaN-free DEM padded with one replicated edge cell per side.

    Valid only inside the grid's extent, where it returns bit for bit the same value.
    """
    c0 = math.floor(fc)
    r0 = math.floor(fr)
    wc = fc - c0
    wr = fr - r0
    z00 = pad[r0 + 1, c0 + 1]
    z01 = pad[r0 + 1, c0 + 2]
    z10 = pad[r0 + 2, c0 + 1]
    z11 = pad[r0 + 2, c0 + 2]
    return (1.0 - wr) * ((1.0 - wc) * z00 + wc * z01) + wr * ((1.0 - wc) * z10 + wc * z11)


@nb.njit(cache=True, inline="always")
def elevation(dem, x0, y0, res, x, y):
    """Bilinear ground elevation (m) at (x, y) (see :func:`bilinear`)."""
    return bilinear(dem, (y0 - y) / res - 0.5, (x - x0) / res - 0.5)


@nb.njit(cache=True, inline="always")
def ray(x0, y0, res, tx, ty, rx, ry, n):
    """Fractional (row, col) of tx and their increments per profile step (``n`` steps)."""
    inv = 1.0 / res
    per_step = inv / n
    return (y0 - ty) * inv - 0.5, (tx - x0) * inv - 0.5, (ty - ry) * per_step, (rx - tx) * per_step


@nb.njit(cache=True, inline="always")
def _obstacle(dem, fr0, fc0, dfr, dfc, step, d, i):
    """Terrain + Earth bulge d1·d2/(2 k R_e) (m) at interior profile point ``i``."""
    s = step * i
    return bilinear(dem, fr0 + dfr * i, fc0 + dfc * i) + s * (d - s) * CURV


@nb.njit(cache=True, inline="always")
def chord(ha, hb, a, b, i, inv_len):
    """Height (m) at index ``i`` of the straight line from (a, ha) to (b, hb).

    ``inv_len`` = 1 / (b − a), computed once per line by the caller.
    """
    return (ha * (b - i) + hb * (i - a)) * inv_len


@nb.njit(cache=True, inline="always")
def _nu(h, a, b, i, step, lam):
    """Fresnel-Kirchhoff ν of an edge ``h`` m above the a–b line at index ``i``."""
    d1 = (i - a) * step
    d2 = (b - i) * step
    return h * math.sqrt(2.0 * (d1 + d2) / (lam * d1 * d2))


@nb.njit(cache=True)
def _main_edge(g, a, b, ha, hb, step, lam):
    """(index, ν, max height above the line) of the edge with the largest ν strictly in (a, b).

    Index −1 (and ν = h = −inf) when the sub-path has no interior point.
    """
    best_i = -1
    best_nu = -np.inf
    best_h = -np.inf
    inv_len = 1.0 / (b - a)
    for i in range(a + 1, b):
        h = g[i] - chord(ha, hb, a, b, i, inv_len)
        nu = _nu(h, a, b, i, step, lam)
        if nu > best_nu:
            best_nu = nu
            best_i = i
        if h > best_h:
            best_h = h
    return best_i, best_nu, best_h


@nb.njit(cache=True)
def _fill_profile(dem, x0, y0, res, tx, ty, rx, ry, d, n, g):
    """Fill ``g[1:n]`` with terrain + bulge (m) of the interior profile points."""
    fr0, fc0, dfr, dfc = ray(x0, y0, res, tx, ty, rx, ry, n)
    step = d / n
    for i in range(1, n):
        g[i] = _obstacle(dem, fr0, fc0, dfr, dfc, step, d, i)


@nb.njit(cache=True)
def _deygout(g, n, ha, hb, step, lam):
    p, nu_p, clearance = _main_edge(g, 0, n, ha, hb, step, lam)
    loss = knife_edge_db(nu_p)
    if nu_p > _NU_MIN:
        _, nu_t, _ = _main_edge(g, 0, p, ha, g[p], step, lam)
        _, nu_r, _ = _main_edge(g, p, n, g[p], hb, step, lam)
        weight = 1.0 - math.exp(-loss / 6.0)
        loss += weight * (knife_edge_db(nu_t) + knife_edge_db(nu_r))
    return loss, clearance


@nb.njit(cache=True)
def _epstein_peterson(g, n, ha, hb, step, lam):
    p, nu_p, clearance = _main_edge(g, 0, n, ha, hb, step, lam)
    if not nu_p > _NU_MIN:
        return 0.0, clearance
    t, nu_t, _ = _main_edge(g, 0, p, ha, g[p], step, lam)
    r, nu_r, _ = _main_edge(g, p, n, g[p], hb, step, lam)
    loss = 0.0
    a, h_a = 0, ha  # the main edge is seen from the previous edge (or tx) ...
    if nu_t > 0.0:
        loss += knife_edge_db(nu_t)
        a, h_a = t, g[t]
    b, h_b = n, hb  # ... towards the next edge (or rx)
    if nu_r > 0.0:
        loss += knife_edge_db(nu_r)
        b, h_b = r, g[r]
    h = g[p] - chord(h_a, h_b, a, b, p, 1.0 / (b - a))
    return loss + knife_edge_db(_nu(h, a, b, p, step, lam)), clearance


@nb.njit(cache=True)
def _bullington(g, n, ha, hb, step, lam):
    d = n * step
    s_tr = (hb - ha) / d
    s_tim = -np.inf
    s_rim = -np.inf
    for i in range(1, n):
        s_tim = max(s_tim, (g[i] - ha) / (i * step))
        s_rim = max(s_rim, (g[i] - hb) / ((n - i) * step))
    _, nu_max, clearance = _main_edge(g, 0, n, ha, hb, step, lam)
    if s_tim < s_tr or not s_tim + s_rim > 0.0:
        return knife_edge_db(nu_max), clearance  # line of sight: the edge of largest ν
    return bullington_edge_loss(ha, hb, d, s_tim, s_rim, lam), clearance


@nb.njit(cache=True, inline="always")
def bullington_edge_loss(ha, hb, d, s_tim, s_rim, lam):
    """J(ν_b) (dB) of Bullington's equivalent edge on an obstructed path.

    ``ha``, ``hb``: antenna heights (m, sea level); ``d``: path length (m, ``n · step``);
    ``s_tim``, ``s_rim``: the largest slopes from tx and from rx to the profile points (the
    steepest horizon rays, m/m); ``lam``: wavelength (m). The edge is the intersection of the
    two rays, at d_bp = (h_rx − h_tx + S_rim d)/(S_tim + S_rim) from tx. Valid when the path is
    obstructed (S_tim ≥ S_tr and S_tim + S_rim > 0; see :func:`path_terrain_loss`).
    """
    d_bp = (hb - ha + s_rim * d) / (s_tim + s_rim)
    h_bp = ha + s_tim * d_bp - (ha * (d - d_bp) + hb * d_bp) / d
    nu_b = h_bp * math.sqrt(2.0 * d / (lam * d_bp * (d - d_bp)))
    return knife_edge_db(nu_b)


@nb.njit(cache=True)
def path_terrain_loss_with_buffer(
    dem, x0, y0, res, tx, ty, h_tx_abs, rx, ry, h_rx_abs, wavelength_m, method, buf
):
    """:func:`path_terrain_loss` with a caller-owned profile buffer (no allocation).

    ``buf`` is a float64 work array of length ≥ :func:`profile_buffer_size` (distance, res);
    a kernel can allocate one per thread for its longest path and reuse it for every pair.
    """
    d = distance(rx - tx, ry - ty)
    n = n_steps(d, res)
    if n < 2:
        return 0.0, -np.inf
    _fill_profile(dem, x0, y0, res, tx, ty, rx, ry, d, n, buf)
    step = d / n
    if method == 1:
        return _bullington(buf, n, h_tx_abs, h_rx_abs, step, wavelength_m)
    if method == 2:
        return _epstein_peterson(buf, n, h_tx_abs, h_rx_abs, step, wavelength_m)
    return _deygout(buf, n, h_tx_abs, h_rx_abs, step, wavelength_m)


@nb.njit(cache=True)
def profile_buffer_size(distance_m, res):
    """Length of the profile buffer needed by a path of ``distance_m`` metres (``n + 1``)."""
    return n_steps(distance_m, res) + 1


@nb.njit(cache=True)
def path_terrain_loss(dem, x0, y0, res, tx, ty, h_tx_abs, rx, ry, h_rx_abs, wavelength_m, method):
    """Diffraction loss (dB) and terrain clearance (m) of one path over a DEM.

    Parameters
    ----------
    dem : numpy.ndarray
        Ground elevation (m above sea level), 2-D float64, row 0 = north; NaN counts as 0 m.
    x0, y0 : float
        Upper-left corner of the grid (m, projected CRS).
    res : float
        Cell size (m); also the profile step (see the module notes on sampling).
    tx, ty, rx, ry : float
        Horizontal positions of the transmitter and the receiver (m).
    h_tx_abs, h_rx_abs : float
        Antenna heights above sea level (ground elevation + antenna height, m).
    wavelength_m : float
        Wavelength λ = c / f (m).
    method : int
        0 = Deygout, 1 = Bullington, 2 = Epstein-Peterson (:data:`DIFFRACTION_METHODS`).

    Returns
    -------
    loss_db : float
        Diffraction loss (dB, ≥ 0), to be added to the basic path loss.
    clearance_m : float
        Largest height of the terrain (+ Earth bulge) above the direct ray (m); ≤ 0 means line of
        sight; −inf when the path is too short to have an interior profile point (d ≤ res).

    Notes
    -----
    Knife edge (ITU-R P.526-15 §4.1): an edge ``h`` m above the line joining its two neighbours
    at distances ``d1``, ``d2`` has ν = h √(2/λ · (1/d1 + 1/d2)) and loss
    J(ν) = 6.9 + 20 log10(√((ν − 0.1)² + 1) + ν − 0.1) dB for ν > −0.78, else 0.

    Profile heights are ``g_i`` = terrain + d1·d2/(2 k R_e). Because the bulge is quadratic, its
    excess over any sub-path chord is again (s − s_a)(s_b − s)/(2 k R_e), so sub-paths between
    terrain edges reuse ``g`` exactly.

    - **Deygout**, limited to three edges (ITU-R P.526): the main edge p is the profile
      point of largest ν over tx–rx; if ν_p > −0.78, the secondary edges t and r are the points
      of largest ν over tx–p and p–rx (their lines end on the top of p), and
      L = J(ν_p) + T·(J(ν_t) + J(ν_r)) with T = 1 − exp(−J(ν_p)/6). The weight T keeps a weak
      main edge (e.g. the receiver's own foreground grazing its Fresnel zone) from promoting
      its neighbouring profile points to full secondary edges.
    - **Bullington** (ITU-R P.526-15; P.452-17 §4.2.1; P.1812): if the slope from tx to the
      highest-slope profile point is below the tx–rx slope (line of sight), L = J(ν_max) of the
      point of largest ν; otherwise the single equivalent edge is the intersection of the
      steepest tx and rx horizon rays, at distance
      d_bp = (h_rx − h_tx + S_rim d)/(S_tim + S_rim), and L = J(ν_b).
    - **Epstein-Peterson**: the same main and secondary edges as Deygout, but a secondary edge
      is kept only if it rises above its sub-path line (ν > 0); each kept edge's loss is taken
      relative to the line joining its neighbouring edges (or antennas) and summed:
      L = J(ν_t | tx–p) + J(ν_p | t–r) + J(ν_r | p–rx).

    For a single edge the three methods coincide. The empirical terms that P.526 / P.452 /
    P.1812 add on top of these constructions (C = 10 + 0.04 D dB inside Deygout's secondary
    term, 10 + 0.02 D dB after Bullington, the spherical-earth diffraction of the smooth-earth
    part) are **not** applied: the result is the geometric multiple-knife-edge loss, so that an
    isolated ridge gives exactly the textbook J(ν). On densely sampled smooth terrain, knife-edge
    methods that sum several edges (Deygout, Epstein-Peterson) overestimate the loss of rounded
    hills; Bullington (one edge) does not double count. Low receivers (≈ 1.5 m) at sub-GHz
    frequencies see their own flat foreground inside the first Fresnel zone on long paths, which
    gives ν slightly above −0.78 and a loss of up to a few dB even in line of sight.

    ITU-R P.452-17 and P.1812 use the same profile construction (terrain heights plus the
    Earth bulge with an effective Earth radius k·R_e) and the same Bullington edge.

    Allocates one profile buffer of ``ceil(d/res) + 1`` floats; use
    :func:`path_terrain_loss_with_buffer` to reuse one.
    """
    d = distance(rx - tx, ry - ty)
    buf = np.empty(n_steps(d, res) + 1)
    return path_terrain_loss_with_buffer(
        dem, x0, y0, res, tx, ty, h_tx_abs, rx, ry, h_rx_abs, wavelength_m, method, buf
    )


# --------------------------------------------------------------------------------------------
# batch helpers for the wrappers
# --------------------------------------------------------------------------------------------


@nb.njit(cache=True)
def _batch_loss(dem, x0, y0, res, tx, ty, h_tx, rx, ry, h_rx, lam, method, loss, clearance):
    for k in range(tx.shape[0]):
        ha = elevation(dem, x0, y0, res, tx[k], ty[k]) + h_tx[k]
        hb = elevation(dem, x0, y0, res, rx[k], ry[k]) + h_rx[k]
        loss[k], clearance[k] = path_terrain_loss(
            dem, x0, y0, res, tx[k], ty[k], ha, rx[k], ry[k], hb, lam[k], method
        )


# --------------------------------------------------------------------------------------------
# numpy-friendly wrappers
# --------------------------------------------------------------------------------------------


def knife_edge_loss(nu: float | np.ndarray) -> float | np.ndarray:
    """Single knife-edge diffraction loss J(ν) (dB) of ITU-R P.526-15.

    Parameters
    ----------
    nu
        Fresnel-Kirchhoff diffraction parameter ν (dimensionless), scalar or array.

    Returns
    -------
    float or numpy.ndarray
        J(ν) in dB (≥ 0), same shape as ``nu``; a float for a scalar input.

    Notes
    -----
    ITU-R P.526-15 §4.1: J(ν) = 6.9 + 20 log10(√((ν − 0.1)² + 1) + ν − 0.1) dB for
    ν > −0.78, and 0 dB otherwise. ν = h √(2/λ · (1/d1 + 1/d2)) for an edge ``h`` m above the
    direct ray, ``d1`` and ``d2`` m from its ends. J(0) ≈ 6.03 dB; J(ν) ≈ 13 + 20 log10 ν for
    large ν. The same formula is used by ITU-R P.452 and P.1812.
    """
    v = np.asarray(nu, dtype=np.float64) - 0.1
    j = 6.9 + 20.0 * np.log10(np.sqrt(v * v + 1.0) + v)
    out = np.where(v + 0.1 > _NU_MIN, j, 0.0)
    return float(out) if out.ndim == 0 else out


def dem_float64(dem: np.ndarray, grid: GridSpec) -> np.ndarray:
    """The DEM as C-contiguous float64 (no copy if it already is), its shape checked."""
    arr = np.asarray(dem)
    if arr.shape != grid.shape:
        raise ValueError(
            f"the DEM has shape {arr.shape} but the grid is {grid.shape} (rows, cols); "
            "warp it onto the grid first (telcoplan.layers.dem.load_dem)"
        )
    return np.ascontiguousarray(arr, dtype=np.float64)


def dem_array(dem: np.ndarray, grid: GridSpec) -> np.ndarray:
    """The DEM as C-contiguous float64, the grid's nodata as NaN (the input is never modified)."""
    arr = dem_float64(dem, grid)
    if np.isfinite(grid.nodata):
        void = arr == grid.nodata
        if void.any():
            arr = np.where(void, np.nan, arr)
    return arr


def _method_code(method: str) -> int:
    try:
        return DIFFRACTION_METHODS[method]
    except KeyError:
        raise ValueError(
            f"unknown diffraction method {method!r}; expected one of "
            f"{', '.join(sorted(DIFFRACTION_METHODS))}"
        ) from None


def terrain_profile_loss(
    dem: np.ndarray,
    grid: GridSpec,
    tx: float | np.ndarray,
    ty: float | np.ndarray,
    h_tx_m: float | np.ndarray,
    rx: float | np.ndarray,
    ry: float | np.ndarray,
    h_rx_m: float | np.ndarray,
    freq_mhz: float | np.ndarray,
    method: str = "deygout",
) -> tuple[float | np.ndarray, float | np.ndarray]:
    """Diffraction loss and terrain clearance of paths over a DEM on ``grid``.

    All position, height and frequency arguments broadcast against each other; scalars in,
    scalars out.

    Parameters
    ----------
    dem
        Ground elevation (m above sea level) on ``grid`` (shape ``grid.shape``); NaN and
        ``grid.nodata`` count as 0 m.
    grid
        The plan grid the DEM lives on.
    tx, ty, rx, ry
        Transmitter and receiver positions in the grid's CRS (m).
    h_tx_m, h_rx_m
        Antenna heights **above ground** (m); the ground elevation under each end (bilinear, as
        the profile) is added.
    freq_mhz
        Frequency (MHz).
    method
        ``"deygout"`` (default), ``"bullington"`` or ``"epstein-peterson"``.

    Returns
    -------
    loss_db : float or numpy.ndarray
        Diffraction loss (dB, ≥ 0).
    clearance_m : float or numpy.ndarray
        Terrain clearance above the direct ray (m); ≤ 0 means line of sight.

    Notes
    -----
    See :func:`path_terrain_loss` for the methods, and the module notes for sampling, Earth
    curvature (k = 4/3) and voids. References: ITU-R P.526-15 (knife edge, Deygout, Bullington),
    ITU-R P.452 (profile analysis, effective Earth radius).
    """
    code = _method_code(method)
    arr = dem_array(dem, grid)
    freq = np.asarray(freq_mhz, dtype=np.float64)
    if not np.all(freq > 0):
        raise ValueError(f"freq_mhz must be positive (MHz), got {freq_mhz!r}")
    args = np.broadcast_arrays(
        *(np.asarray(a, dtype=np.float64) for a in (tx, ty, h_tx_m, rx, ry, h_rx_m, freq))
    )
    for name, a in zip(("tx", "ty", "h_tx_m", "rx", "ry", "h_rx_m"), args, strict=False):
        if not np.all(np.isfinite(a)):
            raise ValueError(f"{name} must be finite (metres), got NaN or infinity")
    shape = args[0].shape
    flat = [np.ascontiguousarray(a).ravel() for a in args]
    lam = _SPEED_OF_LIGHT / (flat[6] * 1e6)
    loss = np.empty(flat[0].size)
    clearance = np.empty(flat[0].size)
    t = grid.transform
    _batch_loss(
        *readonly_arrays((arr, float(t.c), float(t.f), float(t.a), *flat[:6], lam, code)),
        loss, clearance,
    )  # fmt: skip
    if not shape:
        return float(loss[0]), float(clearance[0])
    return loss.reshape(shape), clearance.reshape(shape)
