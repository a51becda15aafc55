"""Best-server kernel against the plain numpy reference, and its invariants."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
from shapely.geometry import Point

from telcoplan.coverage.bestserver import best_server
from telcoplan.errors import CRSError
from telcoplan.gis.grid import GridSpec
from tests.conftest import UTM49, X0, Y0, assert_unchanged
from tests.coverage.reference import reference_best_server


def random_towers(n, grid, seed, sectors=True):
    rng = np.random.default_rng(seed)
    xmin, ymin, xmax, ymax = grid.bounds
    ops = np.array(["Viettel", "VinaPhone", "MobiFone"])
    df = {
        "site_id": [f"S{i:04d}" for i in range(n)],
        "operator": ops[rng.integers(0, 3, n)],
        "technology": "4G",
        "frequency_mhz": rng.choice([900.0, 1800.0, 2100.0], n),
        "height_m": rng.uniform(20, 45, n),
        "eirp_dbm": rng.uniform(55, 62, n),
    }
    if sectors:
        df["azimuth_deg"] = np.where(rng.random(n) < 0.7, rng.uniform(0, 360, n), np.nan)
        df["beamwidth_deg"] = np.where(rng.random(n) < 0.5, rng.uniform(30, 90, n), np.nan)
        df["tilt_deg"] = np.where(rng.random(n) < 0.5, rng.uniform(0, 10, n), np.nan)
    pts = [
        Point(x, y)
        for x, y in zip(
            rng.uniform(xmin - 500, xmax + 500, n),
            rng.uniform(ymin - 500, ymax + 500, n),
            strict=True,
        )
    ]
    return gpd.GeoDataFrame(df, geometry=pts, crs=grid.crs).set_index("site_id")


@pytest.fixture(scope="module")
def grid_mid():
    """A 120 x 90 grid of 50 m cells (6 km x 4.5 km) in UTM 49N."""
    return GridSpec.from_bounds((X0, Y0, X0 + 6000, Y0 + 4500), 50.0, UTM49)


@pytest.mark.parametrize("model", ["hata", "cost231", "fspl", "3gpp-uma", "3gpp-rma"])
@pytest.mark.parametrize("sectors", [False, True])
def test_kernel_matches_reference(grid_mid, model, sectors):
    towers = random_towers(40, grid_mid, seed=7, sectors=sectors)
    before = towers.copy()
    res = best_server(
        towers, grid_mid, model=model, max_radius_km=3.0, tile_size=16, validity="ignore"
    )
    groups, ref_p, ref_s = reference_best_server(towers, grid_mid, model=model, max_radius_km=3.0)
    assert res.groups == groups
    ok = np.isfinite(ref_p)
    assert np.array_equal(ok, np.isfinite(res.power_dbm))
    assert np.max(np.abs(res.power_dbm[ok] - ref_p[ok])) <= 0.01
    # same serving tower except where two towers tie within the float32/table tolerance
    differ = (res.server != ref_s) & ok
    assert differ.mean() < 1e-3
    assert_unchanged(before, towers)


def test_pruning_happens(grid_mid):
    towers = random_towers(150, grid_mid, seed=3, sectors=False)
    res = best_server(towers, grid_mid, max_radius_km=10.0, tile_size=16, validity="ignore")
    n_tiles = int(np.ceil(grid_mid.height / 16) * np.ceil(grid_mid.width / 16))
    assert res.towers_evaluated < 0.25 * n_tiles * len(towers)


def test_single_omni_tower_is_radial_and_decreasing(grid10):
    t = gpd.GeoDataFrame(
        {"operator": ["A"], "frequency_mhz": [900.0], "height_m": [30.0], "eirp_dbm": [60.0]},
        geometry=[Point(X0 + 500, Y0 + 500)],
        index=["T"],
        crs=UTM49,
    )
    res = best_server(t, grid10, max_radius_km=0.45)
    p, _s = res.group("A")
    X, Y = grid10.cell_centres()
    d = np.hypot(X - (X0 + 500), Y - (Y0 + 500))
    inside = d <= 450
    assert np.array_equal(np.isfinite(p), inside)
    order = np.argsort(d[inside])
    assert np.all(np.diff(p[inside][order]) <= 1e-4)
    assert set(res.server_ids("A")[inside]) == {"T"}


def test_more_eirp_never_shrinks(grid_mid):
    towers = random_towers(30, grid_mid, seed=11)
    a = best_server(towers, grid_mid, max_radius_km=2.0, floor_dbm=-110, validity="ignore")
    stronger = towers.copy()
    stronger["eirp_dbm"] += 3.0
    b = best_server(stronger, grid_mid, max_radius_km=2.0, floor_dbm=-110, validity="ignore")
    assert np.all(np.isfinite(b.power_dbm) >= np.isfinite(a.power_dbm))
    both = np.isfinite(a.power_dbm)
    np.testing.assert_allclose(b.power_dbm[both], a.power_dbm[both] + 3.0, atol=1e-3)


def test_group_by_operator_and_technology(grid10, towers5):
    res = best_server(
        towers5.set_index("site_id"),
        grid10,
        group_by=["operator", "technology"],
        max_radius_km=1,
        validity="ignore",
    )
    assert res.groups == ("MobiFone/3G", "Viettel/4G", "Viettel/5G", "VinaPhone/4G")


def test_crs_mismatch(grid10, towers5):
    with pytest.raises(CRSError):
        best_server(towers5.to_crs("EPSG:4326"), grid10)


def test_no_towers(grid10, towers5):
    res = best_server(towers5.iloc[:0], grid10)
    assert res.power_dbm.shape == (0, 10, 10)


def test_auto_model_matches_reference_per_band(grid_mid):
    """'auto' picks a model per tower by band; each tower's losses equal its model's."""
    from telcoplan.coverage.bestserver import auto_models

    towers = random_towers(30, grid_mid, seed=5, sectors=False)
    towers["frequency_mhz"] = np.resize([900.0, 1800.0, 2600.0], len(towers))
    assert list(
        auto_models(np.array([900.0, 1800.0, 2600.0, 2600.0]), ["urban"] * 3 + ["rural"])
    ) == ["hata", "cost231", "3gpp-uma", "3gpp-rma"]
    res = best_server(towers, grid_mid, model="auto", max_radius_km=2.0, validity="ignore")
    best = None
    for model, f in (("hata", 900.0), ("cost231", 1800.0), ("3gpp-uma", 2600.0)):
        sub = towers[towers["frequency_mhz"] == f]
        _, p, _ = reference_best_server(sub, grid_mid, model=model, max_radius_km=2.0)
        best = p if best is None else np.fmax(best, p)
    ok = np.isfinite(best)
    assert np.array_equal(ok, np.isfinite(res.power_dbm))
    assert np.max(np.abs(res.power_dbm[ok] - best[ok])) <= 0.01


@pytest.mark.parametrize("model", ["hata", "3gpp-uma"])
def test_calibration_shifts_losses_exactly(grid_mid, model):
    """L_cal = L + a + b log10(d_km): compare with the numpy reference per tower (each tower a
    group of its own) less the correction at each cell, the best of an operator's towers kept
    (the slope can change which tower serves), everywhere."""
    towers = random_towers(10, grid_mid, seed=2, sectors=False)
    a, b = 4.0, -3.0
    res = best_server(
        towers, grid_mid, model=model, max_radius_km=2.0, validity="ignore", calibration=(a, b)
    )
    ids, per_tower, _ = reference_best_server(
        towers.assign(tower=towers.index),
        grid_mid,
        model=model,
        max_radius_km=2.0,
        group_by="tower",
    )
    X, Y = grid_mid.cell_centres()
    ref = np.full(res.power_dbm.shape, -np.inf)
    ref_s = np.full(res.server.shape, -1)
    for k, site in enumerate(ids):
        t = towers.index.get_loc(site)
        d_km = np.maximum(
            np.hypot(X - towers.geometry.x.iloc[t], Y - towers.geometry.y.iloc[t]), 1.0
        )
        p = per_tower[k] - a - b * np.log10(d_km / 1000.0)
        g = res.groups.index(towers["operator"].iloc[t])
        better = np.isfinite(p) & (p > ref[g])
        ref[g][better] = p[better]
        ref_s[g][better] = t
    ok = np.isfinite(ref)
    assert np.array_equal(ok, np.isfinite(res.power_dbm))
    assert np.max(np.abs(res.power_dbm[ok] - ref[ok])) <= 0.01
    assert ((res.server != ref_s) & ok).mean() < 1e-3
    # the correction is not small beside the tolerance: it moves the powers by dB
    plain = best_server(towers, grid_mid, model=model, max_radius_km=2.0, validity="ignore")
    assert np.nanmax(np.abs(plain.power_dbm - res.power_dbm)) > 1.0


@pytest.mark.parametrize("model", ["hata", "3gpp-uma"])
def test_kernel_matches_reference_with_many_sectors_per_tile(model):
    """Dense three-sector sites of one operator: a tile takes dozens of towers by decreasing
    bound (past the linear scans, into the sorted rest), most ruled out by their pattern's
    bound; the maximum is still the reference's."""
    grid = GridSpec.from_bounds((X0, Y0, X0 + 2000, Y0 + 2000), 50.0, UTM49)
    rng = np.random.default_rng(3)
    n_sites = 60
    x = np.repeat(rng.uniform(X0 - 1500, X0 + 3500, n_sites), 3)
    y = np.repeat(rng.uniform(Y0 - 1500, Y0 + 3500, n_sites), 3)
    towers = gpd.GeoDataFrame(
        {
            "operator": "A",
            "frequency_mhz": 1800.0,
            "height_m": np.repeat(rng.uniform(20, 45, n_sites), 3),
            "eirp_dbm": rng.uniform(55, 62, 3 * n_sites),
            "azimuth_deg": (rng.uniform(0, 120, n_sites)[:, None] + [0.0, 120.0, 240.0]).ravel(),
            "tilt_deg": np.repeat(rng.uniform(2, 8, n_sites), 3),
        },
        geometry=[Point(a, b) for a, b in zip(x, y, strict=True)],
        index=[f"S{i // 3}-{i % 3}" for i in range(3 * n_sites)],
        crs=UTM49,
    )
    res = best_server(towers, grid, model=model, max_radius_km=5.0, tile_size=40, validity="ignore")
    _, ref_p, ref_s = reference_best_server(towers, grid, model=model, max_radius_km=5.0)
    ok = np.isfinite(ref_p)
    assert np.array_equal(ok, np.isfinite(res.power_dbm))
    assert np.max(np.abs(res.power_dbm[ok] - ref_p[ok])) <= 0.01
    assert ((res.server != ref_s) & ok).mean() < 1e-3


