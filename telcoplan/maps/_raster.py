"""Signal rasters for the web map: warp for Leaflet, quantise, encode as an inline palette PNG.

Leaflet stretches an image overlay linearly between its corner coordinates in its display CRS,
Web Mercator (EPSG:3857), so the raster is warped to EPSG:3857 — rows then line up with the
map at every latitude — and its bounds are given in longitude/latitude degrees.

A signal raster (dBm, NaN = no signal) becomes an 8-bit palette PNG: index 0 is transparent,
index ``k`` (1 … n) stands for ``vmin + (k - 1) * step`` dBm and has its own colour on the
signal scale. A value is shown with the nearest level, so the decoded image reproduces every
value to within half a quantisation step; values above ``vmax`` take the top level, values
below ``vmin`` are transparent.
"""

from __future__ import annotations

import base64
import math
import struct
import zlib
from typing import Protocol

import numpy as np
from affine import Affine

from telcoplan.maps.choices import MAX_SIGNAL_LEVELS as MAX_LEVELS

__all__ = [
    "MAX_PIXELS",
    "SIGNAL_COLOURS",
    "GridLike",
    "encode_png_palette",
    "level_values",
    "palette",
    "png_uri",
    "quantise",
    "signal_png",
    "warp_for_leaflet",
]

#: Anchor colours of the signal scale, weak to strong (matplotlib's viridis at 0, 1/8, …, 1).
SIGNAL_COLOURS: tuple[str, ...] = (
    "#440154",
    "#472d7b",
    "#3b528b",
    "#2c728e",
    "#21918c",
    "#28ae80",
    "#5ec962",
    "#addc30",
    "#fde725",
)
#: Longest side (pixels) of a warped overlay; larger rasters are resampled coarser.
MAX_PIXELS = 2048
_WEB_MERCATOR = "EPSG:3857"
#: Rows quantised at a time by :func:`png_uri`.
_BAND_ROWS = 256


class GridLike(Protocol):
    """Georeferencing of a raster: a :class:`~telcoplan.gis.grid.GridSpec` or a
    :class:`~telcoplan.gis.raster.RasterInfo` (any CRS)."""

    crs: str
    transform: Affine
    width: int
    height: int


def palette(n: int, colours: tuple[str, ...] = SIGNAL_COLOURS) -> np.ndarray:
    """``n`` RGB colours (uint8, shape (n, 3)) interpolated linearly between ``colours``."""
    rgb = np.array([[int(c[i : i + 2], 16) for i in (1, 3, 5)] for c in colours], dtype=float)
    at = np.linspace(0.0, 1.0, len(colours))
    x = np.linspace(0.0, 1.0, n) if n > 1 else np.ones(1)
    return (
        np.stack([np.interp(x, at, rgb[:, k]) for k in range(3)], axis=1).round().astype(np.uint8)
    )


def _levels(vmin: float, vmax: float, step: float) -> int:
    if not (math.isfinite(vmin) and math.isfinite(vmax) and vmax > vmin):
        raise ValueError(f"signal range must be finite with vmax > vmin, got {vmin}…{vmax} dBm")
    if not (math.isfinite(step) and step > 0):
        raise ValueError(f"quantisation step must be a positive number of dB, got {step!r}")
    n = math.floor((vmax - vmin) / step + 1e-9) + 1
    if n > MAX_LEVELS:
        raise ValueError(
            f"{vmin}…{vmax} dBm in steps of {step} dB needs {n} levels, a palette PNG holds "
            f"{MAX_LEVELS}; use a step of at least {(vmax - vmin) / (MAX_LEVELS - 1):.3g} dB"
        )
    return n


def level_values(vmin: float, vmax: float, step: float) -> np.ndarray:
    """Value (dBm) of each palette index: NaN for index 0 (transparent), then
    ``vmin, vmin + step, …`` (float64, length n + 1)."""
    n = _levels(vmin, vmax, step)
    return np.concatenate([[np.nan], vmin + step * np.arange(n)])


def quantise(values: np.ndarray, vmin: float, vmax: float, step: float) -> np.ndarray:
    """Palette indices (uint8) of ``values``: 0 for NaN and values below ``vmin``, else the
    nearest level ``1 + round((v - vmin) / step)``, capped at the top level."""
    n = _levels(vmin, vmax, step)
    v = np.asarray(values, dtype=np.float64)
    valid = np.isfinite(v) & (v >= vmin)
    k = np.clip(np.round((np.where(valid, v, vmin) - vmin) / step), 0, n - 1)
    return np.where(valid, k + 1, 0).astype(np.uint8)


