"""Numba kernel of the flat-earth best-server computation: tile by tile, branch and bound, SIMD.

For each tile of ``T x T`` cells the candidate towers (those whose radius reaches the tile) are
found from a bucket grid of the towers, each with a first *upper bound* of the power it can
deliver anywhere in the tile: EIRP − L(d_min) (path loss never decreases with distance; the
pattern only lowers the power). Per group (operator), towers are taken by decreasing bound; a
sector's bound is then tightened by its pattern's best over the tile's bearings and depressions
(:func:`telcoplan.coverage._kernel_common.pattern_upper_bound`) and the tower skipped if that
cannot beat the tile's weakest best power; as soon as a first bound cannot, it and all remaining
towers of the group are skipped. The result is the maximum over every tower.

A tower is evaluated on the whole tile in one run when the tile lies within its radius, else row
by row: the row's *chord* — the columns whose centre lies within the radius — is found once per
row in float64 (the same test as evaluating every cell, d² ≤ R²). The cells of a run are
computed without a branch, in float32, so that the compiler turns the loop into SIMD
instructions:

- distance term: the log-linear models (Hata family) are ``P = c0 − c1 · log2(d²)`` with ``c0``,
  ``c1`` precomputed per tower; ``log2`` comes from the float's exponent bits and a short
  ``atanh`` series of its mantissa (relative error < 1e-7); tabulated models (3GPP …) read the
  same table as :func:`telcoplan.coverage._kernel_common.path_loss_at`;
- sector pattern: the cell's offset is rotated by the tower's azimuth once (no ``atan2`` of the
  bearing and no angle wrapping), the angles come from a float32 arctangent polynomial
  (Cephes ``atanf``, error < 2e-7 rad), then the 3GPP TR 36.814 pattern.

Powers agree with the float64 reference to about 1e-4 dB (float32 rounding of ~200 dB sums).
All tiles go in one parallel call, handed to the threads one at a time (the caller sets numba's
parallel chunk size to 1): land tiles with many strong towers cost more than sea tiles, and no
thread waits at a barrier between chunks. The kernel releases the GIL, so the caller can report
progress from another thread.

Memory: the outputs plus a few tile-sized buffers per tile being computed; never cells × towers.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic

from telcoplan.coverage._kernel_common import (
    A_M,
    SLA_V,
    THETA_3DB,
    path_loss_log,
    pattern_upper_bound,
    tile_distances,
)

__all__ = ["best_server_flat_kernel", "serving_power", "tower_buckets"]

_F32 = np.float32
# fast-math without "no NaN / no inf": −inf marks cells no tower has reached yet
_FAST = {"nsz", "arcp", "contract", "afn", "reassoc"}
_LOG10_2 = math.log10(2.0)
_LOG2_E = 1.0 / math.log(2.0)
_BOUND_SLACK_DB = 1e-3  # taken off a fast loss to keep it a lower bound
_SCANS = 24  # towers of a group taken by a linear scan of the bounds before sorting the rest


@intrinsic
def _f32_bits(typingctx, x):
    """The bits of a float32 as an int32 (a register reinterpretation, vectorisable)."""
    if x != types.float32:
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType(32))

    return types.int32(types.float32), codegen


@intrinsic
def _bits_f32(typingctx, x):
    """The float32 whose bits are the low 32 bits of the integer ``x``."""
    if not isinstance(x, types.Integer):
        return None

    def codegen(context, builder, signature, args):
        low = context.cast(builder, args[0], signature.args[0], types.int32)
        return builder.bitcast(low, ir.FloatType())

    return types.float32(x), codegen


@nb.njit(cache=True, inline="always", fastmath=_FAST)
def _log2(x):
    """log2 of a positive, normal float32: exponent bits + atanh series of the mantissa."""
    b = _f32_bits(x)
    e = _F32((b >> 23) - 127)
    m = _bits_f32((b & 0x007FFFFF) | 0x3F800000)  # [1, 2)
    big = m > _F32(1.4142135)
    m = m * _F32(0.5) if big else m  # [0.707, 1.414): |s| ≤ 0.1716
    e = e + _F32(1.0) if big else e
    s = (m - _F32(1.0)) / (m + _F32(1.0))
    z = s * s
    # ln m = 2 atanh s = 2 (s + s³/3 + s⁵/5 + s⁷/7 + s⁹/9); the next term is < 2e-9
    series = _F32(1.0) + z * (
        _F32(1.0 / 3.0) + z * (_F32(0.2) + z * (_F32(1.0 / 7.0) + z * _F32(1.0 / 9.0)))
    )
    return e + _F32(2.0 * _LOG2_E) * s * series


@nb.njit(cache=True, inline="always", fastmath=_FAST)
def _atan_unit(a):
    """atan(a) for 0 ≤ a ≤ 1 (float32; Cephes atanf's reduction and polynomial)."""
    big = a > _F32(0.41421357)  # tan(π/8)
    x = (a - _F32(1.0)) / (a + _F32(1.0)) if big else a
    z = x * x
    r = (
        ((_F32(8.05374449538e-2) * z - _F32(1.38776856032e-1)) * z + _F32(1.99777106478e-1)) * z
        - _F32(3.33329491539e-1)
    ) * z * x + x
    return r + _F32(math.pi / 4.0) if big else r


@nb.njit(cache=True, inline="always", fastmath=_FAST)
def _atan2_pos(y, x):
    """atan2(y, x) for y ≥ 0 (in [0, π]; x of any sign; (0, 0) gives 0)."""
    ax = abs(x)
    hi = max(y, ax)
    lo = min(y, ax)
    r = _atan_unit(lo / max(hi, _F32(1e-30)))
    r = _F32(math.pi / 2.0) - r if y > ax else r
    return _F32(math.pi) - r if x < _F32(0.0) else r


@nb.njit(cache=True)
def tower_buckets(tx, ty, xmin, ymin, size, nbx, nby):
    """Towers sorted into square buckets of ``size`` m from (xmin, ymin), as CSR (ptr, ids)."""
    n = tx.shape[0]
    key = np.empty(n, dtype=np.int64)
    for t in range(n):
        bx = min(max(math.floor((tx[t] - xmin) / size), 0), nbx - 1)
        by = min(max(math.floor((ty[t] - ymin) / size), 0), nby - 1)
        key[t] = by * nbx + bx
    ids = np.argsort(key, kind="mergesort")
    ptr = np.zeros(nbx * nby + 1, dtype=np.int64)
    for t in range(n):
        ptr[key[t] + 1] += 1
    for b in range(nbx * nby):
        ptr[b + 1] += ptr[b]
    return ptr, ids.astype(np.int64)


@nb.njit(cache=True, inline="always", fastmath=_FAST, error_model="numpy")
def _loss_below(t, d2, kind, coef_a, coef_b, table_id, tables, table_step):
    """A lower bound of tower t's path loss at d² = ``d2`` m² (d ≥ 1 m): the loss with the
    float32 log2 of :func:`_log2` (error < 1e-5 dB here) less _BOUND_SLACK_DB."""
    u = 0.5 * _LOG10_2 * np.float64(_log2(np.float32(max(d2, 1.0))))  # log10 d
    loss = path_loss_log(t, u, kind, coef_a, coef_b, table_id, tables, table_step)
    return loss - _BOUND_SLACK_DB


@nb.njit(cache=True)
def _tile_candidates(
    xs, ys, tx, ty, eirp, radius, max_radius, kind, coef_a, coef_b, table_id, tables,
    table_step, b_ptr, b_ids, bxmin, bymin, bsize, nbx, nby,
):  # fmt: skip
    """The towers whose radius reaches a tile and a first bound of the power they give there.

    ``xs``/``ys``: the tile's first and last cell centres. The bound is EIRP − L(d_min), d_min
    the tower's distance to the tile (no pattern: it only lowers the power).
    """
    bx0 = max(math.floor((xs[0] - max_radius - bxmin) / bsize), 0)
    bx1 = min(math.floor((xs[1] + max_radius - bxmin) / bsize), nbx - 1)
    by0 = max(math.floor((ys[0] - max_radius - bymin) / bsize), 0)
    by1 = min(math.floor((ys[1] + max_radius - bymin) / bsize), nby - 1)
    count = 0
    for by in range(by0, by1 + 1):
        for bx in range(bx0, bx1 + 1):
            b = by * nbx + bx
            count += b_ptr[b + 1] - b_ptr[b]
    cands = np.empty(count, dtype=np.int64)
    bound = np.empty(count)
    m = 0
    for by in range(by0, by1 + 1):
        for bx in range(bx0, bx1 + 1):
            b = by * nbx + bx
            for q in range(b_ptr[b], b_ptr[b + 1]):
                t = b_ids[q]
                d2, _ = tile_distances(tx[t], ty[t], xs, ys)
                if d2 <= radius[t] * radius[t]:
                    cands[m] = t
                    bound[m] = eirp[t] - _loss_below(
                        t, d2, kind, coef_a, coef_b, table_id, tables, table_step
                    )
                    m += 1
    return cands[:m], bound[:m]


@nb.njit(cache=True)
def _take_best(left, lo, hi):
    """Position of the largest of ``left[lo:hi]``, marked taken (−inf); −1 when none is left."""
    q = -1
    v = -np.inf
    for i in range(lo, hi):
        if left[i] > v:
            v = left[i]
            q = i
    if q >= 0:
        left[q] = -np.inf
    return q


@nb.njit(cache=True, fastmath=_FAST, error_model="numpy")
def _weakest(best, floor):
    """The weakest cell of a tile's best powers, counting cells below ``floor`` as the floor."""
    flat = best.ravel()
    w = np.float32(np.inf)
    f = np.float32(floor)
    for c in range(flat.shape[0]):
        w = min(w, max(flat[c], f))
    return w


@nb.njit(cache=True, fastmath=_FAST, error_model="numpy")
def _publish(best, server, clutter, use_clutter, out_floor, out_power, out_server, r0, c0):
    """A tile's result into one group's outputs from (``r0``, ``c0``): minus the clutter
    (same grid as the outputs), NaN / −1 below ``out_floor``."""
    nan = np.float32(np.nan)
    floor = np.float32(out_floor)
    nr, nc = best.shape
    for i in range(nr):
        row_p = out_power[r0 + i, c0 : c0 + nc]
        row_s = out_server[r0 + i, c0 : c0 + nc]
        b = best[i]
        s = server[i]
        if use_clutter:
            clut = clutter[r0 + i, c0 : c0 + nc]
            for c in range(nc):
                p = b[c] - clut[c]
                ok = p >= floor
                row_p[c] = p if ok else nan
                row_s[c] = s[c] if ok else np.int32(-1)
        else:
            for c in range(nc):
                p = b[c]
                ok = p >= floor
                row_p[c] = p if ok else nan
                row_s[c] = s[c] if ok else np.int32(-1)


@nb.njit(cache=True, inline="always")
def _chord(x0, res, c0, nc, tx, dy2, r2):
    """First and one-past-last tile column whose centre is within R of the tower (d² ≤ R²)."""
    if dy2 > r2:
        return 0, 0
    half = math.sqrt(r2 - dy2)
    lo = max(math.ceil((tx - half - x0) / res - 0.5) - c0, 0)
    hi = min(math.floor((tx + half - x0) / res - 0.5) - c0 + 1, nc)
    # the float64 test of every cell decides: move the ends by one where rounding disagrees
    while lo < nc:
        dx = x0 + (c0 + lo + 0.5) * res - tx
        if dx * dx + dy2 <= r2:
            break
        lo += 1
    while lo > 0:
        dx = x0 + (c0 + lo - 0.5) * res - tx
        if dx * dx + dy2 > r2:
            break
        lo -= 1
    while hi > lo:
        dx = x0 + (c0 + hi - 0.5) * res - tx
        if dx * dx + dy2 <= r2:
            break
        hi -= 1
    while hi < nc:
        dx = x0 + (c0 + hi + 0.5) * res - tx
        if dx * dx + dy2 > r2:
            break
        hi += 1
    return lo, hi


@nb.njit(cache=True, inline="always", fastmath=_FAST, error_model="numpy")
def _gain(dx, dy, d2, cos_az, sin_az, k_h, k_v, dh, tilt_r):
    """3GPP sector attenuation (dB ≤ 0) at offset (dx, dy): no branch (k_h, k_v = 0: none).

    φ, the bearing minus the azimuth, from the offset rotated by the azimuth; the depression
    from the antenna height above the receiver ``dh`` and the distance.
    """
    u = dx * cos_az - dy * sin_az
    v = dy * cos_az + dx * sin_az
    phi = _atan2_pos(abs(u), v)
    a = -min(k_h * phi * phi, _F32(A_M))
    dep = _atan2_pos(abs(dh), math.sqrt(d2))
    off = (dep if dh >= _F32(0.0) else -dep) - tilt_r
    a -= min(k_v * off * off, _F32(SLA_V))
    return max(a, _F32(-A_M))


@nb.njit(cache=True, fastmath=_FAST, error_model="numpy")
def _cells(
    best, server, gx, gy, t, ox, oy, c0f, c1f, kind_t, table, inv_step,
    sector, cos_az, sin_az, k_h, k_v, dh, tilt_r, scratch_i, scratch_f, scratch_g,
):  # fmt: skip
    """Evaluate tower ``t`` on a run of cells: update their ``best`` power and ``server``.

    ``gx``/``gy``: the cells' offsets from the tile's first cell centre; ``ox``/``oy``: the
    tower's offset from that centre (float32). ``scratch_*``: buffers as long as the run, for
    the tabulated models. The loops run on contiguous arrays, with no branch per cell and
    numpy's error model (no division check): they vectorise.
    """
    n = best.shape[0]
    tt = np.int32(t)
    if kind_t == 0 and not sector:
        for c in range(n):
            dx = gx[c] - ox
            dy = gy[c] - oy
            d2 = max(dx * dx + dy * dy, _F32(1.0))
            p = c0f - c1f * _log2(d2)
            better = p > best[c]
            best[c] = max(p, best[c])
            server[c] = tt if better else server[c]
    elif kind_t == 0:
        for c in range(n):
            dx = gx[c] - ox
            dy = gy[c] - oy
            d2 = max(dx * dx + dy * dy, _F32(1.0))
            p = c0f - c1f * _log2(d2) + _gain(dx, dy, d2, cos_az, sin_az, k_h, k_v, dh, tilt_r)
            better = p > best[c]
            best[c] = max(p, best[c])
            server[c] = tt if better else server[c]
    else:  # table sampled every `step` decades of d (m): position = log10(d) / step
        # two loops: positions and gains first, then the table reads (a gather: the loop
        # with it vectorises only without the rest)
        last = np.int32(table.shape[0] - 2)
        index = scratch_i[:n]
        frac = scratch_f[:n]
        gain = scratch_g[:n]
        for c in range(n):
            dx = gx[c] - ox
            dy = gy[c] - oy
            d2 = max(dx * dx + dy * dy, _F32(1.0))
            pos = _log2(d2) * _F32(0.5 * _LOG10_2) * inv_step
            i = min(np.int32(pos), last)
            index[c] = i
            frac[c] = min(pos - _F32(i), _F32(1.0))
            gain[c] = _gain(dx, dy, d2, cos_az, sin_az, k_h, k_v, dh, tilt_r)
        for c in range(n):
            i = index[c]
            p = c0f - (table[i] * (_F32(1.0) - frac[c]) + table[i + 1] * frac[c]) + gain[c]
            better = p > best[c]
            best[c] = max(p, best[c])
            server[c] = tt if better else server[c]


@nb.njit(cache=True)
def _tile(
    r0, c0, tsize, x0, y0, res, height, width,
    tx, ty, eirp, group, radius, max_radius, dh, dh32, azimuth, beam, tilt,
    kind, coef_a, coef_b, table_id, tables, table_step,
    b_ptr, b_ids, bxmin, bymin, bsize, nbx, nby,
    n_groups, floor_dbm, out_floor, clutter, use_clutter,
    out_power, out_server,
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
    cands, bound = _tile_candidates(
        xs, ys, tx, ty, eirp, radius, max_radius, kind, coef_a, coef_b, table_id, tables,
        table_step, b_ptr, b_ids, bxmin, bymin, bsize, nbx, nby,
    )  # fmt: skip
    m = cands.shape[0]
    # the candidates of each group together (positions into cands), stable
    gptr = np.zeros(n_groups + 1, dtype=np.int64)
    for j in range(m):
        gptr[group[cands[j]] + 1] += 1
    for g in range(n_groups):
        gptr[g + 1] += gptr[g]
    gpos = np.empty(m, dtype=np.int64)
    fill = gptr[:-1].copy()
    for j in range(m):
        g = group[cands[j]]
        gpos[fill[g]] = j
        fill[g] += 1
    left = np.empty(m)  # the bounds of the towers not taken yet
    for q in range(m):
        left[q] = bound[gpos[q]]
    # cell centres relative to the tile's first cell centre (float32: small numbers),
    # row-major like the tile's buffers
    gx = np.empty((nr, nc), dtype=np.float32)
    gy = np.empty((nr, nc), dtype=np.float32)
    for i in range(nr):
        for c in range(nc):
            gx[i, c] = c * res
            gy[i, c] = (nr - 1 - i) * res
    gxf, gyf = gx.ravel(), gy.ravel()
    best = np.empty((nr, nc), dtype=np.float32)
    server = np.empty((nr, nc), dtype=np.int32)
    bestf, serverf = best.ravel(), server.ravel()
    scratch_i = np.empty(nr * nc, dtype=np.int32)
    scratch_f = np.empty(nr * nc, dtype=np.float32)
    scratch_g = np.empty(nr * nc, dtype=np.float32)
    for g in range(n_groups):
        best[:, :] = -np.inf
        server[:, :] = -1
        weakest = -np.inf
        lo_g, hi_g = gptr[g], gptr[g + 1]
        taken = 0
        rest = np.empty(0, dtype=np.int64)
        while True:
            # the group's towers by decreasing bound: the first few by a linear scan
            # (usually all that are needed), the rest, if it comes to that, sorted
            if taken < _SCANS:
                q = _take_best(left, lo_g, hi_g)
            else:
                if taken == _SCANS:
                    rest = lo_g + np.argsort(-left[lo_g:hi_g])
                q = rest[taken - _SCANS] if taken - _SCANS < rest.shape[0] else -1
                if q >= 0 and left[q] == -np.inf:
                    q = -1
                if q >= 0:
                    left[q] = -np.inf
            taken += 1
            if q < 0:
                break
            j = gpos[q]
            t = cands[j]
            # by decreasing bound: once a bound cannot beat the tile's weakest cell (or the
            # floor), no later tower of this group can either
            if bound[j] < floor_dbm or bound[j] <= weakest:
                break
            dmin2, dmax2 = tile_distances(tx[t], ty[t], xs, ys)
            if not (math.isnan(azimuth[t]) and math.isnan(tilt[t])):
                # a sector: its pattern's best over the tile may rule it out here
                ub = bound[j] + pattern_upper_bound(
                    tx[t], ty[t], dh[t], azimuth[t], beam[t], tilt[t], xs, ys,
                    math.sqrt(dmin2), math.sqrt(dmax2), False,
                )  # fmt: skip
                if ub < floor_dbm or ub <= weakest:
                    continue
            evaluated += 1
            r2 = radius[t] * radius[t]
            # the pattern per radian: A_H = −k_h φ², A_V = −k_v (θ − tilt)²; 0 = none
            has_az = not math.isnan(azimuth[t])
            has_tilt = not math.isnan(tilt[t])
            sector = has_az or has_tilt
            az = math.radians(azimuth[t]) if has_az else 0.0
            k_h = 12.0 * (180.0 / math.pi) ** 2 / (beam[t] * beam[t]) if has_az else 0.0
            k_v = 12.0 * (180.0 / math.pi) ** 2 / THETA_3DB**2 if has_tilt else 0.0
            tilt_r = math.radians(tilt[t]) if has_tilt else 0.0
            if kind[t] == 0:  # P = EIRP − A − B (log10 d − 3) = c0 − c1 log2(d²)
                c0f = np.float32(eirp[t] - coef_a[t] + 3.0 * coef_b[t])
                c1f = np.float32(0.5 * coef_b[t] * _LOG10_2)
            else:  # P = EIRP − table(log10 d)
                c0f = np.float32(eirp[t])
                c1f = np.float32(0.0)
            ox = np.float32(tx[t] - xs[0])
            oy = np.float32(ty[t] - ys[0])
            cos_az, sin_az = np.float32(math.cos(az)), np.float32(math.sin(az))
            inv_step = np.float32(1.0 / table_step)
            table = tables[table_id[t]]
            if dmax2 <= r2:  # the whole tile within the radius: one run
                _cells(
                    bestf, serverf, gxf, gyf, t, ox, oy, c0f, c1f, kind[t], table, inv_step,
                    sector, cos_az, sin_az, np.float32(k_h), np.float32(k_v), dh32[t],
                    np.float32(tilt_r), scratch_i, scratch_f, scratch_g,
                )  # fmt: skip
            else:  # row by row, each row's chord within the radius
                for i in range(nr):
                    dy = ys[1] - i * res - ty[t]
                    lo, hi = _chord(x0, res, c0, nc, tx[t], dy * dy, r2)
                    if lo >= hi:
                        continue
                    _cells(
                        best[i, lo:hi], server[i, lo:hi], gx[i, lo:hi], gy[i, lo:hi], t,
                        ox, oy, c0f, c1f, kind[t], table, inv_step, sector, cos_az, sin_az,
                        np.float32(k_h), np.float32(k_v), dh32[t], np.float32(tilt_r),
                        scratch_i, scratch_f, scratch_g,
                    )  # fmt: skip
            weakest = _weakest(best, floor_dbm)
        _publish(best, server, clutter, use_clutter, out_floor, out_power[g], out_server[g], r0, c0)
    return evaluated


@nb.njit(cache=True, parallel=True, nogil=True)
def best_server_flat_kernel(
    tile_r0, tile_c0, tsize, x0, y0, res, height, width,
    tx, ty, eirp, group, radius, dh, azimuth, beam, tilt,
    kind, coef_a, coef_b, table_id, tables, table_step,
    b_ptr, b_ids, bxmin, bymin, bsize, nbx, nby,
    n_groups, floor_dbm, out_floor, clutter, use_clutter,
    out_power, out_server, out_done,
):  # fmt: skip
    """Fill ``out_power`` (n_groups, H, W) and ``out_server`` on the given tiles.

    ``out_power`` gets the best power minus ``clutter`` (when ``use_clutter``), NaN where no
    tower reaches or the result is below ``out_floor``; ``out_server`` the tower's position, −1
    there. ``out_done`` gets each tile's tower evaluations when the tile is done (the caller
    fills it with −1 and may watch it from another thread: the kernel releases the GIL).
    """
    n_tiles = tile_r0.shape[0]
    max_radius = 0.0
    for t in range(radius.shape[0]):
        max_radius = max(max_radius, radius[t])
    dh32 = dh.astype(np.float32)
    for k in nb.prange(n_tiles):
        out_done[k] = _tile(
            tile_r0[k], tile_c0[k], tsize, x0, y0, res, height, width,
            tx, ty, eirp, group, radius, max_radius, dh, dh32, azimuth, beam, tilt,
            kind, coef_a, coef_b, table_id, tables, table_step,
            b_ptr, b_ids, bxmin, bymin, bsize, nbx, nby,
            n_groups, floor_dbm, out_floor, clutter, use_clutter,
            out_power, out_server,
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