def test_flat_dem_reproduces_flat_earth(grid_mid):
    towers = random_towers(40, grid_mid, seed=7, sectors=True)
    flat = best_server(towers, grid_mid, max_radius_km=3.0, validity="ignore")
    dem = best_server(
        towers, grid_mid, max_radius_km=3.0, validity="ignore", dem=np.zeros(grid_mid.shape)
    )
    # the flat kernel computes in float32, the terrain kernel in float64: equal to ~1e-4 dB,
    # the same cells covered, and the same server except between towers tied to that precision
    np.testing.assert_array_equal(np.isnan(flat.power_dbm), np.isnan(dem.power_dbm))
    np.testing.assert_allclose(flat.power_dbm, dem.power_dbm, atol=1e-3)
    differ = flat.server != dem.server
    assert differ.mean() < 1e-3
    for g, r, c in zip(*np.nonzero(differ), strict=True):  # a tie: each server's own power
        a, b = towers.iloc[[flat.server[g, r, c], dem.server[g, r, c]]].index
        one = best_server(towers.loc[[a]], grid_mid, max_radius_km=3.0, validity="ignore")
        two = best_server(towers.loc[[b]], grid_mid, max_radius_km=3.0, validity="ignore")
        assert abs(one.power_dbm[0, r, c] - two.power_dbm[0, r, c]) < 1e-3


