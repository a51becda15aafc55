"""Coverage per operator and population covered: thresholds, conservation, SDG conventions."""

from __future__ import annotations

import math

import geopandas as gpd
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from shapely.geometry import Point, box

from telcoplan.coverage.analysis import (
    LIMIT_COVERED,
    LIMIT_DISTANCE,
    LIMIT_TERRAIN,
    MARGIN_FLOOR_DB,
    TECHNOLOGY_ORDER,
    compute_coverage,
    population_covered,
    technology_rank,
)
from telcoplan.coverage.bestserver import best_server
from telcoplan.coverage.propagation import path_loss
from telcoplan.coverage.thresholds import METRIC_OFFSET_DB, Thresholds
from telcoplan.gis.grid import GridSpec
from tests.conftest import UTM49, X0, Y0, assert_unchanged


def test_threshold_conventions():
    thr = Thresholds()
    assert METRIC_OFFSET_DB["4G"] == pytest.approx(-30.79, abs=0.01)  # 10 log10(1200)
    assert thr.power_threshold("4G") == pytest.approx(-105 + 30.79, abs=0.01)
    indoor = Thresholds(indoor=True)
    assert indoor.metric_threshold("4G") == -95.0
    assert Thresholds({"4g": -110}).metric_threshold("4G") == -110.0
    with pytest.raises(ValueError, match="unknown technologies"):
        Thresholds({"6G": -100})
    with pytest.raises(ValueError, match="implausible"):
        Thresholds({"4G": 5})


@pytest.fixture
def two_ops():
    """Grid of 40 x 40 cells of 50 m; operator A has a 4G tower in the west, B a 2G tower in the east."""
    grid = GridSpec.from_bounds((X0, Y0, X0 + 2000, Y0 + 2000), 50.0, UTM49)
    towers = gpd.GeoDataFrame(
        {
            "operator": ["A", "B"],
            "technology": ["4G", "2G"],
            "frequency_mhz": [900.0, 900.0],
            "height_m": [30.0, 30.0],
            "eirp_dbm": [50.0, 40.0],
        },
        geometry=[Point(X0 + 500, Y0 + 1000), Point(X0 + 1500, Y0 + 1000)],
        index=["a1", "b1"],
        crs=UTM49,
    )
    towers.index.name = "site_id"
    return grid, towers


def _radius_km(eirp, power_threshold):
    """Independent: invert Okumura-Hata urban (900 MHz, 30 m, 1.5 m) for the coverage radius."""
    a = path_loss("hata", freq_mhz=900, distance_km=1.0, h_tx_m=30)
    b = path_loss("hata", freq_mhz=900, distance_km=10.0, h_tx_m=30) - a
    return 10 ** ((eirp - power_threshold - a) / b)


def test_coverage_disc_matches_inverted_hata(two_ops):
    grid, towers = two_ops
    before = towers.copy()
    thr = Thresholds()
    cov = compute_coverage(
        towers, grid, thresholds=thr, model="hata", max_radius_km=5, validity="ignore"
    )
    assert cov.operators == ("A", "B")
    X, Y = grid.cell_centres()
    for i, (t, tech) in enumerate([("a1", "4G"), ("b1", "2G")]):
        p = towers.loc[t]
        r = _radius_km(p["eirp_dbm"], thr.power_threshold(tech)) * 1000
        d = np.hypot(X - p.geometry.x, Y - p.geometry.y)
        expected = d <= r
        # cells within 1 m of the circle may go either way
        unsure = np.abs(d - r) < 1.0
        assert np.array_equal(cov.covered[i][~unsure], expected[~unsure])
        assert 100 < r < 2000
    # power = margin + threshold of the serving tower's technology
    ok = cov.server[0] >= 0
    np.testing.assert_allclose(
        cov.power_dbm[0][ok] - cov.margin_db[0][ok], thr.power_threshold("4G"), atol=1e-4
    )
    assert_unchanged(before, towers)


