"""The towers layer: existing radio sites, one row per operator site (and technology).

The contract (columns, types, units, ranges, geometry) is :data:`telcoplan.layers.schemas.TOWERS`;
the loader and ``telcoplan validate`` report every breach at once, with row ids.
"""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd

from telcoplan.layers._loader import layer_api
from telcoplan.layers.schemas import TOWERS

__all__ = ["SCHEMA", "load_towers", "physical_sites", "validate_towers"]

SCHEMA = TOWERS
load_towers, validate_towers = layer_api(SCHEMA)


def physical_sites(
    towers: gpd.GeoDataFrame, tolerance_m: float = 1.0
) -> tuple[gpd.GeoDataFrame, dict[str, list[str]]]:
    """Group co-located towers (chains of towers within ``tolerance_m`` of each other) into
    physical sites with their operators.

    Returns the sites (index = the group's first tower's ``site_id``, at its position) and
    ``{site: [operators]}``.
    """
    import shapely
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    geoms = towers.geometry.to_numpy()
    n = len(geoms)
    a, b = shapely.STRtree(geoms).query(geoms, predicate="dwithin", distance=tolerance_m)
    _, label = connected_components(
        coo_matrix((np.ones(len(a)), (a, b)), shape=(n, n)), directed=False
    )
    ids = towers.index.astype(str).to_numpy()
    # each group's first tower (groups in the order of their first towers) and its operators:
    # the distinct (group, operator) pairs, sorted by group then operator name
    _, first, group = np.unique(label, return_index=True, return_inverse=True)
    code, names = pd.factorize(towers["operator"].astype(str).to_numpy(dtype=object), sort=True)
    pairs = np.unique(first[group.ravel()] * len(names) + code)
    tower, op = np.divmod(pairs, len(names))
    starts = np.flatnonzero(np.diff(tower, prepend=-1))
    keep = tower[starts]  # the sites' first towers, ascending
    op_names = names[op].tolist()
    bounds = [*starts.tolist(), len(op_names)]
    sites = gpd.GeoDataFrame(geometry=geoms[keep], index=ids[keep], crs=towers.crs)
    return sites, {
        s: op_names[lo:hi]
        for s, lo, hi in zip(ids[keep].tolist(), bounds[:-1], bounds[1:], strict=True)
    }
