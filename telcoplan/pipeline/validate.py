"""``telcoplan validate``: check plan files and layer files, reporting every problem."""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from telcoplan.errors import TelcoplanError
from telcoplan.pipeline.model import RASTER_SUFFIXES

__all__ = ["LAYER_TYPES", "ValidationReport", "guess_layer", "validate_files"]

_VECTOR = ("towers", "fiber", "roads", "areas", "population", "candidates", "pois", "measurements")
#: Layers ``telcoplan validate`` checks (``--type``): every plan layer.
LAYER_TYPES = (*_VECTOR, "dem", "land_use")


#: What to do with a database given where a layer file is expected (the URL is not repeated:
#: it might hold a password).
_DATABASE_HINT = (
    "a PostGIS layer is checked through a plan: name it in a plan file (layers.towers: {path: "
    "postgresql://user@host/dbname, layer: schema.table}) and run telcoplan validate PLAN.yml"
)


@dataclass(frozen=True)
class ValidationReport:
    """Outcome for one file: ``ok`` and a description, or the error message."""

    path: Path
    ok: bool
    what: str
    message: str = ""


def guess_layer(path: Path) -> str | None:
    """Layer type from a file name: ``towers.gpkg``, ``towers_2024.csv``, ``bad-towers.csv`` → towers."""
    stem = path.stem.lower().replace("landuse", "land_use")
    for name in LAYER_TYPES:
        if stem == name or stem.startswith(name) or stem.endswith(name):
            return name
    for name in LAYER_TYPES:
        if name in stem:
            return name
    return None


def validate_files(
    files: Iterable[str | os.PathLike],
    *,
    layer_type: str | None = None,
    layer: str | None = None,
    area: str | os.PathLike | None = None,
    crs: str | None = None,
) -> list[ValidationReport]:
    """Validate plan files (``.yml``/``.yaml``) and layer files; never raises for bad input.

    ``layer_type`` is the kind of layer (towers, roads, …; default: guessed from each file
    name), ``layer`` the layer name inside a multi-layer GeoPackage, ``area`` a study-area file
    (itself validated as an areas layer) outside which features are reported.
    """
    study = None
    reports = []
    if crs is not None and not _known_crs(crs):
        message = (
            f"--crs {crs!r} is not a CRS pyproj knows; give one such as EPSG:4326 (lon/lat) or "
            "EPSG:32649 (UTM zone 49N, metres)"
        )
        return [ValidationReport(Path(f), False, "", f"{f}: {message}") for f in files]
    if area is not None:
        try:
            study = _study_area(Path(area))
        except TelcoplanError as exc:
            return [ValidationReport(Path(area), False, "", f"study area (--area): {exc}")]
    for f in files:
        p = Path(f)
        if str(f).lower().startswith(("postgresql:", "postgres:")):
            reports.append(ValidationReport(p, False, "", _DATABASE_HINT))
            continue
        try:
            reports.append(_validate_one(p, layer_type, layer, study, crs))
        except TelcoplanError as exc:
            reports.append(ValidationReport(p, False, "", str(exc)))
    return reports


def _study_area(path: Path):
    """The ``--area`` file as an areas layer; it only needs its shapes, so a file without a
    ``name`` column (a ward export) is named by row."""
    from telcoplan.gis.vector import read_vector
    from telcoplan.layers.areas import validate_areas

    gdf = read_vector(path)
    if "name" not in gdf.columns:
        gdf = gdf.assign(name=[f"area {i}" for i in range(1, len(gdf) + 1)])
    return validate_areas(gdf, source=str(path))


