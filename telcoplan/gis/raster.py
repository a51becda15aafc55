"""Raster reading and writing on a :class:`GridSpec` (Cloud-Optimized GeoTIFF, atomic)."""

from __future__ import annotations

import contextlib
import logging
import math
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import rasterio
from affine import Affine
from rasterio.enums import Resampling
from rasterio.warp import reproject
from rasterio.windows import Window

from telcoplan.errors import CRSError, InputFileError
from telcoplan.gis.atomic import atomic_path
from telcoplan.gis.grid import GridSpec

log = logging.getLogger(__name__)

#: GDAL threads for DEFLATE compression, overviews and warping: every core. The output bytes do
#: not depend on it (blocks are compressed independently and written in order).
NUM_THREADS = "ALL_CPUS"

__all__ = [
    "MemoryRaster",
    "RasterInfo",
    "RasterSource",
    "open_raster",
    "read_attribute_table",
    "read_raster",
    "read_raster_on_grid",
    "write_attribute_table",
    "write_raster",
]


def write_raster(
    path: str | os.PathLike,
    data: np.ndarray,
    grid: GridSpec,
    *,
    nodata: float | None = None,
    overwrite: bool = False,
    tags: dict[str, str] | None = None,
    description: str | None = None,
) -> Path:
    """Write a single-band raster on ``grid`` as a compressed Cloud-Optimized GeoTIFF.

    The file is written under a temporary name and renamed into place, so a crash never leaves a
    half-written file. ``data`` must have shape ``grid.shape``.
    """
    data = np.asarray(data)
    if data.shape != grid.shape:
        raise ValueError(f"data shape {data.shape} does not match grid shape {grid.shape}")
    if nodata is None and np.issubdtype(data.dtype, np.floating):
        nodata = grid.nodata
    profile = {
        "driver": "COG",
        "width": grid.width,
        "height": grid.height,
        "count": 1,
        "dtype": data.dtype.name,
        "crs": grid.crs,
        "transform": grid.transform,
        "nodata": nodata,
        "compress": "DEFLATE",
        "predictor": 3 if np.issubdtype(data.dtype, np.floating) else 2,
        "blocksize": 256,
        "overview_resampling": "average" if np.issubdtype(data.dtype, np.floating) else "nearest",
        "num_threads": NUM_THREADS,  # block compression on every core
    }
    with (
        atomic_path(path, overwrite=overwrite) as tmp,
        # overviews are computed with GDAL_NUM_THREADS (thread-local: other threads unaffected)
        rasterio.Env(GDAL_NUM_THREADS=NUM_THREADS),
        rasterio.open(tmp, "w", **profile) as dst,
    ):
        dst.write(data, 1)
        if tags:
            dst.update_tags(**tags)
        if description:
            dst.set_band_description(1, description)
    return Path(path)


#: Characters XML 1.0 cannot carry (not even escaped): replaced by U+FFFD in attribute tables
_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _missing(value: object) -> bool:
    """None, NaN, pandas' NA/NaT: an empty cell."""
    import pandas as pd

    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):  # array-likes: not a missing scalar
        return False


#: GDAL raster-attribute-table field types (GFT_*) by numpy kind
_RAT_TYPES = {"i": 0, "u": 0, "b": 0, "f": 1}
_RAT_STRING = 2
_RAT_MINMAX, _RAT_NAME, _RAT_GENERIC = 5, 2, 0  # field usages (GFU_*)