def test_ridge_shadows_only_behind_it(grid10):
    """A 300 m wall 2 cells wide between tower and the eastern cells: they lose exactly the
    terrain module's diffraction loss for their path; western cells are untouched."""
    from telcoplan.coverage.terrain import terrain_profile_loss

    t = gpd.GeoDataFrame(
        {"operator": ["A"], "frequency_mhz": [900.0], "height_m": [30.0], "eirp_dbm": [60.0]},
        geometry=[Point(X0 + 150, Y0 + 500)],
        index=["T"],
        crs=UTM49,
    )
    dem = np.zeros(grid10.shape)
    dem[:, 4:6] = 300.0
    flat = best_server(t, grid10, max_radius_km=2.0, validity="ignore").power_dbm[0]
    hilly = best_server(t, grid10, max_radius_km=2.0, validity="ignore", dem=dem).power_dbm[0]
    # in front of the wall: no loss (the flat kernel computes in float32: ~1e-5 dB)
    np.testing.assert_allclose(hilly[:, :4], flat[:, :4], atol=1e-3)
    X, Y = grid10.cell_centres()
    for r, c in [(5, 8), (2, 9), (9, 7)]:
        loss, clearance = terrain_profile_loss(
            dem, grid10, X0 + 150, Y0 + 500, 30.0, X[r, c], Y[r, c], 1.5, 900.0, method="bullington"
        )
        assert clearance > 0
        assert loss > 6.0
        assert flat[r, c] - hilly[r, c] == pytest.approx(loss, abs=1e-3)


