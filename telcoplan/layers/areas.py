"""The areas layer: administrative / planning areas; their union is the study area.

The contract (columns, types, units, ranges, geometry) is :data:`telcoplan.layers.schemas.AREAS`;
the loader and ``telcoplan validate`` report every breach at once, with row ids.
"""

from __future__ import annotations

from telcoplan.layers._loader import layer_api
from telcoplan.layers.schemas import AREAS

__all__ = ["SCHEMA", "load_areas", "validate_areas"]

SCHEMA = AREAS
load_areas, validate_areas = layer_api(SCHEMA)
