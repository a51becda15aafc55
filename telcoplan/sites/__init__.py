"""Site planning: which candidate sites to build.

``maximize_coverage`` is re-exported here: ``from telcoplan.sites import maximize_coverage``;
so are the candidate sources (``from_file``, ``from_towers``, ``in_gaps``, ``on_grid``,
``collect``) and the zoning rules (``Zoning``, ``allowed``, ``spacing_conflicts``,
``tower_type_for``, ``zoning_from_mapping``).
They load on first use (the solvers import numba and HiGHS).
"""

from __future__ import annotations

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


def __getattr__(name: str):
    if name in _API:
        from importlib import import_module

        value = getattr(import_module(_API[name]), name)
        globals()[name] = value  # later look-ups skip this function
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
