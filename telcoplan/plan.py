"""The plan file (YAML) and the pipeline that runs its stages.

A plan file names the input layers (paths relative to the plan file), the study-area CRS, the
grid resolution and per-stage parameters::

    name: Đà Nẵng demo (synthetic)
    crs: EPSG:32649          # optional; default: the local UTM zone of the areas
    resolution_m: 100
    study_area_margin_m: 0   # features this far outside the areas are still accepted
    layers:
      areas: inputs/areas.gpkg            # required: the study area and per-area results
      population: inputs/population.tif   # raster, or polygons: {path: wards.gpkg, column: pop}
      towers: inputs/towers.gpkg
      dem: inputs/dem.tif
      land_use: {path: inputs/landcover.tif, classes: inputs/landcover_classes.csv}  # or polygons
      roads: inputs/roads.gpkg
      fiber: inputs/fiber.gpkg
      candidates: inputs/candidates.gpkg
      pois: inputs/pois.gpkg
      measurements: {path: drive_test.csv}
    stages: {}

A layer entry is a path or a mapping with ``path`` and optional ``crs`` (for CSV ``x``/``y`` or
files without a CRS), ``layer`` (GeoPackage layer name), ``column`` (population count column,
or the class column of land-use polygons),
``weights`` (a raster of dasymetric weights for population polygons), ``classes`` (the
``code,name`` CSV of a ``land_use`` raster, whose clutter classes a calibration's offsets name)
``clip`` (``true``: features wholly outside the study area are left out, with a warning,
instead of being reported — for national road or tower files), ``columns`` (the file's
names of the layer's columns, e.g. ``{site_id: CellID, height_m: AntennaHeight}``) and
``values`` (translations of a column's values, e.g. ``{road_class: {Quốc Gia: trunk}}``).
"""

from __future__ import annotations

import difflib
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import yaml

from telcoplan import __version__
from telcoplan.errors import (
    InputFileError,
    LayerValidationError,
    OutputExistsError,
    PlanError,
    Problem,
    TelcoplanError,
)
from telcoplan.gis.crs import crs_name, to_projected
from telcoplan.gis.grid import GridSpec
from telcoplan.gis.raster import read_raster_on_grid
from telcoplan.gis.zonal import label_polygons, zonal_sum_labels
from telcoplan.layers import areas as areas_layer
from telcoplan.layers import candidates, fiber, measurements, pois, roads, towers
from telcoplan.layers.dem import load_dem
from telcoplan.layers.population import load_population_raster, spread_population
from telcoplan.layers.schemas import POPULATION_POLYGONS
from telcoplan.report.summary import file_sha256, write_summary

__all__ = [
    "LAYER_NAMES",
    "LayerRef",
    "Plan",
    "PlanInputs",
    "batch_targets",
    "load_inputs",
    "plan_from_layers",
    "read_plan",
    "run_plan",
    "write_plan",
]

log = logging.getLogger(__name__)

#: Layers a plan may name, in loading order.
LAYER_NAMES = (
    "areas",
    "population",
    "towers",
    "dem",
    "land_use",
    "roads",
    "fiber",
    "candidates",
    "pois",
    "measurements",
)
#: Largest plan grid (cells): one float64 layer of it is 1.6 GB.
MAX_CELLS = 200_000_000
#: Layers the backbone stage needs (it runs by default when they are all given).
BACKBONE_LAYERS = ("roads", "towers", "fiber")
#: Stages a plan may configure (``stages: {coverage: {...}}``; ``false`` skips one).
STAGE_NAMES = ("coverage", "gaps", "backbone", "map", "report")
_TOP_KEYS = (
    "name",
    "crs",
    "resolution_m",
    "study_area_margin_m",
    "layers",
    "stages",
    "synthetic",
    "description",
)
_LAYER_KEYS = (
    "path", "crs", "layer", "column", "weights", "classes", "clip", "columns", "values"
)  # fmt: skip
_RASTER_SUFFIXES = (".tif", ".tiff", ".vrt", ".img", ".asc")

