"""``telcoplan calibrate``: fit a propagation model to measurements and write ``params.json``."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from telcoplan.errors import PlanError

__all__ = ["calibration_summary", "run_calibration"]

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
    cv_folds: int | None = None,
    cv_mode: str = "spatial",
    cv_block_m: float = 1000.0,
    seed: int = 0,
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
    layer or without a class are class ``unclassified``, fitted like the others.

    With ``cv_folds`` (k ≥ 2) every candidate configuration — the model and the others valid at
    the frequency, terrain off / on with each diffraction method (with a DEM), clutter off / on
    (with land use), per-site offsets off / on with each shrinkage — is cross-validated on k
    folds (``cv_mode``: random, spatial blocks of ``cv_block_m`` m, or by serving site; shuffled
    with ``seed``) and the best is fitted and written, with the table of every candidate
    (:func:`telcoplan.coverage.crossval.calibrate_cv`). Returns the
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

    common = {
        "model": model,
        "environment": environment,
        "h_rx_m": h_rx_m,
        "clutter": clutter,
        "validation": val,
        "validation_clutter": vclutter,
        "dem": dem,
        "grid": grid,
        "diffraction": diffraction,
        "source": str(measurements_path),
        "validation_source": str(validation_path),
        "dem_source": str(dem_path),
    }
    if cv_folds is None:
        cal = calibrate(towers, meas, **common)
    else:
        from telcoplan.coverage.crossval import calibrate_cv

        cal = calibrate_cv(
            towers, meas, folds=cv_folds, mode=cv_mode, block_m=cv_block_m, seed=seed, **common
        )
    with atomic_path(output, overwrite=overwrite) as tmp:
        tmp.write_text(
            json.dumps(cal.to_dict(), indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
        )
    return cal


#: The fit's figures ``telcoplan calibrate`` prints, after ``mean_error_db``.
_PRINTED = (
    "rmse_db_before",
    "rmse_db_after",
    "mean_error_db_before",
    "mean_error_db_after",
    "validation_rmse_db",
    "validation_mean_error_db",
    "intercept_offset_db",
    "slope_offset_db_per_decade",
    "clutter_offsets_db",
    "n_measurements",
    "terrain",
    "diffraction",
)


def calibration_summary(cal) -> tuple[dict, str | None]:
    """What ``telcoplan calibrate`` prints: the fit's figures (JSON-ready) and, with a
    cross-validation, the line naming the validation error to quote (else None).

    With CV the figures add the chosen ``model``, ``site_offsets_db``, ``site_shrinkage``,
    ``cv_rmse_db``, ``cv_mean_error_db`` and ``cv`` (folds, mode, block, seed, the chosen
    configuration and every candidate's CV RMSE and mean error, best first).
    """
    d = cal.to_dict()
    printed = {"mean_error_db": d["mean_error_db"]} | {k: d.get(k) for k in _PRINTED}
    cv = cal.cv
    if cv is None:
        return printed, None
    ranked = sorted(cv["candidates"], key=lambda c: c["cv_rmse_db"])
    printed |= {
        "model": d["model"],
        "site_offsets_db": d["site_offsets_db"],
        "site_shrinkage": d["site_shrinkage"],
        "cv_rmse_db": cv["cv_rmse_db"],
        "cv_mean_error_db": cv["cv_mean_error_db"],
        "cv": {k: cv[k] for k in ("folds", "mode", "block_m", "seed", "chosen")}
        | {
            "candidates": {
                c["name"]: {
                    "cv_rmse_db": c["cv_rmse_db"],
                    "cv_mean_error_db": c["cv_mean_error_db"],
                }
                for c in ranked
            }
        },
    }
    quote = (
        f"validation error to quote: {cv['cv_rmse_db']:.2f} dB RMS (mean "
        f"{cv['cv_mean_error_db']:+.2f} dB), {cv['folds']}-fold {cv['mode']} cross-validation "
        f"of {cv['chosen']['name']}, the best of {len(cv['candidates'])} configurations"
    )
    return printed, quote
