"""The roads layer: road centre lines, the routes for new trenches.

The contract (columns, types, units, ranges, geometry) is :data:`telcoplan.layers.schemas.ROADS`;
the loader and ``telcoplan validate`` report every breach at once, with row ids.
"""

from __future__ import annotations

from telcoplan.layers._loader import layer_api
from telcoplan.layers.schemas import ROADS

__all__ = ["SCHEMA", "load_roads", "validate_roads"]

SCHEMA = ROADS
load_roads, validate_roads = layer_api(SCHEMA)
