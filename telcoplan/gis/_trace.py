"""Boundary tracing of raster regions: the rings of 4-connected regions of equal value.

The raster is read once into **runs** (maximal horizontal stretches of cells of one non-zero
value, row by row: memory in proportion to the runs, not the cells), and:

- :func:`label_runs` joins the runs of equal value that overlap in consecutive rows (union-find;
  each run's component is numbered 1 + the index of its first run, in raster order, which is
  also the order in which the components are met);
- :func:`trace_rings` follows the boundary of every component, cell edge after cell edge, with
  the component on the right-hand side (in pixel coordinates: x = column, y = row, y down),
  finding the cells beside the way in their row's runs (binary search), and keeps only the
  vertices where the boundary turns (no vertex in the middle of a straight edge).

The rings are simple, as OGC (and GEOS) validity wants them. Where two cells of a component touch
only at a corner (a saddle: the other two cells around the corner are not in it), the boundary
turns towards the diagonal cell: the component stays in one piece there and the two outside
cells are on separate rings — a hole touching the shell, or two holes touching, at that point,
never one ring visiting the point twice (the diagonal cells are joined through the component, so
the two outside cells are on opposite sides of a closed curve). Two components touching at a
corner are separate polygons, each turning around its own cell.

A component's shell starts at the top-left corner of its first run, traced eastwards (in pixel
coordinates, clockwise on the screen). A hole starts at the bottom edge of a run where no run of
the component lies below (the topmost edges of a hole are such edges), traced westwards, unless
that edge was traced already: a bit per cell (8 cells a byte) records the bottom edges traced.
Work: the cells once (to find the runs), then the runs and the boundary's edges.
"""

from __future__ import annotations

import numba as nb
import numpy as np

__all__ = ["find_runs", "label_runs", "trace_rings"]


@nb.njit(cache=True, nogil=True)
def find_runs(values):
    """The runs of equal non-zero ``values`` (rows × cols), row by row, left to right.

    Returns ``(row_start, c0, c1, value)``: the runs of row ``r`` are ``row_start[r] :
    row_start[r + 1]``; run ``k`` covers the columns ``c0[k] : c1[k]`` (int32) with ``value[k]``.
    """
    h, w = values.shape
    n = 0
    for r in range(h):
        for col in range(w):
            x = values[r, col]
            if x != 0 and (col == 0 or values[r, col - 1] != x):
                n += 1
    row_start = np.empty(h + 1, dtype=np.int64)
    c0 = np.empty(n, dtype=np.int32)
    c1 = np.empty(n, dtype=np.int32)
    value = np.empty(n, dtype=values.dtype)
    k = 0
    for r in range(h):
        row_start[r] = k
        for col in range(w):
            x = values[r, col]
            if x == 0:
                continue
            if col == 0 or values[r, col - 1] != x:
                c0[k] = col
                value[k] = x
                k += 1
            c1[k - 1] = col + 1
    row_start[h] = k
    return row_start, c0, c1, value


@nb.njit(cache=True, nogil=True)
def _find(parent, i):
    """Root of run ``i``, halving the path on the way."""
    while parent[i] != i:
        parent[i] = parent[parent[i]]
        i = parent[i]
    return i


@nb.njit(cache=True, nogil=True)
def label_runs(row_start, c0, c1, value):
    """The component of each run (:func:`find_runs`): 1 + the index of its first run (int32).

    Runs of equal value join when they overlap in consecutive rows (the 4-connected components
    of the cells).
    """
    n = c0.shape[0]
    parent = np.arange(n)
    for r in range(1, row_start.shape[0] - 1):
        i, i_end = row_start[r - 1], row_start[r]
        j, j_end = row_start[r], row_start[r + 1]
        while i < i_end and j < j_end:
            if c0[i] < c1[j] and c0[j] < c1[i] and value[i] == value[j]:
                a, b = _find(parent, i), _find(parent, j)
                if a < b:
                    parent[b] = a
                elif b < a:
                    parent[a] = b
            if c1[i] <= c1[j]:
                i += 1
            else:
                j += 1
    comp = np.empty(n, dtype=np.int32)
    for k in range(n):  # every parent precedes its child: its root is resolved already
        comp[k] = k + 1 if parent[k] == k else comp[parent[k]]
    return comp


@nb.njit(cache=True, nogil=True)
def _at(row_start, c0, c1, comp, row, col):
    """The component of cell (``row``, ``col``): 0 outside every run and outside the grid."""
    if row < 0 or col < 0 or row >= row_start.shape[0] - 1:
        return 0
    lo, hi = row_start[row], row_start[row + 1]
    while lo < hi:  # the first run of the row ending after ``col``
        mid = (lo + hi) // 2
        if c1[mid] <= col:
            lo = mid + 1
        else:
            hi = mid
    if lo < row_start[row + 1] and c0[lo] <= col:
        return comp[lo]
    return 0


@nb.njit(cache=True, nogil=True)
def _grow(a, n):
    """``a`` with room for at least ``n`` items (doubled)."""
    if n <= a.shape[0]:
        return a
    out = np.empty(max(2 * a.shape[0], n), dtype=a.dtype)
    out[: a.shape[0]] = a
    return out


