"""Loading a plan's inputs: every layer read, validated and brought into the plan's CRS and
grid before anything is written (:func:`load_inputs`)."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np

from telcoplan import __version__
from telcoplan.errors import (
    DatabaseError,
    InputFileError,
    LayerValidationError,
    PlanError,
    Problem,
    TelcoplanError,
)
from telcoplan.gis.crs import crs_name, to_projected
from telcoplan.gis.grid import GridSpec
from telcoplan.gis.postgis import redact
from telcoplan.gis.raster import MemoryRaster, read_raster_on_grid
from telcoplan.gis.zonal import label_polygons, warn_overlaps, zonal_sum_labels
from telcoplan.layers import areas as areas_layer
from telcoplan.layers import candidates, fiber, measurements, pois, roads, towers
from telcoplan.layers.dem import load_dem
from telcoplan.layers.population import (
    load_population_raster,
    spread_population,
    weights_from_polygons,
)
from telcoplan.layers.schemas import POPULATION_POLYGONS
from telcoplan.pipeline.model import GENERATED_ID_LAYERS, RASTER_SUFFIXES, LayerRef, Plan

__all__ = [
    "MAX_CELLS",
    "PlanInputs",
    "load_inputs",
    "population_summary",
    "source_name",
    "source_provenance",
    "tower_reach",
]

log = logging.getLogger(__name__)

#: Largest plan grid (cells): one float64 layer of it is 1.6 GB.
MAX_CELLS = 200_000_000

#: Vector layers with their loaders (the keys are :data:`telcoplan.pipeline.model.VECTOR_LAYERS`).
_VECTOR_LOADERS = {
    "towers": towers.load_towers,
    "roads": roads.load_roads,
    "fiber": fiber.load_fiber,
    "candidates": candidates.load_candidates,
    "pois": pois.load_pois,
    "measurements": measurements.load_measurements,
}


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
    #: False when the plan has no population at all (allowed unless the gaps stage runs)
    has_population: bool = True
    #: land-use codes on the grid (NaN = nodata) and their class names (None: the code itself)
    land_use: np.ndarray | None = None
    land_use_names: Mapping[float, str] | None = None

    def layers(self) -> dict[str, gpd.GeoDataFrame]:
        """The vector layers and the areas, by layer name (for the map and the figure)."""
        return {**self.vectors, "areas": self.areas}


def load_inputs(plan: Plan) -> PlanInputs:
    """Load and validate every layer of ``plan``; all problems of all layers are raised at once.

    The returned inputs' ``plan`` is ``plan`` with the SHA-256 of the rows of each layer read
    from a database (:attr:`LayerRef.rows_sha256`), for the run's provenance."""
    failures: list[TelcoplanError] = []
    digests: dict[str, str] = {}
    aref = plan.layers["areas"]
    try:
        areas_raw = areas_layer.load_areas(
            aref.path, crs=aref.crs, layer=aref.layer, columns=aref.columns, values=aref.values,
            sql=aref.sql,
        )  # fmt: skip
        _note_digest(digests, "areas", aref, areas_raw)
    except (LayerValidationError, InputFileError, DatabaseError) as exc:
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
    warn_overlaps(
        areas,
        grid.cell_area_m2,
        "areas",
        "a cell whose centre lies in an overlap counts for the later area only: the per-area "
        "figures of the earlier one leave it out (the study area's totals are not affected); "
        "fix the areas layer's topology, or remove a repeated area",
    )
    population_read = _read_ahead(plan.layers.get("population"))

    vectors: dict[str, gpd.GeoDataFrame] = {}
    for name, loader in _VECTOR_LOADERS.items():
        ref = plan.layers.get(name)
        if ref is None:
            continue
        options = {"study_area": study, "ids": ref.ids}
        if name == "towers" and not ref.clip:
            # sites beyond the boundary serve its edge: kept within their coverage radius
            options = {
                "study_area": areas.geometry,
                "reach_m": tower_reach(
                    _coverage_radius_km(plan), margin_m=plan.study_area_margin_m
                ),
                "reach_name": "coverage radius",
            }
        try:
            layer = loader(
                ref.path, crs=ref.crs, layer=ref.layer, clip=ref.clip, columns=ref.columns,
                values=ref.values, sql=ref.sql, **options,
            )  # fmt: skip
            _note_digest(digests, name, ref, layer)
            vectors[name] = layer.to_crs(crs)
            log.info("%s: %d features from %s", name, len(vectors[name]), source_name(ref))
        except LayerValidationError as exc:
            failures.append(_with_ids_hint(exc, name, ref))
        except (InputFileError, DatabaseError) as exc:
            failures.append(exc)

    dem = None
    if "dem" in plan.layers:
        try:
            dem = load_dem(_raster_source(plan.layers["dem"], grid, digests, "dem"), grid)
        except TelcoplanError as exc:
            failures.append(exc)

    land_use = land_use_names = None
    if "land_use" in plan.layers:
        try:
            land_use, land_use_names = _load_land_use(plan.layers["land_use"], grid, digests)
        except TelcoplanError as exc:
            failures.append(exc)

    population, has_population = np.zeros(grid.shape), True
    no_population = "population" not in plan.layers and "population" not in areas.columns
    if no_population and plan.enabled("gaps") and "towers" in plan.layers:
        failures.append(
            PlanError(
                "the gaps stage needs population (gaps are uncovered populated places): add "
                "`layers.population:` or a `population` column to the areas (`columns: "
                "{population: <column>}`; command line: --population or --population-column), "
                "or switch the stage off with `gaps: false`"
            )
        )
    elif no_population:
        # the backbone, or coverage alone (signal needs no people): say so rather than refuse
        log.info("no population layer: population figures are left out")
        has_population = False
    else:
        try:
            population = _load_population(plan, areas, grid, digests, population_read)
        except TelcoplanError as exc:
            failures.append(exc)
        else:
            if not np.nansum(population) > 0:
                source = plan.layers.get("population")
                log.warning(
                    "%s: nobody lives in the study area by this population layer (its total "
                    "is 0): every population figure will be 0; check its band, nodata value, "
                    "extent and CRS, or the areas' population column",
                    source_name(source) if source is not None else "the areas' population",
                )

    if failures:
        n = sum(len(getattr(f, "problems", (0,))) for f in failures)
        raise PlanError(
            f"{plan.path or plan.name}: {n} problem{'s' if n != 1 else ''} in the input layers:\n"
            + "\n".join(str(f) for f in failures)
        )
    if "towers" in vectors:
        from telcoplan.layers.towers import operator_name_doubts

        for doubt in operator_name_doubts(vectors["towers"], vectors.get("fiber")):
            log.warning("%s", doubt)
    if digests:
        layers = {
            n: replace(r, rows_sha256=digests.get(n), weights_sha256=digests.get(f"{n}.weights"))
            for n, r in plan.layers.items()
        }
        plan = replace(plan, layers=layers)
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