#: Vector layers with their loaders.
_VECTOR_LOADERS = {
    "towers": towers.load_towers,
    "roads": roads.load_roads,
    "fiber": fiber.load_fiber,
    "candidates": candidates.load_candidates,
    "pois": pois.load_pois,
    "measurements": measurements.load_measurements,
}


@dataclass(frozen=True)
class LayerRef:
    """Where a layer comes from: a path (absolute after parsing) and reading options."""

    path: Path
    crs: str | None = None
    layer: str | None = None
    column: str | None = None
    weights: Path | None = None
    classes: Path | None = None
    clip: bool = False
    #: the file's name of schema columns, e.g. {"site_id": "CellID"} (vector layers)
    columns: Mapping[str, str] | None = None
    #: translations of column values, e.g. {"road_class": {"Quốc Gia": "trunk"}}
    values: Mapping[str, Mapping[str, str]] | None = None

    @property
    def is_raster(self) -> bool:
        return self.path.suffix.lower() in _RASTER_SUFFIXES


@dataclass(frozen=True)
class Plan:
    """A parsed plan file."""

    name: str
    layers: Mapping[str, LayerRef]
    crs: str | None = None
    resolution_m: float = 100.0
    study_area_margin_m: float = 0.0
    stages: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    synthetic: bool = False
    path: Path | None = None


class _PlanLoader(yaml.SafeLoader):
    """YAML's safe loader that refuses a key given twice in one mapping (YAML keeps the last
    silently: `areas:` twice would load the second file as the study area)."""

    def construct_mapping(self, node, deep=False):
        seen: dict[object, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            line = key_node.start_mark.line + 1
            try:
                first = seen.setdefault(key, line)
            except TypeError:  # an unhashable key: the base loader reports it
                continue
            if first != line:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} is given twice (lines {first} and {line})",
                    key_node.start_mark,
                )  # fmt: skip
        return super().construct_mapping(node, deep=deep)


def _suggest(key: str, choices: tuple[str, ...]) -> str:
    close = difflib.get_close_matches(key, choices, n=1)
    return f"; did you mean {close[0]!r}?" if close else f"; expected one of {', '.join(choices)}"


def read_plan(path: str | os.PathLike) -> Plan:
    """Parse and check a plan file; every problem is reported at once in one :class:`PlanError`."""
    p = Path(path)
    if not p.is_file():
        raise InputFileError(f"{p}: plan file not found")
    try:
        raw = yaml.load(p.read_text(encoding="utf-8"), Loader=_PlanLoader)  # a SafeLoader
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise PlanError(f"{p}: not valid YAML{where}: {getattr(exc, 'problem', exc)}") from None
    except UnicodeDecodeError:
        raise PlanError(f"{p}: plan file must be UTF-8 text") from None
    return parse_plan(raw, base=p.parent, source=str(p))


