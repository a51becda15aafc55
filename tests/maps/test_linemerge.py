"""The array line merge (``telcoplan.maps._linemerge``) against GEOS's ``shapely.line_merge``:
the same parts, in the same order, vertex for vertex, on random networks (grids of random
lines, so that nodes of every degree, chains, cycles, loops and lines drawn either way meet)."""

from __future__ import annotations

import numpy as np
import pytest
import shapely
from shapely.geometry import LineString

from telcoplan.maps._linemerge import _merge, line_merge_groups


def _reference(lines: np.ndarray, group: np.ndarray, groups: int) -> list:
    """GEOS: one MultiLineString per group, merged."""
    out = []
    for g in range(groups):
        parts = lines[group == g]
        out.append(shapely.line_merge(shapely.multilinestrings(parts)) if len(parts) else None)
    return out


def _same(got: np.ndarray, want: list) -> None:
    assert len(got) == len(want)
    for g, (a, b) in enumerate(zip(got, want, strict=True)):
        if b is None:
            assert a is None, g
        else:
            # WKB: same type, same parts in the same order, same coordinates bit for bit
            assert shapely.to_wkb(a) == shapely.to_wkb(b), (g, a.wkt[:200], b.wkt[:200])


def _network(rng: np.random.Generator, n: int, size: int) -> np.ndarray:
    """``n`` random lines between points of a ``size`` × ``size`` grid (so that end points
    meet: nodes of every degree, chains, cycles), each through one or two random inner points
    (no two first segments parallel), some closed (loops)."""
    lines = []
    for _ in range(n):
        a = tuple(rng.integers(0, size, 2).astype(float))
        b = tuple(rng.integers(0, size, 2).astype(float))
        # a closed line needs two inner points, else it leaves its node twice the same way
        inner = [
            tuple(rng.uniform(-1, size, 2)) for _ in range(2 if a == b else rng.integers(1, 3))
        ]
        lines.append(LineString([a, *inner, b]))
    return np.array(lines, dtype=object)


@pytest.mark.parametrize("seed", range(12))
def test_random_networks_merge_as_geos_does(seed: int) -> None:
    rng = np.random.default_rng(seed)
    size = [3, 5, 8, 20][seed % 4]
    lines = _network(rng, int(rng.integers(5, 300)), size)
    groups = 4
    group = rng.integers(0, groups, len(lines))
    assert not _merge(lines, group, groups)[1].any()  # no group left to GEOS
    _same(line_merge_groups(lines, group, groups), _reference(lines, group, groups))


def test_chains_cycles_and_loops() -> None:
    """Hand-made: a chain drawn in mixed directions (reversed as a whole when most of it runs
    backward), an isolated cycle, a loop on a node of degree 3, a node of degree 4, a single
    line, an empty group and an empty line."""
    chain = [
        LineString([(2, 0), (1, 0)]),
        LineString([(1, 0), (0, 0)]),
        LineString([(2, 0), (3, 1)]),
    ]
    cycle = [
        LineString([(10, 10), (11, 10)]),
        LineString([(11, 11), (11, 10)]),
        LineString([(11, 11), (10, 10)]),
    ]
    loop = [
        LineString([(20, 0), (21, 1), (20, 1), (20, 0)]),
        LineString([(20, 0), (19, 0)]),
    ]
    star = [LineString([(30, 0), (30 + dx, dy)]) for dx, dy in ((1, 0), (0, 1), (-1, 0), (0, -1))]
    lines = np.array(
        [*chain, *cycle, *loop, *star, LineString([(50, 0), (51, 0)]), LineString()], dtype=object
    )
    group = np.array([0, 0, 0, 1, 1, 1, 2, 2, 3, 3, 3, 3, 4, 4])
    assert not _merge(lines[:-1], group[:-1], 6)[1][:5].any()
    got = line_merge_groups(lines, group, 6)
    _same(got, _reference(lines, group, 6))
    assert got[4].geom_type == "LineString"
    assert got[5] is None


@pytest.mark.parametrize(
    "lines",
    [
        # parallel first segments at a node: GEOS's sort order is its own: handed to GEOS
        [[(0, 0), (1, 1)], [(0, 0), (2, 2), (3, 0)], [(0, 0), (-1, 0)]],
        # a closed line through one point leaves its node twice the same way
        [[(0, 0), (1, 1), (0, 0)], [(0, 0), (-1, 0)]],
        # a repeated point
        [[(0, 0), (0, 0), (1, 0)], [(1, 0), (2, 0)]],
        # a line of one repeated point only (GEOS leaves it out)
        [[(0, 0), (0, 0)], [(1, 0), (2, 0)]],
    ],
)
def test_cases_left_to_geos_give_geos_result(lines: list) -> None:
    geoms = np.array([LineString(c) for c in lines], dtype=object)
    group = np.zeros(len(geoms), dtype=int)
    assert _merge(geoms, group, 1)[1].all()
    _same(line_merge_groups(geoms, group, 1), _reference(geoms, group, 1))


def test_rejects_other_geometries_and_bad_groups() -> None:
    with pytest.raises(ValueError, match="LineStrings only"):
        line_merge_groups(np.array([shapely.Point(0, 0)], dtype=object), np.array([0]), 1)
    with pytest.raises(ValueError, match="one group per line"):
        line_merge_groups(np.array([LineString([(0, 0), (1, 1)])], dtype=object), np.array([]), 1)