def test_clutter_offsets_lower_the_power_per_cell_and_keep_the_server(grid_mid):
    """A per-cell clutter loss is the same for every tower at a cell: the reference's power
    minus the offset, the same serving tower; a gain lifts cells that were below the floor."""
    towers = random_towers(30, grid_mid, seed=5, sectors=True)
    rng = np.random.default_rng(1)
    clutter = rng.choice([-6.0, 0.0, 4.5, 12.0], size=grid_mid.shape).astype(np.float32)
    clutter[0, :5] = np.nan  # no class: no offset
    floor = -110.0
    res = best_server(
        towers, grid_mid, max_radius_km=3.0, validity="ignore", clutter_db=clutter,
        floor_dbm=floor,
    )  # fmt: skip
    groups, ref_p, ref_s = reference_best_server(towers, grid_mid, max_radius_km=3.0)
    assert res.groups == groups
    want = ref_p - np.nan_to_num(clutter)
    want[~(want >= floor)] = np.nan  # below the floor (or unreached): no power
    assert np.array_equal(np.isfinite(want), np.isfinite(res.power_dbm))
    ok = np.isfinite(want)
    assert np.max(np.abs(res.power_dbm[ok] - want[ok])) <= 0.01
    assert ((res.server != ref_s) & ok).mean() < 1e-3
    # cells raised above the floor by a −6 dB class exist, and are kept
    lifted = ok & (ref_p < floor)
    assert lifted.any()
    with pytest.raises(ValueError, match="clutter_db shape"):
        best_server(towers, grid_mid, max_radius_km=3.0, clutter_db=clutter[:5])