def write_attribute_table(
    raster: str | os.PathLike, values: np.ndarray, columns: dict[str, np.ndarray], *, name: str
) -> Path:
    """Write a GDAL raster attribute table for band 1 of ``raster`` (``<raster>.aux.xml``).

    Each integer pixel value in ``values`` gets one row with its ``columns`` (numbers or text);
    the column ``name`` is marked as the class name. GDAL (``gdalinfo``), QGIS (layer
    properties → attribute table, identify) and ArcGIS read it from the sidecar file, which is
    written atomically next to the raster. Text is XML-escaped; characters XML cannot hold
    (control characters) become U+FFFD; missing values (None, NaN, NA) are empty.
    """
    import xml.etree.ElementTree as ET

    values = np.asarray(values)
    if not np.issubdtype(values.dtype, np.integer):
        raise ValueError(f"attribute-table values must be integers, got {values.dtype}")
    if name not in columns:
        raise ValueError(f"name column {name!r} is not one of the columns {list(columns)}")
    cols = {k: np.asarray(v) for k, v in columns.items()}
    for k, v in cols.items():
        if v.shape != values.shape:
            raise ValueError(f"column {k!r} has {v.shape[0]} rows, values {values.shape[0]}")
    root = ET.Element("PAMDataset")
    band = ET.SubElement(root, "PAMRasterBand", band="1")
    table = ET.SubElement(band, "GDALRasterAttributeTable", tableType="thematic")
    kinds = [("value", 0, _RAT_MINMAX)]
    for k, v in cols.items():
        kind = _RAT_TYPES.get(v.dtype.kind, _RAT_STRING)
        kinds.append((k, kind, _RAT_NAME if k == name else _RAT_GENERIC))
    for i, (field_name, kind, usage) in enumerate(kinds):
        defn = ET.SubElement(table, "FieldDefn", index=str(i))
        ET.SubElement(defn, "Name").text = field_name
        ET.SubElement(defn, "Type").text = str(kind)
        ET.SubElement(defn, "Usage").text = str(usage)
    for r, value in enumerate(values.tolist()):
        row = ET.SubElement(table, "Row", index=str(r))
        ET.SubElement(row, "F").text = str(int(value))
        for (_, kind, _), v in zip(kinds[1:], cols.values(), strict=True):
            cell = v[r]
            if kind == 1:
                text = repr(float(cell))
            elif kind == 0:
                text = str(int(cell))
            else:
                text = "" if _missing(cell) else _XML_INVALID.sub("\ufffd", str(cell))
            ET.SubElement(row, "F").text = text
    target = Path(str(raster) + ".aux.xml")
    with atomic_path(target, overwrite=True) as tmp:
        ET.ElementTree(root).write(tmp, encoding="UTF-8", xml_declaration=False)
    return target


def read_attribute_table(raster: str | os.PathLike) -> dict[int, dict[str, str]]:
    """The attribute table written by :func:`write_attribute_table`: value → {column: text}."""
    import xml.etree.ElementTree as ET

    root = ET.parse(str(raster) + ".aux.xml").getroot()
    table = root.find("PAMRasterBand/GDALRasterAttributeTable")
    names = [d.findtext("Name") for d in table.findall("FieldDefn")]
    out = {}
    for row in table.findall("Row"):
        cells = [f.text or "" for f in row.findall("F")]
        out[int(cells[0])] = dict(zip(names[1:], cells[1:], strict=True))
    return out


@dataclass(frozen=True)
class RasterInfo:
    """Georeferencing of a raster as read from a file (any CRS, geographic included)."""

    crs: str
    transform: Affine
    width: int
    height: int
    nodata: float | None

    @property
    def shape(self) -> tuple[int, int]:
        return (self.height, self.width)

    def same_grid(self, grid: GridSpec) -> bool:
        """Whether this raster lies exactly on ``grid`` (CRS, transform and shape)."""
        from telcoplan.gis.crs import same_crs

        return (
            self.shape == grid.shape
            and self.transform.almost_equals(grid.transform)
            and same_crs(self.crs, grid.crs)
        )


@dataclass(frozen=True)
class MemoryRaster:
    """A raster file's bytes held in memory — e.g. the GeoTIFF that
    :func:`telcoplan.gis.postgis_raster.read_postgis_raster` makes of a PostGIS raster — read
    like a file by :func:`read_raster`, :func:`read_raster_on_grid` and :func:`open_raster`.

    ``name`` is what messages call it (a database and table, without password); ``attrs``
    records its source (``attrs["postgis"]``: connection, table or query, SHA-256)."""

    data: bytes = field(repr=False)
    name: str
    attrs: dict = field(default_factory=dict, compare=False)

    def __str__(self) -> str:
        return self.name


#: A raster to read: a file's path, or a raster held in memory.
RasterSource = str | os.PathLike | MemoryRaster