#: The SHA-256 of the rows last read from each database source in this process, by
#: (connection, table, query): the provenance of a run whose plan was read before its inputs.
_ROWS_READ: dict[tuple[str, str | None, str | None], str] = {}


def _note_digest(
    digests: dict[str, str], name: str, ref: LayerRef, layer: gpd.GeoDataFrame | MemoryRaster
) -> None:
    """Keep the SHA-256 of a layer's rows (or raster tiles) when it was read from a database
    (``name``: the layer's, or ``<layer>.weights`` for its weights, read from ``ref``)."""
    record = layer.attrs.get("postgis")
    if ref.is_database and record and record.get("sha256"):
        digests[name] = record["sha256"]
        _ROWS_READ[_source_key(ref)] = record["sha256"]


def _source_key(ref: LayerRef) -> tuple[str, str | None, str | None]:
    return redact(str(ref.path)), ref.layer, ref.sql


def _weights_ref(ref: LayerRef) -> LayerRef | None:
    """A population layer's weights as a layer of their own (path, table or query)."""
    if ref.weights is None:
        return None
    opts = ref.weights_options or {}
    return LayerRef(path=ref.weights, layer=opts.get("layer"), sql=opts.get("sql"))


def _raster_source(
    ref: LayerRef, grid: GridSpec, digests: dict[str, str], name: str
) -> Path | MemoryRaster:
    """A raster layer's file, or its PostGIS raster over the grid (its digest noted)."""
    if not ref.is_database:
        return Path(ref.path)
    from telcoplan.gis.postgis_raster import read_postgis_raster

    raster = read_postgis_raster(
        str(ref.path), table=ref.layer, sql=ref.sql, extent=grid, crs=ref.crs
    )
    _note_digest(digests, name, ref, raster)
    return raster


