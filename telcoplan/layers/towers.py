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

__all__ = ["SCHEMA", "load_towers", "operator_name_doubts", "physical_sites", "validate_towers"]

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


def operator_name_doubts(
    towers: gpd.GeoDataFrame, fiber: gpd.GeoDataFrame | None = None
) -> list[str]:
    """What looks like a mistake in the operator names (each a message; none: nothing).

    - A name close to another's (a similarity ratio of 0.8 or more once case and spaces are
      set aside, :class:`difflib.SequenceMatcher`) that has at most a tenth of its towers:
      ``Vietel`` (3 towers) beside ``Viettel`` (210) plans a fourth operator of 3 towers.
    - Fiber of an operator with no tower: the others may only lease it.
    """
    import difflib

    out: list[str] = []
    operator = towers["operator"].astype(str)
    counts = operator.value_counts()
    if 1 < len(counts) <= 200:
        key = {op: " ".join(op.casefold().split()) for op in counts.index}
        for small, n_small in counts.items():
            for big, n_big in counts.items():
                if big == small or n_small * 10 > n_big:
                    continue
                if difflib.SequenceMatcher(None, key[small], key[big]).ratio() >= 0.8:
                    first = towers.index[np.flatnonzero((operator == small).to_numpy())[0]]
                    out.append(
                        f"operator {small!r} ({n_small} tower{'s' if n_small != 1 else ''}, "
                        f"first at site {first}) looks like a misspelling of {big!r} "
                        f"({n_big} towers): it is planned as an operator of its own; correct "
                        "the towers layer's `operator` column if it is the same operator"
                    )
                    break
    if fiber is not None and len(fiber) and "operator" in fiber.columns:
        owners = fiber["operator"].dropna().astype(str).value_counts()
        strangers = [op for op in owners.index if op not in counts.index]
        if strangers:
            out.append(
                "fiber of operator(s) with no tower in the towers layer: "
                + ", ".join(f"{op!r} ({owners[op]} features)" for op in strangers)
                + "; the others may only lease it (check the spelling against the towers' "
                "operators: " + ", ".join(map(repr, counts.index)) + ")"
            )
    return out
