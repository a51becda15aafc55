"""Numba kernel of the best-server computation with a DEM (tile by tile, branch and bound).

For each tile of ``T x T`` cells the candidate towers (those whose radius reaches the tile)
come from the same bucket grid, with the same first *upper bound* of the power they can
deliver anywhere in the tile (EIRP − L(d_min)), and are taken per group (operator) by the flat
kernel's tile loop (:func:`telcoplan.coverage._kernel_tile.walk_tile`: by decreasing bound, a
sector's bound tightened by its pattern's best over the tile's bearings when taken — no
vertical bound here, the depression depends on each cell's ground), with this kernel's
evaluation of a tower (:func:`_tower`). Path loss never decreases with distance (a tested
property of every model), and terrain only adds loss, so the bound holds. Towers are evaluated exactly, cell by cell; as soon as a tower's bound falls
below the weakest best power of the tile, it and all remaining towers of the group are
skipped. The result is exact — identical to evaluating every tower — but typically only a few
towers per tile are computed.

The same tile loop gives, from the same candidates, the highest *rank* (technology
generation) among the towers that reach a coverage level at each cell (a pair that could
only raise a rank has its diffraction loss priced down to that level), and whether some tower
reaches it on flat earth, computed with the flat kernel's float32 evaluation
(:func:`telcoplan.coverage._kernel_common.flat_tower`): the coverage stage's limit raster in
the same run, to the bit the flat kernel's answer. A tower is skipped only when it can change
none of the outputs.

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

:func:`candidate_power_kernel` evaluates towers each on its own at listed cells (the site
planner's candidates at the cells lacking service: :mod:`telcoplan.coverage.candidates`), with
the same per-pair evaluation (:func:`_radio_power`, then the terrain's loss priced down to the
floor): the powers this kernel gives a group of that one tower, without a raster per tower.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np
from numba.core import cgutils, types
from numba.extending import intrinsic

from telcoplan.coverage._kernel_common import (
    flat_tower,
    flat_towers,
    path_loss_at,
    pattern,
    tile_candidates,
    weakest,
    wrap,
)
from telcoplan.coverage._kernel_tile import (
    EVALUATE,
    STOP,
    admit,
    tile_extent,
    tile_offsets,
    walk_tile,
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

__all__ = ["best_server_terrain_kernel", "box_counts", "candidate_power_kernel"]

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
    tile_r0, tile_c0, tsize, x0, y0, res, height, width,
    tx, ty, eirp, group, tower_rank, radius, dh, azimuth, beam, tilt,
    kind, coef_a, coef_b, closed, table_id, tables, table_step,
    b_ptr, b_ids, bxmin, bymin, bsize, nbx, nby,
    n_groups, floor_dbm,
    dem, bmax, use_dem, h_abs_tx, h_rx, wavelength, method,
    clutter, use_clutter, do_rank, do_flat, rank_floor, covered_dbm,
    out_r0, out_c0, out_power, out_server, out_rank, out_flat, out_done,
):  # fmt: skip
    """Fill ``out_power`` (n_groups, H, W; −inf where unreached) and ``out_server`` (−1); with
    ``do_rank`` ``out_rank`` (H, W), with ``do_flat`` ``out_flat`` (H, W) too.

    The tiles are tiles of the full grid (``height`` × ``width`` cells of ``res`` m from the
    corner ``x0``, ``y0``), and so are ``dem``, ``bmax`` and ``clutter``: every coordinate is
    computed from the full grid. The outputs may hold only part of it: cell (r, c) goes to
    ``[r − out_r0, c − out_c0]`` (0, 0 for full-size outputs), the same values to the bit.

    A tile's candidates come from the bucket grid of the towers (``b_ptr``/``b_ids``, as the
    flat kernel's) with their first bounds, and each group's towers are taken by decreasing
    bound, a sector's bound tightened by its pattern when taken (the flat kernel's selection,
    :mod:`telcoplan.coverage._kernel_common`; without a vertical bound: the depression
    depends on each cell's ground).

    ``out_rank`` gets the highest ``tower_rank`` among the towers whose power (float32) minus
    ``clutter`` (when ``use_clutter``) is ≥ ``covered_dbm``, −1 where none. ``out_flat`` gets
    whether some tower reaches that level on flat earth: its power as the flat kernel
    computes it (float32, no diffraction, antenna depression from the heights above the
    receiver), the same bits as a run of the flat kernel. ``rank_floor`` is ``covered_dbm``
    less the largest clutter gain: a tower whose bound is below it covers no cell.

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
    towers = flat_towers(
        tx, ty, radius, dh, azimuth, beam, tilt, tower_rank, eirp, kind, coef_a, coef_b, closed
    )
    # each worker takes the next tile from a shared counter until none is left; more workers
    # than threads (the thread count is not known here) only adds workers that find none
    n_workers = min(_WORKERS, n_tiles)
    counter = np.zeros(1, dtype=np.int64)
    n_buf = profile_buffer_size(max_radius + 2.0 * tsize * res, res) + 2 if use_dem else 1
    for _ in nb.prange(n_workers):
        if counter[0] >= n_tiles:
            continue
        buf = np.empty(n_buf)
        no_horizon = np.empty((0, 0))  # the LOS test's horizon table: none (no pruning)
        seeds = np.empty(2)  # where the previous cell's Bullington slopes peaked
        while True:
            k = _fetch_add(counter, 1)
            if k >= n_tiles:
                break
            out_done[k] = _tile(
                tile_r0[k], tile_c0[k], tsize, x0, y0, res, height, width, max_radius,
                tx, ty, eirp, group, tower_rank, radius, dh, towers, azimuth, beam, tilt,
                kind, coef_a, coef_b, closed, table_id, tables, table_step,
                b_ptr, b_ids, bxmin, bymin, bsize, nbx, nby,
                n_groups, floor_dbm,
                dem, bmax, use_dem, h_abs_tx, h_rx, wavelength, method,
                clutter, use_clutter, do_rank, do_flat, rank_floor, covered_dbm,
                out_r0, out_c0, out_power, out_server, out_rank, out_flat, buf, no_horizon, seeds,
            )  # fmt: skip


