"""Candidate sites: from the file, co-location on existing towers, gaps, a lattice; collect."""

from __future__ import annotations

import math

import geopandas as gpd
import numpy as np
import pytest
from scipy.spatial.distance import pdist
from shapely.geometry import Point, Polygon, box

from telcoplan.errors import CRSError
from telcoplan.gis.grid import GridSpec
from telcoplan.sites.candidates import (
    COLUMNS,
    collect,
    from_file,
    from_towers,
    in_gaps,
    on_grid,
)
from tests.conftest import UTM49, X0, Y0, assert_unchanged


def _check_frame(c: gpd.GeoDataFrame) -> None:
    """The candidate contract: index, columns, dtypes, points."""
    assert c.index.name == "candidate_id"
    assert c.index.is_unique
    assert list(c.columns) == [*COLUMNS, "geometry"]
    assert c.crs is not None
    assert (c.geom_type == "Point").all()
    assert c["cost"].dtype == np.float64
    assert c["max_height_m"].dtype == np.float64
    assert c["tenants"].dtype == np.int64


@pytest.fixture
def layer() -> gpd.GeoDataFrame:
    """A validated candidates layer: three sites, one without a kind or cost."""
    return gpd.GeoDataFrame(
        {
            "candidate_id": ["C1", "C2", "C3"],
            "kind": ["rooftop", None, "existing_tower"],
            "cost": [25_000.0, np.nan, 8_000.0],
            "max_height_m": [20.0, np.nan, 40.0],
            "tower_type": ["A1", None, "A2a"],
            "name": ["Chợ Hàn", None, "Đài"],
        },
        geometry=[Point(X0, Y0), Point(X0 + 100, Y0), Point(X0 + 200, Y0)],
        crs=UTM49,
    ).set_index("candidate_id")


def test_from_file(layer):
    before = layer.copy()
    c = from_file(layer)
    assert_unchanged(before, layer)
    _check_frame(c)
    assert list(c.index) == ["C1", "C2", "C3"]
    assert list(c["kind"]) == ["rooftop", "greenfield", "existing_tower"]
    assert set(c["source"]) == {"file"}
    np.testing.assert_array_equal(c["cost"], [25_000.0, np.nan, 8_000.0])
    assert list(c["tower_type"]) == ["A1", None, "A2a"]
    assert list(c["tenants"]) == [0, 0, 0]
    assert list(c["operators"]) == ["", "", ""]
    assert c.geometry.iloc[1].equals(Point(X0 + 100, Y0))


def test_from_file_minimal_columns():
    """Only the required id: every optional value is missing."""
    gdf = gpd.GeoDataFrame({"candidate_id": ["a"]}, geometry=[Point(X0, Y0)], crs=UTM49)
    c = from_file(gdf)
    _check_frame(c)
    assert c.loc["a", "kind"] == "greenfield"
    assert math.isnan(c.loc["a", "cost"])
    assert c.loc["a", "tower_type"] is None


@pytest.fixture
def towers() -> gpd.GeoDataFrame:
    """Five towers on three structures: T1/T2/T3 within 1 m (a chain), T4 2 m away, T5 alone."""
    return gpd.GeoDataFrame(
        {
            "site_id": ["T2", "T1", "T3", "T4", "T5"],
            "operator": ["VinaPhone", "Viettel", "Viettel", "MobiFone", "Viettel"],
            "height_m": [30.0, 35.0, 28.0, 25.0, 40.0],
            "tower_type": ["A2a", "A2a", "A1", None, None],
            "tenants": [1, 1, 3, 1, np.nan],
            "name": [None, "Trạm 1", None, None, "Trạm 5"],
        },
        geometry=[
            Point(X0 + 0.8, Y0),
            Point(X0, Y0),
            Point(X0 + 1.6, Y0),  # 0.8 m from T2, 1.6 m from T1: one site by chaining
            Point(X0 + 3.6, Y0),  # 2 m from T3: another site
            Point(X0 + 500, Y0),
        ],
        crs=UTM49,
    ).set_index("site_id")


def test_from_towers_groups_structures(towers):
    before = towers.copy()
    c = from_towers(towers)
    assert_unchanged(before, towers)
    _check_frame(c)
    assert list(c.index) == ["colo-T1", "colo-T4", "colo-T5"]
    assert set(c["kind"]) == {"existing_tower"}
    assert set(c["source"]) == {"colocation"}
    assert c.loc["colo-T1", "operators"] == "Viettel;VinaPhone"
    # two operators in the layer, but T3 says the structure hosts 3
    assert c.loc["colo-T1", "tenants"] == 3
    assert c.loc["colo-T1", "tower_type"] == "A2a"  # two A2a against one A1
    assert c.loc["colo-T1", "max_height_m"] == 35.0
    assert c.loc["colo-T1", "name"] == "Trạm 1"
    assert c.geometry["colo-T1"].equals(Point(X0, Y0))  # T1's position (smallest id)
    assert c.loc["colo-T4", "operators"] == "MobiFone"
    assert c.loc["colo-T4", "tenants"] == 1
    assert c.loc["colo-T4", "tower_type"] is None
    assert c.loc["colo-T5", "tenants"] == 1
    assert c["cost"].isna().all()


