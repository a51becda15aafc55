"""Backbone planning: the road/fiber graph, Steiner trees, separate vs joint plans, rings.

``steiner_tree`` is re-exported here: ``from telcoplan.backbone import steiner_tree``.
"""

from telcoplan.backbone.steiner import steiner_tree

__all__ = ["steiner_tree"]