@nb.njit(cache=True)
def _tower(
    t, upd_best, upd_rank, dmin2, dmax2, best, server, rank,
    r0, c0, nr, nc, x0, y0, res, tx, ty, eirp, tower_rank, radius, dh, azimuth, beam, tilt,
    kind, coef_a, coef_b, table_id, tables, table_step, floor_dbm,
    dem, bmax, use_dem, h_abs_tx, h_rx, wavelength, method,
    rank_floor, covf, clut, buf, no_horizon, seeds,
):  # fmt: skip
    """Tower ``t`` on a tile's cells within its radius, float64, with the terrain's loss:
    :func:`telcoplan.coverage._kernel_tile.walk_tile`'s evaluation (its arguments, then this
    kernel's tuple of the tile from ``r0``, which the walk passes as ``*ctx``; ``dmin2``,
    ``dmax2`` unused).

    With ``upd_best``: ``best``/``server`` get its power where larger; the diffraction loss is
    priced only where the pair could still beat the cell's best (and the floor). With
    ``upd_rank``: ``rank`` gets the tower's rank where its power (float32) less ``clut``
    reaches ``covf`` and the cell's rank is lower; there the loss is priced down to
    ``rank_floor``.
    """
    r2 = radius[t] * radius[t]
    rank_t = tower_rank[t]
    sector = not (math.isnan(azimuth[t]) and math.isnan(tilt[t]))
    for i in range(nr):
        yc = y0 - (r0 + i + 0.5) * res
        dy = yc - ty[t]
        hint = -1.0  # where the previous cell's path was blocked (fraction)
        seeds[:] = -1.0
        for c in range(nc):
            if not upd_best and rank_t <= rank[i, c]:
                continue
            xc = x0 + (c0 + c + 0.5) * res
            dx = xc - tx[t]
            d2 = dx * dx + dy * dy
            if d2 > r2:
                continue
            d = math.sqrt(d2)
            dh_c = dh[t]
            h_abs_rx = 0.0
            if use_dem:
                z = dem[r0 + i, c0 + c]
                h_abs_rx = (0.0 if math.isnan(z) else z) + h_rx
                dh_c = h_abs_tx[t] - h_abs_rx
            p = _radio_power(
                t, d, dx, dy, dh_c, sector, eirp, kind, coef_a, coef_b, table_id, tables,
                table_step, azimuth, beam, tilt,
            )  # fmt: skip
            # below the floor the pair is dropped anyway (terrain only lowers it)
            need_best = upd_best and p > best[i, c] and p >= floor_dbm
            need_rank = upd_rank and rank_t > rank[i, c] and p >= rank_floor
            if use_dem and (need_best or need_rank):
                beat = max(best[i, c], floor_dbm) if need_best else np.inf
                if need_rank:
                    beat = min(beat, rank_floor)
                p = _terrain_power(
                    p, beat, dem, bmax, x0, y0, res, tx[t], ty[t], h_abs_tx[t], xc, yc,
                    h_abs_rx, wavelength[t], method, buf, hint, no_horizon, seeds,
                )  # fmt: skip
                hint = buf[0]
            if upd_best and p > best[i, c]:
                best[i, c] = p
                server[i, c] = t
            if need_rank and np.float32(p) - clut[i, c] >= covf:
                rank[i, c] = rank_t