def parse_plan(raw: object, *, base: Path, source: str = "<plan>") -> Plan:
    """Build a :class:`Plan` from the YAML document ``raw``; relative paths are taken from ``base``."""
    errs: list[str] = []
    if not isinstance(raw, dict):
        raise PlanError(f"{source}: a plan file must be a YAML mapping with at least `layers:`")
    for k in raw:
        if k not in _TOP_KEYS:
            errs.append(f"unknown key {k!r}{_suggest(str(k), _TOP_KEYS)}")
    layers_raw = raw.get("layers")
    refs: dict[str, LayerRef] = {}
    if not isinstance(layers_raw, dict) or not layers_raw:
        errs.append("`layers:` is missing or empty; name at least `areas:`")
        layers_raw = {}
    for name, entry in layers_raw.items():
        if name not in LAYER_NAMES:
            errs.append(f"layers: unknown layer {name!r}{_suggest(str(name), LAYER_NAMES)}")
            continue
        if isinstance(entry, str):
            entry = {"path": entry}
        if not isinstance(entry, dict) or not isinstance(entry.get("path"), str):
            errs.append(f"layers.{name}: give a path, or a mapping with `path:`")
            continue
        for k in entry:
            if k not in _LAYER_KEYS:
                errs.append(f"layers.{name}: unknown key {k!r}{_suggest(str(k), _LAYER_KEYS)}")
        for k in ("crs", "layer", "column", "weights", "classes"):
            if entry.get(k) is not None and not isinstance(entry[k], str | int):
                errs.append(f"layers.{name}.{k} must be a name, got {entry[k]!r}")
                entry = {**entry, k: None}
        lp = (
            (base / entry["path"]).resolve()
            if not Path(entry["path"]).is_absolute()
            else Path(entry["path"])
        )
        if not lp.exists():
            errs.append(f"layers.{name}: file {lp} not found (paths are relative to the plan file)")
        weights = None
        if entry.get("weights") is not None:
            weights = (base / str(entry["weights"])).resolve()
            if not weights.exists():
                errs.append(f"layers.{name}.weights: file {weights} not found")
        classes = None
        if entry.get("classes") is not None:
            if name != "land_use":
                errs.append(
                    f"layers.{name}.classes: only the land_use layer has a class table; remove it"
                )
            classes = (base / str(entry["classes"])).resolve()
            if not classes.exists():
                errs.append(f"layers.{name}.classes: file {classes} not found")
        clip = entry.get("clip", False)
        if not isinstance(clip, bool):
            errs.append(f"layers.{name}.clip must be true or false, got {clip!r}")
            clip = False
        elif clip and name not in _VECTOR_LOADERS:
            errs.append(
                f"layers.{name}.clip: only the layers {', '.join(_VECTOR_LOADERS)} can leave out "
                "features outside the study area; remove it"
            )
        columns = entry.get("columns")
        if columns is not None:
            if not (
                isinstance(columns, dict)
                and all(isinstance(k, str) and isinstance(v, str) for k, v in columns.items())
            ):
                errs.append(
                    f"layers.{name}.columns must map the layer's column names to the file's, "
                    "e.g. {site_id: CellID}"
                )
                columns = None
            elif name not in _VECTOR_LOADERS:
                errs.append(
                    f"layers.{name}.columns: only the layers {', '.join(_VECTOR_LOADERS)} take a "
                    "column mapping; remove it"
                )
                columns = None
        values = entry.get("values")
        if values is not None:
            if not (
                isinstance(values, dict)
                and all(isinstance(k, str) and isinstance(v, dict) for k, v in values.items())
            ):
                errs.append(
                    f"layers.{name}.values must map a column to its translations, e.g. "
                    "{road_class: {Quốc Gia: trunk}}"
                )
                values = None
            elif name not in _VECTOR_LOADERS:
                errs.append(f"layers.{name}.values: only vector layers take value translations")
                values = None
        if entry.get("crs") is not None and not _valid_crs(entry["crs"]):
            errs.append(
                f"layers.{name}.crs {entry['crs']!r} is not a CRS pyproj knows; use e.g. EPSG:4326 or EPSG:32649"
            )
        # keys that would be silently ignored for this kind of file
        raster = lp.suffix.lower() in _RASTER_SUFFIXES
        if raster:
            for k in ("column", "weights", "layer"):
                if entry.get(k) is not None:
                    errs.append(
                        f"layers.{name}.{k}: {lp.name} is a raster, which has no {k}; remove it"
                    )
        elif lp.suffix.lower() == ".csv" and entry.get("layer") is not None:
            errs.append(f"layers.{name}.layer: a CSV file has one table; remove it")
        refs[name] = LayerRef(
            path=lp,
            crs=None if entry.get("crs") is None else str(entry["crs"]),
            layer=entry.get("layer"),
            column=entry.get("column"),
            weights=weights,
            classes=classes,
            clip=clip,
            columns=columns,
            values=values,
        )
    if layers_raw and "areas" not in layers_raw:
        errs.append("layers.areas is required: the areas' union is the study area")
    res = raw.get("resolution_m", 100.0)
    if (
        not isinstance(res, int | float)
        or isinstance(res, bool)
        or not 1.0 <= float(res) <= 10_000.0
    ):
        errs.append(f"resolution_m must be a number of metres between 1 and 10000, got {res!r}")
        res = 100.0
    margin = raw.get("study_area_margin_m", 0.0)
    if (
        not isinstance(margin, int | float)
        or isinstance(margin, bool)
        or not 0 <= margin <= 100_000
    ):
        errs.append(f"study_area_margin_m must be a number of metres in 0…100000, got {margin!r}")
        margin = 0.0
    crs = raw.get("crs")
    if crs is not None:
        from pyproj import CRS
        from pyproj.exceptions import CRSError as ProjCRSError

        try:
            if not CRS.from_user_input(crs).is_projected:
                errs.append(
                    f"crs {crs!r} is not projected; use a metric CRS such as EPSG:32649, or leave it out"
                )
        except ProjCRSError:
            errs.append(f"crs {crs!r} is not a CRS pyproj knows; use e.g. EPSG:32649")
    stages = raw.get("stages") or {}
    if not isinstance(stages, dict):
        errs.append("`stages:` must be a mapping of stage name to parameters")
        stages = {}
    for name, params in stages.items():
        if name not in STAGE_NAMES:
            errs.append(f"stages: unknown stage {name!r}{_suggest(str(name), STAGE_NAMES)}")
        elif params is not False and params is not None and not isinstance(params, dict):
            errs.append(f"stages.{name}: give a mapping of parameters, or false to skip the stage")
        elif name in STAGE_NAMES and isinstance(params, dict):
            from telcoplan.maps.interactive import map_parameters
            from telcoplan.stages import (
                backbone_parameters,
                coverage_parameters,
                gaps_parameters,
                report_parameters,
            )

            try:
                if name == "coverage":
                    coverage_parameters(params, source, base)
                elif name == "gaps":
                    gaps_parameters(params, source)
                elif name == "backbone":
                    backbone_parameters(params, source)
                elif name == "map":
                    map_parameters(params, source)
                else:
                    report_parameters(params, source)
            except PlanError as exc:
                errs += [line.strip()[2:] for line in str(exc).splitlines()[1:]]
    if isinstance(stages.get("backbone"), dict):
        lacking = [k for k in BACKBONE_LAYERS if k not in layers_raw]
        if lacking:
            errs.append(
                f"stages.backbone needs the layers {', '.join(BACKBONE_LAYERS)}; add "
                + ", ".join(f"layers.{k}" for k in lacking)
                + " (or `backbone: false`)"
            )
    if errs:
        raise PlanError(
            f"{source}: {len(errs)} problem{'s' if len(errs) > 1 else ''} in the plan file:\n"
            + "\n".join(f"  - {e}" for e in errs)
        )
    return Plan(
        name=str(raw.get("name", Path(source).stem)),
        layers=refs,
        crs=None if crs is None else str(crs),
        resolution_m=float(res),
        study_area_margin_m=float(margin),
        stages=stages,
        synthetic=bool(raw.get("synthetic", False)),
        path=Path(source) if source != "<plan>" else None,
    )