@nb.njit(cache=True, nogil=True)
def trace_rings(row_start, c0, c1, comp, width, with_contacts):
    """The boundary rings of the components of the runs (:func:`find_runs`,
    :func:`label_runs`: ``comp``) of a grid ``width`` cells wide.

    Returns ``(x, y, ring_start, ring_comp, ring_shell, contacts)``: the corner vertices (int32
    pixel coordinates) of ring ``k`` are ``ring_start[k] : ring_start[k + 1]``, the first one
    repeated at the end; ``ring_comp[k]`` is the component it bounds, ``ring_shell[k]`` whether
    it is the component's shell (else a hole). Rings come in the order of the runs they start
    on: each component's shell before its holes, the shells in component order. With
    ``with_contacts``, ``contacts`` (pairs × 2) holds the components touching at a corner (each
    contact at least once), else it is empty.
    """
    h = row_start.shape[0] - 1
    # bottom edges traced: bit (col & 7) of traced[row, col >> 3]
    traced = np.zeros((h, (width + 7) // 8), dtype=np.uint8)
    xs = np.empty(1024, dtype=np.int32)
    ys = np.empty(1024, dtype=np.int32)
    starts = np.zeros(64, dtype=np.int64)
    ring_comp = np.empty(64, dtype=np.int32)
    ring_shell = np.empty(64, dtype=np.bool_)
    contacts = np.empty(64 if with_contacts else 0, dtype=np.int32)
    found = np.empty(3, dtype=np.int64)  # ring starts of a run: (x, y, direction) ...
    nv = 0
    nr = 0
    nc = 0
    for r in range(h):
        below = row_start[r + 1] if r + 1 < h else row_start[h]
        below_end = row_start[r + 2] if r + 1 < h else row_start[h]
        for k in range(row_start[r], row_start[r + 1]):
            c = comp[k]
            # where rings may start on this run: its component's shell at its top-left corner
            # (its first run), holes at its bottom edges with no cell of the component below
            n_found = 0
            if c == k + 1:
                found = _grow(found, 3 * n_found + 3)
                found[0], found[1], found[2] = c0[k], r, 0
                n_found = 1
            while below < below_end and c1[below] <= c0[k]:
                below += 1
            pos = c0[k]
            j = below
            while pos < c1[k]:
                if j < below_end and c0[j] < c1[k]:
                    if comp[j] != c:
                        j += 1
                        continue
                    s, e = pos, c0[j]
                    pos = max(pos, c1[j])
                    j += 1
                else:
                    s, e = pos, c1[k]
                    pos = c1[k]
                if s < e and not (traced[r, s >> 3] >> (s & 7)) & 1:
                    found = _grow(found, 3 * n_found + 3)
                    found[3 * n_found], found[3 * n_found + 1] = s + 1, r + 1
                    found[3 * n_found + 2] = 2
                    n_found += 1
            for f in range(n_found):
                x0, y0, d0 = found[3 * f], found[3 * f + 1], found[3 * f + 2]
                if d0 == 2 and (traced[y0 - 1, (x0 - 1) >> 3] >> ((x0 - 1) & 7)) & 1:
                    continue  # traced from an earlier start of this run
                starts = _grow(starts, nr + 2)
                ring_comp = _grow(ring_comp, nr + 1)
                ring_shell = _grow(ring_shell, nr + 1)
                starts[nr] = nv
                ring_comp[nr] = c
                ring_shell[nr] = d0 == 0
                x, y, d = x0, y0, d0
                while True:
                    # along the edge (directions 0 east, 1 south, 2 west, 3 north)
                    if d == 0:
                        x += 1
                    elif d == 1:
                        y += 1
                    elif d == 2:
                        traced[y - 1, (x - 1) >> 3] |= np.uint8(1 << ((x - 1) & 7))
                        x -= 1
                    else:
                        y -= 1
                    # the cells ahead, on the left and on the right of the way
                    if d == 0:
                        left = _at(row_start, c0, c1, comp, y - 1, x)
                        right = _at(row_start, c0, c1, comp, y, x)
                    elif d == 1:
                        left = _at(row_start, c0, c1, comp, y, x)
                        right = _at(row_start, c0, c1, comp, y, x - 1)
                    elif d == 2:
                        left = _at(row_start, c0, c1, comp, y, x - 1)
                        right = _at(row_start, c0, c1, comp, y - 1, x - 1)
                    else:
                        left = _at(row_start, c0, c1, comp, y - 1, x - 1)
                        right = _at(row_start, c0, c1, comp, y - 1, x)
                    if left == c:  # (a saddle too: the diagonal cell is the component's)
                        turn = 3
                    elif right == c:
                        turn = 0
                    else:
                        turn = 1
                        if with_contacts and left != 0:  # another component at the corner
                            contacts = _grow(contacts, 2 * nc + 2)
                            contacts[2 * nc] = c
                            contacts[2 * nc + 1] = left
                            nc += 1
                    if turn != 0:
                        xs = _grow(xs, nv + 2)
                        ys = _grow(ys, nv + 2)
                        xs[nv] = x
                        ys[nv] = y
                        nv += 1
                        d = (d + turn) % 4
                    if x == x0 and y == y0 and d == d0:
                        break
                xs[nv] = xs[starts[nr]]  # closed
                ys[nv] = ys[starts[nr]]
                nv += 1
                nr += 1
    starts = _grow(starts, nr + 1)
    starts[nr] = nv
    return (
        xs[:nv].copy(),
        ys[:nv].copy(),
        starts[: nr + 1].copy(),
        ring_comp[:nr].copy(),
        ring_shell[:nr].copy(),
        contacts[: 2 * nc].copy().reshape(nc, 2),
    )
