"""Operator names that look like mistakes are said before a run plans them as operators."""

from __future__ import annotations

import difflib

import geopandas as gpd
from shapely.geometry import LineString, Point

from telcoplan.layers.towers import operator_name_doubts

CRS = "EPSG:32649"


def _towers(counts: dict[str, int]) -> gpd.GeoDataFrame:
    ops = [op for op, n in counts.items() for _ in range(n)]
    return gpd.GeoDataFrame(
        {"operator": ops},
        index=[f"S{i}" for i in range(len(ops))],
        geometry=[Point(800_000 + 100 * i, 1_770_000) for i in range(len(ops))],
        crs=CRS,
    )


def test_a_misspelt_operator_with_few_towers_is_named():
    towers = _towers({"Viettel": 30, "VinaPhone": 15, "MobiFone": 12, "Vietel": 3})
    (doubt,) = operator_name_doubts(towers)
    assert "operator 'Vietel' (3 towers, first at site S57) looks like a misspelling of " in doubt
    assert "'Viettel' (30 towers)" in doubt


def test_vietnams_operators_are_not_doubted():
    names = {"Viettel": 300, "VinaPhone": 120, "MobiFone": 110, "Vietnamobile": 8, "Gmobile": 2}
    assert operator_name_doubts(_towers(names)) == []
    # (each pair's similarity stays below the rule's 0.8)
    keys = [n.casefold() for n in names]
    assert (
        max(difflib.SequenceMatcher(None, a, b).ratio() for a in keys for b in keys if a != b) < 0.8
    )


def test_two_similar_operators_of_like_size_are_left_alone():
    """Two real operators may have close names; only a small one beside a large one is a doubt."""
    assert operator_name_doubts(_towers({"Telco A": 20, "Telco B": 15})) == []


def test_fiber_of_an_operator_without_towers():
    towers = _towers({"Viettel": 5, "MobiFone": 4})
    fiber = gpd.GeoDataFrame(
        {"operator": ["Viettel", "Unknown Telco", "Unknown Telco"]},
        geometry=[LineString([(0, 0), (1, 1)])] * 3,
        crs=CRS,
    )
    (doubt,) = operator_name_doubts(towers, fiber)
    assert "'Unknown Telco' (2 features)" in doubt
    assert "'Viettel'" in doubt.split("operators: ")[1]
    assert operator_name_doubts(towers, fiber[fiber["operator"] == "Viettel"]) == []
