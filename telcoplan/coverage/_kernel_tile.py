"""The tile loop shared by the best-server kernels: which of a tile's candidate towers are
evaluated, in which order, and where the tile's results go (:func:`walk_tile`).

Per group (operator) the candidates are taken by decreasing first bound (:func:`next_best`); a
tower is evaluated unless its bound, tightened by its pattern (:func:`admit`), cannot beat the
tile's weakest best power or the floor, and the walk stops at the first tower whose first bound
cannot. Each group's best power and server go to its outputs (:func:`publish_group`). With
ranks, the towers no group evaluated then raise the tile's ranks, by decreasing bound, while
one may still raise a cell's.

The kernels differ only in how one tower is evaluated on the tile's cells: on flat earth in
float32 (:func:`telcoplan.coverage._kernel_common.flat_tower`), or with the terrain's loss
(:mod:`telcoplan.coverage._kernel_terrain`). :func:`walk_tile` takes that evaluation as a
jitted function and its data as a tuple, and is inlined into each kernel's tile function
(``inline="always"``): the evaluation is then a direct call, compiled into each kernel and
cached with it. (Not inlined, a function that receives another as an argument makes its caller
uncachable: numba stores the dispatcher's address in the compiled code.) The tuple is
unpacked into the call (``*ctx``): an evaluation that took the tuple and unpacked it itself,
or a wrapper that did, measured 2–4 % slower (reference counts of its arrays per tower
evaluated; loads from the tuple in the terrain kernel's cell loop).
"""

from __future__ import annotations

import numba as nb
import numpy as np

from telcoplan.coverage._kernel_common import (
    FAST,
    group_candidates,
    min_rank,
    next_best,
    sector_bound,
    weakest,
)

__all__ = [
    "EVALUATE",
    "STOP",
    "admit",
    "publish_group",
    "tile_extent",
    "tile_offsets",
    "walk_tile",
]

#: :func:`admit`'s answers: no later tower can beat the tile either; this one cannot; evaluate it
STOP, SKIP, EVALUATE = 0, 1, 2


@nb.njit(cache=True, inline="always")
def admit(t, bound_t, floor, worst, xs, ys, tx, ty, dh, azimuth, beam, tilt, use_dem):
    """Whether tower ``t``, taken by decreasing first bound ``bound_t``, is evaluated on a tile
    whose weakest best power is ``worst``: :data:`STOP` when its first bound cannot beat that
    or ``floor`` (no later tower can), ``SKIP`` when its pattern's bound
    (:func:`telcoplan.coverage._kernel_common.sector_bound`; no vertical bound with
    ``use_dem``) cannot, else :data:`EVALUATE`; with that bound and the squared distances
    from the tower to the tile's nearest and farthest cell centres (``xs``/``ys``: the
    tile's first and last ones)."""
    if bound_t < floor or bound_t <= worst:
        return STOP, bound_t, 0.0, 0.0
    ub, dmin2, dmax2 = sector_bound(t, bound_t, xs, ys, tx, ty, dh, azimuth, beam, tilt, use_dem)
    if ub < floor or ub <= worst:
        return SKIP, ub, dmin2, dmax2
    return EVALUATE, ub, dmin2, dmax2


@nb.njit(cache=True)
def tile_extent(r0, c0, tsize, x0, y0, res, height, width):
    """The tile of ``tsize`` × ``tsize`` cells from row ``r0``, column ``c0`` of a grid of
    ``height`` × ``width`` cells of ``res`` m from the corner (``x0``, ``y0``): its rows and
    columns (fewer at the grid's edges), the x of its first and last cell centres and the y
    of its last and first (south, north)."""
    r1, c1 = min(r0 + tsize, height), min(c0 + tsize, width)
    xs = np.empty(2)
    ys = np.empty(2)
    xs[0] = x0 + (c0 + 0.5) * res
    xs[1] = x0 + (c1 - 0.5) * res
    ys[0] = y0 - (r1 - 0.5) * res
    ys[1] = y0 - (r0 + 0.5) * res
    return r1 - r0, c1 - c0, xs, ys


@nb.njit(cache=True)
def tile_offsets(nr, nc, res):
    """The cell centres of a tile of ``nr`` × ``nc`` cells of ``res`` m (flat, row-major),
    relative to its first (south-west) cell centre: x and y, float32 (small numbers)."""
    gx = np.empty(nr * nc, dtype=np.float32)
    gy = np.empty(nr * nc, dtype=np.float32)
    for i in range(nr):
        for c in range(nc):
            gx[i * nc + c] = c * res
            gy[i * nc + c] = (nr - 1 - i) * res
    return gx, gy


