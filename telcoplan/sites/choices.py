"""Names a plan file may choose among, without importing the solvers."""

from __future__ import annotations

__all__ = ["METHODS"]

#: The algorithms :func:`telcoplan.sites.maximize_coverage` knows, by name (also the CLI's
#: choices).
METHODS = ("auto", "greedy", "milp")
