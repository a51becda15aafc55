"""Backbone planning: the road/fiber graph, Steiner trees, separate vs joint plans, rings.

``steiner_tree`` is re-exported here: ``from telcoplan.backbone import steiner_tree``. It loads
on first use (networkx and the numba kernels are heavy to import).
"""

from __future__ import annotations

from telcoplan._lazy import lazy_names

_API = {"steiner_tree": "telcoplan.backbone.steiner"}

__all__ = ["steiner_tree"]

__getattr__, __dir__ = lazy_names(__name__, _API, __all__)
