"""PostGIS rasters as plan layers: a raster table (``raster2pgsql``'s tiles) or a query's raster
column read into a GeoTIFF held in memory, then warped onto the plan grid like a file.

GDAL's PostGISRaster driver is not in the rasterio wheels, and ``ST_AsGDALRaster`` needs a GDAL
driver that PostGIS disables by default (``postgis.gdal_enabled_drivers``, a superuser's
setting). So the tiles travel as raster WKB (``ST_AsBinary(rast)``, no GDAL in the database),
are parsed here (:func:`tile_from_wkb`, the format of PostGIS' ``raster/doc/RFC2-WellKnownBinaryFormat``)
and laid side by side on their common pixel grid (:func:`mosaic`). Only the tiles that
intersect the plan grid's extent (in the raster's SRID, plus :data:`MARGIN_CELLS` source cells
for the resampling kernels) are read, and the mosaic is cut to that extent. Queries run in a
read-only transaction; the password never leaves libpq (see :mod:`telcoplan.gis.postgis`).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import math
import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from telcoplan.errors import CRSError, DatabaseError
from telcoplan.gis._database import crs_of_srid, psycopg_module, quoted, reason, resolve_table
from telcoplan.gis.postgis import connect, redact

if TYPE_CHECKING:
    import psycopg

    from telcoplan.gis.grid import GridSpec
    from telcoplan.gis.raster import MemoryRaster

log = logging.getLogger(__name__)

__all__ = [
    "ALIGNMENT_TOLERANCE",
    "MARGIN_CELLS",
    "Tile",
    "mosaic",
    "read_postgis_raster",
    "source_kind",
    "tile_from_wkb",
]

#: Source cells read beyond the plan grid's extent on each side: the reach of the resampling
#: kernels (bilinear 1 cell, cubic 2, Lanczos 3) plus one for the extent's rounding.
MARGIN_CELLS = 4

#: How far (in cells) a tile's corner may lie from a cell edge of the raster's grid and still be
#: on it: corners are stored as doubles (``raster2pgsql``/``ST_Tile`` compute them as the origin
#: plus a multiple of the cell size), so they are a rounding, not a cell fraction, off.
ALIGNMENT_TOLERANCE = 1e-6

#: PostGIS pixel types (``ST_BandPixelType``) by code: name and numpy type. 1-, 2- and 4-bit
#: pixels take a byte each in WKB.
PIXEL_TYPES = {
    0: ("1BB", "u1"), 1: ("2BUI", "u1"), 2: ("4BUI", "u1"), 3: ("8BSI", "i1"), 4: ("8BUI", "u1"),
    5: ("16BSI", "i2"), 6: ("16BUI", "u2"), 7: ("32BSI", "i4"), 8: ("32BUI", "u4"),
    10: ("32BF", "f4"), 11: ("64BF", "f8"),
}  # fmt: skip
_HEADER = (
    "BHHddddddiHH"  # endianness, version, bands, scale x/y, upper left x/y, skew x/y, srid, w, h
)
_OFFLINE, _HAS_NODATA = 0x80, 0x40


@dataclass(frozen=True)
class Tile:
    """Band 1 of a raster tile as parsed from WKB: georeferencing (GDAL's geotransform order:
    upper left x, scale x, skew x, upper left y, skew y, scale y), SRID, band count, pixel
    type name, nodata value (None: none) and the pixels (``height × width``)."""

    transform: tuple[float, float, float, float, float, float]
    srid: int
    bands: int
    pixel_type: str
    nodata: float | None
    data: np.ndarray


def tile_from_wkb(wkb: bytes) -> Tile:
    """Parse a raster's WKB (``ST_AsBinary(rast)``): its georeferencing and band 1.

    Raises :class:`ValueError` for bytes that are not raster WKB, a raster without bands,
    a pixel type numpy has no type for, or an out-db band (its pixels live in a file on the
    database server)."""
    wkb = bytes(wkb)
    if len(wkb) < 61 or wkb[0] not in (0, 1):
        raise ValueError("not raster WKB (too short, or no byte-order mark)")
    order = "<" if wkb[0] == 1 else ">"
    _, version, bands, sx, sy, ulx, uly, kx, ky, srid, width, height = struct.unpack_from(
        order + _HEADER, wkb, 0
    )
    if version != 0:
        raise ValueError(f"raster WKB version {version}; only version 0 is known")
    if bands < 1:
        raise ValueError("the raster has no band")
    flags = wkb[61]
    code = flags & 0x0F
    if code not in PIXEL_TYPES:
        raise ValueError(f"band 1 has pixel type code {code}, which is not read")
    name, kind = PIXEL_TYPES[code]
    dtype = np.dtype(kind).newbyteorder(order)
    if flags & _OFFLINE:
        raise ValueError(
            "band 1 is stored out of the database (raster2pgsql -R): its pixels are in a file "
            "on the server; load the raster into the database (raster2pgsql without -R)"
        )
    nodata = np.frombuffer(wkb, dtype, 1, 62)[0].item()
    start = 62 + dtype.itemsize
    count = int(width) * int(height)
    if len(wkb) < start + count * dtype.itemsize:
        raise ValueError("raster WKB ends before its pixels do")
    pixels = np.frombuffer(wkb, dtype, count, start).astype(dtype.newbyteorder("="))
    return Tile(
        transform=(ulx, sx, kx, uly, ky, sy),
        srid=int(srid),
        bands=int(bands),
        pixel_type=name,
        nodata=float(nodata) if flags & _HAS_NODATA else None,
        data=pixels.reshape(int(height), int(width)),
    )


def mosaic(
    tiles: Sequence[Tile], window: tuple[float, float, float, float] | None = None
) -> tuple[np.ndarray, tuple[float, float, float, float, float, float], float | None]:
    """Tiles of one raster laid on their common pixel grid: the pixels, the geotransform and
    the nodata value; cut to the cells that ``window`` (xmin, ymin, xmax, ymax) touches.

    Cells no tile covers are nodata (a raster without a nodata value gets one: NaN, the
    pixels then float64). Where tiles overlap, the later tile wins. Raises :class:`ValueError`
    when the tiles differ in cell size, rotation, pixel type or nodata value, are rotated,
    or do not share their cell edges (``ST_SameAlignment``)."""
    first = tiles[0]
    ulx0, sx, kx, uly0, ky, sy = first.transform
    if kx or ky:
        raise ValueError(
            "the raster is rotated (skew ≠ 0); give it north up (ST_Rescale, or gdalwarp "
            "before loading it)"
        )
    offsets = []
    for t in tiles:
        ulx, tsx, tkx, uly, tky, tsy = t.transform
        if not (math.isclose(tsx, sx, rel_tol=1e-9) and math.isclose(tsy, sy, rel_tol=1e-9)):
            raise ValueError(
                f"the tiles have different cell sizes ({sx:g} x {sy:g} and {tsx:g} x {tsy:g}); "
                "read one resolution (a query: sql: SELECT rast FROM … WHERE …)"
            )
        if tkx or tky:
            raise ValueError("a tile is rotated (skew ≠ 0); give the raster north up")
        if t.pixel_type != first.pixel_type or not _same_nodata(t.nodata, first.nodata):
            raise ValueError(
                f"the tiles' band 1 differ in pixel type or nodata ({first.pixel_type}, "
                f"nodata {first.nodata} and {t.pixel_type}, nodata {t.nodata})"
            )
        col, row = _cells(ulx - ulx0, sx), _cells(uly - uly0, sy)
        if col is None or row is None:
            raise ValueError(
                "the tiles do not share their cell edges (ST_SameAlignment is false); load "
                "the raster as one grid (raster2pgsql -t WxH) or align them (ST_Resample)"
            )
        offsets.append((row, col))
    top = r0 = min(r for r, _ in offsets)
    left = c0 = min(c for _, c in offsets)
    # the cell edges are measured from stored corners of tiles on the first row and column
    # (the mosaic's exactly, when the window does not cut it), not from the first tile's
    x_left = next(t.transform[0] for (_, c), t in zip(offsets, tiles, strict=True) if c == left)
    y_top = next(t.transform[3] for (r, _), t in zip(offsets, tiles, strict=True) if r == top)
    r1 = max(r + t.data.shape[0] for (r, _), t in zip(offsets, tiles, strict=True))
    c1 = max(c + t.data.shape[1] for (_, c), t in zip(offsets, tiles, strict=True))
    if window is not None:  # the cells the window touches
        cols = sorted(((window[0] - ulx0) / sx, (window[2] - ulx0) / sx))
        rows = sorted(((window[1] - uly0) / sy, (window[3] - uly0) / sy))
        r0, r1 = max(r0, math.floor(rows[0])), min(r1, math.ceil(rows[1]))
        c0, c1 = max(c0, math.floor(cols[0])), min(c1, math.ceil(cols[1]))
        r1, c1 = max(r1, r0), max(c1, c0)
    dtype, nodata = first.data.dtype, first.nodata
    covered = np.zeros((r1 - r0, c1 - c0), dtype=bool)
    out = np.zeros((r1 - r0, c1 - c0), dtype=dtype)
    for (r, c), t in zip(offsets, tiles, strict=True):
        h, w = t.data.shape
        a0, a1 = max(r, r0), min(r + h, r1)
        b0, b1 = max(c, c0), min(c + w, c1)
        if a0 < a1 and b0 < b1:
            out[a0 - r0 : a1 - r0, b0 - c0 : b1 - c0] = t.data[a0 - r : a1 - r, b0 - c : b1 - c]
            covered[a0 - r0 : a1 - r0, b0 - c0 : b1 - c0] = True
    if not covered.all():
        if nodata is None:
            out, nodata = out.astype(np.float64), math.nan
        out[~covered] = nodata
    transform = (x_left + (c0 - left) * sx, sx, 0.0, y_top + (r0 - top) * sy, 0.0, sy)
    return out, transform, nodata


def _cells(distance: float, size: float) -> int | None:
    """``distance`` in whole cells of ``size`` (signed), None when it is not a whole number
    to within :data:`ALIGNMENT_TOLERANCE`."""
    cells = distance / size
    whole = round(cells)
    return whole if abs(cells - whole) <= ALIGNMENT_TOLERANCE else None


def _same_nodata(a: float | None, b: float | None) -> bool:
    return a == b or (a is not None and b is not None and math.isnan(a) and math.isnan(b))


def source_kind(url: str, *, table: str | None = None, sql: str | None = None) -> str:
    """``"raster"`` when the table (``schema.table``) or the query's result has a PostGIS
    raster column, else ``"vector"`` (read by :func:`telcoplan.gis.postgis.read_postgis`)."""
    with _session(url) as (conn, where, oid):
        if oid is None:
            return "vector"
        _, types = _columns(conn, _source(conn, where, table, sql))
    return "raster" if oid in types else "vector"


@contextlib.contextmanager
def _session(url: str) -> Iterator[tuple[psycopg.Connection, str, int | None]]:
    """A read-only connection, the URL without password, the raster type's OID (None: no
    raster extension); any database error in the block becomes a :class:`DatabaseError`."""
    where = redact(url)
    psycopg = psycopg_module()
    with connect(url, read_only=True) as conn:
        try:
            yield conn, where, _raster_oid(conn)
        except psycopg.Error as exc:
            raise DatabaseError(f"{where}: {reason(exc)}") from None


def read_postgis_raster(
    url: str,
    *,
    table: str | None = None,
    sql: str | None = None,
    extent: GridSpec | None = None,
    crs: str | None = None,
    margin_cells: int = MARGIN_CELLS,
) -> MemoryRaster:
    """Band 1 of a PostGIS raster — a table (``table="schema.table"``, its raster column) or a
    query's one raster column (``sql="SELECT rast FROM … WHERE …"``) — as a GeoTIFF held in
    memory, for :func:`telcoplan.gis.raster.read_raster_on_grid` and the layer loaders.

    With ``extent`` only the tiles that intersect the grid's bounds (in the raster's SRID,
    widened by ``margin_cells`` source cells) are read, and the mosaic is cut there. The
    raster's SRID is its CRS; ``crs`` is the CRS to assign when the SRID is 0, or to use
    instead of the stated one (with a warning).

    The result's ``attrs["postgis"]`` records the source as :func:`~telcoplan.gis.postgis.read_postgis`
    does: ``source``, ``connection`` (without password), ``table`` or ``sql``, ``srid``,
    ``tiles`` (how many were read) and ``sha256`` (of the tiles' WKB as read, whatever their
    order).

    Raises
    ------
    telcoplan.errors.DatabaseError
        Cannot connect; no raster extension, no such table, no (or several) raster columns, a
        failing query, no tile over the extent, tiles that cannot be laid together.
    telcoplan.errors.CRSError
        SRID 0 and no ``crs``, or a CRS pyproj does not know.
    """
    import rasterio
    from affine import Affine

    from telcoplan.gis.raster import MemoryRaster
    from telcoplan.gis.vector import given_crs

    if (table is None) == (sql is None):
        raise ValueError("give either table= or sql=")
    with _session(url) as (conn, where, oid):
        if oid is None:
            raise DatabaseError(
                f"{where}: the PostGIS raster extension is not installed in this database "
                "(no raster type); CREATE EXTENSION postgis_raster (as a user allowed to), "
                "or export the raster as a GeoTIFF (gdal_translate PG:… layer.tif) and "
                "give its path"
            )
        src = _source(conn, where, table, sql)
        label = src.label
        column = _raster_column(conn, src, oid)
        srid, size = _first_tile(conn, src, column)
        edges = _edges(conn, src, column)
        stated = crs_of_srid(conn, srid)
        chosen = given_crs(
            stated, crs, source=label, stated_by=f"the raster's SRID {srid} says its CRS is"
        )
        if chosen is None:
            raise CRSError(
                f"{label}: the raster has SRID 0 (no CRS); give the layer's CRS in the "
                "plan (`crs: EPSG:32649`) or set it in the database (UPDATE … SET rast = "
                "ST_SetSRID(rast, 32649))"
            )
        window = None if extent is None else _window(extent, chosen, margin_cells * size)
        rows = _tiles(conn, src, column, srid, window)
    if not rows:
        box = (
            ""
            if window is None
            else f" ({window[0]:.6g}…{window[2]:.6g}, {window[1]:.6g}…{window[3]:.6g})"
        )
        raise DatabaseError(
            f"{label}: no raster tile over the study area{box} in SRID {srid} "
            f"({chosen.to_string()}); check the raster's SRID (ST_SRID) and extent "
            "(ST_Envelope), or give the layer's `crs:` when its SRID is wrong"
        )
    try:
        tiles = [tile_from_wkb(r) for r in rows]
        srids = sorted({t.srid for t in tiles})
        if len(srids) > 1:
            raise ValueError(
                f"the tiles have several SRIDs ({', '.join(map(str, srids))}); read one in a "
                "query (sql: SELECT rast FROM … WHERE ST_SRID(rast) = 32649)"
            )
        if tiles[0].bands > 1:
            log.warning(
                "%s has %d bands: band 1 is read, the others are ignored", label, tiles[0].bands
            )
        pixels, gt, nodata = mosaic(tiles, window)
    except ValueError as exc:
        raise DatabaseError(f"{label}: {exc}") from None
    if pixels.size == 0:
        raise DatabaseError(
            f"{label}: no raster cell over the study area; check its SRID and extent"
        )
    # the GeoTIFF is the whole raster (the cells around the ones read are left out: a sparse
    # file), so that warping computes as from the file the raster was loaded from, to the
    # bit: the same source cell positions, and the same source window, which GDAL clips to
    # the raster and from which it scales its kernels when the grid's cells are larger
    rows_before, cols_before, (height, width), origin = _placement(gt, pixels.shape, edges)
    profile = {
        "driver": "GTiff",
        "width": width,
        "height": height,
        "count": 1,
        "dtype": pixels.dtype.name,
        "crs": chosen.to_wkt(),
        "transform": Affine(gt[1], 0.0, origin[0], 0.0, gt[5], origin[1]),
        "nodata": nodata,
        "tiled": True,
        "blockxsize": 256,
        "blockysize": 256,
        "SPARSE_OK": "TRUE",
    }
    with rasterio.io.MemoryFile() as memory:
        with memory.open(**profile) as dst:
            window = rasterio.windows.Window(cols_before, rows_before, *pixels.shape[::-1])
            dst.write(pixels, 1, window=window)
        data = memory.read()
    digest = hashlib.sha256(column.encode("utf-8"))
    for d in sorted(hashlib.sha256(r).digest() for r in rows):
        digest.update(d)
    log.info(
        "%s: %d raster tiles, %d x %d cells", label, len(rows), pixels.shape[1], pixels.shape[0]
    )
    record = {
        "source": label,
        "connection": where,
        "table": src.table,
        "sql": None if sql is None else str(sql),
        "srid": srid,
        "tiles": len(rows),
        "sha256": digest.hexdigest(),
    }
    return MemoryRaster(data, label, {"postgis": record})


# ------------------------------------------------------------------------------ queries
def _raster_oid(conn: psycopg.Connection) -> int | None:
    row = conn.execute("SELECT oid::int FROM pg_type WHERE typname = 'raster'").fetchone()
    return None if row is None else int(row[0])


@dataclass(frozen=True)
class _Source:
    """A raster's rows: what messages call them, the table (``schema.table``, quoted as SQL
    writes it) or None for a query, the SQL they are selected from, the key to order them by."""

    label: str
    table: str | None
    rows: object  # psycopg.sql.Composable
    key: tuple[str, ...] = ()


def _source(conn: psycopg.Connection, where: str, table: str | None, query: str | None) -> _Source:
    from psycopg import sql

    if table is not None:
        schema, name, key = resolve_table(conn, where, table, kind="raster")
        qualified = f"{quoted(schema)}.{quoted(name)}"
        return _Source(
            f"{where} table {qualified}", qualified, sql.Identifier(schema, name), tuple(key)
        )
    text = str(query).strip().rstrip(";").strip()
    return _Source(
        f"{where} query", None, sql.SQL("({}) AS telcoplan_raster").format(sql.SQL(text))
    )


def _columns(conn: psycopg.Connection, src: _Source) -> tuple[list[str], list[int]]:
    from psycopg import Error, sql

    try:
        cur = conn.execute(sql.SQL("SELECT * FROM {} LIMIT 0").format(src.rows))
    except Error as exc:
        raise DatabaseError(f"{src.label}: the query fails ({reason(exc)})") from None
    if cur.description is None:
        raise DatabaseError(f"{src.label}: the statement returns no rows; give a SELECT")
    return [c.name for c in cur.description], [c.type_code for c in cur.description]


def _raster_column(conn: psycopg.Connection, src: _Source, oid: int) -> str:
    names, types = _columns(conn, src)
    found = [n for n, t in zip(names, types, strict=True) if t == oid]
    if len(found) == 1:
        return found[0]
    if found:
        raise DatabaseError(
            f"{src.label}: has {len(found)} raster columns ({', '.join(found)}); select one in "
            "a query (sql: SELECT rast FROM …)"
        )
    raise DatabaseError(
        f"{src.label}: has no raster column (its columns: {', '.join(names) or '(none)'}); name "
        "a raster table (raster2pgsql -t 256x256 dem.tif schema.table | psql …) or a query "
        "selecting one"
    )


def _first_tile(conn: psycopg.Connection, src: _Source, column: str) -> tuple[int, float]:
    """The SRID of the raster and the larger of its cell sides (from one tile)."""
    from psycopg import sql

    row = conn.execute(
        sql.SQL(
            "SELECT ST_SRID({c}), ST_ScaleX({c}), ST_ScaleY({c}) FROM {s} WHERE {c} IS NOT NULL "
            "LIMIT 1"
        ).format(c=sql.Identifier(column), s=src.rows)
    ).fetchone()
    if row is None:
        raise DatabaseError(f"{src.label}: has no raster (no row, or every {column} is NULL)")
    return int(row[0]), max(abs(float(row[1])), abs(float(row[2])))


def _edges(conn: psycopg.Connection, src: _Source, column: str) -> tuple[float, ...]:
    """The least and greatest x of the raster's tiles' first cell edges (upper left x), then
    of their last cell edges (upper left x + width · scale x), then the same for y (headers
    only)."""
    from psycopg import sql

    c = sql.Identifier(column)
    x0, y0 = sql.SQL("ST_UpperLeftX({c})").format(c=c), sql.SQL("ST_UpperLeftY({c})").format(c=c)
    x1 = sql.SQL("ST_UpperLeftX({c}) + ST_Width({c}) * ST_ScaleX({c})").format(c=c)
    y1 = sql.SQL("ST_UpperLeftY({c}) + ST_Height({c}) * ST_ScaleY({c})").format(c=c)
    extremes = sql.SQL(", ").join(
        sql.SQL("{}({})").format(sql.SQL(f), e) for e in (x0, x1, y0, y1) for f in ("min", "max")
    )
    row = conn.execute(
        sql.SQL("SELECT {} FROM {s} WHERE {c} IS NOT NULL").format(extremes, c=c, s=src.rows)
    ).fetchone()
    return tuple(float(v) for v in row)


def _placement(
    gt: tuple[float, ...], shape: tuple[int, int], edges: tuple[float, ...]
) -> tuple[int, int, tuple[int, int], tuple[float, float]]:
    """Where the mosaic (geotransform ``gt``, ``shape`` cells) lies in the whole raster whose
    tiles' ``edges`` (:func:`_edges`) are given: rows and columns before it, the whole raster's
    shape and its first cell's corner (a tile's, as stored: exactly the file's). The mosaic
    alone when the tiles' edges are not on its cell edges."""
    ulx, sx, _, uly, _, sy = gt
    alone = 0, 0, shape, (ulx, uly)
    first_x, last_x, first_y, last_y = edges[0:2], edges[2:4], edges[4:6], edges[6:8]
    x0, x1 = (first_x[0], last_x[1]) if sx > 0 else (first_x[1], last_x[0])
    y0, y1 = (first_y[0], last_y[1]) if sy > 0 else (first_y[1], last_y[0])
    cols, rows = _cells(ulx - x0, sx), _cells(uly - y0, sy)
    width, height = _cells(x1 - x0, sx), _cells(y1 - y0, sy)
    if cols is None or rows is None or min(cols, rows) < 0:
        return alone
    if width is None or height is None:  # the far edges are off the grid: end with the mosaic
        width, height = cols + shape[1], rows + shape[0]
    return rows, cols, (max(height, rows + shape[0]), max(width, cols + shape[1])), (x0, y0)


