"""Numba kernel of the best-server computation (tile by tile, branch and bound).

For each tile of ``T x T`` cells and each group (operator), the candidate towers (those whose
radius reaches the tile) are sorted by an *upper bound* of the power they can deliver anywhere
in the tile: EIRP − L(d_min) + the best antenna attenuation over the tile's bearing and
depression intervals. Path loss never decreases with distance (a tested property of every
model), and terrain only adds loss, so the bound is valid with or without a DEM. Towers are
evaluated exactly, cell by cell, in that order; as soon as a tower's bound falls below the
weakest best power of the tile, it and all remaining towers are skipped. The result is exact
— identical to evaluating every tower — but typically only a few towers per tile are computed.

With a DEM, each evaluated (tower, cell) pair whose line of sight the terrain (plus the Earth's
bulge) obstructs also loses the knife-edge diffraction loss of its profile
(:mod:`telcoplan.coverage.profile`), computed only when the pair could still beat the cell's
best power; unobstructed paths keep the flat-earth model value, whose empirical fit already
includes the ground near the receiver. The antenna pattern's depression angle then uses ground
elevations. Whether a path is obstructed is decided first by the exact viewshed's test
(:func:`telcoplan.coverage.visibility.visible`: the same samples and arithmetic as the profile,
but chunks of samples that block maxima of the DEM prove below the ray are skipped, and the
previous cell's obstruction is tried first); only obstructed paths walk their whole profile for
the loss. The answer is the one of walking every profile.

Memory: the outputs plus a few tile-sized buffers; never cells × towers.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np

from telcoplan.coverage._kernel_common import (
    path_loss_at,
    pattern,
    tile_upper_bounds,
    wrap,
)
from telcoplan.coverage.profile import path_terrain_loss_with_buffer, profile_buffer_size
from telcoplan.coverage.visibility import BLOCK, visible

__all__ = ["best_server_terrain_kernel"]


@nb.njit(cache=True, parallel=True)
def best_server_terrain_kernel(
    tile_r0, tile_c0, tile_ptr, tile_cand, tsize,
    x0, y0, res, height, width,
    tx, ty, eirp, group, radius, dh, azimuth, beam, tilt,
    kind, coef_a, coef_b, table_id, tables, table_step,
    n_groups, floor_dbm,
    dem, bmax, use_dem, h_abs_tx, h_rx, wavelength, method,
    out_power, out_server,
):  # fmt: skip
    """Fill ``out_power`` (n_groups, H, W; −inf where unreached) and ``out_server`` (−1)."""
    n_tiles = tile_r0.shape[0]
    evaluated = np.zeros(n_tiles, dtype=np.int64)
    max_radius = 0.0
    for t in range(radius.shape[0]):
        max_radius = max(max_radius, radius[t])
    for k in nb.prange(n_tiles):
        r0, c0 = tile_r0[k], tile_c0[k]
        r1, c1 = min(r0 + tsize, height), min(c0 + tsize, width)
        nr, nc = r1 - r0, c1 - c0
        xs = np.empty(2)
        ys = np.empty(2)
        xs[0] = x0 + (c0 + 0.5) * res
        xs[1] = x0 + (c1 - 0.5) * res
        ys[0] = y0 - (r1 - 0.5) * res
        ys[1] = y0 - (r0 + 0.5) * res
        cands = tile_cand[tile_ptr[k] : tile_ptr[k + 1]]
        ub = tile_upper_bounds(
            cands, xs, ys, tx, ty, eirp, radius, dh, azimuth, beam, tilt,
            kind, coef_a, coef_b, table_id, tables, table_step, use_dem,
        )  # fmt: skip
        m = cands.shape[0]
        order = np.argsort(-ub, kind="mergesort")
        buf = np.empty(
            profile_buffer_size(max_radius + 2.0 * tsize * res, res) + 2 if use_dem else 1
        )
        no_horizon = np.empty((0, 0))  # the LOS test's horizon table: none (no pruning)
        best = np.full((nr, nc), -np.inf)
        for g in range(n_groups):
            best[:, :] = -np.inf
            server = np.full((nr, nc), -1, dtype=np.int32)
            weakest = -np.inf
            for jj in range(m):
                j = order[jj]
                t = cands[j]
                if group[t] != g:
                    continue
                # sorted by bound: once a bound cannot beat the tile's weakest cell (or the
                # floor), no later tower of this group can either
                if ub[j] < floor_dbm or ub[j] <= weakest:
                    break
                evaluated[k] += 1
                r2 = radius[t] * radius[t]
                for i in range(nr):
                    yc = y0 - (r0 + i + 0.5) * res
                    dy = yc - ty[t]
                    hint = -1.0  # where the previous cell's path was blocked (fraction)
                    for c in range(nc):
                        xc = x0 + (c0 + c + 0.5) * res
                        dx = xc - tx[t]
                        d2 = dx * dx + dy * dy
                        if d2 > r2:
                            continue
                        d = math.sqrt(d2)
                        p = eirp[t] - path_loss_at(
                            t, d, kind, coef_a, coef_b, table_id, tables, table_step
                        )
                        dh_c = dh[t]
                        h_abs_rx = 0.0
                        if use_dem:
                            z = dem[r0 + i, c0 + c]
                            h_abs_rx = (0.0 if math.isnan(z) else z) + h_rx
                            dh_c = h_abs_tx[t] - h_abs_rx
                        if not (math.isnan(azimuth[t]) and math.isnan(tilt[t])):
                            phi = 0.0
                            if not math.isnan(azimuth[t]):
                                phi = wrap(math.degrees(math.atan2(dx, dy)) - azimuth[t])
                            dep = math.degrees(math.atan2(dh_c, max(d, 1.0)))
                            p += pattern(phi, dep, azimuth[t], beam[t], tilt[t])
                        # below the floor the pair is dropped anyway (terrain only lowers it)
                        if use_dem and p > best[i, c] and p >= floor_dbm:
                            # terrain only adds loss, and only on an obstructed path (the
                            # empirical models already include the ground near the receiver,
                            # and a flat DEM must give the flat-earth result): walk the whole
                            # profile only when the pair could matter and its path is not clear
                            clear, hint = visible(
                                dem, False, bmax, BLOCK, no_horizon, x0, y0, res, tx[t],
                                ty[t], h_abs_tx[t], xc, yc, h_abs_rx, hint,
                            )  # fmt: skip
                            if not clear:
                                loss_t, clearance = path_terrain_loss_with_buffer(
                                    dem, x0, y0, res, tx[t], ty[t], h_abs_tx[t], xc, yc,
                                    h_abs_rx, wavelength[t], method, buf,
                                )  # fmt: skip
                                if clearance > 0.0:  # always, as visible decided
                                    p -= loss_t
                        if p > best[i, c]:
                            best[i, c] = p
                            server[i, c] = t
                # the weakest cell of the tile, counting cells below the floor as the floor
                w = np.inf
                for i in range(nr):
                    for c in range(nc):
                        v = best[i, c]
                        if v < floor_dbm:
                            v = floor_dbm
                        if v < w:
                            w = v
                weakest = w
            for i in range(nr):
                for c in range(nc):
                    out_power[g, r0 + i, c0 + c] = best[i, c]
                    out_server[g, r0 + i, c0 + c] = server[i, c]
    return evaluated
