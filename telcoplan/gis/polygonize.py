"""Polygons and connected regions from raster masks (coverage areas, gaps).

Each function works on the whole grid at once, or, given ``chunks`` (a chunk shape) or a Dask
``client``, **tile by tile**: the grid is cut into rectangles (chunks) that are labelled and
polygonized independently — on the client's workers, or one after the other in this process
without a client — and the driver merges what crosses the chunk borders. In this process the
tiled polygons are not made chunk by chunk but traced on the whole grid at once (see the notes:
the same polygons, in a fraction of the time). The tiled results do not depend on the chunking:

- labels equal :func:`scipy.ndimage.label` on the whole mask, numbering included;
- cell counts are exact; weight sums equal the whole-grid ones to rounding (the additions are
  grouped by chunk: ~1e-15 relative for non-negative weights, far within 1e-9);
- polygons equal the whole-grid ones topologically (:func:`shapely.equals`), with the same area
  and no vertex left where a chunk border crossed them; they are returned normalized
  (:func:`shapely.normalize`), so their rings may start at another vertex.

Notes
-----
Tiled labelling (the classical two-pass / union-find scheme, applied per chunk then across chunk
borders): each chunk is labelled on its own (1..kᵢ, in the order of each region's first cell in
the chunk). Chunk ``i``'s labels become provisional ids ``offset_i + 1 .. offset_i + kᵢ``. Only the
cells on the chunk borders can join regions of two chunks: for each boundary between two rows of
chunks the driver puts the provisional ids of the last row above and the first row below side by
side (full grid width), and pairs each cell with its neighbours below (the one straight below,
and with 8-connectivity the two diagonal ones, which covers the corners where four chunks meet);
likewise for each boundary between two columns of chunks. The connected components of that
graph of pairs (:func:`scipy.sparse.csgraph.connected_components`, a union-find) are the
regions. :func:`scipy.ndimage.label` numbers regions in the raster order of their first cell
(row-major), so the regions are numbered by the smallest grid position of their chunks' first
cells, which gives the same numbers.

Tiled polygons: each chunk's regions are polygonized in pixel coordinates (rasterio's
4-connected polygons of equal value); a piece that touches no inner chunk border is final, the
pieces of one region that do touch one are unioned (exact: integer coordinates), and the vertices
that the chunk border left in the middle of a straight edge are dropped. :func:`polygonize_mask`
needs no regions: it polygonizes each chunk's mask and unions all the pieces touching a border at
once (distinct 8-connected regions never touch, so the polygons are the region-by-region ones).
The pixel coordinates are mapped to the grid's CRS with the grid's transform (``x = c + col·a``,
``y = f + row·e``, the same arithmetic as GDAL), so the vertices are the whole-grid ones.

Traced polygons (tiled calls without a client): :mod:`telcoplan.gis._trace` reads the whole
grid into runs of equal value (row by row), joins them into 4-connected components and follows
each one's boundary edge by edge, keeping the corners only: one pass over the cells, then work
in proportion to the runs and the boundary, no GEOS union; memory for the runs and a bit per cell
(~10 MB on a national grid of 35 M cells). Its rings are the valid (OGC) ones GEOS's union
makes: where a polygon touches itself at a corner, its shell touches a hole (or two holes touch)
there. The polygons are built at once (:func:`shapely.from_ragged_array`), mapped to the grid's
CRS as above and normalized: the bytes of the tiled rasterio path (the tests compare them with
rasterio's polygons unioned by GEOS, and with the tiled path's chunk functions).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from itertools import chain
from typing import Any

import geopandas as gpd
import numpy as np
import shapely
from rasterio import features

from telcoplan.gis.grid import GridSpec

__all__ = [
    "DEFAULT_CHUNKS",
    "Regions",
    "label_regions",
    "polygonize_labels",
    "polygonize_mask",
    "tiled_regions",
]

log = logging.getLogger(__name__)

#: Chunk shape (rows, columns) of the tiled functions when a client is given without ``chunks``:
#: ~1 M cells, 36 chunks on a national grid of 5,900 × 5,900 cells.
DEFAULT_CHUNKS: tuple[int, int] = (1024, 1024)
#: Times the chunks go to a cluster before its failure is raised (a worker may die with the
#: chunks it holds), and the seconds a scatter may take (plus its bytes at 20 MB/s).
_CLUSTER_ATTEMPTS = 3
_SCATTER_TIMEOUT_S = 60.0


def polygonize_mask(
    mask: np.ndarray,
    grid: GridSpec,
    *,
    chunks: int | tuple[int, int] | None = None,
    client: Any = None,
) -> shapely.Geometry:
    """Union of the cells where ``mask`` is true, as one (Multi)Polygon (empty if none).

    With ``chunks`` or a Dask ``client`` (anything with ``scatter``, ``submit`` and ``gather``)
    the result is normalized and equals the whole-grid one topologically: traced on the whole
    grid at once in this process (the chunk shape is then not used), or polygonized tile by
    tile on the client's workers (see the module's notes).
    """
    if mask.shape != grid.shape:
        raise ValueError(f"mask shape {mask.shape} does not match grid shape {grid.shape}")
    if client is None and chunks is not None:
        _chunk_shape(chunks)  # (checked, not used)
        geoms = _traced(np.asarray(mask, dtype=bool))[0]
        keys = np.ones(len(geoms), dtype=np.int64)
        return _grouped(geoms, keys, np.ones(1, dtype=np.int64), grid)[0]
    if client is not None:
        # no regions needed: the pieces crossing a chunk border are unioned all at once (the
        # regions, 8-connected, never touch one another: the same polygons as region by region)
        boxes = _chunk_boxes(mask.shape, chunks)
        payloads = [(np.packbits(mask[r0:r1, c0:c1], axis=None),) for r0, r1, c0, c1 in boxes]
        found = _map_chunks(_chunk_mask_pieces, payloads, boxes, mask.shape, client)
        geoms = np.concatenate([p[0] for p in found])
        if len(geoms) == 0:
            return shapely.Polygon()
        on_border = np.concatenate([p[1] for p in found])
        pieces = _Pieces(np.ones(len(geoms), dtype=np.int64), geoms, on_border)
        parts = shapely.get_parts(pieces.geometries(np.ones(1, dtype=np.int64), grid))
        return shapely.normalize(parts[0] if len(parts) == 1 else shapely.MultiPolygon(parts))
    m = mask.astype(np.uint8)
    vals, polys = _polygons_from_shapes(
        features.shapes(m, mask=m.astype(bool), transform=grid.transform)
    )
    polys = polys[vals == 1]
    if not len(polys):
        return shapely.Polygon()
    return shapely.union_all(polys)


def label_regions(
    mask: np.ndarray,
    *,
    diagonal: bool = False,
    chunks: int | tuple[int, int] | None = None,
    client: Any = None,
) -> tuple[np.ndarray, int]:
    """Connected regions of ``mask`` (4-connected, or 8 with ``diagonal``): labels 1..n, 0 outside.

    Regions are numbered in the raster order of their first cell (row by row), as
    :func:`scipy.ndimage.label` numbers them. With ``chunks`` or a Dask ``client`` the mask is
    labelled tile by tile (see the module's notes), with identical labels.
    """
    if chunks is not None or client is not None:
        regions = tiled_regions(
            mask, diagonal=diagonal, chunks=chunks, client=client, with_labels=True
        )
        return regions.labels, regions.n
    from scipy import ndimage

    structure = np.ones((3, 3), dtype=bool) if diagonal else None
    labels, n = ndimage.label(mask, structure=structure)
    return labels.astype(np.int32), int(n)


def polygonize_labels(
    labels: np.ndarray,
    grid: GridSpec,
    n: int,
    *,
    chunks: int | tuple[int, int] | None = None,
    client: Any = None,
) -> gpd.GeoDataFrame:
    """One (Multi)Polygon per label 1..n, in label order (column ``label``).

    With ``chunks`` or a Dask ``client`` the polygons are normalized and equal the whole-grid
    ones topologically: traced on the whole grid at once in this process, or polygonized tile
    by tile on the client's workers (see the module's notes). A label may cover several
    regions.
    """
    if labels.shape != grid.shape:
        raise ValueError(f"labels shape {labels.shape} does not match grid shape {grid.shape}")
    if client is None and chunks is not None:
        _chunk_shape(chunks)  # (checked, not used)
        geoms, _, values, _ = _traced(np.asarray(labels, dtype=np.int32))
        out = _grouped(geoms, values, np.arange(1, n + 1), grid)
    elif client is not None:
        boxes = _chunk_boxes(labels.shape, chunks)
        payloads = [(labels[r0:r1, c0:c1].astype(np.int32),) for r0, r1, c0, c1 in boxes]
        parts = _map_chunks(_chunk_pieces, payloads, boxes, labels.shape, client)
        pieces = _Pieces(*(np.concatenate([p[i] for p in parts]) for i in range(3)))
        out = pieces.geometries(np.arange(1, n + 1), grid)
    else:
        geoms: list[list] = [[] for _ in range(n + 1)]
        lab = labels.astype(np.int32)
        vals, polys = _polygons_from_shapes(
            features.shapes(lab, mask=lab > 0, transform=grid.transform)
        )
        for v, g in zip(vals.tolist(), polys, strict=True):
            geoms[v].append(g)
        out = [shapely.union_all(g) if g else shapely.Polygon() for g in geoms[1:]]
    return gpd.GeoDataFrame({"label": np.arange(1, n + 1)}, geometry=out, crs=grid.crs)


@dataclass(frozen=True, eq=False)
class Regions:
    """Connected regions of a mask found tile by tile (:func:`tiled_regions`).

    Attributes
    ----------
    n
        Number of regions; they are numbered 1..n as :func:`label_regions` numbers them.
    cells
        Cells per region (``cells[k]`` for region ``k + 1``), int64.
    weights
        Sum of the weights per region (float64), None without weights.
    labels
        The label raster (int32, 0 outside), when asked for with ``with_labels``.
    """

    n: int
    cells: np.ndarray
    weights: np.ndarray | None
    labels: np.ndarray | None
    #: the regions' polygons (pixel coordinates: pieces from the chunks, or traced on the
    #: whole mask), when asked for with ``polygons``
    pieces: _Pieces | _TracedRegions | None

    def polygons(self, labels: np.ndarray, grid: GridSpec) -> np.ndarray:
        """The (Multi)Polygon of each region in ``labels`` (1-based), in ``grid``'s CRS.

        Normalized geometries; topologically equal to :func:`polygonize_labels` on the whole
        label raster.
        """
        if self.pieces is None:
            raise ValueError("these regions were found without polygons: pass polygons=True")
        return self.pieces.geometries(np.asarray(labels), grid)


def tiled_regions(
    mask: np.ndarray,
    *,
    weights: np.ndarray | None = None,
    diagonal: bool = False,
    chunks: int | tuple[int, int] | None = None,
    client: Any = None,
    polygons: bool = False,
    with_labels: bool = False,
) -> Regions:
    """Connected regions of ``mask`` found tile by tile, with per-region cell counts and sums.

    Parameters
    ----------
    mask
        Boolean raster.
    weights
        Optional raster of the same shape (e.g. persons per cell, finite) summed per region.
    diagonal
        8-connected regions (cells touching at a corner are joined), else 4-connected.
    chunks
        Chunk shape (rows, columns), or one number for square chunks;
        :data:`DEFAULT_CHUNKS` when None.
    client
        A Dask ``distributed.Client`` (duck-typed: ``scatter``, ``submit``, ``gather``): each
        chunk of the inputs is scattered to a worker once and labelled (and polygonized) there.
        Without one the chunks are processed one after the other in this process.
    polygons
        Also polygonize the regions (:meth:`Regions.polygons`): per chunk on the client's
        workers, or, in this process, traced on the whole mask once the regions are known.
    with_labels
        Also assemble the label raster (:attr:`Regions.labels`), identical to
        :func:`label_regions` on the whole mask.
    """
    mask = np.asarray(mask, dtype=bool)
    if weights is not None and np.shape(weights) != mask.shape:
        raise ValueError(
            f"weights shape {np.shape(weights)} does not match mask shape {mask.shape}"
        )
    t0 = time.perf_counter()
    boxes = _chunk_boxes(mask.shape, chunks)
    # what a worker gets of a chunk: the mask's bits, and the weights of its cells in the mask
    # (in the chunk's row-major order: the order in which a whole-chunk bincount adds them)
    payloads = []
    for r0, r1, c0, c1 in boxes:
        m = mask[r0:r1, c0:c1]
        w = None if weights is None else np.asarray(weights[r0:r1, c0:c1], dtype=np.float64)[m]
        payloads.append((np.packbits(m, axis=None), w))
    # in this process the polygons are traced on the whole mask at once, after the regions
    opts = (diagonal, polygons and client is not None, with_labels)
    parts = _map_chunks(_chunk_regions, payloads, boxes, mask.shape, client, opts)
    del payloads  # (the weights of the regions' cells: not held while the polygons are traced)
    t1 = time.perf_counter()
    counts = np.array([p["n"] for p in parts], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(counts)[:-1]])
    final, n = _merge(parts, boxes, offsets, int(counts.sum()), mask.shape, diagonal)
    prov_cells = np.concatenate([[0], *(p["cells"] for p in parts)])
    cells = np.bincount(final, weights=prov_cells, minlength=n + 1)[1:].astype(np.int64)
    sums = None
    if weights is not None:
        prov_sums = np.concatenate([[0.0], *(p["sums"] for p in parts)])
        sums = np.bincount(final, weights=prov_sums, minlength=n + 1)[1:]
    labels = None
    if with_labels:
        labels = np.zeros(mask.shape, dtype=np.int32)
        for (r0, r1, c0, c1), p, off in zip(boxes, parts, offsets, strict=True):
            loc = p["labels"]
            labels[r0:r1, c0:c1] = np.where(loc > 0, final[loc + off], 0)
    pieces: _Pieces | _TracedRegions | None = None
    if polygons and client is None:
        pieces = _TracedRegions.of(mask, diagonal=diagonal, n=n)
    elif polygons:
        keys = np.concatenate(
            [final[p["piece_label"] + off] for p, off in zip(parts, offsets, strict=True)]
        )
        pieces = _Pieces(
            keys,
            np.concatenate([p["pieces"] for p in parts]),
            np.concatenate([p["on_border"] for p in parts]),
        )
    log.debug(
        "tiled regions: %d chunks (%s) in %.2f s, %d regions merged in %.2f s",
        len(boxes),
        "in-process" if client is None else "on the cluster",
        t1 - t0,
        n,
        time.perf_counter() - t1,
    )
    return Regions(n=n, cells=cells, weights=sums, labels=labels, pieces=pieces)


# -- chunks ---------------------------------------------------------------------------------


def _chunk_boxes(
    shape: tuple[int, int], chunks: int | tuple[int, int] | None
) -> list[tuple[int, int, int, int]]:
    """The chunks ``(row0, row1, col0, col1)`` of a grid of ``shape``, row by row."""
    rows, cols = _chunk_shape(chunks)
    h, w = shape
    return [
        (r0, min(r0 + rows, h), c0, min(c0 + cols, w))
        for r0 in range(0, h, rows)
        for c0 in range(0, w, cols)
    ]


def _chunk_shape(chunks: int | tuple[int, int] | None) -> tuple[int, int]:
    """The checked chunk shape (rows, columns): :data:`DEFAULT_CHUNKS` for None."""
    if chunks is None:
        chunks = DEFAULT_CHUNKS
    ch = (chunks, chunks) if np.ndim(chunks) == 0 else tuple(chunks)
    if len(ch) != 2 or not all(
        isinstance(c, int | np.integer) and not isinstance(c, bool) and c > 0 for c in ch
    ):
        raise ValueError(
            f"chunks must be a positive number of cells or (rows, columns), got {chunks!r}"
        )
    return ch[0], ch[1]


def _map_chunks(fn, payloads: list[tuple], boxes, shape, client, opts: tuple = ()) -> list:
    """``fn(*payload, box, shape, *opts)`` for every chunk: in order here, or on the workers.

    With a client whose workers share this machine's files (a local cluster), each chunk's
    arrays are written to a file that its task maps, and its result comes back the same way
    (:mod:`telcoplan.gis.cluster_io`: a worker killed loses only its tasks, which Dask runs
    again); otherwise each chunk's arrays are scattered once (to one worker) and the task runs
    where they are (:func:`~telcoplan.gis.cluster_io.run_tasks`). When the cluster fails, the
    chunks not done yet are sent again (:data:`_CLUSTER_ATTEMPTS` times in all). Results come
    back in chunk order.
    """
    if client is None:
        return [fn(*p, b, shape, *opts) for p, b in zip(payloads, boxes, strict=True)]
    from telcoplan.gis.cluster_io import run_tasks

    results = dict(
        run_tasks(
            client,
            _apply,
            [(fn, b, shape, opts) for b in boxes],
            inputs=payloads,
            name="telcoplan-chunks",
            label="chunks",
            attempts=_CLUSTER_ATTEMPTS,
            scatter_attempts=1,
            scatter_timeout_s=_SCATTER_TIMEOUT_S,
        )
    )
    return [results[i] for i in range(len(boxes))]


def _apply(payload: tuple, fn, box, shape, opts: tuple):
    """(on a worker) ``fn`` on one chunk's payload."""
    return fn(*payload, box, shape, *opts)


