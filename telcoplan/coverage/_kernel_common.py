"""Numba pieces shared by the best-server kernels: path loss, the sector pattern, tile bounds.

Used by :mod:`telcoplan.coverage._kernel` (flat earth) and
:mod:`telcoplan.coverage._kernel_terrain` (with a DEM).
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np

__all__ = [
    "A_M",
    "SLA_V",
    "THETA_3DB",
    "best_horizontal",
    "best_vertical",
    "path_loss_at",
    "path_loss_log",
    "pattern",
    "pattern_upper_bound",
    "tile_distances",
    "tile_upper_bounds",
    "wrap",
]

A_M = 30.0
SLA_V = 20.0
THETA_3DB = 10.0


@nb.njit(cache=True, inline="always")
def path_loss_at(t, d_m, kind, coef_a, coef_b, table_id, tables, table_step):
    """Path loss (dB) of tower t at horizontal distance d_m (m)."""
    if d_m < 1.0:
        d_m = 1.0
    return path_loss_log(t, math.log10(d_m), kind, coef_a, coef_b, table_id, tables, table_step)


@nb.njit(cache=True, inline="always")
def path_loss_log(t, u, kind, coef_a, coef_b, table_id, tables, table_step):
    """Path loss (dB) of tower t at log10 of the horizontal distance (m) ``u`` ≥ 0."""
    if kind[t] == 0:  # log-linear (Hata family): A + B log10(d_km)
        return coef_a[t] + coef_b[t] * (u - 3.0)
    row = table_id[t]
    pos = u / table_step
    i = int(pos)
    n = tables.shape[1]
    if i >= n - 1:
        return tables[row, n - 1]
    frac = pos - i
    return tables[row, i] * (1.0 - frac) + tables[row, i + 1] * frac


@nb.njit(cache=True, inline="always")
def pattern(phi_deg, dep_deg, azimuth, beam, tilt):
    """3GPP sector attenuation (dB ≤ 0); NaN azimuth = omni, NaN tilt = no vertical pattern."""
    a_h = 0.0
    if not math.isnan(azimuth):
        x = phi_deg / beam
        a_h = -min(12.0 * x * x, A_M)
    a_v = 0.0
    if not math.isnan(tilt):
        y = (dep_deg - tilt) / THETA_3DB
        a_v = -min(12.0 * y * y, SLA_V)
    return -min(-(a_h + a_v), A_M)


@nb.njit(cache=True, inline="always")
def wrap(a):
    """Wrap an angle to [-180, 180)."""
    return (a + 180.0) % 360.0 - 180.0


@nb.njit(cache=True)
def best_horizontal(tx, ty, azimuth, beam, xs, ys):
    """Best (largest) horizontal attenuation over a rectangle of points seen from (tx, ty)."""
    if math.isnan(azimuth):
        return 0.0
    xmin, xmax, ymin, ymax = xs[0], xs[1], ys[0], ys[1]
    if xmin <= tx <= xmax and ymin <= ty <= ymax:
        return 0.0
    cx, cy = 0.5 * (xmin + xmax), 0.5 * (ymin + ymax)
    bc = math.degrees(math.atan2(cx - tx, cy - ty))
    lo, hi = 1e9, -1e9
    for k in range(4):
        px = xmin if k < 2 else xmax
        py = ymin if k % 2 == 0 else ymax
        b = math.degrees(math.atan2(px - tx, py - ty))
        dlt = wrap(b - bc)
        lo = min(lo, dlt)
        hi = max(hi, dlt)
    phic = wrap(bc - azimuth)
    lo += phic
    hi += phic
    best = 180.0
    for shift in (-360.0, 0.0, 360.0):
        a, b = lo + shift, hi + shift
        if a <= 0.0 <= b:
            return 0.0
        best = min(best, abs(a), abs(b))
    x = best / beam
    return -min(12.0 * x * x, A_M)


@nb.njit(cache=True)
def best_vertical(tilt, dep_lo, dep_hi):
    if math.isnan(tilt):
        return 0.0
    if dep_lo <= tilt <= dep_hi:
        return 0.0
    off = dep_lo - tilt if tilt < dep_lo else tilt - dep_hi
    y = off / THETA_3DB
    return -min(12.0 * y * y, SLA_V)


@nb.njit(cache=True, inline="always")
def tile_distances(tx, ty, xs, ys):
    """Squared distances from (tx, ty) to the nearest and farthest points of the rectangle of
    cell centres ``xs`` (first, last x), ``ys`` (first, last y)."""
    ddx = max(xs[0] - tx, 0.0, tx - xs[1])
    ddy = max(ys[0] - ty, 0.0, ty - ys[1])
    fx = max(abs(xs[0] - tx), abs(xs[1] - tx))
    fy = max(abs(ys[0] - ty), abs(ys[1] - ty))
    return ddx * ddx + ddy * ddy, fx * fx + fy * fy


@nb.njit(cache=True)
def pattern_upper_bound(tx, ty, dh, azimuth, beam, tilt, xs, ys, dmin, dmax, use_dem):
    """The best (largest, ≤ 0 dB) sector attenuation a tower can have anywhere in a tile.

    ``xs``/``ys``: the tile's first and last cell centres; ``dmin``/``dmax``: the nearest and
    farthest distance from the tower to them. With terrain (``use_dem``) the depression angle
    depends on each cell's ground: no vertical bound.
    """
    if math.isnan(azimuth) and math.isnan(tilt):
        return 0.0
    a_h = best_horizontal(tx, ty, azimuth, beam, xs, ys)
    a_v = 0.0
    if not use_dem and not math.isnan(tilt):
        dep_hi = math.degrees(math.atan2(dh, max(dmin, 1.0)))
        dep_lo = math.degrees(math.atan2(dh, max(dmax, 1.0)))
        a_v = best_vertical(tilt, min(dep_lo, dep_hi), max(dep_lo, dep_hi))
    return -min(-(a_h + a_v), A_M)


@nb.njit(cache=True)
def tile_upper_bounds(
    cands, xs, ys, tx, ty, eirp, radius, dh, azimuth, beam, tilt,
    kind, coef_a, coef_b, table_id, tables, table_step, use_dem,
):  # fmt: skip
    """Upper bound (dBm) of the power each candidate tower can deliver anywhere in a tile.

    ``xs``/``ys``: the tile's first and last cell centres (x ascending, y ascending). −inf for a
    tower whose radius does not reach the tile. Path loss never decreases with distance and the
    pattern's best attenuation over the tile's bearings (and, without terrain, depressions) is
    taken (:func:`pattern_upper_bound`), so no cell of the tile can receive more.
    """
    m = cands.shape[0]
    ub = np.empty(m)
    for j in range(m):
        t = cands[j]
        dmin2, dmax2 = tile_distances(tx[t], ty[t], xs, ys)
        dmin = math.sqrt(dmin2)
        if dmin > radius[t]:
            ub[j] = -np.inf
            continue
        dmax = math.sqrt(dmax2)
        pattern = pattern_upper_bound(
            tx[t], ty[t], dh[t], azimuth[t], beam[t], tilt[t], xs, ys, dmin, dmax, use_dem
        )
        ub[j] = (
            eirp[t]
            - path_loss_at(t, dmin, kind, coef_a, coef_b, table_id, tables, table_step)
            + pattern
        )
    return ub
