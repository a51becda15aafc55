"""The coverage stage: signal and serving-site rasters, coverage polygons, population covered.

Writes :func:`~telcoplan.outputs.signal_file` (float32 dBm, total received power of the serving carrier),
:func:`~telcoplan.outputs.server_file` (int32, 1-based row of the serving site in :data:`~telcoplan.outputs.COVERAGE`'s
``sites`` layer; 0 = none), :data:`~telcoplan.outputs.OPERATORS_COUNT` (uint8), :data:`~telcoplan.outputs.COVERAGE_LIMIT` with a DEM,
and :data:`~telcoplan.outputs.COVERAGE` (layers ``coverage`` — covered area per operator and ``any`` —, ``areas``
— population covered per area — and ``sites``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from telcoplan import outputs
from telcoplan.errors import PlanError
from telcoplan.pipeline.checks import ParameterError, in_range, is_number, merge_defaults
from telcoplan.pipeline.stages._base import StageResult, Staging

if TYPE_CHECKING:
    import geopandas as gpd
    import pandas as pd

    from telcoplan.coverage.calibration import Calibration
    from telcoplan.coverage.thresholds import Thresholds
    from telcoplan.pipeline.inputs import PlanInputs

__all__ = ["DEFAULTS", "CoverageParams", "check_operator_names", "mark_synthetic", "parse", "run"]

log = logging.getLogger(__name__)

#: Parameters of the coverage stage with their defaults.
DEFAULTS: dict[str, Any] = {
    "model": "auto",
    "environment": "urban",
    "h_rx_m": 1.5,
    "max_radius_km": None,
    "indoor": False,
    "thresholds_dbm": {},
    "validity": "warn",
    "calibration": None,
    "terrain": True,
    "diffraction": "bullington",
    "per_technology": False,
}
VALIDITY = ("warn", "error", "ignore")
#: Grids of at least this many cells (a national one: 35 M) are "large": their coverage
#: polygons are normalized ones, traced on the whole grid at once (``polygonize_mask`` with
#: ``chunks`` in this process: :mod:`telcoplan.gis._trace`, a tenth of rasterio's and GEOS's CPU
#: time on the national grid, topologically the same polygons) while a thread writes the
#: rasters. Smaller grids (the demo) keep rasterio's whole-grid polygons, byte for byte.
_LARGE_GRID_CELLS = 4_000_000
#: Chunk shape passed for the large grids' polygons: in this process it only selects the traced,
#: normalized polygons (the chunk shape is not used); on a Dask cluster the default chunks apply.
_POLYGON_CHUNKS = 4096


@dataclass(frozen=True)
class CoverageParams:
    """Checked coverage parameters: the plan's values (as given), the thresholds they make and
    the calibration file they name, loaded."""

    model: str = "auto"
    environment: str = "urban"
    h_rx_m: float = 1.5
    max_radius_km: float | None = None
    indoor: bool = False
    thresholds_dbm: Mapping[str, float] = field(default_factory=dict)
    validity: str = "warn"
    calibration: str | None = None
    terrain: bool = True
    diffraction: str = "bullington"
    per_technology: bool = False
    calibration_fit: Calibration | None = None
    thresholds: Thresholds | None = None

    def plan_values(self) -> dict[str, Any]:
        """The plan-file parameters (defaults filled in), for :data:`~telcoplan.outputs.SUMMARY`."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name in DEFAULTS}

    def calibration_offsets(self) -> tuple[float, float] | None:
        """(intercept, slope) offsets of the calibration, or None."""
        fit = self.calibration_fit
        return None if fit is None else (fit.intercept_offset_db, fit.slope_offset_db_per_decade)


