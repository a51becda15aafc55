"""Reading a plan file (YAML) into a checked :class:`~telcoplan.pipeline.model.Plan`.

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
``weights`` (dasymetric weights for population polygons: a raster, or land-use / building
polygons whose classes weigh as :data:`telcoplan.layers.population.CLASS_WEIGHTS` says, with
``{path, column, classes: {class: weight}, default}`` to change them), ``classes`` (the
``code,name`` CSV of a ``land_use`` raster, whose clutter classes a calibration's offsets name)
``clip`` (``true``: features wholly outside the study area plus its margin are left out,
with a warning, instead of being reported, and lines and polygons crossing its edge are cut
there — for national road files), ``columns`` (the file's names of the layer's columns, e.g.
``{site_id: CellID, height_m: AntennaHeight}``; also for ``areas``: ``{name: commune_vn,
population: pop2019_total}``), ``values`` (translations of a column's values, e.g.
``{road_class: {Quốc Gia: trunk}}``) and ``ids`` (``generate``: roads and fiber take their
ids from the row numbers, for files whose ids are missing or repeat).

Any layer — and population's ``weights`` — may come from a PostGIS database: ``path`` is its
connection URL and ``layer`` its table, or ``sql`` a query; the DEM, and land use, population
and weights when their table (or query) has a raster column, are PostGIS rasters::

      towers: {path: "postgresql://planner@gis.danang.gov.vn/hatang", layer: vt.tram_bts}
      roads: {path: "postgresql://planner@gis/hatang", sql: "SELECT * FROM gt.duong WHERE cap <= 3"}
      dem: {path: "postgresql://planner@gis/hatang", layer: dh.srtm}

The password never goes in the plan (a URL with one is refused): libpq takes it from
``PGPASSWORD`` or ``~/.pgpass``.

Each stage's parameters are checked by its stage module (:data:`telcoplan.pipeline.stages.STAGES`)
when the plan is read, once; every problem of the file is reported at once.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from telcoplan.errors import InputFileError, PlanError
from telcoplan.gis.postgis import is_database_url, parse_table_name, url_problem
from telcoplan.pipeline.checks import ParameterError, in_range, is_number, suggest
from telcoplan.pipeline.execution import scheduler_problem
from telcoplan.pipeline.model import (
    GENERATED_ID_LAYERS,
    LAYER_NAMES,
    RASTER_SUFFIXES,
    VECTOR_LAYERS,
    Execution,
    LayerRef,
    Plan,
)
from telcoplan.pipeline.stages import STAGES

__all__ = [
    "batch_targets",
    "load_plan_document",
    "parse_plan",
    "plan_from_layers",
    "read_plan",
    "write_plan",
]

_TOP_KEYS = (
    "name",
    "crs",
    "resolution_m",
    "study_area_margin_m",
    "layers",
    "stages",
    "synthetic",
    "description",
    "execution",
)
_EXECUTION_KEYS = ("workers", "scheduler")
_LAYER_KEYS = (
    "path", "crs", "layer", "column", "weights", "classes", "clip", "columns", "values", "ids",
    "sql",
)  # fmt: skip
#: Layers that take `columns:` and `values:` (the vector layers and the areas).
_MAPPED_LAYERS = ("areas", *VECTOR_LAYERS)


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


def read_plan(path: str | os.PathLike) -> Plan:
    """Parse and check a plan file; every problem is reported at once in one :class:`PlanError`."""
    p = Path(path)
    return parse_plan(load_plan_document(p), base=p.parent, source=str(p))


def load_plan_document(path: str | os.PathLike) -> Any:
    """A plan file's YAML document, safely loaded (a key given twice is an error), unchecked."""
    p = Path(path)
    if not p.is_file():
        raise InputFileError(f"{p}: plan file not found")
    try:
        return yaml.load(p.read_text(encoding="utf-8"), Loader=_PlanLoader)  # a SafeLoader
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise PlanError(f"{p}: not valid YAML{where}: {getattr(exc, 'problem', exc)}") from None
    except UnicodeDecodeError:
        raise PlanError(f"{p}: plan file must be UTF-8 text") from None


