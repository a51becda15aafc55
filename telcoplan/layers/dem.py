"""The DEM layer: a single-band raster of ground elevation in metres above sea level.

Contract: any GDAL-readable raster with a CRS, elevations in metres (float or int), nodata set
for voids. It is warped (bilinear) onto the plan grid by :func:`load_dem`.
"""

from __future__ import annotations

import logging

import numpy as np

from telcoplan.errors import LayerValidationError, Problem, TelcoplanError
from telcoplan.gis.grid import GridSpec
from telcoplan.gis.raster import RasterSource, open_raster, read_raster_on_grid

__all__ = ["DEM_RANGE_M", "load_dem", "validate_dem"]

#: Plausible elevations (m): Dead Sea shore to above Everest.
DEM_RANGE_M = (-450.0, 9000.0)

log = logging.getLogger(__name__)


def validate_dem(dem: np.ndarray, *, source: str = "<dem>") -> None:
    """Raise :class:`LayerValidationError` if the DEM is empty or has implausible elevations.

    Partial coverage is allowed (logged): a DEM tile need not cover the whole plan grid.
    """
    problems: list[Problem] = []
    finite = np.isfinite(dem)
    if not finite.any():
        problems.append(
            Problem(None, None, "the DEM has no data over the study area; check its extent and CRS")
        )
    else:
        lo, hi = float(np.nanmin(dem)), float(np.nanmax(dem))
        if lo < DEM_RANGE_M[0] or hi > DEM_RANGE_M[1]:
            problems.append(
                Problem(
                    None,
                    "elevation",
                    f"elevations {lo:g}…{hi:g} are outside {DEM_RANGE_M[0]:g}…{DEM_RANGE_M[1]:g} m; the DEM must be "
                    "in metres with voids set as nodata",
                )
            )
        void = 1.0 - finite.mean()
        if void > 0.0:
            log.warning(
                "%s: %.0f%% of the plan grid has no DEM data; terrain is ignored there (flat earth)",
                source,
                100 * void,
            )
    if problems:
        raise LayerValidationError(source, "dem", problems)


#: Band units that say the elevations are not metres (GDAL's unit type, lower case)
_FEET = ("ft", "foot", "feet", "us-ft", "us survey foot", "ftus", "international foot")


def load_dem(path: RasterSource, grid: GridSpec) -> np.ndarray:
    """Read a DEM (a file, or a :class:`~telcoplan.gis.raster.MemoryRaster` such as a PostGIS
    raster read by :func:`telcoplan.gis.postgis_raster.read_postgis_raster`) warped onto
    ``grid`` (bilinear), float64 metres, NaN for voids; validated.

    A band whose unit says feet is refused (the elevations would be 3.28 times too high)."""
    _check_units(path)
    dem = read_raster_on_grid(path, grid, resampling="bilinear")
    validate_dem(dem, source=str(path))
    return dem


def _check_units(path: RasterSource) -> None:
    try:
        with open_raster(path) as src:
            unit = (src.units[0] or "").strip().lower() if src.units else ""
    except TelcoplanError:
        return  # unreadable: read_raster_on_grid says so
    if unit in _FEET:
        raise LayerValidationError(
            str(path),
            "dem",
            [
                Problem(
                    None,
                    "elevation",
                    f"elevations are in {unit!r}; the DEM must be in metres (e.g. gdal_calc.py "
                    "-A dem.tif --calc='A*0.3048' --outfile dem_m.tif)",
                )
            ],
        )