def parse(raw: Mapping[str, Any] | None, *, base: Path | None = None) -> CoverageParams:
    """Checked coverage-stage parameters (defaults filled in); all problems raised at once.

    ``calibration`` names a ``params.json`` written by ``telcoplan calibrate`` (relative to
    ``base``, the plan file's folder); it is loaded into ``calibration_fit``.
    """
    from telcoplan.coverage.choices import DIFFRACTION_METHODS
    from telcoplan.coverage.propagation import ENVIRONMENTS, MODELS
    from telcoplan.coverage.thresholds import Thresholds

    params, errs = merge_defaults("coverage", raw, DEFAULTS)
    if params["model"] not in (*MODELS, "auto"):
        errs.append(
            f"stages.coverage.model {params['model']!r} is unknown; choose auto or one of {', '.join(MODELS)}"
        )
    if params["environment"] not in ENVIRONMENTS:
        errs.append(
            f"stages.coverage.environment {params['environment']!r} is unknown; choose one of {', '.join(ENVIRONMENTS)}"
        )
    if params["diffraction"] not in DIFFRACTION_METHODS:
        *first, last = DIFFRACTION_METHODS
        errs.append(f"stages.coverage.diffraction must be {', '.join(first)} or {last}")
    if not isinstance(params["per_technology"], bool):
        errs.append("stages.coverage.per_technology must be true or false")
    if not isinstance(params["terrain"], bool):
        errs.append(
            "stages.coverage.terrain must be true or false (use the DEM when the plan has one)"
        )
    if params["validity"] not in VALIDITY:
        errs.append("stages.coverage.validity must be warn, error or ignore")
    for key, lo, hi in (("h_rx_m", 0.5, 30.0), ("max_radius_km", 0.1, 100.0)):
        v = params[key]
        if v is None and key == "max_radius_km":
            continue
        if not in_range(v, lo, hi):
            errs.append(f"stages.coverage.{key} must be a number in {lo:g}…{hi:g}, got {v!r}")
    fit = None
    if params["calibration"] is not None:
        fit = _load_calibration(params, base or Path.cwd(), errs)
    levels = params["thresholds_dbm"] or {}
    if not isinstance(levels, dict) or not all(is_number(v) for v in levels.values()):
        errs.append(
            "stages.coverage.thresholds_dbm must map technologies to levels in dBm, e.g. "
            f"{{4G: -105, 5G: -110}}; got {levels!r}"
        )
        levels = {}
    thresholds = None
    try:
        thresholds = Thresholds(levels, indoor=bool(params["indoor"]))
    except (ValueError, TypeError, AttributeError) as exc:
        errs.append(f"stages.coverage.thresholds_dbm: {exc}")
    if errs:
        raise ParameterError("coverage", errs)
    return CoverageParams(**params, calibration_fit=fit, thresholds=thresholds)


def _load_calibration(params: dict[str, Any], base: Path, errs: list[str]):
    from telcoplan.coverage.calibration import Calibration

    path = Path(str(params["calibration"]))
    path = path if path.is_absolute() else base / path
    try:
        cal = Calibration.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except FileNotFoundError:
        errs.append(
            f"stages.coverage.calibration: {path} not found (paths are relative to the plan file)"
        )
        return None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        errs.append(
            f"stages.coverage.calibration: {path} is not a params.json written by telcoplan calibrate ({exc})"
        )
        return None
    except PlanError as exc:
        errs.append(f"stages.coverage.calibration: {path}: {exc}")
        return None
    if cal.model != params["model"]:
        errs.append(
            f"stages.coverage.calibration: {path} was fitted for model {cal.model!r} but the coverage stage "
            f"uses {params['model']!r}; set `model: {cal.model}`"
        )
    return cal


def mark_synthetic(
    layers: dict[str, gpd.GeoDataFrame], inputs: PlanInputs
) -> dict[str, gpd.GeoDataFrame]:
    """Outputs of a synthetic plan (the demo) say so in every layer (a ``source`` column)."""
    if not inputs.plan.synthetic:
        return layers
    return {name: gdf.assign(source="synthetic telcoplan demo") for name, gdf in layers.items()}