def plan_from_layers(
    layers: Mapping[str, str | os.PathLike | None],
    *,
    name: str = "command line",
    resolution_m: float = 100.0,
    crs: str | None = None,
    stages: Mapping[str, Any] | None = None,
) -> Plan:
    """A :class:`Plan` built from layer paths (for the one-stage CLI commands); checked like a file."""
    doc = {
        "name": name,
        "resolution_m": resolution_m,
        "layers": {k: str(Path(v).resolve()) for k, v in layers.items() if v is not None},
        "stages": dict(stages or {}),
    }
    if crs is not None:
        doc["crs"] = crs
    return parse_plan(doc, base=Path.cwd(), source="command line")


def batch_targets(plans: Sequence[Path], out_dir: Path | None) -> list[Path]:
    """Output folder of each plan of a batch; never the same folder for two plans.

    One plan: ``out_dir``, or ``outputs`` beside the plan file. Several: a sub-folder per plan
    named after the plan file's stem (``folder-stem`` when stems repeat, then ``-2``, ``-3``…) in
    ``out_dir``, or in ``outputs`` beside each plan file.
    """
    if len(plans) == 1:
        return [out_dir if out_dir is not None else Path(plans[0]).parent / "outputs"]
    stems = [Path(p).stem for p in plans]
    names = [
        f"{Path(p).resolve().parent.name}-{st}" if stems.count(st) > 1 else st
        for p, st in zip(plans, stems, strict=True)
    ]
    targets: list[Path] = []
    for p, name in zip(plans, names, strict=True):
        base = out_dir if out_dir is not None else Path(p).parent / "outputs"
        target, k = base / name, 1
        while any(target.resolve() == t.resolve() for t in targets):
            k += 1
            target = base / f"{name}-{k}"
        targets.append(target)
    return targets


