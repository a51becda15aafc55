"""The towers layer: existing radio sites, one row per operator site (and technology).

The contract (columns, types, units, ranges, geometry) is :data:`telcoplan.layers.schemas.TOWERS`;
the loader and ``telcoplan validate`` report every breach at once, with row ids.
"""

from __future__ import annotations

from telcoplan.layers._loader import layer_api
from telcoplan.layers.schemas import TOWERS

__all__ = ["SCHEMA", "load_towers", "validate_towers"]

SCHEMA = TOWERS
load_towers, validate_towers = layer_api(SCHEMA)