def _database_layer(
    ref: LayerRef, grid: GridSpec, digests: dict[str, str], name: str
) -> MemoryRaster | gpd.GeoDataFrame:
    """A layer that may be a raster or polygons, from a database: the raster when its table
    (or query) has a raster column, else its rows (:func:`~telcoplan.gis.postgis.read_postgis`)."""
    from telcoplan.gis.postgis import read_postgis
    from telcoplan.gis.postgis_raster import source_kind

    url = str(ref.path)
    if source_kind(url, table=ref.layer, sql=ref.sql) == "raster":
        return _raster_source(ref, grid, digests, name)
    layer = read_postgis(url, table=ref.layer, sql=ref.sql, crs=ref.crs)
    _note_digest(digests, name, ref, layer)
    return layer


def source_name(ref: LayerRef) -> str:
    """A layer's source for messages and logs: its file name, or its database (without
    password) and table (or ``query``)."""
    if not ref.is_database:
        return Path(ref.path).name
    what = f"table {ref.layer}" if ref.layer is not None else "query"
    return f"{redact(str(ref.path))} {what}"


def source_provenance(
    ref: LayerRef, base: Path, sha: Callable[[Path], str] | None = None
) -> dict[str, Any]:
    """Where a run's input came from, for its provenance: a file's path (relative to
    ``base``, the plan's folder, when the file is inside it; else absolute) and SHA-256 (``sha``: the function giving a file's), or a
    database's connection (without password), table or query, and the SHA-256 of the rows
    read (:attr:`LayerRef.rows_sha256`, else those this process last read from it); raster
    layers alike (the SHA-256 of the raster tiles read). A population layer's weights and a
    land-use raster's class table follow, their keys prefixed ``weights_`` and ``classes_``."""
    out = _one_source(ref, base, sha, ref.rows_sha256)
    weights = _weights_ref(ref)
    if weights is not None:
        one = _one_source(weights, base, sha, ref.weights_sha256)
        out |= {f"weights_{k}": v for k, v in one.items()}
    if ref.classes is not None:
        one = _one_source(LayerRef(path=ref.classes), base, sha, None)
        out |= {f"classes_{k}": v for k, v in one.items()}
    return out


def _one_source(
    ref: LayerRef, base: Path, sha: Callable[[Path], str] | None, digest: str | None
) -> dict[str, Any]:
    if not ref.is_database:
        if sha is None:
            from telcoplan.outputs import file_sha256 as sha
        return {"path": _shown_path(ref.path, base), "sha256": sha(Path(ref.path))}
    url = redact(str(ref.path))
    out: dict[str, Any] = {"path": url}
    out |= {"table": ref.layer} if ref.layer is not None else {"sql": ref.sql}
    return out | {"sha256": digest or _ROWS_READ.get(_source_key(ref))}


