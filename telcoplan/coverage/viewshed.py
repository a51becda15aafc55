"""Approximate viewsheds over a DEM: the R2 sweep and reference planes.

The ``"sweep"`` (Franklin & Ray 1994) and ``"planes"`` (Wang, Robinson & White 2000, GDAL's
viewshed) methods of :func:`telcoplan.coverage.terrain.line_of_sight`, whose notes describe
them; :func:`approximate_viewshed` runs either. Both use the bilinear DEM and the Earth bulge
(:data:`~telcoplan.coverage.profile.CURV`) of :mod:`telcoplan.coverage.profile`, and read NaN
and the grid's nodata value as 0 m inside their kernels.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from telcoplan.coverage.profile import CURV
from telcoplan.gis.grid import GridSpec

__all__ = ["approximate_viewshed"]


# --------------------------------------------------------------------------------------------
# approximate viewshed: one ray per cell of a square's perimeter ("R2", method="sweep")
# --------------------------------------------------------------------------------------------

#: The four cones of the sweep as (a_u, a_v, b_u, b_v): the cell ``u`` cells along a cone's
#: axis and ``v`` across it is at column offset a_u·u + a_v·v and row offset b_u·u + b_v·v from
#: the antenna's cell. The cones are the 90° rotations of {x > 0, −x < y ≤ x} (x, y measured
#: from the antenna itself), so they partition the plane around it.
_CONES = np.array([[1, 0, 0, 1], [0, -1, 1, 0], [-1, 0, 0, -1], [0, 1, -1, 0]], dtype=np.int64)
#: Each cone's rays are cut into four tasks of consecutive slopes (quarters of −1 … 1), taken
#: in this order: the quarters next to the axis, whose rays are longest, first.
_SWEEP_SPLITS = np.array([1, 2, 0, 3], dtype=np.int64)
#: Rays per block whose samples on a column are skipped together when a bound proves that none
#: of them can raise its ray's maximum.
_SWEEP_BLOCK = 32


@intrinsic
def _fetch_increment(typingctx, counter):
    """``counter[0] += 1`` as one atomic operation; returns the value before (int64 array)."""
    if not (isinstance(counter, types.Array) and counter.dtype == types.int64):
        return None
    sig = types.int64(counter)

    def codegen(context, builder, signature, args):
        aryty = signature.args[0]
        ary = context.make_array(aryty)(context, builder, args[0])
        zero = context.get_constant(types.intp, 0)
        ptr = cgutils.get_item_pointer(context, builder, aryty, ary, [zero] * aryty.ndim)
        one = context.get_constant(types.int64, 1)
        return builder.atomic_rmw("add", ptr, one, "monotonic")

    return sig, codegen


@nb.njit(cache=True, inline="always")
def _cell_z(dem, r, c, nodata):
    """Elevation (m) of cell (r, c); NaN and the grid's nodata value count as 0 m."""
    z = dem[r, c]
    if z != z or z == nodata:
        return 0.0
    return z


@nb.njit(cache=True)
def _bilinear_nodata(dem, fr, fc, nodata):
    """:func:`~telcoplan.coverage.profile.bilinear` with cells equal to ``nodata`` also counted
    as 0 m."""
    nrows, ncols = dem.shape
    if not (-0.5 <= fc <= ncols - 0.5 and -0.5 <= fr <= nrows - 0.5):
        return 0.0
    c0 = math.floor(fc)
    r0 = math.floor(fr)
    wc = fc - c0
    wr = fr - r0
    c1 = min(c0 + 1, ncols - 1)
    r1 = min(r0 + 1, nrows - 1)
    c0 = max(c0, 0)
    r0 = max(r0, 0)
    z00 = _cell_z(dem, r0, c0, nodata)
    z01 = _cell_z(dem, r0, c1, nodata)
    z10 = _cell_z(dem, r1, c0, nodata)
    z11 = _cell_z(dem, r1, c1, nodata)
    return (1.0 - wr) * ((1.0 - wc) * z00 + wc * z01) + wr * ((1.0 - wc) * z10 + wc * z11)


@nb.njit(cache=True, inline="always")
def _owner(v, av, k_scale):
    """Offset from the axis (−n_per … n_per) of the ray nearest to cell ``v`` of a column.

    ``k_scale`` = n_per / x for the column at distance x (cells) along the axis; ``av`` is the
    antenna's offset across the axis. One expression, evaluated once per cell.
    """
    return math.floor((v - av) * k_scale + 0.5)


