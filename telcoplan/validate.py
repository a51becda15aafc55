"""``telcoplan validate``: check plan files and layer files, reporting every problem."""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

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
    layer: str | None = None,
    area: str | os.PathLike | None = None,
    crs: str | None = None,
) -> list[ValidationReport]:
    """Validate plan files (``.yml``/``.yaml``) and layer files; never raises for bad input."""
    from telcoplan.gis.vector import read_vector

    study = None
    if area is not None:
        study = read_vector(area)
    reports = []
    for f in files:
        p = Path(f)
        try:
            reports.append(_validate_one(p, layer, study, crs))
        except TelcoplanError as exc:
            reports.append(ValidationReport(p, False, "", str(exc)))
    return reports


def _validate_one(p: Path, layer: str | None, study, crs: str | None) -> ValidationReport:
    if p.suffix.lower() in (".yml", ".yaml"):
        from telcoplan.plan import load_inputs, read_plan

        inputs = load_inputs(read_plan(p))
        counts = ", ".join(f"{k} {len(v)}" for k, v in inputs.vectors.items())
        return ValidationReport(p, True, f"plan: {len(inputs.areas)} areas, {counts}")
    name = layer or guess_layer(p)
    if name is None:
        return ValidationReport(
            p,
            False,
            "",
            f"{p}: cannot tell which layer this is from its name; pass --layer "
            f"({', '.join((*_VECTOR, 'dem'))})",
        )
    if name == "dem":
        from telcoplan.gis.raster import read_raster
        from telcoplan.layers.dem import validate_dem

        data, grid, _ = read_raster(p)
        validate_dem(data, source=str(p))
        return ValidationReport(p, True, f"dem {grid.width}x{grid.height}")
    if name == "population" and p.suffix.lower() in (".tif", ".tiff"):
        from telcoplan.gis.raster import read_raster
        from telcoplan.layers.population import validate_population_raster

        data, _, _ = read_raster(p)
        validate_population_raster(data, source=str(p))
        return ValidationReport(p, True, "population raster")
    from telcoplan.gis.vector import read_vector
    from telcoplan.layers.schemas import SCHEMAS

    gdf = read_vector(p, crs=crs)
    SCHEMAS[name].validate(gdf, source=str(p), study_area=study)
    return ValidationReport(p, True, f"{name}, {len(gdf)} features")
