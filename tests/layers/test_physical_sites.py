"""Grouping towers into physical sites on arrays (:func:`telcoplan.layers.towers.physical_sites`)
against the tower-by-tower loop it replaced (issue 12): the same sites in the same order (each at
its first tower), the same operators per site in the same order (sorted names), on random towers
with chains of co-located towers, towers of one operator several times at a site, odd index types
and no towers at all."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pytest
import shapely

from telcoplan.layers.towers import physical_sites


def _reference(towers: gpd.GeoDataFrame, tolerance_m: float = 1.0):
    """The loop over the towers (the code before the array version), on groups found by
    brute force: every pair's distance, chains joined by union-find."""
    geoms = towers.geometry.to_numpy()
    n = len(geoms)
    parent = list(range(n))

    def root(i: int) -> int:
        while parent[i] != i:
            i = parent[i]
        return i

    near = shapely.dwithin(geoms[:, None], geoms[None, :], tolerance_m)
    for i, j in zip(*np.nonzero(near), strict=True):
        parent[max(root(i), root(j))] = min(root(i), root(j))
    label = np.array([root(i) for i in range(n)], dtype=np.int64)
    ids = towers.index.astype(str).to_numpy()
    first: dict[int, int] = {}
    ops: dict[str, set[str]] = {}
    for i, (lab, op) in enumerate(zip(label.tolist(), towers["operator"].astype(str), strict=True)):
        site = ids[first.setdefault(lab, i)]
        ops.setdefault(site, set()).add(op)
    keep = sorted(first.values())
    sites = gpd.GeoDataFrame(geometry=geoms[keep], index=ids[keep], crs=towers.crs)
    return sites, {s: sorted(o) for s, o in ops.items()}


def _towers(rng: np.random.Generator, n: int, spread: float, index) -> gpd.GeoDataFrame:
    xy = rng.integers(0, spread, size=(n, 2)) + rng.choice([0.0, 0.4, 0.9], size=(n, 2))
    ops = rng.choice(["Viettel", "MobiFone", "VinaPhone", "B", "a"], size=n)
    return gpd.GeoDataFrame(
        {"operator": ops}, geometry=shapely.points(xy), index=index(n), crs="EPSG:32648"
    )


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize(
    "index",
    [
        lambda n: [f"S{i}" for i in np.random.default_rng(n).permutation(n)],
        lambda n: np.arange(n)[::-1] * 7,
    ],
)
def test_physical_sites_match_the_loop(seed, index):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 400))
    towers = _towers(rng, n, spread=int(rng.integers(3, 40)), index=index)
    sites, ops = physical_sites(towers)
    want_sites, want_ops = _reference(towers)
    assert list(sites.index) == list(want_sites.index)
    assert sites.index.dtype == want_sites.index.dtype
    assert shapely.equals_exact(sites.geometry.to_numpy(), want_sites.geometry.to_numpy(), 0).all()
    assert sites.crs == want_sites.crs
    assert list(ops.items()) == list(want_ops.items())
    # the fixture must exercise shared sites and repeated operators at a site
    if seed == 0:
        assert any(len(o) > 1 for o in ops.values())


def test_physical_sites_without_towers():
    towers = gpd.GeoDataFrame(
        {"operator": []}, geometry=shapely.points(np.empty((0, 2))), crs="EPSG:32648"
    )
    sites, ops = physical_sites(towers)
    want_sites, want_ops = _reference(towers)
    assert len(sites) == 0
    assert ops == want_ops == {}
    assert list(sites.index) == list(want_sites.index)