def run(inputs: PlanInputs, params: CoverageParams, staging: Staging) -> StageResult:
    """Run the coverage stage (see the module's docstring); the result's value is the
    :class:`telcoplan.coverage.analysis.CoverageResult` (for the gaps stage)."""
    from telcoplan.coverage.analysis import (
        compute_coverage,
        coverage_and_population,
        population_covered,
    )
    from telcoplan.coverage.calibration import apply_site_offsets
    from telcoplan.gis.zonal import label_polygons

    fit = params.calibration_fit
    _check_calibration_matches(params, inputs.dem is not None)
    towers = inputs.vectors.get("towers")
    if towers is None or len(towers) == 0:
        raise PlanError(
            "the coverage stage needs a towers layer with at least one site (layers.towers)"
        )
    check_operator_names(towers, params.per_technology)
    grid = inputs.grid
    clutter = _clutter_grid(inputs, fit, params.calibration)
    log.info(
        "coverage: %d sites, model %s (%s), %s thresholds",
        len(towers),
        params.model,
        params.environment,
        "indoor" if params.indoor else "outdoor",
    )
    # a calibration's per-site offsets act on the kernel's towers only (EIRP shifted); the
    # outputs keep each site's own EIRP
    kernel_towers = towers if fit is None else apply_site_offsets(towers, fit)
    options = {
        "thresholds": params.thresholds,
        "model": params.model,
        "environment": params.environment,
        "h_rx_m": float(params.h_rx_m),
        "max_radius_km": params.max_radius_km,
        "validity": params.validity,
        "calibration": params.calibration_offsets(),
        "dem": inputs.dem if params.terrain else None,
        "diffraction": params.diffraction,
        "clutter_db": None if clutter is None else clutter.offset_db,
    }
    # on a Dask cluster the blocks of tiles give their coverage and their share of the
    # population tables at once; in this process, one kernel run then the zonal sums
    client = staging.client
    table = None
    if client is None:
        cov = compute_coverage(kernel_towers, grid, **options)
    else:
        cov, table = coverage_and_population(
            kernel_towers, grid, inputs.population, inputs.areas, client=client, **options
        )
    synthetic = {"synthetic": str(inputs.plan.synthetic).lower()}
    large = grid.width * grid.height >= _LARGE_GRID_CELLS
    # the rasters are written in a thread while the tables and polygons are made and the
    # GeoPackage written: GDAL compresses with the GIL released (the same files either way)
    with ThreadPoolExecutor(1, thread_name_prefix="telcoplan-rasters") as pool:
        # the sites' tables made here: pandas may enter warnings.catch_warnings, which is not
        # thread-safe (Python 3.11), so the thread does numpy and GDAL work only
        args = (cov, _site_tables(cov, towers), grid, staging.folder, synthetic)
        written = pool.submit(_write_rasters, *args)
        # the areas on the grid once: the population table's zones and the study area
        labels = label_polygons(inputs.areas, grid)
        if table is None:
            table = population_covered(cov, inputs.population, inputs.areas, labels=labels)
        # coverage polygons and areas within the study area (the grid's box also holds sea
        # and neighbours; the rasters keep the whole box)
        inside = labels >= 0
        del labels
        chunks = _POLYGON_CHUNKS if large and client is None else None
        rows, geoms = _coverage_polygons(cov, inside, table, chunks, client)
        del inside
        _write_coverage_layers(inputs, towers, table, rows, geoms, staging.folder)
        written.result()  # its error, if any (the pool waits for it either way)
    if params.per_technology:
        _write_per_technology(inputs, kernel_towers, params, clutter, staging.folder, synthetic)
    total = float(table["population"].sum())
    summary = _summary(inputs, params, cov, clutter, table, rows, total)
    if inputs.has_population:
        log.info(
            "coverage: %.1f%% of the population covered by any operator",
            summary["any"]["population_pct"],
        )
    if large:
        _return_freed_memory()
    return StageResult(summary, cov)


def _return_freed_memory() -> None:
    """Give the memory freed by the stage back to the system. glibc keeps freed blocks in its
    malloc arenas (the raster thread's one too): ~150 MB after a national coverage stage, which
    the next stages' peak would stand on. A no-op without glibc."""
    import ctypes

    try:
        trim = ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):  # not glibc (macOS, Windows, musl)
        return
    trim(0)