def test_from_towers_for_one_operator(towers):
    """Viettel may share only the structures it is not on."""
    assert list(from_towers(towers, operator="Viettel").index) == ["colo-T4"]
    assert list(from_towers(towers, operator="MobiFone").index) == ["colo-T1", "colo-T5"]
    assert list(from_towers(towers, operator="Gmobile").index) == [
        "colo-T1",
        "colo-T4",
        "colo-T5",
    ]


def test_from_towers_empty(towers):
    c = from_towers(towers.iloc[:0])
    _check_frame(c)
    assert len(c) == 0


@pytest.fixture
def grid() -> GridSpec:
    """A 20 x 20 grid of 100 m cells."""
    return GridSpec.from_bounds((X0, Y0, X0 + 2000, Y0 + 2000), 100.0, UTM49)


def _cells_of(c: gpd.GeoDataFrame, grid: GridSpec) -> np.ndarray:
    r, col = grid.rowcol(c.geometry.x.to_numpy(), c.geometry.y.to_numpy())
    return r * grid.width + col


def test_in_gaps_at_uncovered_populated_cell_centres(grid):
    rng = np.random.default_rng(3)
    pop = rng.integers(0, 50, grid.shape).astype(float)
    pop[pop < 20] = 0.0
    uncovered = rng.random(grid.shape) < 0.5
    pop_before, unc_before = pop.copy(), uncovered.copy()
    c = in_gaps(pop, grid, uncovered, 20, seed=1, min_spacing_m=250.0)
    np.testing.assert_array_equal(pop, pop_before)
    np.testing.assert_array_equal(uncovered, unc_before)
    _check_frame(c)
    assert len(c) == 20
    assert set(c["kind"]) == {"generated"}
    assert set(c["source"]) == {"gaps"}
    assert list(c.index[:2]) == ["gap-0001", "gap-0002"]
    cells = _cells_of(c, grid)
    assert uncovered.ravel()[cells].all()
    assert (pop.ravel()[cells] > 0).all()
    # exactly at the cell centres
    xc, yc = grid.cell_centres()
    np.testing.assert_array_equal(c.geometry.x, xc.ravel()[cells])
    np.testing.assert_array_equal(c.geometry.y, yc.ravel()[cells])
    xy = np.column_stack([c.geometry.x, c.geometry.y])
    assert pdist(xy).min() >= 250.0


def test_in_gaps_deterministic(grid):
    pop = np.ones(grid.shape)
    unc = np.ones(grid.shape, dtype=bool)
    a = in_gaps(pop, grid, unc, 10, seed=7, min_spacing_m=300.0)
    b = in_gaps(pop, grid, unc, 10, seed=7, min_spacing_m=300.0)
    other = in_gaps(pop, grid, unc, 10, seed=8, min_spacing_m=300.0)
    assert a.geometry.equals(b.geometry)
    assert not a.geometry.equals(other.geometry)


def test_in_gaps_fewer_when_the_spacing_does_not_fit(grid):
    """A 2 km square holds at most 4 points 1.9 km apart or more (its corners' cells)."""
    pop = np.ones(grid.shape)
    unc = np.ones(grid.shape, dtype=bool)
    c = in_gaps(pop, grid, unc, 50, seed=0, min_spacing_m=1900.0)
    assert 1 <= len(c) <= 4
    xy = np.column_stack([c.geometry.x, c.geometry.y])
    assert len(c) == 1 or pdist(xy).min() >= 1900.0


def test_in_gaps_proportional_to_population(grid):
    """Two eligible cells, persons 1 and 3: the second is drawn first 3 times out of 4."""
    pop = np.zeros(grid.shape)
    pop[2, 2], pop[10, 10] = 1.0, 3.0
    pop[5, 5] = 100.0  # covered: never drawn
    unc = np.ones(grid.shape, dtype=bool)
    unc[5, 5] = False
    heavy = grid.width * 10 + 10
    trials = 1500
    hits = 0
    for seed in range(trials):
        c = in_gaps(pop, grid, unc, 1, seed=seed, min_spacing_m=0.0)
        cell = _cells_of(c, grid)[0]
        assert cell in (grid.width * 2 + 2, heavy)
        hits += cell == heavy
    share = hits / trials
    # binomial standard deviation sqrt(0.75 * 0.25 / 1500) = 0.011: 5 sigma (uniform: 0.5)
    assert abs(share - 0.75) < 0.056
    everything = in_gaps(pop, grid, unc, 10, seed=0, min_spacing_m=0.0)
    assert len(everything) == 2