@pytest.mark.parametrize(
    ("method", "floor"),
    [("bullington", -150.0), ("deygout", -150.0), ("epstein-peterson", -150.0),
     ("bullington", -70.0)],  # a floor inside the range: pairs below it skip their profile
)  # fmt: skip
def test_terrain_kernel_matches_per_path_brute_force(method, floor):
    """Random hills: the kernel (branch and bound, a line-of-sight test that skips clear
    chunks, the profile walked only for obstructed paths) = every tower's Hata power minus the
    terrain module's own diffraction loss on every obstructed path, maximised per operator."""
    from scipy.ndimage import gaussian_filter

    from telcoplan.coverage.propagation import path_loss
    from telcoplan.coverage.terrain import terrain_profile_loss

    grid = GridSpec.from_bounds((X0, Y0, X0 + 1440, Y0 + 1440), 30.0, UTM49)
    rng = np.random.default_rng(12)
    dem = gaussian_filter(rng.standard_normal(grid.shape), 4.0, mode="wrap")
    dem = (dem - dem.min()) * (120.0 / np.ptp(dem))
    X, Y = grid.cell_centres()
    cells = [(10, 12), (30, 35), (24, 5), (40, 40), (5, 44)]  # tower cells (row, col)
    towers = gpd.GeoDataFrame(
        {"operator": ["A", "A", "A", "B", "B"], "frequency_mhz": 900.0, "height_m": 30.0,
         "eirp_dbm": [60.0, 58.0, 61.0, 59.0, 60.0]},
        geometry=[Point(X[r, c], Y[r, c]) for r, c in cells], index=[f"T{i}" for i in range(5)],
        crs=UTM49,
    )  # fmt: skip
    radius = 900.0
    res = best_server(
        towers, grid, max_radius_km=radius / 1000, validity="ignore", dem=dem,
        diffraction=method, floor_dbm=floor,
    )  # fmt: skip
    want = {op: np.full(grid.shape, -np.inf) for op in ("A", "B")}
    obstructed = 0
    for _, t in towers.iterrows():
        d = np.hypot(X - t.geometry.x, Y - t.geometry.y)
        flat = t.eirp_dbm - path_loss(
            "hata", freq_mhz=900.0, distance_km=np.maximum(d, 1.0) / 1000, h_tx_m=30.0,
            check_distance=False,
        )  # fmt: skip
        loss, clearance = terrain_profile_loss(
            dem, grid, t.geometry.x, t.geometry.y, 30.0, X, Y, 1.5, 900.0, method=method
        )
        p = np.where(d <= radius, flat - np.where(clearance > 0, loss, 0.0), -np.inf)
        obstructed += int(((clearance > 0) & (d <= radius)).sum())
        want[t.operator] = np.maximum(want[t.operator], p)
    assert obstructed > 500  # a real mix of clear and obstructed paths
    for g, op in enumerate(res.groups):
        want[op][want[op] < floor] = np.nan  # below the floor: no power
        if floor > -150.0:
            assert 0.1 < np.isnan(want[op]).mean() < 0.9  # the floor cuts through the area
        ok = np.isfinite(want[op])
        assert np.array_equal(ok, np.isfinite(res.power_dbm[g]))
        assert np.max(np.abs(res.power_dbm[g][ok] - want[op][ok])) <= 0.01