def _validate_one(
    p: Path, layer_type: str | None, layer: str | None, study, crs: str | None
) -> ValidationReport:
    if p.suffix.lower() in (".yml", ".yaml"):
        from telcoplan.pipeline.inputs import load_inputs
        from telcoplan.pipeline.parse import read_plan

        plan = read_plan(p)
        inputs = load_inputs(plan)
        towers, coverage = inputs.vectors.get("towers"), plan.parameters.get("coverage")
        if towers is not None and coverage is not None and plan.enabled("coverage"):
            from telcoplan.pipeline.stages.coverage import check_operator_names

            # as the run checks them, once the towers are loaded (the parsed parameters)
            check_operator_names(towers, coverage.per_technology)
        parts = [f"{len(inputs.areas)} areas"] + [
            f"{k} {len(v)}" for k, v in inputs.vectors.items()
        ]
        return ValidationReport(p, True, "plan: " + ", ".join(parts))
    name = layer_type or guess_layer(p)
    if name is None:
        return ValidationReport(
            p,
            False,
            "",
            f"{p}: cannot tell which layer this is from its name; pass --type "
            f"({', '.join(LAYER_TYPES)})",
        )
    if name == "dem":
        from telcoplan.gis.raster import read_raster
        from telcoplan.layers.dem import validate_dem

        data, info, _ = read_raster(p)
        validate_dem(data, source=str(p))
        return ValidationReport(p, True, f"dem {info.width}x{info.height}, {info.crs}")
    if name == "land_use":
        return _validate_land_use(p, layer, crs)
    if name == "population" and p.suffix.lower() in (".tif", ".tiff"):
        from telcoplan.gis.raster import read_raster
        from telcoplan.layers.population import validate_population_raster

        data, _, _ = read_raster(p)
        validate_population_raster(
            np.where(np.isnan(data), 0.0, data), source=str(p)
        )  # nodata = nobody
        return ValidationReport(p, True, "population raster")
    from telcoplan.gis.vector import read_vector
    from telcoplan.layers.schemas import SCHEMAS

    if name == "towers" and study is not None:
        # as in a plan: towers beyond the study area serve its edge within their coverage
        # radius (kept with a warning), farther ones are left out (a warning too)
        from telcoplan.layers.towers import load_towers
        from telcoplan.pipeline.inputs import tower_reach

        towers = load_towers(
            p, crs=crs, layer=layer, study_area=study, reach_m=tower_reach(),
            reach_name="coverage radius",
        )  # fmt: skip
        return ValidationReport(p, True, f"towers, {len(towers)} features kept")
    gdf = read_vector(p, crs=crs, layer=layer)
    SCHEMAS[name].validate(gdf, source=str(p), study_area=study)
    return ValidationReport(p, True, f"{name}, {len(gdf)} features")


def _known_crs(crs: str) -> bool:
    from pyproj import CRS
    from pyproj.exceptions import CRSError

    try:
        CRS.from_user_input(crs)
    except (CRSError, TypeError, ValueError):
        return False
    return True


def _validate_land_use(p: Path, layer: str | None, crs: str | None) -> ValidationReport:
    """A land-use raster holds whole class codes (nodata: unclassified); land-use polygons are
    polygons (their class column is named in the plan: ``{path: …, column: landuse}``)."""
    from telcoplan.errors import LayerValidationError, Problem

    if p.suffix.lower() in RASTER_SUFFIXES:
        from telcoplan.gis.raster import read_raster

        data, info, _ = read_raster(p)
        codes = data[np.isfinite(data)]
        if codes.size and not np.array_equal(codes, np.round(codes)):
            raise LayerValidationError(
                str(p),
                "land_use",
                [Problem(None, None, "land-use codes must be whole numbers (one per class)")],
            )
        return ValidationReport(
            p, True, f"land_use raster {info.width}x{info.height}, {len(np.unique(codes))} classes"
        )
    from telcoplan.gis.vector import read_vector

    gdf = read_vector(p, crs=crs, layer=layer)
    kinds = set(gdf.geometry.dropna().geom_type) - {"Polygon", "MultiPolygon"}
    if kinds:
        raise LayerValidationError(
            str(p),
            "land_use",
            [
                Problem(
                    None,
                    "geometry",
                    f"land-use features must be polygons, found {', '.join(sorted(kinds))}",
                )
            ],
        )
    return ValidationReport(p, True, f"land_use polygons, {len(gdf)} features")
