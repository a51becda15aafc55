"""Site planning: which candidate sites to build.

``maximize_coverage`` is re-exported here: ``from telcoplan.sites import maximize_coverage``;
so are the candidate sources (``from_file``, ``from_towers``, ``in_gaps``, ``on_grid``,
``collect``) and the zoning rules (``Zoning``, ``allowed``, ``spacing_conflicts``,
``tower_type_for``, ``zoning_from_mapping``).
They load on first use (the solvers import numba and HiGHS).
"""

from __future__ import annotations

from telcoplan._lazy import lazy_names

_API = {
    "collect": "telcoplan.sites.candidates",
    "from_file": "telcoplan.sites.candidates",
    "from_towers": "telcoplan.sites.candidates",
    "in_gaps": "telcoplan.sites.candidates",
    "on_grid": "telcoplan.sites.candidates",
    "METHODS": "telcoplan.sites.choices",
    "CoverageSolution": "telcoplan.sites.optimize",
    "maximize_coverage": "telcoplan.sites.optimize",
    "Zoning": "telcoplan.sites.zoning",
    "allowed": "telcoplan.sites.zoning",
    "spacing_conflicts": "telcoplan.sites.zoning",
    "tower_type_for": "telcoplan.sites.zoning",
    "zoning_from_mapping": "telcoplan.sites.zoning",
}

__all__ = sorted(_API)

__getattr__, __dir__ = lazy_names(__name__, _API, __all__)