def _write_coverage_layers(
    inputs: PlanInputs,
    towers: gpd.GeoDataFrame,
    table: pd.DataFrame,
    rows: list[dict[str, Any]],
    geoms: list,
    folder: Path,
) -> None:
    """:data:`~telcoplan.outputs.COVERAGE`: its layers ``coverage``, ``areas`` and ``sites``."""
    import geopandas as gpd

    from telcoplan.gis.vector import write_vector_layers

    cover_gdf = gpd.GeoDataFrame(rows, geometry=geoms, crs=inputs.grid.crs)
    areas_out = inputs.areas[[inputs.areas.geometry.name]].join(table)
    for col in [
        c for c in table.columns if c.startswith("covered_") and c != "covered_best_single"
    ]:
        areas_out[col.replace("covered_", "pct_")] = np.where(
            table["population"] > 0, 100.0 * table[col] / table["population"], np.nan
        )
    sites = towers.reset_index()
    sites.insert(0, "row", np.arange(1, len(sites) + 1))
    write_vector_layers(
        folder / outputs.COVERAGE,
        mark_synthetic({"coverage": cover_gdf, "areas": areas_out, "sites": sites}, inputs),
        overwrite=True,
    )


def _coverage_polygons(
    cov, inside: np.ndarray, table: pd.DataFrame, chunks: int | None, client: Any
) -> tuple[list[dict[str, Any]], list]:
    """Per operator and for ``any``: the covered area and population (the layer's rows) and
    the covered cells within the study area (``inside``) as one (Multi)Polygon; tile by tile
    with ``chunks`` or a ``client`` (normalized polygons, topologically equal to the whole
    grid's: :func:`~telcoplan.gis.polygonize.polygonize_mask`)."""
    from telcoplan.gis.polygonize import polygonize_mask

    total = float(table["population"].sum())
    cell_km2 = cov.grid.cell_area_m2 / 1e6
    rows, geoms = [], []
    for i, op in enumerate([*cov.operators, "any"]):
        mask = (cov.covered[i] if op != "any" else cov.covered_any) & inside
        covered = float(table[f"covered_{op}"].sum())
        rows.append(
            {
                "operator": op,
                "area_km2": float(mask.sum()) * cell_km2,
                "population_covered": covered,
                "population_pct": 100.0 * covered / total if total else 0.0,
            }
        )
        geoms.append(polygonize_mask(mask, cov.grid, chunks=chunks, client=client))
    return rows, geoms


def _check_calibration_matches(params: CoverageParams, has_dem: bool) -> None:
    """Log when the calibration was fitted on another prediction than this run makes."""
    fit = params.calibration_fit
    terrain_on = bool(params.terrain) and has_dem
    if fit is not None and fit.terrain != terrain_on:
        log.warning(
            "%s was fitted %s terrain but this coverage run is %s; its offsets correct a "
            "different prediction (%s)",
            params.calibration,
            "with" if fit.terrain else "without",
            "with terrain" if terrain_on else "without terrain",
            "give the plan its DEM and terrain: true, or calibrate without --dem"
            if fit.terrain
            else "calibrate again with --dem, or set terrain: false",
        )
    elif fit is not None and terrain_on and fit.diffraction != params.diffraction:
        log.warning(
            "%s was fitted with %s diffraction but this coverage run uses %s; set "
            "`diffraction: %s` or calibrate again with --diffraction %s",
            params.calibration,
            fit.diffraction,
            params.diffraction,
            fit.diffraction,
            params.diffraction,
        )


def _site_tables(cov, towers) -> dict[str, tuple[np.ndarray, dict[str, np.ndarray]]]:
    """Per operator: the rows of its sites in ``towers`` (0-based) and the columns of its
    serving-site raster's attribute table (site_id, and name, technology, frequency_mhz)."""
    operator = towers["operator"].astype(str).to_numpy()
    tables = {}
    for op in cov.operators:
        mine = np.flatnonzero(operator == op)
        columns = {"site_id": towers.index.to_numpy()[mine].astype(str)}
        for col in ("name", "technology", "frequency_mhz"):
            if col in towers.columns:
                values = towers[col].to_numpy()[mine]
                columns[col] = values if col == "frequency_mhz" else values.astype(object)
        tables[op] = (mine, columns)
    return tables


