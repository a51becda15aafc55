"""Names a plan file may choose among, without importing the numba modules that use them."""

from __future__ import annotations

__all__ = ["DIFFRACTION_METHODS"]

#: Diffraction methods by name → the integer code taken by the numba functions of
#: :mod:`telcoplan.coverage.profile`.
DIFFRACTION_METHODS = {"deygout": 0, "bullington": 1, "epstein-peterson": 2}
