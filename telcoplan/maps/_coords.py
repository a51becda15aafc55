"""GeoJSON coordinates written as JSON text from arrays, for the map's GeoJSON layers.

:func:`coordinates_json` gives, for each geometry, the text that
``json.dumps(shapely.geometry.mapping(geom)["coordinates"])`` gives — the same bytes — without
a Python float or list per vertex: the digits of every coordinate are computed at once and
the page's text is cut out of one byte array (a national backbone's 560,000 vertices: 0.4 s
rather than 1.6 s of ``mapping`` and ``json`` encoding).

Why the digits are the same: the map's coordinates are rounded to 1e-5 degree
(``telcoplan.maps._web.to_web``), so each is the double nearest to ``k / 100000`` for an
integer ``k``. Python writes a float as the shortest decimal that reads back as the same
double; no decimal with fewer digits lies within half a unit in the last place of ``k /
100000`` (1e-5 apart, where doubles below 1e10 are far closer), so that text is ``k / 100000``
itself, its trailing zeros dropped (``12.5``, ``-0.1``, ``105.0``). Python switches to an
exponent below 1e-4 (``5e-05``) and from 1e16; such numbers, and any coordinate that is not a
multiple of 1e-5, make their geometry's text None (the caller encodes that geometry itself), as
do other geometry types than Point, LineString, Polygon and their multi forms (MultiPoint
included), empty parts and Z coordinates.
"""

from __future__ import annotations

import numpy as np
import shapely

__all__ = ["coordinates_json"]

#: Geometry types written here (shapely type ids): Point, LineString, Polygon,
#: MultiLineString, MultiPolygon; of them the multi and the polygonal ones.
_KINDS = (0, 1, 3, 5, 6)
_MULTI = (5, 6)
_POLYGONAL = (3, 6)
#: Decimal places of the map's coordinates.
_DECIMALS = 5
#: Vertices written at a time (a few MB of temporaries).
_CHUNK = 1 << 16


def coordinates_json(geoms: np.ndarray) -> list[str | None]:
    """``json.dumps(mapping(g)["coordinates"])`` of each of ``geoms`` (coordinates multiples of
    1e-5), or None where the geometry is not written here (see the module's notes)."""
    geoms = np.asarray(geoms, dtype=object)
    out: list[str | None] = [None] * len(geoms)
    kind = shapely.get_type_id(geoms)
    ok = np.isin(kind, _KINDS) & ~shapely.is_empty(geoms) & ~shapely.has_z(geoms)
    parts, owner = shapely.get_parts(geoms[ok], return_index=True)
    where = np.flatnonzero(ok)
    bad = np.unique(owner[shapely.is_empty(parts)])
    if len(bad):  # an empty part: mapping() keeps it as an empty list
        ok[where[bad]] = False
        parts, owner = shapely.get_parts(geoms[ok], return_index=True)
        where = np.flatnonzero(ok)
    if not len(parts):
        return out
    texts, numbers_ok = _write(geoms[ok], kind[ok], parts, owner)
    for g, text, good in zip(where.tolist(), texts, numbers_ok.tolist(), strict=True):
        if good:
            out[g] = text
    return out


