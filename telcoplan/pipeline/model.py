"""The plan: values only (what a plan file says, parsed and checked by :mod:`.parse`), and
the content of such values as a key (:func:`digest`: what a kept result was computed from)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import pickle
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "GENERATED_ID_LAYERS",
    "LAYER_NAMES",
    "RASTER_SUFFIXES",
    "VECTOR_LAYERS",
    "Execution",
    "LayerRef",
    "Plan",
    "UnkeyableError",
    "canonical",
    "digest",
    "plan_inputs",
]

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
#: Point and line layers, loaded by their layer module (they take ``clip``, ``columns``, ``values``).
VECTOR_LAYERS = ("towers", "roads", "fiber", "candidates", "pois", "measurements")
#: Layers whose id only labels features: they take ``ids: generate`` (ids from row numbers).
GENERATED_ID_LAYERS = ("roads", "fiber")
#: File suffixes read as rasters.
RASTER_SUFFIXES = (".tif", ".tiff", ".vrt", ".img", ".asc")


@dataclass(frozen=True)
class LayerRef:
    """Where a layer comes from: a path (absolute after parsing) and reading options.

    A layer may also come from a PostGIS database (vector or raster): ``path`` is then its
    connection URL (``postgresql://user@host/dbname``, never with a password) and ``layer`` its
    table (``schema.table``) or ``sql`` a query; so may ``weights`` (then a URL, with ``layer``
    or ``sql`` in ``weights_options``).
    """

    path: Path | str
    crs: str | None = None
    layer: str | None = None
    column: str | None = None
    weights: Path | str | None = None
    #: reading dasymetric weight polygons: ``column`` (class), ``classes`` ({class: weight}),
    #: ``default`` (weight of unmapped land), ``layer``
    weights_options: Mapping[str, Any] | None = None
    classes: Path | None = None
    clip: bool = False
    #: the file's name of schema columns, e.g. {"site_id": "CellID"} (vector layers)
    columns: Mapping[str, str] | None = None
    #: translations of column values, e.g. {"road_class": {"Quốc Gia": "trunk"}}
    values: Mapping[str, Mapping[str, str]] | None = None
    #: "file" (the file's ids, unique) or "generate" (from row numbers; GENERATED_ID_LAYERS)
    ids: str = "file"
    #: a query giving a database layer's rows (instead of ``layer``, its table)
    sql: str | None = None
    #: SHA-256 of a database layer's rows (or raster tiles) as read (set by ``load_inputs``,
    #: for provenance and the results' keys)
    rows_sha256: str | None = None
    #: the same for ``weights`` read from a database
    weights_sha256: str | None = None

    @property
    def is_database(self) -> bool:
        """Whether the layer comes from a database (``path`` is a ``postgresql://`` URL)."""
        from telcoplan.gis.postgis import is_database_url

        return is_database_url(self.path)

    @property
    def is_raster(self) -> bool:
        return not self.is_database and Path(self.path).suffix.lower() in RASTER_SUFFIXES


@dataclass(frozen=True)
class Execution:
    """Where a plan's tiled work runs (the plan file's ``execution:`` and ``telcoplan run``'s
    ``--workers`` / ``--scheduler``): in this process (the default: both None), on a local
    cluster of ``workers`` processes started for the run, or on the existing Dask cluster whose
    scheduler is at ``scheduler`` (``tcp://host:port``). Results are the same either way, so it
    is not part of a result's key."""

    workers: int | None = None
    scheduler: str | None = None

    @property
    def in_process(self) -> bool:
        return self.workers is None and self.scheduler is None


@dataclass(frozen=True)
class Plan:
    """A parsed plan file.

    ``stages`` is the plan file's ``stages:`` mapping as written (``false`` skips a stage; kept
    for provenance); ``parameters`` holds each enabled stage's checked parameters (the frozen
    dataclass of its stage module), parsed once when the plan is read.
    """

    name: str
    layers: Mapping[str, LayerRef]
    crs: str | None = None
    resolution_m: float = 100.0
    study_area_margin_m: float = 0.0
    stages: Mapping[str, Any] = field(default_factory=dict)
    synthetic: bool = False
    path: Path | None = None
    parameters: Mapping[str, Any] = field(default_factory=dict)
    execution: Execution = field(default_factory=Execution)

    def enabled(self, stage: str) -> bool:
        """Whether ``stage`` runs (it is on unless the plan says ``<stage>: false``)."""
        return self.stages.get(stage, {}) is not False

    @property
    def source(self) -> str:
        """The plan file, or the plan's name, for messages."""
        return str(self.path or self.name)

    @property
    def base(self) -> Path:
        """The folder that relative paths of the plan are taken from."""
        return self.path.resolve().parent if self.path is not None else Path.cwd()


def plan_inputs(plan: Plan, files: Callable[[Path], Any]) -> dict[str, Any]:
    """What a plan's inputs are, as values: its name, CRS and grid, and each layer's reading
    options, each file given as ``files(path)`` (its content: e.g. the SHA-256 of the file and
    of its side-car files), a database's by the SHA-256 of the rows read
    (:attr:`LayerRef.rows_sha256`). :class:`UnkeyableError` for a database layer not read yet."""
    layers: dict[str, Any] = {}
    for name, ref in plan.layers.items():
        # a database's rows are known once read: keyed by their SHA-256 (a field), set then
        if (not isinstance(ref.path, Path) and ref.rows_sha256 is None) or (
            isinstance(ref.weights, str) and ref.weights_sha256 is None
        ):
            raise UnkeyableError(f"layers.{name} is read from a database and was not read yet")
        layers[name] = {
            f.name: files(v) if isinstance(v := getattr(ref, f.name), Path) else v
            for f in dataclasses.fields(ref)
        }
    grid = (plan.crs, plan.resolution_m, plan.study_area_margin_m)
    return {"name": plan.name, "synthetic": plan.synthetic, "grid": grid, "layers": layers}


class UnkeyableError(Exception):
    """A value whose content cannot be told (it cannot be pickled)."""


def digest(doc: Any) -> str:
    """SHA-256 of the content of ``doc`` (:func:`canonical`): equal for equal values."""
    text = json.dumps(canonical(doc), ensure_ascii=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("ascii")).hexdigest()


def canonical(obj: Any) -> Any:
    """``obj`` as JSON that tells its content: mappings (in their order), sequences, sets,
    dataclasses field by field (a stage's parameters, with the files they loaded), floats
    exactly; anything else by the SHA-256 of its pickle (arrays, geometries, frames, CRSs).
    :class:`UnkeyableError` for what cannot be pickled."""
    if obj is None or isinstance(obj, bool | int | str):
        return obj
    if isinstance(obj, float):
        return {"float": obj.hex()}
    if isinstance(obj, Path):
        return {"path": str(obj)}
    if isinstance(obj, Mapping):
        return {"map": [[canonical(k), canonical(v)] for k, v in obj.items()]}
    if isinstance(obj, list | tuple):
        return {type(obj).__name__: [canonical(v) for v in obj]}
    if isinstance(obj, set | frozenset):
        return {"set": sorted(json.dumps(canonical(v)) for v in obj)}
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        kind = f"{type(obj).__module__}.{type(obj).__qualname__}"
        return {kind: [[f.name, canonical(getattr(obj, f.name))] for f in dataclasses.fields(obj)]}
    if type(obj).__module__ == "numpy" and getattr(obj, "shape", None) == ():
        return {type(obj).__name__: canonical(obj.item())}
    try:
        data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as exc:  # any pickling failure
        raise UnkeyableError(f"{type(obj).__name__} cannot be told by content ({exc})") from None
    return {"pickle": type(obj).__qualname__, "sha256": hashlib.sha256(data).hexdigest()}