@nb.njit(cache=True, inline="always")
def _radio_power(
    t, d, dx, dy, dh_c, sector, eirp, kind, coef_a, coef_b, table_id, tables, table_step,
    azimuth, beam, tilt,
):  # fmt: skip
    """Tower ``t``'s power (dBm, float64) at a cell ``d`` m away (offset ``dx``, ``dy`` from
    the tower; antenna ``dh_c`` m above the receiver) before the terrain's loss: EIRP less the
    model's path loss, plus the sector pattern's gain when ``sector``."""
    p = eirp[t] - path_loss_at(t, d, kind, coef_a, coef_b, table_id, tables, table_step)
    if sector:
        phi = 0.0
        if not math.isnan(azimuth[t]):
            phi = wrap(math.degrees(math.atan2(dx, dy)) - azimuth[t])
        dep = math.degrees(math.atan2(dh_c, max(d, 1.0)))
        p += pattern(phi, dep, azimuth[t], beam[t], tilt[t])
    return p


@nb.njit(cache=True)
def _tile(
    r0, c0, tsize, x0, y0, res, height, width, max_radius,
    tx, ty, eirp, group, tower_rank, radius, dh, towers, azimuth, beam, tilt,
    kind, coef_a, coef_b, closed, table_id, tables, table_step,
    b_ptr, b_ids, bxmin, bymin, bsize, nbx, nby,
    n_groups, floor_dbm,
    dem, bmax, use_dem, h_abs_tx, h_rx, wavelength, method,
    clutter, use_clutter, do_rank, do_flat, rank_floor, covered_dbm,
    out_r0, out_c0, out_power, out_server, out_rank, out_flat, buf, no_horizon, seeds,
):  # fmt: skip
    """One tile (from row ``r0``, column ``c0``), every group, into the outputs from
    (``out_r0``, ``out_c0``): returns the number of (tower, tile) evaluations."""
    nr, nc, xs, ys = tile_extent(r0, c0, tsize, x0, y0, res, height, width)
    # the bounds hold for the tables this kernel reads and for the flat kernel's closed forms
    cands, bound = tile_candidates(
        xs, ys, tx, ty, eirp, radius, max_radius, kind, coef_a, coef_b, closed, table_id,
        tables, table_step, True, b_ptr, b_ids, bxmin, bymin, bsize, nbx, nby,
    )  # fmt: skip
    best = np.empty((nr, nc))
    server = np.empty((nr, nc), dtype=np.int32)
    ranked = do_rank or do_flat
    rank = np.full((nr, nc) if ranked else (1, 1), -1, dtype=np.int32)
    clut = np.zeros((nr, nc) if ranked else (1, 1), dtype=np.float32)
    if ranked and use_clutter:
        clut[:, :] = clutter[r0 : r0 + nr, c0 : c0 + nc]
    covf = np.float32(covered_dbm)
    o_r, o_c = r0 - out_r0, c0 - out_c0  # the tile's first cell in the outputs
    ctx = (
        r0, c0, nr, nc, x0, y0, res, tx, ty, eirp, tower_rank, radius, dh, azimuth, beam, tilt,
        kind, coef_a, coef_b, table_id, tables, table_step, floor_dbm,
        dem, bmax, use_dem, h_abs_tx, h_rx, wavelength, method,
        rank_floor, covf, clut, buf, no_horizon, seeds,
    )  # fmt: skip
    # no vertical pattern bound (the depression depends on each cell's ground); the powers
    # go out as they are (the caller takes the clutter and the floor off)
    evaluated = walk_tile(
        _tower, ctx, cands, bound, group, n_groups, tower_rank, floor_dbm, do_rank, rank_floor,
        xs, ys, (tx, ty, dh, azimuth, beam, tilt), True, best, server, rank,
        nr, nc, r0, c0, o_r, o_c, clutter, False, -np.inf, (out_power, out_server, out_rank),
    )  # fmt: skip
    if do_flat:
        evaluated += _flat_cover(
            cands, bound, xs, ys, c0, o_r, o_c, nr, nc, x0, res, tx, ty, dh, azimuth, beam,
            tilt, towers, rank_floor, covf, clut, out_flat,
        )  # fmt: skip
    return evaluated


