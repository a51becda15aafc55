"""Cross-validated calibration against synthetic drive tests with a known truth.

The measurements are drawn from the textbook Okumura-Hata formula (``test_calibration``) plus
known offsets (clutter classes, serving sites) and Gaussian noise of known σ: the true
configuration's out-of-fold RMS error must approach σ, a misspecified one must do worse, and
the cross-validation must choose the truth. The ridge solution of the site offsets is checked
against a plain augmented least-squares solve written out here.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from telcoplan.coverage._offsets import correction, make_design, solve
from telcoplan.coverage.calibration import (
    Calibration,
    apply_site_offsets,
    calibrate,
    clutter_labels,
    predict_rssi,
)
from telcoplan.coverage.crossval import calibrate_cv, cross_validate, fold_ids
from telcoplan.errors import PlanError
from tests.conftest import assert_unchanged
from tests.coverage.test_calibration import SIGMA, TO_UTM, drive_test, five_towers

SITE_TRUTH = {"T1": 9.0, "T2": -7.0, "T3": 0.0, "T4": 5.0, "T5": -6.0}


def with_site_offsets(meas, offsets):
    """The measurements with each site's true offset (dB) added to the loss."""
    out = meas.copy()
    out["rssi_dbm"] = out["rssi_dbm"] - out["site_id"].map(offsets).to_numpy()
    return out


def score(cv, name):
    return next(s for s in cv.scores if s.candidate.name == name)


# ------------------------------------------------------------------------------ folds
@pytest.mark.parametrize("mode", ["random", "spatial", "site"])
def test_folds_partition_every_measurement_exactly_once(mode):
    towers = five_towers()
    meas, _, _ = drive_test(towers, 400, seed=2)
    x, y = TO_UTM.transform(meas.geometry.x.to_numpy(), meas.geometry.y.to_numpy())
    sites = meas["site_id"].to_numpy()
    k = 5 if mode != "site" else 3
    fold = fold_ids(len(meas), k, mode, seed=4, x=x, y=y, sites=sites, block_m=2000.0)
    assert fold.shape == (400,)
    assert set(np.unique(fold)) == set(range(k))  # every fold holds measurements
    # each measurement is predicted exactly once: the test sets partition the measurements
    tests = [np.flatnonzero(fold == f) for f in range(k)]
    assert sorted(np.concatenate(tests).tolist()) == list(range(400))
    if mode == "random":
        assert np.bincount(fold).max() - np.bincount(fold).min() <= 1
    else:  # groups are never split between folds
        group = (
            pd.Series(list(zip(np.floor(x / 2000.0), np.floor(y / 2000.0), strict=True)))
            if mode == "spatial"
            else pd.Series(sites)
        )
        assert (pd.Series(fold).groupby(group.to_numpy()).agg(lambda f: f.nunique()) == 1).all()
    # deterministic for a seed; another seed deals otherwise
    again = fold_ids(len(meas), k, mode, seed=4, x=x, y=y, sites=sites, block_m=2000.0)
    np.testing.assert_array_equal(fold, again)
    if mode == "random":
        assert not np.array_equal(fold, fold_ids(len(meas), k, mode, seed=5))


def test_impossible_folds_are_clear_errors():
    with pytest.raises(PlanError, match="at least 2 folds"):
        fold_ids(10, 1)
    with pytest.raises(PlanError, match="11 cross-validation folds asked for 10 measurements"):
        fold_ids(10, 11)
    with pytest.raises(PlanError, match="fall in 2 serving site"):
        fold_ids(4, 3, "site", sites=["a", "a", "b", "b"])
    with pytest.raises(PlanError, match=r"1 block\(s\) of 1000 m; use smaller blocks"):
        fold_ids(4, 2, "spatial", x=np.zeros(4), y=np.zeros(4))


# ------------------------------------------------------------------------------ the CV
def test_cv_rmse_approaches_the_noise_for_the_truth_and_is_worse_when_misspecified():
    towers = five_towers()
    truth = {"open": 0.0, "urban": 8.0, "forest": 3.0}
    meas, _, labels = drive_test(towers, 800, seed=11, offsets=truth, p=[0.5, 0.3, 0.2])
    cv = cross_validate(towers, meas, folds=5, mode="random", seed=0, clutter=labels, models=["hata"], shrinkage=())  # fmt: skip
    true = score(cv, "hata+clutter")
    assert true.rmse_db == pytest.approx(SIGMA, rel=0.08)
    assert abs(true.mean_error_db) < 0.5
    assert len(true.fold_rmse_db) == 5
    assert score(cv, "hata").rmse_db > SIGMA + 1.0  # without the clutter offsets
    assert cv.best.candidate.name == "hata+clutter"


