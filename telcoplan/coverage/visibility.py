"""The exact line-of-sight test of a path over a DEM, the exact viewshed built on it, and
Bullington's loss of an obstructed path from only the samples that matter.

:func:`visible` decides whether the terrain clearance of a path is ≤ 0 exactly as
:func:`telcoplan.coverage.profile.path_terrain_loss` computes it (the same samples and the same
arithmetic), but skips the samples that conservative bounds prove below the ray: a horizon table
per antenna (sector × distance ring) and the DEM maxima of :data:`BLOCK` × :data:`BLOCK`-cell
blocks (:func:`block_max`). The coverage kernel (:mod:`telcoplan.coverage._kernel_terrain`) uses it to
find obstructed paths; :func:`exact_viewshed` runs it for every cell in range of one antenna
(``line_of_sight(..., method="exact")`` of :mod:`telcoplan.coverage.terrain`, whose notes
describe the pruning). On an obstructed path, :func:`sample_nu` gives the ν of the blocking
sample (a lower bound of the Deygout and Bullington losses), and :func:`bullington_obstructed`
Bullington's loss, bit for bit, with the same block maxima skipping the samples that cannot
change its slopes.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np

from telcoplan.coverage.profile import (
    CURV,
    bilinear,
    bilinear_padded,
    bullington_edge_loss,
    chord,
    distance,
    elevation,
    n_steps,
    ray,
)
from telcoplan.gis.grid import GridSpec

__all__ = [
    "BLOCK",
    "EXACT",
    "FULL_WALK",
    "LOSS_ABOVE",
    "block_max",
    "bullington_obstructed",
    "exact_viewshed",
    "sample_nu",
    "visible",
]

_CHUNK = 12  # samples per bounding chunk of the viewshed (see visible)
#: Side (cells) of the blocks of :func:`block_max`'s table, which bounds a chunk of samples.
BLOCK = 16
_RING = 4  # width (cells) of the rings of the viewshed's horizon table
_SLOPE_CHUNK = 12  # samples per bounding chunk of bullington_obstructed
_MARGIN_M = 1e-6  # slack (m) added to the block maxima: bilinear rounding stays far below
#: :func:`bullington_obstructed` outcomes: the exact loss; a loss proven above the caller's
#: threshold (not computed); Bullington's line-of-sight branch (walk the whole profile).
EXACT, LOSS_ABOVE, FULL_WALK = 0, 1, 2


@nb.njit(cache=True)
def _point_elevation(dem, x0, y0, res, x, y):
    return elevation(dem, x0, y0, res, x, y)


@nb.njit(cache=True)
def block_max(dem, block):
    """Max of the DEM (NaN counted as 0) over each ``block`` × ``block`` square of cells."""
    nrows, ncols = dem.shape
    nbr, nbc = (nrows + block - 1) // block, (ncols + block - 1) // block
    out = np.full((nbr, nbc), -np.inf)
    for br in range(nbr):
        for r in range(br * block, min(br * block + block, nrows)):
            for bc in range(nbc):
                z = out[br, bc]
                for c in range(bc * block, min(bc * block + block, ncols)):
                    v = dem[r, c]
                    if v > z:  # False for NaN, which counts as 0 below
                        z = v
                    elif v != v and z < 0.0:
                        z = 0.0
                out[br, bc] = z
    return out


@nb.njit(cache=True, inline="always")
def _chunk_bound(bmax, nrows, ncols, block, fra, fca, frb, fcb):
    """Upper bound (m) of the bilinear elevation anywhere between two fractional positions.

    A bilinear sample reads its floor cell and the next row/column; one more cell of slack on
    each side absorbs any rounding of the sample positions. Cells beyond the grid read 0 m.
    """
    c_lo = math.floor(min(fca, fcb)) - 1
    c_hi = math.floor(max(fca, fcb)) + 2
    r_lo = math.floor(min(fra, frb)) - 1
    r_hi = math.floor(max(fra, frb)) + 2
    z = -np.inf
    if c_lo < 0 or r_lo < 0 or c_hi >= ncols or r_hi >= nrows:
        z = 0.0
    c_lo = max(c_lo, 0)
    r_lo = max(r_lo, 0)
    c_hi = min(c_hi, ncols - 1)
    r_hi = min(r_hi, nrows - 1)
    if c_lo > c_hi or r_lo > r_hi:
        return z
    for br in range(r_lo // block, r_hi // block + 1):
        for bc in range(c_lo // block, c_hi // block + 1):
            z = max(z, bmax[br, bc])
    return z


@nb.njit(cache=True, inline="always")
def _pseudo_angle(x, y):
    """Monotone stand-in for the polar angle of (x, y) ≠ 0, in [0, 4) ("diamond angle")."""
    if y >= 0.0:
        return y / (x + y) if x >= 0.0 else 1.0 - x / (y - x)
    return 2.0 - y / (-x - y) if x < 0.0 else 3.0 + x / (x - y)


@nb.njit(cache=True, inline="always")
def _sector(x, y, nsec):
    k = int(_pseudo_angle(x, y) * (nsec / 4.0))
    return min(max(k, 0), nsec - 1)


@nb.njit(cache=True)
def _horizon_band(dem, x0, y0, res, tx, ty, ha, r_lo, r_hi, c_lo, c_hi, band, nband, tab):
    """Enter rows ``r_lo + band``, ``r_lo + band + nband``, … into the horizon table ``tab``.

    ``tab`` is (ring, sector), filled with −inf beforehand. After :func:`_horizon_merge`,
    ``out[k, j]`` ≥ σ = (z − h_a)/s − s/(2 k R_e) of every bilinear profile sample at distance
    s < (j + 1)·w (rings of w = ``_RING``·res) on any ray whose :func:`_sector` is ``k``. A
    target is hidden by a sample iff the sample's σ exceeds the target's, so a ray whose target
    σ exceeds ``out[k, j]`` needs no sampling closer than (j + 1)·w.

    A sample reads four cells within √2·res of it; so every cell is entered, with the largest σ
    it can give a sample within ρ = 1.5·res of it, in the ring of distance s_c − ρ (the prefix
    maximum over rings then covers the farther ones) and in every sector whose rays pass within
    ρ of it: pseudo-angles within asin(ρ/s_c) ≤ 1.155·ρ/s_c (for s_c ≥ 2ρ) of the cell's, since
    the pseudo-angle changes no faster than the angle.
    """
    nring, nsec = tab.shape
    rho = 1.5 * res
    inv_ring = 1.0 / (_RING * res)
    scale = nsec / 4.0
    for r in range(r_lo + band, r_hi, nband):
        vy = y0 - (r + 0.5) * res - ty
        for c in range(c_lo, c_hi):
            vx = x0 + (c + 0.5) * res - tx
            s = math.sqrt(vx * vx + vy * vy)
            s_lo = max(s - rho, 0.5 * res)  # profile samples are at least res / 2 away
            j = int(s_lo * inv_ring)
            if j >= nring:
                continue
            z = dem[r, c]
            if z != z:
                z = 0.0
            dz = z - ha
            sig = (dz / s_lo if dz >= 0.0 else dz / (s + rho)) - s_lo * CURV
            if s <= 2.0 * rho:
                k_lo, k_hi = 0, nsec - 1
            else:
                p = _pseudo_angle(vx, vy)
                w = 1.1548 * rho / s
                k_lo = math.floor((p - w) * scale)
                k_hi = math.floor((p + w) * scale)
                if k_lo < 0:
                    k_lo += nsec
                    k_hi += nsec
            for k in range(k_lo, k_hi + 1):
                kk = k if k < nsec else k - nsec
                if sig > tab[j, kk]:
                    tab[j, kk] = sig


@nb.njit(cache=True)
def _horizon_merge(part):
    """Merge the per-thread horizon tables and take the prefix maximum over rings.

    Returns the table in (sector, ring) order, so that a ray's bounds are contiguous.
    """
    merged = part[0].copy()
    nring, nsec = merged.shape
    for band in range(1, part.shape[0]):
        for j in range(nring):
            for k in range(nsec):
                merged[j, k] = max(merged[j, k], part[band, j, k])
    for j in range(1, nring):
        for k in range(nsec):
            merged[j, k] = max(merged[j, k], merged[j - 1, k])
    return np.ascontiguousarray(merged.T)


@nb.njit(cache=True, inline="always")
def _horizon_stop(horizon, res, tx, ty, ha, rx, ry, hb, d, step, n):
    """Last profile index that the horizon table proves below the ray (0: none)."""
    if horizon.shape[0] == 0:
        return 0
    sig = (hb - ha - d * d * CURV) / d - 1e-9  # the target's apparent slope, minus a margin
    k = _sector(rx - tx, ry - ty, horizon.shape[0])
    # the last ring whose bound is below the target (bounds grow with the ring): look just
    # below the target's ring first (the usual answer), then bisect
    lo, hi = -1, min(int(d / (_RING * res)), horizon.shape[1] - 1)
    for _ in range(3):
        if hi < 0 or horizon[k, hi] < sig:
            lo = hi
            break
        hi -= 1
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if horizon[k, mid] < sig:
            lo = mid
        else:
            hi = mid - 1
    if lo < 0:
        return 0
    return min(math.ceil((lo + 1) * _RING * res / step) - 1, n - 1)


@nb.njit(cache=True)
def visible(src, padded, bmax, block, horizon, x0, y0, res, tx, ty, ha, rx, ry, hb, hint):
    """Whether the clearance of tx → rx is ≤ 0, exactly as :func:`~telcoplan.coverage.profile.path_terrain_loss` has it.

    Returns (visible, fraction of the path at the blocking sample or −1). ``src`` is the DEM,
    or (``padded``) its :func:`~telcoplan.coverage.profile.bilinear_padded` form when every sample is inside the grid.
    Samples are only skipped when a conservative bound proves them below the ray (the
    ``horizon`` table near the antenna, block maxima of ``bmax`` per chunk of ``_CHUNK``
    samples); the others are computed with the profile's arithmetic, so the decision is the
    one of the unbounded computation. ``hint`` (the blocking fraction of the previous cell, or
    −1) only chooses which samples are tried first.
    """
    nrows = src.shape[0] - 2 if padded else src.shape[0]
    ncols = src.shape[1] - 2 if padded else src.shape[1]
    d = distance(rx - tx, ry - ty)
    n = n_steps(d, res)
    if n < 2:
        return True, -1.0
    fr0, fc0, dfr, dfc = ray(x0, y0, res, tx, ty, rx, ry, n)
    step = d / n
    inv_n = 1.0 / n
    # first the few samples around the previous cell's obstruction (most hidden cells are
    # hidden by the same ridge as their neighbour), then the samples from the receiver back,
    # chunk by chunk, down to those the horizon table proves below the ray (i ≤ i_stop)
    half = 0.5 * d
    i_hi = n - 1
    i_stop = -1  # not looked up yet
    first = hint >= 0.0
    while True:
        if first:
            first = False
            ih = int(hint * n)
            a, b = max(ih - 3, 1), min(ih, n - 1)  # checked from ih down: 4 samples
        else:
            if i_stop < 0:
                i_stop = _horizon_stop(horizon, res, tx, ty, ha, rx, ry, hb, d, step, n)
            if i_hi <= i_stop:
                break
            a, b = max(i_stop + 1, i_hi - _CHUNK + 1), i_hi
            i_hi = a - 1
            zmax = _chunk_bound(bmax, nrows, ncols, block, fr0 + dfr * a, fc0 + dfc * a,
                                fr0 + dfr * b, fc0 + dfc * b)  # fmt: skip
            sm = min(max(half, step * a), step * b)  # the bulge s (d − s) peaks at d/2
            if zmax + sm * (d - sm) * CURV - min(chord(ha, hb, 0, n, a, inv_n),
                                                  chord(ha, hb, 0, n, b, inv_n)) < -1e-6:  # fmt: skip
                continue
        for i in range(b, a - 1, -1):
            fr = fr0 + dfr * i
            fc = fc0 + dfc * i
            z = bilinear_padded(src, fr, fc) if padded else bilinear(src, fr, fc)
            s = step * i
            if z + s * (d - s) * CURV - chord(ha, hb, 0, n, i, inv_n) > 0.0:
                return False, i / n
    return True, -1.0


@nb.njit(cache=True)
def sample_nu(src, padded, x0, y0, res, tx, ty, ha, rx, ry, hb, lam, frac):
    """Fresnel-Kirchhoff ν of the profile sample at ``frac`` of the path (as :func:`visible` returns it).

    ν = h √(2 d / (λ s (d − s))) with h the sample's height (terrain + Earth bulge) above the
    direct ray, the same samples as :func:`~telcoplan.coverage.profile.path_terrain_loss`.
    Deygout's main edge has the largest ν of all samples and Bullington's equivalent edge a ν at
    least as large as any sample's (see :func:`bullington_obstructed`), so J(ν) of one sample is
    a lower bound of their diffraction loss. −inf for a path without interior samples.
    """
    d = distance(rx - tx, ry - ty)
    n = n_steps(d, res)
    i = int(frac * n + 0.5)
    if n < 2 or i < 1 or i > n - 1:
        return -np.inf
    fr0, fc0, dfr, dfc = ray(x0, y0, res, tx, ty, rx, ry, n)
    step = d / n
    fr = fr0 + dfr * i
    fc = fc0 + dfc * i
    z = bilinear_padded(src, fr, fc) if padded else bilinear(src, fr, fc)
    s = step * i
    h = z + s * (d - s) * CURV - chord(ha, hb, 0, n, i, 1.0 / n)
    return h * math.sqrt(2.0 * d / (lam * s * (d - s)))


@nb.njit(cache=True, inline="always")
def _slopes(src, padded, fr0, fc0, dfr, dfc, step, d0, n, ha, hb, lo, hi, s_tim, s_rim, i_tim,
            i_rim):  # fmt: skip
    """Raise Bullington's slope maxima (and their sample indices) with samples ``lo``…``hi``.

    Each quotient is computed, with the profile's arithmetic, only when its numerator does not
    prove it below the current maximum (with a relative margin far above rounding).
    """
    for i in range(lo, hi + 1):
        fr = fr0 + dfr * i
        fc = fc0 + dfc * i
        z = bilinear_padded(src, fr, fc) if padded else bilinear(src, fr, fc)
        s = step * i
        g = z + s * (d0 - s) * CURV
        den = i * step
        lim = s_tim * den
        if g - ha >= lim - abs(lim) * 1e-12:
            v = (g - ha) / den
            if v > s_tim:
                s_tim, i_tim = v, i
        den = (n - i) * step
        lim = s_rim * den
        if g - hb >= lim - abs(lim) * 1e-12:
            v = (g - hb) / den
            if v > s_rim:
                s_rim, i_rim = v, i
    return s_tim, s_rim, i_tim, i_rim


@nb.njit(cache=True)
def bullington_obstructed(
    src, padded, bmax, block, x0, y0, res, tx, ty, ha, rx, ry, hb, lam, frac, nu_stop, seeds
):
    """Bullington's loss of an obstructed path, walking only the samples that can matter.

    ``frac`` is the fraction of the path at a blocking sample (as :func:`visible` returns it);
    the other arguments are those of :func:`visible` plus the wavelength ``lam`` (m) and
    ``seeds``, a float64 array of 2: the distances (m) from tx of the previous path's steepest
    tx sample and from rx of its steepest rx sample (−1: none), tried first and updated.

    Returns ``(loss_db, outcome)``:

    - :data:`EXACT`: ``loss_db`` is bit for bit the loss of
      ``path_terrain_loss(..., method=1)`` (Bullington);
    - :data:`LOSS_ABOVE`: the equivalent edge's ν is proven larger than ``nu_stop`` (so the
      loss exceeds J(``nu_stop``)); ``loss_db`` is a lower bound, the walk stopped early;
    - :data:`FULL_WALK`: the slopes say line of sight (possible only through rounding on a
      grazing path): Bullington then takes the edge of largest ν, which needs the whole profile.

    Notes
    -----
    Bullington's edge only depends on the two largest slopes, S_tim = max (g_i − h_tx)/s_i and
    S_rim = max (g_i − h_rx)/(d − s_i), over the profile g (terrain + bulge). They are the maxima
    of the same values as in :func:`~telcoplan.coverage.profile.path_terrain_loss`, but chunks of
    samples are skipped when the block maxima of ``bmax`` prove both slopes of every sample of
    the chunk below the largest ones found so far, which leaves the maxima unchanged. The
    samples most likely to hold the maxima come first: the blocking one, and those at the
    distances of the previous path's maxima (a neighbouring cell sees the same horizons).

    With a = S_tim − S_tr and b = S_rim + S_tr (S_tr the tx–rx slope, both > 0 on an obstructed
    path), the edge stands h_b = a·b·d/(a + b) above the direct ray at d1 = b·d/(a + b), so
    ν_b = √(2 a b d / λ): it grows with either slope. Any sample lies below both horizon rays,
    hence ν_b is at least the ν of every sample, and a partial maximum of the slopes already
    bounds it from below: the walk stops as soon as that bound exceeds ``nu_stop``.
    """
    nrows = src.shape[0] - 2 if padded else src.shape[0]
    ncols = src.shape[1] - 2 if padded else src.shape[1]
    d0 = distance(rx - tx, ry - ty)
    n = n_steps(d0, res)
    fr0, fc0, dfr, dfc = ray(x0, y0, res, tx, ty, rx, ry, n)
    step = d0 / n
    d = n * step  # the path length of Bullington's construction
    s_tr = (hb - ha) / d
    # stop once 2 a b d / λ > ν_stop² (ν_stop > 0), with a small margin for rounding
    ab_stop = np.inf if nu_stop < 0.0 else (nu_stop + 1e-6) ** 2 * lam / (2.0 * d) * (1.0 + 1e-9)
    s_tim = -np.inf
    s_rim = -np.inf
    i_tim = i_rim = 1
    half = 0.5 * d0
    a = 1
    phase = 0
    while True:
        if phase < 3:  # the likely maxima: the blocking sample, the previous path's maxima
            if phase == 0:
                i = int(frac * n + 0.5)
            elif phase == 1:
                i = -1 if seeds[0] < 0.0 else int(seeds[0] / step + 0.5)
            else:
                i = -1 if seeds[1] < 0.0 else n - int(seeds[1] / step + 0.5)
            phase += 1
            lo, hi = max(i - 1, 1), min(i + 1, n - 1)
            if i < 0 or lo > hi:
                continue
        else:  # the next chunk whose bound may raise a slope
            lo = -1
            while a <= n - 1:
                b = min(a + _SLOPE_CHUNK - 1, n - 1)
                ca, a = a, b + 1
                zmax = _chunk_bound(bmax, nrows, ncols, block, fr0 + dfr * ca, fc0 + dfc * ca,
                                    fr0 + dfr * b, fc0 + dfc * b)  # fmt: skip
                sm = min(max(half, step * ca), step * b)  # the bulge s (d − s) peaks at d/2
                gmax = zmax + sm * (d0 - sm) * CURV + _MARGIN_M
                up = gmax - ha
                ub_tim = up / (ca * step) if up >= 0.0 else up / (b * step)
                ur = gmax - hb
                ub_rim = ur / ((n - b) * step) if ur >= 0.0 else ur / ((n - ca) * step)
                if ub_tim >= s_tim or ub_rim >= s_rim:
                    lo, hi = ca, b
                    break
            if lo < 0:
                break
        s_tim, s_rim, i_tim, i_rim = _slopes(src, padded, fr0, fc0, dfr, dfc, step, d0, n, ha, hb,
                                             lo, hi, s_tim, s_rim, i_tim, i_rim)  # fmt: skip
        if nu_stop >= 0.0:
            ta = s_tim - s_tr
            tb = s_rim + s_tr
            if ta > 0.0 and tb > 0.0 and ta * tb > ab_stop:
                seeds[0] = i_tim * step
                seeds[1] = (n - i_rim) * step
                return bullington_edge_loss(ha, hb, d, s_tim, s_rim, lam), LOSS_ABOVE
    seeds[0] = i_tim * step
    seeds[1] = (n - i_rim) * step
    if s_tim < s_tr or not s_tim + s_rim > 0.0:
        return 0.0, FULL_WALK
    return bullington_edge_loss(ha, hb, d, s_tim, s_rim, lam), EXACT


@nb.njit(cache=True)
def _padded(dem):
    """The DEM with NaN as 0 and one replicated edge cell on each side (see bilinear_padded)."""
    nrows, ncols = dem.shape
    out = np.empty((nrows + 2, ncols + 2))
    for r in range(nrows + 2):
        rr = min(max(r - 1, 0), nrows - 1)
        for c in range(ncols + 2):
            z = dem[rr, min(max(c - 1, 0), ncols - 1)]
            out[r, c] = 0.0 if z != z else z
    return out


@nb.njit(cache=True, parallel=True)
def _viewshed_rows(dem, src, padded, bmax, part, x0, y0, res, tx, ty, ha, h_rx, radius, window,
                   out):  # fmt: skip
    """Fill ``out[r, c]`` for the cells of the window within ``radius`` of the antenna.

    ``part`` holds one empty horizon table per thread (or none: no horizon pruning).
    """
    r_lo, r_hi, c_lo, c_hi = window
    nrows, ncols = dem.shape
    nband = part.shape[0]
    for band in nb.prange(nband):
        _horizon_band(dem, x0, y0, res, tx, ty, ha, max(r_lo - 2, 0), min(r_hi + 2, nrows),
                      max(c_lo - 2, 0), min(c_hi + 2, ncols), band, nband, part[band])  # fmt: skip
    horizon = _horizon_merge(part) if nband > 0 else np.empty((0, 0))
    r2 = radius * radius
    for rr in nb.prange(r_hi - r_lo):
        r = r_lo + rr
        yc = y0 - (r + 0.5) * res
        hint = -1.0  # where the previous cell of the row was blocked (fraction of its path)
        for c in range(c_lo, c_hi):
            xc = x0 + (c + 0.5) * res
            if (xc - tx) ** 2 + (yc - ty) ** 2 > r2:
                continue
            z = dem[r, c]
            if z != z:
                z = 0.0
            vis, hint = visible(src, padded, bmax, BLOCK, horizon, x0, y0, res, tx, ty, ha,
                                 xc, yc, z + h_rx, hint)  # fmt: skip
            out[r, c] = vis


# --------------------------------------------------------------------------------------------
# numpy entry point
# --------------------------------------------------------------------------------------------


def exact_viewshed(
    dem: np.ndarray,
    grid: GridSpec,
    tx: float,
    ty: float,
    h_tx_m: float,
    h_rx_m: float,
    radius_m: float,
) -> np.ndarray:
    """The exact viewshed: ``line_of_sight(..., method="exact")`` on a checked DEM.

    ``dem`` is float64 with voids as NaN (:func:`telcoplan.coverage.profile.dem_array`); the
    other arguments are those of :func:`telcoplan.coverage.terrain.line_of_sight`, already
    validated. One ray per cell of ``grid`` within ``radius_m`` of the antenna, decided by
    :func:`visible` (rows in parallel). Returns the boolean viewshed of shape ``grid.shape``.
    """
    t = grid.transform
    x0, y0, res = float(t.c), float(t.f), float(t.a)
    out = np.zeros(grid.shape, dtype=np.bool_)
    c_lo = max(0, math.floor((tx - radius_m - x0) / res))
    c_hi = min(grid.width, math.ceil((tx + radius_m - x0) / res))
    r_lo = max(0, math.floor((y0 - ty - radius_m) / res))
    r_hi = min(grid.height, math.ceil((y0 - ty + radius_m) / res))
    if c_lo >= c_hi or r_lo >= r_hi:
        return out
    tx, ty, radius = float(tx), float(ty), float(radius_m)
    ha = float(_point_elevation(dem, x0, y0, res, tx, ty)) + float(h_tx_m)
    window = (r_lo, r_hi, c_lo, c_hi)
    bmax = block_max(dem, BLOCK)
    # an antenna inside the grid keeps every profile sample inside: then use the check-free
    # padded DEM and the horizon table (both assume samples read grid cells only)
    fr_tx, fc_tx = (y0 - ty) / res - 0.5, (tx - x0) / res - 0.5
    eps = 1e-6
    inside = -0.5 + eps < fc_tx < grid.width - 0.5 - eps
    inside = inside and -0.5 + eps < fr_tx < grid.height - 0.5 - eps
    if inside:
        src = _padded(dem)
        nring = int(radius / (_RING * res)) + 2
        nsec = max(64, min(4096, 4 * nring))
        # one table per thread, within ~64 MB in all
        nband = max(1, min(nb.get_num_threads(), r_hi - r_lo, 8_000_000 // (nring * nsec)))
        part = np.full((nband, nring, nsec), -np.inf)
    else:
        src, part = dem, np.empty((0, 0, 0))
    _viewshed_rows(dem, src, inside, bmax, part, x0, y0, res, tx, ty, ha, float(h_rx_m),
                   radius, window, out)  # fmt: skip
    return out