@nb.njit(cache=True, inline="always")
def _first_owned(k, av, k_scale):
    """The first cell of a column whose nearest ray (:func:`_owner`) is ``k`` or beyond."""
    v = math.floor(av + k / k_scale)
    while _owner(v, av, k_scale) >= k:
        v -= 1
    while _owner(v, av, k_scale) < k:
        v += 1
    return v


@nb.njit(cache=True, inline="always")
def _line_max(flat, mb, istride, i_lo, i_hi):
    """An upper bound (m) of cells ``i_lo … i_hi`` of one grid line read as the sweep reads
    them (NaN and the nodata value as 0 m): the largest value other than NaN, or 0."""
    z = 0.0
    for i in range(i_lo, i_hi + 1):
        v = flat[mb + i * istride]
        z = v if v > z else z
    return z


@nb.njit(cache=True, inline="always")
def _leaving(g, dg, n_minor):
    """Whether a ray at ``g`` cells across the axis, moving ``dg`` per column, is past a side
    of the grid (beyond its outer half cell) and not coming back."""
    return (g > n_minor - 0.5 and dg >= 0.0) or (g < -0.5 and dg <= 0.0)


@nb.njit(cache=True, inline="always")
def _edge_sample(flat, nodata, best, j, g, mb, istride, n_minor, ha, ix, inv_lres, xlc):
    """Update ray ``j``'s horizon with a sample within a cell of the grid's side (or beyond).

    The general form of the sweep's sampling: edge values in the outer half cell, 0 m outside.
    """
    z = 0.0
    if -0.5 <= g <= n_minor - 0.5:
        i = math.floor(g)
        w = g - i
        i0 = min(max(i, 0), n_minor - 1)
        i1 = min(max(i + 1, 0), n_minor - 1)
        za = flat[mb + i0 * istride]
        zb = flat[mb + i1 * istride]
        za = 0.0 if (za != za) | (za == nodata) else za
        zb = 0.0 if (zb != zb) | (zb == nodata) else zb
        z = (1.0 - w) * za + w * zb
    sig = ((z - ha) * ix * inv_lres - xlc) / inv_lres  # scaled as ``best``
    if sig > best[j]:
        best[j] = sig


