"""Site planning: which candidate sites to build.

``maximize_coverage`` is re-exported here: ``from telcoplan.sites import maximize_coverage``;
so are the candidate sources (``from_file``, ``from_towers``, ``in_gaps``, ``on_grid``,
``collect``) and the zoning rules (``Zoning``, ``allowed``, ``spacing_conflicts``,
``tower_type_for``, ``zoning_from_mapping``).
"""

from telcoplan.sites.candidates import collect, from_file, from_towers, in_gaps, on_grid
from telcoplan.sites.optimize import METHODS, CoverageSolution, maximize_coverage
from telcoplan.sites.zoning import (
    Zoning,
    allowed,
    spacing_conflicts,
    tower_type_for,
    zoning_from_mapping,
)

__all__ = [
    "METHODS",
    "CoverageSolution",
    "Zoning",
    "allowed",
    "collect",
    "from_file",
    "from_towers",
    "in_gaps",
    "maximize_coverage",
    "on_grid",
    "spacing_conflicts",
    "tower_type_for",
    "zoning_from_mapping",
]