def _layer_ref(name: str, entry: object, base: Path, errs: list[str]) -> LayerRef | None:
    """The checked reference of layer ``name`` (problems appended to ``errs``)."""
    if isinstance(entry, str):
        entry = {"path": entry}
    if not isinstance(entry, dict) or not isinstance(entry.get("path"), str):
        errs.append(f"layers.{name}: give a path, or a mapping with `path:`")
        return None
    for k in entry:
        if k not in _LAYER_KEYS:
            errs.append(f"layers.{name}: unknown key {k!r}{suggest(str(k), _LAYER_KEYS)}")
    for k in ("crs", "layer", "column", "classes"):
        if entry.get(k) is not None and not isinstance(entry[k], str | int):
            errs.append(f"layers.{name}.{k} must be a name, got {entry[k]!r}")
            entry = {**entry, k: None}
    database = is_database_url(entry["path"])
    lp: Path | str
    if database:
        lp = entry["path"].strip()
        _database_checks(name, entry, errs)
    else:
        lp = (
            (base / entry["path"]).resolve()
            if not Path(entry["path"]).is_absolute()
            else Path(entry["path"])
        )
        if not lp.exists():
            errs.append(f"layers.{name}: file {lp} not found (paths are relative to the plan file)")
        if entry.get("sql") is not None:
            errs.append(
                f"layers.{name}.sql: a query reads from a database; give its connection as the "
                "path (postgresql://user@host/dbname), or remove `sql:`"
            )
    weights, weights_options = _weights(name, entry.get("weights"), base, errs)
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
    elif clip and name not in VECTOR_LAYERS:
        errs.append(
            f"layers.{name}.clip: only the layers {', '.join(VECTOR_LAYERS)} can leave out "
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
        elif name not in _MAPPED_LAYERS:
            errs.append(
                f"layers.{name}.columns: only the layers {', '.join(_MAPPED_LAYERS)} take a "
                "column mapping; remove it"
                + (" (population polygons name their count column with `column:`)"
                   if name == "population" else "")
            )  # fmt: skip
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
        elif name not in _MAPPED_LAYERS:
            errs.append(f"layers.{name}.values: only vector layers take value translations")
            values = None
    ids = entry.get("ids", "file")
    if ids not in ("file", "generate"):
        errs.append(
            f"layers.{name}.ids must be `file` (the file's own, unique ids) or `generate` "
            f"(ids from the row numbers), got {ids!r}"
        )
        ids = "file"
    elif ids == "generate" and name not in GENERATED_ID_LAYERS:
        errs.append(
            f"layers.{name}.ids: only the layers {', '.join(GENERATED_ID_LAYERS)}, whose ids "
            "only label features, can generate them; give every feature a unique id"
        )
        ids = "file"
    if entry.get("crs") is not None and not _valid_crs(entry["crs"]):
        errs.append(
            f"layers.{name}.crs {entry['crs']!r} is not a CRS pyproj knows; use e.g. EPSG:4326 or EPSG:32649"
        )
    # keys that would be silently ignored for this kind of file
    if isinstance(lp, str):
        pass
    elif lp.suffix.lower() in RASTER_SUFFIXES:
        for k in ("column", "weights", "layer"):
            if entry.get(k) is not None:
                errs.append(
                    f"layers.{name}.{k}: {lp.name} is a raster, which has no {k}; remove it"
                )
    elif lp.suffix.lower() == ".csv" and entry.get("layer") is not None:
        errs.append(f"layers.{name}.layer: a CSV file has one table; remove it")
    return LayerRef(
        path=lp,
        crs=None if entry.get("crs") is None else str(entry["crs"]),
        layer=entry.get("layer"),
        column=entry.get("column"),
        weights=weights,
        weights_options=weights_options,
        classes=classes,
        clip=clip,
        columns=columns,
        values=values,
        ids=ids,
        sql=entry.get("sql") if database else None,
    )


def _database_checks(name: str, entry: Mapping[str, Any], errs: list[str]) -> None:
    """Problems of a layer read from a database (appended to ``errs``): a password in the
    URL, a layer that cannot come from one, no table or query (or both)."""
    problem = url_problem(entry["path"])
    if problem is not None:
        errs.append(f"layers.{name}.path: {problem}")
    table, sql = entry.get("layer"), entry.get("sql")
    where = f"layers.{name}"
    if sql is not None and (not isinstance(sql, str) or not sql.strip()):
        errs.append(f"{where}.sql must be a query (SELECT …), got {sql!r}")
    elif table is None and sql is None:
        errs.append(
            f"{where}: a database layer needs its table (`layer: schema.table`) or a "
            "query (`sql: SELECT …`)"
        )
    elif table is not None and sql is not None:
        errs.append(f"{where}: give the table (`layer:`) or a query (`sql:`), not both")
    elif table is not None:
        try:
            parse_table_name(str(table))
        except ValueError as exc:
            errs.append(f"{where}.layer: {exc}")


_WEIGHTS_KEYS = ("path", "column", "classes", "default", "layer", "sql")


def _weights(
    name: str, raw: object, base: Path, errs: list[str]
) -> tuple[Path | str | None, dict[str, Any] | None]:
    """The dasymetric weights of a population layer: a raster or polygons path, or a mapping
    ``{path, column, classes: {class: weight}, default, layer}`` (problems appended to ``errs``)."""
    if raw is None:
        return None, None
    where = f"layers.{name}.weights"
    spec = {"path": raw} if isinstance(raw, str | int) else raw
    if not isinstance(spec, dict) or not isinstance(spec.get("path"), str | int):
        errs.append(
            f"{where} must be a path (a raster, or land-use / building polygons), or a mapping "
            "{path: …, column: landuse, classes: {residential: 1, farmland: 0.1}, default: 0.1}"
        )
        return None, None
    for k in spec:
        if k not in _WEIGHTS_KEYS:
            errs.append(f"{where}: unknown key {k!r}{suggest(str(k), _WEIGHTS_KEYS)}")
    database = is_database_url(spec["path"])
    path: Path | str
    if database:  # a raster or polygons table, or a query: like a layer's
        path = spec["path"].strip()
        _database_checks(f"{name}.weights", spec, errs)
    else:
        path = (base / str(spec["path"])).resolve()
        if not path.exists():
            errs.append(f"{where}: file {path} not found")
        if spec.get("sql") is not None:
            errs.append(f"{where}.sql: a query reads from a database; remove it")
    options: dict[str, Any] = {}
    for k in ("column", "layer", *(("sql",) if database else ())):
        if spec.get(k) is not None:
            if isinstance(spec[k], str):
                options[k] = spec[k]
            else:
                errs.append(f"{where}.{k} must be a name, got {spec[k]!r}")
    classes = spec.get("classes")
    if classes is not None:
        if isinstance(classes, dict) and all(
            in_range(v, 0, math.inf) and math.isfinite(v) for v in classes.values()
        ):
            options["classes"] = {str(k): float(v) for k, v in classes.items()}
        else:
            errs.append(
                f"{where}.classes must map classes to weights ≥ 0, e.g. {{residential: 1, "
                f"farmland: 0.1}}; got {classes!r}"
            )
    default = spec.get("default")
    if default is not None:
        if in_range(default, 0, math.inf) and math.isfinite(default):
            options["default"] = float(default)
        else:
            errs.append(f"{where}.default must be a weight ≥ 0, got {default!r}")
    if not database and path.suffix.lower() in RASTER_SUFFIXES and options.keys() - {"layer"}:
        errs.append(
            f"{where}: {path.name} is a raster of weights; column, classes and default are for "
            "polygons: remove them"
        )
    return path, options or None


def _stage_parameters(
    stages: Mapping[str, Any], layers: Mapping[str, Any], base: Path, errs: list[str]
) -> dict[str, Any]:
    """Each enabled stage's checked parameters, in running order (problems appended to ``errs``
    in the plan file's order)."""
    parsed: dict[str, Any] = {}
    for name, raw in stages.items():
        if name not in STAGES:
            errs.append(f"stages: unknown stage {name!r}{suggest(str(name), STAGES)}")
        elif raw is not False and raw is not None and not isinstance(raw, dict):
            errs.append(f"stages.{name}: give a mapping of parameters, or false to skip the stage")
        elif isinstance(raw, dict):
            try:
                parsed[name] = STAGES[name].parse(raw, base=base)
            except ParameterError as exc:
                errs.extend(exc.problems)
    for name, spec in STAGES.items():
        raw = stages.get(name)
        if spec.strict and isinstance(raw, dict):
            lacking = [k for k in spec.layers if k not in layers]
            if lacking:
                errs.append(
                    f"stages.{name} needs the layers {', '.join(spec.layers)}; add "
                    + ", ".join(f"layers.{k}" for k in lacking)
                    + f" (or `{name}: false`)"
                )
        if raw is None:  # not configured: the defaults
            parsed[name] = spec.parse(None, base=base)
    return {name: parsed[name] for name in STAGES if name in parsed}


def parse_plan(raw: object, *, base: Path, source: str = "<plan>") -> Plan:
    """Build a :class:`Plan` from the YAML document ``raw``; relative paths are taken from ``base``."""
    errs: list[str] = []
    if not isinstance(raw, dict):
        raise PlanError(f"{source}: a plan file must be a YAML mapping with at least `layers:`")
    for k in raw:
        if k not in _TOP_KEYS:
            errs.append(f"unknown key {k!r}{suggest(str(k), _TOP_KEYS)}")
    layers_raw = raw.get("layers")
    refs: dict[str, LayerRef] = {}
    if not isinstance(layers_raw, dict) or not layers_raw:
        errs.append("`layers:` is missing or empty; name at least `areas:`")
        layers_raw = {}
    for name, entry in layers_raw.items():
        if name not in LAYER_NAMES:
            errs.append(f"layers: unknown layer {name!r}{suggest(str(name), LAYER_NAMES)}")
            continue
        ref = _layer_ref(name, entry, base, errs)
        if ref is not None:
            refs[name] = ref
    if layers_raw and "areas" not in layers_raw:
        errs.append("layers.areas is required: the areas' union is the study area")
    res = raw.get("resolution_m", 100.0)
    if not is_number(res) or not 1.0 <= float(res) <= 10_000.0:
        errs.append(f"resolution_m must be a number of metres between 1 and 10000, got {res!r}")
        res = 100.0
    margin = raw.get("study_area_margin_m", 0.0)
    if not is_number(margin) or not 0 <= margin <= 100_000:
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
    parameters = _stage_parameters(stages, layers_raw, base, errs)
    execution = _execution(raw.get("execution"), errs)
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
        parameters=parameters,
        execution=execution,
    )