def _shown_path(path: str | os.PathLike, base: Path) -> str:
    """``path`` relative to ``base`` when inside it (``data/towers.csv``), else absolute: a
    file elsewhere reads better as ``/srv/gis/wards.geojson`` than ``../../srv/gis/…``."""
    full = os.path.abspath(os.path.join(base, path))
    rel = os.path.relpath(full, os.path.abspath(base))
    return full if rel == os.pardir or rel.startswith(os.pardir + os.sep) else rel


def _coverage_radius_km(plan: Plan) -> float | None:
    """The coverage stage's ``max_radius_km`` (None: by band, or the stage is off)."""
    params = plan.parameters.get("coverage") if plan.enabled("coverage") else None
    return getattr(params, "max_radius_km", None)


def tower_reach(max_radius_km: float | None = None, *, margin_m: float = 0.0):
    """A function giving, per tower, the distance (m) from the study area within which the
    tower is kept (it serves the area's edge): ``max_radius_km`` (the coverage stage's), else
    the tower's own ``max_radius_km`` column, else the default radius of its band
    (:func:`telcoplan.coverage.bestserver.default_radius_km`: ≤ 1 GHz 15 km, ≤ 2.2 GHz 10 km,
    ≤ 3 GHz 8 km, else 5 km; the largest for a frequency that is not a number), and at least
    ``margin_m`` (the plan's ``study_area_margin_m``)."""
    import pandas as pd

    from telcoplan.coverage.bestserver import DEFAULT_RADIUS_KM, default_radius_km

    fixed = max_radius_km
    widest = max(r for _, r in DEFAULT_RADIUS_KM)
    margin = margin_m

    def reach(towers: gpd.GeoDataFrame) -> np.ndarray:
        n = len(towers)
        if fixed is not None:
            return np.full(n, max(float(fixed) * 1000.0, margin))
        freq = np.full(n, np.nan)
        if "frequency_mhz" in towers.columns:
            freq = pd.to_numeric(towers["frequency_mhz"], errors="coerce").to_numpy(float)
        ok = np.isfinite(freq)
        km = np.where(ok, default_radius_km(np.where(ok, freq, 0.0)), widest)
        if "max_radius_km" in towers.columns:
            own = pd.to_numeric(towers["max_radius_km"], errors="coerce").to_numpy(float)
            km = np.where(np.isfinite(own), own, km)
        return np.maximum(km * 1000.0, margin)

    return reach


def _with_ids_hint(exc: LayerValidationError, name: str, ref: LayerRef) -> LayerValidationError:
    """``exc`` with a hint at ``ids: generate`` on its id problems (duplicate or missing ids)
    when the layer's ids only label features and the plan keeps the file's."""
    from telcoplan.layers.schemas import SCHEMAS

    id_column = SCHEMAS[name].id_column
    if name not in GENERATED_ID_LAYERS or ref.ids != "file" or id_column is None:
        return exc
    hint = (
        f"; or, as {name} ids only label features, set `ids: generate` for layers.{name} in "
        "the plan (ids then come from the row numbers)"
    )
    problems = [
        replace(p, message=p.message + hint)
        if p.column == id_column and ("duplicate" in p.message or "missing" in p.message)
        else p
        for p in exc.problems
    ]
    return LayerValidationError(exc.source, exc.layer, problems)


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


def _load_land_use(
    ref: LayerRef, grid: GridSpec, digests: dict[str, str]
) -> tuple[np.ndarray, dict[float, str] | None]:
    """Land-use class codes on the grid (NaN: no class) and their names, checked
    (:mod:`telcoplan.layers.land_use`: a raster of codes, or polygons with a class column; from
    files or PostGIS)."""
    from telcoplan.layers.land_use import land_use_on_grid

    if ref.is_database:
        source = _database_layer(ref, grid, digests, "land_use")
        return land_use_on_grid(source, grid, column=ref.column, classes=ref.classes)

    return land_use_on_grid(
        ref.path, grid, column=ref.column, classes=ref.classes, crs=ref.crs, layer=ref.layer
    )