def _write_rasters(cov, site_tables, grid, folder: Path, synthetic: dict) -> None:
    """Signal and serving-site rasters per operator (``site_tables``: :func:`_site_tables`),
    the operator count and the limit raster (grid-sized, written once: the fastest DEFLATE
    level; the ids, the count and the classes without a predictor)."""
    from telcoplan.gis.raster import write_attribute_table, write_raster

    for i, op in enumerate(cov.operators):
        write_raster(
            folder / outputs.signal_file(op),
            cov.power_dbm[i],
            grid,
            nodata=float("nan"),
            tags={
                "operator": op,
                "units": "dBm, total received power of the serving carrier",
                **synthetic,
            },
            description=f"{op} received power (dBm)",
            overwrite=True,
            fast=True,
        )
        write_raster(
            folder / outputs.server_file(op),
            np.add(cov.server[i], 1, dtype=np.int32),  # one temporary, not two
            grid,
            nodata=0,
            tags={
                "operator": op,
                "units": f"1-based row of {outputs.COVERAGE} layer 'sites' (site_id: the .aux.xml table)",
                **synthetic,
            },
            description=f"{op} serving site",
            overwrite=True,
            fast=True,
            categorical=True,
        )
        # the site behind each value, for GIS tools (QGIS/GDAL read the .aux.xml sidecar)
        mine, columns = site_tables[op]
        write_attribute_table(folder / outputs.server_file(op), mine + 1, columns, name="site_id")
    write_raster(
        folder / outputs.OPERATORS_COUNT,
        cov.operator_count,
        grid,
        nodata=255,
        tags={"units": "number of operators above threshold", **synthetic},
        overwrite=True,
        fast=True,
        categorical=True,
    )
    if cov.limit is not None:
        write_raster(
            folder / outputs.COVERAGE_LIMIT,
            cov.limit,
            grid,
            nodata=255,
            tags={
                "units": "0 covered, 1 not covered: distance, 2 not covered: terrain",
                **synthetic,
            },
            description="what ends coverage",
            overwrite=True,
            fast=True,
            categorical=True,
        )


def _summary(inputs, params: CoverageParams, cov, clutter, table, rows, total) -> dict[str, Any]:
    """The coverage stage's part of :data:`~telcoplan.outputs.SUMMARY`."""
    fit = params.calibration_fit
    summary: dict[str, Any] = {
        "parameters": params.plan_values()
        | {
            "thresholds": cov.thresholds.to_dict(),
            "calibration_fit": None if fit is None else _fit_summary(fit),
        },
        "clutter": {"applied": False}
        if clutter is None
        else {
            "applied": True,
            "share_pct": clutter.share_pct,
            "unknown_pct": clutter.unknown_pct,
            "nodata_pct": clutter.nodata_pct,
        },
    }
    for row in rows:
        summary[row["operator"]] = {
            "population_covered": round(row["population_covered"], 1),
            "population_pct": round(row["population_pct"], 3),
            "area_km2": round(row["area_km2"], 3),
        }
    per_op = {op: summary[op]["population_covered"] for op in cov.operators}
    best = max(per_op, key=per_op.get) if per_op else None
    summary["best_single_operator"] = {
        "operator": best,
        "population_covered": per_op.get(best, 0.0),
        "population_pct": summary[best]["population_pct"] if best else 0.0,
    }
    summary["by_technology"] = {
        f"{t}_plus": {
            "population_covered": round(float(table[f"covered_{t}_plus"].sum()), 1),
            "population_pct": round(100.0 * float(table[f"covered_{t}_plus"].sum()) / total, 3)
            if total
            else 0.0,
        }
        for t in ("2G", "3G", "4G", "5G")
    }
    if "urban" in inputs.areas.columns and inputs.areas["urban"].notna().all():
        urban = inputs.areas["urban"].astype(bool).to_numpy()
        summary["urban_rural"] = {
            name: _class_coverage(table, sel, cov.operators)
            for name, sel in (("urban", urban), ("rural", ~urban))
        }
    if cov.limit is not None:
        from telcoplan.coverage.analysis import LIMIT_DISTANCE, LIMIT_TERRAIN

        pop = np.where(np.isfinite(inputs.population), inputs.population, 0.0)
        summary["limit"] = {
            "population_not_covered_distance": round(
                float(pop[cov.limit == LIMIT_DISTANCE].sum()), 1
            ),
            "population_not_covered_terrain": round(
                float(pop[cov.limit == LIMIT_TERRAIN].sum()), 1
            ),
        }
        if inputs.dem is not None:
            # where the DEM has no data terrain is not modelled (flat earth): what "behind
            # terrain" can count (layers.dem warns of it too)
            void = ~np.isfinite(inputs.dem)
            summary["limit"]["dem_cells_pct"] = round(100.0 * (1.0 - float(void.mean())), 2)
            summary["limit"]["population_without_dem"] = round(float(pop[void].sum()), 1)
    summary["areas"] = [
        {
            "name": str(idx),
            "population": round(float(r["population"]), 1),
            "covered_any": round(float(r["covered_any"]), 1),
            "uncovered_any": round(float(r["uncovered_any"]), 1),
            **{f"covered_{op}": round(float(r[f"covered_{op}"]), 1) for op in cov.operators},
        }
        for idx, r in table.iterrows()
    ]
    return summary if inputs.has_population else _without_population(summary)