def test_population_conserved_and_sdg_conventions(two_ops):
    grid, towers = two_ops
    cov = compute_coverage(towers, grid, model="hata", max_radius_km=5, validity="ignore")
    rng = np.random.default_rng(0)
    pop = rng.uniform(0, 10, grid.shape)
    halves = gpd.GeoDataFrame(
        {"name": ["W", "E"]},
        geometry=[
            gpd.GeoSeries.from_wkt(
                [
                    f"POLYGON(({X0} {Y0},{X0 + 1000} {Y0},{X0 + 1000} {Y0 + 2000},{X0} {Y0 + 2000},{X0} {Y0}))"
                ]
            ).iloc[0],
            gpd.GeoSeries.from_wkt(
                [
                    f"POLYGON(({X0 + 1000} {Y0},{X0 + 2000} {Y0},{X0 + 2000} {Y0 + 2000},{X0 + 1000} {Y0 + 2000},{X0 + 1000} {Y0}))"
                ]
            ).iloc[0],
        ],
        crs=UTM49,
    ).set_index("name")
    table = population_covered(cov, pop, halves)
    np.testing.assert_allclose(table["covered_any"] + table["uncovered_any"], table["population"])
    assert table["population"].sum() == pytest.approx(pop.sum())
    # brute force: covered by A in the west half
    west = np.zeros(grid.shape, dtype=bool)
    west[:, :20] = True
    assert table.loc["W", "covered_A"] == pytest.approx(pop[cov.covered[0] & west].sum())
    assert table.loc["W", "covered_best_single"] == pytest.approx(
        max(table.loc["W", "covered_A"], table.loc["W", "covered_B"])
    )
    assert (table["covered_any"] >= table["covered_best_single"] - 1e-9).all()
    # by technology: 4G+ is A's coverage only (B is 2G), 2G+ is the union
    assert table["covered_4G_plus"].sum() == pytest.approx(table["covered_A"].sum())
    assert table["covered_2G_plus"].sum() == pytest.approx(table["covered_any"].sum())
    assert table["covered_5G_plus"].sum() == 0


def test_population_conserved_against_numpy(two_ops):
    """Covered, uncovered and total per area against numpy sums straight off the rasters.

    The two areas are cell-aligned boxes over the northern 30 rows (west: columns 0–9, east:
    10–39), so membership is plain slicing; the southern 10 rows lie outside every area. A few
    NaN cells count as 0 persons. B's EIRP is lowered to 35 dBm (radius ≈ 1.27 km) so that both
    areas hold covered and uncovered people.
    """
    grid, towers = two_ops
    towers = towers.assign(eirp_dbm=[50.0, 35.0])
    cov = compute_coverage(towers, grid, model="hata", max_radius_km=5, validity="ignore")
    pop = np.random.default_rng(1).uniform(0, 10, grid.shape)
    pop[[3, 25, 35], [4, 31, 7]] = np.nan
    areas = gpd.GeoDataFrame(
        {"name": ["W", "E"]},
        geometry=[
            box(X0, Y0 + 500, X0 + 500, Y0 + 2000),
            box(X0 + 500, Y0 + 500, X0 + 2000, Y0 + 2000),
        ],
        crs=UTM49,
    ).set_index("name")
    table = population_covered(cov, pop, areas)

    persons = np.nan_to_num(pop, nan=0.0)
    any_op = cov.covered[0] | cov.covered[1]
    zones = {"W": np.s_[:30, :10], "E": np.s_[:30, 10:]}
    for name, zone in zones.items():
        p, c = persons[zone], any_op[zone]
        total, covered, uncovered = p.sum(), p[c].sum(), p[~c].sum()
        assert 0 < covered < total  # a zone with both covered and uncovered people
        assert table.loc[name, "population"] == pytest.approx(total, rel=1e-12)
        assert table.loc[name, "covered_any"] == pytest.approx(covered, rel=1e-12)
        assert table.loc[name, "uncovered_any"] == pytest.approx(uncovered, rel=1e-12)
        assert table.loc[name, "covered_any"] + table.loc[name, "uncovered_any"] == pytest.approx(
            total, rel=1e-12
        )
        for i, op in enumerate(cov.operators):
            expected = p[cov.covered[i][zone]].sum()
            assert table.loc[name, f"covered_{op}"] == pytest.approx(expected, rel=1e-12)
    outside = persons[30:, :].sum()
    assert outside > 0
    assert table["population"].sum() + outside == pytest.approx(np.nansum(pop), rel=1e-12)


