"""Backbone planning: the road/fiber graph, Steiner trees, separate vs joint plans, rings.

``steiner_tree`` is re-exported here: ``from telcoplan.backbone import steiner_tree``. It loads
on first use (networkx and the numba kernels are heavy to import).
"""

from __future__ import annotations

_API = {"steiner_tree": "telcoplan.backbone.steiner"}

__all__ = ["steiner_tree"]


def __getattr__(name: str):
    if name in _API:
        from importlib import import_module

        value = getattr(import_module(_API[name]), name)
        globals()[name] = value  # later look-ups skip this function
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