def _chunk_regions(
    bits: np.ndarray,
    weights: np.ndarray | None,
    box: tuple[int, int, int, int],
    shape: tuple[int, int],
    diagonal: bool,
    polygons: bool,
    with_labels: bool,
) -> dict[str, Any]:
    """(on a worker) One chunk's regions: local labels, first cells, counts, sums, edges, pieces.

    ``bits`` is the chunk's mask packed by :func:`numpy.packbits`; ``weights`` are the weights
    of its true cells in row-major order.
    """
    from scipy import ndimage

    r0, r1, c0, c1 = box
    size = (r1 - r0) * (c1 - c0)
    mask = np.unpackbits(bits, count=size).reshape(r1 - r0, c1 - c0).view(bool)
    structure = np.ones((3, 3), dtype=bool) if diagonal else None
    labels, n = ndimage.label(mask, structure=structure)
    labels = labels.astype(np.int32)
    flat = labels.ravel()
    w = labels.shape[1]
    first = _first_cells(labels, int(n))
    out: dict[str, Any] = {
        "n": int(n),
        # the region's first cell as a position in the whole grid, row-major
        "first": (r0 + first // w) * shape[1] + c0 + first % w,
        "cells": np.bincount(flat, minlength=n + 1)[1:],
        "edges": (labels[0].copy(), labels[-1].copy(), labels[:, 0].copy(), labels[:, -1].copy()),
        "labels": labels if with_labels else None,
    }
    if weights is not None:
        out["sums"] = np.bincount(flat[flat > 0], weights=weights, minlength=n + 1)[1:]
    if polygons:
        out["piece_label"], out["pieces"], out["on_border"] = _chunk_pieces(labels, box, shape)
    return out


def _first_cells(labels: np.ndarray, n: int) -> np.ndarray:
    """Position (in ``labels`` flattened, row-major) of the first cell of each label 1..n.

    Each label's first cell lies in the first row of its bounding box
    (:func:`scipy.ndimage.find_objects`, one pass): only those rows are searched.
    """
    from scipy import ndimage

    if n == 0:
        return np.zeros(0, dtype=np.int64)
    w = labels.shape[1]
    top = np.array([s[0].start for s in ndimage.find_objects(labels, max_label=n)], np.int64)
    rows = np.unique(top)
    sub = labels[rows]
    nz = np.flatnonzero(sub)
    vals = sub.ravel()[nz]
    at = rows[nz // w]  # the grid row of each cell of ``sub``
    own = top[vals - 1] == at  # cells in their label's first row
    nz, vals, at = nz[own], vals[own], at[own]
    # scipy numbers labels in the order of their first cell: each label first appears where
    # the running maximum steps up (checked; np.unique otherwise)
    peak = np.maximum.accumulate(vals)
    steps = np.flatnonzero(np.diff(peak, prepend=0))
    if len(steps) != n or peak[steps[-1]] != n:
        _, steps = np.unique(vals, return_index=True)
    return at[steps] * w + nz[steps] % w


def _chunk_pieces(
    labels: np.ndarray, box: tuple[int, int, int, int], shape: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(on a worker) The chunk's 4-connected polygons of equal label, in pixel coordinates
    (x = column, y = row of the whole grid): their labels, geometries, and whether each
    touches an inner chunk border (then it is a piece of a larger polygon)."""
    from affine import Affine

    r0, _, c0, _ = box
    lab = np.asarray(labels, dtype=np.int32)
    shapes = features.shapes(lab, mask=lab > 0, transform=Affine(1, 0, c0, 0, 1, r0))
    vals, geoms = _polygons_from_shapes(shapes)
    return vals, geoms, _on_border(geoms, box, shape)


def _chunk_mask_pieces(
    bits: np.ndarray, box: tuple[int, int, int, int], shape: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """(on a worker) The 4-connected polygons of the chunk's true cells (``bits``: its mask
    packed by :func:`numpy.packbits`), in pixel coordinates, and whether each touches an inner
    chunk border."""
    from affine import Affine

    r0, r1, c0, c1 = box
    mask = np.unpackbits(bits, count=(r1 - r0) * (c1 - c0)).reshape(r1 - r0, c1 - c0)
    shapes = features.shapes(mask, mask=mask.view(bool), transform=Affine(1, 0, c0, 0, 1, r0))
    _, geoms = _polygons_from_shapes(shapes)
    return geoms, _on_border(geoms, box, shape)


def _on_border(
    geoms: np.ndarray, box: tuple[int, int, int, int], shape: tuple[int, int]
) -> np.ndarray:
    """Whether each polygon (pixel coordinates) of chunk ``box`` touches an inner chunk border."""
    r0, r1, c0, c1 = box
    b = shapely.bounds(geoms).reshape(-1, 4)
    h, w = shape
    return (
        ((b[:, 0] == c0) & (c0 > 0))
        | ((b[:, 2] == c1) & (c1 < w))
        | ((b[:, 1] == r0) & (r0 > 0))
        | ((b[:, 3] == r1) & (r1 < h))
    )


def _polygons_from_shapes(shapes) -> tuple[np.ndarray, np.ndarray]:
    """The values (int64) and Polygons of :func:`rasterio.features.shapes`' GeoJSON polygons,
    built at once from their coordinates (the same polygons as :func:`shapely.geometry.shape`
    on each, ~50 times faster)."""
    vals, rings_per_polygon, ring_sizes, rings = [], [], [], []
    for g, v in shapes:
        vals.append(int(v))
        coords = g["coordinates"]
        rings_per_polygon.append(len(coords))
        ring_sizes += map(len, coords)
        rings += coords
    if not vals:
        return np.zeros(0, dtype=np.int64), np.empty(0, dtype=object)
    n_xy = sum(ring_sizes)
    xy = np.fromiter(chain.from_iterable(chain.from_iterable(rings)), np.float64, count=2 * n_xy)
    offsets = (
        np.concatenate([[0], np.cumsum(ring_sizes)]),
        np.concatenate([[0], np.cumsum(rings_per_polygon)]),
    )
    geoms = shapely.from_ragged_array(shapely.GeometryType.POLYGON, xy.reshape(-1, 2), offsets)
    return np.array(vals, dtype=np.int64), geoms


# -- merging in the driver ------------------------------------------------------------------


def _merge(parts, boxes, offsets, total: int, shape, diagonal: bool) -> tuple[np.ndarray, int]:
    """Map provisional ids 0..total (0: background) to the final labels, and their count."""
    from scipy import sparse
    from scipy.sparse.csgraph import connected_components

    h, w = shape
    row_starts = sorted({b[0] for b in boxes} - {0})
    col_starts = sorted({b[2] for b in boxes} - {0})
    above = {r: np.zeros(w, np.int64) for r in row_starts}  # last row above the boundary
    below = {r: np.zeros(w, np.int64) for r in row_starts}  # first row below it
    left = {c: np.zeros(h, np.int64) for c in col_starts}
    right = {c: np.zeros(h, np.int64) for c in col_starts}
    for (r0, r1, c0, c1), p, off in zip(boxes, parts, offsets, strict=True):
        top, bottom, west, east = (np.where(e > 0, e + off, 0) for e in p["edges"])
        if r0 in below:
            below[r0][c0:c1] = top
        if r1 in above:
            above[r1][c0:c1] = bottom
        if c0 in right:
            right[c0][r0:r1] = west
        if c1 in left:
            left[c1][r0:r1] = east
    pairs = [_pairs(above[r], below[r], diagonal) for r in row_starts]
    pairs += [_pairs(left[c], right[c], diagonal) for c in col_starts]
    a = np.concatenate([np.zeros(0, np.int64), *(p[0] for p in pairs)]) - 1
    b = np.concatenate([np.zeros(0, np.int64), *(p[1] for p in pairs)]) - 1
    graph = sparse.coo_matrix((np.ones(len(a), np.int8), (a, b)), shape=(total, total))
    n, comp = connected_components(graph, directed=False)
    # number the regions by their first cell in the whole grid, as scipy does
    first = np.concatenate([np.zeros(0, np.int64), *(p["first"] for p in parts)])
    comp_first = np.full(n, np.iinfo(np.int64).max)
    np.minimum.at(comp_first, comp, first)
    number = np.empty(n, dtype=np.int64)
    number[np.argsort(comp_first, kind="stable")] = np.arange(1, n + 1)
    final = np.zeros(total + 1, dtype=np.int64)
    final[1:] = number[comp]
    return final, int(n)


def _pairs(u: np.ndarray, v: np.ndarray, diagonal: bool) -> tuple[np.ndarray, np.ndarray]:
    """Neighbouring (id in ``u``, id in ``v``) pairs of two adjacent lines of cells."""
    shifts = [(u, v)]
    if diagonal:
        shifts += [(u[:-1], v[1:]), (u[1:], v[:-1])]
    a = np.concatenate([x[(x > 0) & (y > 0)] for x, y in shifts])
    b = np.concatenate([y[(x > 0) & (y > 0)] for x, y in shifts])
    return a, b


@dataclass(frozen=True, eq=False)
class _Pieces:
    """Polygon pieces from the chunks (pixel coordinates) with their region labels."""

    keys: np.ndarray
    geoms: np.ndarray
    on_border: np.ndarray

    def geometries(self, wanted: np.ndarray, grid: GridSpec) -> np.ndarray:
        """The (Multi)Polygon, in ``grid``'s CRS, of each label in ``wanted`` (normalized)."""
        order = np.argsort(self.keys, kind="stable")
        sorted_keys = self.keys[order]
        lo = np.searchsorted(sorted_keys, wanted, side="left")
        hi = np.searchsorted(sorted_keys, wanted, side="right")
        out = np.empty(len(wanted), dtype=object)
        for k, (i, j) in enumerate(zip(lo, hi, strict=True)):
            idx = order[i:j]
            whole = list(self.geoms[idx[~self.on_border[idx]]])
            cut = self.geoms[idx[self.on_border[idx]]]
            if len(cut):
                joined = shapely.get_parts(shapely.union_all(cut))
                whole += [_drop_straight_vertices(p) for p in joined]
            if not whole:
                out[k] = shapely.Polygon()
            else:
                out[k] = whole[0] if len(whole) == 1 else shapely.MultiPolygon(whole)
        return shapely.normalize(_to_grid_crs(out, grid))


def _drop_straight_vertices(poly: shapely.Polygon) -> shapely.Polygon:
    """``poly`` (axis-parallel edges) without the vertices in the middle of a straight edge."""
    rings = []
    for ring in (poly.exterior, *poly.interiors):
        xy = shapely.get_coordinates(ring)[:-1]
        before, after = np.roll(xy, 1, axis=0), np.roll(xy, -1, axis=0)
        straight = ((before[:, 0] == xy[:, 0]) & (xy[:, 0] == after[:, 0])) | (
            (before[:, 1] == xy[:, 1]) & (xy[:, 1] == after[:, 1])
        )
        rings.append(xy[~straight])
    return shapely.Polygon(rings[0], rings[1:])


def _to_grid_crs(geoms: np.ndarray, grid: GridSpec) -> np.ndarray:
    """Pixel coordinates (x = column, y = row) to the grid's CRS, with GDAL's arithmetic."""
    t = grid.transform

    def forward(xy: np.ndarray) -> np.ndarray:
        x, y = xy[:, 0], xy[:, 1]
        return np.column_stack([t.c + x * t.a + y * t.b, t.f + x * t.d + y * t.e])

    return shapely.transform(geoms, forward)


# -- the whole grid traced at once (in this process) ----------------------------------------


def _traced(
    values: np.ndarray, *, contacts: bool = False
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The 4-connected polygons of equal non-zero ``values``, traced on the whole grid at once
    (:mod:`telcoplan.gis._trace`), in pixel coordinates (x = column, y = row).

    Returns the polygons, in the raster order of their first cell; their ids (ascending in
    that order); their values; and, with ``contacts``, the pairs of ids of polygons touching at
    a corner (else none).
    """
    from telcoplan.gis._trace import find_runs, label_runs, trace_rings

    values = np.ascontiguousarray(values)
    row_start, c0, c1, run_value = find_runs(
        values.view(np.uint8) if values.dtype == np.bool_ else values
    )
    comp = label_runs(row_start, c0, c1, run_value)
    width = values.shape[1]
    x, y, starts, ring_comp, shell, pairs = trace_rings(row_start, c0, c1, comp, width, contacts)
    # rings grouped by component, the shell first (each shell comes before its holes)
    order = np.argsort(ring_comp, kind="stable")
    sizes = np.diff(starts)[order]
    new_starts = np.concatenate([[0], np.cumsum(sizes)])
    take = np.arange(new_starts[-1]) + np.repeat(starts[:-1][order] - new_starts[:-1], sizes)
    comp_sorted = ring_comp[order]
    first_ring = np.flatnonzero(np.diff(comp_sorted, prepend=0))
    if not shell[order][first_ring].all() or shell.sum() != len(first_ring):
        raise AssertionError("traced rings: a component without exactly one shell")
    ids = comp_sorted[first_ring].astype(np.int64)
    if not len(ids):
        geoms = np.empty(0, dtype=object)
    else:
        geoms = shapely.from_ragged_array(
            shapely.GeometryType.POLYGON,
            np.column_stack([x[take], y[take]]).astype(np.float64),
            (new_starts, np.append(first_ring, len(order))),
        )
    vals = run_value[ids - 1].astype(np.int64)
    return geoms, ids, vals, pairs.astype(np.int64)


def _grouped(geoms: np.ndarray, keys: np.ndarray, wanted: np.ndarray, grid: GridSpec) -> np.ndarray:
    """One geometry per key in ``wanted``, in ``grid``'s CRS, normalized: its polygons among
    ``geoms`` (pixel coordinates, keyed by ``keys``) as a Polygon (one), a MultiPolygon
    (several) or an empty Polygon (none)."""
    out = np.empty(len(wanted), dtype=object)
    out[:] = [shapely.Polygon()] * len(wanted)
    order = np.argsort(keys, kind="stable")
    sorted_keys = keys[order]
    lo = np.searchsorted(sorted_keys, wanted, side="left")
    count = np.searchsorted(sorted_keys, wanted, side="right") - lo
    one = count == 1
    out[one] = geoms[order[lo[one]]]
    many = np.flatnonzero(count > 1)
    if len(many):
        sizes = count[many]
        at = np.repeat(lo[many] - np.concatenate([[0], np.cumsum(sizes)[:-1]]), sizes)
        parts = geoms[order[at + np.arange(sizes.sum())]]
        out[many] = shapely.multipolygons(parts, indices=np.repeat(np.arange(len(many)), sizes))
    return shapely.normalize(_to_grid_crs(out, grid))


@dataclass(frozen=True, eq=False)
class _TracedRegions:
    """The polygons of a mask's regions, traced on the whole grid at once (pixel coordinates):
    what :class:`_Pieces` holds when the chunks are done in this process."""

    keys: np.ndarray
    geoms: np.ndarray

    @classmethod
    def of(cls, mask: np.ndarray, *, diagonal: bool, n: int) -> _TracedRegions:
        """The polygons of the ``n`` regions of ``mask`` (numbered as :func:`label_regions`
        numbers them): with ``diagonal``, the polygons touching at a corner are one region's."""
        from scipy import sparse
        from scipy.sparse.csgraph import connected_components

        geoms, ids, _, contacts = _traced(mask, contacts=diagonal)
        keys = np.arange(1, len(geoms) + 1)
        if len(contacts):
            a, b = np.searchsorted(ids, contacts.T)
            graph = sparse.coo_matrix((np.ones(len(a), np.int8), (a, b)), shape=(len(ids),) * 2)
            k, comp = connected_components(graph, directed=False)
            # numbered in the raster order of their first cell: their first polygon's
            first = np.full(k, len(ids))
            np.minimum.at(first, comp, np.arange(len(ids)))
            number = np.empty(k, dtype=np.int64)
            number[np.argsort(first)] = np.arange(1, k + 1)
            keys = number[comp]
        traced = int(keys.max()) if len(keys) else 0
        if traced != n:
            raise AssertionError(f"traced {traced} regions where the chunks found {n}")
        return cls(keys, geoms)

    def geometries(self, wanted: np.ndarray, grid: GridSpec) -> np.ndarray:
        """The (Multi)Polygon, in ``grid``'s CRS, of each region in ``wanted`` (normalized)."""
        return _grouped(self.geoms, self.keys, np.asarray(wanted), grid)
