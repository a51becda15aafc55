"""The pois layer: points of interest that must be served (ward offices, schools, clinics).

The contract (columns, types, units, ranges, geometry) is :data:`telcoplan.layers.schemas.POIS`;
the loader and ``telcoplan validate`` report every breach at once, with row ids.
"""

from __future__ import annotations

from telcoplan.layers._loader import layer_api
from telcoplan.layers.schemas import POIS

__all__ = ["SCHEMA", "load_pois", "validate_pois"]

SCHEMA = POIS
load_pois, validate_pois = layer_api(SCHEMA)
