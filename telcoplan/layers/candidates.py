"""The candidates layer: candidate sites for new or shared towers.

The contract (columns, types, units, ranges, geometry) is :data:`telcoplan.layers.schemas.CANDIDATES`;
the loader and ``telcoplan validate`` report every breach at once, with row ids.
"""

from __future__ import annotations

from telcoplan.layers._loader import layer_api
from telcoplan.layers.schemas import CANDIDATES

__all__ = ["SCHEMA", "load_candidates", "validate_candidates"]

SCHEMA = CANDIDATES
load_candidates, validate_candidates = layer_api(SCHEMA)
