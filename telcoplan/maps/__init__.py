"""Maps of a plan: the self-contained interactive web map and the static figure.

folium and matplotlib are imported only when a map or figure is made.
"""

from telcoplan.maps.interactive import build_map, map_from_outputs, save_map, write_plan_map
from telcoplan.maps.static import figure_from_outputs, plan_figure, save_figure

__all__ = [
    "build_map",
    "figure_from_outputs",
    "map_from_outputs",
    "plan_figure",
    "save_figure",
    "save_map",
    "write_plan_map",
]
