"""Names a plan file may choose among, without importing networkx or the numba kernels."""

from __future__ import annotations

__all__ = ["PROTECT_CHOICES"]

#: Which sites to protect with rings: none, shared sites (several operators), the sites
#: nearest to POIs, both, or every site (:func:`telcoplan.backbone.rings.sites_to_protect`).
PROTECT_CHOICES = ("none", "shared", "pois", "shared+pois", "all")