def test_memory_stays_bounded_whatever_the_towers_times_cells(tmp_path):
    """3,000 towers that all reach all 62,500 cells: a cells × towers float32 array would be
    750 MB; the peak resident memory of the call (in a fresh process, after a warm-up) must
    grow by far less — the outputs plus tile buffers."""
    import subprocess
    import sys
    import textwrap

    script = textwrap.dedent(
        f"""
        import resource, sys
        sys.path.insert(0, {str(Path(__file__).resolve().parents[2])!r})
        from telcoplan.coverage.bestserver import best_server
        from telcoplan.gis.grid import GridSpec
        from tests.coverage.test_bestserver import random_towers
        grid = GridSpec.from_bounds((800_000, 1_750_000, 812_500, 1_762_500), 50.0, "EPSG:32649")
        towers = random_towers(3000, grid, seed=3, sectors=True)
        best_server(towers.iloc[:5], grid, max_radius_km=20.0, validity="ignore")  # warm-up
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        res = best_server(towers, grid, max_radius_km=20.0, validity="ignore")
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        assert res.power_dbm.shape == (3, 250, 250)
        print((after - before) / (1024 * 1024 if sys.platform == "darwin" else 1024))  # bytes on macOS
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    grown_mb = float(out.stdout.strip().splitlines()[-1])
    assert grown_mb < 100.0, f"peak memory grew by {grown_mb:.0f} MB"


@pytest.mark.parametrize("terrain", [False, True])
def test_long_runs_report_progress_while_the_kernel_runs(terrain, monkeypatch, caplog):
    """The kernels run their tiles without the GIL (the flat one in one call, the terrain one in
    calls of many tiles); a watcher thread reports the share of tiles done and the time left
    while they run, in order, and stops with them."""
    import logging
    import re
    import threading

    import telcoplan.coverage.bestserver as bs

    monkeypatch.setattr(bs, "_PROGRESS_S", 0.002)
    monkeypatch.setattr(bs, "_PROGRESS_MIN_LEFT_S", 0.0)
    # 400 x 400 cells in tiles of 4: 10,000 tiles (the terrain kernel's calls hold <= 8,192)
    grid = GridSpec.from_bounds((X0, Y0, X0 + 20_000, Y0 + 20_000), 50.0, UTM49)
    towers = random_towers(300 if not terrain else 40, grid, seed=2, sectors=True)
    dem = None
    if terrain:
        xc, _ = grid.cell_centres()
        dem = 60.0 * np.sin((xc - X0) / 900.0) ** 2
    threads = threading.active_count()
    with caplog.at_level(logging.INFO, logger="telcoplan"):
        best_server(
            towers, grid, max_radius_km=5.0 if not terrain else 1.0, validity="ignore",
            tile_size=4, dem=dem, progress_label="signal of the test",
        )  # fmt: skip
    assert threading.active_count() == threads  # the watcher is gone
    lines = [r.getMessage() for r in caplog.records if "signal of the test" in r.getMessage()]
    assert lines, "no progress message in a run of 10,000 tiles"
    shares = [int(re.search(r": (\d+)% of 10000 tiles, about \d+ s left", x)[1]) for x in lines]
    assert shares == sorted(shares)


@pytest.mark.parametrize("terrain", [False, True])
def test_towers_far_beyond_the_grid_change_nothing(monkeypatch, terrain):
    """A national towers file and a small fine grid: the towers that cannot reach it are left
    out of the kernels' buckets (which span the grid plus the radius, not the towers' extent)
    and the rasters are those of the near towers alone, to the bit (the flat and the terrain
    kernel take their tile candidates from the same buckets)."""
    import telcoplan.coverage._kernel_common as kernel
    from telcoplan.coverage._kernel_common import tower_buckets

    grid = GridSpec.from_bounds((X0, Y0, X0 + 1_000, Y0 + 800), 10.0, UTM49)
    near = random_towers(6, grid, seed=3, sectors=True)
    rng = np.random.default_rng(9)
    far = random_towers(300, grid, seed=4, sectors=True)
    far = far.set_geometry(
        gpd.points_from_xy(
            X0 + rng.uniform(-1.5e6, 1.5e6, len(far)), Y0 + rng.uniform(5e3, 1.5e6, len(far))
        )
    ).set_crs(UTM49, allow_override=True)
    far.index = [f"F{i}" for i in range(len(far))]
    both = pd.concat([near, far])
    kw = {"max_radius_km": 0.6, "validity": "ignore"}
    if terrain:
        xc, yc = grid.cell_centres()
        kw["dem"] = 30.0 * np.sin((xc - X0) / 90.0) ** 2 + 20.0 * np.cos((yc - Y0) / 70.0) ** 2
    buckets: list[int] = []

    def spy(tx, ty, xmin, ymin, size, nbx, nby):
        buckets.append(nbx * nby)
        return tower_buckets(tx, ty, xmin, ymin, size, nbx, nby)

    monkeypatch.setattr(kernel, "tower_buckets", spy)
    got = best_server(both, grid, **kw)
    want = best_server(near, grid, **kw)
    # buckets over the grid plus the radius (7 x 7 here), not over the towers' 3,000 km
    assert max(buckets) <= 100
    for g in got.groups:
        p, srv = got.group(g)
        if g not in want.groups:  # an operator with far towers only: no signal here
            assert np.isnan(p).all()
            assert (srv == -1).all()
            continue
        wp, ws = want.group(g)
        np.testing.assert_array_equal(p, wp)
        on = srv >= 0
        np.testing.assert_array_equal(on, ws >= 0)
        np.testing.assert_array_equal(got.site_ids[srv[on]], want.site_ids[ws[on]])


@pytest.mark.parametrize("terrain", [False, True])
def test_coverage_ranks_and_flat_earth_equal_separate_runs(grid_mid, terrain):
    """``coverage_rank``: the highest rank reaching the coverage level, and with a DEM the
    flat-earth coverage, come from the same kernel run as the powers (which they leave
    unchanged), equal to the bit to separate runs: one per rank with the level as the floor,
    and one without the DEM. Clutter with gains lowers the kernels' floors."""
    towers = random_towers(60, grid_mid, seed=11, sectors=True)
    rng = np.random.default_rng(5)
    rank = rng.integers(0, 4, len(towers))
    clutter = rng.uniform(-5.0, 10.0, grid_mid.shape)
    dem = None
    if terrain:
        xc, yc = grid_mid.cell_centres()
        dem = 90.0 * np.sin((xc - X0) / 500.0) ** 2 + 50.0 * np.cos((yc - Y0) / 350.0) ** 2
    level = -80.0
    kw = {"max_radius_km": 2.5, "validity": "ignore", "clutter_db": clutter, "tile_size": 16}
    got = best_server(
        towers, grid_mid, floor_dbm=-120.0, dem=dem, coverage_rank=rank, coverage_dbm=level, **kw
    )
    plain = best_server(towers, grid_mid, floor_dbm=-120.0, dem=dem, **kw)
    np.testing.assert_array_equal(got.power_dbm, plain.power_dbm)
    np.testing.assert_array_equal(got.server, plain.server)
    want = np.full(grid_mid.shape, -1, dtype=np.int8)
    for r in range(4):  # later ranks overwrite
        one = best_server(
            towers[rank == r].assign(_all="all"), grid_mid, group_by="_all", floor_dbm=level,
            dem=dem, **kw,
        )  # fmt: skip
        want[one.power_dbm[0] >= level] = r
    np.testing.assert_array_equal(got.best_rank, want)
    assert set(np.unique(want)) == {-1, 0, 1, 2, 3}
    if not terrain:
        assert got.flat_covered is None
        return
    flat = best_server(towers, grid_mid, floor_dbm=level, **kw)
    np.testing.assert_array_equal(got.flat_covered, (flat.power_dbm >= level).any(axis=0))
    hidden = got.flat_covered & (got.best_rank < 0)
    assert 0 < hidden.mean() < 0.5  # cells the hills hide