def _execution(raw: object, errs: list[str]) -> Execution:
    """The plan's ``execution:`` mapping: ``workers`` (a local cluster of that many processes)
    or ``scheduler`` (an existing Dask cluster's ``tcp://host:port``); absent: in this process."""
    if raw is None:
        return Execution()
    if not isinstance(raw, dict):
        errs.append(
            "`execution:` must be a mapping such as {workers: 2} or {scheduler: tcp://host:8786}"
        )
        return Execution()
    for k in raw:
        if k not in _EXECUTION_KEYS:
            errs.append(f"execution: unknown key {k!r}{suggest(str(k), _EXECUTION_KEYS)}")
    workers = raw.get("workers")
    if workers is not None and (
        isinstance(workers, bool) or not isinstance(workers, int) or workers < 1
    ):
        errs.append(f"execution.workers must be a whole number of processes ≥ 1, got {workers!r}")
        workers = None
    scheduler = raw.get("scheduler")
    if scheduler is not None:
        problem = scheduler_problem(scheduler)
        if problem:
            errs.append(f"execution.scheduler: {problem}")
            scheduler = None
    if workers is not None and scheduler is not None:
        errs.append(
            "execution: give workers (a local cluster started for the run) or scheduler (an "
            "existing cluster), not both"
        )
        workers = None
    return Execution(workers=workers, scheduler=scheduler)


def plan_from_layers(
    layers: Mapping[str, str | os.PathLike | Mapping[str, Any] | None],
    *,
    name: str = "command line",
    resolution_m: float = 100.0,
    crs: str | None = None,
    stages: Mapping[str, Any] | None = None,
    study_area_margin_m: float = 0.0,
) -> Plan:
    """A :class:`Plan` built from layer paths, or layer entries as in a plan file
    (``{"path": …, "column": …}``), for the one-stage CLI commands; checked like a file."""

    def entry(v):
        if isinstance(v, Mapping):
            return {**v, "path": entry(v["path"])}
        return v if is_database_url(v) else str(Path(v).resolve())

    doc = {
        "name": name,
        "resolution_m": resolution_m,
        "study_area_margin_m": study_area_margin_m,
        "layers": {k: entry(v) for k, v in layers.items() if v is not None},
        "stages": dict(stages or {}),
    }
    if crs is not None:
        doc["crs"] = crs
    return parse_plan(doc, base=Path.cwd(), source="command line")


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
