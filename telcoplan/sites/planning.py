"""Shared sites from separate plans: planned sites of different operators close together become
one structure with several tenants (the provincial passive-infrastructure rule: operators
needing new towers within ~100 m in town, ~500 m in the countryside, share one; a shared site
hosts 2–4 operators)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import geopandas as gpd
import numpy as np
import shapely

__all__ = ["COLOCATION_RADIUS_M", "Consolidation", "colocation_radius", "consolidate"]

#: Default co-location radius (m) by setting.
COLOCATION_RADIUS_M = {"urban": 100.0, "rural": 500.0}


@dataclass(frozen=True)
class Consolidation:
    """Planned new builds grouped into structures.

    Attributes
    ----------
    structure : numpy.ndarray
        For each planned site (row of the input), the structure it goes on (0 … n − 1).
    structures : geopandas.GeoDataFrame
        One row per structure: ``operators`` (";"-joined), ``tenants``, ``members`` (";"-joined
        ids of the planned sites on it), at the position of its first (highest-priority) site.
    """

    structure: np.ndarray
    structures: gpd.GeoDataFrame

    @property
    def towers_avoided(self) -> int:
        """Planned sites minus structures: masts not built because they are shared."""
        return len(self.structure) - len(self.structures)


def consolidate(
    sites: gpd.GeoDataFrame,
    radius_m: float | Sequence[float] | np.ndarray,
    *,
    max_tenants: int = 4,
    operator: str = "operator",
    priority: Sequence[float] | np.ndarray | None = None,
) -> Consolidation:
    """Group planned new sites of different operators into shared structures.

    Sites are taken in ``priority`` order (highest first; default: file order). Each joins the
    nearest structure already opened within its ``radius_m`` (a scalar or one per site) that
    has fewer than ``max_tenants`` tenants and does not host its operator yet; otherwise it opens
    a new structure at its own position. Two sites of one operator are never merged, and no
    structure exceeds ``max_tenants``.

    Parameters
    ----------
    sites
        Planned sites (points, projected CRS in metres) with an ``operator`` column.
    radius_m
        Co-location radius (m): :data:`COLOCATION_RADIUS_M` by the site's setting.
    """
    if max_tenants < 1:
        raise ValueError(f"max_tenants must be ≥ 1, got {max_tenants!r}")
    n = len(sites)
    radius = np.broadcast_to(np.asarray(radius_m, dtype=float), (n,))
    order = np.arange(n) if priority is None else np.argsort(-np.asarray(priority), kind="stable")
    ops = sites[operator].astype(str).to_numpy()
    pts = sites.geometry.to_numpy()
    xy = shapely.get_coordinates(pts)
    structure = np.full(n, -1, dtype=np.int64)
    centre: list[np.ndarray] = []
    tenants: list[set[str]] = []
    members: list[list[int]] = []
    for i in order:
        best, best_d = -1, np.inf
        for s, c in enumerate(centre):
            if len(tenants[s]) >= max_tenants or ops[i] in tenants[s]:
                continue
            d = float(np.hypot(*(xy[i] - c)))
            if d <= radius[i] and d < best_d:
                best, best_d = s, d
        if best < 0:
            best = len(centre)
            centre.append(xy[i])
            tenants.append(set())
            members.append([])
        structure[i] = best
        tenants[best].add(ops[i])
        members[best].append(int(i))
    ids = sites.index.astype(str).to_numpy()
    structures = gpd.GeoDataFrame(
        {
            "operators": [";".join(sorted(t)) for t in tenants],
            "tenants": [len(t) for t in tenants],
            "members": [";".join(ids[m]) for m in members],
        },
        geometry=[shapely.Point(c) for c in centre],
        crs=sites.crs,
    )
    return Consolidation(structure, structures)


def colocation_radius(
    points: gpd.GeoSeries,
    population: np.ndarray,
    grid,
    *,
    radius_m: dict[str, float] | None = None,
    urban_density_per_km2: float = 1_000.0,
) -> np.ndarray:
    """Co-location radius (m) at each point: ``radius_m["urban"]`` where the population density
    around it — its cell and the 8 neighbours, persons per km² — reaches
    ``urban_density_per_km2``, else ``radius_m["rural"]`` (default :data:`COLOCATION_RADIUS_M`).
    ``population`` is persons per cell of ``grid`` (flat or in its shape)."""
    from scipy.ndimage import uniform_filter

    radius = {**COLOCATION_RADIUS_M, **(radius_m or {})}
    density = uniform_filter(
        np.asarray(population, dtype=np.float64).reshape(grid.shape), size=3, mode="constant"
    ) / (grid.cell_area_m2 / 1e6)
    r, c = grid.rowcol(points.x.to_numpy(), points.y.to_numpy())
    ok = grid.contains_rowcol(r, c)
    d = np.zeros(len(points))
    d[ok] = density[r[ok], c[ok]]
    return np.where(d >= urban_density_per_km2, radius["urban"], radius["rural"])
