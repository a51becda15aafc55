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
elevations. Per pair that could still win, in order of cost:

1. **Line of sight**: the exact viewshed's test
   (:func:`telcoplan.coverage.visibility.visible`: the same samples and arithmetic as the
   profile, but chunks of samples that block maxima of the DEM prove below the ray are skipped,
   and the previous cell's obstruction is tried first). Clear: no loss, done.
2. **A lower bound of the loss before any walk**: J(ν) of the blocking sample that the test
   found. Deygout's main edge and Bullington's equivalent edge have a ν at least as large, so
   if J(ν) already exceeds the pair's margin over the cell's best power (or the floor), the
   pair cannot win and its profile is not walked (Epstein-Peterson has no such bound).
3. **Bullington** (the default) walks only the profile samples that can change its two
   horizon slopes (:func:`telcoplan.coverage.visibility.bullington_obstructed`): chunks that
   the block maxima prove below both slopes found so far are skipped, the samples where the
   previous cell's slopes peaked (the same horizons, seen from the next cell of the row) come
   first, and the walk stops as soon as the slopes found prove the loss above the pair's
   margin. Its result is bit for bit the full walk's. Deygout and Epstein-Peterson walk the
   whole profile.

The answer is the one of walking every profile: the rasters are bit for bit those of a kernel
without these shortcuts (a pair is dropped only when its loss provably exceeds its margin by
1e-6 dB; such a pair could only have been recorded below the floor, where the output is NaN).
The DEM may be float32 (the caller passes it only when that is exact; the arithmetic stays
float64), which halves the memory traffic. Tiles are handed to the threads one at a time from
an atomic counter, so that the threads stay busy until the end whatever the terrain costs.

Memory: the outputs plus a few tile-sized buffers; never cells × towers.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np
from numba.core import cgutils, types
from numba.extending import intrinsic

from telcoplan.coverage._kernel_common import (
    path_loss_at,
    pattern,
    tile_upper_bounds,
    wrap,
)
from telcoplan.coverage.profile import (
    knife_edge_nu,
    path_terrain_loss_with_buffer,
    profile_buffer_size,
)
from telcoplan.coverage.visibility import (
    BLOCK,
    FULL_WALK,
    LOSS_ABOVE,
    bullington_obstructed,
    sample_nu,
    visible,
)

__all__ = ["best_server_terrain_kernel"]

_BULLINGTON, _DEYGOUT = 1, 0  # DIFFRACTION_METHODS codes with a loss bound before the walk
_WORKERS = 64  # tile-pulling workers per call: at least the threads of any machine we run on
_CAP_MARGIN_DB = 1e-6  # a pair is dropped only if its loss provably exceeds the cap by this


@intrinsic
def _fetch_add(typingctx, counter, value):
    """Atomically add ``value`` to ``counter[0]`` (int64 array) and return the previous value."""
    sig = types.int64(counter, types.int64)

    def codegen(context, builder, signature, args):
        ary = context.make_array(signature.args[0])(context, builder, args[0])
        ptr = cgutils.get_item_pointer(
            context, builder, signature.args[0], ary, [cgutils.intp_t(0)]
        )
        return builder.atomic_rmw("add", ptr, args[1], "monotonic")

    return sig, codegen


@nb.njit(cache=True, parallel=True, nogil=True)
def best_server_terrain_kernel(
    tile_r0, tile_c0, tile_ptr, tile_cand, tsize,
    x0, y0, res, height, width,
    tx, ty, eirp, group, radius, dh, azimuth, beam, tilt,
    kind, coef_a, coef_b, table_id, tables, table_step,
    n_groups, floor_dbm,
    dem, bmax, use_dem, h_abs_tx, h_rx, wavelength, method,
    out_power, out_server, out_done,
):  # fmt: skip
    """Fill ``out_power`` (n_groups, H, W; −inf where unreached) and ``out_server`` (−1).

    ``out_done`` gets each tile's tower evaluations when the tile is done (the caller fills it
    with −1 and may watch it from another thread: the kernel releases the GIL).

    ``dem`` is float64, or float32 (half the memory traffic; the caller passes it only when
    every elevation is exactly a float32, so the arithmetic, done in float64, is unchanged).
    Tiles are handed out one at a time to the threads (an atomic counter), so a thread that
    drew flat tiles takes more of them than one that drew hills.
    """
    n_tiles = tile_r0.shape[0]
    max_radius = 0.0
    for t in range(radius.shape[0]):
        max_radius = max(max_radius, radius[t])
    # each worker takes the next tile from a shared counter until none is left; more workers
    # than threads (the thread count is not known here) only adds workers that find none
    n_workers = min(_WORKERS, n_tiles)
    counter = np.zeros(1, dtype=np.int64)
    n_buf = profile_buffer_size(max_radius + 2.0 * tsize * res, res) + 2 if use_dem else 1
    for _ in nb.prange(n_workers):
        if counter[0] >= n_tiles:
            continue
        buf = np.empty(n_buf)
        best = np.empty((tsize, tsize))
        server = np.empty((tsize, tsize), dtype=np.int32)
        xs = np.empty(2)
        ys = np.empty(2)
        no_horizon = np.empty((0, 0))  # the LOS test's horizon table: none (no pruning)
        seeds = np.empty(2)  # where the previous cell's Bullington slopes peaked
        while True:
            k = _fetch_add(counter, 1)
            if k >= n_tiles:
                break
            out_done[k] = _tile(
                k, tile_r0, tile_c0, tile_ptr, tile_cand, tsize,
                x0, y0, res, height, width,
                tx, ty, eirp, group, radius, dh, azimuth, beam, tilt,
                kind, coef_a, coef_b, table_id, tables, table_step,
                n_groups, floor_dbm,
                dem, bmax, use_dem, h_abs_tx, h_rx, wavelength, method,
                out_power, out_server, buf, best, server, xs, ys, no_horizon, seeds,
            )  # fmt: skip


@nb.njit(cache=True)
def _tile(
    k, tile_r0, tile_c0, tile_ptr, tile_cand, tsize,
    x0, y0, res, height, width,
    tx, ty, eirp, group, radius, dh, azimuth, beam, tilt,
    kind, coef_a, coef_b, table_id, tables, table_step,
    n_groups, floor_dbm,
    dem, bmax, use_dem, h_abs_tx, h_rx, wavelength, method,
    out_power, out_server, buf, best, server, xs, ys, no_horizon, seeds,
):  # fmt: skip
    """One tile, every group: returns the number of (tower, tile) evaluations."""
    evaluated = 0
    r0, c0 = tile_r0[k], tile_c0[k]
    r1, c1 = min(r0 + tsize, height), min(c0 + tsize, width)
    nr, nc = r1 - r0, c1 - c0
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
    for g in range(n_groups):
        best[:nr, :nc] = -np.inf
        server[:nr, :nc] = -1
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
            evaluated += 1
            r2 = radius[t] * radius[t]
            for i in range(nr):
                yc = y0 - (r0 + i + 0.5) * res
                dy = yc - ty[t]
                hint = -1.0  # where the previous cell's path was blocked (fraction)
                seeds[:] = -1.0
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
                        p = _terrain_power(
                            p, max(best[i, c], floor_dbm), dem, bmax, x0, y0, res, tx[t],
                            ty[t], h_abs_tx[t], xc, yc, h_abs_rx, wavelength[t], method, buf,
                            hint, no_horizon, seeds,
                        )  # fmt: skip
                        hint = buf[0]
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


@nb.njit(cache=True)
def _terrain_power(p, beat, dem, bmax, x0, y0, res, tx, ty, ha, rx, ry, hb, lam, method, buf,
                   hint, no_horizon, seeds):  # fmt: skip
    """The pair's power ``p`` (dBm) less its diffraction loss, or −inf if it cannot exceed ``beat``.

    Terrain only adds loss, and only on an obstructed path (the empirical models already
    include the ground near the receiver, and a flat DEM must give the flat-earth result).
    The exact line-of-sight test comes first; on an obstructed path, the loss is first bounded
    from below (J(ν) of the blocking sample: Deygout's main edge and Bullington's equivalent
    edge have a ν at least as large) and the profile is walked only if the pair may still
    exceed ``beat``; Bullington's walk skips the samples that cannot change its slopes and
    stops as soon as the loss is proven too large. ``buf[0]`` returns the blocking fraction
    (the next cell's ``hint``); ``buf`` is otherwise the profile's work array.
    """
    clear, frac = visible(dem, False, bmax, BLOCK, no_horizon, x0, y0, res, tx, ty, ha, rx, ry,
                          hb, hint)  # fmt: skip
    buf[0] = frac
    if clear:
        return p
    # a loss above the cap leaves the pair at or below `beat` (the cell's best or the floor)
    nu_stop = knife_edge_nu(p - beat + _CAP_MARGIN_DB)
    if method == _BULLINGTON:
        loss, outcome = bullington_obstructed(
            dem, False, bmax, BLOCK, x0, y0, res, tx, ty, ha, rx, ry, hb, lam, frac, nu_stop, seeds
        )
        if outcome == LOSS_ABOVE:
            return -np.inf
        if outcome != FULL_WALK:
            return p - loss
    elif (
        method == _DEYGOUT
        and sample_nu(dem, False, x0, y0, res, tx, ty, ha, rx, ry, hb, lam, frac) > nu_stop + 1e-6
    ):
        return -np.inf
    loss, clearance = path_terrain_loss_with_buffer(
        dem, x0, y0, res, tx, ty, ha, rx, ry, hb, lam, method, buf[1:]
    )
    buf[0] = frac
    if clearance > 0.0:  # always, as visible decided
        return p - loss
    return p