def _write(
    geoms: np.ndarray, kind: np.ndarray, parts: np.ndarray, owner: np.ndarray
) -> tuple[list[str], np.ndarray]:
    """The text of each of ``geoms`` (``parts`` their parts, ``owner`` the geometry of each
    part) and whether its numbers could be written here."""
    # sequences of vertices: the rings of polygons, the parts themselves otherwise, in order
    polygon = shapely.get_type_id(parts) == 3
    rings, ring_part = shapely.get_rings(parts[polygon], return_index=True)
    seq_part = np.concatenate([np.flatnonzero(polygon)[ring_part], np.flatnonzero(~polygon)])
    seqs = np.concatenate([rings, parts[~polygon]])
    order = np.argsort(seq_part, kind="stable")
    seq_part, seqs = seq_part[order], seqs[order]
    seq_geom = owner[seq_part]
    is_multi = np.isin(kind, _MULTI)[seq_geom]
    polygonal = np.isin(kind, _POLYGONAL)[seq_geom]
    first_of_part = np.r_[True, seq_part[1:] != seq_part[:-1]]
    last_of_part = np.r_[seq_part[1:] != seq_part[:-1], True]
    first_part = np.r_[True, owner[1:] != owner[:-1]][seq_part]
    last_part = np.r_[owner[1:] != owner[:-1], True][seq_part]
    bracket = (kind[seq_geom] != 0).astype(np.int64)  # a point is [x, y] alone
    opens = bracket + (first_of_part & polygonal) + (first_of_part & first_part & is_multi)
    closes = bracket + (last_of_part & polygonal) + (last_of_part & last_part & is_multi)

    count = shapely.get_num_coordinates(seqs)
    xy = shapely.get_coordinates(seqs)
    n = len(xy)
    starts = np.concatenate([[0], np.cumsum(count)[:-1]])
    ends = starts + count - 1
    v_open = np.zeros(n, dtype=np.int64)
    v_close = np.zeros(n, dtype=np.int64)
    v_open[starts] = opens
    v_close[ends] = closes
    sep = np.ones(n, dtype=bool)
    sep[starts[np.r_[True, seq_geom[1:] != seq_geom[:-1]]]] = False  # a geometry's first vertex
    v_geom = np.repeat(seq_geom, count)

    scaled = np.rint(xy * 10.0**_DECIMALS)
    exact = (scaled / 10.0**_DECIMALS == xy) & (np.abs(xy) < 1e10)
    exact &= (xy == 0) | (np.abs(xy) >= 1e-4)
    good = np.ones(len(geoms), dtype=bool)
    good[v_geom[~exact.all(axis=1)]] = False
    scaled[~exact] = 0.0
    k = np.abs(scaled).astype(np.int64)
    negative = np.signbit(xy) & exact

    pieces, lengths = [], []
    for a in range(0, n, _CHUNK):
        b = min(a + _CHUNK, n)
        text, length = _rows(k[a:b], negative[a:b], sep[a:b], v_open[a:b], v_close[a:b])
        pieces.append(text)
        lengths.append(length)
    text = b"".join(pieces)
    offset = np.concatenate([[0], np.cumsum(np.concatenate(lengths))])
    vertex_start = np.concatenate([[0], np.cumsum(np.bincount(v_geom, minlength=len(geoms)))])
    cut = offset[vertex_start].tolist()
    return [text[cut[i] : cut[i + 1]].decode("ascii") for i in range(len(geoms))], good


def _rows(
    k: np.ndarray, negative: np.ndarray, sep: np.ndarray, opens: np.ndarray, closes: np.ndarray
) -> tuple[bytes, np.ndarray]:
    """The text of vertices: ``", "`` (``sep``), ``opens`` × ``[``, ``[x, y]``, ``closes`` ×
    ``]``, each number ``±k / 10⁵`` (``k`` ≥ 0, an (n, 2) integer array) written as Python's
    ``repr``; returns the bytes and each vertex's length."""
    n = len(k)
    whole, frac = np.divmod(k, 10**_DECIMALS)
    digits = max(1, len(str(int(whole.max())))) if n else 1
    width = 1 + digits + 1 + _DECIMALS  # sign, integer digits, point, decimals
    # each number: its characters and which of them are written
    chars = np.empty((n, 2, width), dtype=np.uint8)
    keep = np.zeros((n, 2, width), dtype=bool)
    chars[:, :, 0] = ord("-")
    keep[:, :, 0] = negative
    ndig = np.ones(whole.shape, dtype=np.int64)
    for j in range(1, digits):
        ndig += whole >= 10**j
    for j in range(digits):
        chars[:, :, 1 + j] = ord("0") + (whole // 10 ** (digits - 1 - j)) % 10
        keep[:, :, 1 + j] = j >= digits - ndig
    chars[:, :, 1 + digits] = ord(".")
    keep[:, :, 1 + digits] = True
    zeros = np.zeros(frac.shape, dtype=np.int64)  # trailing zeros of the decimals
    for j in range(1, _DECIMALS + 1):
        zeros += frac % 10**j == 0
    shown = np.maximum(1, _DECIMALS - zeros)
    for j in range(_DECIMALS):
        chars[:, :, 2 + digits + j] = ord("0") + (frac // 10 ** (_DECIMALS - 1 - j)) % 10
        keep[:, :, 2 + digits + j] = j < shown
    # the row: ", " "[[[" "[" x ", " y "]" "]]]"
    row = np.empty((n, 2 + 3 + 1 + width + 2 + width + 1 + 3), dtype=np.uint8)
    mask = np.zeros(row.shape, dtype=bool)
    c = 0
    for text, on in (
        (b", ", np.repeat(sep[:, None], 2, axis=1)),
        (b"[[[", np.arange(3)[None, :] < opens[:, None]),
        (b"[", np.ones((n, 1), dtype=bool)),
        (None, 0),
        (b", ", np.ones((n, 2), dtype=bool)),
        (None, 1),
        (b"]", np.ones((n, 1), dtype=bool)),
        (b"]]]", np.arange(3)[None, :] < closes[:, None]),
    ):
        if text is None:
            row[:, c : c + width] = chars[:, on]
            mask[:, c : c + width] = keep[:, on]
            c += width
        else:
            row[:, c : c + len(text)] = np.frombuffer(text, dtype=np.uint8)
            mask[:, c : c + len(text)] = on
            c += len(text)
    return row[mask].tobytes(), mask.sum(axis=1)