def _without_population(summary: dict[str, Any]) -> dict[str, Any]:
    """The summary of a run without population: every population figure null (not 0: nobody
    was counted), the areas' covered persons too; areas, operators and km² are kept."""
    persons = ("population", "population_covered", "population_pct")

    def null(value: object) -> object:
        if isinstance(value, dict):
            ranked = "operator" in value and "population_covered" in value  # best single: none
            return {
                k: None
                if k in persons
                or k.startswith(("covered_", "uncovered_", "population_"))
                or (ranked and k == "operator")
                else null(v)
                for k, v in value.items()
            }
        if isinstance(value, list):
            return [null(v) for v in value]
        return value

    keep = ("parameters", "clutter")
    return {k: v if k in keep else null(v) for k, v in summary.items()}


def _fit_summary(fit: Calibration) -> dict[str, Any]:
    """The calibration for the summary: its parameters and figures, and of its cross-validation
    the chosen configuration and its error (the candidates' table stays in params.json)."""
    d = fit.to_dict()
    cv = d.get("cv")
    if isinstance(cv, dict) and isinstance(cv.get("candidates"), list):
        d["cv"] = {k: v for k, v in cv.items() if k != "candidates"} | {
            "candidates": len(cv["candidates"])
        }
    return d


def _class_coverage(
    table: pd.DataFrame, sel: np.ndarray, operators: tuple[str, ...]
) -> dict[str, Any]:
    """Population covered in the areas ``sel`` (urban or rural): any, best single, per operator.

    ``population`` and ``covered_any`` (persons) as before; ``any``, ``best_single_operator``
    and ``operators.<operator>`` carry ``population_covered`` (persons) and ``population_pct``
    (% of the class's population), named as the national figures. The best single operator is
    chosen as nationally (ITU SDG 9.c.1): the operator covering the most persons *in the whole
    class* (ties: the first in operator order), not the sum of per-area bests.
    """
    pop = float(table["population"][sel].sum())

    def figures(covered: float) -> dict[str, float]:
        return {
            "population_covered": round(covered, 1),
            "population_pct": round(100.0 * covered / pop, 3) if pop else 0.0,
        }

    per_op = {op: float(table[f"covered_{op}"][sel].sum()) for op in operators}
    rounded = {op: round(v, 1) for op, v in per_op.items()}
    best = max(rounded, key=rounded.get) if rounded else None
    covered_any = float(table["covered_any"][sel].sum())
    return {
        "population": round(pop, 1),
        "covered_any": round(covered_any, 1),
        "any": figures(covered_any),
        "best_single_operator": {"operator": best, **figures(per_op[best] if best else 0.0)},
        "operators": {op: figures(v) for op, v in per_op.items()},
    }


def _clutter_grid(inputs: PlanInputs, fit, calibration_path):
    """The calibration's clutter offsets on the plan's land-use layer, or None (logged why)."""
    if fit is None or not fit.clutter_offsets_db:
        if inputs.land_use is not None:
            log.warning(
                "the plan's land-use layer is not used: %s",
                "no calibration (stages.coverage.calibration) gives clutter offsets"
                if fit is None
                else f"{calibration_path} was fitted without clutter classes "
                "(calibrate with --land-use)",
            )
        return None
    if inputs.land_use is None:
        log.warning(
            "%s has clutter offsets (%s) but the plan has no land-use layer: they are not "
            "applied; add `layers.land_use: {path: <raster>, classes: <code,name CSV>}` or "
            "`{path: <polygons>, column: <class column>}`",
            calibration_path,
            ", ".join(f"{k} {v:+.1f} dB" for k, v in fit.clutter_offsets_db.items()),
        )
        return None
    from telcoplan.coverage.calibration import clutter_offset_grid

    grid = clutter_offset_grid(fit, inputs.land_use, inputs.land_use_names)
    log.info(
        "clutter offsets applied: %s",
        ", ".join(f"{k} {v:.1f}% of cells" for k, v in grid.share_pct.items()),
    )
    if grid.unknown_pct:
        log.warning(
            "land-use classes the calibration was not fitted on get 0 dB (its reference "
            "class): %s; calibrate with drive tests through them to fit their offsets",
            ", ".join(f"{k} ({v:.1f}% of cells)" for k, v in grid.unknown_pct.items()),
        )
    return grid


