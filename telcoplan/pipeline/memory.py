"""A run's memory: its estimated peak, the memory available, and refusing a grid that would
not fit (naming the resolution that does)."""

from __future__ import annotations

import logging
import math
import os

from telcoplan.errors import PlanError
from telcoplan.pipeline.inputs import PlanInputs

__all__ = ["available_memory", "check_memory_for", "estimate_peak_bytes"]

log = logging.getLogger(__name__)

#: Memory of the process before the run's arrays: Python, numpy, GDAL, numba (bytes; measured).
BASE_BYTES = 450e6
#: Bytes per grid cell of a run, and per operator and cell (measured on the demo at 100, 50 and
#: 30 m with terrain, map and report: 110-122 B/cell with 3 operators), times a 1.25 margin.
CELL_BYTES, OPERATOR_CELL_BYTES, MARGIN = 60.0, 20.0, 1.25


def estimate_peak_bytes(cells: int, operators: int, technology_groups: int = 0) -> float:
    """Estimated peak memory (bytes) of a run over ``cells`` grid cells with ``operators``
    operators (and ``technology_groups`` per-technology rasters)."""
    per_cell = CELL_BYTES + OPERATOR_CELL_BYTES * operators + 4.0 * technology_groups
    return BASE_BYTES + MARGIN * per_cell * cells


def available_memory() -> float | None:
    """Memory available to a new allocation (bytes): Linux's MemAvailable, else free physical
    pages; None when the system does not say."""
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return float(line.split()[1]) * 1024.0
    except OSError:
        pass
    try:
        return float(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return None


def check_memory_for(inputs: PlanInputs, available: float | None = None) -> None:
    """Refuse a run whose estimated peak memory exceeds the memory available, with the
    estimate and the coarsest-needed resolution that fits (``run --no-memory-check`` tries
    anyway)."""
    available = available_memory() if available is None else available
    if available is None:
        return
    grid, plan = inputs.grid, inputs.plan
    towers = inputs.vectors.get("towers")
    operators = 0 if towers is None else towers["operator"].astype(str).nunique()
    groups = 0
    cov = plan.parameters.get("coverage")
    if towers is not None and cov is not None and getattr(cov, "per_technology", False):
        groups = len(towers[["operator", "technology"]].drop_duplicates())
    cells = grid.width * grid.height
    need = estimate_peak_bytes(cells, operators, groups)
    if need <= available:
        log.debug("memory: about %.1f GB needed, %.1f GB available", need / 1e9, available / 1e9)
        return
    per_cell = (need - BASE_BYTES) / cells
    fits = max(1.0, (0.9 * available - BASE_BYTES) / per_cell)
    resolution = math.ceil(grid.resolution * math.sqrt(cells / fits))
    raise PlanError(
        f"{plan.source}: a {grid.resolution:g} m grid has {cells:,} cells; with {operators} "
        f"operators the run needs about {need / 1e9:.1f} GB of memory but "
        f"{available / 1e9:.1f} GB is available; use resolution_m: {resolution} or coarser "
        f"(about {estimate_peak_bytes(int(cells * (grid.resolution / resolution) ** 2), operators, groups) / 1e9:.1f} GB), "
        "split the study area, or pass --no-memory-check to try anyway"
    )