def _read_ahead(ref: LayerRef | None) -> Callable[[], Any] | None:
    """A population raster file read in a thread while the vector layers load (GDAL decodes
    its blocks with the GIL released: ~1 s of a national run's start, on a core otherwise
    idle); the call that waits for what :func:`~telcoplan.gis.raster.read_raster` returns (or
    raises). None for any other population layer. Only the read runs there: the checks, what
    they log and a failed read's error come in turn (:func:`_load_population`); what the read
    itself logs (a raster of several bands, GDAL's warnings) may come before the vector layers'
    lines."""
    from concurrent.futures import ThreadPoolExecutor

    from telcoplan.gis.raster import read_raster

    if ref is None or not ref.is_raster:
        return None
    pool = ThreadPoolExecutor(1, thread_name_prefix="telcoplan-read")
    future = pool.submit(read_raster, ref.path)
    pool.shutdown(wait=False)  # the thread ends with the read
    return future.result


def _load_population(
    plan: Plan,
    areas: gpd.GeoDataFrame,
    grid: GridSpec,
    digests: dict[str, str],
    read: Callable[[], Any] | None = None,
) -> np.ndarray:
    """The population on the grid: the areas' column spread, a raster (``read``: the call
    giving its file read ahead, :func:`_read_ahead`), or polygons (with dasymetric weights)."""
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
        return load_population_raster(ref.path, grid, read=read)
    from telcoplan.gis.vector import read_vector

    column = ref.column or "population"
    schema = POPULATION_POLYGONS if column == "population" else _renamed_population_schema(column)
    if ref.is_database:
        from telcoplan.gis.postgis import row_keys

        polys = _database_layer(ref, grid, digests, "population")
        if isinstance(polys, MemoryRaster):
            return load_population_raster(polys, grid)
        schema.validate(polys, source=polys.attrs["postgis"]["source"], keys=row_keys(polys))
    else:
        polys = read_vector(ref.path, layer=ref.layer, crs=ref.crs)
        schema.validate(polys, source=str(ref.path))
    weights = None
    wref = _weights_ref(ref)
    land: gpd.GeoDataFrame | Path | MemoryRaster | None = None
    if wref is not None and wref.is_database:
        land = _database_layer(wref, grid, digests, "population.weights")
    elif wref is not None:
        land = Path(wref.path)
        if land.suffix.lower() not in RASTER_SUFFIXES:
            land = read_vector(land, layer=wref.layer)
    if isinstance(land, gpd.GeoDataFrame):
        opts = {k: v for k, v in (ref.weights_options or {}).items() if k not in ("layer", "sql")}
        source = str(land.attrs.get("postgis", {}).get("source", ref.weights))
        weights = weights_from_polygons(to_projected(land, grid.crs), grid, source=source, **opts)
        log.info(
            "population: dasymetric weights from %d polygons of %s (mean weight %.2f)",
            len(land),
            source_name(wref),
            float(weights.mean()),
        )
    elif land is not None:
        warped = read_raster_on_grid(land, grid, resampling="average")
        weights = np.where(np.isnan(warped), 0.0, warped)
        if (weights < 0).any() or not np.isfinite(weights).all():
            raise LayerValidationError(
                str(land),
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
                land,
            )
    return spread_population(to_projected(polys, grid.crs), grid, column=column, weights=weights)


def _renamed_population_schema(column: str):
    col = replace(POPULATION_POLYGONS.columns[0], name=column)
    return replace(POPULATION_POLYGONS, columns=(col,))


def population_summary(inputs: PlanInputs) -> dict[str, Any]:
    """Key population figures: total and per area (zonal sums on the plan grid)."""
    if inputs.has_population:
        labels = label_polygons(inputs.areas, inputs.grid)
        per_area = zonal_sum_labels(inputs.population, labels, len(inputs.areas))
    else:  # nothing to sum: no grid of labels
        per_area = np.zeros(len(inputs.areas))
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