def warp_for_leaflet(
    values: np.ndarray,
    grid: GridLike,
    *,
    max_pixels: int = MAX_PIXELS,
) -> tuple[np.ndarray, tuple[float, float, float, float]]:
    """Warp a float raster on ``grid`` to Web Mercator (nearest neighbour; NaN stays NaN).

    Cells equal to ``grid.nodata`` (when the grid has one) count as NaN. Returns the warped
    float32 array (at most ``max_pixels`` on its longest side) and its bounds
    (west, south, east, north) in degrees of longitude/latitude (EPSG:4326).
    """
    from pyproj import Transformer
    from rasterio.transform import array_bounds
    from rasterio.warp import Resampling, reproject, transform_bounds

    src = np.asarray(values, dtype=np.float32)
    if src.shape != (grid.height, grid.width):
        raise ValueError(
            f"signal raster has shape {src.shape}, its grid {(grid.height, grid.width)}"
        )
    nodata = getattr(grid, "nodata", None)
    if nodata is not None and np.isfinite(nodata):
        src = np.where(src == np.float32(nodata), np.float32(np.nan), src)
    w, s, e, n = transform_bounds(
        grid.crs,
        _WEB_MERCATOR,
        *array_bounds(grid.height, grid.width, grid.transform),
        densify_pts=21,
    )
    # square pixels no larger than the source cells (as seen in Web Mercator)
    res = min((e - w) / grid.width, (n - s) / grid.height)
    res = max(res, max(e - w, n - s) / max_pixels)
    width = max(1, math.ceil((e - w) / res - 1e-9))
    height = max(1, math.ceil((n - s) / res - 1e-9))
    transform = Affine(res, 0.0, w, 0.0, -res, n)
    dst = np.full((height, width), np.nan, dtype=np.float32)
    reproject(
        src,
        dst,
        src_transform=grid.transform,
        src_crs=grid.crs,
        src_nodata=np.nan,
        dst_transform=transform,
        dst_crs=_WEB_MERCATOR,
        dst_nodata=np.nan,
        resampling=Resampling.nearest,
    )
    w, s, e, n = array_bounds(height, width, transform)
    to_deg = Transformer.from_crs(_WEB_MERCATOR, "EPSG:4326", always_xy=True)
    (lon0, lon1), (lat0, lat1) = to_deg.transform([w, e], [s, n])
    return dst, (float(lon0), float(lat0), float(lon1), float(lat1))


def _chunk(kind: bytes, data: bytes) -> bytes:
    return (
        struct.pack(">I", len(data))
        + kind
        + data
        + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    )


def encode_png_palette(index: np.ndarray, rgb: np.ndarray, alpha: np.ndarray) -> bytes:
    """A palette PNG (colour type 3, 8 bit) of a uint8 index image.

    ``rgb`` is (n, 3) uint8 with n <= 256, ``alpha`` (n,) uint8 (the tRNS chunk).
    """
    index = np.ascontiguousarray(index, dtype=np.uint8)
    height, width = index.shape
    rgb = np.asarray(rgb, dtype=np.uint8)
    if rgb.ndim != 2 or rgb.shape[1] != 3 or not 1 <= len(rgb) <= 256:
        raise ValueError(f"palette must be (n, 3) with 1 <= n <= 256, got {rgb.shape}")
    if index.size and int(index.max()) >= len(rgb):
        raise ValueError(f"index {int(index.max())} is beyond the {len(rgb)}-colour palette")
    raw = np.zeros((height, width + 1), dtype=np.uint8)  # filter byte 0 (None) per row
    raw[:, 1:] = index
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 3, 0, 0, 0)
    return b"".join(
        (
            b"\x89PNG\r\n\x1a\n",
            _chunk(b"IHDR", ihdr),
            _chunk(b"PLTE", rgb.tobytes()),
            _chunk(b"tRNS", np.asarray(alpha, dtype=np.uint8).tobytes()),
            _chunk(b"IDAT", zlib.compress(raw.tobytes(), 9)),
            _chunk(b"IEND", b""),
        )
    )


def signal_png(
    values: np.ndarray,
    grid: GridLike,
    vmin: float,
    vmax: float,
    *,
    step: float = 1.0,
    max_pixels: int = MAX_PIXELS,
) -> tuple[str, list[list[float]]]:
    """Signal raster (dBm, NaN = no signal) as a ``data:image/png`` URI and its Leaflet bounds.

    Values are warped to Web Mercator (:func:`warp_for_leaflet`), quantised in steps of ``step`` dB
    from ``vmin`` (:func:`quantise`) and coloured along :data:`SIGNAL_COLOURS`; cells without
    signal or below ``vmin`` are transparent. Bounds are ``[[south, west], [north, east]]``.
    """
    _levels(vmin, vmax, step)
    warped, (west, south, east, north) = warp_for_leaflet(values, grid, max_pixels=max_pixels)
    return png_uri(warped, vmin, vmax, step), [[south, west], [north, east]]


def png_uri(warped: np.ndarray, vmin: float, vmax: float, step: float) -> str:
    """The ``data:image/png`` URI of :func:`signal_png` of a raster already warped
    (:func:`warp_for_leaflet`). Free of rasterio and of ``warnings.catch_warnings``, so it may
    run in a thread beside other work."""
    n = _levels(vmin, vmax, step)
    # quantised by bands of rows (cell by cell: the same), a few MB of temporaries at a time
    index = np.empty(np.shape(warped), dtype=np.uint8)
    for i in range(0, len(index), _BAND_ROWS):
        index[i : i + _BAND_ROWS] = quantise(warped[i : i + _BAND_ROWS], vmin, vmax, step)
    rgb = np.vstack([np.zeros((1, 3), np.uint8), palette(n)])
    alpha = np.full(n + 1, 255, dtype=np.uint8)
    alpha[0] = 0
    png = encode_png_palette(index, rgb, alpha)
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")
