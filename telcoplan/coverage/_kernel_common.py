"""Numba pieces shared by the best-server kernels: path loss, the sector pattern, a tile's
candidate towers and their bounds (:func:`tile_candidates`), the order in which a group takes
them (:func:`group_candidates`, :func:`next_best`, :func:`sector_bound`, :func:`weakest`), and
the float32 SIMD evaluation of a tower on a tile's cells (:func:`flat_tower`).

Used by :mod:`telcoplan.coverage._kernel` (flat earth) and
:mod:`telcoplan.coverage._kernel_terrain` (with a DEM; it evaluates its flat-earth coverage
flag with the flat kernel's float32 loops, so that the flag is the flat kernel's to the bit),
and by their shared tile loop (:mod:`telcoplan.coverage._kernel_tile`).

numba notes: an array passed to a function (inlined or not) whose body branches costs atomic
reference counts per call, so the per-cell and per-candidate loops index whole arrays and the
helpers they call take scalars; a loop index that may be negative gets a wraparound test that
stops the vectoriser, so the cell loops index with unsigned integers.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic

__all__ = [
    "A_M",
    "FAST",
    "SLA_V",
    "THETA_3DB",
    "best_horizontal",
    "best_vertical",
    "candidate_bounds",
    "chord",
    "closed_loss",
    "flat_tower",
    "flat_towers",
    "group_candidates",
    "log2_f32",
    "min_rank",
    "next_best",
    "path_loss_at",
    "path_loss_log",
    "pattern",
    "pattern_upper_bound",
    "sector_bound",
    "tile_candidates",
    "tile_distances",
    "tower_buckets",
    "weakest",
    "wrap",
]

A_M = 30.0
SLA_V = 20.0
THETA_3DB = 10.0

_F32 = np.float32
#: fast-math without "no NaN / no inf": −inf marks cells no tower has reached yet
FAST = {"nsz", "arcp", "contract", "afn", "reassoc"}
_LOG10_2 = math.log10(2.0)
_LOG2_E = 1.0 / math.log(2.0)
_BOUND_SLACK_DB = 1e-3  # taken off a fast loss to keep it a lower bound
_SCANS = 24  # towers of a group taken by a linear scan of the bounds before sorting the rest


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


# ---------------------------------------------------------------- float32 SIMD building blocks
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


@nb.njit(cache=True, inline="always", fastmath=FAST)
def log2_f32(x):
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


@nb.njit(cache=True, inline="always", fastmath=FAST)
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


@nb.njit(cache=True, inline="always", fastmath=FAST)
def _atan2_pos(y, x):
    """atan2(y, x) for y ≥ 0 (in [0, π]; x of any sign; (0, 0) gives 0)."""
    ax = abs(x)
    hi = max(y, ax)
    lo = min(y, ax)
    r = _atan_unit(lo / max(hi, _F32(1e-30)))
    r = _F32(math.pi / 2.0) - r if y > ax else r
    return _F32(math.pi) - r if x < _F32(0.0) else r


# ------------------------------------------------------------------------ tile candidates
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


@nb.njit(cache=True, inline="always", fastmath=FAST, error_model="numpy")
def closed_loss(q, a1, b1, c1, a2, b2, a3, b3, dz2, bp2, kc):
    """A closed-form loss (dB; kind 1) at q = d2D² (m², ≥ 1), float64 arithmetic on float32
    logarithms (:func:`log2_f32`; error < 1e-5 dB here):
    max(q ≤ bp2 ? a1 + b1 log10 d3 + c1 d3 : a2 + b2 log10 d3, a3 + b3 log10 d3) + kc log10 √q,
    d3² = q + dz2 (a row of ``_loss_params.closed_form``: the 3GPP TR 38.901 models, free
    space). Scalars only: an array passed to an inlined function costs reference counts."""
    s = q + dz2
    u = 0.5 * _LOG10_2 * np.float64(log2_f32(np.float32(s)))  # log10 d3
    loss = a1 + b1 * u + c1 * math.sqrt(s) if q <= bp2 else a2 + b2 * u
    loss = max(loss, a3 + b3 * u)
    if kc != 0.0:
        loss += kc * 0.5 * _LOG10_2 * np.float64(log2_f32(np.float32(q)))
    return loss


@nb.njit(cache=True, fastmath=FAST, error_model="numpy")
def candidate_bounds(
    cands, xs, ys, tx, ty, eirp, kind, coef_a, coef_b, closed, table_id, tables, table_step,
    use_tables,
):  # fmt: skip
    """A first upper bound (dBm) of the power each candidate tower can deliver on a tile:
    EIRP − L(d_min) + _BOUND_SLACK_DB, d_min its distance to the tile (``xs``/``ys``: the
    tile's first and last cell centres; no pattern: it only lowers the power).

    L is evaluated as the kernels do, with the float32 log2 of :func:`log2_f32` (error < 1e-5
    dB here; the slack covers it and float32 rounding): log-linear (kind 0) or closed form
    (kind 1, :func:`closed_loss`); with ``use_tables`` (the terrain kernel reads tables), the
    smaller of that and the table's loss.
    """
    m = cands.shape[0]
    bound = np.empty(m)
    for j in range(m):
        t = cands[j]
        d2, _ = tile_distances(tx[t], ty[t], xs, ys)
        q = max(d2, 1.0)
        u = 0.5 * _LOG10_2 * np.float64(log2_f32(np.float32(q)))  # log10 d
        if kind[t] == 0:
            loss = coef_a[t] + coef_b[t] * (u - 3.0)
        else:
            loss = closed_loss(
                q, closed[t, 0], closed[t, 1], closed[t, 2], closed[t, 3], closed[t, 4],
                closed[t, 5], closed[t, 6], closed[t, 7], closed[t, 8], closed[t, 9],
            )  # fmt: skip
            if use_tables:  # the table's loss, as path_loss_log reads it
                pos = u / table_step
                i = int(pos)
                row = table_id[t]
                n = tables.shape[1]
                if i >= n - 1:
                    tab = np.float64(tables[row, n - 1])
                else:
                    frac = pos - i
                    tab = tables[row, i] * (1.0 - frac) + tables[row, i + 1] * frac
                loss = min(loss, tab)
        bound[j] = eirp[t] - (loss - _BOUND_SLACK_DB)
    return bound


@nb.njit(cache=True)
def tile_candidates(
    xs, ys, tx, ty, eirp, radius, max_radius, kind, coef_a, coef_b, closed, table_id, tables,
    table_step, use_tables, b_ptr, b_ids, bxmin, bymin, bsize, nbx, nby,
):  # fmt: skip
    """The towers whose radius reaches a tile (from the bucket grid ``b_ptr``/``b_ids``) and
    their first bound there (:func:`candidate_bounds`).

    ``xs``/``ys``: the tile's first and last cell centres.
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
    m = 0
    for by in range(by0, by1 + 1):
        for bx in range(bx0, bx1 + 1):
            b = by * nbx + bx
            for q in range(b_ptr[b], b_ptr[b + 1]):
                t = b_ids[q]
                d2, _ = tile_distances(tx[t], ty[t], xs, ys)
                if d2 <= radius[t] * radius[t]:
                    cands[m] = t
                    m += 1
    cands = cands[:m]
    bound = candidate_bounds(
        cands, xs, ys, tx, ty, eirp, kind, coef_a, coef_b, closed, table_id, tables,
        table_step, use_tables,
    )  # fmt: skip
    return cands, bound


@nb.njit(cache=True)
def group_candidates(cands, bound, group, n_groups):
    """The candidates of each group together: ``gptr`` (n_groups + 1) delimits each group's
    positions ``gpos`` (into ``cands``, stable), ``left`` their bounds (for :func:`next_best`,
    which marks the towers taken)."""
    m = cands.shape[0]
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
    left = np.empty(m)
    for q in range(m):
        left[q] = bound[gpos[q]]
    return gptr, gpos, left


@nb.njit(cache=True)
def next_best(left, lo, hi, taken, rest):
    """The next tower of a group by decreasing bound: its position in ``left[lo:hi]``, marked
    taken (−inf), −1 when none is left; and ``rest``.

    ``taken``: towers the group took so far. The first _SCANS come from linear scans of the
    bounds (usually all that a tile needs); past them the rest is sorted once (``rest``, pass it
    back) and read in order.
    """
    if taken < _SCANS:
        q = -1
        v = -np.inf
        for i in range(lo, hi):
            if left[i] > v:
                v = left[i]
                q = i
    else:
        if taken == _SCANS:
            rest = lo + np.argsort(-left[lo:hi])
        k = taken - _SCANS
        q = rest[k] if k < rest.shape[0] else -1
        if q >= 0 and left[q] == -np.inf:
            q = -1
    if q >= 0:
        left[q] = -np.inf
    return q, rest


@nb.njit(cache=True)
def sector_bound(t, bound_t, xs, ys, tx, ty, dh, azimuth, beam, tilt, use_dem):
    """Tower ``t``'s first bound on a tile (``bound_t``) tightened by its pattern's best over the
    tile's bearings (and, without terrain, depressions; :func:`pattern_upper_bound`), and the
    squared distances from the tower to the tile's nearest and farthest cell centres."""
    dmin2, dmax2 = tile_distances(tx[t], ty[t], xs, ys)
    if math.isnan(azimuth[t]) and math.isnan(tilt[t]):
        return bound_t, dmin2, dmax2
    ub = bound_t + pattern_upper_bound(
        tx[t], ty[t], dh[t], azimuth[t], beam[t], tilt[t], xs, ys,
        math.sqrt(dmin2), math.sqrt(dmax2), use_dem,
    )  # fmt: skip
    return ub, dmin2, dmax2


@nb.njit(cache=True, fastmath=FAST, error_model="numpy")
def weakest(best, floor):
    """The weakest cell of a tile's best powers (flat, float32 or float64), counting cells below
    ``floor`` as the floor: max(min(best), floor), in 16 partial minima (a form the compiler
    vectorises; called after every tower evaluated, it would cost more than the evaluation)."""
    n = best.shape[0]
    acc = np.empty(16, dtype=best.dtype)
    acc[:] = np.inf
    m = n - n % 16
    for c in range(0, m, 16):
        for k in range(16):
            v = best[c + k]
            a = acc[k]
            acc[k] = v if v < a else a
    w = np.inf
    for k in range(16):
        w = min(w, acc[k])
    for c in range(m, n):
        w = min(w, best[c])
    return max(w, floor)


@nb.njit(cache=True)
def min_rank(rank):
    """The lowest rank over a tile's cells (flat)."""
    r = rank[0]
    for c in range(1, rank.shape[0]):
        r = min(r, rank[c])
    return r


# ------------------------------------------------------------- one tower on a tile's cells
@nb.njit(cache=True, inline="always")
def chord(x0, res, c0, nc, tx, dy2, r2):
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


@nb.njit(cache=True, inline="always", fastmath=FAST, error_model="numpy")
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


@nb.njit(cache=True, inline="always", fastmath=FAST, error_model="numpy")
def _closed(q, dz2, e, g, c, e3, g3):
    """Power (dBm) of a closed-form tower at q = d2D² (m²): one LOS piece ``e − g log2(d3²)
    − c d3`` and the NLOS line ``e3 − g3 log2(d3²)``, the weaker of the two (d3² = q + Δh²)."""
    s = q + dz2
    l2 = log2_f32(s)
    return min(e - g * l2 - c * math.sqrt(s), e3 - g3 * l2)


@nb.njit(cache=True, fastmath=FAST, error_model="numpy")
def _cells(
    best, server, pw, keep, lo, hi, tt, gx, gy, ox, oy, kind_t, e, g, c, e3, g3, dz2, kc,
    sector, cos_az, sin_az, k_h, k_v, dh, tilt_r,
):  # fmt: skip
    """Tower ``tt``'s power (dBm, float32) on the cells ``lo:hi`` of a tile (flat, row-major
    arrays): into ``best`` where larger (``server`` = ``tt`` there), and with ``keep`` into
    ``pw`` (the compiler takes the test out of the loops).

    ``gx``/``gy``: the cells' offsets from the tile's first cell centre; ``ox``/``oy``: the
    tower's offset from that centre (float32). The distance term: ``e − g log2(d²)`` for the
    log-linear models (kind 0), else (kind 1) one piece of the closed form (:func:`_closed`)
    less ``kc log2(d²)`` (a calibration's slope). The loops index whole arrays (no views: each
    would cost atomic reference counts), with no branch per cell and numpy's error model (no
    division check): they vectorise. The index is unsigned (numba tests a signed index for
    wraparound, which stops the vectoriser).
    """
    base = np.uint64(lo)
    if kind_t == 0 and not sector:
        for j in range(hi - lo):
            k = base + np.uint64(j)
            dx = gx[k] - ox
            dy = gy[k] - oy
            q = max(dx * dx + dy * dy, _F32(1.0))
            p = e - g * log2_f32(q)
            if keep:
                pw[k] = p
            better = p > best[k]
            best[k] = max(p, best[k])
            server[k] = tt if better else server[k]
    elif kind_t == 0:
        for j in range(hi - lo):
            k = base + np.uint64(j)
            dx = gx[k] - ox
            dy = gy[k] - oy
            q = max(dx * dx + dy * dy, _F32(1.0))
            p = e - g * log2_f32(q) + _gain(dx, dy, q, cos_az, sin_az, k_h, k_v, dh, tilt_r)
            if keep:
                pw[k] = p
            better = p > best[k]
            best[k] = max(p, best[k])
            server[k] = tt if better else server[k]
    elif kc == _F32(0.0) and not sector:
        for j in range(hi - lo):
            k = base + np.uint64(j)
            dx = gx[k] - ox
            dy = gy[k] - oy
            q = max(dx * dx + dy * dy, _F32(1.0))
            p = _closed(q, dz2, e, g, c, e3, g3)
            if keep:
                pw[k] = p
            better = p > best[k]
            best[k] = max(p, best[k])
            server[k] = tt if better else server[k]
    elif kc == _F32(0.0):
        for j in range(hi - lo):
            k = base + np.uint64(j)
            dx = gx[k] - ox
            dy = gy[k] - oy
            q = max(dx * dx + dy * dy, _F32(1.0))
            p = _closed(q, dz2, e, g, c, e3, g3) + _gain(
                dx, dy, q, cos_az, sin_az, k_h, k_v, dh, tilt_r
            )
            if keep:
                pw[k] = p
            better = p > best[k]
            best[k] = max(p, best[k])
            server[k] = tt if better else server[k]
    else:  # with a calibration's slope on log d2D (sector or not: k_h = k_v = 0 give 0 dB)
        for j in range(hi - lo):
            k = base + np.uint64(j)
            dx = gx[k] - ox
            dy = gy[k] - oy
            q = max(dx * dx + dy * dy, _F32(1.0))
            p = (
                _closed(q, dz2, e, g, c, e3, g3)
                - kc * log2_f32(q)
                + _gain(dx, dy, q, cos_az, sin_az, k_h, k_v, dh, tilt_r)
            )
            if keep:
                pw[k] = p
            better = p > best[k]
            best[k] = max(p, best[k])
            server[k] = tt if better else server[k]


@nb.njit(cache=True, fastmath=FAST, error_model="numpy")
def _update_rank(rank, clut, pw, lo, hi, covf, r):
    """``rank`` = max(rank, ``r``) on the cells ``lo:hi`` where the power ``pw`` less the
    clutter reaches ``covf``."""
    base = np.uint64(lo)  # an unsigned index: no wraparound test, the loop vectorises
    for j in range(hi - lo):
        k = base + np.uint64(j)
        ok = pw[k] - clut[k] >= covf
        rank[k] = max(rank[k], r if ok else np.int32(-1))


#: Columns of :func:`flat_towers`' table (float32 values, stored as float64).
_TX, _TY, _R2, _KIND, _RANK, _SECTOR, _COS, _SIN, _KH, _KV, _TILT, _DH = range(12)
_E1, _G1, _C1, _E2, _G2, _E3, _G3, _DZ2, _KC, _BP2 = range(12, 22)


@nb.njit(cache=True)
def flat_towers(
    tx, ty, radius, dh, azimuth, beam, tilt, tower_rank, eirp, kind, coef_a, coef_b, closed
):
    """Per tower, everything :func:`flat_tower` needs, computed once for all tiles: a table
    (n, 22) of the position, squared radius, kind, rank, the sector pattern's rotation and
    coefficients per radian, and the distance term's float32 coefficients (stored as float64,
    exactly).

    - distance term: the log-linear models (Hata family) are ``P = e1 − g1 · log2(d²)``; the
      closed forms (3GPP, free space; :func:`closed_loss`) ``P = min(e − g log2(d3²) − c d3,
      e3 − g3 log2(d3²)) − kc log2(d²)`` with d3² = d² + Δh², (e, g, c) = (e1, g1, c1)
      before the breakpoint (d² ≤ bp2), (e2, g2, 0) after;
    - the pattern per radian: A_H = −k_h φ², A_V = −k_v (θ − tilt)² (0: none), φ from the
      offset rotated by the azimuth (cos, sin).
    """
    n = tx.shape[0]
    out = np.zeros((n, 22))
    per_log2 = 0.5 * _LOG10_2  # a slope per decade of d, per unit of log2(d²)
    f32 = np.float32
    for t in range(n):
        out[t, _TX] = tx[t]
        out[t, _TY] = ty[t]
        out[t, _R2] = radius[t] * radius[t]
        out[t, _KIND] = kind[t]
        out[t, _RANK] = tower_rank[t]
        has_az = not math.isnan(azimuth[t])
        has_tilt = not math.isnan(tilt[t])
        out[t, _SECTOR] = 1.0 if has_az or has_tilt else 0.0
        az = math.radians(azimuth[t]) if has_az else 0.0
        out[t, _COS] = f32(math.cos(az))
        out[t, _SIN] = f32(math.sin(az))
        out[t, _KH] = f32(12.0 * (180.0 / math.pi) ** 2 / (beam[t] * beam[t]) if has_az else 0.0)
        out[t, _KV] = f32(12.0 * (180.0 / math.pi) ** 2 / THETA_3DB**2 if has_tilt else 0.0)
        out[t, _TILT] = f32(math.radians(tilt[t]) if has_tilt else 0.0)
        out[t, _DH] = f32(dh[t])
        if kind[t] == 0:  # P = EIRP − A − B (log10 d − 3) = e1 − g1 log2(d²)
            out[t, _E1] = f32(eirp[t] - coef_a[t] + 3.0 * coef_b[t])
            out[t, _G1] = f32(0.5 * coef_b[t] * _LOG10_2)
            out[t, _BP2] = np.inf
        else:
            out[t, _E1] = f32(eirp[t] - closed[t, 0])
            out[t, _G1] = f32(closed[t, 1] * per_log2)
            out[t, _C1] = f32(closed[t, 2])
            out[t, _E2] = f32(eirp[t] - closed[t, 3])
            out[t, _G2] = f32(closed[t, 4] * per_log2)
            out[t, _E3] = f32(eirp[t] - closed[t, 5])
            out[t, _G3] = f32(closed[t, 6] * per_log2)
            out[t, _DZ2] = f32(closed[t, 7])
            out[t, _KC] = f32(closed[t, 9] * per_log2)
            out[t, _BP2] = closed[t, 8]
    return out


@nb.njit(cache=True)
def flat_tower(
    t, upd_best, upd_rank, dmin2, dmax2, best, server, rank,
    clut, covf, pw, gx, gy, nr, nc, x0, res, c0, xs0, ys0, ys1, towers,
):  # fmt: skip
    """Evaluate tower ``t`` on flat earth, in float32, on the cells of a tile within its radius.

    ``best``/``server`` get the larger power and its tower (always: a pass for the ranks
    alone, ``upd_best`` false, gives buffers it does not read); ``rank`` (when ``upd_rank``)
    the tower's rank where its power less ``clut`` reaches ``covf``. The tile's arrays are
    flat (``nr`` × ``nc`` cells, row-major): those, ``gx``/``gy`` the cells' offsets from the
    tile's first cell centre, and the buffer ``pw``. ``xs0``: the tile's first centre's x,
    ``ys0``/``ys1`` its first and last centres' y, ``c0`` its first grid column (of a grid
    from ``x0``, cells of ``res`` m), ``dmin2``/``dmax2`` the squared distances from the tower
    to its nearest and farthest centres; ``towers``: :func:`flat_towers`' table (few array
    arguments: each costs reference counts per call). The arguments are those of
    :func:`telcoplan.coverage._kernel_tile.walk_tile`'s evaluation, then the flat kernel's
    tuple of the tile (``clut`` … ``towers``), which the walk passes as ``*ctx``.

    The whole tile is one run when it lies within the radius; else each row's *chord*, the
    columns whose centre lies within the radius, found in float64 (:func:`chord`, the same
    d² ≤ R² test as evaluating every cell). The closed forms' breakpoint splits the runs the
    same way: a run lies wholly before or after it, and is computed with that piece. The
    sector pattern: the cell's offset rotated by the tower's azimuth (no ``atan2`` of the
    bearing, no angle wrapping), the angles from a float32 arctangent polynomial (Cephes
    ``atanf``, error < 2e-7 rad), then the 3GPP TR 36.814 pattern.
    """
    f32 = np.float32
    tt = np.int32(t)
    rt = np.int32(towers[t, _RANK])
    tx = towers[t, _TX]
    r2 = towers[t, _R2]
    bp2 = towers[t, _BP2]
    kind_t = np.int8(towers[t, _KIND])
    sector = towers[t, _SECTOR] != 0.0
    ox = f32(tx - xs0)
    oy = f32(towers[t, _TY] - ys0)
    cos_az, sin_az = f32(towers[t, _COS]), f32(towers[t, _SIN])
    k_h, k_v, tilt_r, dh = (
        f32(towers[t, _KH]),
        f32(towers[t, _KV]),
        f32(towers[t, _TILT]),
        f32(towers[t, _DH]),
    )
    e1, g1, c1 = f32(towers[t, _E1]), f32(towers[t, _G1]), f32(towers[t, _C1])
    e2, g2 = f32(towers[t, _E2]), f32(towers[t, _G2])
    e3, g3 = f32(towers[t, _E3]), f32(towers[t, _G3])
    dz2, kc = f32(towers[t, _DZ2]), f32(towers[t, _KC])
    zero = f32(0.0)
    if dmax2 <= r2 and (dmax2 <= bp2 or dmin2 > bp2):  # one run, one piece
        near = dmax2 <= bp2
        _cells(
            best, server, pw, upd_rank, 0, nr * nc, tt, gx, gy, ox, oy, kind_t,
            e1 if near else e2, g1 if near else g2, c1 if near else zero, e3, g3, dz2, kc,
            sector, cos_az, sin_az, k_h, k_v, dh, tilt_r,
        )  # fmt: skip
        if upd_rank:
            _update_rank(rank, clut, pw, 0, nr * nc, covf, rt)
        return
    for i in range(nr):  # row by row: each row's chord within the radius, split at d_BP
        dy = ys1 - i * res - towers[t, _TY]
        lo, hi = (0, nc) if dmax2 <= r2 else chord(x0, res, c0, nc, tx, dy * dy, r2)
        if lo >= hi:
            continue
        # the cells before the breakpoint: [blo, bhi) (none when the tile lies beyond it)
        blo, bhi = (0, nc) if dmax2 <= bp2 else (0, 0)
        if dmin2 <= bp2 < dmax2:
            blo, bhi = chord(x0, res, c0, nc, tx, dy * dy, bp2)
        for part in range(3):  # after, before, after the breakpoint
            if part == 1:
                a, b = max(lo, blo), min(hi, bhi)
            elif part == 0:
                a, b = lo, min(hi, blo)
            else:
                a, b = max(lo, bhi, blo), hi
            if a >= b:
                continue
            near = part == 1
            _cells(
                best, server, pw, upd_rank, i * nc + a, i * nc + b, tt, gx, gy, ox, oy, kind_t,
                e1 if near else e2, g1 if near else g2, c1 if near else zero, e3, g3, dz2, kc,
                sector, cos_az, sin_az, k_h, k_v, dh, tilt_r,
            )  # fmt: skip
            if upd_rank:
                _update_rank(rank, clut, pw, i * nc + a, i * nc + b, covf, rt)