def _valid_crs(crs: object) -> bool:
    from pyproj import CRS
    from pyproj.exceptions import CRSError as ProjCRSError

    try:
        CRS.from_user_input(crs)
    except (ProjCRSError, TypeError, ValueError):
        return False
    return True


def write_plan(path: str | os.PathLike, doc: Mapping[str, Any], *, overwrite: bool = False) -> Path:
    """Write a plan document as YAML, atomically."""
    from telcoplan.gis.atomic import atomic_path

    text = yaml.safe_dump(dict(doc), allow_unicode=True, sort_keys=False)
    with atomic_path(path, overwrite=overwrite) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


@dataclass(frozen=True)
class PlanInputs:
    """Every input of a plan, loaded, validated and in the plan's projected CRS."""

    plan: Plan
    crs: str
    grid: GridSpec
    areas: gpd.GeoDataFrame
    population: np.ndarray
    vectors: Mapping[str, gpd.GeoDataFrame]
    dem: np.ndarray | None = None
    #: False when the plan has no population at all (allowed when coverage is off)
    has_population: bool = True
    #: land-use codes on the grid (NaN = nodata) and their class names (None: the code itself)
    land_use: np.ndarray | None = None
    land_use_names: Mapping[float, str] | None = None


def load_inputs(plan: Plan) -> PlanInputs:
    """Load and validate every layer of ``plan``; all problems of all layers are raised at once."""
    failures: list[TelcoplanError] = []
    aref = plan.layers["areas"]
    try:
        areas_raw = areas_layer.load_areas(aref.path, crs=aref.crs, layer=aref.layer)
    except (LayerValidationError, InputFileError) as exc:
        raise PlanError(
            f"{plan.path or plan.name}: cannot load the areas layer (the study area):\n{exc}"
        ) from None
    if plan.crs is not None:
        _check_crs_covers(plan, areas_raw)
    areas = to_projected(areas_raw, plan.crs)
    crs = areas.crs.to_string()
    log.info("study area: %d areas, CRS %s", len(areas), crs_name(crs))
    study = areas.geometry
    if plan.study_area_margin_m > 0:
        study = study.buffer(plan.study_area_margin_m)
    grid = GridSpec.from_bounds(tuple(areas.total_bounds), plan.resolution_m, crs)
    if grid.width * grid.height > MAX_CELLS:
        raise PlanError(
            f"{plan.path or plan.name}: a {plan.resolution_m:g} m grid over the study area has "
            f"{grid.width} x {grid.height} = {grid.width * grid.height:,} cells, more than {MAX_CELLS:,}; "
            "use a coarser resolution_m or split the study area"
        )
    log.info("grid: %d x %d cells of %g m", grid.width, grid.height, grid.resolution)

    vectors: dict[str, gpd.GeoDataFrame] = {}
    for name, loader in _VECTOR_LOADERS.items():
        ref = plan.layers.get(name)
        if ref is None:
            continue
        try:
            vectors[name] = loader(
                ref.path, crs=ref.crs, layer=ref.layer, study_area=study, clip=ref.clip,
                columns=ref.columns, values=ref.values,
            ).to_crs(crs)  # fmt: skip
            log.info("%s: %d features from %s", name, len(vectors[name]), ref.path.name)
        except (LayerValidationError, InputFileError) as exc:
            failures.append(exc)

    dem = None
    if "dem" in plan.layers:
        try:
            dem = load_dem(plan.layers["dem"].path, grid)
        except TelcoplanError as exc:
            failures.append(exc)

    land_use = land_use_names = None
    if "land_use" in plan.layers:
        try:
            land_use, land_use_names = _load_land_use(plan.layers["land_use"], grid)
        except TelcoplanError as exc:
            failures.append(exc)

    population, has_population = np.zeros(grid.shape), True
    if (
        "population" not in plan.layers
        and "population" not in areas.columns
        and not _stage_enabled(plan, "coverage")
    ):
        # the backbone alone needs no population: say so rather than refuse
        log.info("no population layer: population figures are left out")
        has_population = False
    else:
        try:
            population = _load_population(plan, areas, grid)
        except TelcoplanError as exc:
            failures.append(exc)

    if failures:
        n = sum(len(getattr(f, "problems", (0,))) for f in failures)
        raise PlanError(
            f"{plan.path or plan.name}: {n} problem{'s' if n != 1 else ''} in the input layers:\n"
            + "\n".join(str(f) for f in failures)
        )
    return PlanInputs(
        plan=plan,
        crs=crs,
        grid=grid,
        areas=areas,
        population=population,
        vectors=vectors,
        dem=dem,
        has_population=has_population,
        land_use=land_use,
        land_use_names=land_use_names,
    )