def test_the_wrong_model_cross_validates_worse_than_the_true_one():
    """Hata's loss depends on the antenna height (−13.82 log h_b and the slope); free space does
    not: with towers of 30 and 200 m, a + b log d cannot make up for it."""
    towers = five_towers().assign(height_m=[30.0, 200.0, 30.0, 200.0, 100.0])
    meas, _, _ = drive_test(towers, 600, seed=5)
    cv = cross_validate(towers, meas, folds=5, mode="spatial", seed=1, models=["hata", "fspl"], shrinkage=())  # fmt: skip
    assert score(cv, "hata").rmse_db == pytest.approx(SIGMA, rel=0.1)
    assert score(cv, "fspl").rmse_db > SIGMA + 1.0
    assert cv.best.candidate.model == "hata"


def test_per_site_offsets_are_found_and_chosen():
    towers = five_towers()
    meas, _, _ = drive_test(towers, 600, seed=8)
    meas = with_site_offsets(meas, SITE_TRUTH)
    cal = calibrate_cv(towers, meas, folds=5, mode="random", seed=3, models=["hata"])
    chosen = cal.cv["chosen"]
    assert chosen["site_offsets"]
    assert cal.site_shrinkage == chosen["site_shrinkage"]
    assert cal.cv_rmse_db == pytest.approx(SIGMA, rel=0.1)
    no_sites = next(c for c in cal.cv["candidates"] if c["name"] == "hata")
    assert no_sites["cv_rmse_db"] > SIGMA + 2.0
    # offsets relative to their mean (the intercept takes the mean); ~120 points per site
    got = pd.Series(cal.site_offsets_db)
    want = pd.Series(SITE_TRUTH)
    np.testing.assert_allclose(
        (got - got.mean()).sort_index(), (want - want.mean()).sort_index(), atol=1.2
    )
    # predictions apply them by site: the calibrated error is the noise
    err = meas["rssi_dbm"] - predict_rssi(towers, meas, calibration=cal)
    assert float(np.sqrt(np.mean(err**2))) == pytest.approx(cal.rmse_db_after, abs=1e-9)
    assert cal.rmse_db_after == pytest.approx(SIGMA, rel=0.1)


def test_site_folds_leave_whole_sites_out():
    """Leaving sites out, per-site offsets cannot help the held-out site (it gets 0 dB): the CV
    error stays at the spread of the site offsets, whatever the fit error."""
    towers = five_towers()
    meas, _, _ = drive_test(towers, 500, seed=9)
    meas = with_site_offsets(meas, SITE_TRUTH)
    cv = cross_validate(towers, meas, folds=5, mode="site", models=["hata"])
    spread = float(np.std(list(SITE_TRUTH.values())))
    assert cv.best.rmse_db > SIGMA + 0.5 * spread