@contextlib.contextmanager
def open_raster(source: RasterSource) -> Iterator[rasterio.io.DatasetReader]:
    """Open a raster file or a :class:`MemoryRaster` (closed on leaving the block); every GDAL
    failure becomes a clean :class:`InputFileError`, a raster without CRS a :class:`CRSError`."""
    with contextlib.ExitStack() as stack:
        if isinstance(source, MemoryRaster):
            memory = stack.enter_context(rasterio.io.MemoryFile(source.data))
            opener, p = memory.open, source
        else:
            p = Path(source)
            if not p.exists():
                raise InputFileError(f"{p}: file not found")
            opener = lambda: rasterio.open(p)  # noqa: E731
        try:
            src = stack.enter_context(opener())
        except (rasterio.errors.RasterioIOError, rasterio.errors.RasterioError) as exc:
            raise InputFileError(f"{p}: not a readable raster ({exc})") from None
        if src.crs is None:
            name = p.name if isinstance(p, Path) else "the raster"
            raise CRSError(
                f"{p}: raster has no CRS; assign one (e.g. gdal_edit.py -a_srs EPSG:32649 {name})"
            )
        if src.count > 1:
            log.warning("%s has %d bands: band 1 is read, the others are ignored", p, src.count)
        yield src


def read_raster(path: RasterSource) -> tuple[np.ndarray, RasterInfo, dict[str, str]]:
    """Read band 1 of a raster (a file or a :class:`MemoryRaster`) in any CRS as float64;
    nodata cells become NaN.

    Returns the array, the raster's :class:`RasterInfo` and its tags.
    """
    p = path if isinstance(path, MemoryRaster) else Path(path)
    with open_raster(p) as src:
        try:
            arr = src.read(1, masked=True)
        except rasterio.errors.RasterioIOError as exc:
            raise InputFileError(f"{p}: cannot read the raster's data ({exc})") from None
        info = RasterInfo(
            crs=src.crs.to_string(),
            transform=src.transform,
            width=src.width,
            height=src.height,
            nodata=None if src.nodata is None else float(src.nodata),
        )
        tags = src.tags()
    data = np.ma.filled(arr.astype("float64"), np.nan)
    return data, info, tags


def read_raster_on_grid(
    path: RasterSource,
    grid: GridSpec,
    *,
    resampling: str = "bilinear",
) -> np.ndarray:
    """Read band 1 of ``path`` (a file or a :class:`MemoryRaster`) warped onto ``grid``
    (float64; NaN where the source has no data)."""
    with open_raster(path) as src:
        offset = _aligned_offset(src, grid)
        if offset is not None:
            # same CRS, cell size and cell edges: cut the window out, no resampling at all
            return _read_window(src, grid, *offset)
        dst = np.full(grid.shape, np.nan, dtype="float64")
        reproject(
            source=rasterio.band(src, 1),
            destination=dst,
            src_nodata=src.nodata,
            dst_transform=grid.transform,
            dst_crs=grid.crs,
            dst_nodata=np.nan,
            resampling=Resampling[resampling],
            num_threads=_cpu_count(),
        )
    return dst


def _cpu_count() -> int:
    """Cores this process may use (``reproject`` takes a number, not ``ALL_CPUS``)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def _aligned_offset(src, grid: GridSpec) -> tuple[int, int] | None:
    """(row, col) of ``grid``'s origin in ``src`` when both share CRS, cell size and cell edges."""
    from telcoplan.gis.crs import same_crs

    t, g = src.transform, grid.transform
    if not same_crs(src.crs.to_wkt(), grid.crs) or t.b != 0 or t.d != 0:
        return None
    if not (math.isclose(t.a, g.a, rel_tol=1e-9) and math.isclose(t.e, g.e, rel_tol=1e-9)):
        return None
    col = (g.c - t.c) / t.a
    row = (g.f - t.f) / t.e
    if abs(col - round(col)) > 1e-6 or abs(row - round(row)) > 1e-6:
        return None
    return round(row), round(col)


def _read_window(src, grid: GridSpec, row: int, col: int) -> np.ndarray:
    """Band 1 of ``src`` over ``grid`` (aligned), NaN outside the source and at nodata."""
    out = np.full(grid.shape, np.nan, dtype="float64")
    r0, c0 = max(row, 0), max(col, 0)
    r1, c1 = min(row + grid.height, src.height), min(col + grid.width, src.width)
    if r0 >= r1 or c0 >= c1:
        return out
    data = src.read(1, window=Window(c0, r0, c1 - c0, r1 - r0), masked=True).astype("float64")
    out[r0 - row : r1 - row, c0 - col : c1 - col] = data.filled(np.nan)
    return out
