"""Numba kernel of the flat-earth best-server computation: tile by tile, branch and bound, SIMD.

For each tile of ``T x T`` cells the candidate towers (those whose radius reaches the tile) are
found from a bucket grid of the towers, each with a first *upper bound* of the power it can
deliver anywhere in the tile: EIRP − L(d_min) (path loss never decreases with distance; the
pattern only lowers the power). Per group (operator), towers are taken by decreasing bound; a
sector's bound is then tightened by its pattern's best over the tile's bearings and depressions
(:func:`telcoplan.coverage._kernel_common.pattern_upper_bound`) and the tower skipped if that
cannot beat the tile's weakest best power; as soon as a first bound cannot, it and all remaining
towers of the group are skipped. The result is the maximum over every tower.

The same tile loop, from the same candidates, also gives the highest *rank* (a tower's
technology generation) among the towers whose power less the clutter reaches a coverage
level at each cell: each tower evaluated for its group also raises the ranks of the tile while
some cell's rank is below its own, and the towers that no group needed are evaluated for the
ranks alone when their bound reaches the coverage level and their rank is above the tile's
lowest. A tower is skipped only when it can change no output.

A tower is evaluated on the tile's cells by
:func:`telcoplan.coverage._kernel_common.flat_tower`: one run over the whole tile when the tile
lies within its radius, else each row's chord; float32 loops without a branch per cell that
the compiler turns into SIMD instructions. Powers agree with the float64 reference to about
1e-4 dB (float32 rounding of ~200 dB sums).

All tiles go in one parallel call, handed to the threads one at a time (the caller sets numba's
parallel chunk size to 1): land tiles with many strong towers cost more than sea tiles, and no
thread waits at a barrier between chunks. The kernel releases the GIL, so the caller can report
progress from another thread.

Memory: the outputs plus a few tile-sized buffers per tile being computed; never cells × towers.
"""

from __future__ import annotations

import numba as nb
import numpy as np

from telcoplan.coverage._kernel_common import (
    FAST,
    flat_tower,
    flat_towers,
    group_candidates,
    min_rank,
    next_best,
    sector_bound,
    tile_candidates,
    weakest,
)

__all__ = ["best_server_flat_kernel", "serving_power"]


@nb.njit(cache=True, fastmath=FAST, error_model="numpy")
def _publish(
    best, server, nr, nc, clutter, use_clutter, out_floor, out_power, out_server, r0, c0, o_r, o_c
):  # fmt: skip
    """A tile's result (flat, ``nr`` × ``nc``) into one group's outputs from (``o_r``, ``o_c``):
    minus the clutter (the full grid's, from the tile's first cell ``r0``, ``c0``), NaN / −1
    below ``out_floor``."""
    nan = np.float32(np.nan)
    floor = np.float32(out_floor)
    for i in range(nr):
        row_p = out_power[o_r + i, o_c : o_c + nc]
        row_s = out_server[o_r + i, o_c : o_c + nc]
        k = np.uint64(i * nc)  # unsigned: no wraparound test, the loops vectorise
        if use_clutter:
            clut = clutter[r0 + i, c0 : c0 + nc]
            for c in range(nc):
                p = best[k + np.uint64(c)] - clut[c]
                ok = p >= floor
                row_p[c] = p if ok else nan
                row_s[c] = server[k + np.uint64(c)] if ok else np.int32(-1)
        else:
            for c in range(nc):
                p = best[k + np.uint64(c)]
                ok = p >= floor
                row_p[c] = p if ok else nan
                row_s[c] = server[k + np.uint64(c)] if ok else np.int32(-1)