def test_shrinkage_keeps_little_of_a_sparse_site_and_most_of_a_dense_one():
    """A site keeps w_s = n_s / (n_s + λ) of its offset from the common intercept: T1 with 3
    measurements little of its +12 dB, T2 with ~300 nearly all of its +6 dB. The intercept
    takes δ = Σ w_s m_s / Σ w_s (the ridge offsets sum to 0), so u_s = w_s (m_s − δ). The
    solution equals a plain augmented ridge least squares."""
    towers = five_towers()
    meas, _, _ = drive_test(towers, 1500, seed=4, sigma=0.0)
    keep = (meas["site_id"] != "T1").to_numpy().copy()
    keep[np.flatnonzero(~keep)[:3]] = True  # three measurements of T1
    meas = with_site_offsets(
        meas[keep].reset_index(drop=True), {"T1": 12.0, "T2": 6.0, "T3": 0.0, "T4": 0.0, "T5": 0.0}
    )
    base = calibrate(towers, meas)  # no site offsets: the residuals the ridge shares out
    residual = meas["rssi_dbm"].to_numpy() - predict_rssi(towers, meas)
    log_d = np.log10(_distances_km(towers, meas))
    sites = meas["site_id"].to_numpy()
    design = make_design(log_d, None, sites)
    truth = {"T1": 12.0, "T2": 6.0, "T3": 0.0, "T4": 0.0, "T5": 0.0}
    n_s = pd.Series(sites).value_counts()
    previous = None
    for lam in (1.0, 4.0, 16.0, 64.0):
        beta, u, full = solve(design, -residual, shrinkage=lam)
        assert full
        # independent reference: min ‖[X Z; 0 √λ I] [β; u] − [t; 0]‖
        z = (sites[:, None] == np.array(design.sites)[None, :]).astype(float)
        a = np.vstack(
            [np.hstack([design.x, z]), np.hstack([np.zeros((5, 2)), np.sqrt(lam) * np.eye(5)])]
        )
        ref = np.linalg.lstsq(a, np.concatenate([-residual, np.zeros(5)]), rcond=None)[0]
        np.testing.assert_allclose(np.concatenate([beta, u]), ref, atol=1e-8)
        off = dict(zip(design.sites, u, strict=True))
        w = {s: n_s[s] / (n_s[s] + lam) for s in truth}
        delta = sum(w[s] * truth[s] for s in truth) / sum(w.values())
        assert sum(u) == pytest.approx(0.0, abs=1e-9)
        for s in truth:
            assert off[s] == pytest.approx(w[s] * (truth[s] - delta), abs=0.05), (s, lam)
        assert w["T1"] <= 0.75
        assert w["T2"] > 0.8  # ~300 measurements: nearly unshrunk
        if previous is not None:
            assert off["T1"] < previous  # more shrinkage, less of the site's own offset
        previous = off["T1"]
        fitted = residual + correction(design, beta, u)
        assert np.isfinite(fitted).all()
    assert base.site_offsets_db == {}
    assert base.site_shrinkage is None


def _distances_km(towers, meas):
    x, y = TO_UTM.transform(meas.geometry.x.to_numpy(), meas.geometry.y.to_numpy())
    t = towers.loc[meas["site_id"]]
    return np.hypot(x - t.geometry.x.to_numpy(), y - t.geometry.y.to_numpy()) / 1000.0


def test_cv_is_deterministic_for_a_seed():
    towers = five_towers()
    meas, _, _ = drive_test(towers, 200, seed=6)
    one = calibrate_cv(towers, meas, folds=4, mode="random", seed=7).to_dict()
    two = calibrate_cv(towers, meas, folds=4, mode="random", seed=7).to_dict()
    assert json.dumps(one) == json.dumps(two)
    other = calibrate_cv(towers, meas, folds=4, mode="random", seed=8).to_dict()
    assert other["cv"]["candidates"] != one["cv"]["candidates"]


# ------------------------------------------------------------------------------ params.json
def test_params_json_round_trip_with_cv_and_site_offsets():
    towers = five_towers()
    meas, _, labels = drive_test(towers, 300, seed=1, offsets={"open": 0.0, "urban": 6.0})
    meas = with_site_offsets(meas, SITE_TRUTH)
    cal = calibrate_cv(towers, meas, folds=5, mode="spatial", seed=2, clutter=labels)
    data = json.loads(json.dumps(cal.to_dict()))
    cv = data["cv"]
    assert {"folds", "mode", "block_m", "seed", "chosen", "cv_rmse_db", "cv_mean_error_db"} <= set(
        cv
    )
    assert (cv["folds"], cv["mode"], cv["block_m"], cv["seed"]) == (5, "spatial", 1000.0, 2)
    names = [c["name"] for c in cv["candidates"]]
    assert len(names) == len(set(names)) == 4 * 2 * 6  # hata, fspl, uma, rma × clutter × sites
    assert cv["chosen"]["name"] in names
    assert cv["cv_rmse_db"] == min(c["cv_rmse_db"] for c in cv["candidates"])
    back = Calibration.from_dict(data)
    assert back == cal
    assert back.cv == cal.cv
    assert back.site_offsets_db == cal.site_offsets_db
    assert back.to_dict() == data


