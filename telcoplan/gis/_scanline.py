"""Polygon rasterisation by scanlines: each cell gets the polygon that contains its centre.

The rule is GDAL's (``gdal_rasterize`` without ``-at``, ``llrasterize.cpp``): vertices are put in
pixel coordinates (column, row from the grid's top-left corner); on the scanline through the
centres of row ``r`` (y = r + 0.5) an edge from (x1, y1) to (x2, y2), y1 < y2, crosses when
y1 ≤ y < y2, at x = x1 + (y − y1)(x2 − x1)/(y2 − y1); the sorted crossings pair up, and a pair
(a, b) fills the columns floor(a + 0.5) … floor(b + 0.5) − 1. Holes are rings like the others
(even-odd within a polygon); the parts of a multipolygon are filled one by one (as GDAL does).
Later polygons overwrite earlier ones.

Work is proportional to the edges plus the crossings plus the filled cells: each edge adds its
crossings to the rows it spans (counted first, then placed), so a ward with thousands of
vertices costs no more per row than a square.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np

__all__ = ["fill_polygons"]


@nb.njit(cache=True, nogil=True)
def fill_polygons(px, py, ring_start, feature_start, values, out):
    """Fill ``out`` (rows, cols) with ``values[f]`` where polygon ``f`` contains a cell centre.

    ``px``/``py``: vertices of every ring in pixel coordinates, each ring closed (last vertex =
    first); ring ``k`` is ``ring_start[k] : ring_start[k + 1]``; polygon ``f`` owns rings
    ``feature_start[f] : feature_start[f + 1]`` (even-odd among them: its holes).
    """
    n_rows, n_cols = out.shape
    for f in range(feature_start.shape[0] - 1):
        r_lo, r_hi = feature_start[f], feature_start[f + 1]
        if r_lo == r_hi:
            continue
        v_lo, v_hi = ring_start[r_lo], ring_start[r_hi]
        ymin, ymax = np.inf, -np.inf
        for v in range(v_lo, v_hi):
            ymin = min(ymin, py[v])
            ymax = max(ymax, py[v])
        # rows whose centre line y = r + 0.5 lies in [ymin, ymax)
        row0 = max(math.ceil(ymin - 0.5), 0)
        row1 = min(math.ceil(ymax - 0.5), n_rows)  # exclusive
        if row0 >= row1:
            continue
        count = np.zeros(row1 - row0 + 1, dtype=np.int64)
        for k in range(r_lo, r_hi):
            for v in range(ring_start[k], ring_start[k + 1] - 1):
                y1, y2 = py[v], py[v + 1]
                if y1 == y2:
                    continue
                lo, hi = min(y1, y2), max(y1, y2)
                a = max(math.ceil(lo - 0.5), row0)  # first row with r + 0.5 ≥ lo
                b = min(math.ceil(hi - 0.5), row1)  # rows with r + 0.5 < hi
                for r in range(a, b):
                    count[r - row0 + 1] += 1
        for i in range(1, count.shape[0]):
            count[i] += count[i - 1]
        xs = np.empty(count[-1])
        fill = count[:-1].copy()
        for k in range(r_lo, r_hi):
            for v in range(ring_start[k], ring_start[k + 1] - 1):
                x1, y1, x2, y2 = px[v], py[v], px[v + 1], py[v + 1]
                if y1 == y2:
                    continue
                if y1 > y2:
                    x1, y1, x2, y2 = x2, y2, x1, y1
                a = max(math.ceil(y1 - 0.5), row0)
                b = min(math.ceil(y2 - 0.5), row1)
                for r in range(a, b):  # GDAL's expression, operation for operation
                    xs[fill[r - row0]] = (r + 0.5 - y1) * (x2 - x1) / (y2 - y1) + x1
                    fill[r - row0] += 1
        value = values[f]
        for r in range(row0, row1):
            row = np.sort(xs[count[r - row0] : count[r - row0 + 1]])
            for j in range(0, row.shape[0] - 1, 2):
                c0 = max(math.floor(row[j] + 0.5), 0)
                c1 = min(math.floor(row[j + 1] + 0.5), n_cols)
                if c0 < c1:
                    out[r, c0:c1] = value
    return out