def test_indoor_shrinks_coverage(two_ops):
    grid, towers = two_ops
    out = compute_coverage(towers, grid, model="hata", max_radius_km=5, validity="ignore")
    ind = compute_coverage(
        towers,
        grid,
        model="hata",
        max_radius_km=5,
        validity="ignore",
        thresholds=Thresholds(indoor=True),
    )
    assert ind.covered.sum() < out.covered.sum()
    assert not (ind.covered & ~out.covered).any()
    assert math.isclose(ind.thresholds.metric_threshold("4G"), -95.0)


def test_limit_raster_tells_terrain_from_distance(two_ops):
    from telcoplan.coverage.analysis import LIMIT_COVERED, LIMIT_DISTANCE, LIMIT_TERRAIN

    grid, towers = two_ops
    dem = np.zeros(grid.shape)
    dem[:, 14:16] = 250.0  # a ridge 200 m east of tower A (x = 700–800 m)
    flat = compute_coverage(towers, grid, model="hata", max_radius_km=5, validity="ignore")
    cov = compute_coverage(towers, grid, model="hata", max_radius_km=5, validity="ignore", dem=dem)
    lim = cov.limit
    assert lim is not None
    assert flat.limit is None
    assert np.array_equal(lim == LIMIT_COVERED, cov.covered_any)
    # terrain: covered on flat earth but not over the ridge; distance: not even on flat earth
    assert np.array_equal(lim == LIMIT_TERRAIN, flat.covered_any & ~cov.covered_any)
    assert np.array_equal(lim == LIMIT_DISTANCE, ~flat.covered_any)
    assert (lim == LIMIT_TERRAIN).any()
    assert not (cov.covered_any & ~flat.covered_any).any()  # terrain never adds coverage


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 10_000), boost=st.floats(0.0, 12.0), which=st.integers(0, 4))
def test_more_eirp_never_shrinks_coverage(seed, boost, which):
    """Property: raising one tower's EIRP never uncovers a cell, for any operator."""
    grid = GridSpec.from_bounds((X0, Y0, X0 + 2000, Y0 + 2000), 100.0, UTM49)
    rng = np.random.default_rng(seed)
    towers = gpd.GeoDataFrame(
        {
            "operator": rng.choice(["A", "B"], 5),
            "technology": rng.choice(["2G", "4G"], 5),
            "frequency_mhz": 900.0,
            "height_m": rng.uniform(30, 40, 5),
            "eirp_dbm": rng.uniform(40, 55, 5),
            "azimuth_deg": np.where(rng.random(5) < 0.5, rng.uniform(0, 360, 5), np.nan),
        },
        geometry=gpd.points_from_xy(rng.uniform(X0, X0 + 2000, 5), rng.uniform(Y0, Y0 + 2000, 5)),
        crs=UTM49,
        index=[f"t{i}" for i in range(5)],
    )
    before = compute_coverage(towers, grid, model="hata", max_radius_km=3, validity="ignore")
    stronger = towers.copy()
    stronger.iloc[which, stronger.columns.get_loc("eirp_dbm")] += boost
    after = compute_coverage(stronger, grid, model="hata", max_radius_km=3, validity="ignore")
    for op in before.operators:
        i, j = before.operators.index(op), after.operators.index(op)
        assert not (before.covered[i] & ~after.covered[j]).any()


def multipass_coverage(towers, grid, *, thresholds, dem=None, **kw):
    """The coverage stage as it was before its passes shared one kernel run: the reference.

    Pass 1, the best server by margin per operator; pass 2, one run per technology present
    (floor 0 dB: margin ≥ 0) for the highest generation, or the operators' coverage when only
    one is present; with a DEM, pass 3, the whole margins run on flat earth for the limit
    raster. Returns (margin, server, best technology, limit).
    """
    tech = towers["technology"].astype(str).str.upper().to_numpy()
    power_thr = np.array([thresholds.power_threshold(t) for t in tech])
    shifted = towers.assign(eirp_dbm=towers["eirp_dbm"].to_numpy(dtype=float) - power_thr)
    ops = {"group_by": "operator", "floor_dbm": MARGIN_FLOOR_DB, "validity": "ignore"}
    res = best_server(shifted, grid, dem=dem, **ops, **kw)
    covered = res.power_dbm >= 0
    best_tech = np.full(grid.shape, -1, dtype=np.int8)
    present = [t for t in TECHNOLOGY_ORDER if (tech == t).any()]
    if len(present) == 1:
        best_tech[covered.any(axis=0)] = technology_rank(present[0])
    for t in present if len(present) > 1 else []:
        sel = shifted[tech == t].assign(_all="all")
        one = best_server(
            sel, grid, group_by="_all", floor_dbm=0.0, validity="ignore", dem=dem, **kw
        )
        best_tech[one.power_dbm[0] >= 0] = technology_rank(t)
    limit = None
    if dem is not None:
        flat = (best_server(shifted, grid, **ops, **kw).power_dbm >= 0).any(axis=0)
        limit = np.where(
            covered.any(axis=0), LIMIT_COVERED, np.where(flat, LIMIT_TERRAIN, LIMIT_DISTANCE)
        ).astype(np.uint8)
    return res.power_dbm, res.server, best_tech, limit


