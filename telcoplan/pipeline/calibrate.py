"""``telcoplan calibrate``: fit a propagation model to measurements and write ``params.json``."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from telcoplan.errors import PlanError

__all__ = ["run_calibration"]

log = logging.getLogger(__name__)


def run_calibration(
    towers_path: Path,
    measurements_path: Path,
    output: Path,
    *,
    model: str = "hata",
    environment: str = "urban",
    h_rx_m: float = 1.5,
    validation_path: Path | None = None,
    crs: str | None = None,
    dem_path: Path | None = None,
    diffraction: str = "bullington",
    dem_resolution_m: float = 30.0,
    land_use_path: Path | None = None,
    land_use_classes_path: Path | None = None,
    overwrite: bool = False,
    land_use_column: str | None = None,
):
    """``telcoplan calibrate``: fit ``model`` to measurements and write ``params.json`` atomically.

    With ``dem_path`` the DEM is warped (bilinear, :func:`telcoplan.layers.dem.load_dem`) onto a
    grid of ``dem_resolution_m`` metres in the measurements' projected CRS (else the local UTM
    zone of their centre) that covers the measurements, the validation measurements and their
    serving towers, and the fit corrects the terrain-aware prediction (``diffraction`` method),
    as the coverage stage computes it. With ``land_use_path`` (a categorical raster, or polygons
    with their class in ``land_use_column``; any CRS: :mod:`telcoplan.layers.land_use`) the class
    under each measurement is its clutter class (a raster's codes named by
    ``land_use_classes_path``, CSV ``code,name``, or by the code itself); measurements outside the
    layer or without a class are an error (no fallback class). Returns the
    :class:`telcoplan.coverage.calibration.Calibration`.
    """
    import json

    from telcoplan.coverage.calibration import calibrate, clutter_labels
    from telcoplan.gis.atomic import atomic_path, check_writable
    from telcoplan.layers.measurements import load_measurements
    from telcoplan.layers.towers import load_towers

    check_writable(output, overwrite)
    if land_use_classes_path is not None and land_use_path is None:
        raise PlanError("a land-use class table was given without a land-use layer (--land-use)")
    if land_use_column is not None and land_use_path is None:
        raise PlanError("a land-use class column was given without a land-use layer (--land-use)")
    towers = load_towers(towers_path, crs=crs)
    meas = load_measurements(measurements_path, crs=crs)
    val = None if validation_path is None else load_measurements(validation_path, crs=crs)

    dem = grid = None
    if dem_path is not None:
        from telcoplan.gis.crs import to_projected
        from telcoplan.gis.grid import GridSpec
        from telcoplan.layers.dem import load_dem

        if not (dem_resolution_m > 0 and np.isfinite(dem_resolution_m)):
            raise PlanError(
                f"the DEM grid resolution must be positive (m), got {dem_resolution_m!r}"
            )
        layers = [meas, *([] if val is None else [val])]
        metric = to_projected(meas).crs
        ids = {str(v) for frame in layers for v in frame["site_id"].dropna()}
        served = towers[towers.index.map(str).isin(ids)]
        parts = [f.geometry.to_crs(metric) for f in [*layers, served if len(served) else towers]]
        xmin = min(g.total_bounds[0] for g in parts if len(g))
        ymin = min(g.total_bounds[1] for g in parts if len(g))
        xmax = max(g.total_bounds[2] for g in parts if len(g))
        ymax = max(g.total_bounds[3] for g in parts if len(g))
        margin = 2.0 * dem_resolution_m
        bounds = (xmin - margin, ymin - margin, xmax + margin, ymax + margin)
        cells = (bounds[2] - bounds[0]) * (bounds[3] - bounds[1]) / dem_resolution_m**2
        if cells > 50e6:
            raise PlanError(
                f"the measurements and their towers span {(bounds[2] - bounds[0]) / 1e3:,.1f} km x "
                f"{(bounds[3] - bounds[1]) / 1e3:,.1f} km: a DEM grid of {dem_resolution_m:g} m "
                f"would have {cells / 1e6:,.0f} million cells (at most 50); choose a coarser "
                "resolution (--resolution) or calibrate one region at a time"
            )
        grid = GridSpec.from_bounds(bounds, dem_resolution_m, metric.to_string())
        dem = load_dem(dem_path, grid)

    clutter = vclutter = None
    if land_use_path is not None:
        from telcoplan.layers.land_use import land_use_at_points

        lu = {"column": land_use_column, "classes": land_use_classes_path}
        codes, names = land_use_at_points(land_use_path, meas, **lu)
        clutter = clutter_labels(
            codes, names, source=str(land_use_path), layer_source=str(measurements_path)
        )
        if val is not None:
            codes, names = land_use_at_points(land_use_path, val, **lu)
            vclutter = clutter_labels(
                codes, names, source=str(land_use_path), layer_source=str(validation_path)
            )
        log.info(
            "land use: %s",
            ", ".join(f"{k} {v}" for k, v in pd.Series(clutter).value_counts().items()),
        )

    cal = calibrate(
        towers,
        meas,
        model=model,
        environment=environment,
        h_rx_m=h_rx_m,
        clutter=clutter,
        validation=val,
        validation_clutter=vclutter,
        dem=dem,
        grid=grid,
        diffraction=diffraction,
        source=str(measurements_path),
        validation_source=str(validation_path),
        dem_source=str(dem_path),
    )
    with atomic_path(output, overwrite=overwrite) as tmp:
        tmp.write_text(
            json.dumps(cal.to_dict(), indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
        )
    return cal
