"""Consolidation of planned sites into shared structures, against brute-force invariants."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from shapely.geometry import Point

from telcoplan.sites.planning import consolidate
from tests.conftest import UTM49, X0, Y0


def _sites(xy, ops):
    return gpd.GeoDataFrame(
        {"operator": ops},
        geometry=[Point(X0 + x, Y0 + y) for x, y in xy],
        index=[f"s{i}" for i in range(len(ops))],
        crs=UTM49,
    )


def test_three_operators_close_together_share_one_mast():
    sites = _sites([(0, 0), (60, 0), (0, 80), (5000, 0)], ["A", "B", "C", "A"])
    c = consolidate(sites, 100.0)
    assert c.structure.tolist() == [0, 0, 0, 1]
    assert c.towers_avoided == 2
    assert c.structures["tenants"].tolist() == [3, 1]
    assert c.structures.loc[0, "members"] == "s0;s1;s2"


def test_one_operator_never_shares_with_itself_and_radius_per_site():
    sites = _sites([(0, 0), (50, 0), (300, 0)], ["A", "A", "B"])
    assert consolidate(sites, 100.0).towers_avoided == 0
    # the third site is rural (500 m): it joins the nearest structure, 250 m away
    c = consolidate(sites, [100.0, 100.0, 500.0])
    assert c.structure.tolist() == [0, 1, 1]


def test_tenant_limit():
    sites = _sites([(i, 0) for i in range(6)], list("ABCDEF"))
    c = consolidate(sites, 100.0, max_tenants=4)
    assert c.structures["tenants"].tolist() == [4, 2]
    with pytest.raises(ValueError, match="max_tenants"):
        consolidate(sites, 100.0, max_tenants=0)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(0, 600), st.integers(0, 600), st.sampled_from(["A", "B", "C", "D", "E"])
        ),
        min_size=1,
        max_size=25,
    ),
    st.integers(1, 4),
)
def test_invariants(rows, max_tenants):
    """Every site on exactly one structure, within its radius of the structure's position; no
    structure over the limit or with one operator twice."""
    sites = _sites([(x, y) for x, y, _ in rows], [o for *_, o in rows])
    c = consolidate(sites, 150.0, max_tenants=max_tenants)
    assert (c.structure >= 0).all()
    assert c.structures["tenants"].max() <= max_tenants
    for s, row in c.structures.iterrows():
        on = np.flatnonzero(c.structure == s)
        ops = sites["operator"].to_numpy()[on]
        assert len(set(ops)) == len(ops) == row["tenants"]
        assert (sites.geometry.iloc[on].distance(row.geometry) <= 150.0 + 1e-9).all()
    assert c.towers_avoided == len(sites) - len(c.structures)
