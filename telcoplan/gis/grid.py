"""The plan's raster grid: one :class:`GridSpec` that every raster of a plan lives on."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from affine import Affine
from pyproj import CRS

from telcoplan.errors import CRSError

__all__ = ["GridSpec"]


@dataclass(frozen=True)
class GridSpec:
    """A north-up raster grid in a projected CRS.

    Attributes
    ----------
    crs : str
        The grid's CRS as an authority string (``"EPSG:32649"``) or WKT; must be projected.
    transform : affine.Affine
        Maps (col, row) to (x, y) of the cell's upper-left corner; north-up (``e < 0``).
    width, height : int
        Number of columns and rows.
    nodata : float
        Value used for "no data" in float rasters of this grid.
    """

    crs: str
    transform: Affine
    width: int
    height: int
    nodata: float = -9999.0

    def __post_init__(self) -> None:
        if self.width <= 0 or self.height <= 0:
            raise ValueError(
                f"grid must have positive width and height, got {self.width}x{self.height}"
            )
        t = self.transform
        if t.b != 0 or t.d != 0 or t.a <= 0 or t.e >= 0:
            raise ValueError(f"grid transform must be north-up with square-ish cells, got {t!r}")
        if not CRS.from_user_input(self.crs).is_projected:
            raise CRSError(
                f"grid CRS {self.crs!r} is not projected; metric work needs a projected CRS "
                "(use telcoplan.gis.utm_crs_for(...) to pick the local UTM zone)"
            )

    @classmethod
    def from_bounds(
        cls,
        bounds: tuple[float, float, float, float],
        resolution: float,
        crs: str,
        *,
        nodata: float = -9999.0,
    ) -> GridSpec:
        """Grid covering ``bounds`` (xmin, ymin, xmax, ymax) with square cells of ``resolution`` m.

        The origin is snapped outward to a multiple of the resolution, so grids of the same
        resolution built from different bounds align.
        """
        if not resolution > 0:
            raise ValueError(f"resolution must be positive (metres), got {resolution!r}")
        xmin, ymin, xmax, ymax = bounds
        if not (xmax > xmin and ymax > ymin):
            raise ValueError(f"empty bounds {bounds!r}")
        x0 = math.floor(xmin / resolution) * resolution
        y1 = math.ceil(ymax / resolution) * resolution
        width = max(1, math.ceil((xmax - x0) / resolution - 1e-9))
        height = max(1, math.ceil((y1 - ymin) / resolution - 1e-9))
        return cls(
            crs=crs,
            transform=Affine(resolution, 0.0, x0, 0.0, -resolution, y1),
            width=int(width),
            height=int(height),
            nodata=nodata,
        )

    @property
    def shape(self) -> tuple[int, int]:
        """(rows, cols)."""
        return (self.height, self.width)

    @property
    def resolution(self) -> float:
        """Cell size in CRS units (metres)."""
        return float(self.transform.a)

    @property
    def cell_area_m2(self) -> float:
        return float(self.transform.a * -self.transform.e)

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        t = self.transform
        return (t.c, t.f + t.e * self.height, t.c + t.a * self.width, t.f)

    def x_centres(self) -> np.ndarray:
        """x of each column's cell centres, shape (width,)."""
        t = self.transform
        return t.c + t.a * (np.arange(self.width) + 0.5)

    def y_centres(self) -> np.ndarray:
        """y of each row's cell centres, shape (height,)."""
        t = self.transform
        return t.f + t.e * (np.arange(self.height) + 0.5)

    def cell_centres(self) -> tuple[np.ndarray, np.ndarray]:
        """(X, Y) arrays of cell-centre coordinates, each of shape (height, width)."""
        return np.meshgrid(self.x_centres(), self.y_centres())

    def rowcol(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Row and column of the cells containing points (x, y); may fall outside the grid."""
        t = self.transform
        col = np.floor((np.asarray(x, dtype=float) - t.c) / t.a).astype(np.int64)
        row = np.floor((np.asarray(y, dtype=float) - t.f) / t.e).astype(np.int64)
        return row, col

    def contains_rowcol(self, row: np.ndarray, col: np.ndarray) -> np.ndarray:
        return (row >= 0) & (row < self.height) & (col >= 0) & (col < self.width)

    def to_dict(self) -> dict:
        """JSON-able description (for a run summary's provenance)."""
        return {
            "crs": self.crs,
            "transform": list(self.transform)[:6],
            "width": self.width,
            "height": self.height,
            "resolution_m": self.resolution,
            "nodata": self.nodata,
        }
