"""Raster reading and writing on a :class:`GridSpec` (Cloud-Optimized GeoTIFF, atomic)."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
from affine import Affine
from rasterio.enums import Resampling
from rasterio.warp import reproject
from rasterio.windows import Window

from telcoplan.errors import CRSError, InputFileError
from telcoplan.gis._atomic import atomic_path
from telcoplan.gis.grid import GridSpec

__all__ = ["RasterInfo", "read_raster", "read_raster_on_grid", "write_raster"]


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
    }
    with atomic_path(path, overwrite=overwrite) as tmp, rasterio.open(tmp, "w", **profile) as dst:
        dst.write(data, 1)
        if tags:
            dst.update_tags(**tags)
        if description:
            dst.set_band_description(1, description)
    return Path(path)


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


def _open(p: Path):
    """Open a raster, turning every GDAL failure into a clean :class:`InputFileError`."""
    if not p.exists():
        raise InputFileError(f"{p}: file not found")
    try:
        src = rasterio.open(p)
    except (rasterio.errors.RasterioIOError, rasterio.errors.RasterioError) as exc:
        raise InputFileError(f"{p}: not a readable raster ({exc})") from None
    if src.crs is None:
        src.close()
        raise CRSError(
            f"{p}: raster has no CRS; assign one (e.g. gdal_edit.py -a_srs EPSG:32649 {p.name})"
        )
    return src


def read_raster(path: str | os.PathLike) -> tuple[np.ndarray, RasterInfo, dict[str, str]]:
    """Read band 1 of a raster in any CRS as float64; nodata cells become NaN.

    Returns the array, the raster's :class:`RasterInfo` and its tags.
    """
    p = Path(path)
    with _open(p) as src:
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
    path: str | os.PathLike,
    grid: GridSpec,
    *,
    resampling: str = "bilinear",
) -> np.ndarray:
    """Read band 1 of ``path`` warped onto ``grid`` (float64; NaN where the source has no data)."""
    p = Path(path)
    with _open(p) as src:
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
        )
    return dst


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