def test_older_params_json_still_loads():
    cal = Calibration("hata", "urban", 1.0, 2.0, {"a": 0.0}, 3, 4.0, 5.0, 6.0, 7.0)
    old = {k: v for k, v in cal.to_dict().items() if k not in ("site_offsets_db", "site_shrinkage", "cv")}  # fmt: skip
    back = Calibration.from_dict(old)
    assert (back.site_offsets_db, back.site_shrinkage, back.cv, back.cv_rmse_db) == (
        {},
        None,
        None,
        None,
    )
    with pytest.raises(PlanError, match="cv must be an object"):
        Calibration.from_dict(old | {"cv": {"folds": 5}})
    with pytest.raises(PlanError, match="site_offsets_db must be an object"):
        Calibration.from_dict(old | {"site_offsets_db": [1.0]})


def test_apply_site_offsets_shifts_the_eirp_of_each_tower():
    towers = five_towers()
    before = towers.copy()
    cal = Calibration("hata", "urban", 0.0, 0.0, {}, 3, 1.0, 1.0, 0.0, 0.0,
                      site_offsets_db={"T1": 4.0, "T3": -2.5, "X9": 1.0}, site_shrinkage=4.0)  # fmt: skip
    out = apply_site_offsets(towers, cal)
    np.testing.assert_allclose(out["eirp_dbm"], towers["eirp_dbm"] - [4.0, 0.0, -2.5, 0.0, 0.0])
    assert out.index.equals(towers.index)
    assert out.crs == towers.crs
    assert_unchanged(towers, before)
    plain = Calibration("hata", "urban", 0.0, 0.0, {}, 3, 1.0, 1.0, 0.0, 0.0)
    assert apply_site_offsets(towers, plain) is towers
    # the shifted EIRP gives exactly the calibrated prediction
    meas, _, _ = drive_test(towers, 30, seed=1)
    np.testing.assert_allclose(
        predict_rssi(apply_site_offsets(towers, cal), meas, calibration=plain),
        predict_rssi(towers, meas, calibration=cal),
    )


# ------------------------------------------------------------------------------ unclassified
def test_measurements_without_a_land_use_class_are_unclassified_and_fitted(tmp_path):
    """Polygons cover the western half only: the eastern measurements are `unclassified`, its
    offset is fitted like any class, and the coverage grid gives it to cells without a class."""
    import geopandas as gpd
    from shapely.geometry import box

    from telcoplan.coverage.calibration import clutter_offset_grid
    from telcoplan.gis.vector import write_vector
    from telcoplan.layers.land_use import land_use_at_points

    towers = five_towers()
    meas, _, _ = drive_test(towers, 500, seed=3, sigma=0.0)
    x, _ = TO_UTM.transform(meas.geometry.x.to_numpy(), meas.geometry.y.to_numpy())
    west = x < 205_000.0
    meas["rssi_dbm"] = meas["rssi_dbm"] - np.where(west, 0.0, 5.0)  # +5 dB loss in the east
    lon_split = meas.geometry.x[west].max() + 1e-6
    polys = gpd.GeoDataFrame(
        {"landuse": ["residential", None]},
        geometry=[box(100.0, 10.0, lon_split, 20.0), box(100.0, 10.0, 120.0, 20.0)],
        crs="EPSG:4326",
    )
    write_vector(tmp_path / "lu.geojson", polys)
    codes, names = land_use_at_points(tmp_path / "lu.geojson", meas, column="landuse")
    labels = clutter_labels(codes, names)
    assert set(labels[west]) == {"residential"}
    assert set(labels[~west]) == {"unclassified"}
    cal = calibrate(towers, meas, clutter=labels)
    gap = cal.clutter_offsets_db["unclassified"] - cal.clutter_offsets_db["residential"]
    assert gap == pytest.approx(5.0, abs=1e-6)
    # nodata cells get the unclassified offset; classes never fitted get 0 dB
    grid = clutter_offset_grid(cal, np.array([[1.0, np.nan, 7.0]]), {1.0: "residential"})
    np.testing.assert_allclose(
        grid.offset_db,
        [[cal.clutter_offsets_db["residential"], cal.clutter_offsets_db["unclassified"], 0.0]],
        atol=1e-5,
    )
    assert grid.nodata_pct == pytest.approx(100.0 / 3, abs=1e-3)
    # validation measurements without a class need no fitted class of their own
    only_classed = calibrate(towers, meas[west], clutter=labels[west], validation=meas[~west],
                             validation_clutter=labels[~west])  # fmt: skip
    assert only_classed.clutter_offsets_db["unclassified"] == 0.0
    assert only_classed.validation_mean_error_db == pytest.approx(-5.0, abs=1e-6)
