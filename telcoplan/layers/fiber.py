"""The fiber layer: existing fiber cables per operator.

The contract (columns, types, units, ranges, geometry) is :data:`telcoplan.layers.schemas.FIBER`;
the loader and ``telcoplan validate`` report every breach at once, with row ids.
"""

from __future__ import annotations

from telcoplan.layers._loader import layer_api
from telcoplan.layers.schemas import FIBER

__all__ = ["SCHEMA", "load_fiber", "validate_fiber"]

SCHEMA = FIBER
load_fiber, validate_fiber = layer_api(SCHEMA)