def _corners(lo, hi, n):
    """``n`` values from ``lo`` to ``hi``, evenly in log (both ends included)."""
    return np.geomspace(lo, hi, n)


@pytest.mark.parametrize("model", ["fspl", "hata", "cost231", "3gpp-uma", "3gpp-rma"])
@pytest.mark.parametrize("calibration", [None, (2.5, -3.0)])
def test_flat_kernel_path_loss_within_0_01_db_of_the_model(model, calibration):
    """The flat kernel's float32 closed forms (log-linear pieces in log d3D, RMa's term linear in
    d3D, the breakpoint between pieces decided per run in float64) against the float64
    ``path_loss``: every environment, frequencies, mast and receiver heights across the model's
    validity range, distances from 0 to 12 km on 7 m steps (both sides of every breakpoint in
    range), ≤ 0.01 dB everywhere."""
    from telcoplan.coverage.propagation import ENVIRONMENTS, MODELS, SPEED_OF_LIGHT, path_loss

    spec = MODELS[model]
    freqs = _corners(max(spec.freq_mhz[0], 150.0), min(spec.freq_mhz[1], 60_000.0), 3)
    h_txs = _corners(max(spec.h_tx_m[0], 10.0), min(spec.h_tx_m[1], 150.0), 3)
    h_rxs = _corners(max(spec.h_rx_m[0], 1.0), min(spec.h_rx_m[1], 10.0), 2)
    combos = [(f, h, e) for f in freqs for h in h_txs for e in ENVIRONMENTS]
    res, length = 7.0, 12_000.0
    grid = GridSpec.from_bounds((X0, Y0, X0 + length, Y0 + res * len(combos)), res, UTM49)
    xc = grid.x_centres()
    yc = grid.y_centres()
    towers = gpd.GeoDataFrame(
        {
            "tower": [f"T{i:03d}" for i in range(len(combos))],
            "frequency_mhz": [f for f, _, _ in combos],
            "height_m": [h for _, h, _ in combos],
            "environment": [e for _, _, e in combos],
            "eirp_dbm": 60.0,
        },
        # tower i on row i, 0.7 m from the row's first cell centre (below 1 m: clamped)
        geometry=[Point(X0 + 3.9, yc[i] + 0.6) for i in range(len(combos))],
        crs=UTM49,
    )
    crossed = 0
    worst = 0.0
    for h_rx in h_rxs:
        res_ = best_server(
            towers, grid, model=model, h_rx_m=h_rx, group_by="tower", max_radius_km=12.0,
            floor_dbm=-1e6, validity="ignore", calibration=calibration,
        )  # fmt: skip
        for i, (f, h, env) in enumerate(combos):
            d = np.hypot(xc - towers.geometry.x[i], yc[i] - towers.geometry.y[i])
            want = 60.0 - path_loss(
                model, freq_mhz=f, distance_km=d / 1000.0, h_tx_m=h, h_rx_m=h_rx,
                environment=env, validity="ignore", check_distance=False,
            )  # fmt: skip
            if calibration is not None:
                a, b = calibration
                want -= a + b * np.log10(np.maximum(d, 1.0) / 1000.0)
            got = res_.power_dbm[i, i]
            inside = d <= 12_000.0
            assert np.array_equal(np.isfinite(got), inside)
            err = np.max(np.abs(got[inside] - want[inside]))
            worst = max(worst, err)
            assert err <= 0.01, (f, h, h_rx, env)
            if model == "3gpp-uma":
                d_bp = 4.0 * (h - 1.0) * (h_rx - 1.0) * f * 1e6 / SPEED_OF_LIGHT
                crossed += 10.0 < d_bp < 11_000.0
            elif model == "3gpp-rma":
                crossed += 10.0 < 2.0 * np.pi * h * h_rx * f * 1e6 / SPEED_OF_LIGHT < 11_000.0
    print(f"{model} {calibration}: largest difference {worst:.2g} dB")
    if model.startswith("3gpp"):
        assert crossed >= 10  # breakpoints within the distances checked