@nb.njit(cache=True)
def _flat_cover(
    cands, bound, xs, ys, c0, o_r, o_c, nr, nc, x0, res, tx, ty, dh, azimuth, beam, tilt,
    towers, floor, covf, clut, out_flat,
):  # fmt: skip
    """Whether some tower's flat-earth power less the clutter reaches ``covf`` on each cell
    of a tile (first grid column ``c0``), into ``out_flat`` from (``o_r``, ``o_c``): the flat
    kernel's float32 evaluation
    (:func:`telcoplan.coverage._kernel_common.flat_tower`) of the tile's candidates by
    decreasing bound (their patterns' bounds with the vertical pattern: flat earth), until
    every cell is covered or no bound can beat the weakest cell (or ``floor``). Returns the
    towers evaluated.
    """
    evaluated = 0
    m = cands.shape[0]
    order = np.argsort(-bound)
    n = nr * nc  # the tile's buffers, flat (row-major), as the flat kernel's
    gx, gy = tile_offsets(nr, nc, res)
    best = np.full(n, -np.inf, dtype=np.float32)
    server = np.empty(n, dtype=np.int32)
    pw = np.empty(n, dtype=np.float32)
    flat_clut = clut.ravel()
    ctx = (flat_clut, covf, pw, gx, gy, nr, nc, x0, res, c0, xs[0], ys[0], ys[1], towers)
    worst = -np.inf
    for jj in range(m):
        j = order[jj]
        state, _, dmin2, dmax2 = admit(
            cands[j], bound[j], floor, worst, xs, ys, tx, ty, dh, azimuth, beam, tilt, False
        )
        if state == STOP:
            break
        if state == EVALUATE:
            evaluated += 1
            flat_tower(cands[j], True, False, dmin2, dmax2, best, server, server, *ctx)
            worst = weakest(best, floor)
            short = 0  # cells not covered yet
            for c in range(n):
                short += best[c] - flat_clut[c] < covf
            if short == 0:
                break
    for i in range(nr):
        for c in range(nc):
            out_flat[o_r + i, o_c + c] = best[i * nc + c] - flat_clut[i * nc + c] >= covf
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


@nb.njit(cache=True)
def _box(t, x0, y0, res, tx, ty, radius, n_rows):
    """Rows ``r_lo … r_hi`` (within the grid's ``n_rows``) and columns ``c_lo … c_hi`` (not
    clipped) of the cells whose centre may lie within tower ``t``'s radius, a cell of margin
    each side (:func:`candidate_power_kernel` tests each cell's distance itself)."""
    r = radius[t]
    r_lo = max(0, math.floor((y0 - ty[t] - r) / res - 0.5) - 1)
    r_hi = min(n_rows - 1, math.ceil((y0 - ty[t] + r) / res - 0.5) + 1)
    c_lo = math.floor((tx[t] - r - x0) / res - 0.5) - 1
    c_hi = math.ceil((tx[t] + r - x0) / res - 0.5) + 1
    return r_lo, r_hi, c_lo, c_hi


@nb.njit(cache=True)
def _row_span(row_ptr, cols, r, c_lo, c_hi):
    """Positions ``j0 … j1 − 1`` in ``cols`` of row ``r``'s listed columns in ``c_lo … c_hi``."""
    a, b = row_ptr[r], row_ptr[r + 1]
    seg = cols[a:b]
    return a + np.searchsorted(seg, c_lo), a + np.searchsorted(seg, c_hi, side="right")


@nb.njit(cache=True)
def box_counts(cand, x0, y0, res, tx, ty, radius, row_ptr, cols):
    """Per tower of ``cand``, the listed cells (``row_ptr``/``cols``, see
    :func:`candidate_power_kernel`) in its radius' bounding box: room for its results."""
    out = np.zeros(cand.shape[0], dtype=np.int64)
    n_rows = row_ptr.shape[0] - 1
    for k in range(cand.shape[0]):
        r_lo, r_hi, c_lo, c_hi = _box(cand[k], x0, y0, res, tx, ty, radius, n_rows)
        for r in range(r_lo, r_hi + 1):
            j0, j1 = _row_span(row_ptr, cols, r, c_lo, c_hi)
            out[k] += j1 - j0
    return out


