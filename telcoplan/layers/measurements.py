"""The measurements layer: signal measurements for calibration (row order is kept).

The contract (columns, types, units, ranges, geometry) is :data:`telcoplan.layers.schemas.MEASUREMENTS`;
the loader and ``telcoplan validate`` report every breach at once, with row ids.
"""

from __future__ import annotations

from telcoplan.layers._loader import layer_api
from telcoplan.layers.schemas import MEASUREMENTS

__all__ = ["SCHEMA", "load_measurements", "validate_measurements"]

SCHEMA = MEASUREMENTS
load_measurements, validate_measurements = layer_api(SCHEMA, set_index=False)
