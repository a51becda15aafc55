"""Maps of a plan: the self-contained interactive web map and the static figure.

folium and matplotlib are imported only when a map or figure is made; the names below load on
first use, so that a command that writes only QGIS styles (:mod:`telcoplan.maps.styles`) does
not import the web map's modules.
"""

from __future__ import annotations

from telcoplan._lazy import lazy_names

_API = {
    "build_map": "telcoplan.maps.interactive",
    "map_from_outputs": "telcoplan.maps.interactive",
    "save_map": "telcoplan.maps.interactive",
    "write_plan_map": "telcoplan.maps.interactive",
    "figure_from_outputs": "telcoplan.maps.static",
    "plan_figure": "telcoplan.maps.static",
    "save_figure": "telcoplan.maps.static",
}

__all__ = sorted(_API)

__getattr__, __dir__ = lazy_names(__name__, _API, __all__)
