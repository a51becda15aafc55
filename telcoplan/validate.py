"""``telcoplan validate``: check plan files and layer files, reporting every problem."""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from telcoplan.errors import TelcoplanError

__all__ = ["ValidationReport", "guess_layer", "validate_files"]

_VECTOR = ("towers", "fiber", "roads", "areas", "population", "candidates", "pois", "measurements")


@dataclass(frozen=True)
class ValidationReport:
    """Outcome for one file: ``ok`` and a description, or the error message."""

    path: Path
    ok: bool
    what: str
    message: str = ""


def guess_layer(path: Path) -> str | None:
    """Layer type from a file name: ``towers.gpkg``, ``towers_2024.csv``, ``bad-towers.csv`` → towers."""
    stem = path.stem.lower()
    for name in (*_VECTOR, "dem"):
        if stem == name or stem.startswith(name) or stem.endswith(name):
            return name
    for name in (*_VECTOR, "dem"):
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
    from telcoplan.layers.areas import load_areas

    study = None
    reports = []
    if area is not None:
        try:
            study = load_areas(area)
        except TelcoplanError as exc:
            return [ValidationReport(Path(area), False, "", f"study area (--area): {exc}")]
    for f in files:
        p = Path(f)
        try:
            reports.append(_validate_one(p, layer_type, layer, study, crs))
        except TelcoplanError as exc:
            reports.append(ValidationReport(p, False, "", str(exc)))
    return reports


def _validate_one(
    p: Path, layer_type: str | None, layer: str | None, study, crs: str | None
) -> ValidationReport:
    if p.suffix.lower() in (".yml", ".yaml"):
        from telcoplan.plan import load_inputs, read_plan

        inputs = load_inputs(read_plan(p))
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
            f"({', '.join((*_VECTOR, 'dem'))})",
        )
    if name == "dem":
        from telcoplan.gis.raster import read_raster
        from telcoplan.layers.dem import validate_dem

        data, info, _ = read_raster(p)
        validate_dem(data, source=str(p))
        return ValidationReport(p, True, f"dem {info.width}x{info.height}, {info.crs}")
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

    gdf = read_vector(p, crs=crs, layer=layer)
    SCHEMAS[name].validate(gdf, source=str(p), study_area=study)
    return ValidationReport(p, True, f"{name}, {len(gdf)} features")