def check_operator_names(towers: gpd.GeoDataFrame, per_technology: bool) -> None:
    """Refuse operator names that the outputs cannot tell apart or cannot carry.

    File names use :func:`telcoplan.outputs.slug` (``Alpha`` and ``Alpha!`` both give
    ``signal_alpha.tif``), GeoPackage field names ignore case (``covered_Alpha``,
    ``covered_ALPHA``), and some names are taken by the summary's and the areas layer's own keys
    (``any``, ``clutter``, ``4G_plus`` …: :data:`telcoplan.outputs.RESERVED_OPERATOR_NAMES`).
    """
    ops = sorted(towers["operator"].astype(str).unique())
    reserved = [op for op in ops if op.lower() in outputs.RESERVED_OPERATOR_NAMES]
    if reserved:
        raise PlanError(
            f"operator name(s) {', '.join(map(repr, reserved))} are reserved for the outputs' own "
            f"keys ({', '.join(sorted(outputs.RESERVED_OPERATOR_NAMES))}); rename them in the towers "
            "layer's `operator` column"
        )
    owners: dict[str, list[str]] = {}  # output (file or field) → the operators writing it
    for op in ops:
        files = [outputs.signal_file(op), f"field covered_{op.lower()}"]
        if per_technology:
            techs = towers.loc[towers["operator"].astype(str) == op, "technology"].astype(str)
            files += [outputs.signal_file(op, t) for t in sorted(set(techs))]
        for f in files:
            owners.setdefault(f, []).append(op)
    clashes: dict[tuple[str, ...], str] = {}  # each group of operators once, with one output
    for f, who in owners.items():
        if len(who) > 1:
            clashes.setdefault(tuple(sorted(set(who))), f.removeprefix("field "))
    if clashes:
        operator = towers["operator"].astype(str)

        def first_site(op: str) -> str:  # where the user finds the name (the towers' index)
            return f"{op!r} (first at site {towers.index[np.flatnonzero(operator == op)[0]]})"

        raise PlanError(
            "operator names that the outputs cannot tell apart: "
            + "; ".join(
                f"{', '.join(map(first_site, who))} all give {f}"
                for who, f in sorted(clashes.items())
            )
            + "; rename them in the towers layer's `operator` column so that each gives its own"
        )


def _write_per_technology(
    inputs: PlanInputs, towers, params: CoverageParams, clutter, folder: Path, synthetic: dict
) -> None:
    """:func:`~telcoplan.outputs.signal_file` (operator, technology): best received power per operator and technology."""
    from telcoplan.coverage.bestserver import best_server
    from telcoplan.gis.raster import write_raster

    res = best_server(
        towers,
        inputs.grid,
        model=params.model,
        environment=params.environment,
        h_rx_m=float(params.h_rx_m),
        max_radius_km=params.max_radius_km,
        group_by=["operator", "technology"],
        validity="ignore",
        dem=inputs.dem if params.terrain else None,
        diffraction=params.diffraction,
        calibration=params.calibration_offsets(),
        clutter_db=None if clutter is None else clutter.offset_db,
    )
    for i, name in enumerate(res.groups):
        op, tech = name.rsplit("/", 1)
        write_raster(
            folder / outputs.signal_file(op, tech),
            res.power_dbm[i],
            inputs.grid,
            nodata=float("nan"),
            tags={
                "operator": op,
                "technology": tech,
                "units": "dBm, total received power",
                **synthetic,
            },
            description=f"{op} {tech} received power (dBm)",
            overwrite=True,
        )
