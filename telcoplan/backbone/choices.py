"""Names a plan file may choose among, without importing networkx or the numba kernels."""

from __future__ import annotations

__all__ = ["OFF_ROAD", "PROTECT_CHOICES"]

#: Which sites to protect with rings: none, shared sites (several operators), the sites
#: nearest to POIs, both, or every site (:func:`telcoplan.backbone.rings.sites_to_protect`).
PROTECT_CHOICES = ("none", "shared", "pois", "shared+pois", "all")

#: Road class of the straight trenches that join pieces of the road network that do not meet
#: (:func:`telcoplan.backbone.graph.build_graph`'s ``join_pieces_m``); costed per metre like a
#: road class (``stages.backbone.cost_per_m``).
OFF_ROAD = "off-road"
