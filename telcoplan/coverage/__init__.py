"""Coverage: propagation models, antennas, terrain, best-server rasters, coverage and gaps.

``path_loss`` is re-exported here (``from telcoplan.coverage import path_loss``); it needs numpy
only, so importing this package stays light.
"""

from telcoplan.coverage.propagation import path_loss

__all__ = ["path_loss"]