@nb.njit(cache=True, fastmath=FAST, error_model="numpy")
def publish_group(
    best, server, nr, nc, clutter, use_clutter, out_floor, out_power, out_server, r0, c0, o_r, o_c
):  # fmt: skip
    """A tile's result (flat, ``nr`` × ``nc``) into one group's outputs from (``o_r``, ``o_c``):
    with ``use_clutter``, minus the clutter (the full grid's, from the tile's first cell ``r0``,
    ``c0``); NaN / −1 below ``out_floor`` (−inf: the powers as they are)."""
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


@nb.njit(cache=True, inline="always")
def walk_tile(
    evaluate, ctx, cands, bound, group, n_groups, tower_rank, floor_dbm, do_rank, rank_floor,
    xs, ys, antennas, use_dem, best, server, rank,
    nr, nc, r0, c0, o_r, o_c, clutter, use_clutter, out_floor, outputs,
):  # fmt: skip
    """Every group's best power and server on a tile, and with ``do_rank`` the highest rank
    reaching the coverage level, into the outputs from (``o_r``, ``o_c``); returns the towers
    evaluated.

    ``cands``/``bound``: the tile's candidates and first bounds
    (:func:`telcoplan.coverage._kernel_common.tile_candidates`); ``xs``/``ys``: its first
    and last cell centres, ``r0``/``c0`` its first cell in the grid, ``nr`` × ``nc`` cells;
    ``antennas``: the towers' (tx, ty, dh, azimuth, beam, tilt) for their patterns' bounds;
    ``outputs``: (out_power, out_server, out_rank). (Tuples: a call of more than 30
    arguments is compiled as a call with ``*args``, which numba's inliner refuses.)
    ``best``/``server``/``rank``: the tile's buffers, C-contiguous (flat or ``nr`` × ``nc``),
    ``rank`` filled with −1. ``evaluate(t, upd_best, upd_rank, dmin2, dmax2, best, server,
    rank, *ctx)`` evaluates tower ``t`` on the tile (``dmin2``/``dmax2``: the squared
    distances from it to the tile's nearest and farthest cell centres; ``ctx``: the kernel's
    own arguments, a tuple, unpacked into the call so that the evaluation takes them as plain
    arguments): with ``upd_best``, ``best``/``server`` get its power where larger (else they
    may be used as scratch); with ``upd_rank``, ``rank`` gets its rank where its power less
    the clutter reaches the coverage level. A tower whose bound is below ``rank_floor`` raises
    no rank. The groups' results go out through
    :func:`publish_group` (``clutter``, ``use_clutter``, ``out_floor``).
    """
    tx, ty, dh, azimuth, beam, tilt = antennas
    out_power, out_server, out_rank = outputs
    evaluated = 0
    m = cands.shape[0]
    gptr, gpos, left = group_candidates(cands, bound, group, n_groups)
    flat_best, flat_server, flat_rank = best.ravel(), server.ravel(), rank.ravel()  # views
    low_rank = -1  # the lowest rank of the tile's cells
    done = np.zeros(m, dtype=np.bool_)  # evaluated on the tile already
    for g in range(n_groups):
        flat_best[:] = -np.inf
        flat_server[:] = -1
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
            state, ub, dmin2, dmax2 = admit(
                t, bound[j], floor_dbm, worst, xs, ys, tx, ty, dh, azimuth, beam, tilt, use_dem
            )
            if state == STOP:
                break
            if state != EVALUATE:
                continue
            evaluated += 1
            done[j] = True
            upd_rank = do_rank and tower_rank[t] > low_rank and ub >= rank_floor
            evaluate(t, True, upd_rank, dmin2, dmax2, best, server, rank, *ctx)
            worst = weakest(flat_best, floor_dbm)
            if upd_rank:
                low_rank = min_rank(flat_rank)
        publish_group(
            flat_best, flat_server, nr, nc, clutter, use_clutter, out_floor, out_power[g],
            out_server[g], r0, c0, o_r, o_c,
        )  # fmt: skip
    if not do_rank:
        return evaluated
    # the towers no group evaluated, by decreasing bound, while one may still raise a rank
    order = np.argsort(-bound)
    for jj in range(m):
        j = order[jj]
        t = cands[j]
        if bound[j] < rank_floor:
            break
        if done[j] or tower_rank[t] <= low_rank:
            continue
        state, _, dmin2, dmax2 = admit(
            t, bound[j], rank_floor, -np.inf, xs, ys, tx, ty, dh, azimuth, beam, tilt, use_dem
        )
        if state != EVALUATE:
            continue
        evaluated += 1
        evaluate(t, False, True, dmin2, dmax2, best, server, rank, *ctx)
        low_rank = min_rank(flat_rank)
    for i in range(nr):
        for c in range(nc):
            out_rank[o_r + i, o_c + c] = flat_rank[i * nc + c]
    return evaluated
