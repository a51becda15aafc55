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
lowest. A tower is skipped only when it can change no output. This tile loop is the terrain
kernel's too (:func:`telcoplan.coverage._kernel_tile.walk_tile`); each kernel gives it its own
evaluation of a tower.

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

from telcoplan.coverage._kernel_common import flat_tower, flat_towers, tile_candidates
from telcoplan.coverage._kernel_tile import tile_extent, tile_offsets, walk_tile

__all__ = ["best_server_flat_kernel", "serving_power_flat"]


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
    nr, nc, xs, ys = tile_extent(r0, c0, tsize, x0, y0, res, height, width)
    cands, bound = tile_candidates(
        xs, ys, tx, ty, eirp, radius, max_radius, kind, coef_a, coef_b, closed, no_id,
        no_tables, 1.0, False, b_ptr, b_ids, bxmin, bymin, bsize, nbx, nby,
    )  # fmt: skip
    # the tile's buffers, flat (row-major): cell centres relative to the tile's first cell
    # centre, best power and server, the tower's power
    n = nr * nc
    gx, gy = tile_offsets(nr, nc, res)
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
    ctx = (
        clut, np.float32(covered_dbm), pw, gx, gy, nr, nc, x0, res, c0, xs[0], ys[0], ys[1],
        towers,
    )  # fmt: skip
    return walk_tile(
        flat_tower, ctx, cands, bound, group, n_groups, tower_rank, floor_dbm, do_rank, rank_floor,
        xs, ys, (tx, ty, dh, azimuth, beam, tilt), False, best, server, rank,
        nr, nc, r0, c0, r0 - out_r0, c0 - out_c0, clutter, use_clutter, out_floor,
        (out_power, out_server, out_rank),
    )  # fmt: skip


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


@nb.njit(cache=True, nogil=True)
def serving_power_flat(margin, server, threshold, power):
    """The serving power, on flat arrays: ``margin`` + the serving tower's ``threshold`` (float32
    sums) into ``power``; NaN where ``server`` < 0 (no tower serves)."""
    for k in range(margin.shape[0]):
        s = server[k]
        power[k] = margin[k] + threshold[s] if s >= 0 else np.float32(np.nan)