def test_in_gaps_nothing_to_draw(grid):
    c = in_gaps(np.zeros(grid.shape), grid, np.ones(grid.shape, bool), 5, seed=0, min_spacing_m=0)
    _check_frame(c)
    assert len(c) == 0
    with pytest.raises(ValueError, match="shape"):
        in_gaps(np.zeros((3, 3)), grid, np.ones(grid.shape, bool), 5, seed=0, min_spacing_m=0)


def test_on_grid_lattice_inside_the_area():
    """An L of three 1 km squares; a 500 m lattice anchored at the origin: points at 250 + 500 k."""
    ell = Polygon(
        [(X0, Y0), (X0 + 2000, Y0), (X0 + 2000, Y0 + 1000), (X0 + 1000, Y0 + 1000),
         (X0 + 1000, Y0 + 2000), (X0, Y0 + 2000)]
    )  # fmt: skip
    area = gpd.GeoDataFrame({"name": ["L"]}, geometry=[ell], crs=UTM49)
    before = area.copy()
    c = on_grid(area, 500.0)
    assert_unchanged(before, area)
    _check_frame(c)
    assert len(c) == 12  # 4 points per 1 km square
    assert set(c["source"]) == {"grid"}
    x, y = c.geometry.x.to_numpy(), c.geometry.y.to_numpy()
    np.testing.assert_allclose((x - 250.0) % 500.0, 0.0)
    np.testing.assert_allclose((y - 250.0) % 500.0, 0.0)
    assert c.geometry.within(ell).all()
    # north to south, then west to east
    assert (np.diff(y) <= 0).all()
    assert list(c.index[:1]) == ["grid-000001"]


def test_on_grid_anchored_to_the_crs():
    """Growing the area keeps the existing points where they were."""
    small = gpd.GeoSeries([box(X0, Y0, X0 + 1000, Y0 + 1000)], crs=UTM49)
    large = gpd.GeoSeries([box(X0 - 730, Y0 - 110, X0 + 1000, Y0 + 1000)], crs=UTM49)
    a = {(p.x, p.y) for p in on_grid(small, 300.0).geometry}
    b = {(p.x, p.y) for p in on_grid(large, 300.0).geometry}
    assert a
    assert a <= b


def test_on_grid_needs_metres():
    area = gpd.GeoSeries([box(108.0, 16.0, 108.1, 16.1)], crs="EPSG:4326")
    with pytest.raises(CRSError, match="not projected"):
        on_grid(area, 500.0)
    with pytest.raises(ValueError, match="spacing_m"):
        on_grid(area.to_crs(UTM49), 0.0)


def test_collect(layer, towers, grid):
    # a file candidate on the very spot of tower T5 (not an existing tower in the file)
    extra = gpd.GeoDataFrame(
        {"candidate_id": ["colo-T4", "R9"], "kind": ["rooftop", "rooftop"]},
        geometry=[Point(X0 + 900, Y0 + 900), Point(X0 + 500.3, Y0)],
        crs=UTM49,
    )
    parts = [from_file(layer), from_file(extra), from_towers(towers)]
    c = collect(*parts, None)
    _check_frame(c)
    # C1 at (X0, Y0) and colo-T1 at the same spot: the existing tower is kept, though later
    assert "C1" not in c.index
    assert "colo-T1" in c.index
    # R9 within 1 m of T5: the existing tower again
    assert "R9" not in c.index
    # the file's "colo-T4" came first and keeps its id; the co-location one is renamed
    assert c.loc["colo-T4", "source"] == "file"
    assert c.loc["colo-T4-2", "source"] == "colocation"
    assert list(c.index) == ["C2", "C3", "colo-T4", "colo-T1", "colo-T4-2", "colo-T5"]
    # the same parts give the same ids
    assert list(collect(*parts).index) == list(c.index)


def test_collect_prefers_more_tenants(layer, towers):
    """The file's existing tower C3 and the co-location candidate of the same structure: the
    one that knows its tenants wins."""
    t = gpd.GeoDataFrame(
        {"operator": ["Viettel"], "height_m": [30.0]},
        index=["Z1"],
        geometry=[Point(X0 + 200, Y0)],
        crs=UTM49,
    )
    c = collect(from_file(layer), from_towers(t))
    assert "C3" not in c.index
    assert c.loc["colo-Z1", "tenants"] == 1


def test_collect_refuses_mixed_crs(layer):
    other = from_file(layer).to_crs("EPSG:32648")
    with pytest.raises(CRSError, match="different CRSs"):
        collect(from_file(layer), other)


def test_collect_nothing():
    c = collect()
    assert len(c) == 0
    assert list(c.columns) == [*COLUMNS, "geometry"]