def _dense_network(n, grid, seed, freqs, flavour="weaker"):
    """``n`` towers of 3 operators and the 4 generations over ``grid`` (and 300 m around it),
    sectors (some tilted, some of their own beamwidth) and omni antennas, weak EIRPs: every
    generation covers part of the grid and leaves part uncovered. ``flavour``:

    - ``"weaker"``: each generation 8 dB weaker than the one before;
    - ``"dominant"``: the same, and one tower in ten a 2G omni 30 dB stronger: it serves its
      operator's cells, and the towers that cover cells with a later generation are not
      needed for any operator's best server (the kernel evaluates them for the generations
      alone);
    - ``"stronger"``: each generation 4 dB stronger than the one before (and 8 dB more for
      all): a later generation's tower, before the terrain's loss, often beats its
      operator's best so far, and after it still covers the cell without serving it.
    """
    rng = np.random.default_rng(seed)
    xmin, ymin, xmax, ymax = grid.bounds
    az = np.where(rng.random(n) < 0.6, rng.uniform(0, 360, n), np.nan)
    rank = rng.integers(0, len(TECHNOLOGY_ORDER), n)
    boost = np.zeros(n) if flavour != "stronger" else 8.0 + 12.0 * rank
    if flavour == "dominant":
        strong = np.arange(n) % 10 == 0
        rank[strong] = 0
        az[strong] = np.nan
        boost[strong] = 30.0
    return gpd.GeoDataFrame(
        {
            "operator": rng.choice(["A", "B", "C"], n),
            "technology": np.array(TECHNOLOGY_ORDER)[rank],
            "frequency_mhz": rng.choice(freqs, n),
            "height_m": rng.uniform(25, 45, n),
            # the later generations weaker: their towers rarely serve an operator's cells
            # but still cover some, which only the generations' output needs
            "eirp_dbm": rng.uniform(5.0, 35.0, n) - 8.0 * rank + boost,
            "azimuth_deg": az,
            "beamwidth_deg": np.where(rng.random(n) < 0.5, rng.uniform(40, 90, n), np.nan),
            "tilt_deg": np.where(rng.random(n) < 0.5, rng.uniform(0, 10, n), np.nan),
        },
        geometry=gpd.points_from_xy(
            rng.uniform(xmin - 300, xmax + 300, n), rng.uniform(ymin - 300, ymax + 300, n)
        ),
        index=[f"s{i:04d}" for i in range(n)],
        crs=UTM49,
    )


def _assert_as_multipass(cov, want):
    margin, server, best_tech, limit = want
    np.testing.assert_array_equal(cov.margin_db, margin)  # NaN where NaN
    np.testing.assert_array_equal(cov.server, server)
    np.testing.assert_array_equal(cov.best_technology, best_tech)
    if limit is None:
        assert cov.limit is None
    else:
        np.testing.assert_array_equal(cov.limit, limit)


_FLAVOURS = [(False, "weaker"), (True, "weaker"), (True, "dominant"), (False, "stronger")]