def _check_crs_covers(plan: Plan, areas: gpd.GeoDataFrame) -> None:
    """Refuse a plan CRS meant for another part of the world (e.g. UTM zone 1 for Đà Nẵng):
    distances and areas would be distorted, silently. A margin of 3° (half a UTM zone) is
    allowed around the CRS's area of use."""
    from pyproj import CRS

    use = CRS.from_user_input(plan.crs).area_of_use
    if use is None or areas.crs is None or not len(areas):
        return
    lon0, lat0, lon1, lat1 = areas.to_crs("EPSG:4326").total_bounds
    w, s, e, n = use.bounds
    if w > e:  # an area of use across the antimeridian
        e += 360.0
        if lon1 < w - 3.0:
            lon0, lon1 = lon0 + 360.0, lon1 + 360.0
    if lon0 < w - 3.0 or lon1 > e + 3.0 or lat0 < s - 3.0 or lat1 > n + 3.0:
        raise PlanError(
            f"{plan.path or plan.name}: crs {plan.crs} is meant for {use.name.split('.')[0]} "
            f"({w:g}…{e:g}°E, {s:g}…{n:g}°N) but the study area lies at {lon0:.2f}…{lon1:.2f}°E, "
            f"{lat0:.2f}…{lat1:.2f}°N; leave `crs:` out (the local UTM zone is chosen) or "
            "choose a CRS for the area"
        )


def _load_land_use(ref: LayerRef, grid: GridSpec) -> tuple[np.ndarray, dict[float, str] | None]:
    """Land-use class codes on the grid (NaN: no class) and their names, checked
    (:mod:`telcoplan.layers.land_use`: a raster of codes, or polygons with a class column)."""
    from telcoplan.layers.land_use import land_use_on_grid

    return land_use_on_grid(
        ref.path, grid, column=ref.column, classes=ref.classes, crs=ref.crs, layer=ref.layer
    )