@nb.njit(cache=True)
def _sweep_task(dem, nodata, q, k_lo, k_hi, x0, y0, res, tx, ty, ha, h_rx, radius, n_per, out):
    """One task of :func:`_viewshed_sweep`: the rays k_lo … k_hi of cone ``q`` and their cells.

    The cone's rays have slopes k / n_per (k = −n_per … n_per) from the antenna: the rays to
    the cells of the perimeter of a square of half-side ``n_per`` cells. Column by column
    along the axis (u = distance in cells from the antenna's cell), first every cell of the
    column whose nearest ray (:func:`_owner`) is one of this task's takes that ray's
    visibility (the largest σ of its samples on the previous columns against the cell's own
    σ), then every active ray takes its sample on this column (bilinear DEM on the line of
    cell centres: linear between the two cells across) into its running maximum of
    σ = (z − h_a)/s − s/(2 k R_e) (kept multiplied by the ray's metres per column, which saves
    work per sample). A ray stops one cell beyond ``radius``, or once it has left the grid.
    The samples of a block of ``_SWEEP_BLOCK`` rays are skipped when the highest cell they read
    proves that none of them can raise its ray's maximum; the result is the same as without.
    """
    nrows, ncols = dem.shape
    flat = dem.reshape(-1)
    oflat = out.reshape(-1)
    fc_t = (tx - x0) / res - 0.5  # the antenna in fractional (row, col), cell centres at integers
    fr_t = (y0 - ty) / res - 0.5
    c_a = math.floor(fc_t + 0.5)  # the antenna's cell
    r_a = math.floor(fr_t + 0.5)
    a_u, a_v, b_u, b_v = _CONES[q, 0], _CONES[q, 1], _CONES[q, 2], _CONES[q, 3]
    au = a_u * (fc_t - c_a) + b_u * (fr_t - r_a)  # the antenna in the cone's frame (cells)
    av = a_v * (fc_t - c_a) + b_v * (fr_t - r_a)
    if a_u != 0:  # the axis runs along a row: samples on columns of cell centres
        m0, step_m, g0, sgn, n_major, n_minor, mstride, istride = (
            c_a, a_u, r_a, b_v, ncols, nrows, 1, ncols
        )  # fmt: skip
    else:
        m0, step_m, g0, sgn, n_major, n_minor, mstride, istride = (
            r_a, b_u, c_a, a_v, nrows, ncols, ncols, 1
        )  # fmt: skip
    reach = radius / res + 1.0  # cells; a sample farther away decides no cell in range
    r2 = radius * radius
    near2 = (res * (1.0 + 1e-9)) ** 2  # d ≤ res: no interior profile point, always visible
    n_rays = k_hi - k_lo + 1  # this task's rays, j = k − k_lo
    slope = np.empty(n_rays)
    slope2 = np.empty(n_rays)
    inv_lres = np.empty(n_rays)  # 1 / (metres along the ray per cell along the axis)
    lc = np.empty(n_rays)  # bulge term of σ per cell along the axis
    u_last = np.empty(n_rays, dtype=np.int64)
    # each ray's running maximum of σ · (metres along the ray per cell along the axis): with
    # that scale, a sample's value is z/x − h_a/x − x·res²/(2 k R_e)·(1 + slope²), x = cells
    # along the axis
    best = np.full(n_rays, -np.inf)
    bmin = np.full((n_rays + _SWEEP_BLOCK - 1) // _SWEEP_BLOCK, -np.inf)  # per block of rays
    for j in range(n_rays):
        s = (j + k_lo) / n_per
        length = math.sqrt(1.0 + s * s)
        slope[j] = s
        slope2[j] = s * s
        inv_lres[j] = 1.0 / (length * res)
        lc[j] = length * res * CURV
        u_last[j] = math.floor(au + reach / length) + 1
    # squared offsets (m²) from the antenna of the grid's column and row centres, as the exact
    # method computes them
    dx2 = np.empty(ncols)
    for c in range(ncols):
        dx = x0 + (c + 0.5) * res - tx
        dx2[c] = dx * dx
    dy2 = np.empty(nrows)
    for r in range(nrows):
        dy = y0 - (r + 0.5) * res - ty
        dy2[r] = dy * dy
    u_first = 0 if au < 0.0 else 1  # the first column ahead of the antenna (x > 0)
    u_end = u_last.max()
    cstride = b_v * ncols + a_v  # flat index step between neighbouring cells of a column
    hi_f = float(n_minor - 1)
    kres = res * res * CURV  # bulge (m) of one cell² of distance
    a_lo, a_hi = 0, n_rays - 1  # the active rays (u_last decreases away from the axis)
    for u in range(u_first, u_end + 1):
        while a_lo <= a_hi and u_last[a_lo] < u:
            a_lo += 1
        while a_hi >= a_lo and u_last[a_hi] < u:
            a_hi -= 1
        if a_lo > a_hi:
            break
        j_lo, j_hi = a_lo, a_hi
        m = m0 + step_m * u  # the column's row or column index
        if (step_m > 0 and m >= n_major) or (step_m < 0 and m < 0):
            break  # past the grid along the axis, and moving away
        x = u - au
        ix = 1.0 / x
        # rays past a side of the grid and moving away from it are done: they own no cell
        # from here on (the sample nearest to a cell is within half a cell of it)
        gb = g0 + sgn * av
        gs = sgn * x
        while a_lo <= a_hi and _leaving(gb + gs * slope[a_lo], sgn * slope[a_lo], n_minor):
            a_lo += 1
        while a_hi >= a_lo and _leaving(gb + gs * slope[a_hi], sgn * slope[a_hi], n_minor):
            a_hi -= 1
        if a_lo > a_hi:
            break
        j_lo, j_hi = a_lo, a_hi
        if not 0 <= m < n_major:  # before the grid (the antenna is outside it): 0 m
            for j in range(j_lo, j_hi + 1):
                sig = (-ha * ix * inv_lres[j] - x * lc[j]) / inv_lres[j]
                if sig > best[j]:
                    best[j] = sig
            continue
        # 1. the column's cells: in the cone (−x < y ≤ x), on the grid, near the circle, and
        #    nearest to one of this task's rays
        v_lo = math.floor(av - x) + 1
        v_hi = math.floor(av + x)
        if sgn > 0:
            v_lo = max(v_lo, -g0)
            v_hi = min(v_hi, n_minor - 1 - g0)
        else:
            v_lo = max(v_lo, g0 - (n_minor - 1))
            v_hi = min(v_hi, g0)
        hw = math.sqrt(max(reach * reach - x * x, 0.0))
        v_lo = max(v_lo, math.floor(av - hw))
        v_hi = min(v_hi, math.ceil(av + hw))
        k_scale = n_per * ix
        v_lo = max(v_lo, _first_owned(k_lo, av, k_scale))
        v_hi = min(v_hi, _first_owned(k_hi + 1, av, k_scale) - 1)
        r_u = r_a + b_u * u
        c_u = c_a + a_u * u
        base = r_u * ncols + c_u
        for v in range(v_lo, v_hi + 1):
            j = _owner(v, av, k_scale) - k_lo
            d2 = dx2[c_u + a_v * v] + dy2[r_u + b_v * v]
            idx = base + cstride * v
            zc = flat[idx]
            zc = 0.0 if (zc != zc) | (zc == nodata) else zc
            # visible iff best ≤ (h_b − h_a)/d − d/(2 k R_e), i.e. best·d ≤ h_b − h_a − d²/(2 k R_e)
            vis = best[j] * inv_lres[j] * math.sqrt(d2) <= (zc + h_rx - ha) - d2 * CURV
            oflat[idx] = (d2 <= r2) & (vis | (d2 <= near2))
        # 2. the active rays' samples on this column: those within a cell of the grid's sides
        #    peeled off at both ends, the rest without bounds tests
        mb = m * mstride
        while j_lo <= j_hi and not 0.0 <= gb + gs * slope[j_lo] < hi_f:
            _edge_sample(flat, nodata, best, j_lo, gb + gs * slope[j_lo], mb, istride, n_minor,
                         ha, ix, inv_lres[j_lo], x * lc[j_lo])  # fmt: skip
            j_lo += 1
        while j_hi >= j_lo and not 0.0 <= gb + gs * slope[j_hi] < hi_f:
            _edge_sample(flat, nodata, best, j_hi, gb + gs * slope[j_hi], mb, istride, n_minor,
                         ha, ix, inv_lres[j_hi], x * lc[j_hi])  # fmt: skip
            j_hi -= 1
        off = ha * ix + x * kres
        xk = x * kres
        if j_lo > j_hi:  # every active ray took an edge sample: no block to read
            continue
        for b0 in range(j_lo - j_lo % _SWEEP_BLOCK, j_hi + 1, _SWEEP_BLOCK):
            lo = max(b0, j_lo)
            hi = min(b0 + _SWEEP_BLOCK - 1, j_hi)
            # skip the block's samples when none can raise its rays' maxima: a bound from the
            # highest cell they read (their positions across the axis are monotone in j)
            g_lo = gb + gs * slope[lo]
            g_hi = gb + gs * slope[hi]
            zmax = _line_max(flat, mb, istride, int(min(g_lo, g_hi)), int(max(g_lo, g_hi)) + 1)
            s_lo, s_hi = slope[lo], slope[hi]
            s2min = 0.0 if s_lo * s_hi <= 0.0 else min(s_lo * s_lo, s_hi * s_hi)
            if zmax * ix - off - xk * s2min + 1e-9 < bmin[b0 // _SWEEP_BLOCK]:
                continue
            m_b = np.inf  # the smallest maximum of the block's rays
            for j in range(lo, hi + 1):
                g = gb + gs * slope[j]
                i = int(g)  # g ≥ 0: the floor
                w = g - i
                k0 = mb + i * istride
                za = flat[k0]
                zb = flat[k0 + istride]
                if (za != za) | (zb != zb) | (za == nodata) | (zb == nodata):  # rare: test once
                    za = 0.0 if (za != za) | (za == nodata) else za
                    zb = 0.0 if (zb != zb) | (zb == nodata) else zb
                z = za + w * (zb - za)
                sig = z * ix - off - xk * slope2[j]
                b = best[j]
                b = sig if sig > b else b
                best[j] = b
                m_b = b if b < m_b else m_b
            if lo > b0 or hi < b0 + _SWEEP_BLOCK - 1:  # rays of the block outside [lo, hi]
                for j in range(b0, min(b0 + _SWEEP_BLOCK, n_rays)):  # may come back: all
                    v = best[j]
                    m_b = v if v < m_b else m_b
            bmin[b0 // _SWEEP_BLOCK] = m_b


@nb.njit(cache=True, parallel=True)
def _viewshed_sweep(dem, nodata, x0, y0, res, tx, ty, ha, h_rx, radius, n_per, n_workers, out):
    """Fill ``out`` for the cells within ``radius`` of the antenna (``n_per`` > radius/res + 1).

    The rays of each cone are cut into ``len(_SWEEP_SPLITS)`` tasks of consecutive slopes (one
    task per cone when ``n_workers`` is 1);
    ``n_workers`` threads take the tasks one at a time from a shared counter (so a thread
    slowed down by other work on its core takes fewer). Each cell within the radius is written
    by exactly one task, so the result does not depend on the threads.
    """
    # one task per cone for a single thread (fewer passes over the columns); the same result
    n_split = _SWEEP_SPLITS.shape[0] if n_workers > 1 else 1
    bounds = np.empty(n_split + 1, dtype=np.int64)  # k ranges: −n_per … n_per in n_split parts
    for i in range(n_split + 1):
        bounds[i] = -n_per + (i * (2 * n_per + 1)) // n_split
    n_tasks = 4 * n_split
    counter = np.zeros(1, dtype=np.int64)
    for _ in nb.prange(n_workers):
        while True:
            t = _fetch_increment(counter)
            if t >= n_tasks:
                break
            split = _SWEEP_SPLITS[t // 4] if n_split > 1 else 0
            q = (0, 2, 1, 3)[t % 4]
            _sweep_task(dem, nodata, q, bounds[split], bounds[split + 1] - 1, x0, y0, res, tx,
                        ty, ha, h_rx, radius, n_per, out)  # fmt: skip
    _antenna_cell(dem.shape, x0, y0, res, tx, ty, radius, out)


@nb.njit(cache=True)
def _antenna_cell(shape, x0, y0, res, tx, ty, radius, out):
    """Mark the antenna's own cell visible (it lies on no cone: the cones start one cell out)."""
    nrows, ncols = shape
    c_a = math.floor((tx - x0) / res)
    r_a = math.floor((y0 - ty) / res)
    if 0 <= r_a < nrows and 0 <= c_a < ncols:
        dx = x0 + (c_a + 0.5) * res - tx
        dy = y0 - (r_a + 0.5) * res - ty
        if dx * dx + dy * dy <= radius * radius:
            out[r_a, c_a] = True


#: Horizon height (m) of the line before the first one: below anything, so nothing hides behind
#: the antenna's own cell (finite, so that interpolating it stays finite).
_PLANES_LOW = -1e30


@nb.njit(cache=True, inline="always")
def _planes_segment(flat, oflat, nodata, prev, cur, v_lo, v_hi, left, on_grid, write, base,
                    cstride, av, inv_x, ha, ratio, x2, y2, n_v, h_rx, r2, near2):  # fmt: skip
    """Cells ``v_lo … v_hi`` of one line of :func:`_planes_cone` (one side of the antenna).

    The ray from the antenna to cell v crosses the previous line at ``|v − av| / x`` cells from
    v's own position, towards the axis (``left``: v ≤ av, towards v + 1; else towards v − 1):
    the horizon there is interpolated between those two cells of ``prev``, extended to this
    line (× ``ratio`` = x / (x − 1) about the antenna's height), and compared with the cell's
    receiver. ``cur`` gets the larger of that horizon and the cell's ground.
    """
    for v in range(v_lo, v_hi + 1):
        k = v + n_v
        if left:
            w = min((av - v) * inv_x, 1.0)
            h = prev[k] + w * (prev[k + 1] - prev[k])
        else:
            w = min((v - av) * inv_x, 1.0)
            h = prev[k] + w * (prev[k - 1] - prev[k])
        thr = ha + (h - ha) * ratio  # the horizon's height (m) over this cell
        idx = base + cstride * v
        z = 0.0
        if on_grid:
            z = flat[idx]
            z = 0.0 if (z != z) | (z == nodata) else z
        d2 = x2 + y2[k]
        zc = z - d2 * CURV  # the ground, lowered by the Earth's bulge seen from the antenna
        cur[k] = thr if thr > zc else zc
        if write:
            oflat[idx] = (d2 <= r2) & ((thr <= zc + h_rx) | (d2 <= near2))


@nb.njit(cache=True, inline="always")
def _planes_span(flat, oflat, nodata, prev, cur, v_a, v_b, u, s0, on_grid, base, cstride, av,
                 inv_x, ha, ratio, x2, y2, n_v, h_rx, r2, near2):  # fmt: skip
    """Cells ``v_a … v_b`` of line ``u``: written when on the grid, except v = −u (the
    neighbouring cone's), split at ``s0`` (the first cell right of the antenna)."""
    if v_a > v_b:
        return
    if v_a == -u:  # on the cone's edge: the horizon only
        _planes_segment(flat, oflat, nodata, prev, cur, v_a, v_a, True, on_grid, False, base,
                        cstride, av, inv_x, ha, ratio, x2, y2, n_v, h_rx, r2, near2)  # fmt: skip
        v_a += 1
    _planes_segment(flat, oflat, nodata, prev, cur, v_a, min(v_b, s0 - 1), True, on_grid,
                    on_grid, base, cstride, av, inv_x, ha, ratio, x2, y2, n_v, h_rx, r2,
                    near2)  # fmt: skip
    _planes_segment(flat, oflat, nodata, prev, cur, max(v_a, s0), v_b, False, on_grid, on_grid,
                    base, cstride, av, inv_x, ha, ratio, x2, y2, n_v, h_rx, r2,
                    near2)  # fmt: skip


@nb.njit(cache=True)
def _planes_cone(dem, nodata, q, x0, y0, res, tx, ty, ha, h_rx, radius, out):
    """The cells of cone ``q`` (lines u = 1, 2, … across its axis, −u < v ≤ u) by reference
    planes (Wang, Robinson & White 2000): each cell's horizon is interpolated from the two
    cells of the previous line that its ray passes between, so each cell costs O(1).

    Heights are compared in a frame where the Earth is flat: every cell's ground is lowered by
    its bulge d²/(2 k R_e) (d from the antenna), which makes the apparent elevation angle of
    the exact method a straight-line slope. The line of cells at ``v = −u`` (the neighbouring
    cone's edge) is computed for the horizon but not written; lines are clipped to the radius
    and, when the antenna is on the grid, to the grid plus one cell (0 m there).
    """
    nrows, ncols = dem.shape
    flat = dem.reshape(-1)
    oflat = out.reshape(-1)
    fc_t = (tx - x0) / res - 0.5
    fr_t = (y0 - ty) / res - 0.5
    c_a = math.floor(fc_t + 0.5)
    r_a = math.floor(fr_t + 0.5)
    a_u, a_v, b_u, b_v = _CONES[q, 0], _CONES[q, 1], _CONES[q, 2], _CONES[q, 3]
    au = a_u * (fc_t - c_a) + b_u * (fr_t - r_a)  # the antenna in the cone's frame (cells)
    av = a_v * (fc_t - c_a) + b_v * (fr_t - r_a)
    along_cols = a_u != 0  # line u is grid column c_a + a_u·u (else row r_a + b_u·u)
    if along_cols:
        m0, sm, n_major, g0, sg, n_minor = c_a, a_u, ncols, r_a, b_v, nrows
    else:
        m0, sm, n_major, g0, sg, n_minor = r_a, b_u, nrows, c_a, a_v, ncols
    if sg > 0:  # the cells v of a line that are on the grid
        gv_lo, gv_hi = -g0, n_minor - 1 - g0
    else:
        gv_lo, gv_hi = g0 - (n_minor - 1), g0
    inside = 0 <= r_a < nrows and 0 <= c_a < ncols
    reach = radius / res + 1.0  # cells
    u_end = math.floor(reach + au) + 1
    n_v = u_end + 2
    # squared offsets (m²) across the axis, as the exact method computes them
    y2 = np.empty(2 * n_v + 1)
    for i in range(2 * n_v + 1):
        v = i - n_v
        if along_cols:
            e = y0 - (r_a + b_v * v + 0.5) * res - ty
        else:
            e = x0 + (c_a + a_v * v + 0.5) * res - tx
        y2[i] = e * e
    prev = np.full(2 * n_v + 1, _PLANES_LOW)
    cur = np.full(2 * n_v + 1, _PLANES_LOW)
    r2 = radius * radius
    near2 = (res * (1.0 + 1e-9)) ** 2
    cstride = b_v * ncols + a_v
    s0 = math.floor(av) + 1
    for u in range(1, u_end + 1):
        m = m0 + sm * u
        line_on = 0 <= m < n_major
        if inside and not line_on:
            break  # off the grid, and moving away
        x = u - au
        hw = math.sqrt(max(reach * reach - x * x, 0.0))
        lo = max(-u, math.floor(av - hw) - 1)
        hi = min(u, math.ceil(av + hw) + 1)
        if inside:
            lo = max(lo, gv_lo - 1)
            hi = min(hi, gv_hi + 1)
        if lo > hi:
            break
        e = x0 + (m + 0.5) * res - tx if along_cols else y0 - (m + 0.5) * res - ty
        x2 = e * e
        ratio = 1.0 if u == 1 else x / (x - 1.0)
        inv_x = 1.0 / x
        base = (r_a + b_u * u) * ncols + c_a + a_u * u
        og_lo, og_hi = (max(lo, gv_lo), min(hi, gv_hi)) if line_on else (hi + 1, hi)
        _planes_span(flat, oflat, nodata, prev, cur, lo, min(hi, og_lo - 1), u, s0, False,
                     base, cstride, av, inv_x, ha, ratio, x2, y2, n_v, h_rx, r2,
                     near2)  # fmt: skip
        _planes_span(flat, oflat, nodata, prev, cur, max(lo, og_lo), min(hi, og_hi), u, s0,
                     True, base, cstride, av, inv_x, ha, ratio, x2, y2, n_v, h_rx, r2,
                     near2)  # fmt: skip
        _planes_span(flat, oflat, nodata, prev, cur, max(lo, og_hi + 1), hi, u, s0, False,
                     base, cstride, av, inv_x, ha, ratio, x2, y2, n_v, h_rx, r2,
                     near2)  # fmt: skip
        # the line's ends extended by one cell: the next line may reach one cell further
        cur[lo - 1 + n_v] = cur[lo + n_v]
        cur[hi + 1 + n_v] = cur[hi + n_v]
        prev, cur = cur, prev


@nb.njit(cache=True)
def _viewshed_planes(dem, nodata, x0, y0, res, tx, ty, ha, h_rx, radius, out):
    """Fill ``out`` for the cells within ``radius`` of the antenna, cone after cone.

    One thread: a cone takes about a millisecond per 200,000 cells, and splitting 4 cones
    over threads gained ≈ 1.3× on 2 idle cores but lost several-fold when another process
    kept a core busy (a preempted thread holds the others at the end of the parallel loop).
    Many sites are better run in parallel one per thread.
    """
    for q in range(4):
        _planes_cone(dem, nodata, q, x0, y0, res, tx, ty, ha, h_rx, radius, out)
    _antenna_cell(dem.shape, x0, y0, res, tx, ty, radius, out)


# --------------------------------------------------------------------------------------------
# numpy entry point
# --------------------------------------------------------------------------------------------


def approximate_viewshed(
    method: str,
    dem: np.ndarray,
    grid: GridSpec,
    tx: float,
    ty: float,
    h_tx_m: float,
    h_rx_m: float,
    radius_m: float,
) -> np.ndarray:
    """``line_of_sight`` by ``"sweep"`` or ``"planes"`` (``method``) on a float64 DEM.

    ``dem`` is C-contiguous float64 (:func:`telcoplan.coverage.profile.dem_float64`); the
    other arguments are those of :func:`telcoplan.coverage.terrain.line_of_sight`, already
    validated. The grid's nodata value is handled inside the kernels. Returns the boolean
    viewshed of shape ``grid.shape``.
    """
    t = grid.transform
    x0, y0, res = float(t.c), float(t.f), float(t.a)
    tx, ty, radius = float(tx), float(ty), float(radius_m)
    nodata = float(grid.nodata)
    out = np.zeros(grid.shape, dtype=np.bool_)
    fr, fc = (y0 - ty) / res - 0.5, (tx - x0) / res - 0.5
    reach = radius / res + 1.0
    if fc + reach < -0.5 or fc - reach > grid.width - 0.5:
        return out
    if fr + reach < -0.5 or fr - reach > grid.height - 0.5:
        return out
    ha = float(_bilinear_nodata(dem, fr, fc, nodata)) + float(h_tx_m)
    if method == "planes":
        _viewshed_planes(dem, nodata, x0, y0, res, tx, ty, ha, float(h_rx_m), radius, out)
        return out
    n_per = math.ceil(radius / res) + 2
    _viewshed_sweep(dem, nodata, x0, y0, res, tx, ty, ha, float(h_rx_m), radius, n_per,
                    nb.get_num_threads(), out)  # fmt: skip
    return out