@pytest.mark.parametrize(("clutter", "flavour"), _FLAVOURS)
def test_one_run_equals_the_passes_it_replaces_on_flat_earth(clutter, flavour):
    """Margins, servers and the highest generation from one kernel run, bit for bit the
    separate runs' (one per generation): 250 towers reach every tile (> 100 candidates per
    tile), four generations, sectors, the Hata family and the tabulated 3GPP models,
    a calibration, and clutter with losses and gains (a gain lowers the kernel's floors)."""
    grid = GridSpec.from_bounds((X0, Y0, X0 + 3200, Y0 + 3200), 50.0, UTM49)
    freqs = [900.0, 1800.0, 2100.0, 2600.0, 3500.0]
    towers = _dense_network(250, grid, seed=5, freqs=freqs, flavour=flavour)
    clutter_db = None
    if clutter:
        clutter_db = np.random.default_rng(2).uniform(-6.0, 12.0, grid.shape)
        clutter_db[5, 5] = np.nan
    kw = {
        "model": "auto",
        "max_radius_km": 3.0,
        "calibration": (1.5, 2.0),
        "clutter_db": clutter_db,
        "tile_size": 32,
    }
    thr = Thresholds()
    cov = compute_coverage(towers, grid, thresholds=thr, validity="ignore", **kw)
    want = multipass_coverage(towers, grid, thresholds=thr, **kw)
    _assert_as_multipass(cov, want)
    # every generation covers some cells, and (without the dominant towers) some cells none
    assert set(np.unique(cov.best_technology)) >= {0, 1, 2, 3}
    assert flavour != "weaker" or -1 in cov.best_technology


@pytest.mark.parametrize(("clutter", "flavour"), _FLAVOURS)
def test_one_run_equals_the_passes_it_replaces_with_terrain(clutter, flavour):
    """With a DEM, one terrain kernel run also gives the flat-earth coverage (the flat
    kernel's float32 evaluation, for the limit raster) and the generations: bit for bit the
    separate terrain runs and the flat-earth run, with > 100 candidates per tile, sectors
    whose tilt meets the ground's depression, and hills that hide some cells."""
    from scipy.ndimage import gaussian_filter

    res = 30.0
    grid = GridSpec.from_bounds((X0, Y0, X0 + 48 * res, Y0 + 48 * res), res, UTM49)
    hills, sites = (9, 9) if flavour == "stronger" else (21, 8)  # seeds: such pairs occur
    z = gaussian_filter(np.random.default_rng(hills).standard_normal(grid.shape), 4.0, mode="wrap")
    dem = ((z - z.min()) * (150.0 / np.ptp(z))).astype(np.float32).astype(np.float64)
    towers = _dense_network(130, grid, seed=sites, freqs=[900.0, 2600.0], flavour=flavour)
    if flavour != "stronger":
        towers["eirp_dbm"] -= 8.0
    clutter_db = None
    if clutter:
        clutter_db = np.random.default_rng(3).uniform(-4.0, 8.0, grid.shape)
    kw = {"model": "auto", "max_radius_km": 1.5, "clutter_db": clutter_db, "tile_size": 16}
    thr = Thresholds()
    for method in ("bullington", "deygout"):
        cov = compute_coverage(
            towers, grid, thresholds=thr, validity="ignore", dem=dem, diffraction=method, **kw
        )
        want = multipass_coverage(towers, grid, thresholds=thr, dem=dem, diffraction=method, **kw)
        _assert_as_multipass(cov, want)
        assert set(np.unique(cov.best_technology)) >= {1, 2, 3}
        if flavour != "stronger":  # (that one covers every cell, by 3G or later)
            assert set(np.unique(cov.limit)) >= {LIMIT_COVERED, LIMIT_TERRAIN}
        if flavour == "weaker":
            assert LIMIT_DISTANCE in cov.limit
            assert -1 in cov.best_technology


def test_one_generation_gives_the_operators_coverage_with_terrain(two_ops):
    grid, towers = two_ops
    towers = towers.assign(technology="3G", eirp_dbm=[30.0, 25.0])
    dem = np.zeros(grid.shape)
    dem[:, 14:16] = 250.0
    kw = {"model": "hata", "max_radius_km": 5}
    cov = compute_coverage(towers, grid, validity="ignore", dem=dem, **kw)
    _assert_as_multipass(
        cov, multipass_coverage(towers, grid, thresholds=Thresholds(), dem=dem, **kw)
    )
    assert set(np.unique(cov.best_technology)) == {-1, 1}
    assert set(np.unique(cov.limit)) == {LIMIT_COVERED, LIMIT_DISTANCE, LIMIT_TERRAIN}