def _load_population(plan: Plan, areas: gpd.GeoDataFrame, grid: GridSpec) -> np.ndarray:
    ref = plan.layers.get("population")
    if ref is None:
        if "population" not in areas.columns or areas["population"].isna().any():
            raise PlanError(
                "no population layer, and the areas do not all carry a `population` column; "
                "add `layers.population:` to the plan"
            )
        log.info("population: spreading the areas' `population` column uniformly")
        return spread_population(areas, grid, column="population")
    if ref.is_raster:
        return load_population_raster(ref.path, grid)
    from telcoplan.gis.vector import read_vector

    column = ref.column or "population"
    polys = read_vector(ref.path, layer=ref.layer, crs=ref.crs)
    schema = POPULATION_POLYGONS if column == "population" else _renamed_population_schema(column)
    schema.validate(polys, source=str(ref.path))
    weights = None
    if ref.weights is not None:
        warped = read_raster_on_grid(ref.weights, grid, resampling="average")
        weights = np.where(np.isnan(warped), 0.0, warped)
        if (weights < 0).any() or not np.isfinite(weights).all():
            raise LayerValidationError(
                str(ref.weights),
                "weights",
                [
                    Problem(
                        None,
                        None,
                        "dasymetric weights must be finite and ≥ 0 (e.g. 1 residential, 0.05 elsewhere)",
                    )
                ],
            )
        if not weights.any():
            log.warning(
                "%s: every dasymetric weight over the study area is 0 (or the raster does not "
                "overlap it): population is spread uniformly; check its extent and CRS",
                ref.weights,
            )
    return spread_population(to_projected(polys, grid.crs), grid, column=column, weights=weights)


def _renamed_population_schema(column: str):
    from dataclasses import replace

    col = replace(POPULATION_POLYGONS.columns[0], name=column)
    return replace(POPULATION_POLYGONS, columns=(col,))