@nb.njit(cache=True, parallel=True, nogil=True)
def candidate_power_kernel(
    cand, offsets, x0, y0, res, tx, ty, eirp, radius, dh, azimuth, beam, tilt,
    kind, coef_a, coef_b, table_id, tables, table_step, kernel_floor,
    dem, bmax, h_abs_tx, h_rx, wavelength, method, clutter, use_clutter,
    row_ptr, cols, keep_dbm, out_pos, out_power, out_count,
):  # fmt: skip
    """Each tower of ``cand`` on its own, at the listed cells within its radius: the power
    :func:`best_server_terrain_kernel` gives a group of that tower alone at those cells — float32,
    less ``clutter`` when ``use_clutter`` — kept where ≥ ``keep_dbm`` (float32).

    The arguments are those of :func:`best_server_terrain_kernel` for the whole grid (from the
    corner ``x0``, ``y0``; ``kernel_floor`` its floor, less the largest clutter gain). The
    cells are listed by row: row ``r``'s columns, ascending, are
    ``cols[row_ptr[r] : row_ptr[r + 1]]``. Tower ``cand[k]`` writes the positions in ``cols``
    and the powers of the cells it keeps from ``offsets[k]`` on (room for its
    :func:`box_counts`), row by row, and their number into ``out_count[k]``.

    The same evaluation as the tile kernel's (:func:`_tower` with one tower per group): the
    model and pattern in float64, the diffraction loss priced where the pair reaches the
    floor, the same arithmetic for every cell's coordinates: the same bits. Towers are handed
    to the threads one at a time by the caller (``numba.parallel_chunksize(1)``).
    """
    n_rows = row_ptr.shape[0] - 1
    max_radius = 0.0
    for k in range(cand.shape[0]):
        max_radius = max(max_radius, radius[cand[k]])
    n_buf = profile_buffer_size(max_radius + 2.0 * res, res) + 2
    keep = np.float32(keep_dbm)
    for k in nb.prange(cand.shape[0]):
        t = cand[k]
        buf = np.empty(n_buf)
        no_horizon = np.empty((0, 0))  # the LOS test's horizon table: none (no pruning)
        seeds = np.empty(2)
        r2 = radius[t] * radius[t]
        sector = not (math.isnan(azimuth[t]) and math.isnan(tilt[t]))
        r_lo, r_hi, c_lo, c_hi = _box(t, x0, y0, res, tx, ty, radius, n_rows)
        m = offsets[k]
        for r in range(r_lo, r_hi + 1):
            j0, j1 = _row_span(row_ptr, cols, r, c_lo, c_hi)
            yc = y0 - (r + 0.5) * res
            dy = yc - ty[t]
            hint = -1.0  # where the previous cell's path was blocked (fraction)
            seeds[:] = -1.0
            for j in range(j0, j1):
                c = cols[j]
                xc = x0 + (c + 0.5) * res
                dx = xc - tx[t]
                d2 = dx * dx + dy * dy
                if d2 > r2:
                    continue
                d = math.sqrt(d2)
                z = dem[r, c]
                h_abs_rx = (0.0 if math.isnan(z) else z) + h_rx
                p = _radio_power(
                    t, d, dx, dy, h_abs_tx[t] - h_abs_rx, sector, eirp, kind, coef_a, coef_b,
                    table_id, tables, table_step, azimuth, beam, tilt,
                )  # fmt: skip
                if not p >= kernel_floor:  # below the floor (terrain only lowers it)
                    continue
                p = _terrain_power(
                    p, kernel_floor, dem, bmax, x0, y0, res, tx[t], ty[t], h_abs_tx[t], xc, yc,
                    h_abs_rx, wavelength[t], method, buf, hint, no_horizon, seeds,
                )  # fmt: skip
                hint = buf[0]
                pf = np.float32(p)
                if use_clutter:
                    pf = pf - clutter[r, c]
                if pf >= keep:
                    out_pos[m] = j
                    out_power[m] = pf
                    m += 1
        out_count[k] = m - offsets[k]