def test_kernels_stay_cacheable(grid10, towers5):
    """Both kernels hand their per-tower evaluation, as a function, to the shared tile loop
    (:func:`telcoplan.coverage._kernel_tile.walk_tile`). Compiled code that holds a function's
    address cannot be cached (numba warns and compiles the kernels again in every process,
    ~25 s); the loop is inlined into each kernel so that none is left."""
    from telcoplan.coverage import _kernel, _kernel_terrain

    best_server(towers5, grid10, validity="ignore")
    best_server(towers5, grid10, dem=np.zeros(grid10.shape), validity="ignore")
    for kernel in (_kernel.best_server_flat_kernel, _kernel_terrain.best_server_terrain_kernel):
        assert kernel.overloads
        for compiled in kernel.overloads.values():
            assert not compiled.library.has_dynamic_globals, kernel.__name__


@pytest.mark.parametrize("terrain", [False, True])
def test_one_compiled_kernel_whatever_the_arrays_came_from(grid10, towers5, terrain):
    """numba compiles a kernel once per signature, and an array's read-only flag is part of it.
    A frame's float64 column comes out of ``to_numpy()`` read-only, an integer column (made
    float) or a missing one (filled in) writable, and a job sent to a Dask worker arrives
    writable: each combination used to compile the kernel again on its first run (the terrain
    kernel: 40–66 s on 2 cores) although ``make install`` had compiled one. All of them now run
    the signature of the first."""
    import pickle

    from telcoplan.coverage import _kernel, _kernel_terrain
    from telcoplan.coverage.bestserver import prepare_best_server

    kernel = (
        _kernel_terrain.best_server_terrain_kernel if terrain else _kernel.best_server_flat_kernel
    )
    dem = np.full(grid10.shape, 4.0) if terrain else None
    floats = towers5.assign(azimuth_deg=[0.0, 90.0, np.nan, 200.0, 300.0], tilt_deg=3.0)
    ints = floats.astype({"height_m": int, "eirp_dbm": int, "tilt_deg": int})
    missing = floats.drop(columns=["azimuth_deg", "tilt_deg"])
    # the premise: the same column is read-only from one frame, writable from the other
    assert not floats["eirp_dbm"].to_numpy().flags.writeable
    assert pd.to_numeric(ints["eirp_dbm"]).to_numpy(dtype=np.float64).flags.writeable

    best_server(floats, grid10, dem=dem, validity="ignore")
    first = set(kernel.signatures)
    for towers in (ints, missing):
        best_server(towers, grid10, dem=dem, validity="ignore")
    job = prepare_best_server(floats, grid10, dem=dem, validity="ignore")
    pickle.loads(pickle.dumps(job)).block(0, 10, 0, 10)  # as a Dask worker gets it
    assert set(kernel.signatures) == first