def run_plan(
    plan: Plan,
    out_dir: str | os.PathLike,
    *,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Run every stage of ``plan`` and write the outputs into ``out_dir``.

    All inputs are loaded and validated before anything is written. Stages write into a
    staging folder inside ``out_dir``; only when every stage has succeeded are the files moved
    into place (``summary.json`` last), so a failure leaves the previous outputs as they were.
    Returns the summary (also written as ``summary.json``).
    """
    import tempfile

    from telcoplan.stages import run_backbone, run_coverage, run_gaps, run_map, run_report

    out = Path(out_dir)
    if not overwrite and (out / "summary.json").exists():
        raise OutputExistsError(
            f"{out / 'summary.json'} already exists; pass --overwrite to replace the outputs in {out}"
        )
    inputs = load_inputs(plan)
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    try:
        with tempfile.TemporaryDirectory(dir=out, prefix=".staging-") as tmp:
            staging = Path(tmp)
            summary = population_summary(inputs)
            if _stage_enabled(plan, "coverage") and "towers" in inputs.vectors:
                summary["coverage"], coverage = run_coverage(
                    inputs, plan.stages.get("coverage"), staging
                )
                if _stage_enabled(plan, "gaps"):
                    summary["gaps"] = run_gaps(inputs, coverage, plan.stages.get("gaps"), staging)
            if _stage_enabled(plan, "backbone") and set(BACKBONE_LAYERS) <= set(inputs.vectors):
                summary["backbone"] = run_backbone(inputs, plan.stages.get("backbone"), staging)
            summary["provenance"] = _provenance(plan)
            # the map and the report draw on every output above; summary.json is written last
            if _stage_enabled(plan, "map"):
                summary["map"] = run_map(inputs, plan.stages.get("map"), staging, summary)
            if _stage_enabled(plan, "report"):
                summary["report"] = run_report(inputs, plan.stages.get("report"), staging, summary)
            # the files of this run, listed in the summary: a later run with --overwrite removes
            # those it does not write again (an operator gone, a stage switched off)
            summary["outputs"] = [*sorted(p.name for p in staging.iterdir()), "summary.json"]
            write_summary(staging / "summary.json", summary, overwrite=True)
            names = summary["outputs"]
            clash = [n for n in names if (out / n).exists()]
            if clash and not overwrite:
                raise OutputExistsError(
                    f"{out / clash[0]} already exists; pass --overwrite to replace the outputs in {out}"
                )
            _publish(staging, out, names, _previous_outputs(out) - set(names))
    except BaseException:
        if created and not any(out.iterdir()):
            out.rmdir()  # a failed first run leaves no empty folder behind
        raise
    log.info("wrote %d outputs to %s", len(names), out)
    return summary


def _previous_outputs(out: Path) -> set[str]:
    """The files the previous run into ``out`` listed as its outputs (none if unknown)."""
    import json

    try:
        listed = json.loads((out / "summary.json").read_text(encoding="utf-8")).get("outputs")
    except (OSError, ValueError, AttributeError):
        return set()
    if not isinstance(listed, list):
        return set()
    return {n for n in listed if isinstance(n, str) and "/" not in n and n not in ("", ".", "..")}


def _publish(staging: Path, out: Path, names: list[str], stale: set[str]) -> None:
    """Move the staged ``names`` into ``out`` all together, or not at all.

    Files they replace, and the previous run's ``stale`` outputs, are first moved aside into
    the staging folder (removed with it); if any move fails, every move is undone and the
    previous outputs are back as they were.
    """
    for name in names:
        if (out / name).is_dir():
            raise OutputExistsError(
                f"{out / name} is a folder; the run writes a file {name} there: move the "
                "folder away (nothing was written)"
            )
    aside: list[tuple[Path, Path]] = []  # (where it went, where it was)
    placed: list[Path] = []
    removed = 0
    try:
        for name in sorted(stale):
            if (out / name).is_file():
                os.replace(out / name, staging / f".previous-{name}")
                aside.append((staging / f".previous-{name}", out / name))
                removed += 1
        for name in names:
            target = out / name
            if target.exists():
                os.replace(target, staging / f".previous-{name}")
                aside.append((staging / f".previous-{name}", target))
            os.replace(staging / name, target)
            placed.append(target)
    except OSError as exc:
        for target in placed:
            target.unlink(missing_ok=True)
        for held, target in reversed(aside):
            os.replace(held, target)
        raise OutputExistsError(
            f"cannot write the outputs into {out} ({exc.strerror or exc}); nothing was "
            "changed there"
        ) from None
    if removed:
        log.info("removed %d outputs of the previous run that this run did not write", removed)


def _stage_enabled(plan: Plan, name: str) -> bool:
    return plan.stages.get(name, {}) is not False


def population_summary(inputs: PlanInputs) -> dict[str, Any]:
    """Key population figures: total and per area (zonal sums on the plan grid)."""
    labels = label_polygons(inputs.areas, inputs.grid)
    per_area = zonal_sum_labels(inputs.population, labels, len(inputs.areas))
    total = float(inputs.population.sum())
    outside = total - float(per_area.sum())
    names = inputs.areas.index.astype(str)
    km2 = inputs.areas.geometry.area.to_numpy() / 1e6
    return {
        "plan": inputs.plan.name,
        "synthetic": inputs.plan.synthetic,
        "telcoplan_version": __version__,
        "crs": inputs.crs,
        "grid": inputs.grid.to_dict(),
        "population_total": round(total, 3) if inputs.has_population else None,
        "population_outside_areas": round(outside, 3) if inputs.has_population else None,
        "area_km2_total": round(float(km2.sum()), 3),
        "areas": [
            {
                "name": n,
                "population": round(float(p), 3) if inputs.has_population else None,
                "area_km2": round(float(a), 3),
            }
            for n, p, a in zip(names, per_area, km2, strict=True)
        ],
        "layers": {name: len(g) for name, g in inputs.vectors.items()},
    }


def _provenance(plan: Plan) -> dict[str, Any]:
    """Parameters and inputs (paths relative to the plan file, SHA-256) of a run."""
    base = plan.path.resolve().parent if plan.path is not None else Path.cwd()
    return {
        "plan_file": None if plan.path is None else plan.path.name,
        "parameters": {
            "crs": plan.crs,
            "resolution_m": plan.resolution_m,
            "study_area_margin_m": plan.study_area_margin_m,
            "stages": dict(plan.stages),
        },
        "inputs": {
            name: {"path": os.path.relpath(ref.path, base), "sha256": file_sha256(ref.path)}
            | {
                f"{key}_{part}": value
                for key, extra in (("weights", ref.weights), ("classes", ref.classes))
                if extra is not None
                for part, value in (
                    ("path", os.path.relpath(extra, base)),
                    ("sha256", file_sha256(extra)),
                )
            }
            for name, ref in plan.layers.items()
        },
    }
