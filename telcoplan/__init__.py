"""telcoplan — plan shared telecom infrastructure (towers, fiber) from GIS layers.

The names a notebook needs, imported on first use (``import telcoplan`` stays light)::

    import telcoplan as tp

    plan = tp.read_plan("demo-output/plan.yml")
    summary = tp.run_plan(plan, "my-run", overwrite=True)
    towers = tp.load_towers("demo-output/inputs/towers.gpkg")
    tp.path_loss("hata", freq_mhz=900, distance_km=10, h_tx_m=30)
"""

from telcoplan._lazy import lazy_names
from telcoplan._version import __version__

#: Public name → the module that defines it.
_API = {
    "read_plan": "telcoplan.pipeline",
    "run_plan": "telcoplan.pipeline",
    "load_inputs": "telcoplan.pipeline",
    "run_demo": "telcoplan.demo",
    "load_areas": "telcoplan.layers.areas",
    "load_towers": "telcoplan.layers.towers",
    "load_roads": "telcoplan.layers.roads",
    "load_fiber": "telcoplan.layers.fiber",
    "load_candidates": "telcoplan.layers.candidates",
    "load_pois": "telcoplan.layers.pois",
    "load_measurements": "telcoplan.layers.measurements",
    "path_loss": "telcoplan.coverage.propagation",
    "best_server": "telcoplan.coverage.bestserver",
    "compute_coverage": "telcoplan.coverage.analysis",
    "line_of_sight": "telcoplan.coverage.terrain",
    "steiner_tree": "telcoplan.backbone.steiner",
}

__all__ = ["__version__", *_API]

__getattr__, __dir__ = lazy_names(__name__, _API, __all__)
