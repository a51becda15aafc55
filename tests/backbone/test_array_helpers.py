"""The backbone's array shortcuts against what they replace: numpy's ``unique``/``setdiff1d``,
sorting by ``repr`` (the plans' listing order), one nearest-road search shared by
``far_from_roads`` and ``snap_sites``."""

from __future__ import annotations

import geopandas as gpd
import networkx as nx
import numpy as np
import pytest
from shapely.geometry import LineString, Point

from telcoplan.backbone import _network
from telcoplan.backbone.graph import build_graph, far_from_roads, nearest_roads, snap_sites

UTM48 = "EPSG:32648"


@pytest.mark.parametrize("seed", range(5))
def test_unique_and_setdiff_equal_numpy(seed):
    rng = np.random.default_rng(seed)
    for size in (0, 1, 7, 1000):
        a = rng.integers(-50, 50, size)
        b = rng.integers(-50, 50, size // 2 + 1)
        assert np.array_equal(_network.unique(a), np.unique(a))
        assert _network.unique(a).dtype == np.unique(a).dtype
        assert np.array_equal(_network.setdiff(a, b), np.setdiff1d(a, b))
        assert np.array_equal(_network.unique(a > 0), np.unique(a > 0))
    x = rng.normal(size=20).round(1)  # not integers: numpy's own
    assert np.array_equal(_network.unique(x), np.unique(x))


def _by_repr(labels: list, a, b=None) -> list[int]:
    """The order the plans used: a sort of the reprs (of nodes, or of pairs as tuples)."""
    keys = [repr(labels[i]) if b is None else repr((labels[i], labels[j]))
            for i, j in zip(a, a if b is None else b, strict=True)]  # fmt: skip
    return sorted(range(len(keys)), key=keys.__getitem__)


@pytest.mark.parametrize("seed", range(4))
def test_repr_order_equals_sorting_the_reprs(seed):
    """Tuple nodes (coordinates, sites, the root: no repr a prefix of another) sort by rank;
    nodes whose reprs are prefixes of others (strings "a", "ab") by the reprs themselves."""
    rng = np.random.default_rng(seed)
    for labels in (
        [(float(x), float(y)) for x, y in rng.integers(0, 30, (60, 2)) / 7]
        + [("site", f"s{k}") for k in rng.integers(0, 200, 20)]
        + [("site", 10**k) for k in range(5)],
        ["a", "ab", "b", "", 1, 12, 123, 2, 21, 1.5, 1.55, ("a",), (1, 2)],
    ):
        G = nx.Graph()
        G.add_nodes_from(dict.fromkeys(labels))  # distinct, in order
        nodes = list(G.nodes)
        for k in range(len(nodes) - 1):
            G.add_edge(nodes[k], nodes[k + 1])
        net = _network.RoadNetwork(G)
        full = [*nodes, _network.ROOT]
        n = len(full)
        a = rng.integers(0, n, 300)
        b = rng.integers(0, n, 300)
        assert net.repr_order(a).tolist() == _by_repr(full, a)
        assert net.repr_order(a, b).tolist() == _by_repr(full, a, b)
        assert net.repr_order(a[:0], b[:0]).tolist() == []
        # ranks for tuples; the reprs themselves when one is a prefix of another ("1", "12")
        assert (net._repr_ranks() is None) == (1 in nodes)


def test_nearest_roads_is_shared_by_far_and_snap():
    roads = gpd.GeoDataFrame(
        {"road_id": ["a", "b"], "road_class": ["primary", "track"]},
        geometry=[
            LineString([(500_000, 1_000_000), (501_000, 1_000_000)]),
            LineString([(501_000, 1_000_000), (501_000, 1_002_000)]),
        ],
        crs=UTM48,
    ).set_index("road_id")
    sites = gpd.GeoDataFrame(
        {"site_id": ["near", "far", "corner"]},
        geometry=[Point(500_400, 1_000_030), Point(520_000, 1_000_000), Point(501_010, 1_001_000)],
        crs=UTM48,
    ).set_index("site_id")
    G = build_graph(roads)
    hit, gap = nearest_roads(G, sites)
    assert gap.tolist() == pytest.approx([30.0, 19_000.0, 10.0])
    assert far_from_roads(G, sites, 1_000.0) == far_from_roads(
        G, sites, 1_000.0, nearest=(hit, gap)
    )
    assert list(far_from_roads(G, sites, 1_000.0)) == ["far"]
    keep = np.array([True, False, True])
    near = sites[keep]
    H1, nodes1 = snap_sites(G, near)
    H2, nodes2 = snap_sites(G, near, nearest=(hit[keep], gap[keep]))
    assert nodes1 == nodes2
    assert list(H1.nodes(data=True)) == list(H2.nodes(data=True))
    rows = [
        [(u, v, {k: x for k, x in d.items() if k != "geometry"}, d["geometry"].wkb)
         for u, v, d in H.edges(data=True)]
        for H in (H1, H2)
    ]  # fmt: skip
    assert rows[0] == rows[1]
    empty = build_graph(roads.iloc[:0])
    assert far_from_roads(empty, sites, 1_000.0) == dict.fromkeys(sites.index, np.inf)