@nb.njit(cache=True)
def _tile(
    r0, c0, tsize, x0, y0, res, height, width,
    tx, ty, eirp, group, tower_rank, radius, max_radius, dh, towers, azimuth, beam, tilt,
    kind, coef_a, coef_b, closed, no_id, no_tables,
    b_ptr, b_ids, bxmin, bymin, bsize, nbx, nby,
    n_groups, floor_dbm, out_floor, clutter, use_clutter, do_rank, rank_floor, covered_dbm,
    out_r0, out_c0, out_power, out_server, out_rank,
):  # fmt: skip
    """One tile of :func:`best_server_flat_kernel` (from row ``r0``, column ``c0``).

    A plain function called from the parallel loop, so that its loops and arrays stay as
    written (numba's parallel transforms do not touch them). Returns the towers evaluated.
    """
    evaluated = 0
    r1, c1 = min(r0 + tsize, height), min(c0 + tsize, width)
    nr, nc = r1 - r0, c1 - c0
    xs = np.empty(2)
    ys = np.empty(2)
    xs[0] = x0 + (c0 + 0.5) * res
    xs[1] = x0 + (c1 - 0.5) * res
    ys[0] = y0 - (r1 - 0.5) * res
    ys[1] = y0 - (r0 + 0.5) * res
    cands, bound = tile_candidates(
        xs, ys, tx, ty, eirp, radius, max_radius, kind, coef_a, coef_b, closed, no_id,
        no_tables, 1.0, False, b_ptr, b_ids, bxmin, bymin, bsize, nbx, nby,
    )  # fmt: skip
    m = cands.shape[0]
    gptr, gpos, left = group_candidates(cands, bound, group, n_groups)
    # the tile's buffers, flat (row-major): cell centres relative to the tile's first cell
    # centre (float32: small numbers), best power and server, the tower's power
    n = nr * nc
    gx = np.empty(n, dtype=np.float32)
    gy = np.empty(n, dtype=np.float32)
    for i in range(nr):
        for c in range(nc):
            gx[i * nc + c] = c * res
            gy[i * nc + c] = (nr - 1 - i) * res
    best = np.empty(n, dtype=np.float32)
    server = np.empty(n, dtype=np.int32)
    pw = np.empty(n, dtype=np.float32)
    # the ranks: the tile's highest rank reaching the coverage level, its clutter
    rank = np.full(n if do_rank else 1, -1, dtype=np.int32)
    clut = np.zeros(n if do_rank else 1, dtype=np.float32)
    if do_rank and use_clutter:
        for i in range(nr):
            for c in range(nc):
                clut[i * nc + c] = clutter[r0 + i, c0 + c]
    covf = np.float32(covered_dbm)
    low_rank = -1  # the lowest rank of the tile's cells
    done = np.zeros(m, dtype=np.bool_)  # evaluated on the tile already
    for g in range(n_groups):
        best[:] = -np.inf
        server[:] = -1
        worst = -np.inf
        taken = 0
        rest = np.empty(0, dtype=np.int64)
        while True:  # the group's towers by decreasing bound
            q, rest = next_best(left, gptr[g], gptr[g + 1], taken, rest)
            taken += 1
            if q < 0:
                break
            j = gpos[q]
            t = cands[j]
            # once a bound cannot beat the tile's weakest cell (or the floor), no later tower
            # of this group can either; a sector's pattern may rule it alone out
            if bound[j] < floor_dbm or bound[j] <= worst:
                break
            ub, dmin2, dmax2 = sector_bound(
                t, bound[j], xs, ys, tx, ty, dh, azimuth, beam, tilt, False
            )
            if ub < floor_dbm or ub <= worst:
                continue
            evaluated += 1
            done[j] = True
            upd_rank = do_rank and tower_rank[t] > low_rank and ub >= rank_floor
            flat_tower(
                t, upd_rank, best, server, rank, clut, covf, pw, gx, gy, nr, nc,
                x0, res, c0, xs[0], ys[0], ys[1], dmin2, dmax2, towers,
            )  # fmt: skip
            worst = weakest(best, floor_dbm)
            if upd_rank:
                low_rank = min_rank(rank)
        _publish(
            best, server, nr, nc, clutter, use_clutter, out_floor, out_power[g], out_server[g],
            r0, c0, r0 - out_r0, c0 - out_c0,
        )  # fmt: skip
    if not do_rank:
        return evaluated
    # the ranks: the towers no group evaluated, by decreasing bound, while one may still
    # raise a cell's rank
    order = np.argsort(-bound)
    for jj in range(m):
        j = order[jj]
        t = cands[j]
        if bound[j] < rank_floor:
            break
        if done[j] or tower_rank[t] <= low_rank:
            continue
        ub, dmin2, dmax2 = sector_bound(t, bound[j], xs, ys, tx, ty, dh, azimuth, beam, tilt, False)
        if ub < rank_floor:
            continue
        evaluated += 1
        flat_tower(
            t, True, best, server, rank, clut, covf, pw, gx, gy, nr, nc,
            x0, res, c0, xs[0], ys[0], ys[1], dmin2, dmax2, towers,
        )  # fmt: skip
        low_rank = min_rank(rank)
    for i in range(nr):
        for c in range(nc):
            out_rank[r0 - out_r0 + i, c0 - out_c0 + c] = rank[i * nc + c]
    return evaluated