def _window(extent: GridSpec, crs, margin: float) -> tuple[float, float, float, float] | None:
    """The grid's bounds in ``crs`` (densified edges), widened by ``margin``; None when they
    cannot be transformed."""
    from rasterio.warp import transform_bounds

    try:
        x0, y0, x1, y1 = transform_bounds(extent.crs, crs.to_wkt(), *extent.bounds, densify_pts=21)
    except Exception:  # any transformation failure: read every tile
        log.debug("the grid's bounds do not transform to %s: every tile is read", crs.name)
        return None
    if not all(map(math.isfinite, (x0, y0, x1, y1))):
        return None
    return x0 - margin, y0 - margin, x1 + margin, y1 + margin


def _tiles(conn: psycopg.Connection, src: _Source, column: str, srid: int, window) -> list[bytes]:
    """The WKB of every tile (over ``window`` when given), in key order (a query's: its own)."""
    from psycopg import Error, sql

    c = sql.Identifier(column)
    statement = sql.SQL("SELECT ST_AsBinary({c}) FROM {s} WHERE {c} IS NOT NULL").format(
        c=c, s=src.rows
    )
    if window is not None:
        statement += sql.SQL(" AND ST_Intersects({c}, ST_MakeEnvelope({}, {}, {}, {}, {}))").format(
            *(sql.Literal(float(v)) for v in window), sql.Literal(srid), c=c
        )
    if src.key:
        statement += sql.SQL(" ORDER BY {}").format(
            sql.SQL(", ").join(map(sql.Identifier, src.key))
        )
    try:
        return [bytes(r[0]) for r in conn.execute(statement).fetchall()]
    except Error as exc:
        text = reason(exc)
        if "srid" in text.lower():
            raise DatabaseError(
                f"{src.label}: the tiles have several SRIDs ({text}); read one in a query "
                "(sql: SELECT rast FROM … WHERE ST_SRID(rast) = 32649)"
            ) from None
        raise DatabaseError(f"{src.label}: the query fails ({text})") from None
