"""Plan stages: each takes the loaded inputs and its parameters, writes its outputs into a
staging folder (through the ``gis`` writers) and returns its part of ``summary.json``.
"""

from __future__ import annotations

import logging
import math
import re
import unicodedata
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import geopandas as gpd
import numpy as np
import pandas as pd

from telcoplan.errors import PlanError

if TYPE_CHECKING:
    from telcoplan.coverage.analysis import CoverageResult
    from telcoplan.plan import PlanInputs

__all__ = [
    "BACKBONE_PARAMETERS",
    "COVERAGE_PARAMETERS",
    "GAPS_PARAMETERS",
    "REPORT_PARAMETERS",
    "backbone_parameters",
    "coverage_parameters",
    "gaps_parameters",
    "physical_sites",
    "report_parameters",
    "run_backbone",
    "run_calibration",
    "run_coverage",
    "run_gaps",
    "run_map",
    "run_report",
    "slug",
]

log = logging.getLogger(__name__)

#: Parameters of the coverage stage with their defaults.
COVERAGE_PARAMETERS: dict[str, Any] = {
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


#: Parameters of the gaps stage with their defaults.
GAPS_PARAMETERS: dict[str, Any] = {"min_population": 10.0, "min_density_per_km2": 10.0}


def slug(name: str) -> str:
    """File-name-safe ASCII form of an operator name: 'Viettel' → 'viettel', 'Đà Nẵng' → 'da-nang'."""
    text = unicodedata.normalize("NFKD", str(name).replace("Đ", "D").replace("đ", "d"))
    text = "".join(ch for ch in text if not unicodedata.combining(ch))
    text = re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower()
    return text or "unnamed"


def _mark(layers: dict[str, gpd.GeoDataFrame], inputs: PlanInputs) -> dict[str, gpd.GeoDataFrame]:
    """Outputs of a synthetic plan (the demo) say so in every layer (a ``source`` column)."""
    if not inputs.plan.synthetic:
        return layers
    return {name: gdf.assign(source="synthetic telcoplan demo") for name, gdf in layers.items()}


def coverage_parameters(
    raw: Mapping[str, Any] | None, source: str = "plan", base: Path | None = None
) -> dict[str, Any]:
    """Checked coverage-stage parameters (defaults filled in); all problems reported at once.

    ``calibration`` names a ``params.json`` written by ``telcoplan calibrate`` (relative to
    ``base``, the plan file's folder); it is loaded into ``params["calibration_fit"]``.
    """
    from telcoplan.coverage.propagation import ENVIRONMENTS, MODELS
    from telcoplan.coverage.thresholds import Thresholds

    raw = dict(raw or {})
    errs = [
        f"stages.coverage: unknown parameter {k!r}; known: {', '.join(COVERAGE_PARAMETERS)}"
        for k in raw
        if k not in COVERAGE_PARAMETERS
    ]
    params = {**COVERAGE_PARAMETERS, **{k: v for k, v in raw.items() if k in COVERAGE_PARAMETERS}}
    if params["model"] not in (*MODELS, "auto"):
        errs.append(
            f"stages.coverage.model {params['model']!r} is unknown; choose auto or one of {', '.join(MODELS)}"
        )
    if params["environment"] not in ENVIRONMENTS:
        errs.append(
            f"stages.coverage.environment {params['environment']!r} is unknown; choose one of {', '.join(ENVIRONMENTS)}"
        )
    if params["diffraction"] not in ("deygout", "bullington", "epstein-peterson"):
        errs.append("stages.coverage.diffraction must be deygout, bullington or epstein-peterson")
    if not isinstance(params["per_technology"], bool):
        errs.append("stages.coverage.per_technology must be true or false")
    if not isinstance(params["terrain"], bool):
        errs.append(
            "stages.coverage.terrain must be true or false (use the DEM when the plan has one)"
        )
    if params["validity"] not in ("warn", "error", "ignore"):
        errs.append("stages.coverage.validity must be warn, error or ignore")
    for key, lo, hi in (("h_rx_m", 0.5, 30.0), ("max_radius_km", 0.1, 100.0)):
        v = params[key]
        if v is None and key == "max_radius_km":
            continue
        if not isinstance(v, int | float) or isinstance(v, bool) or not lo <= v <= hi:
            errs.append(f"stages.coverage.{key} must be a number in {lo:g}…{hi:g}, got {v!r}")
    params["calibration_fit"] = None
    if params["calibration"] is not None:
        params["calibration_fit"] = _load_calibration(params, base or Path.cwd(), errs)
    levels = params["thresholds_dbm"] or {}
    if not isinstance(levels, dict) or not all(
        isinstance(v, int | float) and not isinstance(v, bool) for v in levels.values()
    ):
        errs.append(
            "stages.coverage.thresholds_dbm must map technologies to levels in dBm, e.g. "
            f"{{4G: -105, 5G: -110}}; got {levels!r}"
        )
        levels = {}
    try:
        params["thresholds"] = Thresholds(levels, indoor=bool(params["indoor"]))
    except (ValueError, TypeError, AttributeError) as exc:
        errs.append(f"stages.coverage.thresholds_dbm: {exc}")
    if errs:
        raise PlanError(
            f"{source}: {len(errs)} problem(s) in the coverage parameters:\n"
            + "\n".join(f"  - {e}" for e in errs)
        )
    return params


def _load_calibration(params: dict[str, Any], base: Path, errs: list[str]):
    import json

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


def run_coverage(
    inputs: PlanInputs, raw_params: Mapping[str, Any] | None, staging: Path
) -> dict[str, Any]:
    """The coverage stage: signal rasters, coverage polygons, population covered.

    Writes ``signal_<operator>.tif`` (float32 dBm, total received power of the serving carrier),
    ``server_<operator>.tif`` (int32, 1-based row of the serving site in ``coverage.gpkg``'s
    ``sites`` layer; 0 = none), ``operators_count.tif`` (uint8) and ``coverage.gpkg`` (layers
    ``coverage`` — covered area per operator and ``any`` —, ``areas`` — population covered per area
    —, and ``sites``).
    """
    from telcoplan.coverage.analysis import compute_coverage, population_covered
    from telcoplan.gis.polygonize import polygonize_mask
    from telcoplan.gis.raster import write_attribute_table, write_raster
    from telcoplan.gis.vector import write_vector_layers

    base = inputs.plan.path.resolve().parent if inputs.plan.path is not None else None
    params = coverage_parameters(raw_params, str(inputs.plan.path or inputs.plan.name), base)
    fit = params["calibration_fit"]
    terrain_on = bool(params["terrain"]) and inputs.dem is not None
    if fit is not None and fit.terrain != terrain_on:
        log.warning(
            "%s was fitted %s terrain but this coverage run is %s; its offsets correct a "
            "different prediction (%s)",
            params["calibration"],
            "with" if fit.terrain else "without",
            "with terrain" if terrain_on else "without terrain",
            "give the plan its DEM and terrain: true, or calibrate without --dem"
            if fit.terrain
            else "calibrate again with --dem, or set terrain: false",
        )
    elif fit is not None and terrain_on and fit.diffraction != params["diffraction"]:
        log.warning(
            "%s was fitted with %s diffraction but this coverage run uses %s; set "
            "`diffraction: %s` or calibrate again with --diffraction %s",
            params["calibration"],
            fit.diffraction,
            params["diffraction"],
            fit.diffraction,
            params["diffraction"],
        )
    towers = inputs.vectors.get("towers")
    if towers is None or len(towers) == 0:
        raise PlanError(
            "the coverage stage needs a towers layer with at least one site (layers.towers)"
        )
    _check_output_names(towers, bool(params["per_technology"]))
    grid = inputs.grid
    clutter = _clutter_grid(inputs, fit, params["calibration"])
    log.info(
        "coverage: %d sites, model %s (%s), %s thresholds",
        len(towers),
        params["model"],
        params["environment"],
        "indoor" if params["indoor"] else "outdoor",
    )
    cov = compute_coverage(
        towers,
        grid,
        thresholds=params["thresholds"],
        model=params["model"],
        environment=params["environment"],
        h_rx_m=float(params["h_rx_m"]),
        max_radius_km=params["max_radius_km"],
        validity=params["validity"],
        calibration=None
        if fit is None
        else (fit.intercept_offset_db, fit.slope_offset_db_per_decade),
        dem=inputs.dem if params["terrain"] else None,
        diffraction=params["diffraction"],
        clutter_db=None if clutter is None else clutter.offset_db,
    )
    synthetic = {"synthetic": str(inputs.plan.synthetic).lower()}
    for i, op in enumerate(cov.operators):
        write_raster(
            staging / _signal_file(op),
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
        )
        write_raster(
            staging / _server_file(op),
            (cov.server[i] + 1).astype(np.int32),
            grid,
            nodata=0,
            tags={
                "operator": op,
                "units": "1-based row of coverage.gpkg layer 'sites' (site_id: the .aux.xml table)",
                **synthetic,
            },
            description=f"{op} serving site",
            overwrite=True,
        )
        # the site behind each value, for GIS tools (QGIS/GDAL read the .aux.xml sidecar)
        mine = np.flatnonzero(towers["operator"].astype(str).to_numpy() == op)
        columns = {"site_id": towers.index.to_numpy()[mine].astype(str)}
        for col in ("name", "technology", "frequency_mhz"):
            if col in towers.columns:
                values = towers[col].to_numpy()[mine]
                columns[col] = values if col == "frequency_mhz" else values.astype(object)
        write_attribute_table(staging / _server_file(op), mine + 1, columns, name="site_id")
    write_raster(
        staging / "operators_count.tif",
        cov.operator_count,
        grid,
        nodata=255,
        tags={"units": "number of operators above threshold", **synthetic},
        overwrite=True,
    )

    if params["per_technology"]:
        _write_per_technology(inputs, towers, params, fit, clutter, staging, synthetic)
    if cov.limit is not None:
        write_raster(
            staging / "coverage_limit.tif",
            cov.limit,
            grid,
            nodata=255,
            tags={
                "units": "0 covered, 1 not covered: distance, 2 not covered: terrain",
                **synthetic,
            },
            description="what ends coverage",
            overwrite=True,
        )
    table = population_covered(cov, inputs.population, inputs.areas)
    total = float(table["population"].sum())
    cell_km2 = grid.cell_area_m2 / 1e6
    # coverage polygons and areas within the study area (the grid's box also holds sea and
    # neighbours; the rasters keep the whole box)
    from telcoplan.gis.zonal import label_polygons

    inside = label_polygons(inputs.areas, grid) >= 0
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
        geoms.append(polygonize_mask(mask, grid))
    cover_gdf = gpd.GeoDataFrame(rows, geometry=geoms, crs=grid.crs)
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
        staging / "coverage.gpkg",
        _mark({"coverage": cover_gdf, "areas": areas_out, "sites": sites}, inputs),
        overwrite=True,
    )

    summary: dict[str, Any] = {
        "parameters": {
            k: v for k, v in params.items() if k not in ("thresholds", "calibration_fit")
        }
        | {
            "thresholds": cov.thresholds.to_dict(),
            "calibration_fit": None if fit is None else fit.to_dict(),
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
    log.info(
        "coverage: %.1f%% of the population covered by any operator",
        summary["any"]["population_pct"],
    )
    return summary, cov


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


def _signal_file(op: str, tech: str | None = None) -> str:
    """Name of an operator's (or operator and technology's) signal raster."""
    return f"signal_{slug(op)}.tif" if tech is None else f"signal_{slug(op)}-{tech.lower()}.tif"


def _server_file(op: str) -> str:
    return f"server_{slug(op)}.tif"


def _check_output_names(towers: gpd.GeoDataFrame, per_technology: bool) -> None:
    """Refuse operator names that the outputs cannot tell apart or cannot carry.

    File names use :func:`slug` (``Alpha`` and ``Alpha!`` both give ``signal_alpha.tif``),
    GeoPackage field names ignore case (``covered_Alpha``, ``covered_ALPHA``), and some names
    are taken by the summary's and the areas layer's own keys (``any``, ``clutter``, ``4G_plus``
    …: :data:`telcoplan.report.summary.RESERVED_OPERATOR_NAMES`).
    """
    from telcoplan.report.summary import RESERVED_OPERATOR_NAMES

    ops = sorted(towers["operator"].astype(str).unique())
    reserved = [op for op in ops if op.lower() in RESERVED_OPERATOR_NAMES]
    if reserved:
        raise PlanError(
            f"operator name(s) {', '.join(map(repr, reserved))} are reserved for the outputs' own "
            f"keys ({', '.join(sorted(RESERVED_OPERATOR_NAMES))}); rename them in the towers "
            "layer's `operator` column"
        )
    owners: dict[str, list[str]] = {}  # output (file or field) → the operators writing it
    for op in ops:
        files = [_signal_file(op), f"field covered_{op.lower()}"]
        if per_technology:
            techs = towers.loc[towers["operator"].astype(str) == op, "technology"].astype(str)
            files += [_signal_file(op, t) for t in sorted(set(techs))]
        for f in files:
            owners.setdefault(f, []).append(op)
    clashes: dict[tuple[str, ...], str] = {}  # each group of operators once, with one output
    for f, who in owners.items():
        if len(who) > 1:
            clashes.setdefault(tuple(sorted(set(who))), f.removeprefix("field "))
    if clashes:
        raise PlanError(
            "operator names that the outputs cannot tell apart: "
            + "; ".join(
                f"{', '.join(map(repr, who))} (all give {f})" for who, f in sorted(clashes.items())
            )
            + "; rename them in the towers layer's `operator` column so that each gives its own"
        )


def gaps_parameters(raw: Mapping[str, Any] | None, source: str = "plan") -> dict[str, Any]:
    """Checked gaps-stage parameters (defaults filled in)."""
    raw = dict(raw or {})
    errs = [
        f"stages.gaps: unknown parameter {k!r}; known: {', '.join(GAPS_PARAMETERS)}"
        for k in raw
        if k not in GAPS_PARAMETERS
    ]
    params = {**GAPS_PARAMETERS, **{k: v for k, v in raw.items() if k in GAPS_PARAMETERS}}
    v = params["min_population"]
    if not isinstance(v, int | float) or isinstance(v, bool) or v < 0:
        errs.append(
            f"stages.gaps.min_population must be a non-negative number of persons, got {v!r}"
        )
    if errs:
        raise PlanError(
            f"{source}: {len(errs)} problem(s) in the gaps parameters:\n"
            + "\n".join(f"  - {e}" for e in errs)
        )
    return params


def run_gaps(
    inputs: PlanInputs, cov: CoverageResult, raw_params: Mapping[str, Any] | None, staging: Path
) -> dict[str, Any]:
    """The gaps stage: ``gaps.gpkg`` with layers ``gaps`` (ranked), ``single_operator`` and ``pois``."""
    from telcoplan.coverage.gaps import find_gaps, poi_service, single_operator_areas
    from telcoplan.gis.vector import write_vector_layers

    params = gaps_parameters(raw_params, str(inputs.plan.path or inputs.plan.name))
    towers = inputs.vectors["towers"]
    gaps = find_gaps(
        cov,
        inputs.population,
        min_population=float(params["min_population"]),
        min_density_per_km2=float(params["min_density_per_km2"]),
        towers=towers,
        fiber=inputs.vectors.get("fiber"),
    )
    single = single_operator_areas(cov, inputs.population)
    layers = {"gaps": gaps, "single_operator": single}
    summary: dict[str, Any] = {
        "count": len(gaps),
        "population": round(float(gaps["population"].sum()), 1),
        "area_km2": round(float(gaps["area_km2"].sum()), 3),
        "largest": [
            {
                "gap_id": int(i),
                "population": round(float(r["population"]), 1),
                "area_km2": round(float(r["area_km2"]), 3),
                "dist_tower_m": round(float(r["dist_tower_m"]), 1),
                # null without a fiber layer
                "dist_fiber_m": round(float(r["dist_fiber_m"]), 1)
                if np.isfinite(r["dist_fiber_m"])
                else None,
            }
            for i, r in gaps.head(10).iterrows()
        ],
        "single_operator": {
            r["operator"]: round(float(r["population"]), 1) for _, r in single.iterrows()
        },
    }
    if "pois" in inputs.vectors:
        service = poi_service(cov, inputs.vectors["pois"], towers)
        layers["pois"] = service
        summary["pois"] = {
            "count": len(service),
            "served": int(service["served"].sum()),
            "unserved": sorted(map(str, service.index[~service["served"]]))[:50],
        }
    write_vector_layers(staging / "gaps.gpkg", _mark(layers, inputs), overwrite=True)
    log.info("gaps: %d gaps with %.0f persons", summary["count"], summary["population"])
    return summary


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


def _write_per_technology(
    inputs: PlanInputs, towers, params, fit, clutter, staging: Path, synthetic: dict
) -> None:
    """``signal_<operator>-<technology>.tif``: best received power per operator and technology."""
    from telcoplan.coverage.bestserver import best_server
    from telcoplan.gis.raster import write_raster

    res = best_server(
        towers,
        inputs.grid,
        model=params["model"],
        environment=params["environment"],
        h_rx_m=float(params["h_rx_m"]),
        max_radius_km=params["max_radius_km"],
        group_by=["operator", "technology"],
        validity="ignore",
        dem=inputs.dem if params["terrain"] else None,
        diffraction=params["diffraction"],
        calibration=None
        if fit is None
        else (fit.intercept_offset_db, fit.slope_offset_db_per_decade),
        clutter_db=None if clutter is None else clutter.offset_db,
    )
    for i, name in enumerate(res.groups):
        op, tech = name.rsplit("/", 1)
        write_raster(
            staging / _signal_file(op, tech),
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


#: Parameters of the backbone stage with their defaults.
BACKBONE_PARAMETERS: dict[str, Any] = {
    "own_fiber_factor": 0.02,
    "lease_factor": 0.3,
    "cost_per_m": {},
    "fiber_tolerance_m": 5.0,
    "max_snap_m": 10_000.0,
    "shapley": True,
    "protect": "none",
}
#: Which sites the backbone stage protects with rings.
PROTECT_CHOICES = ("none", "shared", "pois", "shared+pois", "all")
#: A POI is served (for ring protection) by the nearest site within this distance (m).
POI_SITE_DISTANCE_M = 2_000.0


def backbone_parameters(raw: Mapping[str, Any] | None, source: str = "plan") -> dict[str, Any]:
    """Checked backbone-stage parameters (defaults filled in); all problems reported at once."""
    raw = dict(raw or {})
    errs = [
        f"stages.backbone: unknown parameter {k!r}; known: {', '.join(BACKBONE_PARAMETERS)}"
        for k in raw
        if k not in BACKBONE_PARAMETERS
    ]
    params = {**BACKBONE_PARAMETERS, **{k: v for k, v in raw.items() if k in BACKBONE_PARAMETERS}}
    for key, lo, hi in (
        ("own_fiber_factor", 0.0, 1.0),
        ("fiber_tolerance_m", 0.0, 100.0),
        ("max_snap_m", 1.0, 100_000.0),
    ):
        v = params[key]
        if not isinstance(v, int | float) or isinstance(v, bool) or not lo <= v <= hi:
            errs.append(f"stages.backbone.{key} must be a number in {lo:g}…{hi:g}, got {v!r}")
    lf = params["lease_factor"]
    if lf is not None and (
        not isinstance(lf, int | float) or isinstance(lf, bool) or not 0 <= lf <= 10
    ):
        errs.append(
            f"stages.backbone.lease_factor must be a number in 0…10, or null to forbid leasing; got {lf!r}"
        )
    from telcoplan.layers.schemas import ROAD_CLASSES
    from telcoplan.plan import _suggest

    costs = params["cost_per_m"]
    known = (*ROAD_CLASSES, "access")
    if not isinstance(costs, dict):
        errs.append("stages.backbone.cost_per_m must map road classes to costs per metre ≥ 0")
    else:
        for k, v in costs.items():
            if k not in known:
                errs.append(
                    f"stages.backbone.cost_per_m: unknown road class {k!r}"
                    f"{_suggest(str(k), known)}; known: {', '.join(known)}"
                )
            if not (isinstance(v, int | float) and not isinstance(v, bool) and 0 <= v < math.inf):
                errs.append(
                    f"stages.backbone.cost_per_m.{k} must be a finite cost per metre ≥ 0, got {v!r}"
                )
    own, lf = params["own_fiber_factor"], params["lease_factor"]
    if (
        isinstance(own, int | float)
        and isinstance(lf, int | float)
        and not isinstance(lf, bool)
        and own > min(lf, 1.0)
    ):
        errs.append(
            f"stages.backbone.own_fiber_factor ({own:g}) must not exceed lease_factor ({lf:g}): "
            "using one's own fiber cannot cost more than leasing another's"
        )
    if params["protect"] not in PROTECT_CHOICES:
        errs.append(
            f"stages.backbone.protect must be one of {', '.join(PROTECT_CHOICES)}; "
            f"got {params['protect']!r}"
        )
    if not isinstance(params["shapley"], bool):
        errs.append(f"stages.backbone.shapley must be true or false, got {params['shapley']!r}")
    if errs:
        raise PlanError(
            f"{source}: {len(errs)} problem(s) in the backbone parameters:\n"
            + "\n".join(f"  - {e}" for e in errs)
        )
    return params


def physical_sites(
    towers: gpd.GeoDataFrame, tolerance_m: float = 1.0
) -> tuple[gpd.GeoDataFrame, dict[str, list[str]]]:
    """Group co-located towers (chains of towers within ``tolerance_m`` of each other) into
    physical sites with their operators.

    Returns the sites (index = the group's first tower's ``site_id``, at its position) and
    ``{site: [operators]}``.
    """
    import shapely
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    geoms = towers.geometry.to_numpy()
    n = len(geoms)
    a, b = shapely.STRtree(geoms).query(geoms, predicate="dwithin", distance=tolerance_m)
    _, label = connected_components(
        coo_matrix((np.ones(len(a)), (a, b)), shape=(n, n)), directed=False
    )
    ids = towers.index.astype(str).to_numpy()
    first: dict[int, int] = {}
    ops: dict[str, set[str]] = {}
    for i, (lab, op) in enumerate(zip(label.tolist(), towers["operator"].astype(str), strict=True)):
        site = ids[first.setdefault(lab, i)]
        ops.setdefault(site, set()).add(op)
    keep = sorted(first.values())
    sites = gpd.GeoDataFrame(geometry=geoms[keep], index=ids[keep], crs=towers.crs)
    return sites, {s: sorted(o) for s, o in ops.items()}


def run_backbone(
    inputs: PlanInputs, raw_params: Mapping[str, Any] | None, staging: Path
) -> dict[str, Any]:
    """The backbone stage: ``backbone.gpkg`` (links of the joint and separate plans) and key figures."""
    from telcoplan.backbone.graph import build_graph, has_own_fiber, operator_costs, snap_sites
    from telcoplan.backbone.plans import plan_backbone, plan_links
    from telcoplan.gis.vector import write_vector_layers

    params = backbone_parameters(raw_params, str(inputs.plan.path or inputs.plan.name))
    roads, towers = inputs.vectors.get("roads"), inputs.vectors.get("towers")
    if roads is None or towers is None:
        raise PlanError(
            "the backbone stage needs the roads and towers layers (layers.roads, layers.towers)"
        )
    graph = build_graph(
        roads,
        fiber=inputs.vectors.get("fiber"),
        cost_per_m=params["cost_per_m"],
        fiber_tolerance_m=float(params["fiber_tolerance_m"]),
    )
    sites, site_ops = physical_sites(towers)
    graph, nodes = snap_sites(graph, sites, max_distance_m=float(params["max_snap_m"]))
    operators = sorted({o for ops in site_ops.values() for o in ops})
    graph = operator_costs(
        graph,
        operators,
        own_fiber_factor=float(params["own_fiber_factor"]),
        lease_factor=None if params["lease_factor"] is None else float(params["lease_factor"]),
    )
    log.info(
        "backbone: %d physical sites of %d operators on a %d-node road graph",
        len(sites),
        len(operators),
        graph.number_of_nodes(),
    )
    no_fiber = [op for op in operators if not has_own_fiber(graph, frozenset({op}))]
    if no_fiber:
        log.warning(
            "backbone: %s %s no fiber of its own: %s",
            ", ".join(no_fiber),
            "has" if len(no_fiber) == 1 else "have",
            "each site connects where it meets leased fiber"
            if params["lease_factor"] is not None
            else "leasing is forbidden, so its sites are only joined to each other",
        )
    if not any(d["fiber"] for _, _, d in graph.edges(data=True)):
        raise PlanError(
            "the backbone stage connects sites to existing fiber, but no fiber runs along the "
            f"roads (none within fiber_tolerance_m = {params['fiber_tolerance_m']:g} m of a "
            "road); check layers.fiber, or skip the stage with `backbone: false`"
        )
    shapley = bool(params["shapley"])
    if shapley and len(operators) > 10:
        log.warning(
            "backbone: exact Shapley shares need 2^n Steiner trees; %d operators is too many "
            "(≤ 10): proportional shares only",
            len(operators),
        )
        shapley = False
    plan = plan_backbone(graph, nodes, site_ops, shapley=shapley)
    unreachable = sorted(
        {_site_id(n) for t in (plan.joint, *plan.separate.values()) for n in t.unreachable}
    )
    links = plan_links(graph, plan)
    rings = None
    if params["protect"] != "none":
        rings, ring_gdf = _protect(graph, plan, sites, site_ops, nodes, inputs, params["protect"])
        links = links.assign(reuses_fiber=links["status"] != "new", protects="")
        ring_gdf = ring_gdf.assign(operators=";".join(operators))  # a ring serves everyone
        if len(ring_gdf):
            links = pd.concat([links, ring_gdf[links.columns]], ignore_index=True)
        links = links.astype({"length_m": float, "cost": float, "reuses_fiber": bool})
    layers = {"links": links}
    if inputs.plan.synthetic:
        layers = {k: v.assign(source="synthetic telcoplan demo") for k, v in layers.items()}
    write_vector_layers(staging / "backbone.gpkg", layers, overwrite=True)
    summary = {
        "parameters": dict(params.items()),
        "sites": len(sites),
        "shared_sites": sum(1 for o in site_ops.values() if len(o) > 1),
        "length_km_joint": round(plan.joint.length_m / 1000.0, 3),
        "length_km_separate": round(plan.length_km_separate, 3),
        # of which new trenches (the rest reuses or leases existing fiber)
        "trench_km_joint": _km(links, "joint", "new"),
        "trench_km_separate": _km(links, "separate", "new"),
        "cost_joint": round(plan.joint.cost, 2),
        "cost_separate": round(plan.cost_separate, 2),
        "savings_pct": round(plan.savings_pct, 2),
        "operators_without_fiber": no_fiber,
        "unreachable_sites": unreachable,
        "separate": {
            op: {"length_km": round(t.length_m / 1000.0, 3), "cost": round(t.cost, 2)}
            for op, t in plan.separate.items()
        },
        "share_proportional": {op: round(v, 2) for op, v in plan.share_proportional.items()},
        "share_shapley": {op: round(v, 2) for op, v in plan.share_shapley.items()},
    }
    if rings is not None:
        summary["rings"] = rings
    log.info(
        "backbone: joint %.1f km / %.0f vs separate %.1f km / %.0f: %.1f%% saved",
        summary["length_km_joint"],
        summary["cost_joint"],
        summary["length_km_separate"],
        summary["cost_separate"],
        summary["savings_pct"],
    )
    return summary


def _protect(graph, plan, sites, site_ops, nodes, inputs, protect: str):
    """Ring protection of the joint plan for the chosen sites: (summary part, ring links)."""
    from telcoplan.backbone.rings import (
        fiber_nodes,
        nearest_sites,
        protect_sites,
        ring_links,
        sites_to_protect,
    )

    if protect == "all":
        chosen = list(site_ops)
    else:
        pois = inputs.vectors.get("pois")
        poi_sites = []
        if "pois" in protect and pois is None:
            log.warning("backbone: protect %s, but the plan has no pois layer", protect)
        if "pois" in protect and pois is not None:
            poi_sites = nearest_sites(sites, pois, max_distance_m=POI_SITE_DISTANCE_M)
        chosen = sites_to_protect(site_ops, poi_sites=poi_sites, shared="shared" in protect)
    result = protect_sites(
        graph,
        plan.joint.edges,
        {s: nodes[s] for s in chosen},
        fiber_nodes(graph, "cost_joint"),
        weight="cost_joint",
    )
    log.info(
        "backbone: rings protect %d of %d %s sites for %.1f km of new links (cost %.0f)",
        len(result.protected),
        len(chosen),
        protect,
        result.length_m / 1000.0,
        result.cost,
    )
    part = {
        "protect": protect,
        "sites": len(chosen),
        "protected": len(result.protected),
        "length_km": round(result.length_m / 1000.0, 3),
        "cost": round(result.cost, 2),
        "unprotected": {str(k): v for k, v in result.unprotected.items()},
    }
    return part, ring_links(graph, result)


def _site_id(node: object) -> str:
    return str(node[1]) if isinstance(node, tuple) and len(node) == 2 else str(node)


def _km(links: gpd.GeoDataFrame, plan: str, status: str) -> float:
    sel = (links["plan"] == plan) & (links["status"] == status)
    return round(float(links.loc[sel, "length_m"].sum()) / 1000.0, 3)


#: Parameters of the report stage with their defaults.
REPORT_PARAMETERS: dict[str, Any] = {"figure": True, "top_gaps": 20, "currency": "USD"}


def report_parameters(raw: Mapping[str, Any] | None, source: str = "plan") -> dict[str, Any]:
    """Checked report-stage parameters (defaults filled in); all problems reported at once."""
    raw = dict(raw or {})
    errs = [
        f"stages.report: unknown parameter {k!r}; known: {', '.join(REPORT_PARAMETERS)}"
        for k in raw
        if k not in REPORT_PARAMETERS
    ]
    params = {**REPORT_PARAMETERS, **{k: v for k, v in raw.items() if k in REPORT_PARAMETERS}}
    if not isinstance(params["figure"], bool):
        errs.append("stages.report.figure must be true or false (embed the plan figure)")
    top = params["top_gaps"]
    if not isinstance(top, int) or isinstance(top, bool) or not 0 <= top <= 10_000:
        errs.append(f"stages.report.top_gaps must be a whole number in 0…10000, got {top!r}")
    if not isinstance(params["currency"], str) or not 1 <= len(params["currency"]) <= 8:
        errs.append("stages.report.currency must be a short currency label such as USD or VND")
    if errs:
        raise PlanError(
            f"{source}: {len(errs)} problem(s) in the report parameters:\n"
            + "\n".join(f"  - {e}" for e in errs)
        )
    return params


def _plan_layers(inputs: PlanInputs) -> dict[str, gpd.GeoDataFrame]:
    return {**inputs.vectors, "areas": inputs.areas}


def run_map(
    inputs: PlanInputs,
    raw_params: Mapping[str, Any] | None,
    staging: Path,
    summary: Mapping[str, Any],
) -> dict[str, Any] | None:
    """The map stage: ``map.html``, self-contained (needs the ``maps`` extra: folium)."""
    from telcoplan.maps.interactive import map_parameters

    params = map_parameters(raw_params, str(inputs.plan.path or inputs.plan.name))
    try:
        import folium  # noqa: F401
    except ImportError:
        log.warning("map: folium is not installed (pip install 'telcoplan[maps]'); no map.html")
        return None
    from telcoplan.maps.interactive import write_plan_map

    path = write_plan_map(staging, _plan_layers(inputs), summary=summary, overwrite=True, **params)
    return {"file": path.name, "bytes": path.stat().st_size}


def run_report(
    inputs: PlanInputs,
    raw_params: Mapping[str, Any] | None,
    staging: Path,
    summary: Mapping[str, Any],
) -> dict[str, Any]:
    """The report stage: ``report.html`` (with the plan figure when matplotlib is installed)."""
    from telcoplan.report.html import report_from_outputs

    params = report_parameters(raw_params, str(inputs.plan.path or inputs.plan.name))
    png = None
    if params["figure"]:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            log.warning("report: matplotlib is not installed; report.html without the figure")
        else:
            from telcoplan.maps.static import figure_from_outputs, save_figure

            png = figure_from_outputs(staging, _plan_layers(inputs), summary=summary)
            save_figure(png, staging / "figure.png", overwrite=True)  # also on its own
    path = report_from_outputs(
        staging,
        summary=summary,
        figure_png=png,
        overwrite=True,
        top_gaps=params["top_gaps"],
        currency=params["currency"],
    )
    return {"file": path.name, "bytes": path.stat().st_size}
