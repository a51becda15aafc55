"""The plan: values only (what a plan file says, parsed and checked by :mod:`.parse`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "GENERATED_ID_LAYERS",
    "LAYER_NAMES",
    "RASTER_SUFFIXES",
    "VECTOR_LAYERS",
    "LayerRef",
    "Plan",
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
    """Where a layer comes from: a path (absolute after parsing) and reading options."""

    path: Path
    crs: str | None = None
    layer: str | None = None
    column: str | None = None
    weights: Path | None = None
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

    @property
    def is_raster(self) -> bool:
        return self.path.suffix.lower() in RASTER_SUFFIXES


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