@nb.njit(cache=True, parallel=True, nogil=True)
def best_server_flat_kernel(
    tile_r0, tile_c0, tsize, x0, y0, res, height, width,
    tx, ty, eirp, group, tower_rank, radius, dh, azimuth, beam, tilt,
    kind, coef_a, coef_b, closed,
    b_ptr, b_ids, bxmin, bymin, bsize, nbx, nby,
    n_groups, floor_dbm, out_floor, clutter, use_clutter, do_rank, rank_floor, covered_dbm,
    out_r0, out_c0, out_power, out_server, out_rank, out_done,
):  # fmt: skip
    """Fill ``out_power`` (n_groups, H, W) and ``out_server`` on the given tiles; with
    ``do_rank``, ``out_rank`` (H, W) too.

    The tiles (first cells ``tile_r0``, ``tile_c0``) are tiles of the full grid (``height`` ×
    ``width`` cells of ``res`` m from the corner ``x0``, ``y0``): every coordinate is computed
    from it, and ``clutter`` is on it. The outputs may cover only part of it: cell (r, c) of the
    grid goes to ``[r − out_r0, c − out_c0]`` (0, 0 and full-size outputs for the whole grid;
    a window from ``out_r0``, ``out_c0`` holding the given tiles for a part of it: the same
    values, to the bit).

    ``out_power`` gets the best power minus ``clutter`` (when ``use_clutter``), NaN where no
    tower reaches or the result is below ``out_floor``; ``out_server`` the tower's position, −1
    there. ``out_rank`` gets the highest ``tower_rank`` among the towers whose power minus the
    clutter is ≥ ``covered_dbm`` (float32 arithmetic), −1 where none; ``rank_floor`` is
    ``covered_dbm`` less the largest clutter gain (a tower whose bound is below it covers no
    cell). ``out_done`` gets each tile's tower evaluations when the tile is done (the caller
    fills it with −1 and may watch it from another thread: the kernel releases the GIL).
    """
    n_tiles = tile_r0.shape[0]
    max_radius = 0.0
    for t in range(radius.shape[0]):
        max_radius = max(max_radius, radius[t])
    towers = flat_towers(
        tx, ty, radius, dh, azimuth, beam, tilt, tower_rank, eirp, kind, coef_a, coef_b, closed
    )
    no_id = np.zeros(1, dtype=np.int64)  # the flat kernel reads no tables
    no_tables = np.zeros((1, 2), dtype=np.float32)
    for k in nb.prange(n_tiles):
        out_done[k] = _tile(
            tile_r0[k], tile_c0[k], tsize, x0, y0, res, height, width,
            tx, ty, eirp, group, tower_rank, radius, max_radius, dh, towers, azimuth, beam, tilt,
            kind, coef_a, coef_b, closed, no_id, no_tables,
            b_ptr, b_ids, bxmin, bymin, bsize, nbx, nby,
            n_groups, floor_dbm, out_floor, clutter, use_clutter, do_rank, rank_floor,
            covered_dbm, out_r0, out_c0, out_power, out_server, out_rank,
        )  # fmt: skip


@nb.njit(cache=True, parallel=True, nogil=True)
def serving_power(margin, server, threshold, power, covered):
    """Per cell of ``margin`` (groups, H, W; NaN = none): the serving tower's power (margin +
    its ``threshold``; NaN where no tower serves) into ``power``, margin ≥ 0 into ``covered``.

    One pass over the rasters in parallel, instead of a gather and four numpy passes over
    full-size temporaries (3 s of a national run).
    """
    n_g, h, w = margin.shape
    for r in nb.prange(n_g * h):
        g, i = r // h, r % h
        for c in range(w):
            m = margin[g, i, c]
            s = server[g, i, c]
            covered[g, i, c] = m >= 0.0
            power[g, i, c] = m + threshold[s] if s >= 0 else np.float32(np.nan)
